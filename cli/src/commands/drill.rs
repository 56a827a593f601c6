//! `asdr drill NAME`: a declared restore replayed into the drill's isolated target, validated,
//! timed, torn down, verified gone, and reported (Markdown and JSON under `.asdr/drills/`).
//! `--check` creates nothing; `--teardown-only` removes what an interrupted run left.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use asdr_executor::lock::{self, Holder};
use asdr_executor::{Outcome, Report};
use asdr_planner::drill::drill_node;
use asdr_planner::{Operation, Plan, World};
use asdr_providers::drill::Validation;
use asdr_providers::node_provider::NodeAddress;
use asdr_specs::{Drill, Policy, Teardown};
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::args::{DrillArgs, Global};
use crate::commands::apply::{ClusterLock, confirm, run_plan, state_dir};
use crate::commands::print;
use crate::error::CommandError;
use crate::{inputs, render};

fn user(e: impl std::fmt::Display) -> CommandError {
    CommandError::User(e.to_string())
}

pub fn cmd_drill(g: &Global, a: &DrillArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let drill = policy.drill(&a.name).cloned().ok_or_else(|| {
        let known: Vec<&str> = policy.drills.iter().map(|d| d.name.as_str()).collect();
        user(format!(
            "no drill named `{}` in the policy (declared: {})",
            a.name,
            if known.is_empty() {
                "none".into()
            } else {
                known.join(", ")
            }
        ))
    })?;
    if a.check {
        return check(g, &policy, &drill);
    }
    let dir = state_dir(&policy);
    let lock = ClusterLock::for_policy(g, &policy, &dir)?;
    let holder = Holder {
        pid: std::process::id(),
        host: lock::hostname(),
        plan_id: format!("drill:{}", drill.name),
        since: now(),
    };
    let held = lock.acquire(&holder)?;
    let result = if a.teardown_only {
        teardown_only(g, &policy, &drill, &dir)
    } else {
        live(g, a, &policy, &drill, &dir)
    };
    held.release()?;
    result
}

fn now() -> String {
    OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default()
}

/// What is still there of the drill (the planner's rule, shared with the teardown plan).
fn leftovers(world: &World, policy: &Policy, drill: &str) -> Vec<String> {
    let left = asdr_planner::drill::leftovers(world, &policy.cluster.name, drill);
    left.instances
        .iter()
        .map(|i| i.id.clone())
        .chain(left.volumes.iter().map(|v| v.id.clone()))
        .collect()
}

/// Tears down everything tagged for the drill and returns (the teardown's report, what remains).
fn teardown(
    g: &Global,
    policy: &Policy,
    drill: &Drill,
    dir: &Path,
) -> Result<(Option<Report>, Vec<String>), CommandError> {
    let plan = inputs::plan_op(g, &Operation::Teardown(drill.name.clone()))?;
    let report = if plan.steps.is_empty() {
        None
    } else {
        let (_, report, _) = run_plan(g, policy, plan, &dir.join("drills/journal"), 10, None)?;
        Some(report)
    };
    let remaining = leftovers(&inputs::world(g, Some(policy))?, policy, &drill.name);
    Ok((report, remaining))
}

fn teardown_only(
    g: &Global,
    policy: &Policy,
    drill: &Drill,
    dir: &Path,
) -> Result<i32, CommandError> {
    let (report, remaining) = teardown(g, policy, drill, dir)?;
    let removed = report.as_ref().map_or(0, |r| {
        r.count(|o| matches!(o, Outcome::Done { .. } | Outcome::Adopted { .. }))
    });
    print(&format!(
        "Drill `{}` teardown: {removed} step(s) done, {} resource(s) tagged for it remain{}\n",
        drill.name,
        remaining.len(),
        if remaining.is_empty() {
            String::new()
        } else {
            format!(": {}", remaining.join(", "))
        }
    ))?;
    Ok(
        if remaining.is_empty() && report.is_none_or(|r| r.succeeded()) {
            0
        } else {
            1
        },
    )
}

/// The drill's stand-in nodes: `<node>@<drill>` at the drill's addresses.
fn stand_ins(policy: &Policy, drill: &Drill) -> BTreeMap<String, NodeAddress> {
    drill
        .private_ips
        .iter()
        .map(|(node, ip)| {
            (
                drill_node(node, &drill.name),
                NodeAddress {
                    info: SocketAddr::new(IpAddr::V4(*ip), policy.cluster.info_port),
                    host: ip.to_string(),
                },
            )
        })
        .collect()
}

fn live(
    g: &Global,
    a: &DrillArgs,
    policy: &Policy,
    drill: &Drill,
    dir: &Path,
) -> Result<i32, CommandError> {
    let started = now();
    let clock = std::time::Instant::now();
    // What an interrupted run left goes first: a drill always starts from nothing.
    let before = leftovers(&inputs::world(g, Some(policy))?, policy, &drill.name);
    if !before.is_empty() {
        eprintln!(
            "Drill `{}`: removing {} resource(s) an earlier run left behind.",
            drill.name,
            before.len()
        );
        let (_, remaining) = teardown(g, policy, drill, dir)?;
        if !remaining.is_empty() {
            return Err(user(format!(
                "drill `{}`: resources of an earlier run could not be removed: {}",
                drill.name,
                remaining.join(", ")
            )));
        }
    }
    let plan = inputs::plan_op(g, &Operation::Drill(drill.name.clone()))?;
    if !g.quiet && !g.json {
        print(&render::plan(&plan))?;
    }
    confirm(g, a.yes, &plan)?;
    // A drill gets the time its deadline leaves, whatever its steps would otherwise allow.
    let (plan, restore, _) = run_plan(
        g,
        policy,
        plan,
        &dir.join("drills/journal"),
        usize::from(a.parallelism),
        Some(stand_ins(policy, drill)),
    )?;
    let restore_wall = clock.elapsed();
    let live_nodes = g.live_nodes || g.world.is_none();
    let validations: Vec<Validation> = if !restore.succeeded() {
        vec![Validation {
            name: "restore".into(),
            ok: false,
            detail: "the restore did not complete; nothing to validate".into(),
        }]
    } else if live_nodes {
        let addrs: BTreeMap<String, SocketAddr> = stand_ins(policy, drill)
            .into_iter()
            .map(|(n, a)| (n, a.info))
            .collect();
        let namespaces: Vec<String> = policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect();
        inputs::runtime()?.block_on(asdr_providers::drill::validate(drill, &addrs, &namespaces))
    } else {
        vec![Validation {
            name: "validations".into(),
            ok: true,
            detail: "not run: the nodes of a world file are simulated (use --live-nodes or AWS)"
                .into(),
        }]
    };
    let passed = restore.succeeded() && validations.iter().all(|v| v.ok);
    let overdue = restore_wall.as_secs() > drill.deadline.seconds();
    let tear = match drill.teardown {
        Teardown::Always => true,
        Teardown::OnSuccess => passed && !overdue,
        Teardown::Never => false,
    };
    let (teardown_report, remaining) = if tear {
        teardown(g, policy, drill, dir)?
    } else {
        (
            None,
            leftovers(&inputs::world(g, Some(policy))?, policy, &drill.name),
        )
    };
    let ok = passed
        && !overdue
        && (!tear || remaining.is_empty())
        && teardown_report.as_ref().is_none_or(|r| r.succeeded());
    let path = write_report(
        policy,
        drill,
        &plan,
        &restore,
        restore_wall,
        &validations,
        tear,
        &remaining,
        &started,
        ok,
        overdue,
        dir,
    )?;
    print(&format!(
        "\nDrill `{}` {}: restore {:.1} s, {} of {} validations passed, {}; report {}\n",
        drill.name,
        if ok { "passed" } else { "FAILED" },
        restore_wall.as_secs_f64(),
        validations.iter().filter(|v| v.ok).count(),
        validations.len(),
        if !tear {
            format!("left in place ({} resources)", remaining.len())
        } else if remaining.is_empty() {
            "torn down, nothing left".into()
        } else {
            format!(
                "{} resource(s) left: {}",
                remaining.len(),
                remaining.join(", ")
            )
        },
        path.display()
    ))?;
    Ok(if ok { 0 } else { 1 })
}

#[allow(clippy::too_many_arguments)]
fn write_report(
    policy: &Policy,
    drill: &Drill,
    plan: &Plan,
    restore: &Report,
    wall: std::time::Duration,
    validations: &[Validation],
    torn_down: bool,
    remaining: &[String],
    started: &str,
    ok: bool,
    overdue: bool,
    dir: &Path,
) -> Result<PathBuf, CommandError> {
    let steps: Vec<serde_json::Value> = plan
        .steps
        .iter()
        .map(|s| {
            let (outcome, seconds) = match restore.outcomes.get(&s.id) {
                Some(Outcome::Done { took, .. }) => ("done", took.as_secs_f64()),
                Some(Outcome::Adopted { .. }) => ("adopted", 0.0),
                Some(Outcome::Resumed) => ("resumed", 0.0),
                Some(Outcome::Failed { .. }) => ("failed", 0.0),
                Some(Outcome::Skipped { .. }) | None => ("skipped", 0.0),
            };
            json!({"step": s.id, "kind": s.kind(), "outcome": outcome, "seconds": seconds})
        })
        .collect();
    let report = json!({
        "drill": drill.name, "cluster": policy.cluster.name, "restore": drill.restore, "plan_id": plan.plan_id,
        "started": started, "passed": ok, "restore_seconds": wall.as_secs_f64(), "deadline_seconds": drill.deadline.seconds(), "overdue": overdue,
        "steps": steps, "validations": validations, "torn_down": torn_down, "remaining": remaining,
        "notes": plan.warnings,
    });
    let base = dir
        .join("drills")
        .join(format!("{}-{}", drill.name, plan.plan_id));
    std::fs::create_dir_all(base.parent().expect("a parent")).map_err(user)?;
    std::fs::write(
        base.with_extension("json"),
        serde_json::to_string_pretty(&report).expect("serializes") + "\n",
    )
    .map_err(user)?;
    let mut md = format!(
        "# Drill `{}` of cluster {} — {}\n\nStarted {started}; restore `{}` (plan {}) took **{:.1} s** (deadline {}{}).\n\n## Steps\n\n| step | outcome | seconds |\n|---|---|---|\n",
        drill.name,
        policy.cluster.name,
        if ok { "passed" } else { "FAILED" },
        drill.restore,
        plan.plan_id,
        wall.as_secs_f64(),
        drill.deadline,
        if overdue { ", exceeded" } else { "" }
    );
    for s in &steps {
        md.push_str(&format!(
            "| {} | {} | {:.2} |\n",
            s["step"].as_str().unwrap_or(""),
            s["outcome"].as_str().unwrap_or(""),
            s["seconds"].as_f64().unwrap_or(0.0)
        ));
    }
    md.push_str("\n## Validations\n\n");
    for v in validations {
        md.push_str(&format!(
            "- {} **{}** — {}\n",
            if v.ok { "✔" } else { "✘" },
            v.name,
            v.detail
        ));
    }
    md.push_str(&format!(
        "\n## Teardown\n\n{}\n\n## Notes\n\n",
        if !torn_down {
            format!(
                "Not torn down (teardown: {:?}); {} resource(s) remain.",
                drill.teardown,
                remaining.len()
            )
        } else if remaining.is_empty() {
            "Everything tagged for the drill was removed; none remains.".to_string()
        } else {
            format!("Remaining: {}", remaining.join(", "))
        }
    ));
    for w in &plan.warnings {
        md.push_str(&format!("- [{}] {}\n", w.rule, w.message));
    }
    std::fs::write(base.with_extension("md"), md).map_err(user)?;
    Ok(base.with_extension("md"))
}

/// Creates nothing: the plan, DryRun verdicts for every EC2 mutation, the backup set, and an
/// estimate of the restore time.
fn check(g: &Global, policy: &Policy, drill: &Drill) -> Result<i32, CommandError> {
    let plan = inputs::plan_op(g, &Operation::Drill(drill.name.clone()))?;
    let world = inputs::world(g, Some(policy))?;
    let mut failed = false;
    let mut out = format!(
        "Drill `{}` check (nothing is created)\n\nMutations:\n",
        drill.name
    );
    if g.world.is_some() {
        out.push_str("  not checked with DryRun: a world file has no AWS account behind it\n");
    } else {
        let runtime = inputs::runtime()?;
        let (ec2, _) =
            runtime.block_on(asdr_providers::live::ec2_provider(policy, &inputs::aws(g)));
        for c in runtime.block_on(ec2.dry_run(&plan)) {
            failed |= c.verdict != asdr_providers::ec2::dry_run::Verdict::Allowed;
            out.push_str(&format!(
                "  {:<8} {:<24} {}{}\n",
                format!("{:?}", c.verdict).to_lowercase(),
                c.action,
                c.step,
                if c.verdict == asdr_providers::ec2::dry_run::Verdict::Allowed {
                    String::new()
                } else {
                    format!(": {}", c.message)
                }
            ));
        }
    }
    // The set: every snapshot the drill restores completed, the SMD archive present.
    let ready = asdr_planner::drill::readiness(&plan, &world);
    let archive = ready.archive.clone().unwrap_or_default();
    let readable = {
        use asdr_providers::store::Store;
        let store =
            inputs::runtime()?.block_on(asdr_providers::live::smd_store(policy, &inputs::aws(g)));
        inputs::runtime()?
            .block_on(store.get(&archive))
            .map(|b| b.len())
            .map_err(|e| e.to_string())
    };
    out.push_str(&format!(
        "\nBackup set: {} snapshot(s), {}; SMD archive {archive}: {}\n",
        ready.snapshots.len(),
        if ready.pending.is_empty() {
            "all completed".to_string()
        } else {
            format!(
                "{} not completed yet: {}",
                ready.pending.len(),
                ready.pending.join(", ")
            )
        },
        match &readable {
            Ok(n) => format!("readable ({n} bytes)"),
            Err(e) if g.world.is_some() => format!("not read ({e})"),
            Err(e) => {
                failed = true;
                format!("NOT readable: {e}")
            }
        }
    ));
    let restore = policy.restore(&drill.restore).expect("validated");
    let estimate = asdr_planner::drill::restore_estimate(
        restore.volume.initialization_rate,
        ready.largest_gib,
    );
    out.push_str(&format!("Restore time: {estimate}\n"));
    out.push_str(&format!(
        "\nCheck {}.\n",
        if failed { "FAILED" } else { "passed" }
    ));
    print(&out)?;
    Ok(if failed { 1 } else { 0 })
}

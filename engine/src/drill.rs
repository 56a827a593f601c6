//! Drills: a declared restore replayed into the drill's isolated target, validated, timed, torn
//! down as the policy says, and reported; the check that creates nothing; the teardown of what an
//! interrupted drill left. The pass/fail and teardown rules are the planner's.

use std::collections::BTreeMap;
use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use asdr_executor::{Event, Outcome, Report};
use asdr_planner::drill::drill_node;
use asdr_planner::{Operation, Plan};
use asdr_providers::drill::Validation;
use asdr_providers::ec2::dry_run::Check;
use asdr_providers::node_provider::NodeAddress;
use asdr_specs::Drill;
use serde_json::json;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{EngineError, Session};

/// The drill named `name`, or an error listing the declared ones.
pub fn find<'p>(session: &'p Session, name: &str) -> Result<&'p Drill, EngineError> {
    session.policy.drill(name).ok_or_else(|| {
        asdr_planner::PlanError::UnknownDrill {
            name: name.to_string(),
            known: session
                .policy
                .drills
                .iter()
                .map(|d| d.name.clone())
                .collect(),
        }
        .into()
    })
}

/// Resources tagged for the drill that are still there (the planner's rule, shared with the
/// teardown plan), as ids.
pub fn leftovers(session: &Session, drill: &str) -> Result<Vec<String>, EngineError> {
    let world = session.world()?;
    let left = asdr_planner::drill::leftovers(&world, &session.policy.cluster.name, drill);
    Ok(left
        .instances
        .iter()
        .map(|i| i.id.clone())
        .chain(left.volumes.iter().map(|v| v.id.clone()))
        .collect())
}

/// Live resources tagged for the drill that no apply of it recorded making: never torn down.
pub fn unrecorded(session: &Session, drill: &str) -> Result<Vec<String>, EngineError> {
    let world = session.world()?;
    Ok(asdr_planner::drill::unrecorded(
        &world,
        &session.policy.cluster.name,
        drill,
    ))
}

fn journal_dir(session: &Session) -> PathBuf {
    session.drill_journal_dir()
}

/// Tears down everything tagged for the drill: (the teardown's report, if it had steps; what
/// remains after it).
pub fn teardown(
    session: &Session,
    drill: &Drill,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<(Option<Report>, Vec<String>), EngineError> {
    let (plan, _) = session.plan(&Operation::Teardown(drill.name.clone()))?;
    let report = if plan.steps.is_empty() {
        None
    } else {
        Some(
            session
                .execute(plan, &journal_dir(session), 10, None, on_event)?
                .report,
        )
    };
    let remaining = leftovers(session, &drill.name)?;
    Ok((report, remaining))
}

/// The drill's stand-in nodes: `<node>@<drill>` at the drill's addresses.
pub fn stand_ins(session: &Session, drill: &Drill) -> BTreeMap<String, NodeAddress> {
    drill
        .private_ips
        .iter()
        .map(|(node, ip)| {
            (
                drill_node(node, &drill.name),
                NodeAddress {
                    info: SocketAddr::new(IpAddr::V4(*ip), session.policy.cluster.info_port),
                    host: ip.to_string(),
                },
            )
        })
        .collect()
}

/// What a drill run did and found.
#[derive(Debug)]
pub struct Outcomes {
    pub started: String,
    pub plan: Plan,
    pub restore: Report,
    pub restore_wall: Duration,
    pub validations: Vec<Validation>,
    /// The validations ran against live nodes (a world file's simulated nodes are not validated).
    pub validated: bool,
    pub overdue: bool,
    pub torn_down: bool,
    pub teardown: Option<Report>,
    pub remaining: Vec<String>,
    pub passed: bool,
    /// Resources an earlier, interrupted run left, removed first.
    pub cleared: usize,
    /// The restore's phases as they went (from its journal), against the plan's estimate.
    pub measured: Option<asdr_planner::rto::Measured>,
}

/// Runs the drill: what an interrupted run left goes first (a drill always starts from nothing),
/// then the restore, the validations, the teardown the policy asks for. `confirm` sees the plan
/// before anything is created.
pub fn run(
    session: &Session,
    drill: &Drill,
    parallelism: usize,
    confirm: &dyn Fn(&Plan) -> Result<(), EngineError>,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<Outcomes, EngineError> {
    let started = OffsetDateTime::now_utc()
        .format(&Rfc3339)
        .unwrap_or_default();
    let clock = Instant::now();
    // Tagged for the drill but recorded by none of its journals here (a run killed on another
    // machine, `.asdr` removed, or someone else's tags): never removed on a tag's word, and a
    // drill beside them would fail on their addresses. Said before anything is made.
    let strangers = unrecorded(session, &drill.name)?;
    if !strangers.is_empty() {
        let (instances, volumes): (Vec<&String>, Vec<&String>) =
            strangers.iter().partition(|id| id.starts_with("i-"));
        let mut how = Vec::new();
        if !instances.is_empty() {
            how.push(format!(
                "aws ec2 terminate-instances --instance-ids {}",
                instances
                    .iter()
                    .map(|s| s.as_str())
                    .collect::<Vec<_>>()
                    .join(" ")
            ));
        }
        for v in &volumes {
            how.push(format!("aws ec2 delete-volume --volume-id {v}"));
        }
        return Err(EngineError::Other(format!(
            "drill `{}`: {} carr{} asdr:drill={} but no journal of this drill here records making {} (a run killed on another machine, or its .asdr removed; or someone else's tags): asdr does not remove what it cannot prove is the drill's, and a drill beside them would collide with them. Once you know they are the drill's, remove them by hand ({}), then run the drill again",
            drill.name,
            strangers.join(", "),
            if strangers.len() == 1 { "ies" } else { "y" },
            drill.name,
            if strangers.len() == 1 { "it" } else { "them" },
            how.join("; ")
        )));
    }
    let before = leftovers(session, &drill.name)?;
    if !before.is_empty() {
        let (_, remaining) = teardown(session, drill, on_event)?;
        if !remaining.is_empty() {
            return Err(EngineError::Other(format!(
                "drill `{}`: resources of an earlier run could not be removed: {}",
                drill.name,
                remaining.join(", ")
            )));
        }
    }
    let (plan, _) = session.plan(&Operation::Drill(drill.name.clone()))?;
    confirm(&plan)?;
    let executed = session.execute(
        plan,
        &journal_dir(session),
        parallelism,
        Some(stand_ins(session, drill)),
        on_event,
    )?;
    let restore_wall = clock.elapsed();
    let measured = crate::apply::measured(
        &asdr_executor::journal::journal_path(&journal_dir(session), &executed.plan.plan_id),
        &executed.plan,
    );
    let restore = executed.report;
    let validated = session.live_nodes() && restore.succeeded();
    let validations = if !restore.succeeded() {
        vec![Validation {
            name: "restore".into(),
            ok: false,
            detail: "the restore did not complete; nothing to validate".into(),
        }]
    } else if validated {
        let addrs: BTreeMap<String, SocketAddr> = stand_ins(session, drill)
            .into_iter()
            .map(|(n, a)| (n, a.info))
            .collect();
        let namespaces: Vec<String> = session
            .policy
            .cluster
            .namespaces
            .iter()
            .map(|n| n.name.clone())
            .collect();
        session
            .runtime()
            .block_on(asdr_providers::drill::validate(drill, &addrs, &namespaces))
    } else {
        Vec::new()
    };
    let checked = restore.succeeded() && validations.iter().all(|v| v.ok);
    let overdue = restore_wall.as_secs() > drill.deadline.seconds();
    let torn_down = asdr_planner::drill::tears_down(drill.teardown, checked, overdue);
    let (teardown_report, remaining) = if torn_down {
        teardown(session, drill, on_event)?
    } else {
        (None, leftovers(session, &drill.name)?)
    };
    let passed = asdr_planner::drill::drill_passed(checked, overdue, torn_down, remaining.len())
        && teardown_report.as_ref().is_none_or(|r| r.succeeded());
    Ok(Outcomes {
        started,
        plan: (*executed.plan).clone(),
        restore,
        restore_wall,
        validations,
        validated,
        overdue,
        torn_down,
        teardown: teardown_report,
        remaining,
        passed,
        cleared: before.len(),
        measured,
    })
}

/// The drill's report, as JSON (for machines) and Markdown (for the drill log) under
/// `.asdr/drills/`; returns the Markdown's path.
pub fn write_report(
    session: &Session,
    drill: &Drill,
    o: &Outcomes,
) -> Result<PathBuf, EngineError> {
    let steps: Vec<serde_json::Value> = o
        .plan
        .steps
        .iter()
        .map(|s| {
            let (outcome, seconds) = match o.restore.outcomes.get(&s.id) {
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
        "drill": drill.name, "cluster": session.policy.cluster.name, "restore": drill.restore,
        "plan_id": o.plan.plan_id, "started": o.started, "passed": o.passed,
        "restore_seconds": o.restore_wall.as_secs_f64(), "deadline_seconds": drill.deadline.seconds(),
        "overdue": o.overdue, "steps": steps, "validations": o.validations,
        "validated": o.validated, "torn_down": o.torn_down, "remaining": o.remaining,
        "notes": o.plan.warnings,
        "finished": OffsetDateTime::now_utc().format(&Rfc3339).unwrap_or_default(),
        // The restore's time: the plan's estimate by phase, and the phases as they went.
        "restore_time": {"estimate": o.plan.rto, "measured": o.measured},
    });
    let base = session
        .state_dir()
        .join("drills")
        .join(format!("{}-{}", drill.name, o.plan.plan_id));
    // In asdr's own directory, never through a link planted where a report goes (its name is
    // the plan's id, known in advance): a fresh file renamed into place.
    let write = |path: &Path, text: String| {
        asdr_executor::private::create_own_dir(path.parent().expect("a parent"))
            .and_then(|_| asdr_executor::private::write(path, text.as_bytes()))
            .map_err(|e| EngineError::Other(format!("{}: {e}", path.display())))
    };
    write(
        &base.with_extension("json"),
        serde_json::to_string_pretty(&report).expect("serializes") + "\n",
    )?;
    write(
        &base.with_extension("md"),
        markdown(session, drill, o, &steps),
    )?;
    Ok(base.with_extension("md"))
}

fn markdown(session: &Session, drill: &Drill, o: &Outcomes, steps: &[serde_json::Value]) -> String {
    let mut md = format!(
        "# Drill `{}` of cluster {} — {}\n\nStarted {}; restore `{}` (plan {}) took **{:.1} s** (deadline {}{}).\n\n## Steps\n\n| step | outcome | seconds |\n|---|---|---|\n",
        drill.name,
        session.policy.cluster.name,
        if o.passed { "passed" } else { "FAILED" },
        o.started,
        drill.restore,
        o.plan.plan_id,
        o.restore_wall.as_secs_f64(),
        drill.deadline,
        if o.overdue { ", exceeded" } else { "" }
    );
    if let Some(m) = &o.measured {
        let phases: Vec<String> = m
            .phases
            .iter()
            .map(|p| match p.estimate_seconds {
                Some(e) => format!("{} {:.1} s (estimated {e} s)", p.phase, p.seconds),
                None => format!("{} {:.1} s", p.phase, p.seconds),
            })
            .collect();
        md = md.replace(
            "\n\n## Steps",
            &format!(
                "\n\nRestore time: **{:.1} s** measured ({}){}.\n\n## Steps",
                m.total_seconds,
                phases.join(", "),
                m.estimate_seconds
                    .map_or_else(String::new, |e| format!(", estimated {e} s"))
            ),
        );
    }
    for s in steps {
        md.push_str(&format!(
            "| {} | {} | {:.2} |\n",
            s["step"].as_str().unwrap_or(""),
            s["outcome"].as_str().unwrap_or(""),
            s["seconds"].as_f64().unwrap_or(0.0)
        ));
    }
    md.push_str("\n## Validations\n\n");
    if !o.validated && o.restore.succeeded() {
        md.push_str(
            "Not run: the nodes of a world file are simulated (use --live-nodes or AWS).\n",
        );
    }
    for v in &o.validations {
        md.push_str(&format!(
            "- {} **{}** — {}\n",
            if v.ok { "✔" } else { "✘" },
            v.name,
            v.detail
        ));
    }
    md.push_str(&format!(
        "\n## Teardown\n\n{}\n\n## Notes\n\n",
        if !o.torn_down {
            format!(
                "Not torn down (teardown: {:?}); {} resource(s) remain.",
                drill.teardown,
                o.remaining.len()
            )
        } else if o.remaining.is_empty() {
            "Everything tagged for the drill was removed; none remains.".to_string()
        } else {
            format!("Remaining: {}", o.remaining.join(", "))
        }
    ));
    for w in &o.plan.warnings {
        md.push_str(&format!("- [{}] {}\n", w.rule, w.message));
    }
    md
}

/// What `drill --check` found, creating nothing.
#[derive(Debug)]
pub struct CheckReport {
    /// DryRun verdicts of every EC2 mutation; none for a world file (no AWS account behind it).
    pub mutations: Option<Vec<Check>>,
    pub readiness: asdr_planner::drill::Readiness,
    /// The SMD archive's size when read from the store; `None` when a world file records it (no
    /// store stands behind a world file); why it is not there.
    pub archive: Result<Option<usize>, String>,
    pub estimate: String,
}

/// The plan, DryRun verdicts for every EC2 mutation, the backup set, and the restore time.
pub fn check(session: &Session, drill: &Drill) -> Result<CheckReport, EngineError> {
    let (plan, world) = session.plan(&Operation::Drill(drill.name.clone()))?;
    let rt = session.runtime();
    let mutations = if session.is_world_file() {
        None
    } else {
        let (ec2, _) = rt.block_on(asdr_providers::live::ec2_provider(
            &session.policy,
            &session.aws,
        ));
        Some(rt.block_on(ec2.dry_run(&plan)))
    };
    let readiness = asdr_planner::drill::readiness(&plan, &world);
    let archive = match readiness.archive.as_deref() {
        None => Err("the drill's plan restores no SMD archive".to_string()),
        Some(uri) if session.is_world_file() && !session.live_nodes() => world
            .smd_archives
            .iter()
            .any(|a| a.uri == uri)
            .then_some(None)
            .ok_or_else(|| "the world file records no such archive".to_string()),
        Some(uri) => {
            use asdr_providers::store::Store;
            let store = rt.block_on(asdr_providers::live::smd_store(
                &session.policy,
                &session.aws,
            ));
            rt.block_on(store.get(uri))
                .map(|b| Some(b.len()))
                .map_err(|e| e.to_string())
        }
    };
    // The restore's time by phase, from the drill's own plan, against the restore's objective.
    let estimate = match &plan.rto {
        Some(rto) => {
            let mut text = rto.line();
            for p in &rto.phases {
                text.push_str(&format!("\n  {:10} {}", p.phase, p.basis));
            }
            // What the plan says of the restore's time, cost and quotas (an objective it cannot
            // meet, Fast Snapshot Restore's DSU-hours and its 5-snapshot quota, time-based
            // copies).
            for w in plan
                .warnings
                .iter()
                .filter(|w| matches!(w.rule.as_str(), "RTO" | "limit" | "cost"))
            {
                text.push_str(&format!("\n  WARNING [{}]: {}", w.rule, w.message));
            }
            text
        }
        None => "nothing to restore: the plan has no step".to_string(),
    };
    Ok(CheckReport {
        mutations,
        readiness,
        archive,
        estimate,
    })
}

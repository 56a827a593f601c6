//! `asdr apply`: lock, plan (or load, or resume), confirm, execute, summarise.

use std::io::{BufRead, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use asdr_executor::journal::{self, Journal};
use asdr_executor::lock::{self, Holder};
use asdr_executor::{Event, Options, Outcome, Report};
use asdr_planner::Plan;
use std::collections::BTreeMap;

use asdr_providers::node_provider::{Composite, NodeAddress};
use asdr_providers::world_provider::{Hook, WorldFileProvider};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::args::{ApplyArgs, Global};
use crate::commands::print;
use crate::error::CommandError;
use crate::progress::Reporter;
use crate::{inputs, render};

pub(crate) fn state_dir(policy: &Policy) -> PathBuf {
    Path::new(&policy.path)
        .parent()
        .unwrap_or(Path::new("."))
        .join(".asdr")
}

pub fn cmd_apply(g: &Global, a: &ApplyArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let dir = state_dir(&policy);
    let lock = ClusterLock::for_policy(g, &policy, &dir)?;
    if a.break_lock {
        let (what, holder) = lock.break_it()?;
        print(&match holder {
            Some(h) => format!("Broke the lock {what} held by {h}.\n"),
            None => format!("No lock at {what}.\n"),
        })?;
        return Ok(0);
    }
    let holder = Holder {
        pid: std::process::id(),
        host: lock::hostname(),
        plan_id: "(planning)".into(),
        since: OffsetDateTime::now_utc()
            .format(&Rfc3339)
            .unwrap_or_default(),
    };
    let held = lock.acquire(&holder)?;
    let result = apply_locked(g, a, &policy, &dir);
    // Released whatever happened; only a killed apply leaves its lock behind (breakable).
    held.release()?;
    result
}

/// Where applies of a cluster take turns: the policy's `lock` (S3 for a team, or a file), else a
/// file beside the policy.
pub(crate) enum ClusterLock {
    File(PathBuf),
    S3(asdr_providers::store::lock::S3Lock),
}

pub(crate) enum HeldLock {
    File(lock::Lock),
    S3(asdr_providers::store::lock::S3Lock),
}

impl ClusterLock {
    pub(crate) fn for_policy(
        g: &Global,
        policy: &Policy,
        dir: &Path,
    ) -> Result<Self, CommandError> {
        match policy.lock.as_deref() {
            Some(uri) if asdr_specs::StoreUri::is_s3(uri) => inputs::runtime()?
                .block_on(asdr_providers::live::s3_lock(policy, &inputs::aws(g), uri))
                .map(ClusterLock::S3)
                .map_err(|e| CommandError::User(e.to_string())),
            Some(uri) => Ok(ClusterLock::File(PathBuf::from(
                asdr_specs::StoreUri::for_tool(uri),
            ))),
            None => Ok(ClusterLock::File(
                dir.join("locks")
                    .join(format!("{}.lock", policy.cluster.name)),
            )),
        }
    }

    pub(crate) fn acquire(&self, holder: &Holder) -> Result<HeldLock, CommandError> {
        match self {
            ClusterLock::File(path) => lock::acquire(path, holder)
                .map(HeldLock::File)
                .map_err(|e| CommandError::User(e.to_string())),
            ClusterLock::S3(s3) => {
                let text = serde_json::to_string(holder).expect("a holder serializes");
                inputs::runtime()?
                    .block_on(s3.acquire(&text))
                    .map_err(|e| CommandError::User(e.to_string()))?;
                Ok(HeldLock::S3(s3.clone()))
            }
        }
    }

    fn break_it(&self) -> Result<(String, Option<String>), CommandError> {
        match self {
            ClusterLock::File(path) => Ok((
                path.display().to_string(),
                lock::break_lock(path)
                    .map_err(|e| CommandError::User(e.to_string()))?
                    .map(|h| h.to_string()),
            )),
            ClusterLock::S3(s3) => Ok((
                s3.uri().to_string(),
                inputs::runtime()?
                    .block_on(s3.release())
                    .map_err(|e| CommandError::User(e.to_string()))?,
            )),
        }
    }
}

impl HeldLock {
    pub(crate) fn release(self) -> Result<(), CommandError> {
        match self {
            HeldLock::File(l) => {
                drop(l);
                Ok(())
            }
            HeldLock::S3(s3) => inputs::runtime()?
                .block_on(s3.release())
                .map(|_| ())
                .map_err(|e| CommandError::User(e.to_string())),
        }
    }
}

fn apply_locked(
    g: &Global,
    a: &ApplyArgs,
    policy: &Policy,
    dir: &Path,
) -> Result<i32, CommandError> {
    let policy = policy.clone();
    let journal_dir = dir.join("journal");
    let interrupted = journal::unfinished(&journal_dir, &policy.cluster.name)
        .map_err(|e| CommandError::User(e.to_string()))?;
    if let Some(id) = &a.discard {
        let Some(plan) = interrupted.iter().find(|p| &p.plan_id == id) else {
            return Err(CommandError::User(format!(
                "no interrupted apply of plan {id} (interrupted: {})",
                list_plans(&interrupted)
            )));
        };
        journal::abandon(&journal_dir, &plan.plan_id)
            .map_err(|e| CommandError::User(e.to_string()))?;
        print(&format!(
            "Discarded the interrupted apply of plan {} ({}); its journal is kept.\n",
            plan.plan_id, plan.operation
        ))?;
        return Ok(0);
    }
    let file_plan = a.plan_file.as_deref().map(load_plan).transpose()?;
    let wanted = match (&file_plan, &a.restore) {
        (Some(p), _) => p.operation.clone(),
        (None, Some(r)) => asdr_planner::Operation::Restore(r.clone()).label(),
        (None, None) => asdr_planner::Operation::Backup.label(),
    };
    let resumed =
        journal::resumable(interrupted, &wanted).map_err(|e| CommandError::User(e.to_string()))?;
    let (plan, world) = if let Some(plan) = resumed {
        // The interrupted plan runs on only if it still is what its recorded inputs give: an
        // edited plan file, or a changed policy, is never resumed.
        match journal::load_world(&journal_dir, &plan.plan_id)
            .map_err(|e| CommandError::User(e.to_string()))?
        {
            Some(recorded) => asdr_planner::saved::check_saved(&policy, &recorded, &plan)
                .map_err(|e| {
                    CommandError::User(format!(
                        "the interrupted apply of plan {} cannot be resumed: {e} Discard it with `asdr apply --discard {}`.",
                        plan.plan_id, plan.plan_id
                    ))
                })?,
            None => eprintln!(
                "warning: plan {} has no recorded world; resuming it without re-checking it",
                plan.plan_id
            ),
        }
        if !g.quiet {
            eprintln!(
                "Resuming the interrupted apply of plan {} ({}).",
                plan.plan_id, plan.operation
            );
        }
        (plan, None)
    } else if let Some(plan) = file_plan {
        let world = inputs::world(g, Some(&policy))?;
        asdr_planner::saved::check_saved(&policy, &world, &plan)
            .map_err(|e| CommandError::User(e.to_string()))?;
        (plan, Some(world))
    } else {
        let (plan, world) = inputs::plan_with_world(g, &inputs::operation(a.restore.as_deref()))?;
        if !g.json && !g.quiet {
            print(&render::plan(&plan))?;
        }
        (plan, Some(world))
    };
    if !plan.has_changes() {
        return Ok(0);
    }
    confirm(g, a.yes, &plan)?;

    if let Some(world) = &world {
        journal::save_world(&journal_dir, &plan.plan_id, world)
            .map_err(|e| CommandError::User(e.to_string()))?;
    }
    let (plan, report, journal) = run_plan(
        g,
        &policy,
        plan,
        &journal_dir,
        usize::from(a.parallelism),
        None,
    )?;
    summarise(g, &plan, &report, &journal)?;
    Ok(if report.succeeded() { 0 } else { 1 })
}

/// Executes `plan` with the providers the command line selects: the world file (simulated nodes,
/// or the nodes themselves with --live-nodes), or EC2 and the nodes. `stand_ins` replaces the
/// policy's node addresses (a drill's nodes).
pub(crate) fn run_plan(
    g: &Global,
    policy: &Policy,
    plan: Plan,
    journal_dir: &Path,
    parallelism: usize,
    stand_ins: Option<BTreeMap<String, NodeAddress>>,
) -> Result<(Arc<Plan>, Report, PathBuf), CommandError> {
    let hook = test_hook();
    let runtime = inputs::runtime()?;
    let (mut journal, resumed) =
        Journal::open(journal_dir, &plan).map_err(|e| CommandError::User(e.to_string()))?;
    let plan = Arc::new(plan);
    let progress = Reporter::new(g.json, g.quiet, plan.steps.len());
    let on_event = |e: &Event| progress.event(e);
    let mut opts = Options {
        parallelism,
        max_nodes_at_once: policy.backup.max_nodes_at_once.max(1) as usize,
        poll_interval: Duration::from_secs(5),
        max_attempts: 5,
        step_timeout: env_ms("ASDR_STEP_TIMEOUT_MS"),
        hook: hook.clone(),
    };
    let aws = inputs::aws(g);
    let nodes_for = |world: &asdr_planner::World| {
        runtime.block_on(async {
            match &stand_ins {
                Some(map) => {
                    asdr_providers::live::node_provider_at(policy, world, &aws, map.clone()).await
                }
                None => asdr_providers::live::node_provider(policy, world, &aws).await,
            }
        })
    };
    let report = match &g.world {
        Some(world_path) => {
            let sim_path = std::env::var_os("ASDR_SIMULATION").map(PathBuf::from);
            let provider = WorldFileProvider::open(
                world_path,
                sim_path.as_deref(),
                &policy.cluster.name,
                hook.clone(),
            )?;
            opts.poll_interval =
                Duration::from_millis(runtime.block_on(provider.simulation()).poll_interval_ms);
            if g.live_nodes {
                // Node steps to the nodes themselves, cloud steps to the world file.
                let nodes = nodes_for(&runtime.block_on(provider.world()));
                runtime.block_on(asdr_executor::execute(
                    plan.clone(),
                    Arc::new(Composite {
                        cloud: provider,
                        nodes,
                    }),
                    &mut journal,
                    resumed.done,
                    &opts,
                    &on_event,
                ))
            } else {
                runtime.block_on(asdr_executor::execute(
                    plan.clone(),
                    Arc::new(provider),
                    &mut journal,
                    resumed.done,
                    &opts,
                    &on_event,
                ))
            }
        }
        None => {
            // EC2 and the nodes themselves.
            if let Some(ms) = env_ms("ASDR_POLL_INTERVAL_MS") {
                opts.poll_interval = ms;
            }
            let world = inputs::world(g, Some(policy))?;
            let (cloud, calls) = runtime.block_on(asdr_providers::live::ec2_provider(policy, &aws));
            let nodes = nodes_for(&world);
            let report = runtime.block_on(asdr_executor::execute(
                plan.clone(),
                Arc::new(Composite { cloud, nodes }),
                &mut journal,
                resumed.done,
                &opts,
                &on_event,
            ));
            if g.verbose > 0 {
                eprintln!("made {} EC2 API calls", calls.get());
            }
            report
        }
    }
    .map_err(|e| CommandError::User(e.to_string()))?;
    progress.finish();
    Ok((plan, report, journal.path().to_path_buf()))
}

/// A duration in milliseconds from the environment (test and tuning knobs).
fn env_ms(name: &str) -> Option<Duration> {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .map(Duration::from_millis)
}

fn load_plan(file: &Path) -> Result<Plan, CommandError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CommandError::User(format!("cannot read plan file {}: {e}", file.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CommandError::User(format!(
            "{}:{}:{}: error: not a plan file: {e}",
            file.display(),
            e.line(),
            e.column()
        ))
    })
}

fn list_plans(plans: &[Plan]) -> String {
    if plans.is_empty() {
        return "none".into();
    }
    plans
        .iter()
        .map(|p| format!("{} ({})", p.plan_id, p.operation))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A plan is applied only on an explicit yes: `--yes`, or `yes` typed at a terminal.
pub(crate) fn confirm(g: &Global, yes: bool, plan: &Plan) -> Result<(), CommandError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || g.json {
        return Err(CommandError::User("refusing to apply without confirmation: stdin is not a terminal; review the plan and pass --yes".into()));
    }
    print(&format!(
        "\nApply plan {} to cluster {}? Only 'yes' will be accepted: ",
        plan.plan_id, plan.cluster
    ))?;
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CommandError::User(e.to_string()))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CommandError::User("apply cancelled".into()))
    }
}

fn summarise(g: &Global, plan: &Plan, report: &Report, journal: &Path) -> Result<(), CommandError> {
    let count = |f: fn(&Outcome) -> bool| report.count(f);
    let done = count(|o| matches!(o, Outcome::Done { .. }));
    let adopted = count(|o| matches!(o, Outcome::Adopted { .. }));
    let resumed = count(|o| matches!(o, Outcome::Resumed));
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    if g.json {
        let windows: serde_json::Map<String, serde_json::Value> = report
            .write_stop
            .iter()
            .map(|(n, d)| (n.clone(), d.as_secs_f64().into()))
            .collect();
        print(&serde_json::to_string(&serde_json::json!({
            "event": "summary", "plan_id": plan.plan_id, "done": done, "adopted": adopted, "resumed": resumed,
            "skipped": skipped, "failed": failed, "wall_seconds": report.wall.as_secs_f64(), "write_stop_seconds": windows,
            "journal": journal.display().to_string(),
        })).map_err(|e| CommandError::User(e.to_string()))?)?;
        print("\n")?;
        return Ok(());
    }
    let mut out = format!(
        "\nApply of plan {} {} in {:.1} s: {done} done, {adopted} adopted, {resumed} resumed, {skipped} skipped, {failed} failed.\n",
        plan.plan_id,
        if failed + skipped == 0 {
            "complete"
        } else {
            "incomplete"
        },
        report.wall.as_secs_f64()
    );
    if !report.write_stop.is_empty() {
        let windows: Vec<String> = report
            .write_stop
            .iter()
            .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
            .collect();
        out.push_str(&format!("Write-stop windows: {}\n", windows.join(", ")));
    }
    for (id, o) in &report.outcomes {
        if let Outcome::Failed { error, attempts } = o {
            out.push_str(&format!(
                "  failed   {id} after {attempts} attempt(s): {error}\n"
            ));
        }
    }
    let cleanups: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| {
            s.cleanup
                && matches!(
                    report.outcomes.get(&s.id),
                    Some(Outcome::Done { .. } | Outcome::Adopted { .. })
                )
        })
        .map(|s| s.id.as_str())
        .collect();
    if failed + skipped > 0 {
        out.push_str(&format!(
            "  skipped  {skipped} step(s) whose upstream failed; cleanups run: {}\n",
            if cleanups.is_empty() {
                "none".to_string()
            } else {
                cleanups.join(", ")
            }
        ));
        out.push_str("Run `asdr apply` again once the cause is fixed: finished steps are found again, not repeated.\n");
    }
    out.push_str(&format!("Journal: {}\n", journal.display()));
    print(&out)
}

/// Test support: `ASDR_TEST_KILL_AT=N` kills this process with SIGKILL at the Nth step boundary or
/// provider effect, `ASDR_TEST_POINTS=FILE` lists those points as they pass. Crash-safety tests
/// use them to interrupt an apply exactly where idempotency matters.
fn test_hook() -> Hook {
    let kill_at: Option<usize> = std::env::var("ASDR_TEST_KILL_AT")
        .ok()
        .and_then(|v| v.parse().ok());
    let points: Option<PathBuf> = std::env::var_os("ASDR_TEST_POINTS").map(PathBuf::from);
    if kill_at.is_none() && points.is_none() {
        return Arc::new(|_| {});
    }
    let counter = Arc::new(AtomicUsize::new(0));
    let file = points.map(|p| {
        std::sync::Mutex::new(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(p)
                .expect("points file opens"),
        )
    });
    Arc::new(move |label: &str| {
        let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some(f) = &file {
            let _ = writeln!(f.lock().expect("not poisoned"), "{n} {label}");
        }
        if kill_at == Some(n) {
            let _ = std::process::Command::new("kill")
                .args(["-KILL", &std::process::id().to_string()])
                .status();
            std::thread::sleep(Duration::from_secs(60));
        }
    })
}

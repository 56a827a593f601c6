//! `apply`: which plan runs (a saved one re-checked, an interrupted one resumed, or one made now),
//! and running it. The caller shows the plan and asks for confirmation in between.

use asdr_executor::Event;
use asdr_executor::journal;
use asdr_planner::{Operation, Plan, World};
use time::OffsetDateTime;

use crate::{EngineError, Executed, Session};

/// What the operator asked for.
#[derive(Debug, Default)]
pub struct Request {
    /// A saved plan file, already read.
    pub plan_file: Option<Plan>,
    /// A declared restore instead of the backup.
    pub restore: Option<String>,
}

/// The plan an apply runs, and where it came from.
#[derive(Debug)]
pub struct Prepared {
    pub plan: Plan,
    /// The world the plan was made from (recorded beside the journal); none when resuming.
    pub world: Option<World>,
    pub origin: Origin,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Made now from the policy and the world.
    Planned,
    /// A saved plan file that still is what its policy and world give.
    Saved,
    /// An interrupted apply of the same operation, resumed: its recorded world was found, the
    /// plan still is what the policy and that world give, and the verifier passed it.
    Resumed,
}

fn journal_error(e: impl std::fmt::Display) -> EngineError {
    EngineError::Journal(e.to_string())
}

/// Marks an interrupted apply as discarded (its journal is kept); returns its operation.
pub fn discard(session: &Session, plan_id: &str) -> Result<String, EngineError> {
    let dir = session.journal_dir();
    let mut interrupted =
        journal::unfinished(&dir, &session.policy.cluster.name).map_err(journal_error)?;
    // A failed build elsewhere is discarded the same way (then planned afresh).
    if let Some(op) = journal::plan_of(&dir, plan_id)
        .ok()
        .map(|p| p.operation)
        .filter(|op| op.starts_with("restore:"))
        && let Some(failed) =
            journal::failed_build(&dir, &session.policy.cluster.name, &op).map_err(journal_error)?
    {
        interrupted.push(failed);
    }
    let Some(plan) = interrupted.iter().find(|p| p.plan_id == plan_id) else {
        return Err(EngineError::Journal(format!(
            "no interrupted apply of plan {plan_id} (interrupted: {})",
            list_plans(&interrupted)
        )));
    };
    journal::abandon(&dir, &plan.plan_id).map_err(journal_error)?;
    Ok(plan.operation.clone())
}

/// The plan to run: an interrupted apply of the same operation first (only while it still is what
/// its recorded inputs give: an edited plan file or a changed policy is never resumed), else the
/// saved plan (refused unless re-planning gives it again), else a plan made now.
pub fn prepare(session: &Session, request: Request) -> Result<Prepared, EngineError> {
    let dir = session.journal_dir();
    let policy = &session.policy;
    let interrupted = journal::unfinished(&dir, &policy.cluster.name).map_err(journal_error)?;
    let wanted = match (&request.plan_file, &request.restore) {
        (Some(p), _) => p.operation.clone(),
        (None, Some(r)) => Operation::Restore(r.clone()).label(),
        (None, None) => Operation::Backup.label(),
    };
    let mut resume = journal::resumable(interrupted, &wanted).map_err(journal_error)?;
    // A restore into another region that failed is resumed: planned afresh, it would find its
    // cluster partly built and refuse (DR would stand still).
    if resume.is_none() && request.plan_file.is_none() && request.restore.is_some() {
        resume =
            journal::failed_build(&dir, &policy.cluster.name, &wanted).map_err(journal_error)?;
        // Only while what it built is still there: instances terminated since (a build that
        // never served, removed by hand) cannot be built on, and the plan's launch tokens would
        // only name them again. The failed build is set aside and the restore planned afresh.
        if let Some(plan) = &resume {
            let world = session.world()?;
            let gone: Vec<String> = journal::learned_instances(&dir, &plan.plan_id)
                .map_err(journal_error)?
                .into_iter()
                .filter(|id| {
                    !world.instances.iter().any(|i| {
                        &i.id == id && i.state != asdr_planner::world::InstanceState::Terminated
                    })
                })
                .collect();
            if !gone.is_empty() {
                eprintln!(
                    "note: the failed apply of plan {} is not resumed: {} it launched {} gone; it is set aside and `{wanted}` is planned afresh",
                    plan.plan_id,
                    gone.join(", "),
                    if gone.len() == 1 { "is" } else { "are" }
                );
                journal::abandon_because(
                    &dir,
                    &plan.plan_id,
                    &format!("discarded: {} it launched gone", gone.join(", ")),
                )
                .map_err(journal_error)?;
                resume = None;
            }
        }
    }
    if let Some(plan) = resume {
        // What a resume runs (as root, on the nodes) comes from files in the state directory:
        // it runs only when the plan is what the policy and its recorded world give, and the
        // verifier passes it. Without its recorded world nothing shows the plan is asdr's own.
        let refused = |why: String| {
            EngineError::Journal(format!(
                "the interrupted apply of plan {} cannot be resumed: {why} Discard it with `asdr apply --discard {}`, then plan again.",
                plan.plan_id, plan.plan_id
            ))
        };
        let Some(recorded) = journal::load_world(&dir, &plan.plan_id).map_err(journal_error)?
        else {
            return Err(refused(format!(
                "the world it was made from ({}) is not there, so nothing shows the plan is what the policy gives; asdr does not run a plan it cannot check.",
                journal::world_path(&dir, &plan.plan_id).display()
            )));
        };
        asdr_planner::saved::check_saved(policy, &recorded, &plan)
            .map_err(|e| refused(e.to_string()))?;
        let violations = asdr_planner::verify(policy, &recorded, &plan);
        if !violations.is_empty() {
            return Err(refused(format!(
                "the verifier refuses it: {}.",
                violations
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        return Ok(Prepared {
            plan,
            world: None,
            origin: Origin::Resumed,
        });
    }
    if let Some(plan) = request.plan_file {
        let world = session.world()?;
        refuse_future_plan(&world, &plan)?;
        if let Err(e) = asdr_planner::saved::check_saved(policy, &world, &plan) {
            // An edited plan file is also read by the verifier: one edited to delete what must
            // stay (a locked set, R20) is refused for what it would do, not only for differing.
            let violations = match e {
                asdr_planner::saved::SavedPlanError::Edited { .. } => {
                    asdr_planner::verify(policy, &world, &plan)
                }
                _ => Vec::new(),
            };
            if !violations.is_empty() {
                return Err(EngineError::Journal(format!(
                    "{e} The verifier refuses it too: {}. Nothing was applied.",
                    violations
                        .iter()
                        .map(|v| v.to_string())
                        .collect::<Vec<_>>()
                        .join("; ")
                )));
            }
            return Err(journal_error(e));
        }
        // Re-planning gives it again, and the verifier reads it too, at this machine's time
        // where the world has none (on AWS, a world file without `now`): what the plan deletes
        // is checked against the locks as they hold now, not at the time the file names.
        let mut at_now = world.clone();
        at_now.now.get_or_insert_with(OffsetDateTime::now_utc);
        let violations = asdr_planner::verify(policy, &at_now, &plan);
        if !violations.is_empty() {
            return Err(EngineError::Journal(format!(
                "plan {} is refused: the verifier refuses it: {}. Nothing was applied.",
                plan.plan_id,
                violations
                    .iter()
                    .map(|v| v.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )));
        }
        return Ok(Prepared {
            plan,
            world: Some(world),
            origin: Origin::Saved,
        });
    }
    let op = request
        .restore
        .map_or(Operation::Backup, Operation::Restore);
    let (plan, world) = session.plan(&op)?;
    Ok(Prepared {
        plan,
        world: Some(world),
        origin: Origin::Planned,
    })
}

/// Runs a prepared plan: the world it was made from is recorded beside the journal first, so a
/// resume can check the plan is still what it gives.
pub fn run(
    session: &Session,
    prepared: Prepared,
    parallelism: usize,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<Executed, EngineError> {
    let dir = session.journal_dir();
    if let Some(world) = &prepared.world {
        journal::save_world(&dir, &prepared.plan.plan_id, world).map_err(journal_error)?;
    }
    session.execute(prepared.plan, &dir, parallelism, None, on_event)
}

/// How far a saved plan's time may lie past now (clocks differ a little between machines).
const PLAN_CLOCK_SLACK: time::Duration = time::Duration::minutes(5);

/// A saved plan made for a time later than now is refused: its time decides what is expired and
/// which locks have run out (R13, R20), so a plan file must not move the clock forward.
fn refuse_future_plan(world: &World, plan: &Plan) -> Result<(), EngineError> {
    let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
    let planned = OffsetDateTime::parse(&plan.now, &time::format_description::well_known::Rfc3339)
        .map_err(|e| EngineError::Journal(format!("plan {}: bad `now`: {e}", plan.plan_id)))?;
    if planned > now + PLAN_CLOCK_SLACK {
        return Err(EngineError::Journal(format!(
            "plan {} is refused: it was made for {}, later than now ({}): a plan's time decides what is expired and which locks have run out, so a plan for a later time is never applied. Nothing was applied.",
            plan.plan_id,
            plan.now,
            now.format(&time::format_description::well_known::Rfc3339)
                .unwrap_or_default()
        )));
    }
    Ok(())
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

/// A restore's phases as they went, from its journal: each step's last start and its end (a
/// step adopted or resumed ran before, and is not timed). None for a plan that is not a restore
/// or a drill, or a journal that cannot be read.
pub fn measured(journal: &std::path::Path, plan: &Plan) -> Option<asdr_planner::rto::Measured> {
    plan.rto.as_ref()?;
    let entries = journal::read(journal).ok()?;
    let mut started = std::collections::HashMap::new();
    let mut spans = std::collections::BTreeMap::new();
    for e in entries {
        let (Some(step), Some(t)) = (e.step.clone(), e.time()) else {
            continue;
        };
        match e.event {
            journal::EventKind::Start => {
                started.insert(step, t);
            }
            journal::EventKind::Done => {
                if let Some(a) = started.get(&step) {
                    spans.insert(step, (*a, t));
                }
            }
            _ => {}
        }
    }
    asdr_planner::rto::measured(plan, &spans)
}

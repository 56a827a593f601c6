//! The history generator: sequences of applies (the world-file simulation carrying each plan
//! out) with edits between them, for the property test and its benchmark. Two families:
//! EBS-snapshot clusters with copies to another region ([`ebs`]), and clusters that switch
//! between EBS snapshots and asbackup, sharing their asbackup store ([`asbackup`]).
//!
//! After every apply each history checks what an operator relies on: every plan verified (the
//! planner runs the verifier), nothing not this cluster's deleted, restored from or counted,
//! the restorable sets of each region and chain never below what `retain` keeps, no set a
//! declared restore names deleted, and `status` naming the recovery point the planner restores
//! from (or saying the restore is not usable).
//!
//! `ASDR_HISTORY_DEBUG=1` prints each refused plan's reason (a refusal is allowed; a generator
//! whose plans are mostly refused tests little).

pub mod asbackup;
pub mod ebs;

use std::collections::{BTreeMap, BTreeSet};

use asdr_planner::params::Params;
use asdr_planner::ports::{Progress, StepInput};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, PlanError, plan};
use asdr_specs::Policy;
use time::OffsetDateTime;

use crate::world_sim::{self, Ctx, Simulation};

/// A small deterministic generator (a 64-bit LCG): a seed is a history, reproducible.
#[derive(Debug)]
pub struct Rng(pub u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1)
    }

    pub fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// What a batch of histories did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Tally {
    pub histories: usize,
    pub applies: usize,
    pub steps: usize,
    /// Plans refused (a due backup refused while a node is down, say): refusing is allowed.
    pub refused: usize,
}

impl std::ops::AddAssign for Tally {
    fn add_assign(&mut self, o: Tally) {
        self.histories += o.histories;
        self.applies += o.applies;
        self.steps += o.steps;
        self.refused += o.refused;
    }
}

/// Runs histories `seeds` of both families; the first broken property ends the run with its
/// seed, step and what broke.
pub fn run(seeds: std::ops::Range<u64>) -> Result<Tally, String> {
    let mut t = Tally::default();
    for seed in seeds {
        t += if seed % 4 == 3 {
            asbackup::history(seed)?
        } else {
            ebs::history(seed)?
        };
    }
    Ok(t)
}

/// Carries `p` out on `world` with the world-file simulation, steps in plan order (every
/// dependency comes first), each observed, then acted on until done.
pub fn apply(world: &mut World, p: &Plan, cluster: &str) -> Result<(), String> {
    apply_lagging(world, p, cluster, 0)
}

/// [`apply`], with snapshots whose recorded start is `lag_s` seconds after their request.
pub fn apply_lagging(world: &mut World, p: &Plan, cluster: &str, lag_s: u64) -> Result<(), String> {
    let sim = Simulation {
        snapshot_polls: 0,
        snapshot_start_lag_s: lag_s,
        ..Simulation::default()
    };
    let cx = Ctx { cluster, sim: &sim };
    let mut learned = BTreeMap::new();
    for step in &p.steps {
        let input = StepInput {
            plan_id: &p.plan_id,
            step,
            learned: &learned,
        };
        let done = match world_sim::observe(world, &cx, &input) {
            Some(r) => r,
            None => {
                let mut tries = 0;
                loop {
                    tries += 1;
                    match world_sim::act(world, &cx, &input) {
                        Ok(Progress::Done(r)) => break r,
                        Ok(Progress::Pending { .. }) if tries < 50 => {}
                        Ok(other) => return Err(format!("{}: {other:?}", step.id)),
                        Err(e)
                            if !matches!(e.retry, asdr_planner::ports::Retry::Permanent)
                                && tries < 50 => {}
                        Err(e) => return Err(format!("{}: {e}", step.id)),
                    }
                }
            }
        };
        world_sim::canonicalize(world);
        learned.insert(step.id.clone(), done);
    }
    Ok(())
}

/// The sets a plan restores from: its volumes' snapshots' sets, or the sets of the directories
/// it asrestores.
pub fn restored_sets(p: &Plan, world: &World) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for s in &p.steps {
        match &s.params {
            Params::CreateVolume(c) => {
                if let Some(set) = c
                    .snapshot_id
                    .as_deref()
                    .and_then(|id| world.snapshots.iter().find(|x| x.id == id))
                    .and_then(|x| x.tags.get("asdr:set"))
                {
                    out.insert(set.clone());
                }
            }
            Params::Asrestore(a) => {
                for d in &a.directories {
                    if let Some(run) = world
                        .asbackup_archives
                        .iter()
                        .find(|r| r.uri.trim_end_matches('/') == d.trim_end_matches('/'))
                    {
                        out.insert(run.set.clone());
                    }
                }
            }
            _ => {}
        }
    }
    out
}

/// `status` and the planner name the same recovery point for restore `name`, or status says
/// the restore is not usable when the planner refuses it. For asbackup the planner replays a
/// chain: status names its last set.
pub fn status_agrees(
    policy: &Policy,
    world: &World,
    now: OffsetDateTime,
    name: &str,
    at: &str,
) -> Result<(), String> {
    let s = asdr_planner::status::status(policy, world, now);
    let Some(st) = s.restores.iter().find(|x| x.name == name) else {
        return Ok(());
    };
    match plan(policy, world, now, &Operation::Restore(name.into())) {
        Ok(rp) => {
            let used = restored_sets(&rp, world);
            if rp.steps.is_empty() {
                return Ok(());
            }
            let replays = rp
                .steps
                .iter()
                .any(|s| matches!(s.params, Params::Asrestore(_)));
            if used.iter().next_back() != st.set.as_ref() || (!replays && used.len() != 1) {
                return Err(format!(
                    "{at}: restore `{name}`: the planner restores from {used:?}, status names {:?}",
                    st.set
                ));
            }
            Ok(())
        }
        Err(PlanError::Refused(_)) => {
            if s.problems
                .iter()
                .any(|p| p.contains(&format!("restore `{name}`")))
            {
                Ok(())
            } else {
                Err(format!(
                    "{at}: `{name}` is refused, yet status lists no problem with it: {:?}",
                    s.problems
                ))
            }
        }
        Err(e) => Err(format!("{at}: restore `{name}`: {e}")),
    }
}

/// A plan refused: counted (refusing is allowed), and said with `ASDR_HISTORY_DEBUG`.
pub(super) fn refused(tally: &mut Tally, at: &str, why: &asdr_specs::Diagnostic) {
    if std::env::var_os("ASDR_HISTORY_DEBUG").is_some() {
        eprintln!("REFUSED {at}: {}", why.message);
    }
    tally.refused += 1;
}

/// A set id `bs-…` for `t`.
pub fn set_at(t: OffsetDateTime) -> String {
    asdr_planner::set_id(t)
}

//! The property test grows a history: sequences of applies (the world-file simulation carrying
//! each plan out) with edits between them — a node added, a device added, `retain` lowered, a
//! same-named cluster's snapshots appearing in the copy region, the clock moving by uneven steps.
//! After every apply: every plan verified, nothing not ours deleted, the restorable sets of the
//! cluster's region and of the copy region never below what `retain` keeps, and `status` names
//! the set the planner restores from (or says the restore is not usable).

use std::collections::{BTreeMap, BTreeSet};

use asdr_planner::params::Params;
use asdr_planner::ports::{Progress, StepInput};
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, PlanError, plan};
use asdr_providers::world_sim::{self, Ctx, Simulation};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const WEST: &str = "us-west-2";

struct Rng(u64);

impl Rng {
    fn below(&mut self, n: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        (self.0 >> 33) % n.max(1)
    }
}

/// Carries `p` out on `world` with the world-file simulation, steps in plan order (every
/// dependency comes first), each observed, then acted on until done.
fn apply(world: &mut World, p: &Plan, cluster: &str) -> Result<(), String> {
    let sim = Simulation {
        snapshot_polls: 0,
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
        let found = world_sim::observe(world, &cx, &input);
        let done = match found {
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

/// The policy of one history: prod-east-dr with `retain` counts, and the edits made so far.
fn policy_of(home_count: u32, copy_count: u32, a3: bool, sdi: bool) -> Policy {
    // The copy's retain first: its text is the one `{count: N}` could also match.
    let mut p = ExamplePolicy::named("prod-east-dr")
        .edit(
            "retain: {count: 3}",
            &format!("retain: {{count: {copy_count}}}"),
        )
        .edit(
            "retain: {count: 7, max_age: 30d}",
            &format!("retain: {{count: {home_count}}}"),
        );
    if a3 {
        p = p
            .edit(
                "\nbackup:",
                "    - name: a3\n      private_ip: 10.0.2.12\n      availability_zone: us-east-1b\n\nbackup:",
            )
            .edit("a2: 10.1.1.12}", "a2: 10.1.1.12, a3: 10.1.2.12}");
    }
    if sdi {
        p = p.edit(
            "        - device: /dev/sdh        # EBS directly, no shadow; `ebs` defaults to the shadow's path, else the device's\n",
            "        - device: /dev/sdh\n        - device: /dev/sdi\n",
        );
    }
    p.policy()
}

/// What the edited policy's cluster has that `world` lacks (a node's instance, volumes and
/// observation; a device's volumes), taken from a world generated for it.
fn grow(world: &mut World, policy: &Policy, now: OffsetDateTime) {
    let mut spec = WorldSpec::new(now);
    spec.sets = 0;
    let fresh = world_for(policy, &spec);
    for i in fresh.instances {
        if !world.instances.iter().any(|x| x.private_ip == i.private_ip) {
            world.instances.push(i);
        }
    }
    for v in fresh.volumes {
        let key = |x: &asdr_planner::world::Volume| {
            x.attachments
                .first()
                .map(|a| (a.instance_id.clone(), a.device.clone()))
        };
        let taken = world.volumes.iter().any(|x| {
            x.id == v.id
                || key(x).zip(key(&v)).is_some_and(|((xi, xd), (vi, vd))| {
                    xd == vd
                        && world
                            .instances
                            .iter()
                            .find(|i| i.id == xi)
                            .map(|i| &i.private_ip)
                            == world
                                .instances
                                .iter()
                                .find(|i| i.id == vi)
                                .map(|i| &i.private_ip)
                })
        });
        if !taken {
            world.volumes.push(v);
        }
    }
    for n in fresh.nodes {
        match world.nodes.iter_mut().find(|x| x.name == n.name) {
            Some(x) => *x = n,
            None => world.nodes.push(n),
        }
    }
}

/// A same-named cluster whose home is the copy region: snapshots there tagged for it, never copies.
fn foreign(world: &mut World, now: OffsetDateTime, k: usize) -> Vec<String> {
    let set = (now - time::Duration::days(40))
        .format(time::macros::format_description!(
            "bs-[year][month][day]T[hour][minute][second]Z"
        ))
        .unwrap();
    let mut ids = Vec::new();
    let template = world
        .snapshots
        .iter()
        .find(|s| s.region.is_none() && s.tags.contains_key("asdr:complete"))
        .cloned();
    if let Some(t) = template {
        for n in 0..3 {
            let mut s = t.clone();
            s.id = format!("snap-f{k:04}{n:011}");
            s.region = Some(WEST.into());
            s.tags.retain(|k, _| !k.starts_with("asdr:source"));
            s.tags.insert("asdr:set".into(), set.clone());
            s.tags.insert("asdr:node".into(), format!("a{n}"));
            ids.push(s.id.clone());
            world.snapshots.push(s);
        }
    }
    ids
}

/// The set a plan restores from (its volumes' snapshots' set).
fn set_of(p: &Plan, world: &World) -> BTreeSet<String> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::CreateVolume(c) => c.snapshot_id.as_deref(),
            _ => None,
        })
        .filter_map(|id| world.snapshots.iter().find(|x| x.id == id))
        .filter_map(|x| x.tags.get("asdr:set").cloned())
        .collect()
}

fn history(seed: u64) -> Result<usize, String> {
    let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
    let (mut home_count, mut copy_count) = (2 + r.below(5) as u32, 1 + r.below(3) as u32);
    let (mut a3, mut sdi) = (false, false);
    let mut now: OffsetDateTime = datetime!(2026-11-01 03:00:00 UTC);
    let mut policy = policy_of(home_count, copy_count, a3, sdi);
    let mut spec = WorldSpec::new(now);
    spec.sets = 0;
    let mut world = world_for(&policy, &spec);
    let mut not_ours: Vec<String> = Vec::new();
    let mut applies = 0;
    let steps = 4 + r.below(5);
    for k in 0..steps {
        match r.below(8) {
            0 if !a3 => {
                a3 = true;
                policy = policy_of(home_count, copy_count, a3, sdi);
                grow(&mut world, &policy, now);
            }
            1 if !sdi => {
                sdi = true;
                policy = policy_of(home_count, copy_count, a3, sdi);
                grow(&mut world, &policy, now);
            }
            2 => {
                home_count = (home_count - 1).max(1);
                copy_count = (copy_count.saturating_sub(r.below(2) as u32)).max(1);
                policy = policy_of(home_count, copy_count, a3, sdi);
            }
            3 => not_ours.extend(foreign(&mut world, now, k as usize)),
            _ => {}
        }
        now += time::Duration::hours(1 + r.below(40) as i64);
        world.now = Some(now);
        let status_before = asdr_planner::status::status(&policy, &world, now);
        let p = match plan(&policy, &world, now, &Operation::Backup) {
            Ok(p) => p,
            Err(PlanError::Refused(_)) => continue,
            Err(e) => return Err(format!("seed {seed} step {k}: {e}")),
        };
        apply(&mut world, &p, &policy.cluster.name)
            .map_err(|e| format!("seed {seed} step {k}: apply: {e}"))?;
        applies += 1;
        for id in &not_ours {
            if !world.snapshots.iter().any(|s| &s.id == id) {
                return Err(format!("seed {seed} step {k}: {id}, not ours, was deleted"));
            }
        }
        let s = asdr_planner::status::status(&policy, &world, now);
        let kept = |before: usize, retain: u32| before.min(retain as usize);
        if s.complete_sets.len() < kept(status_before.complete_sets.len(), home_count) {
            return Err(format!(
                "seed {seed} step {k}: {} complete sets at home after the apply, {} before, retain {home_count}: {:?} -> {:?}; unfinished {:?}; plan {:?}",
                s.complete_sets.len(),
                status_before.complete_sets.len(),
                status_before.complete_sets,
                s.complete_sets,
                s.unfinished_sets,
                p.changes
                    .iter()
                    .filter(|c| c.action == asdr_planner::Action::Delete)
                    .map(|c| c.reason.clone())
                    .collect::<BTreeSet<_>>()
            ));
        }
        let west = |st: &asdr_planner::status::Status| {
            st.regions.get(WEST).map_or(0, |r| r.complete_sets.len())
        };
        if west(&s) < kept(west(&status_before), copy_count) {
            return Err(format!(
                "seed {seed} step {k}: {} complete copies in {WEST} after the apply, {} before, retain {copy_count}",
                west(&s),
                west(&status_before)
            ));
        }
        // status and the planner name the same recovery point, or status says it is unusable.
        let st = s
            .restores
            .iter()
            .find(|x| x.name == "full-cluster")
            .unwrap();
        match plan(
            &policy,
            &world,
            now,
            &Operation::Restore("full-cluster".into()),
        ) {
            Ok(rp) => {
                let used = set_of(&rp, &world);
                if used.iter().next() != st.set.as_ref() || used.len() != 1 {
                    return Err(format!(
                        "seed {seed} step {k}: the planner restores from {used:?}, status names {:?}",
                        st.set
                    ));
                }
            }
            Err(PlanError::Refused(_)) => {
                if !s
                    .problems
                    .iter()
                    .any(|p| p.contains("restore `full-cluster`"))
                {
                    return Err(format!(
                        "seed {seed} step {k}: full-cluster is refused, yet status lists no problem with it: {:?}",
                        s.problems
                    ));
                }
            }
            Err(e) => return Err(format!("seed {seed} step {k}: restore: {e}")),
        }
    }
    Ok(applies)
}

#[test]
fn a_thousand_histories_of_edits_and_applies_keep_retention_ownership_and_status_true() {
    let mut applies = 0;
    for seed in 0..1000 {
        applies += history(seed).unwrap_or_else(|e| panic!("{e}"));
    }
    eprintln!("1000 histories, {applies} applies");
    assert!(applies >= 2000, "only {applies} applies ran");
}

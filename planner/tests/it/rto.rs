//! Restore time: a restore's plan (and `status`, and a drill's plan) states its time by phase —
//! launch, volumes, the cold start's read of every shadow device, the cluster — and holds it
//! against the restore's objective (`restores[].rto`), warning when it cannot be met.

use asdr_planner::rto::RtoEstimate;
use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, world_for};
use asdr_planner::{Operation, Plan, plan};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

/// The example cluster with one more restore of a1 from its latest set (500 GiB gp3 volumes at
/// 125 MiB/s in the example world).
fn with_restore(volume: &str, rto: &str) -> Policy {
    ExamplePolicy::prod_east()
        .append(&format!(
            "  - name: a1-timed\n    scope: node\n    nodes: [a1]\n    source: latest-backup\n    accept_zombie_records: true\n    volume: {volume}\n{rto}"
        ))
        .policy()
}

/// a1's instance terminated: the restore launches one.
fn a1_lost(policy: &Policy) -> asdr_planner::World {
    let mut spec = WorldSpec::new(NOW);
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    world_for(policy, &spec)
}

fn restore(policy: &Policy, name: &str) -> Plan {
    let w = a1_lost(policy);
    plan(policy, &w, NOW, &Operation::Restore(name.into())).expect("plans")
}

fn phase(rto: &RtoEstimate, name: &str) -> Option<u64> {
    rto.phases
        .iter()
        .find(|p| p.phase == name)
        .unwrap_or_else(|| panic!("no phase {name} in {rto:?}"))
        .seconds
}

fn rto_warnings(p: &Plan) -> Vec<&str> {
    p.warnings
        .iter()
        .filter(|w| w.rule == "RTO")
        .map(|w| w.message.as_str())
        .collect()
}

#[test]
fn a_restore_whose_estimate_exceeds_its_objective_is_warned_with_its_phases() {
    let policy = with_restore("{initialization_rate: 100}", "    rto: 10m\n");
    let p = restore(&policy, "a1-timed");
    let rto = p.rto.as_ref().expect("a restore plan states its time");
    // Launch (120 s) and volume creation (30 s) overlap; the cold start reads the 500 GiB device
    // as it initialises at 100 MiB/s (below the volume's 125): 5,120 s; the node joins in 60 s.
    assert_eq!(phase(rto, "launch"), Some(120));
    assert_eq!(phase(rto, "volumes"), Some(30));
    assert_eq!(phase(rto, "cold-start"), Some(5120));
    assert_eq!(phase(rto, "cluster"), Some(60));
    assert_eq!(rto.total_seconds, Some(120 + 5120 + 60));
    assert_eq!(rto.objective_seconds, Some(600));
    let warned = rto_warnings(&p);
    assert_eq!(warned.len(), 1, "{:?}", p.warnings);
    assert!(
        warned[0].contains("a1-timed")
            && warned[0].contains("exceeds the objective 10m")
            && warned[0].contains("the longest phase is cold-start")
            && warned[0].contains("100 MiB/s"),
        "{}",
        warned[0]
    );
}

#[test]
fn a_restore_within_its_objective_is_not_warned() {
    // 300 MiB/s on a volume given 1,000: 500 GiB in 1,707 s, 31 minutes in all, within 1 hour.
    let policy = with_restore(
        "{type: gp3, iops: 16000, throughput: 1000, initialization_rate: 300}",
        "    rto: 1h\n",
    );
    let p = restore(&policy, "a1-timed");
    let rto = p.rto.as_ref().unwrap();
    assert_eq!(phase(rto, "cold-start"), Some(1707));
    assert_eq!(rto.total_seconds, Some(120 + 1707 + 60));
    assert!(rto_warnings(&p).is_empty(), "{:?}", p.warnings);
    assert!(rto.shortfall().is_none());
}

#[test]
fn lazily_loaded_volumes_cannot_be_held_to_an_objective_and_say_what_bounds_them() {
    let policy = with_restore("{type: gp3}", "    rto: 4h\n");
    let p = restore(&policy, "a1-timed");
    let rto = p.rto.as_ref().unwrap();
    assert_eq!(phase(rto, "cold-start"), None);
    assert_eq!(rto.total_seconds, None);
    let warned = rto_warnings(&p);
    assert!(
        warned.len() == 1
            && warned[0].contains("cannot be held")
            && warned[0].contains("lazily")
            && warned[0].contains("initialization_rate or fast_snapshot_restore"),
        "{warned:?}"
    );
    // Without an objective, the same unbounded estimate is stated and not warned.
    let p = restore(&with_restore("{type: gp3}", ""), "a1-timed");
    assert_eq!(p.rto.as_ref().unwrap().total_seconds, None);
    assert!(rto_warnings(&p).is_empty(), "{:?}", p.warnings);
}

#[test]
fn fast_snapshot_restore_waits_for_the_snapshot_to_be_enabled_then_reads_at_the_volumes_throughput()
{
    let policy = with_restore("{fast_snapshot_restore: true}", "    rto: 30m\n");
    let p = restore(&policy, "a1-timed");
    let rto = p.rto.as_ref().unwrap();
    // Enabling at restore time: 500 GiB optimised at 60 min per TiB (1,758 s) before its first
    // credit; then volumes whole at creation, read at the volume's 125 MiB/s (4,096 s).
    assert_eq!(phase(rto, "volumes"), Some(30 + 1758));
    assert_eq!(phase(rto, "cold-start"), Some(4096));
    assert_eq!(rto.total_seconds, Some(1788 + 4096 + 60));
    let volumes = rto.phases.iter().find(|p| p.phase == "volumes").unwrap();
    assert!(
        volumes
            .basis
            .contains("Fast Snapshot Restore is enabled for 3 snapshot(s) in 1 zone(s)"),
        "{}",
        volumes.basis
    );
    assert_eq!(rto_warnings(&p).len(), 1, "{:?}", p.warnings);
}

#[test]
fn a_reattached_or_blank_restore_is_estimated_from_what_it_reads() {
    let policy = ExamplePolicy::prod_east().policy();
    // current-volumes: a1's own volumes, whole already, read at their 125 MiB/s.
    let p = restore(&policy, "replace-a1");
    let rto = p.rto.as_ref().unwrap();
    assert_eq!(phase(rto, "volumes"), Some(0));
    assert_eq!(phase(rto, "cold-start"), Some(4096));
    assert_eq!(rto.total_seconds, Some(120 + 4096 + 60));
    // empty: blank volumes, nothing to read; migrations refill while the peers serve.
    let p = restore(&policy, "a1-refill");
    let rto = p.rto.as_ref().unwrap();
    assert_eq!(phase(rto, "volumes"), Some(30));
    assert_eq!(phase(rto, "cold-start"), Some(0));
    assert_eq!(rto.total_seconds, Some(120 + 60));
    let cluster = rto.phases.iter().find(|p| p.phase == "cluster").unwrap();
    assert!(
        cluster.basis.contains("migrations then refill"),
        "{}",
        cluster.basis
    );
}

#[test]
fn a_plan_with_nothing_to_do_and_a_backup_state_no_restore_time() {
    let policy = with_restore("{initialization_rate: 100}", "    rto: 10m\n");
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let backup = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(backup.rto.is_none());
    assert!(rto_warnings(&backup).is_empty());
}

#[test]
fn status_gives_each_restore_its_estimate_and_an_objective_it_cannot_meet_is_a_problem() {
    let policy = with_restore("{initialization_rate: 100}", "    rto: 10m\n");
    let w = a1_lost(&policy);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let r = s.restores.iter().find(|r| r.name == "a1-timed").unwrap();
    assert_eq!(r.rto.total_seconds, Some(120 + 5120 + 60));
    assert_eq!(r.rto.objective_seconds, Some(600));
    let over: Vec<&String> = s
        .problems
        .iter()
        .filter(|p| p.contains("objective"))
        .collect();
    assert!(
        over.len() == 1
            && over[0].contains("restore `a1-timed`")
            && over[0].contains("exceeds the objective 10m"),
        "{:?}",
        s.problems
    );
    // A restore without an objective states its estimate and is no problem for it.
    let full = s
        .restores
        .iter()
        .find(|r| r.name == "full-cluster")
        .unwrap();
    assert_eq!(full.rto.objective_seconds, None);
    assert!(
        !s.problems
            .iter()
            .any(|p| p.contains("objective") && !p.contains("a1-timed")),
        "{:?}",
        s.problems
    );
    // Within the objective: no problem.
    let policy = with_restore("{initialization_rate: 100}", "    rto: 2h\n");
    let s = asdr_planner::status::status(&policy, &a1_lost(&policy), NOW);
    assert!(
        !s.problems.iter().any(|p| p.contains("objective")),
        "{:?}",
        s.problems
    );
}

#[test]
fn a_drill_states_the_time_of_the_restore_it_rehearses_against_its_objective() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n",
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    rto: 15m\n    volume: {initialization_rate: 200}\n",
        )
        .append("\ndrills:\n  - name: quarterly\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-0d1a, us-east-1b: subnet-0d1b}\n      ip_offset: 100\n      security_groups: [sg-0drill]\n")
        .policy();
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &w, NOW, &Operation::Drill("quarterly".into())).unwrap();
    let rto = p
        .rto
        .as_ref()
        .expect("a drill's plan states its restore's time");
    // Stand-ins launched; 500 GiB at 125 MiB/s (the volume's own, below the 200 asked): 4,096 s.
    assert_eq!(phase(rto, "launch"), Some(120));
    assert_eq!(phase(rto, "cold-start"), Some(4096));
    assert_eq!(rto.objective_seconds, Some(900));
    assert!(
        rto_warnings(&p).iter().any(
            |w| w.contains("restore `full-cluster`") && w.contains("exceeds the objective 15m")
        ),
        "{:?}",
        p.warnings
    );
}

fn with_copy(extra: &str) -> Policy {
    ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            &format!(
                "  copies:\n    - {{region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east{extra}}}\n  max_nodes_at_once: 1 "
            ),
        )
        .policy()
}

#[test]
fn a_time_based_copy_asks_for_its_duration_says_what_it_costs_and_plain_copies_do_not() {
    for (extra, minutes) in [(", complete_within: 1h", Some(60)), ("", None)] {
        let policy = with_copy(extra);
        let mut spec = WorldSpec::new(NOW);
        spec.newest_set_age = time::Duration::hours(25);
        let w = world_for(&policy, &spec);
        let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
        let copies: Vec<_> = p
            .steps
            .iter()
            .filter_map(|s| match &s.params {
                asdr_planner::params::Params::CopySnapshot(c) => Some(c),
                _ => None,
            })
            .collect();
        assert!(!copies.is_empty());
        assert!(
            copies
                .iter()
                .all(|c| c.completion_duration_minutes == minutes),
            "{copies:?}"
        );
        // Their waits allow what the copies were promised (the executor adds an hour).
        let waits: Vec<Option<u32>> = p
            .steps
            .iter()
            .filter(|s| s.region.is_some())
            .filter_map(|s| match &s.params {
                asdr_planner::params::Params::WaitSnapshot(w) => Some(w.within_minutes),
                _ => None,
            })
            .collect();
        assert!(
            !waits.is_empty() && waits.iter().all(|w| *w == minutes),
            "{waits:?}"
        );
        let cost: Vec<_> = p.warnings.iter().filter(|w| w.rule == "cost").collect();
        match minutes {
            Some(_) => assert!(
                cost.len() == 1
                    && cost[0]
                        .message
                        .contains("time-based: each completes within 1h")
                    && cost[0].message.contains("billed per GiB copied"),
                "{:?}",
                p.warnings
            ),
            None => assert!(cost.is_empty(), "{:?}", p.warnings),
        }
    }
}

#[test]
fn a_copy_regions_age_counts_from_the_sets_own_time_against_an_objective_that_allows_its_copy_time()
{
    // Sets 26 h, 50 h and 74 h old; the newest's copy is still being made, so the newest complete
    // copy in us-west-2 is of the 50-hour-old set: its age is the set's, not its copy's.
    let region_problem = |extra: &str| {
        let policy = with_copy(extra);
        let mut spec = WorldSpec::new(NOW);
        spec.newest_set_age = time::Duration::hours(26);
        spec.sets = 3;
        let mut w = world_for(&policy, &spec);
        asdr_planner::testkit::copy_sets(&mut w, &policy, 0, 2, true);
        let s = asdr_planner::status::status(&policy, &w, NOW);
        let west = &s.regions["us-west-2"];
        assert_eq!(west.age_seconds, Some(50 * 3600));
        (
            west.rpo_seconds,
            s.problems
                .iter()
                .find(|p| p.starts_with("us-west-2:"))
                .cloned(),
        )
    };
    // Best-effort copies: one interval for the next set and one to copy it, 48 h.
    let (rpo, problem) = region_problem("");
    assert_eq!(rpo, 48 * 3600);
    assert!(
        problem
            .as_deref()
            .is_some_and(|p| p.contains("older than its objective 2d (every: 24h")),
        "{problem:?}"
    );
    // Copies given 36 h to complete, 9 snapshots 5 at a time (two turns): 24 h + 2 × 36 h, and
    // 50 h is within it.
    let (rpo, problem) = region_problem(", complete_within: 36h");
    assert_eq!(rpo, (24 + 72) * 3600);
    assert_eq!(problem, None);
    // Given 1 hour, shorter than `every`: 24 h + 2 × 1 h, and 50 h is past it, which best-effort
    // copies would not have said for another 2 days.
    let (rpo, problem) = region_problem(", complete_within: 1h");
    assert_eq!(rpo, 26 * 3600);
    assert!(
        problem
            .as_deref()
            .is_some_and(|p| p.contains("is 2d 2h old, older than its objective 1d 2h")),
        "{problem:?}"
    );
}

fn fsr_full_cluster() -> Policy {
    ExamplePolicy::prod_east()
        .edit(
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n",
            "  - name: full-cluster\n    scope: cluster\n    source: latest-backup\n    volume: {fast_snapshot_restore: true}\n",
        )
        .policy()
}

fn step<'p>(p: &'p Plan, id: &str) -> &'p asdr_planner::Step {
    p.step(id).unwrap_or_else(|| {
        panic!(
            "no {id} in {:?}",
            p.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
        )
    })
}

#[test]
fn fsr_is_enabled_before_any_node_stops_or_volume_is_made_and_disabled_once_they_are() {
    let policy = fsr_full_cluster();
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    let enable = step(&p, "fast_snapshot_restore:enable:full-cluster");
    let asdr_planner::params::Params::FastSnapshotRestore(e) = &enable.params else {
        panic!("{enable:?}")
    };
    assert!(e.enable);
    // Each snapshot only in its own node's zone: 3 nodes per zone × 3 devices.
    assert_eq!(e.snapshots.len(), 2, "{:?}", e.snapshots);
    assert_eq!(e.snapshots.values().map(Vec::len).sum::<usize>(), 9);
    for s in &p.steps {
        match s.kind() {
            // The cluster serves while EBS optimises (an hour per TiB): nothing is taken out
            // before it is enabled, and no volume is made without it.
            asdr_planner::StepKind::StopNode | asdr_planner::StepKind::CreateVolume => assert!(
                s.depends_on.contains(&enable.id),
                "{} does not wait for {}",
                s.id,
                enable.id
            ),
            _ => {}
        }
    }
    let disable = step(&p, "fast_snapshot_restore:disable:full-cluster");
    let waits: Vec<&String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == asdr_planner::StepKind::WaitVolume)
        .map(|s| &s.id)
        .collect();
    assert_eq!(waits.len(), 9);
    assert!(
        waits.iter().all(|w| disable.depends_on.contains(w)),
        "{:?}",
        disable.depends_on
    );
    // Its cost, and the quota a 9-snapshot restore meets, are said.
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "cost" && w.message.contains("9 snapshot–zone pair(s)")),
        "{:?}",
        p.warnings
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "limit" && w.message.contains("enables 5 per region")),
        "{:?}",
        p.warnings
    );
    assert!(
        p.changes
            .iter()
            .any(|c| c.address == "fast_snapshot_restore.full-cluster")
    );
    // A restore without it plans no such step.
    let plain = ExamplePolicy::prod_east().policy();
    let p = plan(
        &plain,
        &world_for(&plain, &WorldSpec::new(NOW)),
        NOW,
        &Operation::Restore("full-cluster".into()),
    )
    .unwrap();
    assert!(
        !p.steps
            .iter()
            .any(|s| s.kind() == asdr_planner::StepKind::FastSnapshotRestore)
    );
}

#[test]
fn r3_the_verifier_refuses_a_plan_that_makes_volumes_before_fsr_leaves_it_on_or_touches_other_snapshots()
 {
    use asdr_planner::verify;
    let policy = fsr_full_cluster();
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let good = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    assert!(verify(&policy, &w, &good).is_empty());
    let refused = |p: &Plan, rule: &str, fragment: &str| {
        let v = verify(&policy, &w, p);
        assert!(
            v.iter()
                .any(|x| x.rule == rule && x.message.contains(fragment)),
            "{rule} {fragment}: {v:?}"
        );
    };
    let enable = "fast_snapshot_restore:enable:full-cluster";
    // A volume made without waiting for it.
    let mut p = good.clone();
    let c = p
        .steps
        .iter_mut()
        .find(|s| s.kind() == asdr_planner::StepKind::CreateVolume)
        .unwrap();
    c.depends_on.retain(|d| d != enable);
    refused(&p, "R3", "without waiting for Fast Snapshot Restore");
    // Never disabled: billed every hour.
    let mut p = good.clone();
    p.steps
        .retain(|s| s.id != "fast_snapshot_restore:disable:full-cluster");
    refused(&p, "R3", "never disables it");
    // Not asked for at all: every volume made lazily.
    let mut p = good.clone();
    p.steps
        .retain(|s| s.kind() != asdr_planner::StepKind::FastSnapshotRestore);
    for s in &mut p.steps {
        s.depends_on
            .retain(|d| !d.starts_with("fast_snapshot_restore:"));
    }
    refused(&p, "R3", "are made without it");
    // A snapshot the plan makes no volume from (someone else's, billed to us).
    let mut p = good.clone();
    for s in &mut p.steps {
        if let asdr_planner::params::Params::FastSnapshotRestore(f) = &mut s.params {
            f.snapshots
                .entry("us-east-1a".into())
                .or_default()
                .push("snap-0ther".into());
        }
    }
    refused(
        &p,
        "R13",
        "snap-0ther in us-east-1a, from which this plan makes no volume",
    );
    // In a restore that does not ask for it.
    let plain = ExamplePolicy::prod_east().policy();
    refused_by(&plain, &w, &good);
}

fn refused_by(policy: &Policy, w: &asdr_planner::World, p: &Plan) {
    let v = asdr_planner::verify(policy, w, p);
    assert!(
        v.iter().any(|x| x.rule == "R13"
            && x.message
                .contains("only a restore that declares volume.fast_snapshot_restore")),
        "{v:?}"
    );
}

#[test]
fn measured_phases_are_read_from_each_steps_start_and_end_against_the_estimate() {
    use asdr_planner::StepKind;
    let policy = with_restore("{fast_snapshot_restore: true}", "    rto: 2h\n");
    let p = restore(&policy, "a1-timed");
    let at = |s: i64| NOW + time::Duration::seconds(s);
    let mut spans = std::collections::BTreeMap::new();
    for s in &p.steps {
        let span = match s.kind() {
            StepKind::ProvisionInstance => (0, 100),
            StepKind::FastSnapshotRestore if s.id.contains(":enable:") => (0, 1800),
            // Disabled while the node starts: not counted as the volumes' time.
            StepKind::FastSnapshotRestore => (1900, 1910),
            StepKind::CreateVolume => (1800, 1810),
            StepKind::WaitVolume => (1810, 1840),
            StepKind::StartNode => (1900, 1950),
            StepKind::WaitClusterStable => (1950, 2400),
            _ => continue,
        };
        spans.insert(s.id.clone(), (at(span.0), at(span.1)));
    }
    let m = asdr_planner::rto::measured(&p, &spans).expect("steps ran");
    let got: Vec<(&str, f64, Option<u64>)> = m
        .phases
        .iter()
        .map(|x| (x.phase.as_str(), x.seconds, x.estimate_seconds))
        .collect();
    let rto = p.rto.as_ref().unwrap();
    let est = |n: &str| {
        rto.phases
            .iter()
            .find(|x| x.phase == n)
            .unwrap()
            .seconds
            .unwrap()
    };
    assert_eq!(
        got,
        [
            ("launch", 100.0, Some(120)),
            ("volumes", 1840.0, Some(est("volumes"))),
            (
                "cold-start+cluster",
                500.0,
                Some(est("cold-start") + est("cluster"))
            ),
        ]
    );
    assert_eq!(m.total_seconds, 2400.0);
    assert_eq!(m.estimate_seconds, rto.total_seconds);
    // Nothing ran (every step adopted): nothing measured.
    assert!(asdr_planner::rto::measured(&p, &Default::default()).is_none());
}

#[test]
fn review_a_failed_restore_turns_fsr_off_and_a_plan_refused_at_its_checks_never_turns_it_on() {
    let policy = fsr_full_cluster();
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    let enable = step(&p, "fast_snapshot_restore:enable:full-cluster");
    // FSR is billed from its first minute: on only once the plan's checks passed.
    for check in ["check_cluster_stable", "claim_cluster"] {
        if p.step(check).is_some() {
            assert!(
                enable.depends_on.iter().any(|d| d == check),
                "{:?}",
                enable.depends_on
            );
        }
    }
    assert!(
        enable
            .depends_on
            .iter()
            .any(|d| d.starts_with("check_smd_archive")),
        "the SMD archive is checked before FSR is paid for: {:?}",
        enable.depends_on
    );
    // Turned off even when the restore fails: a cleanup after the enable.
    let disable = step(&p, "fast_snapshot_restore:disable:full-cluster");
    assert!(disable.cleanup);
    assert!(disable.depends_on.contains(&enable.id));
}

#[test]
fn review_pairs_on_before_the_plan_are_waited_for_and_never_turned_off() {
    let policy = fsr_full_cluster();
    let mut w = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    // A lifecycle rule keeps FSR on for one of the set's snapshots, in its volume's zone.
    let (zone, id) = {
        let asdr_planner::params::Params::FastSnapshotRestore(e) =
            &step(&p, "fast_snapshot_restore:enable:full-cluster").params
        else {
            unreachable!()
        };
        let (z, ids) = e.snapshots.iter().next().unwrap();
        (z.clone(), ids[0].clone())
    };
    w.snapshots
        .iter_mut()
        .find(|s| s.id == id)
        .unwrap()
        .fast_restore
        .insert(zone.clone(), "enabled".into());
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())).unwrap();
    let by_zone = |s: &str| match &step(&p, s).params {
        asdr_planner::params::Params::FastSnapshotRestore(f) => f.snapshots.clone(),
        _ => unreachable!(),
    };
    // Waited for with the others; turned off with the others, but not it.
    assert!(by_zone("fast_snapshot_restore:enable:full-cluster")[&zone].contains(&id));
    let off = by_zone("fast_snapshot_restore:disable:full-cluster");
    assert!(
        !off.get(&zone).is_some_and(|ids| ids.contains(&id)),
        "{off:?}"
    );
    assert_eq!(off.values().map(Vec::len).sum::<usize>(), 8);
    // A plan that turns it off anyway is refused.
    let mut tampered = p.clone();
    for s in &mut tampered.steps {
        if let asdr_planner::params::Params::FastSnapshotRestore(f) = &mut s.params
            && !f.enable
        {
            f.snapshots
                .entry(zone.clone())
                .or_default()
                .push(id.clone());
        }
    }
    let v = asdr_planner::verify(&policy, &w, &tampered);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("which was on before this plan")),
        "{v:?}"
    );
    assert!(asdr_planner::verify(&policy, &w, &p).is_empty());
}

#[test]
fn review_a_restore_into_another_region_enables_fsr_there_for_the_copies_it_restores() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east}\n  max_nodes_at_once: 1 ",
        )
        .edit(
            "  - name: full-cluster\n",
            "  - name: dr-west\n    scope: cluster\n    source: latest-backup\n    region: us-west-2\n    volume: {fast_snapshot_restore: true}\n    target:\n      subnets: {us-west-2a: subnet-w1, us-west-2b: subnet-w2}\n      private_ips: {a1: 10.1.1.11, b1: 10.1.2.11, a2: 10.1.1.12}\n      security_groups: [sg-west]\n      ami: ami-0west\n  - name: full-cluster\n",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(2);
    spec.sets = 3;
    let mut w = world_for(&policy, &spec);
    asdr_planner::testkit::copy_sets(&mut w, &policy, 0, 2, false);
    let p = plan(&policy, &w, NOW, &Operation::Restore("dr-west".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let enable = step(&p, "fast_snapshot_restore:enable:dr-west");
    assert_eq!(enable.region.as_deref(), Some("us-west-2"));
    let asdr_planner::params::Params::FastSnapshotRestore(e) = &enable.params else {
        unreachable!()
    };
    let west: std::collections::HashSet<&str> = w
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == Some("us-west-2"))
        .map(|s| s.id.as_str())
        .collect();
    assert!(
        e.snapshots.keys().all(|z| z.starts_with("us-west-2")),
        "{:?}",
        e.snapshots
    );
    assert!(
        e.snapshots
            .values()
            .flatten()
            .all(|id| west.contains(id.as_str()))
    );
    assert!(
        step(&p, "fast_snapshot_restore:disable:dr-west")
            .region
            .as_deref()
            == Some("us-west-2")
    );
}

#[test]
fn review_a_restore_without_a_set_is_not_estimated_and_times_are_never_rounded_into_an_objective() {
    let policy = ExamplePolicy::prod_east()
        .append("  - name: too-old\n    scope: node\n    nodes: [a1]\n    source: before:2020-01-01T00:00:00Z\n    accept_zombie_records: true\n    volume: {initialization_rate: 300}\n    rto: 10m\n")
        .policy();
    let w = a1_lost(&policy);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let r = s.restores.iter().find(|r| r.name == "too-old").unwrap();
    assert_eq!(r.rto.total_seconds, None, "{:?}", r.rto);
    assert!(
        s.problems.iter().any(|p| p.contains("restore `too-old`")
            && p.contains("no complete set to restore from: nothing to estimate")),
        "{:?}",
        s.problems
    );
    assert_eq!(asdr_planner::rto::span(5944), "1h 39m 4s");
    assert_eq!(asdr_planner::rto::span(3600), "1h");
    assert_eq!(asdr_planner::rto::span(0), "0s");
}

fn keep_newest() -> Policy {
    ExamplePolicy::prod_east()
        .edit("  every: 24h ", "  fast_restore: newest\n  every: 24h ")
        .policy()
}

fn fsr_pairs(p: &Plan, id: &str) -> std::collections::BTreeMap<String, Vec<String>> {
    match &step(p, id).params {
        asdr_planner::params::Params::FastSnapshotRestore(f) => f.snapshots.clone(),
        _ => unreachable!(),
    }
}

#[test]
fn backup_fast_restore_keeps_fsr_on_the_newest_set_only_and_a_replacement_then_waits_for_nothing() {
    let policy = keep_newest();
    // Within the RPO: no new set; the newest complete set is turned on, each snapshot in its
    // node's zone, without waiting an hour per TiB.
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(2);
    spec.sets = 2;
    let mut w = world_for(&policy, &spec);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .unwrap()
        .clone();
    // An older set left on (an interrupted restore): turned off first.
    let older = w
        .snapshots
        .iter_mut()
        .find(|s| s.tags.get("asdr:set") != Some(&newest))
        .unwrap();
    older
        .fast_restore
        .insert("us-east-1a".into(), "enabled".into());
    let older_id = older.id.clone();
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let enable_id = format!("fast_snapshot_restore:enable:{newest}");
    let on = fsr_pairs(&p, &enable_id);
    assert_eq!(on.values().map(Vec::len).sum::<usize>(), 9, "{on:?}");
    for (zone, ids) in &on {
        for id in ids {
            let s = w.snapshots.iter().find(|s| &s.id == id).unwrap();
            assert_eq!(s.tags["asdr:set"], newest);
            let node = policy.node(&s.tags["asdr:node"]).unwrap();
            assert_eq!(&node.availability_zone, zone);
        }
    }
    let off = fsr_pairs(&p, "fast_snapshot_restore:disable:older-sets");
    assert_eq!(off["us-east-1a"], vec![older_id]);
    assert!(
        step(&p, &enable_id)
            .depends_on
            .contains(&"fast_snapshot_restore:disable:older-sets".to_string())
    );
    assert!(asdr_planner::verify(&policy, &w, &p).is_empty());
    // Once on, a node replacement from the newest set has nothing to wait for, and reads whole.
    for s in w
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set") == Some(&newest))
    {
        let zone = policy
            .node(&s.tags["asdr:node"])
            .unwrap()
            .availability_zone
            .clone();
        s.fast_restore.insert(zone, "enabled".into());
    }
    for s in w.snapshots.iter_mut() {
        if s.tags.get("asdr:set") != Some(&newest) {
            s.fast_restore.clear();
        }
    }
    let again = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        !again
            .steps
            .iter()
            .any(|s| s.kind() == asdr_planner::StepKind::FastSnapshotRestore)
    );
    let st = asdr_planner::status::status(&policy, &w, NOW);
    let r = st
        .restores
        .iter()
        .find(|r| r.name == "full-cluster")
        .unwrap();
    let cold = r
        .rto
        .phases
        .iter()
        .find(|x| x.phase == "cold-start")
        .unwrap();
    assert_eq!(cold.seconds, Some(4096), "{cold:?}");
    let volumes = r.rto.phases.iter().find(|x| x.phase == "volumes").unwrap();
    assert!(
        volumes.basis.contains("already enabled"),
        "{}",
        volumes.basis
    );
    // A foreign snapshot slipped into the plan is refused.
    let mut tampered = p.clone();
    for s in &mut tampered.steps {
        if let asdr_planner::params::Params::FastSnapshotRestore(f) = &mut s.params {
            f.snapshots
                .entry("us-east-1a".into())
                .or_default()
                .push("snap-0ther".into());
        }
    }
    let v = asdr_planner::verify(&policy, &world_for(&policy, &spec), &tampered);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("snap-0ther")),
        "{v:?}"
    );
}

#[test]
fn backup_fast_restore_leaves_the_newest_alone_while_a_new_set_is_being_made() {
    let policy = keep_newest();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(25);
    let w = world_for(&policy, &spec);
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == asdr_planner::StepKind::MarkSetComplete)
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| s.id.starts_with("fast_snapshot_restore:enable:"))
    );
}

#[test]
fn review2_a_rate_wins_over_pairs_kept_on_and_the_quota_counts_the_regions_pairs() {
    let policy = ExamplePolicy::prod_east()
        .edit("  every: 24h ", "  fast_restore: newest\n  every: 24h ")
        .policy();
    let mut w = a1_lost(&policy);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .unwrap()
        .clone();
    for s in w
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set") == Some(&newest))
    {
        let zone = policy
            .node(&s.tags["asdr:node"])
            .unwrap()
            .availability_zone
            .clone();
        s.fast_restore.insert(zone, "enabled".into());
    }
    // a1-from-backup declares 300 MiB/s: EBS initialises at the rate, FSR or not.
    let p = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap();
    let rto = p.rto.as_ref().unwrap();
    assert_eq!(phase(rto, "cold-start"), Some(1707), "{rto:?}");
    let st = asdr_planner::status::status(&policy, &w, NOW);
    let r = st
        .restores
        .iter()
        .find(|r| r.name == "a1-from-backup")
        .unwrap();
    assert_eq!(phase(&r.rto, "cold-start"), Some(1707));
    // status lists the pairs on, the newest set's kept by the policy.
    assert_eq!(
        st.fast_restore_on,
        vec![asdr_planner::fast_restore::SetOn {
            set: newest.clone(),
            pairs: 9,
            kept: true
        }]
    );
    // A restore of an older set with FSR: its 3 snapshots and the 9 already on make 12 in the
    // region, past the default quota of 5.
    let older = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .filter(|s| **s != newest)
        .max()
        .unwrap()
        .clone();
    let policy = ExamplePolicy::prod_east()
        .edit("  every: 24h ", "  fast_restore: newest\n  every: 24h ")
        .append(&format!("  - name: a1-older\n    scope: node\n    nodes: [a1]\n    source: set:{older}\n    accept_zombie_records: true\n    volume: {{fast_snapshot_restore: true}}\n"))
        .policy();
    let p = plan(&policy, &w, NOW, &Operation::Restore("a1-older".into())).unwrap();
    assert!(
        p.warnings.iter().any(|x| x.rule == "limit"
            && x.message.contains(
                "on 12 snapshots in the region (3 its own, 9 of the cluster's already on)"
            )),
        "{:?}",
        p.warnings
    );
}

#[test]
fn review2_a_backup_making_a_new_set_never_turns_off_the_newest_complete_one() {
    let policy = keep_newest();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(25);
    spec.sets = 2;
    let mut w = world_for(&policy, &spec);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .unwrap()
        .clone();
    for s in w.snapshots.iter_mut() {
        let zone = policy
            .node(&s.tags["asdr:node"])
            .unwrap()
            .availability_zone
            .clone();
        s.fast_restore.insert(zone, "enabled".into());
    }
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == asdr_planner::StepKind::MarkSetComplete)
    );
    let off = fsr_pairs(&p, "fast_snapshot_restore:disable:older-sets");
    for id in off.values().flatten() {
        let s = w.snapshots.iter().find(|s| &s.id == id).unwrap();
        assert_ne!(
            s.tags["asdr:set"], newest,
            "the newest complete set is turned off"
        );
    }
    assert_eq!(off.values().map(Vec::len).sum::<usize>(), 9);
}

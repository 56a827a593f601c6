//! Invariants over generated policies and worlds: whatever the cluster and whatever has failed,
//! a plan is a DAG whose every dependency names a step, listed in an order that respects its
//! edges, with unique ids, and the same inputs give the same bytes.

use std::collections::HashMap;

use asdr_planner::graph::StepGraph;
use asdr_planner::testkit::{CONFIG_TEMPLATE, Failure, WorldSpec, policy_yaml, world_for};
use asdr_planner::{Operation, PlanError, StepKind, plan};
use proptest::prelude::*;
use time::macros::datetime;

fn policy(
    nodes: usize,
    devices: usize,
    consistency: &str,
    edition: &str,
    retain: u32,
    lock_days: Option<u32>,
) -> asdr_specs::Policy {
    let dir = std::env::temp_dir().join(format!("asdr-prop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    let mut text = policy_yaml(nodes, devices, consistency, edition, retain);
    if let Some(days) = lock_days {
        text = text.replace(
            "  max_nodes_at_once: 1\n",
            &format!("  max_nodes_at_once: 1\n  lock: {{mode: governance, duration: {days}d}}\n"),
        );
    }
    asdr_specs::parse("gen.yaml", &text, &dir).unwrap_or_else(|d| panic!("{d}"))
}

fn failure() -> impl Strategy<Value = Option<Failure>> {
    prop_oneof![
        3 => Just(None),
        1 => Just(Some(Failure::Terminated)),
        1 => any::<bool>().prop_map(|dot| Some(Failure::Unreachable { delete_on_termination: dot })),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn plans_are_acyclic_complete_ordered_and_deterministic(
        nodes in 1usize..6,
        devices in 1usize..4,
        consistency in prop_oneof![Just("multi-volume"), Just("quiesce"), Just("stop-node")],
        sets in 0usize..6,
        newest_age_h in 1i64..60,
        retain in 1u32..5,
        pending in any::<bool>(),
        failures in proptest::collection::vec(failure(), 1..3),
        op in 0usize..5,
        // Per set, oldest first: 0 unlocked, 1 locked for days yet, 2 a lock that expired.
        locks in proptest::collection::vec(0u8..3, 6),
        lock_days in prop_oneof![2 => Just(None), 1 => (2u32..9).prop_map(Some)],
    ) {
        // Replication factor 2: quiesce needs more nodes than copies (validation refuses it).
        let consistency = if consistency == "quiesce" && nodes <= 2 { "stop-node" } else { consistency };
        let policy = policy(nodes, devices, consistency, "enterprise", retain, lock_days);
        let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
        spec.sets = sets;
        spec.newest_set_age = time::Duration::hours(newest_age_h);
        spec.newest_set_pending = pending && sets > 0;
        spec.failures = failures.iter().enumerate().filter_map(|(i, f)| f.map(|f| (format!("n{}", i % nodes), f))).collect();
        let mut world = world_for(&policy, &spec);
        // Locked sets (R20): drawn per set, whatever else the world holds.
        let mut set_ids: Vec<String> = world.snapshots.iter().filter_map(|s| s.tags.get("asdr:set").cloned()).collect();
        set_ids.sort();
        set_ids.dedup();
        for (set, how) in set_ids.iter().zip(&locks) {
            let expires = match how {
                1 => spec.now + time::Duration::days(3),
                2 => spec.now - time::Duration::hours(1),
                _ => continue,
            };
            for s in world.snapshots.iter_mut().filter(|s| s.tags.get("asdr:set") == Some(set)) {
                s.lock = Some(asdr_planner::world::SnapshotLock { mode: asdr_specs::LockMode::Governance, expires, cool_off_until: None });
            }
        }
        let op = match op {
            0 => Operation::Backup,
            1 => Operation::Restore("replace-n0".into()),
            2 => Operation::Restore("refill-n0".into()),
            3 => Operation::Restore("n0-from-backup".into()),
            _ => Operation::Restore("full-cluster".into()),
        };
        let now = spec.now;
        match plan(&policy, &world, now, &op) {
            // A refusal is a legitimate answer (a rule said no); it must name what it concerns.
            Err(PlanError::Refused(d)) => prop_assert!(!d.message.is_empty() && d.span.line > 0),
            Err(other) => prop_assert!(false, "unexpected error: {other}"),
            Ok(p) => {
                let graph = StepGraph::new(&p.steps);
                prop_assert!(graph.is_ok(), "{:?}", graph.err());
                let pos: HashMap<&str, usize> = p.steps.iter().enumerate().map(|(i, s)| (s.id.as_str(), i)).collect();
                prop_assert_eq!(pos.len(), p.steps.len(), "step ids are unique");
                for (i, s) in p.steps.iter().enumerate() {
                    for d in &s.depends_on {
                        prop_assert!(pos.contains_key(d.as_str()), "{} depends on missing {}", s.id, d);
                        prop_assert!(pos[d.as_str()] < i, "{} is listed before its dependency {}", s.id, d);
                    }
                    // R11 everywhere: bringing a node back never waits for snapshot completion.
                    if s.kind().brings_node_back() && s.cleanup {
                        prop_assert!(s.depends_on.iter().all(|d| !d.starts_with("wait_snapshot")));
                    }
                    // A restore never deletes data (R7); only retention deletes snapshots.
                    if matches!(op, Operation::Restore(_)) {
                        prop_assert!(s.kind() != StepKind::DeleteSnapshot);
                        prop_assert!(s.kind() != StepKind::LockSnapshots);
                    }
                    // R20: no snapshot of a set with a lock that holds, or under the policy's
                    // lock, is deleted.
                    if s.kind() == StepKind::DeleteSnapshot {
                        let id = s.params.snapshot_id().unwrap();
                        let snap = world.snapshots.iter().find(|x| x.id == id).unwrap();
                        let set = snap.tags.get("asdr:set").unwrap();
                        prop_assert!(
                            !world.snapshots.iter().any(|x| x.tags.get("asdr:set") == Some(set) && x.lock.is_some_and(|l| l.holds(now))),
                            "{} of locked set {} deleted", id, set
                        );
                        if let (Some(days), Some(t)) = (lock_days, asdr_planner::set_time(set)) {
                            prop_assert!(
                                t + time::Duration::days(i64::from(days)) <= now
                                    || !snap.tags.contains_key("asdr:complete"),
                                "{} of set {} under the policy's lock deleted", id, set
                            );
                        }
                    }
                }
                let again = plan(&policy, &world, now, &op).unwrap();
                prop_assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&again).unwrap());
                prop_assert_eq!(p.summary.steps, p.steps.len());
            }
        }
    }
}

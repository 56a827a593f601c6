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
) -> asdr_specs::Policy {
    let dir = std::env::temp_dir().join(format!("asdr-prop-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    asdr_specs::parse(
        "gen.yaml",
        &policy_yaml(nodes, devices, consistency, edition, retain),
        &dir,
    )
    .unwrap_or_else(|d| panic!("{d}"))
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
    ) {
        // Replication factor 2: quiesce needs more nodes than copies (validation refuses it).
        let consistency = if consistency == "quiesce" && nodes <= 2 { "stop-node" } else { consistency };
        let policy = policy(nodes, devices, consistency, "enterprise", retain);
        let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
        spec.sets = sets;
        spec.newest_set_age = time::Duration::hours(newest_age_h);
        spec.newest_set_pending = pending && sets > 0;
        spec.failures = failures.iter().enumerate().filter_map(|(i, f)| f.map(|f| (format!("n{}", i % nodes), f))).collect();
        let world = world_for(&policy, &spec);
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
                    }
                }
                let again = plan(&policy, &world, now, &op).unwrap();
                prop_assert_eq!(serde_json::to_string(&p).unwrap(), serde_json::to_string(&again).unwrap());
                prop_assert_eq!(p.summary.steps, p.steps.len());
            }
        }
    }
}

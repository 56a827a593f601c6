//! Aerospike as production runs it (Enterprise): which starts read the devices (R17).
//!
//! Enterprise restarts warm after a clean shutdown — it reattaches the index in shared memory and
//! does not read the namespace's devices — so a start that follows a volume swap or an SMD
//! restore on the node's own instance must be a cold start, or the restored data is ignored.

use crate::edit;
use asdr_planner::params::{Params, StartKind};
use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, Step, StepKind, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn world(policy: &Policy, f: impl FnOnce(&mut WorldSpec)) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    f(&mut spec);
    world_for(policy, &spec)
}

fn run(policy: &Policy, w: &World, op: Operation) -> Plan {
    plan(policy, w, NOW, &op).unwrap_or_else(|e| panic!("{e}"))
}

fn starts(p: &Plan) -> Vec<(&str, Option<StartKind>, &str)> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::StartNode(n) => Some((
                s.node.as_deref().unwrap_or_default(),
                n.start,
                n.command.as_deref().unwrap_or_default(),
            )),
            _ => None,
        })
        .collect()
}

fn step_mut<'p>(p: &'p mut Plan, id: &str) -> &'p mut Step {
    p.steps.iter_mut().find(|s| s.id == id).unwrap()
}

fn r17(policy: &Policy, w: &World, p: &Plan) -> Vec<String> {
    verify(policy, w, p)
        .into_iter()
        .filter(|v| v.rule == "R17")
        .map(|v| v.to_string())
        .collect()
}

#[test]
fn r17_a_full_cluster_restore_on_enterprise_cold_starts_every_node_and_a_warm_start_is_refused() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy, |_| {});
    let p = run(&policy, &w, Operation::Restore("full-cluster".into()));
    let s = starts(&p);
    assert_eq!(s.len(), 3);
    for (node, kind, command) in &s {
        assert_eq!(*kind, Some(StartKind::Cold), "{node}");
        assert_eq!(*command, "asd-coldstart", "{node}");
    }
    assert!(r17(&policy, &w, &p).is_empty());

    // The defect: the plain (warm) start after the swap. The verifier refuses it however it is
    // dressed: the service's start command, or a start that says it is warm.
    let mut warm_command = p.clone();
    edit(step_mut(&mut warm_command, "start_node:a1"), |v| {
        v["command"] = "systemctl start aerospike".into()
    });
    let v = r17(&policy, &w, &warm_command);
    assert!(
        v.iter()
            .any(|m| m.contains("runs the plain start command after a swap")),
        "{v:?}"
    );
    let mut said_warm = p.clone();
    edit(step_mut(&mut said_warm, "start_node:b1"), |v| {
        v["start"] = "warm".into();
        v["command"] = "systemctl start aerospike".into();
    });
    let v = r17(&policy, &w, &said_warm);
    assert!(v.iter().any(|m| m.contains("it must be cold")), "{v:?}");
    // A start that stops waiting for its node's attaches, or names no node, is not excused: it
    // would start warm on the old volumes.
    let mut early = p.clone();
    {
        let s = step_mut(&mut early, "start_node:a1");
        s.depends_on.retain(|d| d.starts_with("stop_node"));
    }
    edit(step_mut(&mut early, "start_node:a1"), |v| {
        v["start"] = "warm".into();
        v["command"] = "systemctl start aerospike".into();
    });
    let v = r17(&policy, &w, &early);
    assert!(
        v.iter()
            .any(|m| m.contains("before its volumes are attached")),
        "{v:?}"
    );
    let mut nameless = p.clone();
    step_mut(&mut nameless, "start_node:a1").node = None;
    assert!(!r17(&policy, &w, &nameless).is_empty());
    let mut unsaid = p.clone();
    edit(step_mut(&mut unsaid, "start_node:a2"), |v| {
        v.as_object_mut().unwrap().remove("start");
    });
    assert!(!r17(&policy, &w, &unsaid).is_empty());
}

#[test]
fn r17_an_in_place_node_restore_from_a_set_cold_starts_the_node() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy, |_| {});
    let p = run(&policy, &w, Operation::Restore("a1-from-backup".into()));
    assert_eq!(
        starts(&p),
        vec![("a1", Some(StartKind::Cold), "asd-coldstart")]
    );
    assert!(r17(&policy, &w, &p).is_empty());
}

#[test]
fn r17_a_replacement_instance_starts_cold_by_itself_and_a_stop_node_backup_restarts_warm() {
    let policy = ExamplePolicy::prod_east().policy();
    let w = world(&policy, |s| {
        s.failures.push(("a1".into(), Failure::Terminated));
    });
    let p = run(&policy, &w, Operation::Restore("replace-a1".into()));
    assert_eq!(
        starts(&p),
        vec![(
            "a1",
            Some(StartKind::NewInstance),
            "systemctl start aerospike"
        )]
    );
    assert!(r17(&policy, &w, &p).is_empty());

    // A stop-node backup changes nothing under the node: reattaching the index is right, and
    // saying it is cold would be a lie the verifier catches.
    let policy = ExamplePolicy::prod_east()
        .edits(&[
            ("consistency: multi-volume", "consistency: stop-node"),
            (
                "max_nodes_at_once: 1",
                "max_nodes_at_once: 1\n  accept_zombie_records: true",
            ),
        ])
        .policy();
    let w = world(&policy, |s| s.newest_set_age = time::Duration::days(2));
    let p = run(&policy, &w, Operation::Backup);
    let s = starts(&p);
    assert_eq!(s.len(), 3);
    assert!(
        s.iter()
            .all(|(_, k, c)| *k == Some(StartKind::Warm) && *c == "systemctl start aerospike"),
        "{s:?}"
    );
    assert!(r17(&policy, &w, &p).is_empty());
    let mut lie = p.clone();
    let id = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::StartNode)
        .unwrap()
        .id
        .clone();
    edit(step_mut(&mut lie, &id), |v| v["start"] = "cold".into());
    assert!(!r17(&policy, &w, &lie).is_empty());
}

#[test]
fn r17_community_always_starts_cold_with_its_one_start_command() {
    let policy = ExamplePolicy::community().policy();
    let w = world(&policy, |_| {});
    let p = run(&policy, &w, Operation::Restore("full-cluster".into()));
    let s = starts(&p);
    assert!(!s.is_empty());
    for (node, kind, command) in &s {
        assert_eq!(*kind, Some(StartKind::Community), "{node}");
        assert_eq!(*command, "systemctl start aerospike", "{node}");
    }
    assert!(r17(&policy, &w, &p).is_empty());
}

#[test]
fn r17_enterprise_without_a_cold_start_command_is_refused_and_its_plan_would_be_too() {
    let text = ExamplePolicy::prod_east()
        .edits(&[("    cold_start: asd-coldstart", "   ")])
        .parse();
    let d = text.expect_err("an Enterprise policy with in-place restores needs cold_start");
    let first = &d.items[0];
    assert_eq!(first.rule, Some("R17"));
    assert!(
        first.message.contains("`a1-from-backup`")
            && first.message.contains("`full-cluster`")
            && !first.message.contains("`a1-refill`"),
        "{}",
        first.message
    );
    // Validation is the first guard; were it bypassed, the verifier refuses the plan.
    let mut policy = ExamplePolicy::prod_east().policy();
    policy.cluster.service_cold_start = None;
    let w = world(&policy, |_| {});
    match plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())) {
        Err(asdr_planner::PlanError::Unsafe(v)) => assert!(
            v.iter().any(|x| x.rule == "R17"
                && x.to_string()
                    .contains("runs the plain start command after a swap")),
            "{v:?}"
        ),
        other => panic!("expected the verifier's refusal, got {other:?}"),
    }
    // The same command for both is no cold start at all.
    let same = ExamplePolicy::prod_east()
        .edits(&[(
            "cold_start: asd-coldstart",
            "cold_start: systemctl start aerospike",
        )])
        .parse()
        .expect_err("cold_start equal to start");
    assert_eq!(same.items[0].rule, Some("R17"));
}

/// R1: under `consistency: quiesce` a node's snapshots wait for its quiesce to have drained
/// (`wait_quiesce_drained`: its client writes stood still), not only for the quiesce; the
/// verifier refuses a plan that snapshots straight after the quiesce.
#[test]
fn r1_a_quiesced_node_is_snapshotted_only_after_its_client_writes_stopped() {
    let policy = ExamplePolicy::prod_east()
        .edit("consistency: multi-volume", "consistency: quiesce")
        .policy();
    let w = world(&policy, |s| s.newest_set_age = time::Duration::hours(30));
    let p = run(&policy, &w, Operation::Backup);
    let drains: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::WaitQuiesceDrained)
        .collect();
    assert_eq!(drains.len(), policy.cluster.nodes.len());
    for d in &drains {
        let node = d.node.as_deref().unwrap();
        assert_eq!(d.depends_on, vec![format!("quiesce:{node}")]);
        for s in p.steps.iter().filter(|s| {
            matches!(s.kind(), StepKind::Snapshot | StepKind::SnapshotInstance)
                && s.node.as_deref() == Some(node)
        }) {
            assert_eq!(s.depends_on, vec![d.id.clone()], "{}", s.id);
        }
    }
    // The defect's plan: snapshots straight after the quiesce.
    let mut bad = p.clone();
    let ids: Vec<String> = drains.iter().map(|d| d.id.clone()).collect();
    bad.steps.retain(|s| !ids.contains(&s.id));
    for s in &mut bad.steps {
        for d in &mut s.depends_on {
            if let Some(node) = d.strip_prefix("wait_quiesce_drained:") {
                *d = format!("quiesce:{node}");
            }
        }
    }
    let v = verify(&policy, &w, &bad);
    assert_eq!(
        v.iter()
            .filter(|x| x.rule == "R1" && x.message.contains("wait_quiesce_drained"))
            .count(),
        p.steps
            .iter()
            .filter(|s| matches!(s.kind(), StepKind::Snapshot | StepKind::SnapshotInstance))
            .count(),
        "{v:?}"
    );
    // Stop-node and multi-volume backups have no quiesce to drain.
    let mv = ExamplePolicy::prod_east().policy();
    let p = run(
        &mv,
        &world(&mv, |s| s.newest_set_age = time::Duration::hours(30)),
        Operation::Backup,
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| s.kind() == StepKind::WaitQuiesceDrained)
    );
}

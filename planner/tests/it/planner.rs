//! The planner's acceptance: each test builds a world with the testkit generator (or takes an
//! example policy), plans, and checks the step graph. Rule ids in names say which rule is proven.

use crate::params;
use asdr_planner::testkit::ExamplePolicy;
use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};

use asdr_planner::testkit::{CONFIG_TEMPLATE, Failure, WorldSpec, policy_yaml, world_for};
use asdr_planner::world::{SnapshotState, World};
use asdr_planner::{Operation, Plan, PlanError, Step, StepKind, plan};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

fn example_policy() -> Policy {
    ExamplePolicy::prod_east().policy()
}

/// The example policy with `from` replaced by `to` (one edit, checked to apply).
fn example_policy_with(from: &str, to: &str) -> Result<Policy, asdr_specs::Diagnostics> {
    ExamplePolicy::prod_east().edit(from, to).parse()
}

fn generated_policy(nodes: usize, devices: usize, consistency: &str, edition: &str) -> Policy {
    generated_policy_text(&policy_yaml(nodes, devices, consistency, edition, 7))
}

fn generated_policy_text(text: &str) -> Policy {
    let dir = std::env::temp_dir().join(format!("asdr-planner-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    asdr_specs::parse("gen.yaml", text, &dir).unwrap_or_else(|d| panic!("{d}"))
}

fn backup_due(policy: &Policy) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(30);
    world_for(policy, &spec)
}

fn restore(policy: &Policy, world: &World, name: &str) -> Result<Plan, PlanError> {
    plan(policy, world, NOW, &Operation::Restore(name.into()))
}

fn steps_of(plan: &Plan, kind: StepKind) -> Vec<&Step> {
    plan.steps.iter().filter(|s| s.kind() == kind).collect()
}

/// Every step `id` transitively depends on.
fn ancestors(plan: &Plan, id: &str) -> HashSet<String> {
    let by_id: HashMap<&str, &Step> = plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    let mut seen = HashSet::new();
    let mut stack = vec![id.to_string()];
    while let Some(s) = stack.pop() {
        for d in &by_id[s.as_str()].depends_on {
            if seen.insert(d.clone()) {
                stack.push(d.clone());
            }
        }
    }
    seen
}

fn before(plan: &Plan, first: &str, then: &str) -> bool {
    ancestors(plan, then).contains(first)
}

fn refusal(result: Result<Plan, PlanError>) -> asdr_specs::Diagnostic {
    match result {
        Err(PlanError::Refused(d)) => d,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[test]
fn multi_volume_backup_snapshots_each_instance_once_and_marks_the_set_last() {
    let policy = example_policy();
    let world = backup_due(&policy);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert_eq!(
        p.steps[0].kind(),
        StepKind::CheckClusterStable,
        "check_cluster_stable comes first (R14)"
    );
    let snaps = steps_of(&p, StepKind::SnapshotInstance);
    let nodes: BTreeSet<_> = snaps.iter().map(|s| s.node.clone().unwrap()).collect();
    assert_eq!(snaps.len(), 3);
    assert_eq!(nodes.len(), 3, "one snapshot_instance per node");
    for s in &snaps {
        assert_eq!(
            s.depends_on,
            vec!["check_cluster_stable"],
            "nodes snapshot in parallel: {}",
            s.id
        );
        assert_eq!(
            params(s)["volumes"].as_array().unwrap().len(),
            3,
            "all data volumes in one CreateSnapshots call (R1)"
        );
    }
    assert_eq!(steps_of(&p, StepKind::CopySmd).len(), 1, "copy_smd once");
    assert!(steps_of(&p, StepKind::Snapshot).is_empty());
    let mark = steps_of(&p, StepKind::MarkSetComplete);
    assert_eq!(mark.len(), 1);
    let mark_deps = ancestors(&p, &mark[0].id);
    let waits = steps_of(&p, StepKind::WaitSnapshot);
    assert_eq!(waits.len(), 9, "a wait per data volume");
    for w in waits
        .iter()
        .map(|s| &s.id)
        .chain(steps_of(&p, StepKind::CopySmd).iter().map(|s| &s.id))
    {
        assert!(
            mark_deps.contains(w),
            "mark_set_complete waits for {w} (R2)"
        );
    }
    assert!(
        steps_of(&p, StepKind::Quiesce).is_empty() && steps_of(&p, StepKind::StopNode).is_empty()
    );
}

/// Pairs of nodes whose write-stop windows can overlap in some order the graph allows: neither
/// node's window closes (unquiesce/start) before the other's opens.
fn max_nodes_out_in_any_order(p: &Plan, open: StepKind, close: StepKind) -> usize {
    let nodes: Vec<String> = steps_of(p, open)
        .iter()
        .map(|s| s.node.clone().unwrap())
        .collect();
    let id = |k: StepKind, n: &str| format!("{k}:{n}");
    let ordered = |a: &str, b: &str| {
        before(p, &id(close, a), &id(open, b)) || before(p, &id(close, b), &id(open, a))
    };
    // Largest set of nodes with pairwise overlappable windows (brute force: few nodes).
    let n = nodes.len();
    let mut best = 0;
    for mask in 1u32..(1 << n) {
        let members: Vec<usize> = (0..n).filter(|i| mask & (1 << i) != 0).collect();
        let clique = members.iter().all(|&a| {
            members
                .iter()
                .all(|&b| a == b || !ordered(&nodes[a], &nodes[b]))
        });
        if clique {
            best = best.max(members.len());
        }
    }
    best
}

#[test]
fn r8_quiesce_backup_never_has_more_than_max_nodes_at_once_quiesced() {
    for (max, rf) in [(1, 2), (2, 3)] {
        let text = policy_yaml(5, 2, "quiesce", "enterprise", 7)
            .replace(
                "replication_factor: 2",
                &format!("replication_factor: {rf}"),
            )
            .replace("max_nodes_at_once: 1", &format!("max_nodes_at_once: {max}"));
        let policy = generated_policy_text(&text);
        let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
        assert_eq!(steps_of(&p, StepKind::Quiesce).len(), 5);
        assert_eq!(
            max_nodes_out_in_any_order(&p, StepKind::Quiesce, StepKind::Unquiesce),
            max,
            "max_nodes_at_once {max}"
        );
    }
}

#[test]
fn r11_quiesce_backup_unquiesces_after_the_snapshot_calls_not_their_completion() {
    let policy = generated_policy(3, 2, "quiesce", "enterprise");
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    for node in ["n0", "n1", "n2"] {
        let q = format!("quiesce:{node}");
        let u = p.step(&format!("unquiesce:{node}")).unwrap();
        assert!(u.cleanup, "unquiesce always runs");
        let snaps: Vec<&Step> = steps_of(&p, StepKind::Snapshot)
            .into_iter()
            .filter(|s| s.node.as_deref() == Some(node))
            .collect();
        assert_eq!(snaps.len(), 2, "one CreateSnapshot per volume");
        for s in &snaps {
            assert!(before(&p, &q, &s.id), "snapshot after quiesce");
            assert!(u.depends_on.contains(&s.id), "unquiesce after {}", s.id);
        }
        let u_anc = ancestors(&p, &u.id);
        assert!(
            u_anc.iter().all(|a| !a.starts_with("wait_snapshot")),
            "unquiesce must not wait for completion (R11): {u_anc:?}"
        );
        assert!(before(&p, &u.id, &format!("wait_cluster_stable:{node}")));
    }
}

#[test]
fn stop_node_backup_stops_snapshots_starts_and_waits_in_a_rolling_order() {
    let policy = generated_policy(4, 2, "stop-node", "community");
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    assert_eq!(
        max_nodes_out_in_any_order(&p, StepKind::StopNode, StepKind::StartNode),
        1
    );
    for node in ["n0", "n1", "n2", "n3"] {
        let start = p.step(&format!("start_node:{node}")).unwrap();
        assert!(start.cleanup);
        assert!(
            ancestors(&p, &start.id)
                .iter()
                .all(|a| !a.starts_with("wait_snapshot")),
            "R11"
        );
        assert!(before(
            &p,
            &format!("stop_node:{node}"),
            &format!("snapshot:{node}:/dev/sdf:{}", asdr_planner::set_id(NOW))
        ));
    }
    assert!(
        p.warnings.iter().any(|w| w.rule == "R6"),
        "stop-node cold-starts: R6 warning"
    );
}

#[test]
fn r14_backup_is_refused_while_a_node_is_down() {
    let policy = example_policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(30);
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let d = refusal(plan(
        &policy,
        &world_for(&policy, &spec),
        NOW,
        &Operation::Backup,
    ));
    assert_eq!(d.rule, Some("R14"));
    assert!(d.message.contains("a1") && d.help.unwrap().contains("--restore replace-a1"));
}

#[test]
fn r14_a_backup_not_yet_due_says_a_node_is_down_and_how_to_bring_it_back() {
    let policy = example_policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(2);
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let p = plan(&policy, &world_for(&policy, &spec), NOW, &Operation::Backup).unwrap();
    assert!(p.steps.is_empty(), "nothing is due");
    assert!(
        p.warnings.iter().any(|w| w.rule == "R14"
            && w.message.contains("node a1 is gone")
            && w.message.contains("asdr plan --restore replace-a1")),
        "{:?}",
        p.warnings
    );
    // A healthy cluster's plan says nothing of the kind.
    let healthy = plan(
        &policy,
        &world_for(
            &policy,
            &WorldSpec {
                newest_set_age: time::Duration::hours(2),
                ..WorldSpec::new(NOW)
            },
        ),
        NOW,
        &Operation::Backup,
    )
    .unwrap();
    assert!(healthy.warnings.iter().all(|w| w.rule != "R14"));
}

#[test]
fn no_backup_is_planned_while_the_newest_complete_set_is_younger_than_every() {
    let policy = example_policy();
    let p = plan(
        &policy,
        &world_for(&policy, &WorldSpec::new(NOW)),
        NOW,
        &Operation::Backup,
    )
    .unwrap();
    assert!(!p.has_changes(), "{:?}", p.steps);
}

#[test]
fn r13_retention_deletes_expired_sets_but_never_the_newest_complete_or_foreign_snapshots() {
    let policy = example_policy(); // retain: count 7, max_age 30d
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 10;
    spec.newest_set_age = time::Duration::hours(30);
    spec.foreign_snapshots = 2;
    let world = world_for(&policy, &spec);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let deleted: HashSet<String> = steps_of(&p, StepKind::DeleteSnapshot)
        .iter()
        .map(|s| params(s)["snapshot_id"].as_str().unwrap().to_string())
        .collect();
    // The new set counts: keep it and the 6 newest existing sets; 4 sets of 9 snapshots go.
    assert_eq!(deleted.len(), 4 * 9);
    for s in &world.snapshots {
        let set = s.tags.get("asdr:set");
        match set {
            None => assert!(
                !deleted.contains(s.id.as_str()),
                "foreign snapshot {} deleted",
                s.id
            ),
            Some(set) => {
                let oldest_four = [
                    "bs-20261111T030000Z",
                    "bs-20261112T030000Z",
                    "bs-20261113T030000Z",
                    "bs-20261114T030000Z",
                ];
                assert_eq!(
                    deleted.contains(s.id.as_str()),
                    oldest_four.contains(&set.as_str()),
                    "{} of {set}",
                    s.id
                );
            }
        }
    }
    for d in steps_of(&p, StepKind::DeleteSnapshot) {
        assert_eq!(
            d.depends_on,
            vec![format!("mark_set_complete:{}", asdr_planner::set_id(NOW))],
            "deletes wait for the new set"
        );
    }
}

#[test]
fn r13_retention_keeps_the_newest_complete_set_even_when_every_set_is_too_old() {
    let policy = example_policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    spec.newest_set_age = time::Duration::days(40); // all older than max_age 30d
    let world = world_for(&policy, &spec);
    let newest = world
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .unwrap()
        .clone();
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let deleted: Vec<String> = steps_of(&p, StepKind::DeleteSnapshot)
        .iter()
        .map(|s| params(s)["set"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(deleted.len(), 2 * 9);
    assert!(!deleted.contains(&newest));
}

fn failed_world(policy: &Policy, failure: Failure) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.failures = vec![("a1".into(), failure)];
    world_for(policy, &spec)
}

#[test]
fn r4_replace_a1_provisions_same_ip_az_subnet_and_reattaches_at_the_same_devices() {
    let policy = example_policy();
    let world = failed_world(&policy, Failure::Terminated);
    let p = restore(&policy, &world, "replace-a1").unwrap();
    let prov = p.step("provision_instance:a1").unwrap();
    assert_eq!(params(prov)["private_ip"], "10.0.1.11");
    assert_eq!(params(prov)["availability_zone"], "us-east-1a");
    assert_eq!(params(prov)["subnet_id"], "subnet-0aaa");
    assert_eq!(params(prov)["instance_store_volumes"], 2);
    assert!(
        steps_of(&p, StepKind::TerminateInstance).is_empty(),
        "already terminated"
    );
    assert!(
        steps_of(&p, StepKind::CreateVolume).is_empty(),
        "current volumes are reused"
    );
    let old_volumes: HashMap<String, String> = world
        .volumes
        .iter()
        .filter(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .map(|v| (v.tags["asdr:device"].clone(), v.id.clone()))
        .collect();
    let attaches = steps_of(&p, StepKind::AttachVolume);
    assert_eq!(attaches.len(), 3);
    for a in &attaches {
        let dev = params(a)["device"].as_str().unwrap().to_string();
        assert_eq!(
            params(a)["volume_id"],
            old_volumes[&dev].as_str(),
            "volume of {dev} attached at {dev}"
        );
        assert!(before(&p, "provision_instance:a1", &a.id));
        assert!(
            before(&p, &a.id, "write_config:a1"),
            "attach, then the config, then start"
        );
    }
    assert!(before(&p, "provision_instance:a1", "write_config:a1"));
    assert!(before(&p, "write_config:a1", "start_node:a1"));
    assert!(before(&p, "start_node:a1", "wait_cluster_stable:a1"));
    assert_eq!(params(p.step("wait_cluster_stable:a1").unwrap())["size"], 3);
    assert_eq!(
        params(p.step("check_cluster_stable").unwrap())["size"],
        2,
        "the two live nodes"
    );
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "R6" && w.message.contains("source: empty")),
        "R6 names the zero-zombie alternative"
    );
    assert!(
        p.warnings.iter().any(|w| w.rule == "R2"),
        "single-node restores say SMD comes from peers"
    );
    let config = p.changes.iter().find(|c| c.address == "config.a1").unwrap();
    assert!(
        config
            .diff
            .as_ref()
            .unwrap()
            .contains("+        address 10.0.1.11"),
        "rendered config shown as a diff"
    );
}

#[test]
fn r7_unreachable_node_with_delete_on_termination_is_detached_before_terminate_and_ip_waits() {
    let policy = example_policy();
    let world = failed_world(
        &policy,
        Failure::Unreachable {
            delete_on_termination: true,
        },
    );
    let p = restore(&policy, &world, "replace-a1").unwrap();
    let term = p.step("terminate_instance:a1").unwrap();
    let detaches = steps_of(&p, StepKind::DetachVolume);
    assert_eq!(detaches.len(), 3);
    for d in &detaches {
        assert!(
            term.depends_on.contains(&d.id),
            "{} before terminate (R7)",
            d.id
        );
    }
    assert!(
        p.step("provision_instance:a1")
            .unwrap()
            .depends_on
            .contains(&term.id),
        "the replacement waits for the old instance (IP reuse)"
    );
    assert_eq!(params(term)["wait_until"], "terminated");
    assert!(p.warnings.iter().any(|w| w.rule == "R7"));
    assert!(
        p.changes
            .iter()
            .any(|c| c.address == "instance.a1" && c.action == asdr_planner::Action::Replace)
    );
    assert!(
        p.steps.iter().all(|s| s.kind() != StepKind::DeleteSnapshot),
        "a restore never deletes data"
    );
}

#[test]
fn r6_restores_that_cold_start_with_data_are_refused_without_acceptance() {
    let d = example_policy_with(
        "    accept_zombie_records: true   # required for a partial restore from snapshots (R6)\n",
        "",
    )
    .unwrap_err();
    assert_eq!(d.items.len(), 1);
    assert_eq!(d.items[0].rule, Some("R6"));
    let d = example_policy_with("    accept_zombie_records: true   # a node that missed deletes brings them back on cold start (R6)\n", "").unwrap_err();
    assert_eq!(d.items[0].rule, Some("R6"));
    assert!(d.items[0].help.as_ref().unwrap().contains("source: empty"));
    let d = example_policy_with("consistency: multi-volume", "consistency: stop-node").unwrap_err();
    assert_eq!(d.items[0].rule, Some("R6"));
    // Durable deletes make the cold start safe.
    let ok = example_policy_with("durable_deletes: false", "durable_deletes: true").unwrap();
    let ok2 = asdr_specs::parse(
        "x.yaml",
        &ok.text
            .replace("consistency: multi-volume", "consistency: stop-node"),
        &examples().join("prod-east"),
    );
    assert!(ok2.is_ok(), "{:?}", ok2.err());
}

#[test]
fn r6_a1_from_backup_creates_volumes_from_the_newest_complete_set_in_a1s_az() {
    let policy = example_policy();
    let world = failed_world(&policy, Failure::Terminated);
    let p = restore(&policy, &world, "a1-from-backup").unwrap();
    let newest = world
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set"))
        .max()
        .unwrap()
        .clone();
    let creates = steps_of(&p, StepKind::CreateVolume);
    assert_eq!(creates.len(), 3);
    for c in &creates {
        let snap = world
            .snapshots
            .iter()
            .find(|s| s.id == params(c)["snapshot_id"])
            .unwrap();
        assert_eq!(snap.tags["asdr:set"], newest);
        assert_eq!(snap.tags["asdr:node"], "a1");
        assert_eq!(params(c)["availability_zone"], "us-east-1a");
        assert_eq!(params(c)["type"], "gp3");
        assert_eq!(params(c)["iops"], 16000);
        assert_eq!(params(c)["initialization_rate"], 300);
        assert!(before(
            &p,
            &c.id,
            &format!(
                "attach_volume:a1:{}",
                params(c)["tags"]["asdr:device"].as_str().unwrap()
            )
        ));
    }
    assert!(
        steps_of(&p, StepKind::WaitSnapshot).is_empty(),
        "completed snapshots need no wait"
    );
    assert!(p.warnings.iter().any(|w| w.rule == "R6"));
}

#[test]
fn r3_a_snapshot_not_yet_completed_is_waited_for_before_its_volume_is_created() {
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_pending = true;
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let base = example_policy();
    let world = world_for(&base, &spec);
    let pending = world
        .snapshots
        .iter()
        .find(|s| s.state == SnapshotState::Pending)
        .unwrap();
    let set = pending.tags["asdr:set"].clone();
    let policy = example_policy_with(
        "    source: latest-backup\n    accept_zombie_records: true",
        &format!("    source: set:{set}\n    accept_zombie_records: true"),
    )
    .unwrap();
    let p = restore(&policy, &world, "a1-from-backup").unwrap();
    for c in steps_of(&p, StepKind::CreateVolume) {
        let snap = params(c)["snapshot_id"].as_str().unwrap().to_string();
        assert!(
            c.depends_on.contains(&format!("wait_snapshot:{snap}")),
            "{} waits for {snap} (R3)",
            c.id
        );
    }
    // latest-backup skips the unfinished set.
    let p = restore(&base, &world, "a1-from-backup").unwrap();
    assert!(
        steps_of(&p, StepKind::CreateVolume)
            .iter()
            .all(|c| !params(c)["snapshot_id"].as_str().unwrap().is_empty())
    );
    assert!(steps_of(&p, StepKind::WaitSnapshot).is_empty());
}

#[test]
fn a1_refill_creates_blank_volumes_of_the_recorded_sizes_and_types() {
    let policy = example_policy();
    let world = failed_world(&policy, Failure::Terminated);
    let p = restore(&policy, &world, "a1-refill").unwrap();
    let creates = steps_of(&p, StepKind::CreateVolume);
    assert_eq!(creates.len(), 3);
    for c in creates {
        assert!(params(c)["snapshot_id"].is_null());
        assert_eq!(params(c)["size_gib"], 500);
        assert_eq!(params(c)["type"], "gp3");
    }
    assert!(
        p.warnings.iter().all(|w| w.rule != "R6"),
        "blank volumes bring no deleted records back"
    );
}

#[test]
fn a1_refill_is_refused_with_dead_partitions_or_replication_factor_one() {
    let policy = example_policy();
    let mut world = failed_world(&policy, Failure::Terminated);
    world
        .nodes
        .iter_mut()
        .find(|n| n.name == "b1")
        .unwrap()
        .dead_partitions = 12;
    let d = refusal(restore(&policy, &world, "a1-refill"));
    assert!(d.message.contains("12 dead"), "{}", d.message);
    let rf1 = example_policy_with("replication_factor: 2", "replication_factor: 1").unwrap_err();
    assert!(
        rf1.items
            .iter()
            .any(|d| d.message.contains("replication factor 1")),
        "{rf1}"
    );
}

#[test]
fn r12_full_cluster_stops_every_node_before_any_swap_and_restores_smd_before_start() {
    let policy = example_policy();
    let world = world_for(&policy, &WorldSpec::new(NOW));
    let p = restore(&policy, &world, "full-cluster").unwrap();
    let stops: Vec<String> = steps_of(&p, StepKind::StopNode)
        .iter()
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(stops.len(), 3);
    let swaps: Vec<&Step> = p
        .steps
        .iter()
        .filter(|s| matches!(s.kind(), StepKind::DetachVolume | StepKind::AttachVolume))
        .collect();
    assert_eq!(swaps.len(), 18, "3 nodes × 3 devices, detach and attach");
    for s in &swaps {
        let anc = ancestors(&p, &s.id);
        for stop in &stops {
            assert!(anc.contains(stop), "{} must come after {stop}", s.id);
        }
    }
    for node in ["a1", "b1", "a2"] {
        assert!(
            before(
                &p,
                &format!("restore_smd:{node}"),
                &format!("start_node:{node}")
            ),
            "SMD back before {node} starts (R2)"
        );
    }
    let sets: BTreeSet<&str> = steps_of(&p, StepKind::CreateVolume)
        .iter()
        .map(|c| params(c)["snapshot_id"].as_str().unwrap().to_string())
        .map(|id| world.snapshots.iter().find(|s| s.id == id).unwrap().tags["asdr:set"].as_str())
        .collect();
    assert_eq!(sets.len(), 1, "one backup set for all nodes");
    let wait = p.step("wait_cluster_stable").unwrap();
    assert_eq!(params(wait)["size"], 3);
    for node in ["a1", "b1", "a2"] {
        assert!(wait.depends_on.contains(&format!("start_node:{node}")));
    }
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "R6" && w.message.contains("deleted before that backup"))
    );
}

#[test]
fn restores_of_a_healthy_node_plan_nothing() {
    let policy = example_policy();
    let world = world_for(&policy, &WorldSpec::new(NOW));
    for name in ["replace-a1", "a1-refill"] {
        let p = restore(&policy, &world, name).unwrap();
        assert!(!p.has_changes(), "{name}: {:?}", p.steps);
    }
}

#[test]
fn r9_a_node_edition_contradicting_the_policy_stops_the_plan() {
    let policy = example_policy();
    let mut spec = WorldSpec::new(NOW);
    spec.edition_reply = Some("Aerospike Community Edition".into());
    let d = refusal(plan(
        &policy,
        &world_for(&policy, &spec),
        NOW,
        &Operation::Backup,
    ));
    assert_eq!(d.rule, Some("R9"));
    assert_eq!(d.span, policy.cluster.edition_span, "points at `edition:`");
}

#[test]
fn observed_devices_that_differ_from_the_policy_stop_the_plan() {
    let policy = example_policy();
    let mut world = world_for(&policy, &WorldSpec::new(NOW));
    world.nodes[1].namespaces[0].devices[0].shadow = Some("/dev/nvme9n1".into());
    let d = refusal(plan(&policy, &world, NOW, &Operation::Backup));
    assert!(
        d.message.contains("b1") && d.message.contains("/dev/nvme9n1"),
        "{}",
        d.message
    );
}

#[test]
fn an_unknown_restore_name_lists_the_declared_ones() {
    let policy = example_policy();
    let world = world_for(&policy, &WorldSpec::new(NOW));
    let err = restore(&policy, &world, "nope").unwrap_err().to_string();
    assert!(
        err.contains("replace-a1, a1-refill, a1-from-backup, full-cluster"),
        "{err}"
    );
}

#[test]
fn r4_a_replacement_type_without_enough_instance_store_drives_is_refused() {
    let policy = example_policy();
    let mut world = failed_world(&policy, Failure::Terminated);
    world
        .instance_types
        .get_mut("i4i.2xlarge")
        .unwrap()
        .instance_store_drives = 1;
    assert_eq!(
        refusal(restore(&policy, &world, "replace-a1")).rule,
        Some("R4")
    );
}

/// R4 counts instance-store drives, not partitions: Aerospike recommends partitioning a large
/// NVMe drive (`/dev/nvme1n1p1`, `p2`, each shadowed by its own EBS volume), so two partitions of
/// one drive need one drive on the replacement, and a type with one drive is enough.
#[test]
fn r4_partitions_of_one_nvme_drive_need_one_instance_store_drive() {
    let policy = ExamplePolicy::prod_east()
        .edit("device: /dev/nvme1n1    #", "device: /dev/nvme1n1p1    #")
        .edit("device: /dev/nvme2n1\n", "device: /dev/nvme1n1p2\n")
        .edit("instance_store_volumes: 2", "instance_store_volumes: 1")
        .parse()
        .unwrap_or_else(|d| panic!("{d}"));
    let mut world = failed_world(&policy, Failure::Terminated);
    world
        .instance_types
        .get_mut("i4i.2xlarge")
        .unwrap()
        .instance_store_drives = 1;
    let p = restore(&policy, &world, "replace-a1").unwrap_or_else(|e| panic!("{e}"));
    let launch = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::ProvisionInstance)
        .unwrap();
    assert_eq!(params(launch)["instance_store_volumes"], 1);
}

#[test]
fn r1_consistency_none_is_refused_for_a_namespace_on_several_volumes_and_allowed_on_one() {
    let d = example_policy_with("consistency: multi-volume", "consistency: none").unwrap_err();
    assert_eq!(d.items[0].rule, Some("R1"));
    assert!(d.items[0].message.contains("namespace `users`"));
    // One device per namespace: per-volume snapshots without stopping writes are consistent.
    let policy = generated_policy(3, 1, "none", "enterprise");
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    assert_eq!(steps_of(&p, StepKind::Snapshot).len(), 3);
    assert!(
        steps_of(&p, StepKind::Quiesce).is_empty() && steps_of(&p, StepKind::StopNode).is_empty()
    );
}

#[test]
fn r2_a_set_without_its_smd_archive_is_not_complete() {
    let policy = example_policy();
    let mut world = world_for(&policy, &WorldSpec::new(NOW));
    let newest = world
        .smd_archives
        .iter()
        .map(|a| a.set.clone())
        .max()
        .unwrap();
    world.smd_archives.retain(|a| a.set != newest);
    // The newest set (6h old) lacks SMD, so the one before it (30h old) is the newest complete
    // one and a backup is due. That set was marked complete: its archive was lost since, and
    // one taken now would not be the SMD of its snapshots' moment. A new set is made whole
    // instead; the marked one is not finished with today's SMD.
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(
        p.step(&format!("copy_smd:{newest}")).is_none(),
        "{:?}",
        p.steps
    );
    assert!(p.step(&format!("mark_set_complete:{newest}")).is_none());
    let new_set = steps_of(&p, StepKind::MarkSetComplete);
    assert_eq!(new_set.len(), 1);
    assert!(
        !steps_of(&p, StepKind::SnapshotInstance).is_empty(),
        "a new set's snapshots are taken"
    );
    // A full-cluster restore from that set is refused: the cluster would start without SMD.
    let policy = example_policy_with(
        "    scope: cluster\n    source: latest-backup",
        &format!("    scope: cluster\n    source: set:{newest}"),
    )
    .unwrap();
    let d = refusal(restore(&policy, &world, "full-cluster"));
    assert_eq!(d.rule, Some("R2"));
}

#[test]
fn r5_backups_snapshot_the_ebs_shadow_never_the_instance_store_device() {
    let policy = example_policy();
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    let devices: BTreeSet<String> = steps_of(&p, StepKind::SnapshotInstance)
        .iter()
        .flat_map(|s| {
            params(s)["volumes"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v["device"].as_str().unwrap().to_string())
                .collect::<Vec<_>>()
                .into_iter()
        })
        .collect();
    assert_eq!(
        devices,
        BTreeSet::from([
            "/dev/sdf".to_string(),
            "/dev/sdg".to_string(),
            "/dev/sdh".to_string()
        ])
    );
    // Without `ebs`, the shadow's path is the EBS device, not the primary.
    let policy = generated_policy(2, 2, "multi-volume", "enterprise");
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    for s in steps_of(&p, StepKind::SnapshotInstance) {
        for v in params(s)["volumes"].as_array().unwrap() {
            assert!(v["device"].as_str().unwrap().starts_with("/dev/sd"), "{v}");
        }
    }
}

#[test]
fn r10_smd_is_archived_from_the_work_directory_of_the_node() {
    let policy = example_policy();
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    assert_eq!(
        params(steps_of(&p, StepKind::CopySmd)[0])["from"],
        "/opt/aerospike/smd"
    );
    let policy = example_policy_with(
        "work_directory: /opt/aerospike",
        "work_directory: /srv/{{ node }}/aerospike",
    )
    .unwrap();
    let p = plan(&policy, &backup_due(&policy), NOW, &Operation::Backup).unwrap();
    assert_eq!(
        params(steps_of(&p, StepKind::CopySmd)[0])["from"],
        "/srv/a1/aerospike/smd"
    );
}

fn community() -> Policy {
    asdr_specs::load(&examples().join("community/asdr.yaml")).unwrap()
}

#[test]
fn a_drill_replays_the_restore_into_its_own_addresses_and_never_touches_production() {
    let policy = community();
    let world = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &world, NOW, &Operation::Drill("quarterly".into())).unwrap();
    assert_eq!(p.operation, "drill:quarterly");
    for s in &p.steps {
        assert!(
            !matches!(
                s.kind(),
                StepKind::StopNode
                    | StepKind::DetachVolume
                    | StepKind::TerminateInstance
                    | StepKind::Quiesce
                    | StepKind::DeleteSnapshot
            ),
            "{} touches production",
            s.id
        );
        if let Some(n) = &s.node {
            assert!(n.ends_with("@quarterly"), "{} runs on {n}", s.id);
        }
        if let Some(tags) = s.params.tags() {
            assert_eq!(tags["asdr:drill"], "quarterly", "{}", s.id);
            assert!(
                tags["asdr:node"].ends_with("@quarterly"),
                "never a production node's tag"
            );
        }
    }
    let prov = p.step("provision_instance:w1@quarterly").unwrap();
    assert_eq!(
        params(prov)["private_ip"],
        "10.1.1.121",
        "production 10.1.1.21 + 100"
    );
    assert_eq!(params(prov)["subnet_id"], "subnet-0d1a");
    assert_eq!(
        steps_of(&p, StepKind::RestoreSmd).len(),
        3,
        "SMD on every drill node (R2)"
    );
    assert_eq!(
        params(p.step("wait_cluster_stable:quarterly").unwrap())["size"],
        3
    );
    assert!(p.warnings.iter().any(|w| w.rule == "R6"));
    let conf = p.step("write_config:w1@quarterly").unwrap();
    assert!(
        params(conf)["content"]
            .as_str()
            .unwrap()
            .contains("address 10.1.1.121"),
        "configured for its own address"
    );
}

#[test]
fn a_drill_teardown_removes_exactly_what_is_tagged_for_the_drill() {
    let policy = community();
    let mut world = world_for(&policy, &WorldSpec::new(NOW));
    let mut drill_tags = world.instances[0].tags.clone();
    drill_tags.insert("asdr:drill".into(), "quarterly".into());
    drill_tags.insert("asdr:node".into(), "w1@quarterly".into());
    drill_tags.insert("asdr:plan".into(), "p-drill".into());
    let mut inst = world.instances[0].clone();
    inst.id = "i-drill".into();
    inst.tags = drill_tags.clone();
    world.instances.push(inst);
    let mut vol = world.volumes[0].clone();
    vol.id = "vol-drill".into();
    vol.tags = drill_tags.clone();
    world.volumes.push(vol);
    // What carries the drill's tags but no apply of the drill recorded making (anyone can tag):
    // a production node's volume, another team's instance.
    let mut foreign = world.instances[1].clone();
    foreign.id = "i-0someoneelse".into();
    foreign.tags = drill_tags.clone();
    world.instances.push(foreign);
    let mut node_volume = world.volumes[1].clone();
    node_volume.id = "vol-0nodedata".into();
    node_volume.attachments.clear();
    node_volume.state = asdr_planner::world::VolumeState::Available;
    node_volume
        .tags
        .insert("asdr:drill".into(), "quarterly".into());
    world.volumes.push(node_volume);
    world.drill_resources.insert(
        "quarterly".into(),
        ["i-drill", "vol-drill"]
            .iter()
            .map(|id| asdr_planner::drill::made_by(id, "p-drill"))
            .collect(),
    );
    // A journal naming a production volume (which carries another plan, or none): nothing.
    world
        .drill_resources
        .get_mut("quarterly")
        .unwrap()
        .insert(asdr_planner::drill::made_by("vol-0nodedata", "p-drill"));
    let p = plan(
        &policy,
        &world,
        NOW,
        &Operation::Teardown("quarterly".into()),
    )
    .unwrap();
    let ids: Vec<&str> = p.steps.iter().map(|s| s.id.as_str()).collect();
    assert_eq!(
        ids,
        ["terminate_instance:i-drill", "delete_volume:vol-drill"]
    );
    assert_eq!(p.steps[1].depends_on, ["terminate_instance:i-drill"]);
    let said: Vec<&str> = p.warnings.iter().map(|w| w.message.as_str()).collect();
    assert!(
        said.iter().any(|w| w.contains("i-0someoneelse, vol-0nodedata carry asdr:drill=quarterly but no apply of drill `quarterly` recorded making them: not torn down")),
        "{said:?}"
    );
    // A teardown naming them (a tampered plan) is refused by the verifier.
    let mut tampered = p.clone();
    tampered.steps[0].id = "terminate_instance:i-0someoneelse".into();
    tampered.steps[0].params =
        asdr_planner::params::Params::TerminateInstance(asdr_planner::params::TerminateInstance {
            instance_id: "i-0someoneelse".into(),
            wait_until: "terminated".into(),
            reason: "drill quarterly teardown".into(),
        });
    tampered.steps[1].depends_on = vec!["terminate_instance:i-0someoneelse".into()];
    if let asdr_planner::params::Params::DeleteVolume(d) = &mut tampered.steps[1].params {
        d.volume_id = "vol-0nodedata".into();
    }
    let refused: Vec<String> = asdr_planner::verify(&policy, &world, &tampered)
        .iter()
        .map(|v| v.to_string())
        .collect();
    assert!(
        refused
            .iter()
            .any(|v| v.contains("no apply of the drill recorded launching it"))
            && refused.iter().any(|v| v
                .contains("vol-0nodedata is not a volume this drill's applies recorded making")),
        "{refused:?}"
    );
}

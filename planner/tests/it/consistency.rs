//! R19: strong-consistency namespaces (Enterprise). A restore never revives dead partitions
//! unless it says so, re-rosters a node that joins with an id the roster lacks in a planned,
//! reviewable step, and ends waiting until no partition is unavailable.

use crate::edit;
use asdr_planner::params::Params;
use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, with_manifests, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const USERS: &str = "    - name: users\n      replication_factor: 2\n";

fn sc(extra: &str) -> ExamplePolicy {
    ExamplePolicy::prod_east()
        .edit(USERS, &format!("{USERS}      strong_consistency: true\n"))
        .append(extra)
}

fn world(policy: &Policy, manifests: bool, failures: &[(&str, Failure)]) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    spec.failures = failures.iter().map(|(n, f)| (n.to_string(), *f)).collect();
    let mut w = world_for(policy, &spec);
    if manifests {
        with_manifests(policy, &mut w);
    }
    w
}

fn run(policy: &Policy, w: &World, restore: &str) -> Plan {
    plan(policy, w, NOW, &Operation::Restore(restore.into())).unwrap_or_else(|e| panic!("{e}"))
}

fn r19(policy: &Policy, w: &World, p: &Plan) -> Vec<String> {
    verify(policy, w, p)
        .into_iter()
        .filter(|v| v.rule == "R19")
        .map(|v| v.to_string())
        .collect()
}

fn ids(p: &Plan, kind: &str) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.kind().as_str() == kind)
        .map(|s| s.id.clone())
        .collect()
}

#[test]
fn r19_a_replacement_keeping_its_id_ends_waiting_for_available_partitions_and_is_not_re_rostered() {
    let policy = sc("").policy();
    let w = world(&policy, true, &[("a1", Failure::Terminated)]);
    let mut p = run(&policy, &w, "replace-a1");
    assert_eq!(
        ids(&p, "wait_partitions_available"),
        ["wait_partitions_available:a1"]
    );
    assert!(ids(&p, "set_roster").is_empty(), "a1 keeps its rostered id");
    let wait = p
        .steps
        .iter()
        .find(|s| s.id == "wait_partitions_available:a1")
        .unwrap();
    assert!(
        matches!(&wait.params, Params::WaitPartitionsAvailable(w) if w.namespaces == ["users"] && !w.revive)
    );
    assert!(r19(&policy, &w, &p).is_empty());
    // A plan that ends without the wait is refused.
    p.steps.retain(|s| s.id != "wait_partitions_available:a1");
    let bad = r19(&policy, &w, &p);
    assert!(
        bad.iter()
            .any(|m| m.contains("no wait_partitions_available follows it")),
        "{bad:?}"
    );
}

#[test]
fn r19_a_replacement_joining_as_a_new_node_is_re_rostered_in_a_planned_step() {
    let policy = sc("").policy();
    // No manifest records a1's id, so asdr derives one the roster does not hold.
    let w = world(&policy, false, &[("a1", Failure::Terminated)]);
    let mut p = run(&policy, &w, "replace-a1");
    assert_eq!(ids(&p, "set_roster"), ["set_roster:a1"]);
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "R19" && w.message.contains("set_roster sets the roster of users")),
        "{:?}",
        p.warnings
    );
    assert!(r19(&policy, &w, &p).is_empty());
    // A roster set before the whole cluster is there would shrink it.
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "set_roster:a1")
        .unwrap();
    edit(s, |v| v["size"] = 2.into());
    let bad = r19(&policy, &w, &p);
    assert!(bad.iter().any(|m| m.contains("not all 3")), "{bad:?}");
    // And a plan without it is refused.
    let mut p = run(&policy, &w, "replace-a1");
    p.steps.retain(|s| s.id != "set_roster:a1");
    for s in p.steps.iter_mut() {
        s.depends_on.retain(|d| d != "set_roster:a1");
        if s.id == "wait_partitions_available:a1" {
            s.depends_on.push("wait_cluster_stable:a1".into());
        }
    }
    let bad = r19(&policy, &w, &p);
    assert!(
        bad.iter().any(|m| m.contains("no set_roster follows it")),
        "{bad:?}"
    );
}

#[test]
fn r19_dead_partitions_refuse_a_restore_unless_it_accepts_them() {
    let policy = sc("").policy();
    let mut w = world(&policy, true, &[]);
    let b1 = w.nodes.iter_mut().find(|n| n.name == "b1").unwrap();
    b1.namespaces
        .iter_mut()
        .find(|n| n.name == "users")
        .unwrap()
        .dead_partitions = 12;
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("dead partitions in strong-consistency namespace users (12)"),
        "{err}"
    );

    let accepting = sc("    accept_dead_partitions: true\n").policy();
    let p = run(&accepting, &w, "full-cluster");
    let wait = p
        .steps
        .iter()
        .find(|s| s.id == "wait_partitions_available")
        .unwrap();
    assert!(matches!(&wait.params, Params::WaitPartitionsAvailable(w) if w.revive));
    assert!(r19(&accepting, &w, &p).is_empty());
    // The same plan under the policy that does not accept them is refused by the verifier.
    let bad = r19(&policy, &w, &p);
    assert!(
        bad.iter()
            .any(|m| m.contains("does not declare `accept_dead_partitions`")),
        "{bad:?}"
    );
}

#[test]
fn r19_a_full_restore_from_snapshots_of_running_nodes_is_warned_of_dead_partitions() {
    let policy = sc("").policy();
    let w = world(&policy, true, &[]);
    let p = run(&policy, &w, "full-cluster");
    assert!(
        p.warnings
            .iter()
            .any(|w| w.rule == "R19" && w.message.contains("unclean shutdown")),
        "{:?}",
        p.warnings
    );
    assert_eq!(
        ids(&p, "wait_partitions_available"),
        ["wait_partitions_available"]
    );
}

#[test]
fn r19_validation_refuses_strong_consistency_on_community_and_dead_partitions_without_it() {
    let e = ExamplePolicy::community()
        .edit(
            "replication_factor: 2\n",
            "replication_factor: 2\n      strong_consistency: true\n",
        )
        .parse()
        .unwrap_err()
        .to_string();
    assert!(e.contains("strong consistency is Enterprise-only"), "{e}");
    let e = ExamplePolicy::prod_east()
        .append("    accept_dead_partitions: true\n")
        .parse()
        .unwrap_err()
        .to_string();
    assert!(e.contains("no namespace of the cluster is one"), "{e}");
}

#[test]
fn r19_a_node_running_another_consistency_than_the_policy_says_is_refused() {
    let policy = sc("").policy();
    let mut w = world(&policy, true, &[]);
    for n in w.nodes.iter_mut() {
        for ns in n.namespaces.iter_mut() {
            ns.strong_consistency = false;
        }
    }
    let err = plan(&policy, &w, NOW, &Operation::Backup)
        .unwrap_err()
        .to_string();
    assert!(err.contains("runs namespace `users` with AP"), "{err}");
}

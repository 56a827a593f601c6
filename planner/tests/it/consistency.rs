//! R19: strong-consistency namespaces (Enterprise). A restore never revives dead partitions
//! unless it says so, re-rosters a node that joins with an id the roster lacks in a planned,
//! reviewable step, and ends waiting until no partition is unavailable.

use crate::edit;
use asdr_planner::params::Params;
use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, plan, verify};
use asdr_specs::Policy;

const USERS: &str = "    - name: users\n      replication_factor: 2\n";

fn sc(extra: &str) -> ExamplePolicy {
    ExamplePolicy::prod_east()
        .edit(USERS, &format!("{USERS}      strong_consistency: true\n"))
        .append(extra)
}

use crate::identity_worlds::{NOW, restore as run, world};

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
    // The template sets no node-id: the replacement joins with its new MAC's id.
    let (_dir, policy) = without_node_id("");
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

/// The example's template without its `node-id` line, in a scratch copy of the example.
fn without_node_id(extra: &str) -> (tempfile::TempDir, Policy) {
    let dir = tempfile::tempdir().unwrap();
    let example = sc(extra);
    example.write_to(dir.path());
    let t = dir.path().join("templates/aerospike.conf.j2");
    let text: String = std::fs::read_to_string(&t)
        .unwrap()
        .lines()
        .filter(|l| !l.contains("node-id") && !l.contains("node's id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&t, text).unwrap();
    let policy = asdr_specs::parse("asdr.yaml", &example.text, dir.path()).unwrap();
    (dir, policy)
}

/// Review finding (critical): an in-place restore re-ided a node — its running config sets
/// `node-id`, the template does not — and nothing re-rostered it: the namespace went
/// unavailable once the next node went out. Under SC such a change is refused.
#[test]
fn r19_an_in_place_restore_that_would_change_a_nodes_id_is_refused_under_strong_consistency() {
    let (_dir, policy) = without_node_id("");
    let mut w = world(&policy, true, &[]);
    // The config a1 runs was rendered when the template still set its id.
    let a1 = w.nodes.iter_mut().find(|n| n.name == "a1").unwrap();
    let conf = a1.config.clone().unwrap();
    a1.config = Some(conf.replacen("service {\n", "service {\n    node-id BB9000000010000\n", 1));
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("restoring a1 in place would change its node id")
            && err.contains("outside the strong-consistency roster"),
        "{err}"
    );
    // A pin that is not the id the node runs with: the same.
    let pinned = sc("")
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n",
            "      instance_id: i-0a1\n      node_id: ABCDEF\n",
        )
        .policy();
    let err = plan(
        &pinned,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("to node id ABCDEF"), "{err}");
}

/// Review finding: nodes were taken out while partitions were unavailable or a roster member
/// was missing — one member gone plus one more out is replication factor 2 gone.
#[test]
fn r19_a_running_node_is_not_taken_out_while_partitions_are_unavailable_or_a_roster_member_is_missing()
 {
    let policy = sc("").policy();
    let mut w = world(&policy, true, &[]);
    w.nodes[1].namespaces[0].unavailable_partitions = 256;
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("while 256 partitions are unavailable"),
        "{err}"
    );
    // A backup that stops or quiesces nodes is refused too (R14), once one is due.
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    spec.newest_set_age = time::Duration::hours(30);
    let mut due = world_for(&policy, &spec);
    due.nodes[1].namespaces[0].unavailable_partitions = 256;
    let err = plan(&policy, &due, NOW, &Operation::Backup)
        .unwrap_err()
        .to_string();
    assert!(err.contains("256 unavailable"), "{err}");

    let mut w = world(&policy, true, &[]);
    for n in w.nodes.iter_mut() {
        n.namespaces[0].roster.push("FEEDFACE".into());
    }
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("roster member(s) FEEDFACE are not in the cluster"),
        "{err}"
    );
    let status = asdr_planner::status::status(&policy, &w, NOW);
    assert!(
        status
            .problems
            .iter()
            .any(|p| p.contains("member(s) FEEDFACE are not in the cluster")),
        "{:?}",
        status.problems
    );
}

/// Review finding: a lost node whose id no set recorded was given a derived id and the roster
/// re-set without its real id — which the roster held all along. The roster's one member no node
/// answers as is that node's id when nothing else is unknown.
#[test]
fn r19_a_lost_node_takes_the_one_roster_id_no_node_answers_as_and_needs_no_re_roster() {
    let policy = sc("").policy();
    let w = world(&policy, false, &[("a1", Failure::Terminated)]);
    let p = run(&policy, &w, "replace-a1");
    assert!(
        ids(&p, "set_roster").is_empty(),
        "{:?}",
        ids(&p, "set_roster")
    );
    let config = p
        .steps
        .iter()
        .find_map(|s| match &s.params {
            Params::WriteConfig(c) if s.id == "write_config:a1" => Some(c.content.clone()),
            _ => None,
        })
        .unwrap();
    assert_eq!(
        asdr_specs::config_node_ids(&config),
        [asdr_planner::testkit::test_node_id(0)]
    );
}

/// Review finding: with two nodes lost and partitions unavailable, both were re-rostered under
/// derived ids — their data would count for nothing. Refused: they must come back as themselves.
#[test]
fn r19_a_re_roster_while_partitions_are_unavailable_is_refused() {
    let policy = sc("  - name: replace-a1-b1\n    scope: node\n    nodes: [a1, b1]\n    source: current-volumes\n    accept_zombie_records: true\n").policy();
    let mut w = world(
        &policy,
        false,
        &[("a1", Failure::Terminated), ("b1", Failure::Terminated)],
    );
    for n in w.nodes.iter_mut().filter(|n| n.reachable) {
        n.namespaces[0].unavailable_partitions = 1400;
    }
    let err = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("replace-a1-b1".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("would set the roster to new node ids while 1400 partitions are unavailable"),
        "{err}"
    );
}

/// Review finding: once a node's id changed after a set was made (re-ided by plan, roster
/// re-set), a full restore of that set — which puts the set's SMD, and so its roster, back and
/// renders the ids the set recorded — and a drill of it were refused by the verifier as an
/// "internal error". The set's own ids are right there, and its roster is what they join.
#[test]
fn r18_r19_a_full_restore_and_a_drill_of_a_set_take_its_recorded_ids_after_a_node_was_re_ided() {
    let policy = sc(
        "drills:\n  - name: quarterly\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-d1, us-east-1b: subnet-d2}\n      ip_offset: 100\n      security_groups: [sg-drill]\n",
    )
    .policy();
    let mut w = world(&policy, true, &[]);
    let old = asdr_planner::testkit::test_node_id(0);
    let new = "BB90000000100AA".to_string();
    for n in w.nodes.iter_mut() {
        if n.name == "a1" {
            n.node_id = Some(new.clone());
            let conf = n.config.clone().unwrap();
            n.config = Some(conf.replace(&format!("node-id {old}"), &format!("node-id {new}")));
        }
        for ns in n.namespaces.iter_mut().filter(|ns| ns.strong_consistency) {
            for r in ns.roster.iter_mut().chain(ns.observed_nodes.iter_mut()) {
                if *r == old {
                    *r = new.clone();
                }
            }
        }
    }
    let p = run(&policy, &w, "full-cluster");
    let a1 = p
        .steps
        .iter()
        .find_map(|s| match &s.params {
            Params::WriteConfig(c) if s.id == "write_config:a1" => {
                Some(asdr_specs::config_node_ids(&c.content))
            }
            _ => None,
        })
        .unwrap();
    assert_eq!(
        a1,
        std::slice::from_ref(&old),
        "the set's roster names the set's id"
    );
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
    let d = plan(&policy, &w, NOW, &Operation::Drill("quarterly".into()));
    assert!(d.is_ok(), "{}", d.unwrap_err());
}

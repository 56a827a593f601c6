//! Zone loss (R4): a restore with `zone` rebuilds the nodes of a lost zone in another zone of the
//! region, at the addresses it declares, keeping each node's rack and id; nothing in the lost
//! zone is detached, terminated or waited for, and a move that stood is never made again.

use crate::edit;
use asdr_planner::params::{Params, Ref};
use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, with_manifests, world_for};
use asdr_planner::world::{InstanceState, Subnet, World};
use asdr_planner::{Operation, Plan, PlanError, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const INSTANCE: &str =
    "  instance:                       # defaults for replacement instances (R4)\n";
const LOSE_1A: &str = "  - name: lose-1a\n    scope: node\n    nodes: [a1, a2]\n    source: latest-backup\n    accept_zombie_records: true\n    zone: {to: us-east-1c, private_ips: {a1: 10.0.3.11, a2: 10.0.3.12}}\n";

fn zoned(racks: &str, restore: &str) -> ExamplePolicy {
    ExamplePolicy::prod_east()
        .edit(INSTANCE, &format!("  racks: {racks}\n{INSTANCE}"))
        .edit(
            "subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb}",
            "subnets: {us-east-1a: subnet-0aaa, us-east-1b: subnet-0bbb, us-east-1c: subnet-0ccc}",
        )
        .append(restore)
}

fn policy() -> Policy {
    zoned("{us-east-1a: 1, us-east-1b: 2}", LOSE_1A).policy()
}

/// us-east-1a is lost: a1's instance is gone, a2's runs but does not answer.
fn lost(policy: &Policy) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    spec.failures = vec![
        ("a1".into(), Failure::Terminated),
        (
            "a2".into(),
            Failure::Unreachable {
                delete_on_termination: true,
            },
        ),
    ];
    let mut w = world_for(policy, &spec);
    with_manifests(policy, &mut w);
    for (id, cidr, az) in [
        ("subnet-0aaa", "10.0.1.0/24", "us-east-1a"),
        ("subnet-0bbb", "10.0.2.0/24", "us-east-1b"),
        ("subnet-0ccc", "10.0.3.0/24", "us-east-1c"),
    ] {
        w.subnets.push(Subnet {
            id: id.into(),
            region: None,
            cidr: cidr.into(),
            availability_zone: az.into(),
        });
    }
    w
}

/// What a move's apply leaves: a1's and a2's replacements in us-east-1c at their declared
/// addresses, tagged for the restore (and marked, once the cluster stood).
fn replacements(w: &mut World, marked: bool) {
    for (node, ip) in [("a1", "10.0.3.11"), ("a2", "10.0.3.12")] {
        let mut i = w
            .instances
            .iter()
            .find(|i| i.tags.get("asdr:node").map(String::as_str) == Some("b1"))
            .unwrap()
            .clone();
        i.id = format!("i-new{node}");
        i.private_ip = Some(ip.into());
        i.availability_zone = "us-east-1c".into();
        i.subnet_id = Some("subnet-0ccc".into());
        i.block_devices.clear();
        i.tags.insert("asdr:node".into(), node.into());
        i.tags.insert("asdr:restore".into(), "lose-1a".into());
        if marked {
            i.tags.insert("asdr:restore-complete".into(), "true".into());
        }
        w.instances.push(i);
    }
}

fn zone_plan(policy: &Policy, w: &World) -> Plan {
    plan(policy, w, NOW, &Operation::Restore("lose-1a".into())).unwrap_or_else(|e| panic!("{e}"))
}

fn step<'p>(p: &'p Plan, id: &str) -> &'p asdr_planner::plan::Step {
    p.steps
        .iter()
        .find(|s| s.id == id)
        .unwrap_or_else(|| panic!("no {id} in {:?}", ids(p)))
}

fn ids(p: &Plan) -> Vec<&str> {
    p.steps.iter().map(|s| s.id.as_str()).collect()
}

fn warnings(p: &Plan) -> String {
    p.warnings
        .iter()
        .map(|w| format!("[{}] {}", w.rule, w.message))
        .collect::<Vec<_>>()
        .join("\n")
}

fn config(p: &Plan, node: &str) -> String {
    match &step(p, &format!("write_config:{node}")).params {
        Params::WriteConfig(c) => c.content.clone(),
        other => panic!("{other:?}"),
    }
}

#[test]
fn r4_a_lost_zones_nodes_are_rebuilt_in_the_declared_zone_keeping_rack_and_node_id() {
    let policy = policy();
    let w = lost(&policy);
    let p = zone_plan(&policy, &w);
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
    for (node, ip) in [("a1", "10.0.3.11"), ("a2", "10.0.3.12")] {
        let Params::ProvisionInstance(pi) = &step(&p, &format!("provision_instance:{node}")).params
        else {
            panic!()
        };
        assert_eq!(
            (
                pi.availability_zone.as_str(),
                pi.subnet_id.as_deref(),
                pi.private_ip.as_str()
            ),
            ("us-east-1c", Some("subnet-0ccc"), ip)
        );
        assert_eq!(
            pi.tags.get("asdr:restore").map(String::as_str),
            Some("lose-1a")
        );
        for s in p.steps.iter().filter(|s| s.node.as_deref() == Some(node)) {
            if let Params::CreateVolume(c) = &s.params {
                assert_eq!(c.availability_zone, "us-east-1c", "{}", s.id);
                assert!(c.snapshot_id.is_some(), "from the set: {}", s.id);
            }
        }
        let conf = config(&p, node);
        // Its rack is the lost zone's, in every namespace; its peers are the new addresses.
        assert_eq!(
            asdr_specs::config_rack_ids(&conf),
            [
                ("users".to_string(), Some("1".to_string())),
                ("events".to_string(), Some("1".to_string()))
            ]
        );
        for peer in ["10.0.3.11", "10.0.3.12", "10.0.2.11"] {
            assert!(
                conf.contains(&format!("mesh-seed-address-port {peer} 3002")),
                "{conf}"
            );
        }
        assert!(
            !conf.contains("10.0.1."),
            "no address of the lost zone: {conf}"
        );
        // The id its set recorded (the manifest), not one derived for the new instance.
        let recorded = w.set_manifests[0].file.as_ref().unwrap().manifest.node_ids[node].clone();
        assert_eq!(asdr_specs::config_node_ids(&conf), [recorded]);
        let Params::StartNode(start) = &step(&p, &format!("start_node:{node}")).params else {
            panic!()
        };
        assert_eq!(start.address, format!("{ip}:3000"));
    }
    // Nothing in the lost zone is detached or terminated; a2's running instance is asked to
    // stop, not waited for, before its replacement launches with the same node id.
    assert!(
        !p.steps
            .iter()
            .any(|s| s.id.starts_with("detach_volume") || s.id.starts_with("terminate_instance")),
        "{:?}",
        ids(&p)
    );
    let Params::StopInstance(stop) = &step(&p, "stop_instance:a2").params else {
        panic!()
    };
    assert_eq!(stop.wait_until, asdr_planner::params::STOP_REQUESTED);
    assert!(
        step(&p, "provision_instance:a2")
            .depends_on
            .contains(&"stop_instance:a2".to_string())
    );
    let mark = step(&p, "mark_restore_complete:lose-1a");
    assert!(
        mark.depends_on
            .contains(&"wait_cluster_stable:a1".to_string())
    );
    assert!(
        mark.depends_on
            .contains(&"wait_cluster_stable:a2".to_string())
    );
    let warnings = warnings(&p);
    assert!(
        warnings.contains("update the policy's cluster.nodes ({name: a1, private_ip: 10.0.3.11, availability_zone: us-east-1c, rack: 1}"),
        "{warnings}"
    );
}

#[test]
fn r4_the_verifier_refuses_a_zone_plan_that_touches_the_lost_zone_or_launches_beside_a_running_twin()
 {
    let policy = policy();
    let w = lost(&policy);
    let base = zone_plan(&policy, &w);
    let r4 = |p: &Plan| -> Vec<String> {
        verify(&policy, &w, p)
            .into_iter()
            .filter(|v| v.rule == "R4")
            .map(|v| v.to_string())
            .collect()
    };
    // The replacement launched without a2's old instance asked to stop.
    let mut p = base.clone();
    p.steps
        .iter_mut()
        .find(|s| s.id == "provision_instance:a2")
        .unwrap()
        .depends_on
        .retain(|d| d != "stop_instance:a2");
    assert!(
        r4(&p)
            .iter()
            .any(|m| m.contains("never asked to stop before the replacement launches")),
        "{:?}",
        r4(&p)
    );
    // The launch that does not check again that the old instance no longer runs.
    let mut p = base.clone();
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "provision_instance:a2")
        .unwrap();
    edit(s, |v| v["stopped_first"] = serde_json::Value::Null);
    assert!(
        r4(&p)
            .iter()
            .any(|m| m.contains("launch does not check that its old instance")),
        "{:?}",
        r4(&p)
    );
    // A volume made in the lost zone.
    let mut p = base.clone();
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "create_volume:a1:/dev/sdf")
        .unwrap();
    edit(s, |v| v["availability_zone"] = "us-east-1a".into());
    assert!(
        r4(&p)
            .iter()
            .any(|m| m.contains("is created in us-east-1a, not us-east-1c")),
        "{:?}",
        r4(&p)
    );
    // The replacement put back in the lost zone's subnet, at its old address.
    let mut p = base.clone();
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "provision_instance:a1")
        .unwrap();
    edit(s, |v| {
        v["availability_zone"] = "us-east-1a".into();
        v["subnet_id"] = "subnet-0aaa".into();
        v["private_ip"] = "10.0.1.11".into();
    });
    let found = r4(&p);
    assert!(
        found
            .iter()
            .any(|m| m.contains("availability zone us-east-1a is not node a1's us-east-1c")),
        "{found:?}"
    );
    // One of a2's old volumes (in the lost zone) attached to its replacement.
    let mut p = base.clone();
    let old = w
        .instances
        .iter()
        .find(|i| {
            i.tags.get("asdr:node").map(String::as_str) == Some("a2")
                && i.state == InstanceState::Running
        })
        .unwrap()
        .block_devices[0]
        .volume_id
        .clone();
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "attach_volume:a2:/dev/sdf")
        .unwrap();
    if let Params::AttachVolume(a) = &mut s.params {
        a.volume_id = Ref::Known(old.clone());
    }
    assert!(
        r4(&p)
            .iter()
            .any(|m| m.contains(&format!("volume {old}, which exists already"))),
        "{:?}",
        r4(&p)
    );
    // The rack changed to the new zone's.
    let mut p = base.clone();
    let s = p
        .steps
        .iter_mut()
        .find(|s| s.id == "write_config:a1")
        .unwrap();
    edit(s, |v| {
        let c = v["content"]
            .as_str()
            .unwrap()
            .replace("rack-id 1", "rack-id 3");
        v["content"] = c.into();
    });
    assert!(
        r4(&p).iter().any(|m| m.contains("rack-id 3")),
        "{:?}",
        r4(&p)
    );
}

#[test]
fn r4_a_move_that_stood_is_not_made_again_and_status_says_where_the_nodes_went() {
    let policy = policy();
    let mut w = lost(&policy);
    // What the apply left: each node's replacement in us-east-1c, marked once the cluster stood.
    replacements(&mut w, false);
    // Built but not yet marked: a move that stopped halfway is resumed from its journal.
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into())).unwrap_err();
    assert!(
        matches!(&err, PlanError::Refused(_)) && err.to_string().contains("is partly built"),
        "{err}"
    );
    for i in w.instances.iter_mut().filter(|i| i.id.starts_with("i-new")) {
        i.tags.insert("asdr:restore-complete".into(), "true".into());
    }
    let p = zone_plan(&policy, &w);
    assert!(
        warnings(&p).contains("moved a1, a2 and they stand"),
        "{}",
        warnings(&p)
    );
    // a2's old instance runs (the zone came back and it booted): it has a2's node id, beside the
    // replacement, so the plan stops it — and waits, the zone answering again.
    assert_eq!(ids(&p), ["stop_instance:a2"]);
    let Params::StopInstance(stop) = &p.steps[0].params else {
        panic!()
    };
    assert_eq!(stop.wait_until, "stopped");
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
    let problems = asdr_planner::status::status(&policy, &w, NOW)
        .problems
        .join("\n");
    assert!(
        problems.contains("2 instances run as node a2") && problems.contains("i-newa2"),
        "{problems}"
    );
    // Keyed on what runs, not on what is declared now: with the restore edited (other
    // addresses) or removed, nothing else is planned all the same.
    for edited in [
        zoned(
            "{us-east-1a: 1, us-east-1b: 2}",
            &LOSE_1A.replace("10.0.3.11", "10.0.3.21"),
        )
        .policy(),
        zoned("{us-east-1a: 1, us-east-1b: 2}", "").policy(),
    ] {
        let err = plan(&edited, &w, NOW, &Operation::Backup)
            .unwrap_err()
            .to_string();
        assert!(err.contains("moved there by restore `lose-1a`"), "{err}");
    }
    let err = plan(
        &zoned(
            "{us-east-1a: 1, us-east-1b: 2}",
            &LOSE_1A.replace("10.0.3.11", "10.0.3.21"),
        )
        .policy(),
        &w,
        NOW,
        &Operation::Restore("lose-1a".into()),
    )
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("moved there by restore `lose-1a`"),
        "a second move: {err}"
    );
    for i in w.instances.iter_mut() {
        if i.tags.get("asdr:node").map(String::as_str) == Some("a2") && !i.id.starts_with("i-new") {
            i.state = InstanceState::Stopped;
        }
    }
    let p = zone_plan(&policy, &w);
    assert!(p.steps.is_empty(), "{:?}", ids(&p));
    let status = asdr_planner::status::status(&policy, &w, NOW);
    let problems = status.problems.join("\n");
    assert!(
        problems.contains(
            "node a1 runs in us-east-1c at 10.0.3.11 (i-newa1) since restore `lose-1a` moved it"
        ),
        "{problems}"
    );
    // Once the policy places them there (their rack named), nothing moves and nothing is
    // reported moved.
    let text = zoned("{us-east-1a: 1, us-east-1b: 2}", LOSE_1A)
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n",
            "      private_ip: 10.0.3.11\n      availability_zone: us-east-1c\n      rack: 1\n",
        )
        .edit(
            "      private_ip: 10.0.1.12\n      availability_zone: us-east-1a\n",
            "      private_ip: 10.0.3.12\n      availability_zone: us-east-1c\n      rack: 1\n",
        );
    let updated = text.policy();
    // There, they answer, as the nodes they were.
    let recorded = w.set_manifests[0]
        .file
        .as_ref()
        .unwrap()
        .manifest
        .node_ids
        .clone();
    let b1 = w.nodes.iter().find(|n| n.name == "b1").unwrap().clone();
    for n in w
        .nodes
        .iter_mut()
        .filter(|n| n.name == "a1" || n.name == "a2")
    {
        let id = recorded[&n.name].clone();
        *n = asdr_planner::world::NodeObservation {
            name: n.name.clone(),
            node_id: Some(id),
            ..b1.clone()
        };
        for ns in n.namespaces.iter_mut() {
            ns.rack_id = Some(1);
        }
    }
    let p = zone_plan(&updated, &w);
    assert!(
        !p.steps
            .iter()
            .any(|s| s.id.starts_with("provision_instance")
                || s.id.starts_with("stop_instance")
                || s.id.starts_with("mark_restore_complete")),
        "nothing moves again (what is left is the restore's own rollback to the set, in place): {:?}",
        ids(&p)
    );
    let status = asdr_planner::status::status(&updated, &w, NOW);
    assert!(
        !status.problems.iter().any(|m| m.contains("moved it")),
        "{:?}",
        status.problems
    );
}

#[test]
fn r4_a_zone_restore_refuses_a_node_that_answers_and_an_address_outside_the_new_subnet() {
    let policy = policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let mut w = world_for(&policy, &spec);
    with_manifests(&policy, &mut w);
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into())).unwrap_err();
    assert!(
        err.to_string()
            .contains("but it answers in us-east-1a: that zone is not lost"),
        "{err}"
    );

    let policy = zoned(
        "{us-east-1a: 1, us-east-1b: 2}",
        &LOSE_1A.replace("a2: 10.0.3.12", "a2: 10.0.9.12"),
    )
    .policy();
    let w = lost(&policy);
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into())).unwrap_err();
    assert!(
        err.to_string()
            .contains("address 10.0.9.12 is not in subnet subnet-0ccc"),
        "{err}"
    );
    // AWS keeps the first four addresses and the last of every subnet: no instance gets them.
    let policy = zoned(
        "{us-east-1a: 1, us-east-1b: 2}",
        &LOSE_1A.replace("a2: 10.0.3.12", "a2: 10.0.3.1"),
    )
    .policy();
    let w = lost(&policy);
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into())).unwrap_err();
    assert!(
        err.to_string()
            .contains("address 10.0.3.1 is reserved by AWS in subnet subnet-0ccc")
            && err.to_string().contains("the VPC router"),
        "{err}"
    );
}

#[test]
fn r4_a_rack_moved_into_a_zone_with_a_rack_of_its_own_is_said_to_share_it() {
    let policy = zoned("{us-east-1a: 1, us-east-1b: 2, us-east-1c: 3}", LOSE_1A).policy();
    let w = lost(&policy);
    let p = zone_plan(&policy, &w);
    assert!(
        warnings(&p).contains("us-east-1c now holds rack 3 and rack 1"),
        "{}",
        warnings(&p)
    );
    // `source: empty` refills the whole rack from the other: every record has a copy there.
    let policy = zoned(
        "{us-east-1a: 1, us-east-1b: 2}",
        &LOSE_1A
            .replace("source: latest-backup", "source: empty")
            .replace("    accept_zombie_records: true\n", ""),
    )
    .policy();
    let w = lost(&policy);
    let p = zone_plan(&policy, &w);
    assert!(
        p.steps
            .iter()
            .all(|s| !matches!(&s.params, Params::CreateVolume(c) if c.snapshot_id.is_some())),
        "blank volumes"
    );
    assert!(verify(&policy, &w, &p).is_empty());
    assert!(
        warnings(&p).contains("a1, a2 rejoin empty together")
            && warnings(&p).contains("no migrations when they were lost"),
        "{}",
        warnings(&p)
    );
}

#[test]
fn r4_a_move_whose_instances_stood_but_do_not_run_is_not_called_partly_built() {
    let policy = policy();
    let mut w = lost(&policy);
    replacements(&mut w, true);
    for i in w.instances.iter_mut().filter(|i| i.id == "i-newa1") {
        i.state = InstanceState::Stopped;
    }
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("they stood, but not all of them run now") && !err.contains("partly built"),
        "{err}"
    );
    // Terminated since: not partly built either, and not built again here.
    for i in w.instances.iter_mut().filter(|i| i.id == "i-newa1") {
        i.state = InstanceState::Terminated;
    }
    let err = plan(&policy, &w, NOW, &Operation::Restore("lose-1a".into()))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains("the replacement of a1 was terminated since") && !err.contains("partly built"),
        "{err}"
    );
}

/// An updated entry that keeps the old `instance_id`: the pinned instance is in the lost zone,
/// and taking it for the node would rebuild it there. Refused, naming what to remove.
#[test]
fn r4_a_pinned_instance_in_another_zone_than_its_node_is_refused() {
    let base = policy();
    let w = lost(&base);
    let moved = zoned("{us-east-1a: 1, us-east-1b: 2}", LOSE_1A)
        .edit(
            "      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n",
            "      private_ip: 10.0.3.11\n      availability_zone: us-east-1c\n      rack: 1\n",
        )
        .policy();
    let pinned = moved
        .node("a1")
        .unwrap()
        .instance_id
        .clone()
        .expect("the example pins a1");
    // The old instance, stopped in the lost zone (not terminated).
    let mut w = w;
    let old = w
        .instances
        .iter_mut()
        .find(|i| i.id == pinned)
        .expect("the pinned instance is in the world");
    old.state = InstanceState::Stopped;
    old.availability_zone = "us-east-1a".into();
    let err = plan(&moved, &w, NOW, &Operation::Backup)
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(&format!(
            "node `a1` pins instance {pinned}, which is in us-east-1a"
        )),
        "{err}"
    );
}

/// After the move the policy places a1 in us-east-1c (its rack pinned); its volumes left in
/// us-east-1a stay tagged for it. When a1 is lost again there, replacing it on its current
/// volumes takes the ones in its zone: a volume that can never attach is not a candidate.
#[test]
fn r4_volumes_left_in_the_lost_zone_are_not_candidates_for_a_node_placed_elsewhere() {
    let moved = zoned("{us-east-1a: 1, us-east-1b: 2}", LOSE_1A)
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n",
            "      private_ip: 10.0.3.11\n      availability_zone: us-east-1c\n      rack: 1\n",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let mut w = world_for(&moved, &spec);
    with_manifests(&moved, &mut w);
    // The volumes a1 left in us-east-1a before it moved, kept and still tagged for it.
    let left: Vec<_> = w
        .volumes
        .iter()
        .filter(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .cloned()
        .map(|mut v| {
            v.id = format!("{}-old", v.id);
            v.availability_zone = "us-east-1a".into();
            v
        })
        .collect();
    assert!(!left.is_empty());
    w.volumes.extend(left);
    let p = plan(&moved, &w, NOW, &Operation::Restore("replace-a1".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    for s in &p.steps {
        if let Params::AttachVolume(a) = &s.params
            && let Ref::Known(id) = &a.volume_id
        {
            assert!(
                !id.ends_with("-old"),
                "{} attaches a volume of us-east-1a",
                s.id
            );
        }
    }
    assert!(
        verify(&moved, &w, &p).is_empty(),
        "{:?}",
        verify(&moved, &w, &p)
    );
}

/// The policy updated after the move, but the rack pin forgotten where the new zone has a rack
/// of its own: every plan refuses (the node runs rack 1, the policy says 3), so `status` is not
/// fine either.
#[test]
fn r4_status_is_not_fine_when_every_plan_would_refuse_a_nodes_rack() {
    let policy = zoned("{us-east-1a: 1, us-east-1b: 2, us-east-1c: 3}", LOSE_1A)
        .edit(
            "      instance_id: i-0a1          # optional; otherwise found by tag asdr:node=a1\n      private_ip: 10.0.1.11\n      availability_zone: us-east-1a\n",
            "      private_ip: 10.0.3.11\n      availability_zone: us-east-1c\n",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    let mut w = world_for(&policy, &spec);
    with_manifests(&policy, &mut w);
    for n in w.nodes.iter_mut().filter(|n| n.name == "a1") {
        for ns in n.namespaces.iter_mut() {
            ns.rack_id = Some(1);
        }
    }
    assert!(plan(&policy, &w, NOW, &Operation::Backup).is_err());
    let problems = asdr_planner::status::status(&policy, &w, NOW)
        .problems
        .join("\n");
    assert!(
        problems.contains("every plan is refused") && problems.contains("rack 1"),
        "{problems}"
    );
}

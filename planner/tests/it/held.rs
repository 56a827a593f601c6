//! What AWS holds that a plan must see before it takes a node out: volumes the plan changes by
//! themselves but that do not carry `asdr:cluster` (the IAM policy asdr generates denies the
//! change mid-apply: the plan says so, with the fix), and a node's address held by a network
//! interface (a replacement cannot launch with it: refused before anything is done).

use asdr_planner::testkit::{ExamplePolicy, Failure, WorldSpec, world_for};
use asdr_planner::world::{NetworkInterface, Subnet};
use asdr_planner::{Operation, plan};
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

#[test]
fn a_volume_without_the_cluster_tag_is_warned_before_a_restore_detaches_it() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    let mut w = world_for(&policy, &spec);
    let p = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap();
    assert!(
        !p.warnings.iter().any(|x| x.rule == "IAM"),
        "tagged volumes: nothing to say"
    );
    let a1 = w
        .instances
        .iter()
        .find(|i| i.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .unwrap()
        .id
        .clone();
    let untagged: Vec<String> = w
        .volumes
        .iter_mut()
        .filter(|v| v.attachments.iter().any(|a| a.instance_id == a1))
        .map(|v| {
            v.tags.remove("asdr:cluster");
            v.id.clone()
        })
        .collect();
    assert!(!untagged.is_empty());
    let p = plan(
        &policy,
        &w,
        NOW,
        &Operation::Restore("a1-from-backup".into()),
    )
    .unwrap();
    for id in &untagged {
        assert!(
            p.warnings.iter().any(|x| x.rule == "IAM"
                && x.message.contains(id.as_str())
                && x.message.contains("aws ec2 create-tags")),
            "{id}: {:?}",
            p.warnings
        );
    }
}

#[test]
fn a_replacement_whose_address_an_interface_still_holds_is_refused_before_anything_is_done() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let mut w = world_for(&policy, &spec);
    w.subnets.push(Subnet {
        id: "subnet-0aaa".into(),
        region: None,
        cidr: "10.0.1.0/24".into(),
        availability_zone: "us-east-1a".into(),
    });
    plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into())).unwrap();
    // The old instance's interface, kept when it was terminated (DeleteOnTermination false).
    w.network_interfaces.push(NetworkInterface {
        id: "eni-0kept".into(),
        subnet_id: Some("subnet-0aaa".into()),
        private_ips: vec!["10.0.1.11".into()],
        status: "available".into(),
        attached_to: None,
    });
    let err = plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into())).unwrap_err();
    assert!(
        err.to_string().contains(
            "10.0.1.11 is held by network interface eni-0kept (available, attached to nothing)"
        ),
        "{err}"
    );
    // The same address in another subnet (another VPC's overlapping range) is no conflict.
    w.network_interfaces[0].subnet_id = Some("subnet-0elsewhere".into());
    plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into())).unwrap();
}

#[test]
fn a_volume_without_the_cluster_tag_is_warned_before_a_replacement_reattaches_it() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 2;
    spec.failures = vec![("a1".into(), Failure::Terminated)];
    let mut w = world_for(&policy, &spec);
    let p = plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into())).unwrap();
    assert!(
        !p.warnings.iter().any(|x| x.rule == "IAM"),
        "{:?}",
        p.warnings
    );
    let untagged: Vec<String> = w
        .volumes
        .iter_mut()
        .filter(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
        .map(|v| {
            v.tags.remove("asdr:cluster");
            v.id.clone()
        })
        .collect();
    assert!(!untagged.is_empty());
    let p = plan(&policy, &w, NOW, &Operation::Restore("replace-a1".into())).unwrap();
    for id in &untagged {
        assert!(
            p.warnings.iter().any(|x| x.rule == "IAM"
                && x.message.contains(id.as_str())
                && x.message.contains("attach")),
            "{id}: {:?}",
            p.warnings
        );
    }
}

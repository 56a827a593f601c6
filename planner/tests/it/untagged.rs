//! Volumes the plan changes by themselves but that do not carry `asdr:cluster`: the IAM policy
//! asdr generates denies the change mid-apply, after the node was taken out of service. The plan
//! says so beside the change, with the fix.

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
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

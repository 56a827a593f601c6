//! The EC2 provider step by step against moto: what a backup's steps leave on EC2 when a process
//! is killed between them.

use std::collections::BTreeMap;

use asdr_planner::StepKind;
use asdr_planner::params::Learned;
use asdr_planner::ports::{Progress, Provider, StepInput};
use asdr_providers::ec2::Ec2Provider;
use asdr_providers::testkit_moto::{Moto, SeedNode, seed_node, tag_spec};
use aws_sdk_ec2::types::ResourceType;
use serde_json::json;

use crate::step_on;

const DEVICES: [&str; 2] = ["/dev/sdf", "/dev/sdg"];

/// Carries `step` out in plan "p" with what earlier steps learned, polling while it is pending.
async fn run(
    provider: &Ec2Provider,
    step: &asdr_planner::Step,
    learned: &BTreeMap<String, Learned>,
) -> Result<Learned, String> {
    let input = StepInput {
        plan_id: "p",
        step,
        learned,
    };
    if let Some(found) = provider.observe(input).await.map_err(|e| e.to_string())? {
        return Ok(found);
    }
    for _ in 0..50 {
        match provider.act(input).await.map_err(|e| e.to_string())? {
            Progress::Done(l) => return Ok(l),
            Progress::Pending { .. } => {
                tokio::time::sleep(std::time::Duration::from_millis(100)).await
            }
        }
    }
    Err(format!("{} still pending", step.id))
}

fn device_tags(snaps: &[aws_sdk_ec2::types::Snapshot]) -> BTreeMap<String, Option<String>> {
    snaps
        .iter()
        .map(|s| {
            let dev = s
                .tags()
                .iter()
                .find(|t| t.key() == Some("asdr:device"))
                .and_then(|t| t.value())
                .map(str::to_string);
            (s.volume_id().unwrap().to_string(), dev)
        })
        .collect()
}

/// A multi-volume snapshot is one CreateSnapshots whose tags are the same for every snapshot;
/// each snapshot's `asdr:device` comes from its wait. A process killed after the CreateSnapshots
/// leaves snapshots without devices: the set cannot be marked complete with them (R2), and the
/// waits of the resumed plan, in a new process, give each snapshot its own volume's device.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r2_a_set_is_complete_only_once_the_waits_of_a_resumed_backup_tag_each_snapshot_with_its_volumes_device()
 {
    let moto = Moto::start();
    let ec2 = moto.ec2();
    let (instance, volumes) = seed_node(
        &ec2,
        SeedNode {
            az: "us-east-1a",
            ..SeedNode::default()
        },
        &DEVICES,
    )
    .await;
    let snapshot = asdr_planner::Step {
        depends_on: vec![],
        ..step_on(
            "snapshot_instance:a1:bs",
            StepKind::SnapshotInstance,
            "a1",
            json!({"instance_id": instance, "set": "bs", "exclude_boot_volume": true,
                "volumes": DEVICES.iter().map(|d| json!({"device": d, "volume_id": volumes[*d]})).collect::<Vec<_>>(),
                "descriptions": [], "tags": {"asdr:cluster": "c", "asdr:set": "bs", "asdr:node": "a1"}}),
        )
    };
    let waits: Vec<asdr_planner::Step> = DEVICES
        .iter()
        .map(|d| asdr_planner::Step {
            depends_on: vec![snapshot.id.clone()],
            ..step_on(
                &format!("wait_snapshot:a1:{d}:bs"),
                StepKind::WaitSnapshot,
                "a1",
                json!({"set": "bs", "node": "a1", "device": d, "volume_id": volumes[*d]}),
            )
        })
        .collect();
    let mark = step_on(
        "mark_set_complete:bs",
        StepKind::MarkSetComplete,
        "a1",
        json!({"set": "bs", "snapshots": 2}),
    );

    // The first process: the snapshot step, then killed.
    let first = Ec2Provider::new(ec2.clone(), "c");
    let mut learned = BTreeMap::new();
    let made = run(&first, &snapshot, &learned).await.unwrap();
    assert_eq!(made.snapshot_ids.len(), 2);
    learned.insert(snapshot.id.clone(), made);
    let snaps = |ec2: aws_sdk_ec2::Client| async move {
        ec2.describe_snapshots()
            .owner_ids("self")
            .send()
            .await
            .unwrap()
            .snapshots()
            .to_vec()
    };
    assert!(
        device_tags(&snaps(ec2.clone()).await)
            .values()
            .all(Option::is_none),
        "CreateSnapshots tags all snapshots alike, without a device"
    );

    // What an earlier, abandoned plan left in the same set: a snapshot of the same volume.
    let other = ec2
        .create_snapshot()
        .volume_id(&volumes["/dev/sdf"])
        .tag_specifications(tag_spec(
            ResourceType::Snapshot,
            &[
                ("asdr:cluster", "c"),
                ("asdr:set", "bs"),
                ("asdr:node", "a1"),
                ("asdr:plan", "earlier"),
                ("asdr:step", "snapshot_instance:a1:bs"),
            ],
        ))
        .send()
        .await
        .unwrap()
        .snapshot_id
        .unwrap();

    // The resumed plan in a new process: the set is not complete before its waits.
    let mut second = Ec2Provider::new(ec2.clone(), "c");
    // No grace for EC2's delays here: the set is short, not late (with one, the mark waits).
    second.vanish_grace = std::time::Duration::ZERO;
    let early = run(&second, &mark, &learned).await;
    assert!(
        early.as_ref().is_err_and(|e| e.contains("IncompleteSet")),
        "{early:?}"
    );
    for w in &waits {
        let l = run(&second, w, &learned).await.unwrap();
        learned.insert(w.id.clone(), l);
    }
    let now = snaps(ec2.clone()).await;
    for s in now
        .iter()
        .filter(|s| s.snapshot_id() != Some(other.as_str()))
    {
        let dev = DEVICES
            .iter()
            .find(|d| Some(volumes[**d].as_str()) == s.volume_id())
            .unwrap();
        assert_eq!(
            device_tags(std::slice::from_ref(s))
                .into_values()
                .next()
                .unwrap()
                .as_deref(),
            Some(*dev)
        );
    }
    run(&second, &mark, &learned).await.unwrap();
    let all = snaps(ec2.clone()).await;
    assert!(all.iter().all(|s| {
        s.tags()
            .iter()
            .any(|t| t.key() == Some("asdr:complete") && t.value() == Some("true"))
    }));
    let straggler = all
        .iter()
        .find(|s| s.snapshot_id() == Some(other.as_str()))
        .unwrap();
    assert!(
        !straggler
            .tags()
            .iter()
            .any(|t| t.key() == Some("asdr:device")),
        "another run's snapshot of the same volume is never taken for this plan's"
    );
}

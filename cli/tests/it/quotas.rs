//! AWS quotas and capacity, which moto never runs out of (its snapshots and copies complete at
//! once, its capacity is endless): the strict layer refuses the next calls as EC2 does while a
//! quota or the capacity is exhausted, and asdr waits it out instead of failing the apply after
//! a few quick retries (about 30 s).

use crate::ec2::{all, env};

/// EBS keeps at most 5 snapshots of a volume pending: the backup's CreateSnapshots is refused
/// with ConcurrentSnapshotLimitExceeded until earlier ones complete. Eight refusals in a row (more
/// than the retries a transient error gets) and the backup still completes, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_snapshot_refused_for_the_volumes_pending_limit_waits_and_the_set_completes() {
    let env = env(140, &[]).await;
    env.moto
        .strict("refuse?action=CreateSnapshots&code=ConcurrentSnapshotLimitExceeded&count=8");
    let out = env.asdr(&["apply", "--yes"]);
    assert!(out.status.success(), "{}", all(&out));
    let refused = env.moto.refused();
    assert_eq!(
        refused
            .iter()
            .filter(|r| r.contains("ConcurrentSnapshotLimitExceeded"))
            .count(),
        8,
        "{refused:?}"
    );
    let snapshots = env.snapshots().await;
    assert_eq!(
        snapshots.len(),
        9,
        "one snapshot per node and device, no more"
    );
    assert!(
        snapshots
            .iter()
            .all(|s| crate::ec2::tag(s, "asdr:complete") == Some("true")),
        "the set is marked complete"
    );
}

/// No capacity for the replacement's type in its zone (InsufficientInstanceCapacity, which can
/// last minutes): the launch is asked again until capacity returns, and the node comes back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launch_without_capacity_is_asked_again_until_capacity_returns() {
    let env = env(142, &[]).await;
    env.terminate("a1").await;
    env.moto
        .strict("refuse?action=RunInstances&code=InsufficientInstanceCapacity&count=8");
    let out = env.asdr(&["apply", "--yes", "--restore", "replace-a1"]);
    assert!(out.status.success(), "{}", all(&out));
    assert_eq!(env.live_instances("a1").await.len(), 1);
    assert!(env.nodes.is_up("a1"));
}

/// EC2 shows tags after a delay: right after the waits tagged each snapshot with its device, the
/// mark's DescribeSnapshots may not show them yet. The set is not called incomplete for that: the
/// mark waits for EC2 to catch up, then marks it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_set_whose_device_tags_are_not_visible_yet_is_marked_once_they_are() {
    let env = env(144, &[]).await;
    env.moto
        .strict("stale-tags?key=asdr:device&count=5&filter=tag:asdr:set");
    let out = env.asdr(&["apply", "--yes"]);
    assert!(out.status.success(), "{}", all(&out));
    let snapshots = env.snapshots().await;
    assert_eq!(snapshots.len(), 9);
    assert!(
        snapshots
            .iter()
            .all(|s| crate::ec2::tag(s, "asdr:complete") == Some("true")),
        "the set is marked complete"
    );
}

/// A single-volume snapshot is taken with its node quiesced: held out of service for a quota
/// that takes hours to clear would only lengthen the window. ConcurrentSnapshotLimitExceeded
/// fails it after the usual retries, and the node is brought back (never left quiesced).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_quiesced_nodes_snapshot_refused_for_the_pending_limit_fails_and_the_node_comes_back() {
    let env = env(
        156,
        &[("consistency: multi-volume", "consistency: quiesce")],
    )
    .await;
    env.moto
        .strict("refuse?action=CreateSnapshot&code=ConcurrentSnapshotLimitExceeded&count=100");
    let started = std::time::Instant::now();
    let out = env.asdr(&["apply", "--yes"]);
    assert!(!out.status.success(), "{}", all(&out));
    assert!(
        all(&out).contains("ConcurrentSnapshotLimitExceeded"),
        "{}",
        all(&out)
    );
    assert!(
        started.elapsed() < std::time::Duration::from_secs(300),
        "failed, not held to the deadline"
    );
    assert!(
        all(&out).contains("unquiesce:"),
        "the quiesced node is brought back: {}",
        all(&out)
    );
}

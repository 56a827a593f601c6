//! What asdr asks EBS for a restore's and a copy's speed: CreateVolume's
//! VolumeInitializationRate and CopySnapshot's CompletionDurationMinutes. moto accepts and
//! ignores both, so the requests are aws-smithy-mocks rules here that answer only the request
//! carrying the value (and count the calls).

use std::collections::BTreeMap;

use asdr_planner::ports::{Provider, StepInput};
use asdr_planner::{Step, StepKind};
use asdr_providers::ec2::Ec2Provider;
use aws_sdk_ec2::operation::copy_snapshot::CopySnapshotOutput;
use aws_sdk_ec2::operation::create_volume::CreateVolumeOutput;
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
use aws_sdk_ec2::types::{Snapshot, SnapshotState};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::json;

fn step(id: &str, kind: StepKind, region: Option<&str>, params: serde_json::Value) -> Step {
    Step {
        region: region.map(str::to_string),
        id: id.into(),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(kind, params),
    }
}

async fn act(p: &Ec2Provider, step: &Step) {
    let learned = BTreeMap::new();
    p.act(StepInput {
        plan_id: "p-20261121T090000Z-test",
        step,
        learned: &learned,
    })
    .await
    .map(|_| ())
    .unwrap_or_else(|e| panic!("{}: {e:?}", step.id));
}

fn create_volume(rate: Option<u32>) -> Step {
    let mut p = json!({"availability_zone": "us-east-1a", "size_gib": 500, "type": "gp3",
        "snapshot_id": "snap-1", "encrypted": false, "kms_key_id": null,
        "client_token": "create_volume:a1:/dev/sdf", "tags": {"asdr:node": "a1"}});
    if let Some(rate) = rate {
        p["initialization_rate"] = json!(rate);
    }
    step("create_volume:a1:/dev/sdf", StepKind::CreateVolume, None, p)
}

#[tokio::test(start_paused = true)]
async fn create_volume_asks_ebs_for_the_restores_initialization_rate_and_for_none_without_one() {
    for rate in [Some(300), None] {
        let none = mock!(aws_sdk_ec2::Client::describe_volumes)
            .then_output(|| DescribeVolumesOutput::builder().build());
        let create = mock!(aws_sdk_ec2::Client::create_volume)
            .match_requests(move |r| {
                r.volume_initialization_rate() == rate.map(|r| r as i32)
                    && r.snapshot_id() == Some("snap-1")
            })
            .then_output(|| CreateVolumeOutput::builder().volume_id("vol-new").build());
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&none, &create]);
        act(&Ec2Provider::new(client, "prod-east"), &create_volume(rate)).await;
        assert_eq!(create.num_calls(), 1, "{rate:?}");
    }
}

#[tokio::test(start_paused = true)]
async fn a_time_based_copy_asks_ebs_to_complete_within_its_minutes() {
    for minutes in [Some(60), None] {
        let source = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
            DescribeSnapshotsOutput::builder()
                .snapshots(
                    Snapshot::builder()
                        .snapshot_id("snap-1")
                        .state(SnapshotState::Completed)
                        .build(),
                )
                .build()
        });
        let home = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&source]);
        let none = mock!(aws_sdk_ec2::Client::describe_snapshots)
            .then_output(|| DescribeSnapshotsOutput::builder().build());
        let copy = mock!(aws_sdk_ec2::Client::copy_snapshot)
            .match_requests(move |r| {
                r.completion_duration_minutes() == minutes
                    && r.source_snapshot_id() == Some("snap-1")
            })
            .then_output(|| {
                CopySnapshotOutput::builder()
                    .snapshot_id("snap-copy")
                    .build()
            });
        let west = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&none, &copy]);
        let p = Ec2Provider::new(home, "prod-east")
            .with_region("us-west-2", Ec2Provider::new(west, "prod-east"));
        let mut params = json!({"source": "snap-1", "source_region": "us-east-1",
            "set": "bs-20261121T090000Z", "node": "a1", "device": "/dev/sdf", "description": "",
            "encrypted": false, "tags": {}});
        if let Some(m) = minutes {
            params["completion_duration_minutes"] = json!(m);
        }
        let s = step(
            "copy_snapshot:us-west-2:a1:/dev/sdf:bs-20261121T090000Z",
            StepKind::CopySnapshot,
            Some("us-west-2"),
            params,
        );
        act(&p, &s).await;
        assert_eq!(copy.num_calls(), 1, "{minutes:?}");
    }
}

fn fsr_step(enable: bool, snapshots: &[(&str, &[&str])], cluster_id: &str) -> Step {
    let by_zone: serde_json::Map<String, serde_json::Value> = snapshots
        .iter()
        .map(|(z, ids)| ((*z).to_string(), json!(ids)))
        .collect();
    step(
        &format!(
            "fast_snapshot_restore:{}:a1-from-backup",
            if enable { "enable" } else { "disable" }
        ),
        StepKind::FastSnapshotRestore,
        None,
        json!({"enable": enable, "restore": "a1-from-backup", "snapshots": by_zone,
               "cluster_id": cluster_id}),
    )
}

/// EC2's answer to DescribeFastSnapshotRestores: these (snapshot, zone, state) rows.
fn fsr_rows(
    rows: &[(&str, &str, aws_sdk_ec2::types::FastSnapshotRestoreStateCode)],
) -> aws_sdk_ec2::operation::describe_fast_snapshot_restores::DescribeFastSnapshotRestoresOutput {
    use aws_sdk_ec2::types::DescribeFastSnapshotRestoreSuccessItem as Row;
    let mut out = aws_sdk_ec2::operation::describe_fast_snapshot_restores::DescribeFastSnapshotRestoresOutput::builder();
    for (id, zone, state) in rows {
        out = out.fast_snapshot_restores(
            Row::builder()
                .snapshot_id(*id)
                .availability_zone(*zone)
                .state(state.clone())
                .build(),
        );
    }
    out.build()
}

fn ours(id: &str, cluster_id: &str) -> Snapshot {
    use aws_sdk_ec2::types::Tag;
    Snapshot::builder()
        .snapshot_id(id)
        .state(SnapshotState::Completed)
        .tags(
            Tag::builder()
                .key("asdr:cluster")
                .value("prod-east")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("asdr:cluster-id")
                .value(cluster_id)
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn fsr_is_enabled_per_zone_for_its_own_snapshots_only_and_the_step_waits_for_enabled() {
    use aws_sdk_ec2::operation::enable_fast_snapshot_restores::EnableFastSnapshotRestoresOutput;
    use aws_sdk_ec2::types::FastSnapshotRestoreStateCode as S;
    // us-east-1a's snapshot is optimising already; us-east-1b's is off: only it is enabled, in
    // its own zone (never the cartesian product of every snapshot and zone).
    let states = mock!(aws_sdk_ec2::Client::describe_fast_snapshot_restores)
        .then_output(|| fsr_rows(&[("snap-a", "us-east-1a", S::Optimizing)]));
    let described = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-b", "c1"))
            .build()
    });
    let enable = mock!(aws_sdk_ec2::Client::enable_fast_snapshot_restores)
        .match_requests(|r| {
            r.availability_zones() == ["us-east-1b"] && r.source_snapshot_ids() == ["snap-b"]
        })
        .then_output(|| EnableFastSnapshotRestoresOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&states, &described, &enable]
    );
    let p = Ec2Provider::new(client, "prod-east");
    let s = fsr_step(
        true,
        &[("us-east-1a", &["snap-a"]), ("us-east-1b", &["snap-b"])],
        "c1",
    );
    let learned = BTreeMap::new();
    let progress = p
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .unwrap();
    match progress {
        asdr_planner::ports::Progress::Pending { note, .. } => assert!(
            note.contains("snap-a in us-east-1a optimizing")
                && note.contains("snap-b in us-east-1b disabled"),
            "{note}"
        ),
        done => panic!("done before every pair is enabled: {done:?}"),
    }
    assert_eq!(enable.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn fsr_enabled_everywhere_is_done_without_a_call_and_disabling_turns_off_only_what_is_on() {
    use aws_sdk_ec2::operation::disable_fast_snapshot_restores::DisableFastSnapshotRestoresOutput;
    use aws_sdk_ec2::types::FastSnapshotRestoreStateCode as S;
    let states = mock!(aws_sdk_ec2::Client::describe_fast_snapshot_restores).then_output(|| {
        fsr_rows(&[
            ("snap-a", "us-east-1a", S::Enabled),
            ("snap-b", "us-east-1b", S::Enabled),
        ])
    });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&states]);
    let s = fsr_step(
        true,
        &[("us-east-1a", &["snap-a"]), ("us-east-1b", &["snap-b"])],
        "c1",
    );
    act(&Ec2Provider::new(client, "prod-east"), &s).await;
    // Disabling: snap-b is still on in us-east-1b; snap-a in us-east-1a was turned off already.
    let states = mock!(aws_sdk_ec2::Client::describe_fast_snapshot_restores)
        .then_output(|| fsr_rows(&[("snap-b", "us-east-1b", S::Enabled)]));
    // Turned off only once the snapshot is seen to be the cluster's own.
    let described = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-b", "c1"))
            .build()
    });
    let disable = mock!(aws_sdk_ec2::Client::disable_fast_snapshot_restores)
        .match_requests(|r| {
            r.availability_zones() == ["us-east-1b"] && r.source_snapshot_ids() == ["snap-b"]
        })
        .then_output(|| DisableFastSnapshotRestoresOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&states, &described, &disable]
    );
    let s = fsr_step(
        false,
        &[("us-east-1a", &["snap-a"]), ("us-east-1b", &["snap-b"])],
        "c1",
    );
    act(&Ec2Provider::new(client, "prod-east"), &s).await;
    assert_eq!(disable.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn fsr_is_never_enabled_for_another_clusters_snapshot_and_a_refusal_says_ebss_words() {
    use aws_sdk_ec2::operation::enable_fast_snapshot_restores::EnableFastSnapshotRestoresOutput;
    use aws_sdk_ec2::types::{
        EnableFastSnapshotRestoreErrorItem, EnableFastSnapshotRestoreStateError,
        EnableFastSnapshotRestoreStateErrorItem,
    };
    let none = || {
        mock!(aws_sdk_ec2::Client::describe_fast_snapshot_restores).then_output(|| fsr_rows(&[]))
    };
    // A same-named cluster's snapshot (another id): refused before any enable.
    let states = none();
    let theirs = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-a", "c2"))
            .build()
    });
    let enable = mock!(aws_sdk_ec2::Client::enable_fast_snapshot_restores)
        .then_output(|| EnableFastSnapshotRestoresOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&states, &theirs, &enable]
    );
    let s = fsr_step(true, &[("us-east-1a", &["snap-a"])], "c1");
    let learned = BTreeMap::new();
    let e = Ec2Provider::new(client, "prod-east")
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .expect_err("not ours");
    assert_eq!(e.code, "NotOurs");
    assert_eq!(enable.num_calls(), 0);
    // EBS refuses a pair (the quota of snapshots per region): the step fails with its words.
    let states = none();
    let mine = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-a", "c1"))
            .build()
    });
    let refused = mock!(aws_sdk_ec2::Client::enable_fast_snapshot_restores).then_output(|| {
        EnableFastSnapshotRestoresOutput::builder()
            .unsuccessful(
                EnableFastSnapshotRestoreErrorItem::builder()
                    .snapshot_id("snap-a")
                    .fast_snapshot_restore_state_errors(
                        EnableFastSnapshotRestoreStateErrorItem::builder()
                            .availability_zone("us-east-1a")
                            .error(
                                EnableFastSnapshotRestoreStateError::builder()
                                    .code("FastSnapshotRestoreLimitExceeded")
                                    .message("limit of 5 snapshots")
                                    .build(),
                            )
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&states, &mine, &refused]);
    let e = Ec2Provider::new(client, "prod-east")
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .expect_err("refused");
    assert!(
        e.message
            .contains("FastSnapshotRestoreLimitExceeded: limit of 5 snapshots"),
        "{}",
        e.message
    );
}

#[tokio::test]
async fn the_world_file_models_fsr_from_enabling_through_optimizing_to_enabled_and_back_off() {
    use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
    use asdr_providers::world_provider::WorldFileProvider;
    let policy = ExamplePolicy::prod_east().policy();
    let world = world_for(
        &policy,
        &WorldSpec::new(time::macros::datetime!(2026-11-21 09:00 UTC)),
    );
    let snap = world.snapshots[0].clone();
    let id = snap.tags["asdr:cluster-id"].clone();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("world.yaml");
    std::fs::write(
        &path,
        asdr_providers::world_file::to_string(&world, asdr_providers::world_file::Format::Yaml)
            .unwrap(),
    )
    .unwrap();
    let p = WorldFileProvider::open(&path, None, "prod-east", std::sync::Arc::new(|_| {})).unwrap();
    let enable = fsr_step(true, &[("us-east-1a", &[&snap.id])], &id);
    let learned = BTreeMap::new();
    let input = || StepInput {
        plan_id: "p",
        step: &enable,
        learned: &learned,
    };
    let state = |w: &asdr_planner::World| {
        w.snapshots
            .iter()
            .find(|s| s.id == snap.id)
            .unwrap()
            .fast_restore
            .get("us-east-1a")
            .cloned()
    };
    let mut seen = Vec::new();
    loop {
        let progress = p.act(input()).await.unwrap();
        seen.push(state(&p.world().await));
        if matches!(progress, asdr_planner::ports::Progress::Done(_)) {
            break;
        }
        assert!(seen.len() < 5, "{seen:?}");
    }
    assert_eq!(
        seen,
        ["enabling", "optimizing", "enabled"].map(|s| Some(s.to_string()))
    );
    let disable = fsr_step(false, &[("us-east-1a", &[&snap.id])], &id);
    p.act(StepInput {
        plan_id: "p",
        step: &disable,
        learned: &learned,
    })
    .await
    .unwrap();
    assert_eq!(state(&p.world().await), None);
    // Another cluster id: refused, nothing changed.
    let theirs = fsr_step(true, &[("us-east-1a", &[&snap.id])], "another-id");
    let e = p
        .act(StepInput {
            plan_id: "p",
            step: &theirs,
            learned: &learned,
        })
        .await
        .expect_err("not ours");
    assert_eq!(e.code, "UnauthorizedOperation");
    assert_eq!(state(&p.world().await), None);
}

#[tokio::test(start_paused = true)]
async fn a_backup_keeping_fsr_on_the_newest_set_asks_for_it_and_does_not_wait_an_hour_per_tib() {
    use aws_sdk_ec2::operation::enable_fast_snapshot_restores::EnableFastSnapshotRestoresOutput;
    let states =
        mock!(aws_sdk_ec2::Client::describe_fast_snapshot_restores).then_output(|| fsr_rows(&[]));
    let described = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-a", "c1"))
            .build()
    });
    let enable = mock!(aws_sdk_ec2::Client::enable_fast_snapshot_restores)
        .match_requests(|r| r.source_snapshot_ids() == ["snap-a"])
        .then_output(|| EnableFastSnapshotRestoresOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&states, &described, &enable]
    );
    let mut s = fsr_step(true, &[("us-east-1a", &["snap-a"])], "c1");
    if let asdr_planner::params::Params::FastSnapshotRestore(p) = &mut s.params {
        p.no_wait = true;
    }
    let learned = BTreeMap::new();
    let progress = Ec2Provider::new(client, "prod-east")
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .unwrap();
    assert!(
        matches!(progress, asdr_planner::ports::Progress::Done(_)),
        "{progress:?}"
    );
    assert_eq!(enable.num_calls(), 1);
}

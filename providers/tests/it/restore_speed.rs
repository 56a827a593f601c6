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
                r.completion_duration_minutes() == minutes.map(|m| m as i32)
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

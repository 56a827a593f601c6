//! What moto cannot model, with aws-smithy-mocks through the real EC2 provider and executor:
//! snapshots that stay pending, SnapshotCreationPerVolumeRateExceeded (R15), RequestLimitExceeded,
//! InvalidIPAddress.InUse while the old instance shuts down, and client-token replay on resume.
//! Time is paused, so the 15 s backoffs take no wall time.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use asdr_executor::journal::Journal;
use asdr_executor::{Event, Options, Outcome, Report};
use asdr_planner::ports::{Provider, Retry, StepInput};
use asdr_planner::{Plan, Step, StepKind, Summary};
use asdr_providers::ec2::{Ec2Provider, client_token};
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::create_snapshot::{CreateSnapshotError, CreateSnapshotOutput};
use aws_sdk_ec2::operation::describe_instances::{DescribeInstancesError, DescribeInstancesOutput};
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::run_instances::RunInstancesOutput;
use aws_sdk_ec2::types::{
    Instance, InstanceState, InstanceStateName, Reservation, Snapshot, SnapshotState, Tag,
};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::json;

fn plan(steps: Vec<Step>) -> Plan {
    Plan {
        format_version: 1,
        plan_id: "p-20261121T090000Z-test".into(),
        cluster: "prod-east".into(),
        cluster_id: None,
        operation: "restore:replace-a1".into(),
        now: "2026-11-21T09:00:00Z".into(),
        spec_digest: String::new(),
        world_digest: String::new(),
        changes: vec![],
        summary: Summary {
            steps: steps.len(),
            ..Summary::default()
        },
        steps,
        warnings: vec![],
        rto: None,
    }
}

fn step(id: &str, kind: StepKind, params: serde_json::Value) -> Step {
    Step {
        region: None,
        id: id.into(),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(kind, params),
    }
}

async fn execute(provider: Ec2Provider, steps: Vec<Step>) -> (Report, Vec<Event>) {
    let dir = tempfile::tempdir().unwrap();
    let plan = plan(steps);
    let (mut journal, _) = Journal::open(dir.path(), &plan).unwrap();
    let events = Arc::new(Mutex::new(Vec::new()));
    let sink = events.clone();
    let opts = Options {
        poll_interval: Duration::from_secs(5),
        ..Options::default()
    };
    let report = asdr_executor::execute(
        Arc::new(plan),
        Arc::new(provider),
        &mut journal,
        BTreeMap::new(),
        &opts,
        &move |e: &Event| sink.lock().unwrap().push(e.clone()),
    )
    .await
    .unwrap();
    let events = events.lock().unwrap().clone();
    (report, events)
}

fn snapshot(state: SnapshotState, progress: &str) -> DescribeSnapshotsOutput {
    DescribeSnapshotsOutput::builder()
        .snapshots(
            Snapshot::builder()
                .snapshot_id("snap-1")
                .volume_id("vol-1")
                .state(state)
                .progress(progress)
                .build(),
        )
        .build()
}

#[tokio::test(start_paused = true)]
async fn a_pending_snapshot_is_polled_with_its_progress_until_completed() {
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .sequence()
        .output(|| snapshot(SnapshotState::Pending, "10%"))
        .output(|| snapshot(SnapshotState::Pending, "10%"))
        .output(|| snapshot(SnapshotState::Pending, "57%"))
        .output(|| snapshot(SnapshotState::Completed, "100%"))
        .repeatedly()
        .build();
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe]);
    let (report, events) = execute(
        Ec2Provider::new(client, "prod-east"),
        vec![step(
            "wait_snapshot:snap-1",
            StepKind::WaitSnapshot,
            json!({"snapshot_id": "snap-1"}),
        )],
    )
    .await;
    assert!(
        matches!(
            report.outcomes["wait_snapshot:snap-1"],
            Outcome::Done { .. }
        ),
        "{:?}",
        report.outcomes
    );
    let shown: Vec<Option<u8>> = events
        .iter()
        .filter_map(|e| {
            if let Event::Pending { percent, .. } = e {
                Some(*percent)
            } else {
                None
            }
        })
        .collect();
    assert_eq!(
        shown,
        [Some(10), Some(57)],
        "progress is shown while pending"
    );
}

fn rate_exceeded() -> CreateSnapshotError {
    CreateSnapshotError::generic(
        ErrorMetadata::builder()
            .code("SnapshotCreationPerVolumeRateExceeded")
            .message("The maximum per volume CreateSnapshot request rate has been exceeded.")
            .build(),
    )
}

#[tokio::test(start_paused = true)]
async fn r15_snapshot_creation_rate_exceeded_is_retried_after_at_least_15_seconds() {
    let create = mock!(aws_sdk_ec2::Client::create_snapshot)
        .sequence()
        .error(rate_exceeded)
        .output(|| {
            CreateSnapshotOutput::builder()
                .snapshot_id("snap-9")
                .build()
        })
        .build();
    let none = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| DescribeSnapshotsOutput::builder().build());
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&create, &none]);
    let provider = Ec2Provider::new(client, "prod-east");
    let s = step(
        "snapshot:a1:/dev/sdf:bs",
        StepKind::Snapshot,
        json!({"volume_id": "vol-1", "device": "/dev/sdf", "set": "bs", "tags": {"asdr:cluster": "prod-east"}}),
    );
    // The classification itself: transient, at least 15 s.
    let learned = BTreeMap::new();
    let err = provider
        .act(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code, "SnapshotCreationPerVolumeRateExceeded");
    assert!(
        matches!(err.retry, Retry::Transient { after } if after >= Duration::from_secs(15)),
        "{err:?}"
    );
    // Through the executor: the next attempt succeeds.
    let create = mock!(aws_sdk_ec2::Client::create_snapshot)
        .sequence()
        .error(rate_exceeded)
        .output(|| {
            CreateSnapshotOutput::builder()
                .snapshot_id("snap-9")
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&create, &none]);
    let started = tokio::time::Instant::now();
    let (report, _) = execute(Ec2Provider::new(client, "prod-east"), vec![s]).await;
    assert!(
        matches!(
            report.outcomes["snapshot:a1:/dev/sdf:bs"],
            Outcome::Done { attempts: 2, .. }
        ),
        "{:?}",
        report.outcomes
    );
    assert!(
        started.elapsed() >= Duration::from_secs(15),
        "waited {:?}",
        started.elapsed()
    );
}

#[tokio::test(start_paused = true)]
async fn request_limit_exceeded_is_retried_by_the_sdk() {
    let describe = mock!(aws_sdk_ec2::Client::describe_instances)
        .sequence()
        .error(|| {
            DescribeInstancesError::generic(
                ErrorMetadata::builder()
                    .code("RequestLimitExceeded")
                    .message("Request limit exceeded.")
                    .build(),
            )
        })
        .output(|| DescribeInstancesOutput::builder().build())
        .build();
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe], |c| c
        .retry_config(
            aws_sdk_ec2::config::retry::RetryConfig::standard().with_max_attempts(3)
        ));
    let provider = Ec2Provider::new(client, "prod-east");
    let s = step(
        "terminate_instance:a1",
        StepKind::TerminateInstance,
        json!({"instance_id": "i-old"}),
    );
    let learned = BTreeMap::new();
    provider
        .observe(StepInput {
            plan_id: "p",
            step: &s,
            learned: &learned,
        })
        .await
        .unwrap();
    assert_eq!(describe.num_calls(), 2, "throttled once, then answered");
}

fn reservation(
    id: &str,
    state: InstanceStateName,
    tags: &[(&str, &str)],
) -> DescribeInstancesOutput {
    let mut i = Instance::builder()
        .instance_id(id)
        .private_ip_address("10.0.1.11")
        .state(InstanceState::builder().name(state).build());
    for (k, v) in tags {
        i = i.tags(Tag::builder().key(*k).value(*v).build());
    }
    DescribeInstancesOutput::builder()
        .reservations(Reservation::builder().instances(i.build()).build())
        .build()
}

fn has_filter(
    r: &aws_sdk_ec2::operation::describe_instances::DescribeInstancesInput,
    name: &str,
) -> bool {
    r.filters().iter().any(|f| f.name() == Some(name))
}

fn provision() -> Step {
    step(
        "provision_instance:a1",
        StepKind::ProvisionInstance,
        json!({"private_ip": "10.0.1.11", "availability_zone": "us-east-1a", "subnet_id": "subnet-0aaa", "instance_type": "i4i.2xlarge", "ami": "ami-0123456789abcdef0", "security_groups": ["sg-0123"], "tags": {"asdr:cluster": "prod-east", "asdr:node": "a1"}}),
    )
}

#[tokio::test(start_paused = true)]
async fn an_address_still_held_by_the_shutting_down_instance_is_waited_out_and_the_token_is_deterministic()
 {
    let plan_id = "p-20261121T090000Z-test";
    let token = client_token(plan_id, "provision_instance:a1");
    assert_eq!(token, client_token(plan_id, "provision_instance:a1"));
    assert_ne!(
        token,
        client_token("p-other", "provision_instance:a1"),
        "another plan, another token"
    );
    assert!(token.len() <= 64);
    // Looking for this step's own instance (by asdr:plan/asdr:step): none yet.
    let mine = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| has_filter(r, "tag:asdr:plan"))
        .then_output(|| DescribeInstancesOutput::builder().build());
    let ours = [
        ("asdr:plan", plan_id),
        ("asdr:step", "provision_instance:a1"),
    ];
    let holders = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| has_filter(r, "private-ip-address"))
        .sequence()
        .output(|| reservation("i-old", InstanceStateName::ShuttingDown, &[]))
        .output(|| DescribeInstancesOutput::builder().build())
        .output(move || reservation("i-new", InstanceStateName::Running, &ours))
        .repeatedly()
        .build();
    let expected = token.clone();
    let run = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(move |r| {
            r.client_token() == Some(expected.as_str())
                && r.network_interfaces()[0].private_ip_address() == Some("10.0.1.11")
                && r.network_interfaces()[0].delete_on_termination() == Some(true)
        })
        .then_output(|| {
            RunInstancesOutput::builder()
                .instances(Instance::builder().instance_id("i-new").build())
                .build()
        });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&mine, &holders, &run]);
    let (report, events) = execute(Ec2Provider::new(client, "prod-east"), vec![provision()]).await;
    assert!(
        matches!(&report.outcomes["provision_instance:a1"], Outcome::Done { resources, .. } if resources.instance_id.as_deref() == Some("i-new")),
        "{:?}",
        report.outcomes
    );
    assert!(events.iter().any(|e| matches!(e, Event::Retrying { error, .. } if error.contains("InvalidIPAddress.InUse") && error.contains("i-old"))), "waited for the old instance");
    assert_eq!(run.num_calls(), 1);
}

#[tokio::test(start_paused = true)]
async fn a_resumed_apply_adopts_its_instance_and_does_not_launch_a_second() {
    let plan_id = "p-20261121T090000Z-test";
    let ours = [
        ("asdr:plan", plan_id),
        ("asdr:step", "provision_instance:a1"),
    ];
    // The interrupted run launched it; the resumed one finds it by its tags before acting.
    let mine = mock!(aws_sdk_ec2::Client::describe_instances)
        .match_requests(|r| has_filter(r, "tag:asdr:plan"))
        .then_output(move || reservation("i-new", InstanceStateName::Running, &ours));
    let run = mock!(aws_sdk_ec2::Client::run_instances).then_output(|| {
        RunInstancesOutput::builder()
            .instances(Instance::builder().instance_id("i-second").build())
            .build()
    });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&mine, &run]);
    let (report, _) = execute(Ec2Provider::new(client, "prod-east"), vec![provision()]).await;
    assert!(
        matches!(&report.outcomes["provision_instance:a1"], Outcome::Adopted { resources } if resources.instance_id.as_deref() == Some("i-new")),
        "{:?}",
        report.outcomes
    );
    assert_eq!(run.num_calls(), 0, "no second instance");
}

#[tokio::test]
async fn a_drill_check_names_the_step_and_action_ec2_refuses() {
    use asdr_providers::ec2::dry_run::Verdict;
    use aws_sdk_ec2::operation::create_volume::CreateVolumeError;
    use aws_sdk_ec2::operation::run_instances::RunInstancesError;
    let run = mock!(aws_sdk_ec2::Client::run_instances)
        .match_requests(|r| r.dry_run() == Some(true))
        .then_error(|| {
            RunInstancesError::generic(
                ErrorMetadata::builder()
                    .code("DryRunOperation")
                    .message("Request would have succeeded, but DryRun flag is set.")
                    .build(),
            )
        });
    let create = mock!(aws_sdk_ec2::Client::create_volume)
        .match_requests(|r| r.dry_run() == Some(true))
        .then_error(|| {
            CreateVolumeError::generic(
                ErrorMetadata::builder()
                    .code("UnauthorizedOperation")
                    .message("You are not authorized to perform this operation.")
                    .build(),
            )
        });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&run, &create]);
    let p = plan(vec![
        provision(),
        step(
            "create_volume:a1@q1:/dev/sdf",
            StepKind::CreateVolume,
            json!({"availability_zone": "us-east-1a", "size_gib": 500, "snapshot_id": "snap-1"}),
        ),
        step(
            "write_config:a1@q1",
            StepKind::WriteConfig,
            json!({"path": "/var/asdr/a1@q1/aerospike.conf", "content": ""}),
        ),
    ]);
    let checks = Ec2Provider::new(client, "prod-east").dry_run(&p).await;
    assert_eq!(checks.len(), 2, "only EC2 mutations are checked");
    assert_eq!(
        (checks[0].action.as_str(), &checks[0].verdict),
        ("ec2:RunInstances", &Verdict::Allowed)
    );
    assert_eq!(checks[1].step, "create_volume:a1@q1:/dev/sdf");
    assert_eq!(checks[1].action, "ec2:CreateVolume");
    assert_eq!(checks[1].verdict, Verdict::Denied);
    assert!(checks[1].message.contains("not authorized"));
}

fn drill_volume(state: aws_sdk_ec2::types::VolumeState) -> aws_sdk_ec2::types::Volume {
    aws_sdk_ec2::types::Volume::builder()
        .volume_id("vol-d1")
        .availability_zone("us-east-1a")
        .size(500)
        .state(state)
        .tags(
            Tag::builder()
                .key("asdr:cluster")
                .value("prod-east")
                .build(),
        )
        .tags(Tag::builder().key("asdr:drill").value("q1").build())
        .build()
}

#[tokio::test(start_paused = true)]
async fn defect_18_delete_volume_is_done_only_once_the_volume_is_gone() {
    use aws_sdk_ec2::operation::delete_volume::DeleteVolumeOutput;
    use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
    use aws_sdk_ec2::types::VolumeState;
    let describe = mock!(aws_sdk_ec2::Client::describe_volumes)
        .sequence()
        // observe (act reads the same answer): there and available; the next polls: deleting,
        // deleting, gone.
        .output(|| {
            DescribeVolumesOutput::builder()
                .volumes(drill_volume(VolumeState::Available))
                .build()
        })
        .output(|| {
            DescribeVolumesOutput::builder()
                .volumes(drill_volume(VolumeState::Deleting))
                .build()
        })
        .output(|| {
            DescribeVolumesOutput::builder()
                .volumes(drill_volume(VolumeState::Deleting))
                .build()
        })
        .output(|| DescribeVolumesOutput::builder().build())
        .build();
    let delete = mock!(aws_sdk_ec2::Client::delete_volume)
        .then_output(|| DeleteVolumeOutput::builder().build());
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe, &delete]);
    let mut s = step(
        "delete_volume:vol-d1",
        StepKind::DeleteVolume,
        json!({"volume_id": "vol-d1", "drill": "q1"}),
    );
    s.node = Some("a1@q1".into());
    let (report, events) = execute(Ec2Provider::new(client, "prod-east"), vec![s]).await;
    assert!(
        matches!(
            report.outcomes["delete_volume:vol-d1"],
            Outcome::Done { .. }
        ),
        "{:?}",
        report.outcomes
    );
    assert_eq!(delete.num_calls(), 1, "DeleteVolume once");
    let waits = events
        .iter()
        .filter(|e| matches!(e, Event::Pending { note, .. } if note.contains("deleting")))
        .count();
    assert!(
        waits >= 2,
        "the step waits while the volume is deleting: {events:?}"
    );
}

#[tokio::test(start_paused = true)]
async fn defect_19_create_volume_asks_for_the_datas_encryption_key() {
    use aws_sdk_ec2::operation::create_volume::CreateVolumeOutput;
    use aws_sdk_ec2::operation::describe_volumes::DescribeVolumesOutput;
    let key = "arn:aws:kms:us-east-1:111122223333:key/prod";
    let none = mock!(aws_sdk_ec2::Client::describe_volumes)
        .then_output(|| DescribeVolumesOutput::builder().build());
    // Only a request for an encrypted volume with the data's key is answered.
    let create = mock!(aws_sdk_ec2::Client::create_volume)
        .match_requests(move |r| r.encrypted() == Some(true) && r.kms_key_id() == Some(key))
        .then_output(|| CreateVolumeOutput::builder().volume_id("vol-new").build());
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&none, &create]);
    let s = step(
        "create_volume:a1:/dev/sdf",
        StepKind::CreateVolume,
        json!({"availability_zone": "us-east-1a", "size_gib": 500, "type": "gp3", "snapshot_id": null,
               "encrypted": true, "kms_key_id": key, "client_token": "create_volume:a1:/dev/sdf",
               "tags": {"asdr:cluster": "prod-east", "asdr:node": "a1", "asdr:device": "/dev/sdf"}}),
    );
    let (report, _) = execute(Ec2Provider::new(client, "prod-east"), vec![s]).await;
    assert!(
        matches!(
            report.outcomes["create_volume:a1:/dev/sdf"],
            Outcome::Done { .. }
        ),
        "{:?}",
        report.outcomes
    );
    assert_eq!(create.num_calls(), 1);
}

/// EC2 refuses a CreateSnapshots request that names the root volume among the data volumes to
/// exclude (moto does not): the root volume is left to ExcludeBootVolume, and only the other
/// data volumes are excluded.
#[tokio::test]
async fn a_multi_volume_snapshot_never_names_the_root_volume_among_the_excluded() {
    use aws_sdk_ec2::operation::create_snapshots::CreateSnapshotsOutput;
    use aws_sdk_ec2::types::{EbsInstanceBlockDevice, InstanceBlockDeviceMapping, SnapshotInfo};
    let none = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| DescribeSnapshotsOutput::builder().build());
    let device = |name: &str, vol: &str| {
        InstanceBlockDeviceMapping::builder()
            .device_name(name)
            .ebs(EbsInstanceBlockDevice::builder().volume_id(vol).build())
            .build()
    };
    let described = move || {
        DescribeInstancesOutput::builder()
            .reservations(
                Reservation::builder()
                    .instances(
                        Instance::builder()
                            .instance_id("i-0a1")
                            .root_device_name("/dev/xvda")
                            .block_device_mappings(device("/dev/xvda", "vol-root"))
                            .block_device_mappings(device("/dev/sdf", "vol-f"))
                            .block_device_mappings(device("/dev/sdg", "vol-g"))
                            .block_device_mappings(device("/dev/sdz", "vol-scratch"))
                            .build(),
                    )
                    .build(),
            )
            .build()
    };
    let instance = mock!(aws_sdk_ec2::Client::describe_instances).then_output(described);
    let create = mock!(aws_sdk_ec2::Client::create_snapshots)
        .match_requests(|r| {
            let spec = r.instance_specification().expect("an instance");
            spec.exclude_boot_volume() == Some(true)
                && spec.exclude_data_volume_ids() == ["vol-scratch".to_string()]
        })
        .then_output(|| {
            CreateSnapshotsOutput::builder()
                .snapshots(
                    SnapshotInfo::builder()
                        .snapshot_id("snap-f")
                        .volume_id("vol-f")
                        .build(),
                )
                .snapshots(
                    SnapshotInfo::builder()
                        .snapshot_id("snap-g")
                        .volume_id("vol-g")
                        .build(),
                )
                .build()
        });
    let tags = mock!(aws_sdk_ec2::Client::create_tags)
        .then_output(|| aws_sdk_ec2::operation::create_tags::CreateTagsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&none, &instance, &create, &tags]
    );
    let s = step(
        "snapshot_instance:a1:bs",
        StepKind::SnapshotInstance,
        json!({"instance_id": "i-0a1", "set": "bs", "exclude_boot_volume": true,
            "volumes": [{"device": "/dev/sdf", "volume_id": "vol-f"}, {"device": "/dev/sdg", "volume_id": "vol-g"}],
            "descriptions": [], "tags": {"asdr:cluster": "prod-east"}}),
    );
    let (report, _) = execute(Ec2Provider::new(client, "prod-east"), vec![s]).await;
    assert!(
        matches!(
            &report.outcomes["snapshot_instance:a1:bs"],
            Outcome::Done { resources, .. } if resources.snapshot_ids == ["snap-f", "snap-g"]
        ),
        "{:?}",
        report.outcomes
    );
    assert_eq!(
        create.num_calls(),
        1,
        "the request matched: root not excluded"
    );
}

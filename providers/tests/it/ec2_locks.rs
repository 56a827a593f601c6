//! EBS snapshot locks (R20) through the real EC2 provider. moto implements neither LockSnapshot
//! nor DescribeLockedSnapshots (it answers 500), so the requests and EC2's answers, including
//! its error codes (`SnapshotLocked`, `IncorrectState`, throttling), are aws-smithy-mocks rules.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use asdr_planner::ports::{Provider, Retry, StepInput};
use asdr_planner::{Step, StepKind};
use asdr_providers::ec2::Ec2Provider;
use aws_sdk_ec2::error::ErrorMetadata;
use aws_sdk_ec2::operation::create_tags::CreateTagsOutput;
use aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotError;
use aws_sdk_ec2::operation::describe_locked_snapshots::DescribeLockedSnapshotsOutput;
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::lock_snapshot::{LockSnapshotError, LockSnapshotOutput};
use aws_sdk_ec2::types::{LockState, LockedSnapshotsInfo, Snapshot, SnapshotState, Tag};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use aws_smithy_types::DateTime;
use serde_json::json;

fn ours(id: &str) -> Snapshot {
    Snapshot::builder()
        .snapshot_id(id)
        .volume_id("vol-1")
        .state(SnapshotState::Completed)
        .tags(
            Tag::builder()
                .key("asdr:cluster")
                .value("prod-east")
                .build(),
        )
        .tags(
            Tag::builder()
                .key("asdr:set")
                .value("bs-20261121T090000Z")
                .build(),
        )
        .build()
}

fn described(ids: &[&str]) -> DescribeSnapshotsOutput {
    let mut b = DescribeSnapshotsOutput::builder();
    for id in ids {
        b = b.snapshots(ours(id));
    }
    b.build()
}

fn locked(id: &str, state: LockState, expires: i64, cool_off: Option<i64>) -> LockedSnapshotsInfo {
    LockedSnapshotsInfo::builder()
        .snapshot_id(id)
        .lock_state(state)
        .lock_expires_on(DateTime::from_secs(expires))
        .set_cool_off_period_expires_on(cool_off.map(DateTime::from_secs))
        .build()
}

fn lock_step(mode: &str, until: &str) -> Step {
    Step {
        region: None,
        id: "lock_snapshots:bs-20261121T090000Z".into(),
        node: None,
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::LockSnapshots,
            json!({"set": "bs-20261121T090000Z", "snapshots": ["snap-1", "snap-2"],
                   "mode": mode, "until": until, "cool_off_hours": 12}),
        ),
    }
}

async fn act(provider: &Ec2Provider, step: &Step) -> Result<(), asdr_planner::ports::StepError> {
    let learned = BTreeMap::new();
    provider
        .act(StepInput {
            plan_id: "p",
            step,
            learned: &learned,
        })
        .await
        .map(|_| ())
}

/// The LockSnapshot requests a test saw.
type Asked<T> = Arc<Mutex<Vec<T>>>;
/// A LockSnapshot request: snapshot, mode, expiration date, duration in days, cool-off hours.
type Request = (String, String, Option<i64>, Option<i32>, Option<i32>);

/// 2099-01-01T00:00:00Z: a lock far ahead of any test's clock.
const FAR: i64 = 4_070_908_800;

#[tokio::test]
async fn lock_snapshots_asks_ec2_for_the_policys_lock_only_where_it_is_not_held_yet() {
    let asked: Asked<Request> = Arc::default();
    let seen = asked.clone();
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| described(&["snap-1", "snap-2"]));
    // snap-2 already holds a governance lock past the one asked for; snap-1 holds none.
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots).then_output(|| {
        DescribeLockedSnapshotsOutput::builder()
            .snapshots(locked("snap-2", LockState::Governance, FAR, None))
            .build()
    });
    let lock = mock!(aws_sdk_ec2::Client::lock_snapshot)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.snapshot_id().unwrap_or_default().to_string(),
                r.lock_mode()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
                r.expiration_date().map(|d| d.secs()),
                r.lock_duration(),
                r.cool_off_period(),
            ));
            true
        })
        .then_output(|| LockSnapshotOutput::builder().snapshot_id("snap-1").build());
    let tags =
        mock!(aws_sdk_ec2::Client::create_tags).then_output(|| CreateTagsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &lock, &tags]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    act(&provider, &lock_step("governance", "2098-01-01T00:00:00Z"))
        .await
        .unwrap();
    let asked = asked.lock().unwrap().clone();
    assert_eq!(
        asked,
        vec![(
            "snap-1".to_string(),
            "governance".to_string(),
            Some(4_039_372_800),
            None,
            None
        )],
        "one LockSnapshot, of the unlocked snapshot, until the set's time + duration, no cool-off on governance"
    );
}

#[tokio::test]
async fn a_governance_lock_ending_sooner_is_made_compliance_until_the_policys_date_and_one_ending_later_is_left()
 {
    let asked: Asked<(String, String, Option<i64>, Option<i32>)> = Arc::default();
    let seen = asked.clone();
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| described(&["snap-1", "snap-2"]));
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots).then_output(|| {
        DescribeLockedSnapshotsOutput::builder()
            .snapshots(locked(
                "snap-1",
                LockState::Governance,
                FAR - 86_400 * 400,
                None,
            ))
            // Already compliance (cool-off over), ending sooner than asked: extended only.
            .snapshots(locked(
                "snap-2",
                LockState::Compliance,
                FAR - 86_400 * 400,
                None,
            ))
            .build()
    });
    let lock = mock!(aws_sdk_ec2::Client::lock_snapshot)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.snapshot_id().unwrap_or_default().to_string(),
                r.lock_mode()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
                r.expiration_date().map(|d| d.secs()),
                r.cool_off_period(),
            ));
            true
        })
        .then_output(|| LockSnapshotOutput::builder().build());
    let tags =
        mock!(aws_sdk_ec2::Client::create_tags).then_output(|| CreateTagsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &lock, &tags]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    act(&provider, &lock_step("compliance", "2098-01-01T00:00:00Z"))
        .await
        .unwrap();
    let mut asked = asked.lock().unwrap().clone();
    asked.sort();
    assert_eq!(
        asked,
        vec![
            (
                "snap-1".to_string(),
                "compliance".to_string(),
                Some(4_039_372_800),
                Some(12)
            ),
            (
                "snap-2".to_string(),
                "compliance".to_string(),
                Some(4_039_372_800),
                None
            ),
        ]
    );
}

#[tokio::test]
async fn a_snapshot_of_another_cluster_is_never_locked() {
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| {
        DescribeSnapshotsOutput::builder()
            .snapshots(ours("snap-1"))
            .snapshots(
                Snapshot::builder()
                    .snapshot_id("snap-2")
                    .tags(
                        Tag::builder()
                            .key("asdr:cluster")
                            .value("prod-west")
                            .build(),
                    )
                    .build(),
            )
            .build()
    });
    let lock = mock!(aws_sdk_ec2::Client::lock_snapshot)
        .then_output(|| LockSnapshotOutput::builder().build());
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe, &lock]);
    let provider = Ec2Provider::new(client, "prod-east");
    let err = act(&provider, &lock_step("governance", "2098-01-01T00:00:00Z"))
        .await
        .unwrap_err();
    assert_eq!(err.code, "R13");
    assert_eq!(lock.num_calls(), 0, "nothing was locked");
}

fn refused(code: &'static str) -> impl Fn() -> LockSnapshotError {
    move || {
        LockSnapshotError::generic(
            ErrorMetadata::builder()
                .code(code)
                .message("The snapshot lock cannot be modified")
                .build(),
        )
    }
}

#[tokio::test]
async fn incorrect_state_from_lock_snapshot_fails_at_once_and_throttling_is_retried() {
    for (code, transient) in [("IncorrectState", false), ("RequestLimitExceeded", true)] {
        let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
            .then_output(|| described(&["snap-1", "snap-2"]));
        let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots)
            .then_output(|| DescribeLockedSnapshotsOutput::builder().build());
        let lock = mock!(aws_sdk_ec2::Client::lock_snapshot).then_error(refused(code));
        let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe, &locks, &lock]);
        let provider = Ec2Provider::new(client, "prod-east");
        let err = act(&provider, &lock_step("governance", "2098-01-01T00:00:00Z"))
            .await
            .unwrap_err();
        assert_eq!(err.code, code);
        assert_eq!(
            matches!(err.retry, Retry::Transient { .. }),
            transient,
            "{code}: {err:?}"
        );
        if code == "IncorrectState" {
            assert!(
                err.message.contains("not marked until it is locked"),
                "{}",
                err.message
            );
        }
    }
}

#[tokio::test]
async fn a_delete_ec2_refuses_as_snapshot_locked_fails_for_good_and_says_the_snapshot_is_kept() {
    let describe =
        mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| described(&["snap-1"]));
    let delete = mock!(aws_sdk_ec2::Client::delete_snapshot).then_error(|| {
        DeleteSnapshotError::generic(
            ErrorMetadata::builder()
                .code("SnapshotLocked")
                .message("The snapshot snap-1 is locked and can't be deleted.")
                .build(),
        )
    });
    // The set's locks read before its first delete show none (a lock made since, EC2 refuses).
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots)
        .then_output(|| DescribeLockedSnapshotsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &delete]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    let step = Step {
        region: None,
        id: "delete_snapshot:snap-1".into(),
        node: None,
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::DeleteSnapshot,
            json!({"snapshot_id": "snap-1", "set": "bs-20261121T090000Z"}),
        ),
    };
    let err = act(&provider, &step).await.unwrap_err();
    assert_eq!(err.code, "SnapshotLocked");
    assert_eq!(err.retry, Retry::Permanent);
    assert!(err.message.contains("it is kept (R20)"), "{}", err.message);
}

#[tokio::test]
async fn describe_locked_snapshots_is_read_as_locks_that_hold() {
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots)
        .match_requests(|r| r.snapshot_ids().len() == 3)
        .then_output(|| {
            DescribeLockedSnapshotsOutput::builder()
                .snapshots(locked("snap-1", LockState::Governance, FAR, None))
                .snapshots(locked(
                    "snap-2",
                    LockState::ComplianceCooloff,
                    FAR,
                    Some(FAR - 3600),
                ))
                .snapshots(locked("snap-3", LockState::Expired, 1_700_000_000, None))
                .build()
        });
    let client = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&locks]);
    let provider = Ec2Provider::new(client, "prod-east");
    let got = provider
        .locks_of(&["snap-1".into(), "snap-2".into(), "snap-3".into()])
        .await
        .unwrap();
    assert_eq!(got.len(), 2, "an expired lock is no lock: {got:?}");
    assert_eq!(got["snap-1"].mode, asdr_specs::LockMode::Governance);
    let c = got["snap-2"];
    assert_eq!(c.mode, asdr_specs::LockMode::Compliance);
    assert_eq!(
        c.cool_off_until.map(|t| t.unix_timestamp()),
        Some(FAR - 3600),
        "still in its cool-off"
    );
}

#[tokio::test]
async fn extending_a_compliance_lock_in_its_cool_off_resends_what_is_left_of_the_cool_off() {
    let asked: Asked<Request> = Arc::default();
    let seen = asked.clone();
    let now = time::OffsetDateTime::now_utc().unix_timestamp();
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| described(&["snap-1", "snap-2"]));
    // snap-1: compliance, 5 h of cool-off left, ending before the policy's date; snap-2: held.
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots).then_output(move || {
        DescribeLockedSnapshotsOutput::builder()
            .snapshots(locked(
                "snap-1",
                LockState::ComplianceCooloff,
                now + 86_400 * 10,
                Some(now + 5 * 3600 - 60),
            ))
            .snapshots(locked("snap-2", LockState::Compliance, FAR, None))
            .build()
    });
    let lock = mock!(aws_sdk_ec2::Client::lock_snapshot)
        .match_requests(move |r| {
            seen.lock().unwrap().push((
                r.snapshot_id().unwrap_or_default().to_string(),
                r.lock_mode()
                    .map(|m| m.as_str().to_string())
                    .unwrap_or_default(),
                r.expiration_date().map(|d| d.secs()),
                r.lock_duration(),
                r.cool_off_period(),
            ));
            true
        })
        .then_output(|| LockSnapshotOutput::builder().build());
    let tags =
        mock!(aws_sdk_ec2::Client::create_tags).then_output(|| CreateTagsOutput::builder().build());
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &lock, &tags]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    act(&provider, &lock_step("compliance", "2098-01-01T00:00:00Z"))
        .await
        .unwrap();
    let asked = asked.lock().unwrap().clone();
    assert_eq!(asked.len(), 1, "{asked:?}");
    assert_eq!(asked[0].0, "snap-1");
    assert_eq!(
        asked[0].4,
        Some(5),
        "the cool-off left, rounded up: omitted, it would end at once"
    );
    // Both snapshots end up tagged (snap-2 was locked already and lacked the tag).
    assert_eq!(tags.num_calls(), 2);
}

fn delete_step(id: &str) -> Step {
    Step {
        region: None,
        id: format!("delete_snapshot:{id}"),
        node: None,
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::DeleteSnapshot,
            json!({"snapshot_id": id, "set": "bs-20261121T090000Z"}),
        ),
    }
}

#[tokio::test]
async fn a_set_with_one_locked_snapshot_loses_none_though_the_plan_read_no_locks() {
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| described(&["snap-1", "snap-2"]));
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots).then_output(|| {
        DescribeLockedSnapshotsOutput::builder()
            .snapshots(locked("snap-2", LockState::Governance, FAR, None))
            .build()
    });
    let delete = mock!(aws_sdk_ec2::Client::delete_snapshot).then_output(|| {
        aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotOutput::builder().build()
    });
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &delete]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    for id in ["snap-1", "snap-2"] {
        let err = act(&provider, &delete_step(id)).await.unwrap_err();
        assert_eq!(err.code, "SnapshotLocked");
        assert!(
            err.message.contains("holds locked snapshot snap-2"),
            "{}",
            err.message
        );
    }
    assert_eq!(delete.num_calls(), 0, "nothing of the set was deleted");
    assert_eq!(locks.num_calls(), 1, "asked once per set");
}

#[tokio::test]
async fn where_locks_cannot_be_read_a_delete_goes_on_and_ec2_alone_guards_each_lock() {
    let describe =
        mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(|| described(&["snap-1"]));
    let locks = mock!(aws_sdk_ec2::Client::describe_locked_snapshots).then_error(|| {
        aws_sdk_ec2::operation::describe_locked_snapshots::DescribeLockedSnapshotsError::generic(
            ErrorMetadata::builder()
                .code("UnauthorizedOperation")
                .message("You are not authorized to perform this operation.")
                .build(),
        )
    });
    let delete = mock!(aws_sdk_ec2::Client::delete_snapshot).then_output(|| {
        aws_sdk_ec2::operation::delete_snapshot::DeleteSnapshotOutput::builder().build()
    });
    let client = mock_client!(
        aws_sdk_ec2,
        RuleMode::MatchAny,
        &[&describe, &locks, &delete]
    );
    let provider = Ec2Provider::new(client, "prod-east");
    act(&provider, &delete_step("snap-1")).await.unwrap();
    assert_eq!(delete.num_calls(), 1);
}

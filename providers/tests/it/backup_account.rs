//! A copy into a backup account through the real EC2 provider: the cluster's account shares
//! the source with that account (ModifySnapshotAttribute) and, for a source encrypted with a
//! customer managed key, grants the backup account's role that key (KMS CreateGrant), before the
//! backup account's role copies it. moto's snapshots never carry their volume's KMS key id, so
//! EC2 is aws-smithy-mocks rules here (the requests asserted); KMS is moto's (CreateGrant,
//! ListGrants).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use asdr_planner::ports::{Provider, StepInput};
use asdr_planner::{Step, StepKind};
use asdr_providers::ec2::Ec2Provider;
use aws_sdk_ec2::operation::copy_snapshot::CopySnapshotOutput;
use aws_sdk_ec2::operation::describe_snapshots::DescribeSnapshotsOutput;
use aws_sdk_ec2::operation::modify_snapshot_attribute::ModifySnapshotAttributeOutput;
use aws_sdk_ec2::types::{Snapshot, SnapshotState, Tag};
use aws_smithy_mocks::{RuleMode, mock, mock_client};
use serde_json::json;

const ACCOUNT: &str = "222233334444";
const ROLE: &str = "arn:aws:iam::222233334444:role/asdr-backup";
const PLACE: &str = "us-west-2@222233334444";

fn source(key: Option<&str>, cluster_id: &str) -> Snapshot {
    Snapshot::builder()
        .snapshot_id("snap-1")
        .volume_id("vol-1")
        .state(SnapshotState::Completed)
        .encrypted(key.is_some())
        .set_kms_key_id(key.map(str::to_string))
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

fn copy_step() -> Step {
    Step {
        region: Some(PLACE.into()),
        id: "copy_snapshot:us-west-2@222233334444:a1:/dev/sdf:bs-20261121T090000Z".into(),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::CopySnapshot,
            json!({"source": "snap-1", "source_region": "us-east-1", "set": "bs-20261121T090000Z",
                   "node": "a1", "device": "/dev/sdf", "description": "", "encrypted": false,
                   "tags": {}, "share_with": ACCOUNT, "grant_to": ROLE, "cluster_id": "c1"}),
        ),
    }
}

/// The provider: the cluster's account (mocked EC2 answering `src`, recording whom it shares
/// with; moto's KMS) and the backup account's place (mocked EC2 that copies).
fn provider(
    src: Snapshot,
    kms: aws_sdk_kms::Client,
    shared: Arc<Mutex<Vec<String>>>,
) -> Ec2Provider {
    let describe = mock!(aws_sdk_ec2::Client::describe_snapshots).then_output(move || {
        DescribeSnapshotsOutput::builder()
            .snapshots(src.clone())
            .build()
    });
    let share = mock!(aws_sdk_ec2::Client::modify_snapshot_attribute)
        .match_requests(move |r| {
            shared.lock().unwrap().extend(r.user_ids().iter().cloned());
            true
        })
        .then_output(|| ModifySnapshotAttributeOutput::builder().build());
    let home = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&describe, &share]);
    let none = mock!(aws_sdk_ec2::Client::describe_snapshots)
        .then_output(|| DescribeSnapshotsOutput::builder().build());
    let copy = mock!(aws_sdk_ec2::Client::copy_snapshot).then_output(|| {
        CopySnapshotOutput::builder()
            .snapshot_id("snap-copy")
            .build()
    });
    let vault = mock_client!(aws_sdk_ec2, RuleMode::MatchAny, &[&none, &copy]);
    let mut p = Ec2Provider::new(home, "prod-east");
    p.kms = Some(kms);
    p.with_region(PLACE, Ec2Provider::new(vault, "prod-east"))
}

async fn act(p: &Ec2Provider, step: &Step) -> Result<(), asdr_planner::ports::StepError> {
    let learned = BTreeMap::new();
    p.act(StepInput {
        plan_id: "p",
        step,
        learned: &learned,
    })
    .await
    .map(|_| ())
}

#[tokio::test]
async fn an_encrypted_source_is_shared_with_the_backup_account_and_its_key_granted_to_that_role_only()
 {
    let moto = asdr_providers::testkit_moto::Moto::start();
    let kms = moto.kms();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .arn()
        .unwrap()
        .to_string();
    let shared = Arc::new(Mutex::new(Vec::new()));
    let p = provider(source(Some(&key), "c1"), kms.clone(), shared.clone());
    act(&p, &copy_step()).await.unwrap();
    assert_eq!(*shared.lock().unwrap(), vec![ACCOUNT.to_string()]);
    let grants = kms.list_grants().key_id(&key).send().await.unwrap();
    let grants = grants.grants();
    assert!(!grants.is_empty(), "the key is granted");
    for g in grants {
        assert_eq!(g.grantee_principal(), Some(ROLE));
        let ops: Vec<&str> = g.operations().iter().map(|o| o.as_str()).collect();
        assert!(
            ops.contains(&"Decrypt") && ops.contains(&"CreateGrant"),
            "{ops:?}"
        );
        assert!(
            !ops.contains(&"Encrypt") && !ops.contains(&"RetireGrant"),
            "{ops:?}"
        );
    }
}

#[tokio::test]
async fn an_unencrypted_source_grants_nothing_and_another_clusters_source_is_never_shared() {
    let moto = asdr_providers::testkit_moto::Moto::start();
    let kms = moto.kms();
    let key = kms
        .create_key()
        .send()
        .await
        .unwrap()
        .key_metadata()
        .unwrap()
        .key_id()
        .to_string();
    let shared = Arc::new(Mutex::new(Vec::new()));
    let p = provider(source(None, "c1"), kms.clone(), shared.clone());
    act(&p, &copy_step()).await.unwrap();
    assert_eq!(*shared.lock().unwrap(), vec![ACCOUNT.to_string()]);
    assert!(
        kms.list_grants()
            .key_id(&key)
            .send()
            .await
            .unwrap()
            .grants()
            .is_empty(),
        "no key to grant"
    );
    // A same-named cluster's snapshot (another cluster id): refused before any share.
    let shared = Arc::new(Mutex::new(Vec::new()));
    let p = provider(source(None, "someone-else"), kms, shared.clone());
    let e = act(&p, &copy_step()).await.expect_err("not ours");
    assert_eq!(e.code, "R13", "{e:?}");
    assert!(shared.lock().unwrap().is_empty(), "nothing shared");
}

//! S3 Object Lock on a locked set's store files (R20), against moto's S3, which implements Object
//! Lock: the bucket's configuration read, an SMD archive written by `copy_smd` and a copy written
//! by `copy_smd_archive` both retained with the set's lock, the retention read back, and a
//! retained version refused deletion; a bucket without Object Lock refuses the retention and the
//! step says the set is not marked without it.

use crate::{act, done, step_on};

use asdr_planner::StepKind;
use asdr_planner::params::Retention;
use asdr_providers::exec::local::Local;
use asdr_providers::node_provider::NodeProvider;
use asdr_providers::store::Store;
use asdr_providers::store::s3::{AnyStore, S3Store};
use asdr_specs::LockMode;

const SET: &str = "bs-20261121T090000Z";

fn policy(root: &str) -> asdr_specs::Policy {
    asdr_planner::testkit::ExamplePolicy::prod_east()
        .edit(
            "work_directory: /opt/aerospike",
            &format!("work_directory: {root}/{{{{ node }}}}"),
        )
        .policy()
}

#[tokio::test]
async fn a_locked_sets_store_files_are_kept_by_s3_object_lock_against_moto() {
    let moto = asdr_providers::testkit_moto::Moto::start();
    let raw = moto.s3();
    raw.create_bucket()
        .bucket("locked-backups")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    raw.create_bucket()
        .bucket("plain-backups")
        .send()
        .await
        .unwrap();
    let s3 = S3Store::new(raw.clone());
    let store = AnyStore {
        s3: Some(s3.clone()),
        ..AnyStore::default()
    };
    assert!(
        store
            .object_lock_enabled("s3://locked-backups/asdr")
            .await
            .unwrap()
    );
    assert!(
        !store
            .object_lock_enabled("s3://plain-backups/asdr")
            .await
            .unwrap()
    );

    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().display().to_string();
    std::fs::create_dir_all(dir.path().join("a1/smd")).unwrap();
    std::fs::write(dir.path().join("a1/smd/UDF.smd"), b"[]").unwrap();
    let nodes = NodeProvider::for_policy(&policy(&root), Local::default(), store.clone());
    let retention = serde_json::json!({"mode": "governance", "until": "2099-01-01T00:00:00Z"});
    let uri = format!("s3://locked-backups/asdr/prod-east/{SET}/a1.smd.tar");
    let copy = step_on(
        "copy_smd:bs",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": SET, "from": format!("{root}/a1/smd"), "to": uri, "retention": retention}),
    );
    done(&nodes, &copy).await;
    let want = Retention {
        mode: LockMode::Governance,
        until: "2099-01-01T00:00:00Z".into(),
    };
    for f in [uri.clone(), format!("{uri}.sha256")] {
        assert_eq!(
            store.retained(&f).await.unwrap(),
            Some(want.clone()),
            "{f} is retained as the set is locked"
        );
    }
    // The retained version cannot be deleted (S3 answers AccessDenied).
    let version = raw
        .head_object()
        .bucket("locked-backups")
        .key(format!("asdr/prod-east/{SET}/a1.smd.tar"))
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let deleted = raw
        .delete_object()
        .bucket("locked-backups")
        .key(format!("asdr/prod-east/{SET}/a1.smd.tar"))
        .version_id(version)
        .send()
        .await;
    assert!(deleted.is_err(), "a retained version is not deleted");

    // A copy to another locked store: retained too, and only adopted once retained.
    let to = format!("s3://locked-backups/west/prod-east/{SET}/a1.smd.tar");
    let copy = step_on(
        "copy_smd_archive:us-west-2:bs",
        StepKind::CopySmdArchive,
        "a1",
        serde_json::json!({"set": SET, "from": uri, "to": to, "retention": {"mode": "compliance", "until": "2099-01-01T00:00:00Z"}}),
    );
    done(&nodes, &copy).await;
    assert_eq!(
        store.retained(&to).await.unwrap().map(|r| r.mode),
        Some(LockMode::Compliance)
    );

    // An existing set's files, adopted into the lock: retained by their own step, which is done
    // once they hold the retention (read back).
    let old = "s3://locked-backups/asdr/prod-east/bs-20261101T000000Z/a1.smd.tar".to_string();
    store.put(&old, b"tar".to_vec()).await.unwrap();
    store
        .put(&format!("{old}.sha256"), b"x\n".to_vec())
        .await
        .unwrap();
    let retain = step_on(
        "retain_files:bs-20261101T000000Z",
        StepKind::RetainFiles,
        "a1",
        serde_json::json!({"set": "bs-20261101T000000Z", "uris": [old, format!("{old}.sha256")], "retention": retention}),
    );
    let learned = std::collections::BTreeMap::new();
    let input = asdr_planner::ports::StepInput {
        plan_id: "p",
        step: &retain,
        learned: &learned,
    };
    use asdr_planner::ports::Provider;
    assert!(
        nodes.observe(input).await.unwrap().is_none(),
        "not retained yet"
    );
    done(&nodes, &retain).await;
    assert!(
        nodes.observe(input).await.unwrap().is_some(),
        "adopted once retained"
    );
    assert_eq!(store.retained(&old).await.unwrap(), Some(want.clone()));

    // A bucket whose default retention already keeps the files longer (dated from the write):
    // left as it is, never asked to be shortened (S3 would refuse, failing every backup).
    raw.create_bucket()
        .bucket("default-backups")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    raw.put_object_lock_configuration()
        .bucket("default-backups")
        .object_lock_configuration(
            aws_sdk_s3::types::ObjectLockConfiguration::builder()
                .object_lock_enabled(aws_sdk_s3::types::ObjectLockEnabled::Enabled)
                .rule(
                    aws_sdk_s3::types::ObjectLockRule::builder()
                        .default_retention(
                            aws_sdk_s3::types::DefaultRetention::builder()
                                .mode(aws_sdk_s3::types::ObjectLockRetentionMode::Compliance)
                                .years(100)
                                .build(),
                        )
                        .build(),
                )
                .build(),
        )
        .send()
        .await
        .unwrap();
    let defaulted = format!("s3://default-backups/asdr/prod-east/{SET}/a1.smd.tar");
    let copy = step_on(
        "copy_smd:bs3",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": SET, "from": format!("{root}/a1/smd"), "to": defaulted, "retention": retention}),
    );
    done(&nodes, &copy).await;
    let held = store.retained(&defaulted).await.unwrap().unwrap();
    assert_eq!(held.mode, LockMode::Compliance);
    assert!(held.until.as_str() > "2099-01-01T00:00:00Z", "{held:?}");

    // A bucket without Object Lock refuses the retention: the step fails and says why.
    let plain = format!("s3://plain-backups/asdr/prod-east/{SET}/a1.smd.tar");
    let copy = step_on(
        "copy_smd:bs2",
        StepKind::CopySmd,
        "a1",
        serde_json::json!({"set": SET, "from": format!("{root}/a1/smd"), "to": plain, "retention": retention}),
    );
    let err = act(&nodes, &copy).await.unwrap_err();
    assert_eq!(err.code, "ObjectLock");
    assert!(
        err.message.contains("is not marked without"),
        "{}",
        err.message
    );
}

/// `backup.lock` with asbackup, against moto's S3 Object Lock: the stand-in asbackup writes its
/// files to the bucket itself; asdr retains every one of them before writing the manifest, then
/// the manifest; a retained version cannot be deleted; a run whose manifest lacks its retention
/// (killed between the two) is not adopted, and acting retains it.
#[tokio::test]
async fn an_asbackup_run_of_a_locked_set_retains_every_file_and_its_manifest_against_moto() {
    use asdr_planner::Step;
    use asdr_planner::ports::{Progress, Provider, StepInput};
    let moto = asdr_providers::testkit_moto::Moto::start();
    let raw = moto.s3();
    raw.create_bucket()
        .bucket("locked-backups")
        .object_lock_enabled_for_bucket(true)
        .send()
        .await
        .unwrap();
    let s3 = S3Store::new(raw.clone());
    let dir = tempfile::tempdir().unwrap();
    let mut nodes = NodeProvider::for_policy(
        &policy(&dir.path().display().to_string()),
        crate::nodes::stand_in_tools(dir.path()).0,
        AnyStore {
            s3: Some(s3.clone()),
            ..AnyStore::default()
        },
    );
    nodes.s3_endpoint = Some(moto.endpoint.clone());
    let to = format!("s3://locked-backups/asbackup/prod-east/{SET}/users");
    let want = Retention {
        mode: LockMode::Compliance,
        until: "2099-12-05T09:00:00Z".into(),
    };
    let learned = std::collections::BTreeMap::new();
    let backup = Step {
        region: None,
        id: format!("asbackup:users:{SET}"),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
        params: crate::params_of(
            StepKind::Asbackup,
            serde_json::json!({"namespace": "users", "set": SET, "to": to,
            "kind": "full", "incremental_of": null, "modified_after": null, "compress": "zstd",
            "encrypt": null, "s3_region": "us-east-1", "args": [], "run_on": "node",
            "cluster": "prod-east", "retention": want}),
        ),
    };
    let input = StepInput {
        plan_id: "p",
        step: &backup,
        learned: &learned,
    };
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    let listed = s3.list(&format!("{to}/")).await.unwrap();
    assert!(
        listed.len() >= 2,
        "the data file and the manifest: {listed:?}"
    );
    for uri in &listed {
        assert_eq!(
            s3.retained(uri).await.unwrap(),
            Some(want.clone()),
            "{uri} is retained as the set is locked"
        );
    }
    // The retained data file cannot be deleted (S3 answers AccessDenied for its version).
    let data = listed
        .iter()
        .find(|u| u.ends_with(".asb"))
        .expect("the data file");
    let key = data.trim_start_matches("s3://locked-backups/");
    let version = raw
        .head_object()
        .bucket("locked-backups")
        .key(key)
        .send()
        .await
        .unwrap()
        .version_id()
        .unwrap()
        .to_string();
    let deleted = raw
        .delete_object()
        .bucket("locked-backups")
        .key(key)
        .version_id(version)
        .send()
        .await;
    assert!(deleted.is_err(), "a retained version is not deleted");
    // A later run of the same step (resumed) adopts it: finished and retained.
    assert!(nodes.observe(input).await.unwrap().is_some());
    // Observation reads the retention the run holds (what keeps it, whatever the policy says
    // later).
    let runs = asdr_providers::asbackup::archives(&s3, "s3://locked-backups/asbackup/prod-east")
        .await
        .unwrap();
    assert_eq!(runs.len(), 1, "{runs:?}");
    assert_eq!(runs[0].retention, Some(want.clone()));
    // Wanting a longer retention than the manifest holds: not adopted, and acting extends it.
    let longer = Retention {
        mode: LockMode::Compliance,
        until: "2100-01-01T00:00:00Z".into(),
    };
    let mut again = backup.clone();
    if let asdr_planner::params::Params::Asbackup(p) = &mut again.params {
        p.retention = Some(longer.clone());
    }
    let input = StepInput {
        plan_id: "p",
        step: &again,
        learned: &learned,
    };
    assert!(
        nodes.observe(input).await.unwrap().is_none(),
        "not adopted before its manifest holds the retention"
    );
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    let manifest = listed
        .iter()
        .find(|u| u.contains("asdr-manifest"))
        .expect("the manifest");
    assert_eq!(s3.retained(manifest).await.unwrap(), Some(longer.clone()));
    // An incremental after it retained longer: the run's whole directory retained as long by
    // retain_files, every object listed when the step runs; adopted once all hold it.
    let longest = Retention {
        mode: LockMode::Compliance,
        until: "2100-06-01T00:00:00Z".into(),
    };
    let chain = step_on(
        &format!("retain_files:{SET}"),
        StepKind::RetainFiles,
        "a1",
        serde_json::json!({"set": SET, "uris": [], "directories": [to], "retention": longest}),
    );
    let input = StepInput {
        plan_id: "p",
        step: &chain,
        learned: &learned,
    };
    assert!(nodes.observe(input).await.unwrap().is_none());
    assert!(matches!(nodes.act(input).await.unwrap(), Progress::Done(_)));
    for uri in &listed {
        assert_eq!(
            s3.retained(uri).await.unwrap(),
            Some(longest.clone()),
            "{uri}"
        );
    }
    assert!(nodes.observe(input).await.unwrap().is_some());
}

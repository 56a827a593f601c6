//! Manifest names and the tool's summary, read back.
use super::*;

#[test]
fn the_summary_line_of_the_real_tool_is_read() {
    let log = "2026-11-20 [INF] ...\nBacked up 1000 record(s), 1 secondary index(es), 0 UDF file(s), 82968 byte(s) in total (~82 B/rec)\n";
    assert_eq!(parse_summary(log), Some((1000, 1, 0, 82968)));
    assert_eq!(parse_summary("[ERR] nothing"), None);
}

#[test]
fn a_manifest_name_says_owner_files_chain_and_link_and_old_names_still_read() {
    let m = ManifestName {
        cluster: Some("prod-east".into()),
        cluster_id: Some("c1d0000000000001".into()),
        files: Some(3),
        incremental_of: Some("bs-20261120T030000Z".into()),
        after: Some("bs-20261120T090000Z".into()),
        finished: Some("20261120T091502Z".into()),
        compress: Some("zstd".into()),
        encrypt: Some("aes256".into()),
    };
    let name = m.render();
    assert_eq!(
        name,
        "asdr-manifest.cluster-prod-east.id-c1d0000000000001.files-3.incremental-of-bs-20261120T030000Z.after-bs-20261120T090000Z.finished-20261120T091502Z.compress-zstd.encrypt-aes256.json"
    );
    assert_eq!(ManifestName::parse(&name), Some(m));
    assert_eq!(
        ManifestName::parse("asdr-manifest.json"),
        Some(ManifestName::default())
    );
    assert_eq!(
        ManifestName::parse("asdr-manifest.incremental-of-bs-20261120T030000Z.json")
            .and_then(|m| m.incremental_of),
        Some("bs-20261120T030000Z".into())
    );
    for not in [
        "users_00000.asb",
        "asdr-manifest.cluster-.json",
        "asdr-manifest.bogus.json",
        "asdr-manifest.cluster-a.finished-yesterday.json",
        "asdr-manifest.cluster-a.compress-lz4.json",
    ] {
        assert_eq!(ManifestName::parse(not), None, "{not}");
    }
}

#[tokio::test]
async fn a_run_whose_files_were_lost_is_listed_as_damaged() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("file://{}", dir.path().display());
    let run = dir.path().join("bs-20261120T030000Z/users");
    std::fs::create_dir_all(&run).unwrap();
    for f in ["users_00000.asb", "users_00001.asb"] {
        std::fs::write(run.join(f), "x").unwrap();
    }
    let name = ManifestName {
        cluster: Some("prod-east".into()),
        files: Some(2),
        ..ManifestName::default()
    };
    std::fs::write(run.join(name.render()), "{}").unwrap();
    let store = crate::store::LocalStore;
    assert_eq!(archives(&store, &to).await.unwrap()[0].missing_files, 0);
    std::fs::remove_file(run.join("users_00001.asb")).unwrap();
    let listed = archives(&store, &to).await.unwrap();
    assert_eq!(listed[0].missing_files, 1);
    assert_eq!(listed[0].cluster.as_deref(), Some("prod-east"));
}

/// Suspected in review: a namespace whose name prefixes another's (`users`, `users_v2`) must
/// never take the other's files, listed or deleted.
#[tokio::test]
async fn a_namespace_prefixing_another_never_lists_or_deletes_the_others_files() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("file://{}", dir.path().display());
    let set = "bs-20261120T030000Z";
    for ns in ["users", "users_v2"] {
        let run = dir.path().join(format!("{set}/{ns}"));
        std::fs::create_dir_all(&run).unwrap();
        std::fs::write(run.join(format!("{ns}_00000.asb")), "x").unwrap();
        let name = ManifestName {
            cluster: Some("prod-east".into()),
            files: Some(1),
            ..ManifestName::default()
        };
        std::fs::write(run.join(name.render()), "{}").unwrap();
    }
    let store = crate::store::LocalStore;
    let listed = archives(&store, &to).await.unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().all(|a| a.missing_files == 0));
    let p = params::DeleteBackup {
        set: set.into(),
        to: to.clone(),
        directories: vec![format!("{to}/{set}/users")],
        cluster: "prod-east".into(),
        tag: "asdr:cluster".into(),
        cluster_id: None,
    };
    delete_set(&store, &p).await.unwrap();
    assert!(
        !dir.path()
            .join(format!("{set}/users/users_00000.asb"))
            .exists()
    );
    assert!(
        dir.path()
            .join(format!("{set}/users_v2/users_v2_00000.asb"))
            .exists(),
        "users_v2's files are not users'"
    );
    let left = archives(&store, &to).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].namespace, "users_v2");
}

/// A same-named cluster sharing the store (another id in its runs' manifests): its run is
/// listed with its id, and deleting it is refused right before the delete.
#[tokio::test]
async fn a_run_whose_manifest_names_another_cluster_id_is_never_deleted() {
    let dir = tempfile::tempdir().unwrap();
    let to = format!("file://{}", dir.path().display());
    let set = "bs-20261120T030000Z";
    let run = dir.path().join(format!("prod-east/{set}/users"));
    std::fs::create_dir_all(&run).unwrap();
    std::fs::write(run.join("users_00000.asb"), "x").unwrap();
    let name = ManifestName {
        cluster: Some("prod-east".into()),
        cluster_id: Some("7717000000000000".into()),
        files: Some(1),
        ..ManifestName::default()
    };
    std::fs::write(run.join(name.render()), "{}").unwrap();
    let store = crate::store::LocalStore;
    let listed = archives(&store, &to).await.unwrap();
    assert_eq!(listed[0].cluster_id.as_deref(), Some("7717000000000000"));
    let p = params::DeleteBackup {
        set: set.into(),
        to: to.clone(),
        directories: vec![format!("{to}/prod-east/{set}/users")],
        cluster: "prod-east".into(),
        tag: "asdr:cluster".into(),
        cluster_id: Some("c1d0000000000001".into()),
    };
    let err = delete_set(&store, &p).await.unwrap_err();
    assert!(err.to_string().contains("id 7717000000000000"), "{err}");
    assert!(run.join("users_00000.asb").exists());
}

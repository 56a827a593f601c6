//! The asbackup store as asdr lays it out and reads it back: each cluster's runs in its own
//! directory (`<to>/<cluster>/<set>/<ns>`), so clusters sharing `asbackup.to` never write into one
//! directory even in the same second, and runs written before, at `<to>/<set>/<ns>`, still read
//! where they are.

use asdr_planner::world::asbackup_runs_of;
use asdr_providers::asbackup::archives;
use asdr_providers::store::LocalStore;

fn run_dir(dir: &str, manifest: &str) {
    std::fs::create_dir_all(dir).unwrap();
    std::fs::write(format!("{dir}/users_00000.asb"), "Version 3.1\n").unwrap();
    std::fs::write(format!("{dir}/{manifest}"), "{}").unwrap();
}

#[tokio::test]
async fn clusters_sharing_an_asbackup_store_keep_their_own_directories_and_older_runs_read_where_they_are()
 {
    let tmp = tempfile::tempdir().unwrap();
    let root = tmp.path().display().to_string();
    let to = format!("file://{root}");
    let set = "bs-20261121T090000Z";
    let east = format!("{root}/prod-east/{set}/users");
    let west = format!("{root}/prod-west/{set}/users");
    let legacy = format!("{root}/bs-20261120T090000Z/users");
    let unnamed = format!("{root}/prod-east/bs-20261121T100000Z/users");
    run_dir(&east, "asdr-manifest.cluster-prod-east.files-1.json");
    run_dir(&west, "asdr-manifest.cluster-prod-west.files-1.json");
    run_dir(&legacy, "asdr-manifest.cluster-prod-east.files-1.json");
    // In a cluster's directory, a manifest naming no cluster is that cluster's.
    run_dir(&unnamed, "asdr-manifest.files-1.json");
    let runs = archives(&LocalStore, &to).await.unwrap();
    assert_eq!(runs.len(), 4, "{runs:?}");
    assert!(runs.iter().all(|a| a.missing_files == 0), "{runs:?}");
    let of = |c: &str| -> Vec<String> {
        asbackup_runs_of(&runs, c)
            .map(|a| a.uri.trim_start_matches("file://").to_string())
            .collect()
    };
    let mut mine = of("prod-east");
    mine.sort();
    let mut want = vec![east.clone(), legacy.clone(), unnamed.clone()];
    want.sort();
    assert_eq!(mine, want);
    assert_eq!(of("prod-west"), vec![west.clone()]);
    // A file lost from one cluster's run damages that run only.
    std::fs::remove_file(format!("{west}/users_00000.asb")).unwrap();
    let runs = archives(&LocalStore, &to).await.unwrap();
    for a in &runs {
        let lost = a.uri.ends_with(&format!("prod-west/{set}/users"));
        assert_eq!(a.missing_files, u32::from(lost), "{a:?}");
    }
}

//! Copies of backup sets in another region against moto (it answers CopySnapshot across regions,
//! with tags): a backup with copies, a second apply creating nothing, a region that missed sets
//! caught up, retention per region.

use std::collections::BTreeSet;

use crate::ec2::{env, tag};

const WEST: &str = "us-west-2";

async fn snapshots_in(env: &crate::ec2::Env, region: &str) -> Vec<aws_sdk_ec2::types::Snapshot> {
    env.moto
        .ec2_in(region)
        .describe_snapshots()
        .owner_ids("self")
        .send()
        .await
        .unwrap()
        .snapshots()
        .to_vec()
}

fn copies_edit(dir: &std::path::Path, extra: &str) -> (String, String) {
    (
        "  max_nodes_at_once: 1 ".to_string(),
        format!(
            "  copies:\n    - {{region: us-west-2, smd_to: file://{}/west{extra}}}\n  max_nodes_at_once: 1 ",
            dir.display()
        ),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_backup_with_copies_against_moto_copies_the_set_to_the_other_region_and_a_second_apply_creates_nothing()
 {
    let env = env(81, &[]).await;
    let (from, to) = copies_edit(env.dir.path(), ", max_in_flight: 2");
    env.edit_policy(&from, &to);
    let plan = env.ok(&["plan"]);
    assert!(
        plan.contains("at most 2 snapshot copies in flight"),
        "the plan says the limit:\n{plan}"
    );
    let out = env.asdr(&["apply", "--yes", "-v"]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    let home = env.snapshots().await;
    let west = snapshots_in(&env, WEST).await;
    assert_eq!(home.len(), 9);
    assert_eq!(west.len(), 9, "one copy per snapshot of the set");
    let sources: BTreeSet<&str> = home.iter().map(|s| s.snapshot_id().unwrap()).collect();
    let set = tag(&home[0], "asdr:set").unwrap();
    for c in &west {
        let src = tag(c, "asdr:source-snapshot").expect("the source tag");
        assert!(sources.contains(src), "copy of {src}");
        assert_eq!(tag(c, "asdr:source-region"), Some("us-east-1"));
        assert_eq!(tag(c, "asdr:set"), Some(set));
        assert_eq!(tag(c, "asdr:cluster"), Some("prod-east"));
        assert_eq!(
            tag(c, "asdr:complete"),
            Some("true"),
            "complete in us-west-2"
        );
        let source = home.iter().find(|s| s.snapshot_id() == Some(src)).unwrap();
        assert_eq!(tag(c, "asdr:node"), tag(source, "asdr:node"));
        assert_eq!(tag(c, "asdr:device"), tag(source, "asdr:device"));
    }
    // The SMD archive beside the copies, with its checksum.
    let copied = env
        .dir
        .path()
        .join(format!("west/prod-east/{set}/a1.smd.tar"));
    let original = env
        .dir
        .path()
        .join(format!("store/prod-east/{set}/a1.smd.tar"));
    assert_eq!(
        std::fs::read(&copied).unwrap(),
        std::fs::read(&original).unwrap()
    );
    assert!(copied.with_extension("tar.sha256").exists());
    assert!(stderr.contains("CopySnapshot 9"), "{stderr}");
    assert_eq!(
        env.asdr(&["plan", "--detailed-exitcode"]).status.code(),
        Some(0),
        "plan again: nothing to do"
    );
    env.ok(&["apply", "--yes"]);
    assert_eq!(
        snapshots_in(&env, WEST).await.len(),
        9,
        "a second apply creates nothing"
    );
    let status = env.ok(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_str(&status).unwrap();
    assert_eq!(
        status["regions"][WEST]["newest_complete_set"], set,
        "{status:#}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_region_gained_by_the_policy_is_caught_up_and_kept_by_its_own_retention_against_moto() {
    let env = env(84, &[("every: 24h", "every: 1s")]).await;
    // Two sets at home before the policy copies anywhere.
    env.ok(&["apply", "--yes"]);
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["apply", "--yes"]);
    assert_eq!(env.snapshots().await.len(), 18);
    let (from, to) = copies_edit(env.dir.path(), ", retain: {count: 1}");
    env.edit_policy(&from, &to);
    env.edit_policy("every: 1s", "every: 24h");
    let plan = env.ok(&["plan"]);
    assert!(plan.contains("catching up"), "{plan}");
    env.ok(&["apply", "--yes"]);
    assert_eq!(env.snapshots().await.len(), 18, "no new set at home");
    let west = snapshots_in(&env, WEST).await;
    let sets: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets.len(), 1, "retain count 1 in us-west-2: {sets:?}");
    let home = env.snapshots().await;
    let newest = home
        .iter()
        .filter_map(|s| tag(s, "asdr:set"))
        .max()
        .unwrap();
    assert!(
        sets.contains(newest),
        "the newest set is the one kept there"
    );
    assert_eq!(west.len(), 9);
    // A new set is copied; the region's older copy stays as long as it is the region's newest
    // complete one (as at home), and goes by the region's own retention on the next run.
    env.edit_policy("every: 24h", "every: 1s");
    std::thread::sleep(std::time::Duration::from_millis(1100));
    env.ok(&["apply", "--yes"]);
    let west = snapshots_in(&env, WEST).await;
    let sets_now: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets_now.len(), 2, "{sets_now:?}");
    env.edit_policy("every: 1s", "every: 24h");
    env.ok(&["apply", "--yes"]);
    let west = snapshots_in(&env, WEST).await;
    let sets_now: BTreeSet<&str> = west.iter().filter_map(|s| tag(s, "asdr:set")).collect();
    assert_eq!(sets_now.len(), 1, "{sets_now:?}");
    assert!(!sets_now.contains(newest), "the older copy went");
    assert_eq!(west.len(), 9);
    assert_eq!(
        env.snapshots().await.len(),
        27,
        "home keeps its own 3 (retain count 7)"
    );
}

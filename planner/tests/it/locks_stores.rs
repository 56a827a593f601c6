//! R20 beyond the snapshots: a locked set's store files retained with S3 Object Lock (the
//! bucket observed, refused without Object Lock, adopted sets' files retained before their
//! snapshots are locked), and what the Recycle Bin's rules do for the cluster's snapshots.

use asdr_planner::testkit::ExamplePolicy;
use asdr_planner::{Operation, plan};

use crate::locks::{NOW, OLDEST, locked_policy, ten_sets};
use crate::params;

#[test]
fn r20_a_locked_sets_store_files_are_retained_and_a_bucket_without_object_lock_is_refused() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    // Observed with Object Lock: the archive and the manifest are written retained until the
    // set's lock ends.
    world.object_lock.insert("acme-backups".into(), true);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let set = asdr_planner::set_id(NOW);
    for id in [format!("copy_smd:{set}"), format!("write_manifest:{set}")] {
        let s = p.steps.iter().find(|s| s.id == id).unwrap();
        assert_eq!(
            params(s)["retention"],
            serde_json::json!({"mode": "governance", "until": "2026-12-05T09:00:00Z"}),
            "{id}"
        );
    }
    // Observed without: refused, naming the bucket.
    world.object_lock.insert("acme-backups".into(), false);
    let e = plan(&policy, &world, NOW, &Operation::Backup)
        .unwrap_err()
        .to_string();
    assert!(
        e.contains("bucket acme-backups") && e.contains("has no S3 Object Lock"),
        "{e}"
    );
    // Not observed: planned, and said.
    world.object_lock.clear();
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(p.warnings.iter().any(|w| {
        w.rule == "R20"
            && w.message
                .contains("whether bucket acme-backups has S3 Object Lock was not observed")
    }));
    // A file store cannot be locked: said plainly, and its files carry no retention.
    let policy = ExamplePolicy::prod_east()
        .edits(&[
            (
                "  tags: {team: data}",
                "  tags: {team: data}\n  lock: {mode: governance, duration: 14d}",
            ),
            (
                "s3://acme-backups/asdr/prod-east/smd",
                "file:///var/backups/asdr",
            ),
            ("transport: ssm", "transport: ssh"),
        ])
        .policy();
    let p = plan(&policy, &ten_sets(&policy), NOW, &Operation::Backup).unwrap();
    assert!(p.warnings.iter().any(|w| {
        w.rule == "R20"
            && w.message
                .contains("is a file store, which cannot be locked")
    }));
    let copy = p
        .steps
        .iter()
        .find(|s| s.id == format!("copy_smd:{set}"))
        .unwrap();
    assert!(params(copy).get("retention").is_none());
}

#[test]
fn r20_a_store_without_object_lock_is_a_status_problem() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    world.object_lock.insert("acme-backups".into(), false);
    let st = asdr_planner::status::status(&policy, &world, NOW);
    assert!(
        st.problems.iter().any(|p| p.contains("bucket acme-backups")
            && p.contains("has no S3 Object Lock: backups are refused")),
        "{:?}",
        st.problems
    );
}

#[test]
fn r20_an_adopted_sets_store_files_get_retention_with_its_snapshot_locks() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    world.object_lock.insert("acme-backups".into(), true);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let step = p
        .steps
        .iter()
        .find(|s| s.id == format!("retain_files:{OLDEST}"))
        .expect("the adopted set's files are retained");
    let v = params(step);
    assert_eq!(
        v["retention"],
        serde_json::json!({"mode": "governance", "until": "2026-11-25T03:00:00Z"})
    );
    let uris: Vec<&str> = v["uris"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u.as_str().unwrap())
        .collect();
    assert!(uris.iter().any(|u| u.ends_with(".smd.tar")), "{uris:?}");
    assert!(
        uris.iter().any(|u| u.ends_with(".smd.tar.sha256")),
        "{uris:?}"
    );
    assert!(
        uris.iter().all(|u| u.starts_with("s3://acme-backups/")),
        "{uris:?}"
    );
    // The lock waits for the files: a retention that fails leaves the set to be adopted again.
    let lock = p
        .steps
        .iter()
        .find(|s| s.id == format!("lock_snapshots:{OLDEST}"))
        .unwrap();
    assert_eq!(lock.depends_on, vec![format!("retain_files:{OLDEST}")]);
}

#[test]
fn recycle_bin_coverage_of_the_clusters_snapshots_is_said_where_retention_deletes() {
    use asdr_planner::recycle_bin::{Coverage, coverage};
    use asdr_planner::world::RecycleRule;
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    let rule =
        |id: &str, days, tags: &[(&str, &str)], exclude: &[(&str, &str)], locked| RecycleRule {
            id: id.into(),
            retention_days: days,
            tags: tags
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            exclude_tags: exclude
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            locked,
        };
    // Not observed: nothing said.
    assert_eq!(coverage(&policy, &world, "us-east-1"), Coverage::Unobserved);
    // Observed, no rule for asdr's snapshots (another team's tag-level rule, a Region-level rule
    // excluding the cluster's tag): gone at once, and the plan that deletes says so.
    world.recycle_bin.insert(
        "us-east-1".into(),
        vec![
            rule("other", 30, &[("team", "web")], &[], false),
            rule("region", 60, &[], &[("asdr:cluster", "prod-east")], true),
        ],
    );
    assert_eq!(coverage(&policy, &world, "us-east-1"), Coverage::NotCovered);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(p.warnings.iter().any(|w| {
        w.message
            .contains("no Recycle Bin rule in us-east-1 keeps asdr's snapshots")
    }));
    // A rule on the policy's own `backup.tags` (team: data) covers them, the longest rule wins.
    world.recycle_bin.get_mut("us-east-1").unwrap().extend([
        rule("data", 14, &[("team", "data")], &[], false),
        rule("all", 21, &[], &[("scratch", "")], true),
    ]);
    assert_eq!(
        coverage(&policy, &world, "us-east-1"),
        Coverage::Covered {
            rule: "all".into(),
            days: 21,
            locked: true,
            locked_days: 21
        }
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(p.warnings.iter().any(|w| {
        w.message
            .contains("kept 21 days in the Recycle Bin (rule all, locked)")
    }));
    let st = asdr_planner::status::status(&policy, &world, NOW);
    assert!(matches!(
        st.recycle_bin["us-east-1"],
        Coverage::Covered { days: 21, .. }
    ));
}

#[test]
fn recycle_bin_coverage_says_what_a_locked_rule_keeps_when_the_longest_rule_is_not_locked() {
    use asdr_planner::recycle_bin::{Coverage, coverage};
    use asdr_planner::world::RecycleRule;
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    world.recycle_bin.insert(
        "us-east-1".into(),
        vec![
            RecycleRule {
                id: "r-tag30".into(),
                retention_days: 30,
                tags: [("asdr:cluster".to_string(), "prod-east".to_string())].into(),
                exclude_tags: Default::default(),
                locked: false,
            },
            RecycleRule {
                id: "r-region7".into(),
                retention_days: 7,
                tags: Default::default(),
                exclude_tags: Default::default(),
                locked: true,
            },
        ],
    );
    assert_eq!(
        coverage(&policy, &world, "us-east-1"),
        Coverage::Covered {
            rule: "r-tag30".into(),
            days: 30,
            locked: false,
            locked_days: 7
        }
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(p.warnings.iter().any(|w| {
        w.rule == "recycle-bin"
            && w.message
                .contains("(rule r-tag30, not locked; a locked rule keeps them 7 days)")
    }));
}

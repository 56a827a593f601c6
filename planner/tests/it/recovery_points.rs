//! Recovery points that describe themselves: what a set is (its own members), whose it is, and
//! when it was. One regression test per defect an operator review reproduced, named `rpNN_…`,
//! each also showing the verifier catches the defective plan where the verifier can see it.

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use asdr_specs::Policy;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const WEST: &str = "us-west-2";

const A3: &str =
    "    - name: a3\n      private_ip: 10.0.2.12\n      availability_zone: us-east-1b\n\nbackup:";
const SDI: (&str, &str) = (
    "        - device: /dev/sdh        # EBS directly, no shadow; `ebs` defaults to the shadow's path, else the device's\n",
    "        - device: /dev/sdh\n        - device: /dev/sdi\n",
);

/// The sets whose snapshots a restore plan makes its volumes from.
fn restored_sets(p: &Plan, w: &World) -> BTreeSet<String> {
    p.steps
        .iter()
        .filter_map(|s| match &s.params {
            asdr_planner::params::Params::CreateVolume(c) => c.snapshot_id.as_deref(),
            _ => None,
        })
        .filter_map(|id| w.snapshots.iter().find(|x| x.id == id))
        .map(|x| x.tags["asdr:set"].clone())
        .collect()
}

fn backup(policy: &Policy, w: &World) -> Plan {
    plan(policy, w, NOW, &Operation::Backup).unwrap_or_else(|e| panic!("{e}"))
}

/// The sets whose snapshots a plan deletes, per region (None: the cluster's own).
fn deleted_sets(p: &Plan, w: &World) -> BTreeSet<(Option<String>, String)> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .filter_map(|s| {
            let id = serde_json::to_value(s).unwrap()["params"]["snapshot_id"]
                .as_str()?
                .to_string();
            let snap = w.snapshots.iter().find(|x| x.id == id)?;
            Some((snap.region.clone(), snap.tags["asdr:set"].clone()))
        })
        .collect()
}

/// The world of `now_policy` (the cluster as it is now) with `sets` sets made before the members
/// for which `member(node, device)` is false existed: their snapshots are removed from those sets.
/// `then_one_more`: a newest set made since, holding every member (the apply after the edit).
/// Half the old sets carry the member count their mark recorded, half are marked as sets were
/// before that record existed.
fn world_before(
    now_policy: &Policy,
    sets: usize,
    then_one_more: bool,
    member: impl Fn(&str, &str) -> bool,
) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = sets + usize::from(then_one_more);
    let mut w = world_for(now_policy, &spec);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    w.snapshots.retain(|s| {
        let (Some(n), Some(d)) = (s.tags.get("asdr:node"), s.tags.get("asdr:device")) else {
            return true;
        };
        member(n, d) || (then_one_more && s.tags.get("asdr:set") == Some(&newest))
    });
    let sets: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .collect();
    for (k, set) in sets.iter().enumerate() {
        let members = w
            .snapshots
            .iter()
            .filter(|s| s.tags.get("asdr:set") == Some(set))
            .count();
        for s in w
            .snapshots
            .iter_mut()
            .filter(|s| s.tags.get("asdr:set") == Some(set))
        {
            if k % 2 == 0 {
                s.tags.insert("asdr:members".into(), members.to_string());
            }
        }
    }
    w
}

#[test]
fn rp01_adding_a_node_or_a_device_never_wipes_the_history() {
    // A node added: its instance and volumes are in the world, in none of the 7 sets.
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 7}")
        .edit("\nbackup:", A3)
        .edit("a2: 10.1.1.12}", "a2: 10.1.1.12, a3: 10.1.2.12}")
        .policy();
    let w = world_before(&policy, 7, false, |n, _| n != "a3");
    let p = backup(&policy, &w);
    // A new set is due at once so that a3 is covered; it counts toward `count: 7` once marked,
    // so at most the oldest set goes — never the history.
    assert!(p.steps.iter().any(|s| s.id == "snapshot_instance:a3"
        || s.id.starts_with("snapshot_instance:a3")
        || s.id.starts_with("snapshot:a3")));
    let gone = deleted_sets(&p, &w);
    let home: Vec<&String> = gone
        .iter()
        .filter(|(r, _)| r.is_none())
        .map(|(_, s)| s)
        .collect();
    assert!(home.len() <= 1, "the history is deleted: {home:?}");
    assert!(verify(&policy, &w, &p).is_empty());
    // Once that set is made, the next plan keeps the 6 newest older ones: every set but the
    // newest was made before a3, and each is complete by its own members.
    let w = world_before(&policy, 7, true, |n, _| n != "a3");
    let p = backup(&policy, &w);
    let gone = deleted_sets(&p, &w);
    assert!(gone.len() <= 1, "the history is deleted: {gone:?}");
    assert!(verify(&policy, &w, &p).is_empty());

    // A device added: the us-west-2 copies of the two copied sets stay (the copy keeps 3).
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 7}")
        .edit(SDI.0, SDI.1)
        .policy();
    let mut w = world_before(&policy, 7, false, |_, d| d != "/dev/sdi");
    copy_sets(&mut w, &policy, 0, 2, false);
    let p = backup(&policy, &w);
    let gone = deleted_sets(&p, &w);
    assert!(
        gone.iter().all(|(r, _)| r.as_deref() != Some(WEST)),
        "copies in {WEST} deleted: {gone:?}"
    );
    assert!(
        gone.iter().filter(|(r, _)| r.is_none()).count() <= 1,
        "{gone:?}"
    );
    assert!(verify(&policy, &w, &p).is_empty());
}

/// A same-named cluster whose home is us-west-2: snapshots there tagged `asdr:cluster=prod-east`
/// and `asdr:set`, every node and device, marked complete — but copied from nowhere.
fn foreign_in_west(policy: &Policy, w: &mut World, set: &str) {
    let template: Vec<_> = w
        .snapshots
        .iter()
        .filter(|s| s.region.is_none() && s.tags.contains_key("asdr:complete"))
        .take(9)
        .cloned()
        .collect();
    for (k, mut s) in template.into_iter().enumerate() {
        s.id = format!("snap-f0reign{k:08}");
        s.region = Some(WEST.into());
        s.tags.insert("asdr:set".into(), set.into());
        s.tags
            .insert("asdr:cluster".into(), policy.cluster.name.clone());
        s.start_time = time::PrimitiveDateTime::parse(
            set.trim_start_matches("bs-"),
            time::macros::format_description!("[year][month][day]T[hour][minute][second]Z"),
        )
        .unwrap()
        .assume_utc();
        w.snapshots.push(s);
    }
}

#[test]
fn rp02_copy_region_retention_and_restores_never_take_snapshots_asdr_never_copied() {
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    // Older than every copy (retention would take them) and newer (a restore would pick them).
    foreign_in_west(&policy, &mut w, "bs-20261101T030000Z");
    foreign_in_west(&policy, &mut w, "bs-20261121T080000Z");
    let foreign: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter(|s| s.id.starts_with("snap-f0reign"))
        .map(|s| s.id.clone())
        .collect();
    // The region as the planner sees it holds none of them (without this, the completeness
    // rule and the verifier still keep them out: each defence is checked on its own).
    let view = asdr_planner::copies::region_view(&policy, &w, &policy.backup.copies[0]);
    assert!(
        view.snapshots.iter().all(|s| !foreign.contains(&s.id)),
        "the region view takes snapshots without source tags for copies"
    );
    let p = backup(&policy, &w);
    let touched: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| foreign.iter().any(|f| s.id.contains(f.as_str())))
        .map(|s| s.id.as_str())
        .collect();
    assert!(touched.is_empty(), "{touched:?}");

    let p = plan(&policy, &w, NOW, &Operation::Restore("dr-west".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let from: BTreeSet<String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CreateVolume)
        .map(|s| {
            serde_json::to_value(s).unwrap()["params"]["snapshot_id"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert!(!from.is_empty());
    assert!(from.is_disjoint(&foreign), "restored from {from:?}");

    // The verifier reads the source tags itself: a plan deleting one of them is refused.
    let mut bad = backup(&policy, &w);
    let id = foreign.iter().next().unwrap().clone();
    bad.steps.push(asdr_planner::Step {
        region: Some(WEST.into()),
        id: format!("delete_snapshot:{id}"),
        params: asdr_planner::params::Params::DeleteSnapshot(
            asdr_planner::params::DeleteSnapshot {
                snapshot_id: id.clone(),
                set: "bs-20261101T030000Z".into(),
                cluster_id: bad.cluster_id.clone(),
            },
        ),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
    });
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("not a copy of this cluster's")),
        "{v:?}"
    );
}

const BOTH: &[&str] = &["users", "events"];

fn delete_backups(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteBackup)
        .map(|s| s.id.clone())
        .collect()
}

#[test]
fn rp03_another_clusters_asbackup_sets_in_the_same_store_are_never_ours() {
    let policy = crate::asbackup::policy("");
    // prod-west writes to the same `asbackup.to` with the same namespaces: two sets, the newest
    // young enough that prod-east would plan no backup if it took them for its own.
    let mut w = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261118T030000Z", None, BOTH),
            ("bs-20261121T030000Z", None, BOTH),
        ],
    );
    for a in &mut w.asbackup_archives {
        a.cluster = Some("prod-west".into());
    }
    let p = backup(&policy, &w);
    assert!(
        p.steps.iter().any(|s| s.kind() == StepKind::Asbackup),
        "prod-east has no set of its own: a backup is due"
    );
    assert!(delete_backups(&p).is_empty(), "{:?}", delete_backups(&p));
    let r = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()));
    assert!(
        r.as_ref().map_or(true, |p| p
            .steps
            .iter()
            .all(|s| s.kind() != StepKind::Asrestore)),
        "prod-west's data is never asrestored into prod-east: {:?}",
        r.map(|p| p.steps.iter().map(|s| s.id.clone()).collect::<Vec<_>>())
    );
    // Sets written before manifests named their cluster stay ours only while nothing in the
    // store names another cluster.
    let mut legacy = crate::asbackup::world(&policy, &[("bs-20261121T030000Z", None, BOTH)]);
    for a in &mut legacy.asbackup_archives {
        a.cluster = None;
    }
    assert!(
        backup(&policy, &legacy)
            .steps
            .iter()
            .all(|s| s.kind() != StepKind::Asbackup),
        "a legacy set alone in its store is adopted"
    );
    legacy.asbackup_archives.extend(w.asbackup_archives.clone());
    assert!(
        backup(&policy, &legacy)
            .steps
            .iter()
            .any(|s| s.kind() == StepKind::Asbackup),
        "not once another cluster writes there"
    );
    // The verifier reads the manifests' clusters itself: deleting prod-west's set is refused.
    let mut bad = p.clone();
    bad.steps.push(asdr_planner::Step {
        region: None,
        id: "delete_backup:bs-20261118T030000Z".into(),
        params: asdr_planner::params::Params::DeleteBackup(asdr_planner::params::DeleteBackup {
            set: "bs-20261118T030000Z".into(),
            to: "s3://acme-backups/asbackup/prod-east".into(),
            directories: vec![
                "s3://acme-backups/asbackup/prod-east/bs-20261118T030000Z/users".into(),
                "s3://acme-backups/asbackup/prod-east/bs-20261118T030000Z/events".into(),
            ],
            cluster: "prod-east".into(),
            tag: "asdr:cluster".into(),
            cluster_id: bad.cluster_id.clone(),
        }),
        node: None,
        depends_on: vec![],
        cleanup: false,
    });
    assert!(
        verify(&policy, &w, &bad).iter().any(|v| v.rule == "R13"
            && v.message
                .contains("not a finished asbackup set of this cluster")),
        "{:?}",
        verify(&policy, &w, &bad)
    );
}

#[test]
fn rp04_an_incremental_never_costs_a_chain_that_retain_keeps() {
    // retain: {count: 2}, two chains, an incremental of the newer one due.
    let policy = crate::asbackup::policy("    incremental_every: 6h\n");
    let w = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261119T120000Z", None, BOTH),
            ("bs-20261119T180000Z", Some("bs-20261119T120000Z"), BOTH),
            ("bs-20261120T120000Z", None, BOTH),
            ("bs-20261120T180000Z", Some("bs-20261120T120000Z"), BOTH),
        ],
    );
    let p = backup(&policy, &w);
    assert!(
        p.steps.iter().any(|s| matches!(&s.params,
            asdr_planner::params::Params::Asbackup(a) if a.kind == asdr_planner::params::BackupKind::Incremental)),
        "an incremental is due"
    );
    assert!(delete_backups(&p).is_empty(), "{:?}", delete_backups(&p));
    // The defect's plan: the older chain deleted as if the incremental were a chain.
    let mut bad = p.clone();
    for set in ["bs-20261119T180000Z", "bs-20261119T120000Z"] {
        bad.steps.push(asdr_planner::Step {
            region: None,
            id: format!("delete_backup:{set}"),
            params: asdr_planner::params::Params::DeleteBackup(
                asdr_planner::params::DeleteBackup {
                    set: set.into(),
                    to: "s3://acme-backups/asbackup/prod-east".into(),
                    directories: BOTH
                        .iter()
                        .map(|ns| format!("s3://acme-backups/asbackup/prod-east/{set}/{ns}"))
                        .collect(),
                    cluster: "prod-east".into(),
                    tag: "asdr:cluster".into(),
                    cluster_id: bad.cluster_id.clone(),
                },
            ),
            node: None,
            depends_on: vec![],
            cleanup: false,
        });
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("which retain keeps")),
        "{v:?}"
    );
    // A full set due starts a chain: then the older chain goes (count 2 = the new + the newest).
    let w2 = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261118T080000Z", None, BOTH),
            ("bs-20261119T080000Z", None, BOTH),
            ("bs-20261120T080000Z", None, BOTH),
        ],
    );
    let p = backup(&policy, &w2);
    let gone: BTreeSet<String> = delete_backups(&p).into_iter().collect();
    assert_eq!(
        gone,
        BTreeSet::from([
            "delete_backup:bs-20261118T080000Z".to_string(),
            "delete_backup:bs-20261119T080000Z".to_string()
        ])
    );
    assert!(verify(&policy, &w2, &p).is_empty());
}

#[test]
fn rp12_status_sees_asbackup_sets() {
    // A complete asbackup set 6 h old (every: 24h): fine, and named.
    let policy = crate::asbackup::policy("");
    let w = crate::asbackup::world(&policy, &[("bs-20261121T030000Z", None, BOTH)]);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert_eq!(
        s.newest_complete.as_ref().map(|n| n.set.as_str()),
        Some("bs-20261121T030000Z")
    );
    assert!(!s.overdue);
    assert!(s.unfinished_sets.is_empty(), "{:?}", s.unfinished_sets);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    let full = s
        .restores
        .iter()
        .find(|r| r.name == "full-cluster")
        .unwrap();
    assert_eq!(full.set.as_deref(), Some("bs-20261121T030000Z"));
    // Without it: not fine.
    let w = crate::asbackup::world(&policy, &[]);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert!(s.overdue && !s.problems.is_empty());
}

#[test]
fn rp13_status_and_the_planner_name_the_same_set_for_before() {
    // The newest set's id is before T, but its snapshots started after T: its data may be newer
    // than T, so neither may name it.
    let policy = ExamplePolicy::prod_east()
        .append("  - {name: before, scope: cluster, source: 'before:2026-11-21T03:30:00Z'}\n")
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(6);
    let mut w = world_for(&policy, &spec);
    let newest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    assert_eq!(newest, "bs-20261121T030000Z");
    for s in w
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set") == Some(&newest))
    {
        s.start_time = datetime!(2026-11-21 04:00:00 UTC);
    }
    let p = plan(&policy, &w, NOW, &Operation::Restore("before".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let planned = restored_sets(&p, &w);
    assert_eq!(planned.len(), 1, "{planned:?}");
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let named = s.restores.iter().find(|r| r.name == "before").unwrap();
    assert_eq!(named.set.as_ref(), planned.iter().next());
    assert_ne!(named.set.as_deref(), Some(newest.as_str()));
}

#[test]
fn rp14_status_is_not_fine_without_a_usable_copy_in_a_dr_region() {
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert!(s.problems.is_empty(), "{:?}", s.problems);
    // Every copy in us-west-2 failed.
    for c in w
        .snapshots
        .iter_mut()
        .filter(|c| c.region.as_deref() == Some(WEST))
    {
        c.state = asdr_planner::world::SnapshotState::Error;
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert!(
        s.problems
            .iter()
            .any(|p| p.starts_with("us-west-2: no complete copy")),
        "{:?}",
        s.problems
    );
    assert!(
        s.problems
            .iter()
            .any(|p| p.starts_with("restore `dr-west`")),
        "{:?}",
        s.problems
    );
    // The next backup removes the failed copies and copies those sets again; deleting a copy in
    // state `error` (it holds nothing) is not taken for deleting a marked set (found by the
    // history).
    let failed: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter(|c| c.region.as_deref() == Some(WEST))
        .map(|c| c.id.clone())
        .collect();
    let p = backup(&policy, &w);
    let deleted: BTreeSet<String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .map(|s| s.params.snapshot_id().unwrap().to_string())
        .collect();
    assert!(failed.is_subset(&deleted), "{failed:?} {deleted:?}");
    assert!(p.steps.iter().any(|s| s.kind() == StepKind::CopySnapshot));
}

#[test]
fn rp07_a_before_restore_in_another_region_goes_by_the_sources_time_not_the_copys() {
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit(
            "    scope: cluster\n    source: latest-backup\n    region: us-west-2",
            "    scope: cluster\n    source: 'before:2026-11-20T12:00:00Z'\n    region: us-west-2",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 4;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 3, false);
    // Set 1120 (taken at 03:00) was copied late, in a catch-up at 21:00.
    let late = "bs-20261120T030000Z";
    for c in w.snapshots.iter_mut().filter(|c| {
        c.region.as_deref() == Some(WEST)
            && c.tags.get("asdr:set").map(String::as_str) == Some(late)
    }) {
        c.start_time = datetime!(2026-11-20 21:00:00 UTC);
    }
    let p = plan(&policy, &w, NOW, &Operation::Restore("dr-west".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let sets = restored_sets(&p, &w);
    assert_eq!(sets, BTreeSet::from([late.to_string()]));
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let named = s.restores.iter().find(|r| r.name == "dr-west").unwrap();
    assert_eq!(named.set.as_deref(), Some(late));
}

#[test]
fn rp11_asbackup_args_reach_asbackup_only_and_never_override_asdrs_own() {
    let with_args = |args: &str| {
        crate::asbackup::asbackup_example()
            .edit("    args: [--compress, zstd]\n", &format!("    {args}\n"))
            .parse()
    };
    // An asbackup option: asbackup gets it, asrestore (which would refuse it) does not.
    let policy = with_args("args: [--file-limit, \"1024\"]").unwrap_or_else(|d| panic!("{d}"));
    let w = crate::asbackup::world(&policy, &[("bs-20261120T030000Z", None, BOTH)]);
    let p = backup(&policy, &w);
    let run = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::Asbackup)
        .expect("a backup is due");
    assert_eq!(
        crate::params(run)["args"],
        serde_json::json!(["--file-limit", "1024"])
    );
    let r = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    for s in r.steps.iter().filter(|s| s.kind() == StepKind::Asrestore) {
        assert_eq!(crate::params(s)["args"], serde_json::json!([]), "{}", s.id);
    }
    // asdr's own options, in any spelling, and options a tool does not have, are refused at
    // their line.
    for (args, fragment) in [
        (
            "args: [\"--namespace=events\"]",
            "`--namespace=events` is set by asdr",
        ),
        ("args: [-nevents]", "`-nevents` is set by asdr"),
        (
            "args: [--directory-list, x]",
            "is not an option of asbackup",
        ),
        (
            "restore_args: [--file-limit, \"1024\"]",
            "is not an option of asrestore",
        ),
        (
            "restore_args: [--namespace, users]",
            "is set by asdr for asrestore",
        ),
        // Options that make a set partial or change what asrestore writes, and bundled short
        // options that could hide one (review).
        (
            "args: [--max-records, \"10\"]",
            "backs up only part of the namespace",
        ),
        (
            "args: [--set, users]",
            "backs up only part of the namespace",
        ),
        (
            "restore_args: [--no-generation]",
            "changes which records asrestore writes",
        ),
        ("args: [-vR]", "bundles short options"),
        ("restore_args: [-vg]", "bundles short options"),
        // Passwords given as values would reach the journal, errors and SSM's history.
        (
            "args: [--user, backup, --password, hunter2]",
            "`--password` is given a password",
        ),
        ("args: [-Phunter2]", "`-P` is given a password"),
        (
            "restore_args: [\"--tls-keyfile-password=hunter2\"]",
            "`--tls-keyfile-password` is given a password",
        ),
    ] {
        let d = with_args(args).expect_err(args);
        assert!(
            d.items.iter().any(|i| i.message.contains(fragment)),
            "{args}: {d}"
        );
    }
    // Were validation's check gone, the verifier reads each tool's arguments in the plan: the
    // defect's plans (asdr's own option given to asbackup, asbackup's given to asrestore) are
    // refused.
    // A password the tool reads itself, on the node, is fine.
    for args in [
        "args: [--user, backup, --password, \"env:ASBACKUP_PASSWORD\"]",
        "args: [\"-Pfile:/etc/aerospike/backup.pw\"]",
    ] {
        with_args(args).unwrap_or_else(|d| panic!("{args}: {d}"));
    }
    let policy = with_args("args: [--parallel, \"4\"]").unwrap_or_else(|d| panic!("{d}"));
    let p = backup(&policy, &w);
    assert!(verify(&policy, &w, &p).is_empty());
    let mut bad = p.clone();
    for s in &mut bad.steps {
        if let asdr_planner::params::Params::Asbackup(a) = &mut s.params {
            a.tool.args = vec!["--namespace=events".into()];
        }
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter().any(|x| x.rule == "tools"
            && x.message
                .contains("`--namespace=events` is set by asdr for asbackup")),
        "{v:?}"
    );
    let r = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(verify(&policy, &w, &r).is_empty());
    let mut bad = r.clone();
    for s in &mut bad.steps {
        if let asdr_planner::params::Params::Asrestore(a) = &mut s.params {
            a.tool.args = vec!["--file-limit".into(), "1024".into()];
        }
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter().any(|x| x.rule == "tools"
            && x.message
                .contains("`--file-limit` is not an option of asrestore")),
        "{v:?}"
    );
    // asrestore's own options go in restore_args.
    let policy = with_args("restore_args: [--threads, \"8\"]").unwrap_or_else(|d| panic!("{d}"));
    let r = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    let s = r
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::Asrestore)
        .unwrap();
    assert_eq!(
        crate::params(s)["args"],
        serde_json::json!(["--threads", "8"])
    );
}

#[test]
fn rp06_copies_under_way_count_against_max_in_flight_and_are_never_deleted() {
    // 9 copies of the newest set still being made in us-west-2, then the copy's retain lowered to
    // 1 while a new set is due.
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 3}", "retain: {count: 1}")
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    spec.newest_set_age = time::Duration::hours(30);
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 1, true);
    let pending: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter(|s| {
            s.region.as_deref() == Some(WEST)
                && s.state == asdr_planner::world::SnapshotState::Pending
        })
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(pending.len(), 9);
    let p = backup(&policy, &w);
    let deleted: BTreeSet<String> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .map(|s| s.id.trim_start_matches("delete_snapshot:").to_string())
        .collect();
    assert!(
        deleted.is_disjoint(&pending),
        "copies under way deleted: {deleted:?}"
    );
    // Every new copy starts after every copy under way is done.
    let waits: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| {
            matches!(&s.params, asdr_planner::params::Params::WaitSnapshot(x)
                if x.snapshot_id.as_ref().is_some_and(|id| pending.contains(id)))
        })
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(waits.len(), 9);
    let copies: Vec<&asdr_planner::Step> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::CopySnapshot)
        .collect();
    assert!(!copies.is_empty());
    for c in &copies {
        for w in &waits {
            assert!(
                c.depends_on.iter().any(|d| d == w),
                "{} does not wait for {w}",
                c.id
            );
        }
    }
    // The defect's plan: new copies beside the ones under way, which are also deleted.
    let mut bad = p.clone();
    bad.steps.retain(|s| !waits.contains(&s.id.as_str()));
    for s in &mut bad.steps {
        s.depends_on.retain(|d| !waits.contains(&d.as_str()));
    }
    let id = pending.iter().next().unwrap().clone();
    bad.steps.push(asdr_planner::Step {
        region: Some(WEST.into()),
        id: format!("delete_snapshot:{id}"),
        params: asdr_planner::params::Params::DeleteSnapshot(
            asdr_planner::params::DeleteSnapshot {
                snapshot_id: id,
                set: "x".into(),
                cluster_id: bad.cluster_id.clone(),
            },
        ),
        node: None,
        depends_on: vec![],
        cleanup: false,
    });
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.message.contains("under way to us-west-2")),
        "{v:?}"
    );
    assert!(
        v.iter().any(|x| x.message.contains("still being made")),
        "{v:?}"
    );
}

/// F, I1 (after F), I2 (after I1), both namespaces, each manifest naming the set it follows.
fn chain_world(policy: &Policy) -> World {
    let mut w = crate::asbackup::world(
        policy,
        &[
            ("bs-20261120T030000Z", None, BOTH),
            ("bs-20261120T090000Z", Some("bs-20261120T030000Z"), BOTH),
            ("bs-20261120T150000Z", Some("bs-20261120T030000Z"), BOTH),
        ],
    );
    for a in &mut w.asbackup_archives {
        a.after = match a.set.as_str() {
            "bs-20261120T090000Z" => Some("bs-20261120T030000Z".into()),
            "bs-20261120T150000Z" => Some("bs-20261120T090000Z".into()),
            _ => None,
        };
    }
    w
}

fn replayed(p: &Plan) -> Vec<String> {
    let s = p
        .steps
        .iter()
        .find(|s| s.id.starts_with("asrestore:users"))
        .unwrap_or_else(|| panic!("no asrestore of users"));
    crate::params(s)["directories"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d.as_str().unwrap().rsplit('/').nth(1).unwrap().to_string())
        .collect()
}

#[test]
fn rp09_a_chain_with_a_missing_file_or_a_missing_link_is_not_replayed_past_it() {
    let policy = crate::asbackup::policy("    incremental_every: 6h\n");
    let restore = |w: &World| {
        plan(&policy, w, NOW, &Operation::Restore("full-cluster".into()))
            .unwrap_or_else(|e| panic!("{e}"))
    };
    let whole = chain_world(&policy);
    assert_eq!(
        replayed(&restore(&whole)),
        [
            "bs-20261120T030000Z",
            "bs-20261120T090000Z",
            "bs-20261120T150000Z"
        ]
    );
    // A data file listed in I2's manifest deleted: I2 is damaged, the chain ends at I1.
    let mut w = chain_world(&policy);
    for a in w
        .asbackup_archives
        .iter_mut()
        .filter(|a| a.set == "bs-20261120T150000Z" && a.namespace == "users")
    {
        a.missing_files = 1;
    }
    assert_eq!(
        replayed(&restore(&w)),
        ["bs-20261120T030000Z", "bs-20261120T090000Z"]
    );
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let full = s
        .restores
        .iter()
        .find(|r| r.name == "full-cluster")
        .unwrap();
    assert_ne!(full.set.as_deref(), Some("bs-20261120T150000Z"));
    // I1's directory gone: I2 follows a set no longer there, so only F is replayed.
    let mut w = chain_world(&policy);
    w.asbackup_archives
        .retain(|a| a.set != "bs-20261120T090000Z");
    let p = restore(&w);
    assert_eq!(replayed(&p), ["bs-20261120T030000Z"]);
    // The defect's plan (F + I2) is refused by the verifier, which reads the links itself.
    let mut bad = p.clone();
    for s in bad
        .steps
        .iter_mut()
        .filter(|s| s.kind() == StepKind::Asrestore)
    {
        crate::edit(s, |v| {
            let d = v["directories"][0].as_str().unwrap().to_string();
            let i2 = d.replace("bs-20261120T030000Z", "bs-20261120T150000Z");
            v["directories"] = serde_json::json!([d, i2]);
        });
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R2" && x.message.contains("the chain has a gap")),
        "{v:?}"
    );
}

#[test]
fn rp16_a_drill_rehearses_the_restore_it_names_by_its_method_or_is_refused() {
    // An asbackup cluster that also has EBS sets: a drill of its restore would have rehearsed the
    // EBS set while the restore asrestores the newest chain. Refused, saying why.
    let d = crate::asbackup::asbackup_example()
        .append("\ndrills:\n  - name: quarterly\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-0d1a, us-east-1b: subnet-0d1b}\n      ip_offset: 100\n      security_groups: [sg-0drill]\n")
        .parse()
        .expect_err("a drill of an asrestore");
    assert!(
        d.items
            .iter()
            .any(|i| i.message.contains("restores with asrestore")
                && i.message.contains("would not run")),
        "{d}"
    );
    // Were the policy's check gone, the verifier tells the method itself: a drill planned as of
    // EBS sets is refused once the cluster backs up with asbackup.
    let drill = "\ndrills:\n  - name: quarterly\n    restore: full-cluster\n    target:\n      subnets: {us-east-1a: subnet-0d1a, us-east-1b: subnet-0d1b}\n      ip_offset: 100\n      security_groups: [sg-0drill]\n";
    let mut policy = ExamplePolicy::prod_east().append(drill).policy();
    let w = world_for(&policy, &WorldSpec::new(NOW));
    let p = plan(&policy, &w, NOW, &Operation::Drill("quarterly".into())).unwrap();
    assert!(verify(&policy, &w, &p).is_empty());
    policy.backup.method = asdr_specs::Method::Asbackup;
    let v = verify(&policy, &w, &p);
    assert!(
        v.iter()
            .any(|x| x.rule == "drill" && x.message.contains("restores with asrestore")),
        "{v:?}"
    );
}

#[test]
fn rp05_a_copys_smd_store_in_the_home_bucket_or_around_the_home_store_is_refused() {
    for smd_to in [
        "s3://acme-backups/asdr/dr-west",
        "s3://acme-backups/asdr",
        "s3://acme-backups",
        // The same bucket spelled otherwise (review).
        "s3://ACME-BACKUPS/dr",
        "s3://acme-backups./dr",
        "s3://acme-backups.s3.us-east-1.amazonaws.com/dr",
        "s3://s3.amazonaws.com/acme-backups/dr",
    ] {
        let d = ExamplePolicy::named("prod-east-dr")
            .edit(
                "smd_to: s3://acme-dr-west/asdr/prod-east",
                &format!("smd_to: {smd_to}"),
            )
            .parse()
            .expect_err(smd_to);
        assert!(
            d.items
                .iter()
                .any(|i| i.message.contains("the bucket of backup.smd.to")),
            "{smd_to}: {d}"
        );
    }
    // Were validation's check gone, the verifier reads where the plan writes for the copy
    // region: the defect's plan (the archive and manifest of us-west-2 in the home bucket) is
    // refused.
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(30);
    let w = world_for(&policy, &spec);
    let p = backup(&policy, &w);
    assert!(verify(&policy, &w, &p).is_empty());
    let mut bad = p.clone();
    let mut moved = 0;
    for s in bad
        .steps
        .iter_mut()
        .filter(|s| s.region.as_deref() == Some(WEST))
    {
        match &mut s.params {
            asdr_planner::params::Params::CopySmdArchive(c) => {
                c.to = c.to.replace("s3://acme-dr-west/", "s3://acme-backups/");
                moved += 1;
            }
            asdr_planner::params::Params::WriteManifest(m) => {
                m.uri = m.uri.replace("s3://acme-dr-west/", "s3://acme-backups/");
                moved += 1;
            }
            _ => {}
        }
    }
    assert!(
        moved >= 2,
        "{:?}",
        p.steps.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    let v = verify(&policy, &w, &bad);
    assert_eq!(
        v.iter()
            .filter(|x| x.rule == "R16" && x.message.contains("bucket `acme-backups`"))
            .count(),
        moved,
        "{v:?}"
    );
}

#[test]
fn rp10_asrestore_into_a_running_cluster_needs_consent() {
    let d = ExamplePolicy::prod_east()
        .edit("method: ebs-snapshot", "method: asbackup")
        .edit(
            "    source: latest-backup\n    accept_zombie_records: true   # required",
            "    source: empty\n    accept_zombie_records: true   # required",
        )
        .parse()
        .expect_err("a full-cluster asrestore without accept_zombie_records");
    assert!(
        d.items.iter().any(|i| i.rule == Some("R6")
            && i.message
                .contains("`full-cluster` asrestores set data into the running cluster")),
        "{d}"
    );
    // Durable deletes do not cover it: a scan carries no deletes.
    let d = ExamplePolicy::prod_east()
        .edit("method: ebs-snapshot", "method: asbackup")
        .edit("durable_deletes: false", "durable_deletes: true")
        .edit(
            "    source: latest-backup\n    accept_zombie_records: true   # required",
            "    source: empty\n    accept_zombie_records: true   # required",
        )
        .parse()
        .expect_err("durable deletes do not cover asrestore");
    assert!(d.items.iter().any(|i| i.rule == Some("R6")), "{d}");
    // Were the policy's check gone, the verifier reads the consent itself: the plan made with
    // consent is refused against the policy without it.
    let mut policy = crate::asbackup::policy("");
    let w = crate::asbackup::world(&policy, &[("bs-20261120T030000Z", None, BOTH)]);
    let p = asdr_planner::plan(
        &policy,
        &w,
        NOW,
        &asdr_planner::Operation::Restore("full-cluster".into()),
    )
    .unwrap();
    assert!(p.steps.iter().any(|s| s.kind() == StepKind::Asrestore));
    for r in &mut policy.restores {
        r.accept_zombie_records = false;
    }
    let v = verify(&policy, &w, &p);
    assert!(
        v.iter()
            .any(|x| x.rule == "R6" && x.message.contains("asrestores into the running cluster")),
        "{v:?}"
    );
}

/// Review findings on the above, each a regression test.
#[test]
fn rp_review_a_gap_in_a_chain_is_stepped_over_by_a_later_incremental_that_follows_the_whole_part() {
    let policy = crate::asbackup::policy("    incremental_every: 6h\n");
    let mut w = chain_world(&policy);
    // I1 lost a file; I2 follows I1 (after the gap); a later I3 follows F, the chain's last whole set.
    for a in w
        .asbackup_archives
        .iter_mut()
        .filter(|a| a.set == "bs-20261120T090000Z")
    {
        a.missing_files = 1;
    }
    for ns in BOTH {
        w.asbackup_archives
            .push(asdr_planner::world::AsbackupArchive {
                set: "bs-20261120T210000Z".into(),
                namespace: ns.to_string(),
                uri: format!("s3://acme-backups/asbackup/prod-east/bs-20261120T210000Z/{ns}"),
                incremental_of: Some("bs-20261120T030000Z".into()),
                cluster: Some("prod-east".into()),
                cluster_id: None,
                after: Some("bs-20261120T030000Z".into()),
                missing_files: 0,
                finished: None,
                compress: None,
                encrypt: None,
                retention: None,
            });
    }
    let p = plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into()))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(replayed(&p), ["bs-20261120T030000Z", "bs-20261120T210000Z"]);
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let full = s
        .restores
        .iter()
        .find(|r| r.name == "full-cluster")
        .unwrap();
    assert_eq!(full.set.as_deref(), Some("bs-20261120T210000Z"));
    assert!(verify(&policy, &w, &p).is_empty());
}

#[test]
fn rp_review_status_judges_asbackup_sets_by_whole_chains_and_new_ids_never_collide() {
    let policy = crate::asbackup::policy("");
    // Our incremental follows a full set written before manifests named their cluster, and
    // another cluster now writes to the store: the legacy full is no longer ours, so nothing is
    // restorable and status must say so.
    let mut w = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261121T000000Z", None, BOTH),
            ("bs-20261121T060000Z", Some("bs-20261121T000000Z"), BOTH),
        ],
    );
    for a in &mut w.asbackup_archives {
        if a.set == "bs-20261121T000000Z" {
            a.cluster = None;
        }
    }
    for ns in BOTH {
        w.asbackup_archives
            .push(asdr_planner::world::AsbackupArchive {
                set: "bs-20261121T090000Z".into(),
                namespace: ns.to_string(),
                uri: format!("s3://acme-backups/asbackup/prod-east/bs-20261121T090000Z/{ns}"),
                incremental_of: None,
                cluster: Some("prod-west".into()),
                cluster_id: None,
                after: None,
                missing_files: 0,
                finished: None,
                compress: None,
                encrypt: None,
                retention: None,
            });
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert!(!s.problems.is_empty(), "status says fine: {s:?}");
    // A backup is due at 09:00, where prod-west's run already is: the new set takes another id.
    let p = backup(&policy, &w);
    let runs: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::Asbackup)
        .map(|s| s.id.as_str())
        .collect();
    assert!(!runs.is_empty());
    assert!(
        runs.iter().all(|id| !id.ends_with("bs-20261121T090000Z")),
        "{runs:?}"
    );
}

#[test]
fn rp_review_sets_marked_before_members_with_per_node_device_names_stay_complete() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            "        - device: /dev/sdh        # EBS directly, no shadow; `ebs` defaults to the shadow's path, else the device's\n",
            "        - device: /dev/sdh\n          ebs: \"{{ '/dev/sdj' if node == 'b1' else '/dev/sdh' }}\"\n",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 4;
    let mut w = world_for(&policy, &spec);
    for s in &mut w.snapshots {
        s.tags.remove("asdr:members");
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert_eq!(s.complete_sets.len(), 4, "{s:?}");
    assert!(s.unfinished_sets.is_empty(), "{:?}", s.unfinished_sets);
}

#[test]
fn rp_review_a_node_removed_while_a_copy_region_catches_up_copies_the_sets_own_members() {
    // Sets made with a1, b1, a2; a2 is removed from the policy while us-west-2 still lacks them.
    let full = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 3;
    spec.newest_set_age = time::Duration::hours(30);
    let w_full = world_for(&full, &spec);
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit(
            "    - name: a2\n      private_ip: 10.0.1.12\n      availability_zone: us-east-1a\n",
            "",
        )
        .edit(", a2: 10.1.1.12}", "}")
        .policy();
    let mut w = w_full.clone();
    w.nodes.retain(|n| n.name != "a2");
    for n in &mut w.nodes {
        n.cluster_size = Some(2);
    }
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap_or_else(|e| panic!("{e}"));
    // The older sets are copied whole: a2's snapshots too.
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == StepKind::CopySnapshot && s.id.contains(":a2:")),
        "{:?}",
        p.steps.iter().map(|s| s.id.as_str()).collect::<Vec<_>>()
    );
}

#[test]
fn rp_review_a_copy_whose_source_is_another_nodes_snapshot_is_not_ours() {
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    // A us-west-2 snapshot that says a1 /dev/sdf of the oldest set, copied from b1's /dev/sdf.
    let oldest = w
        .snapshots
        .iter()
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .min()
        .unwrap();
    let src = w
        .snapshots
        .iter()
        .find(|s| {
            s.region.is_none()
                && s.tags.get("asdr:set") == Some(&oldest)
                && s.tags.get("asdr:node").map(String::as_str) == Some("b1")
                && s.tags.get("asdr:device").map(String::as_str) == Some("/dev/sdf")
        })
        .unwrap()
        .clone();
    let mut forged = src.clone();
    forged.id = "snap-0west00000000001".into();
    forged.region = Some(WEST.into());
    forged.tags.insert("asdr:node".into(), "a1".into());
    forged
        .tags
        .insert("asdr:source-snapshot".into(), src.id.clone());
    forged
        .tags
        .insert("asdr:source-region".into(), "us-east-1".into());
    w.snapshots.push(forged);
    let p = backup(&policy, &w);
    assert!(
        p.steps
            .iter()
            .all(|s| !s.id.contains("snap-0west00000000001")),
        "a snapshot whose source is another node's is not ours to delete or adopt"
    );
}

/// Found by the history: copies of one set failed (state `error`) while a new set is due and the
/// copy region is at its `retain`. The plan removes the failed copies at once (they hold
/// nothing), copies that set again, and retires the oldest complete copy only after the new
/// set's mark there; the verifier counts the new set for that, not held back by the failed
/// copies' deletes, which need not wait.
#[test]
fn failed_copies_removed_beside_a_new_set_leave_retention_verifiable() {
    let policy = ExamplePolicy::named("prod-east-dr")
        .edit("retain: {count: 3}", "retain: {count: 2}")
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 4;
    spec.newest_set_age = time::Duration::hours(30);
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 3, false);
    let newest_copied = w
        .snapshots
        .iter()
        .filter(|c| c.region.as_deref() == Some(WEST))
        .filter_map(|c| c.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    for c in w.snapshots.iter_mut().filter(|c| {
        c.region.as_deref() == Some(WEST) && c.tags.get("asdr:set") == Some(&newest_copied)
    }) {
        c.state = asdr_planner::world::SnapshotState::Error;
    }
    // plan() runs the verifier: a refusal would panic here.
    let p = backup(&policy, &w);
    let deleted = deleted_sets(&p, &w);
    assert!(
        deleted.contains(&(Some(WEST.to_string()), newest_copied.clone())),
        "{deleted:?}"
    );
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == StepKind::CopySnapshot
                && s.id.ends_with(&format!(":{newest_copied}"))),
        "the failed set is copied again"
    );
    assert!(verify(&policy, &w, &p).is_empty());
}

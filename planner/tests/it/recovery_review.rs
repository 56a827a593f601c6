//! Recovery points, second operator review: each reproduced defect as a named regression test
//! (`rr_…`), with the verifier (and, where it applies, the provider's own check) catching the
//! defective plan.

use asdr_planner::params::{DeleteSnapshot, Params};
use asdr_planner::testkit::{ExamplePolicy, WorldSpec, copy_sets, world_for};
use asdr_planner::world::World;
use asdr_planner::{Operation, Plan, Step, StepKind, plan, verify};
use asdr_specs::Policy;
use std::collections::BTreeSet;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

fn planned(policy: &Policy, w: &World, op: Operation) -> Plan {
    plan(policy, w, NOW, &op).unwrap_or_else(|e| panic!("{e}"))
}

fn set_ids(w: &World) -> BTreeSet<String> {
    w.snapshots
        .iter()
        .filter(|s| s.region.is_none())
        .filter_map(|s| s.tags.get("asdr:set").cloned())
        .collect()
}

/// The sets (of the cluster's own region) whose snapshots a plan deletes.
fn deleted_home_sets(p: &Plan, w: &World) -> BTreeSet<String> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot && s.region.is_none())
        .filter_map(|s| {
            let id = s.params.snapshot_id()?;
            w.snapshots.iter().find(|x| x.id == id)
        })
        .map(|x| x.tags["asdr:set"].clone())
        .collect()
}

/// A plan with one more step: deleting snapshot `id` of `set` at home, after nothing.
fn with_delete(mut p: Plan, id: &str, set: &str) -> Plan {
    p.steps.push(Step {
        region: None,
        id: format!("delete_snapshot:{id}"),
        params: Params::DeleteSnapshot(DeleteSnapshot {
            snapshot_id: id.into(),
            set: set.into(),
            cluster_id: p.cluster_id.clone(),
        }),
        node: Some("a1".into()),
        depends_on: vec![],
        cleanup: false,
    });
    p
}

/// Every directory the plan's asrestore steps replay is of `set` (and there is one).
fn assert_replays_only(p: &Plan, set: &str) {
    let dirs: Vec<&String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::Asrestore(a) => Some(&a.directories),
            _ => None,
        })
        .flatten()
        .collect();
    assert!(!dirs.is_empty());
    assert!(dirs.iter().all(|d| d.contains(set)), "{dirs:?}");
}

/// The plan as a tampered file would have it: its asrestore steps replay `to`'s runs for
/// `from`'s.
fn retarget_replays(p: &mut Plan, from: &str, to: &str) {
    for s in &mut p.steps {
        crate::edit(s, |v| {
            if let Some(list) = v.get_mut("directories").and_then(|d| d.as_array_mut()) {
                for d in list {
                    *d = d.as_str().unwrap().replace(from, to).into();
                }
            }
        });
    }
}

fn first_snapshot_of(w: &World, set: &str) -> String {
    w.snapshots
        .iter()
        .find(|s| s.region.is_none() && s.tags.get("asdr:set").map(String::as_str) == Some(set))
        .map(|s| s.id.clone())
        .unwrap()
}

/// Copies made into the cluster's region by a same-named cluster whose home is us-west-2 (a
/// cluster restored there, backed up with copies home): set `set`, every node and device,
/// marked complete, source tags pointing at us-west-2.
fn foreign_copies_at_home(policy: &Policy, w: &mut World, set: &str, start: OffsetDateTime) {
    let template: Vec<_> = w
        .snapshots
        .iter()
        .filter(|s| s.region.is_none() && s.tags.contains_key("asdr:complete"))
        .take(9)
        .cloned()
        .collect();
    for (k, mut s) in template.into_iter().enumerate() {
        s.id = format!("snap-0b{set:.13}{k:04}").replace(['-', 'T', 'Z'], "0");
        s.tags.insert("asdr:set".into(), set.into());
        s.tags
            .insert("asdr:cluster".into(), policy.cluster.name.clone());
        s.tags.insert("asdr:members".into(), "9".into());
        s.tags
            .insert("asdr:source-region".into(), "us-west-2".into());
        s.tags
            .insert("asdr:source-snapshot".into(), format!("snap-0west{k:08}"));
        s.start_time = start;
        w.snapshots.push(s);
    }
    // Their SMD archive, as the other cluster's copy would leave it in a shared store.
    w.smd_archives.push(asdr_planner::world::SmdArchive {
        set: set.into(),
        uri: format!("s3://acme-backups/asdr/prod-east/{set}/smd.tar.gz"),
        node: "a1".into(),
        sha256: None,
    });
}

#[test]
fn rr01_copies_made_into_the_clusters_region_by_a_same_named_cluster_are_never_its_sets() {
    let policy = ExamplePolicy::named("prod-east-dr").policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 7;
    spec.newest_set_age = time::Duration::hours(30); // a backup is due
    let mut w = world_for(&policy, &spec);
    copy_sets(&mut w, &policy, 0, 2, false);
    let ours = set_ids(&w);
    // One newer than every set of ours (would be "resumed" and marked), one older (would be
    // deleted as never completed).
    foreign_copies_at_home(
        &policy,
        &mut w,
        "bs-20261121T030000Z",
        datetime!(2026-11-21 03:00 UTC),
    );
    foreign_copies_at_home(
        &policy,
        &mut w,
        "bs-20261001T030000Z",
        datetime!(2026-10-01 03:00 UTC),
    );
    let foreign: BTreeSet<String> = w
        .snapshots
        .iter()
        .filter(|s| s.tags.contains_key("asdr:source-region") && s.region.is_none())
        .map(|s| s.id.clone())
        .collect();
    assert_eq!(foreign.len(), 18);

    // The backup snapshots every node of ours in a new set, and never touches theirs.
    let p = planned(&policy, &w, Operation::Backup);
    let touched: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| foreign.iter().any(|f| s.id.contains(f.as_str())))
        .map(|s| s.id.as_str())
        .collect();
    assert!(touched.is_empty(), "{touched:?}");
    let snapshotted: BTreeSet<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::SnapshotInstance)
        .filter_map(|s| s.node.as_deref())
        .collect();
    assert_eq!(snapshotted, BTreeSet::from(["a1", "a2", "b1"]));
    assert!(
        !p.steps.iter().any(|s| s.id.contains("bs-20261121T030000Z")),
        "their set is not resumed as ours"
    );
    assert!(verify(&policy, &w, &p).is_empty());

    // status and restores see only ours.
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let newest = s.newest_complete.as_ref().map(|n| n.set.clone()).unwrap();
    assert!(ours.contains(&newest), "{newest}");
    let r = planned(&policy, &w, Operation::Restore("full-cluster".into()));
    let from: BTreeSet<String> = r
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::CreateVolume(c) => c.snapshot_id.clone(),
            _ => None,
        })
        .collect();
    assert!(!from.is_empty() && from.is_disjoint(&foreign), "{from:?}");

    // The verifier reads the source tags itself, and the provider checks them right before it
    // deletes.
    let id = foreign.iter().next().unwrap();
    let bad = with_delete(
        planned(&policy, &w, Operation::Backup),
        id,
        "bs-20261001T030000Z",
    );
    let v = verify(&policy, &w, &bad);
    assert!(v.iter().any(|x| x.rule == "R13"), "{v:?}");
    let snap = w.snapshots.iter().find(|s| &s.id == id).unwrap();
    let refused = asdr_planner::tags::may_delete_snapshot(
        id,
        &snap.tags,
        "prod-east",
        Some(asdr_planner::testkit::CLUSTER_ID),
        false,
    )
    .unwrap_err();
    assert!(
        refused.contains("a copy made into the cluster's region"),
        "{refused}"
    );
}

#[test]
fn rr02_a_marked_set_whose_smd_archive_is_not_seen_is_kept_like_a_complete_one() {
    // `smd.to` moved (or a lifecycle rule expired the archives): the old sets are marked, every
    // member there, but no SMD archive is listed where asdr looks now. No max_age: a leftover of
    // a failed run older than every kept set would go at once.
    let policy = ExamplePolicy::prod_east()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 7}")
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 8;
    let mut w = world_for(&policy, &spec);
    let newest = set_ids(&w).into_iter().max().unwrap();
    w.smd_archives.retain(|a| a.set == newest);
    let p = planned(&policy, &w, Operation::Backup);
    let deleted = deleted_home_sets(&p, &w);
    assert!(deleted.is_empty(), "deletes {deleted:?}");
    // The verifier refuses deleting one of them while retain keeps fewer than `count` sets.
    let oldest = set_ids(&w).into_iter().min().unwrap();
    let bad = with_delete(p, &first_snapshot_of(&w, &oldest), &oldest);
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("was marked complete")),
        "{v:?}"
    );
    // A set that never completed (no mark) and is older than every kept set is still a leftover.
    let mut w2 = world_for(&policy, &spec);
    let oldest2 = set_ids(&w2).into_iter().min().unwrap();
    for s in w2
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set") == Some(&oldest2))
    {
        s.tags.remove("asdr:complete");
    }
    let p2 = planned(&policy, &w2, Operation::Backup);
    assert!(deleted_home_sets(&p2, &w2).contains(&oldest2));
}

#[test]
fn rr03_retention_never_deletes_the_set_a_declared_restore_restores_from() {
    let base =
        ExamplePolicy::prod_east().edit("retain: {count: 7, max_age: 30d}", "retain: {count: 3}");
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 8;
    let w = world_for(&base.clone().policy(), &spec);
    let sets: Vec<String> = set_ids(&w).into_iter().collect();
    let golden = sets[0].clone();
    // `before:` just after the third set's snapshots started: it takes the third set.
    let third_start = w
        .snapshots
        .iter()
        .filter(|s| s.tags.get("asdr:set") == Some(&sets[2]))
        .map(|s| s.start_time)
        .max()
        .unwrap();
    let before = (third_start + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let policy = base
        .append(&format!(
            "  - {{name: pre-upgrade-golden, scope: cluster, source: 'set:{golden}', accept_zombie_records: true}}\n  - {{name: before-bad-deploy, scope: cluster, source: 'before:{before}', accept_zombie_records: true}}\n"
        ))
        .policy();
    let p = planned(&policy, &w, Operation::Backup);
    let deleted = deleted_home_sets(&p, &w);
    assert!(!deleted.is_empty(), "retain 3 of 8 deletes some");
    assert!(!deleted.contains(&golden), "{deleted:?}");
    assert!(!deleted.contains(&sets[2]), "{deleted:?}");
    assert!(
        p.warnings.iter().any(|x| x
            .message
            .contains("restore `pre-upgrade-golden` restores from it")),
        "{:?}",
        p.warnings
    );
    let s = asdr_planner::status::status(&policy, &w, NOW);
    for name in ["pre-upgrade-golden", "before-bad-deploy"] {
        let r = s.restores.iter().find(|r| r.name == name).unwrap();
        assert!(r.set.is_some(), "{name}: {r:?}");
    }
    // The verifier refuses a plan that deletes either.
    for set in [&golden, &sets[2]] {
        let bad = with_delete(p.clone(), &first_snapshot_of(&w, set), set);
        let v = verify(&policy, &w, &bad);
        assert!(
            v.iter()
                .any(|x| x.rule == "R13" && x.message.contains("restores from")),
            "{set}: {v:?}"
        );
    }
}

#[test]
fn rr04_a_full_cluster_restore_restores_a_node_already_on_the_sets_volumes_with_the_others() {
    // a1 was restored alone from the newest set earlier and runs on those volumes since.
    let policy = ExamplePolicy::prod_east().policy();
    let mut w = world_for(&policy, &WorldSpec::new(NOW));
    let newest = set_ids(&w).into_iter().max().unwrap();
    let a1_snaps: Vec<(String, String)> = w
        .snapshots
        .iter()
        .filter(|s| {
            s.tags.get("asdr:set") == Some(&newest)
                && s.tags.get("asdr:node").map(String::as_str) == Some("a1")
        })
        .map(|s| (s.tags["asdr:device"].clone(), s.id.clone()))
        .collect();
    for v in w
        .volumes
        .iter_mut()
        .filter(|v| v.tags.get("asdr:node").map(String::as_str) == Some("a1"))
    {
        let dev = v.tags["asdr:device"].clone();
        v.snapshot_id = a1_snaps
            .iter()
            .find(|(d, _)| *d == dev)
            .map(|(_, id)| id.clone());
    }
    let p = planned(&policy, &w, Operation::Restore("full-cluster".into()));
    let stopped: BTreeSet<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::StopNode)
        .filter_map(|s| s.node.as_deref())
        .collect();
    assert_eq!(stopped, BTreeSet::from(["a1", "a2", "b1"]));
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == StepKind::AttachVolume && s.node.as_deref() == Some("a1")),
        "a1 gets fresh volumes from the set too"
    );
    assert!(verify(&policy, &w, &p).is_empty());
    // The plan as it was made before: a1 left out, running, while the others stop.
    let mut bad = p.clone();
    let gone: BTreeSet<String> = bad
        .steps
        .iter()
        .filter(|s| s.node.as_deref() == Some("a1"))
        .map(|s| s.id.clone())
        .collect();
    bad.steps.retain(|s| !gone.contains(&s.id));
    for s in &mut bad.steps {
        s.depends_on.retain(|d| !gone.contains(d));
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R12" && x.message.contains("leaves a1 running")),
        "{v:?}"
    );
}

#[test]
fn rr05_an_unnamed_asbackup_run_after_this_clusters_first_named_one_is_another_clusters() {
    let policy = crate::asbackup::policy("");
    let both: &[&str] = &["users", "events"];
    let mut w = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261118T000000Z", None, both),
            ("bs-20261119T000000Z", None, both),
            ("bs-20261120T000000Z", None, both),
            ("bs-20261121T000000Z", None, both),
        ],
    );
    // 19 and 21: another cluster sharing the store, still writing manifests without names.
    for a in w
        .asbackup_archives
        .iter_mut()
        .filter(|a| a.set.ends_with("19T000000Z") || a.set.ends_with("21T000000Z"))
    {
        a.cluster = None;
    }
    let s = asdr_planner::status::status(&policy, &w, NOW);
    assert_eq!(
        s.newest_complete.as_ref().map(|n| n.set.as_str()),
        Some("bs-20261120T000000Z")
    );
    let r = planned(&policy, &w, Operation::Restore("full-cluster".into()));
    assert_replays_only(&r, "bs-20261120T000000Z");
    let p = planned(&policy, &w, Operation::Backup);
    let deleted: BTreeSet<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::DeleteBackup(d) => Some(d.set.clone()),
            _ => None,
        })
        .collect();
    assert!(
        !deleted.contains("bs-20261119T000000Z") && !deleted.contains("bs-20261121T000000Z"),
        "{deleted:?}"
    );
    // The verifier's own reading refuses a plan restoring theirs.
    let mut bad = r.clone();
    retarget_replays(&mut bad, "20261120", "20261121");
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.message.contains("another cluster's run")),
        "{v:?}"
    );
}

#[test]
fn rr06_an_asbackup_before_restore_takes_only_runs_finished_before_its_time() {
    // The 00:00 set's runs finished at 02:10: they hold records written until then.
    let policy = crate::asbackup::policy("");
    let both: &[&str] = &["users", "events"];
    let mut w = crate::asbackup::world(
        &policy,
        &[
            ("bs-20261120T000000Z", None, both),
            ("bs-20261121T000000Z", None, both),
        ],
    );
    for a in &mut w.asbackup_archives {
        a.finished = Some(if a.set == "bs-20261121T000000Z" {
            datetime!(2026-11-21 02:10 UTC)
        } else {
            datetime!(2026-11-20 01:00 UTC)
        });
    }
    let mut policy = policy;
    let mut r = policy.restore("full-cluster").unwrap().clone();
    r.name = "asb-before".into();
    r.source = asdr_specs::RestoreSource::Before(datetime!(2026-11-21 00:30 UTC));
    policy.restores.push(r);
    let p = planned(&policy, &w, Operation::Restore("asb-before".into()));
    assert_replays_only(&p, "bs-20261120T000000Z");
    let s = asdr_planner::status::status(&policy, &w, NOW);
    let named = s.restores.iter().find(|r| r.name == "asb-before").unwrap();
    assert_eq!(named.set.as_deref(), Some("bs-20261120T000000Z"));
    // The verifier reads the finish times itself: a plan replaying the 00:00 set is refused.
    let mut bad = p.clone();
    retarget_replays(&mut bad, "20261120", "20261121");
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R2" && x.message.contains("not before 2026-11-21T00:30:00Z")),
        "{v:?}"
    );
}

#[test]
fn rr07_a_before_restores_set_is_kept_when_its_smd_archive_is_no_longer_seen() {
    let base =
        ExamplePolicy::prod_east().edit("retain: {count: 7, max_age: 30d}", "retain: {count: 3}");
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 8;
    let mut w = world_for(&base.clone().policy(), &spec);
    let sets: Vec<String> = set_ids(&w).into_iter().collect();
    let start = w
        .snapshots
        .iter()
        .filter(|s| s.tags.get("asdr:set") == Some(&sets[1]))
        .map(|s| s.start_time)
        .max()
        .unwrap();
    let before = (start + time::Duration::minutes(30))
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap();
    let policy = base
        .append(&format!(
            "  - {{name: pit, scope: cluster, source: 'before:{before}', accept_zombie_records: true}}\n"
        ))
        .policy();
    // Its SMD archive is not where `smd.to` points now (moved, or expired by a lifecycle rule).
    w.smd_archives.retain(|a| a.set != sets[1]);
    let p = planned(&policy, &w, Operation::Backup);
    let deleted = deleted_home_sets(&p, &w);
    assert!(!deleted.is_empty(), "retain 3 of 8 deletes some");
    assert!(!deleted.contains(&sets[1]), "{deleted:?}");
    // The verifier reads the pin itself.
    let bad = with_delete(p, &first_snapshot_of(&w, &sets[1]), &sets[1]);
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R13" && x.message.contains("restore `pit` restores from")),
        "{v:?}"
    );
}

#[test]
fn rr08_a_runner_whose_clock_is_behind_the_newest_set_makes_no_set_and_status_says_so() {
    // A set was made at 09:00 by a runner whose clock was right; this one says 07:00, a new node
    // makes a set due. Made now, it would be named older than the sets before it, and retention
    // (the newest by their time) would take the wrong one.
    let policy = ExamplePolicy::prod_east()
        .edit(
            "\nbackup:",
            "    - name: a3\n      private_ip: 10.0.2.12\n      availability_zone: us-east-1b\n\nbackup:",
        )
        .policy();
    let mut spec = WorldSpec::new(NOW);
    spec.newest_set_age = time::Duration::hours(0);
    // a3 runs, and no set holds it yet.
    let mut w = world_for(&policy, &spec);
    w.snapshots
        .retain(|s| s.tags.get("asdr:node").map(String::as_str) != Some("a3"));
    let behind = NOW - time::Duration::hours(2);
    match plan(&policy, &w, behind, &Operation::Backup) {
        Err(asdr_planner::PlanError::Refused(d)) => {
            assert!(
                d.message.contains("later than this machine's clock"),
                "{}",
                d.message
            );
        }
        other => panic!("not refused: {:?}", other.map(|p| p.summary)),
    }
    let s = asdr_planner::status::status(&policy, &w, behind);
    assert!(
        s.problems.iter().any(|p| p.contains("a clock is off")),
        "{:?}",
        s.problems
    );
    // With the clock right, the backup is planned.
    assert!(plan(&policy, &w, NOW, &Operation::Backup).is_ok());
}

#[test]
fn rr09_asrestore_reads_a_set_with_the_compression_and_encryption_it_was_written_with() {
    // The sets were written with zstd; the policy dropped compression since.
    let policy = crate::asbackup::policy("");
    let policy = {
        let mut p = policy;
        p.backup.asbackup.as_mut().unwrap().compress = None;
        p
    };
    let both: &[&str] = &["users", "events"];
    let mut w = crate::asbackup::world(&policy, &[("bs-20261121T000000Z", None, both)]);
    for a in &mut w.asbackup_archives {
        a.compress = Some("zstd".into());
        a.encrypt = Some("none".into());
    }
    let p = planned(&policy, &w, Operation::Restore("full-cluster".into()));
    let told: Vec<String> = p
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::Asrestore(a) => Some(a.tool.compress_name().to_string()),
            _ => None,
        })
        .collect();
    assert_eq!(told, ["zstd", "zstd"]);
    // The verifier reads the manifests' names itself: told otherwise, refused.
    let mut bad = p.clone();
    for s in &mut bad.steps {
        if let Params::Asrestore(a) = &mut s.params {
            a.tool.compress = None;
        }
    }
    let v = verify(&policy, &w, &bad);
    assert!(
        v.iter()
            .any(|x| x.rule == "R2" && x.message.contains("was written with compress zstd")),
        "{v:?}"
    );
    // Encrypted with a key the policy no longer names: refused, saying so.
    for a in &mut w.asbackup_archives {
        a.encrypt = Some("aes256".into());
    }
    match plan(&policy, &w, NOW, &Operation::Restore("full-cluster".into())) {
        Err(asdr_planner::PlanError::Refused(d)) => {
            assert!(d.message.contains("names no key file"), "{}", d.message)
        }
        other => panic!("not refused: {:?}", other.map(|p| p.summary)),
    }
    // A chain written two ways cannot be read by one asrestore: refused.
    let mut w = crate::asbackup::world(
        &crate::asbackup::policy("    incremental_every: 6h\n"),
        &[
            ("bs-20261120T120000Z", None, both),
            ("bs-20261120T180000Z", Some("bs-20261120T120000Z"), both),
        ],
    );
    for a in &mut w.asbackup_archives {
        a.compress = Some(
            if a.set.ends_with("120000Z") {
                "zstd"
            } else {
                "none"
            }
            .into(),
        );
        a.encrypt = Some("none".into());
    }
    let chained = crate::asbackup::policy("    incremental_every: 6h\n");
    match plan(
        &chained,
        &w,
        NOW,
        &Operation::Restore("full-cluster".into()),
    ) {
        Err(asdr_planner::PlanError::Refused(d)) => {
            assert!(
                d.message.contains("written in different ways"),
                "{}",
                d.message
            )
        }
        other => panic!("not refused: {:?}", other.map(|p| p.summary)),
    }
}

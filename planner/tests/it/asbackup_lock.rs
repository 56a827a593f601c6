//! R20 for asbackup sets: `backup.lock` retains every file of a run, and its manifest, with S3
//! Object Lock before the run counts as finished; a set the lock covers is never deleted, its
//! chain kept whole until then, whatever `retain` says; a bucket without Object Lock refuses the
//! backup before any run.

use crate::asbackup::{asbackup_example, world};
use crate::{edit, params};
use asdr_planner::{Operation, Plan, PlanError, StepKind, plan, verify};
use asdr_specs::Policy;
use time::OffsetDateTime;
use time::macros::datetime;

const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
const BOTH: &[&str] = &["users", "events"];

fn locked(mode: &str, duration: &str) -> Policy {
    asbackup_example()
        .edit(
            "retain: {count: 7, max_age: 30d}",
            &format!("retain: {{count: 2}}\n  lock: {{mode: {mode}, duration: {duration}}}"),
        )
        .policy()
}

/// Chains at 17T09 (with an incremental at 17T15), 19T09 and 20T10: the oldest is past
/// `retain.count: 2`.
const RUNS: &[(&str, Option<&str>, &[&str])] = &[
    ("bs-20261117T090000Z", None, BOTH),
    ("bs-20261117T150000Z", Some("bs-20261117T090000Z"), BOTH),
    ("bs-20261119T090000Z", None, BOTH),
    ("bs-20261120T100000Z", None, BOTH),
];

fn deletes(p: &Plan) -> Vec<String> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteBackup)
        .map(|s| s.id.clone())
        .collect()
}

#[test]
fn r20_a_chain_past_retain_stays_whole_while_the_lock_covers_any_of_its_sets_then_goes() {
    let policy = locked("governance", "5d");
    let w = world(&policy, RUNS);
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(deletes(&p).is_empty(), "{:?}", deletes(&p));
    assert!(
        p.warnings.iter().any(|x| x.rule == "R20"
            && x.message
                .contains("chain bs-20261117T090000Z is past retain.count")
            && x.message.contains(
                "set bs-20261117T150000Z is locked (governance) until 2026-11-22T15:00:00Z"
            )),
        "{:#?}",
        p.warnings
    );
    assert!(verify(&policy, &w, &p).is_empty());
    // Once the incremental's lock has run out too, the chain goes, incremental first.
    let later = datetime!(2026-11-22 16:00:00 UTC);
    let mut w2 = w.clone();
    w2.now = Some(later);
    let p = plan(&policy, &w2, later, &Operation::Backup).unwrap();
    assert_eq!(
        deletes(&p),
        [
            "delete_backup:bs-20261117T150000Z",
            "delete_backup:bs-20261117T090000Z"
        ]
    );
}

#[test]
fn r20_the_verifier_refuses_deleting_an_asbackup_set_the_lock_covers() {
    // The plan of the same world without a lock deletes the oldest chain: under the lock, the
    // same plan file is refused.
    let unlocked = asbackup_example()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 2}")
        .policy();
    let w = world(&unlocked, RUNS);
    let p = plan(&unlocked, &w, NOW, &Operation::Backup).unwrap();
    assert_eq!(deletes(&p).len(), 2);
    let policy = locked("compliance", "5d");
    let v = verify(&policy, &w, &p);
    assert!(
        v.iter().any(|x| x.rule == "R20"
            && x.message
                .contains("deletes asbackup set bs-20261117T150000Z, which the policy locks (compliance, 5d) until 2026-11-22T15:00:00Z")),
        "{v:?}"
    );
}

#[test]
fn r20_every_run_of_a_locked_set_retains_its_files_until_the_sets_lock_ends_and_a_run_without_is_refused()
 {
    let policy = locked("compliance", "14d");
    // The newest full set is two days old: a new one is due.
    let w = world(
        &policy,
        &[
            ("bs-20261118T090000Z", None, BOTH),
            ("bs-20261119T090000Z", None, BOTH),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    let runs: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::Asbackup)
        .collect();
    assert_eq!(runs.len(), 2, "one per namespace");
    for s in &runs {
        let r = &params(s)["retention"];
        assert_eq!(r["mode"], "compliance", "{}", s.id);
        assert_eq!(r["until"], "2026-12-05T09:00:00Z", "{}", s.id);
    }
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
    // A plan file whose run does not retain (or retains shorter) is refused.
    for tamper in [
        serde_json::Value::Null,
        serde_json::json!({"mode": "governance", "until": "2026-12-05T09:00:00Z"}),
        serde_json::json!({"mode": "compliance", "until": "2026-11-22T09:00:00Z"}),
    ] {
        let mut bad = p.clone();
        let i = bad
            .steps
            .iter()
            .position(|s| s.kind() == StepKind::Asbackup)
            .unwrap();
        edit(&mut bad.steps[i], |x| x["retention"] = tamper.clone());
        let v = verify(&policy, &w, &bad);
        assert!(
            v.iter()
                .any(|x| x.rule == "R20" && x.message.contains("does not retain its files")),
            "{tamper}: {v:?}"
        );
    }
}

#[test]
fn r20_a_locked_asbackup_backup_to_a_bucket_without_object_lock_is_refused_before_any_run() {
    let policy = locked("governance", "5d");
    let mut w = world(&policy, &[("bs-20261118T090000Z", None, BOTH)]);
    w.object_lock.insert("acme-backups".into(), false);
    match plan(&policy, &w, NOW, &Operation::Backup) {
        Err(PlanError::Refused(d)) => assert!(
            d.message.contains("bucket acme-backups")
                && d.message.contains("has no S3 Object Lock"),
            "{}",
            d.message
        ),
        other => panic!("not refused: {other:?}"),
    }
}

#[test]
fn a_lock_on_asbackup_sets_is_refused_on_a_file_store_and_with_a_cool_off_and_explained_otherwise()
{
    let file = asbackup_example()
        .edit(
            "to: s3://acme-backups/asbackup/prod-east",
            "to: file:///var/backups/asb",
        )
        .edit(
            "retain: {count: 7, max_age: 30d}",
            "retain: {count: 7, max_age: 30d}\n  lock: {mode: governance, duration: 5d}",
        );
    let err = file.parse().expect_err("a file store cannot be locked");
    assert!(err.to_string().contains("which cannot be locked"), "{err}");
    let ok = locked("compliance", "14d");
    assert!(
        ok.notes
            .iter()
            .any(|n| n.contains("every asbackup set's files and manifest in s3://acme-backups/asbackup/prod-east are written with S3 Object Lock retention")),
        "{:?}",
        ok.notes
    );
}

/// The world's runs with the retention their manifests hold in the store (as observed).
fn retained(mut w: asdr_planner::World, set: &str, until: &str) -> asdr_planner::World {
    for a in w.asbackup_archives.iter_mut().filter(|a| a.set == set) {
        a.retention = Some(asdr_planner::params::Retention {
            mode: asdr_specs::LockMode::Governance,
            until: until.into(),
        });
    }
    w
}

#[test]
fn r20_a_set_the_store_still_retains_is_kept_and_never_deleted_after_the_lock_is_removed_from_the_policy()
 {
    // The policy no longer locks; the store still retains the oldest chain's incremental.
    let unlocked = asbackup_example()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 2}")
        .policy();
    let bare = world(&unlocked, RUNS);
    let w = retained(bare.clone(), "bs-20261117T150000Z", "2026-11-24T15:00:00Z");
    let p = plan(&unlocked, &w, NOW, &Operation::Backup).unwrap();
    assert!(deletes(&p).is_empty(), "{:?}", deletes(&p));
    assert!(
        p.warnings.iter().any(|x| x.rule == "R20"
            && x.message.contains("set bs-20261117T150000Z is retained in the store (governance) until 2026-11-24T15:00:00Z")),
        "{:#?}",
        p.warnings
    );
    // The plan made without seeing it (the world before) deletes the chain: refused now.
    let stale = plan(&unlocked, &bare, NOW, &Operation::Backup).unwrap();
    assert_eq!(deletes(&stale).len(), 2);
    let v = verify(&unlocked, &w, &stale);
    assert!(
        v.iter().any(|x| x.rule == "R20"
            && x.message
                .contains("whose files the store retains (governance) until 2026-11-24T15:00:00Z")),
        "{v:?}"
    );
}

#[test]
fn r13_a_delete_naming_one_set_never_reaches_another_sets_runs() {
    let unlocked = asbackup_example()
        .edit("retain: {count: 7, max_age: 30d}", "retain: {count: 2}")
        .policy();
    let w = world(&unlocked, RUNS);
    let mut p = plan(&unlocked, &w, NOW, &Operation::Backup).unwrap();
    let i = p
        .steps
        .iter()
        .position(|s| s.kind() == StepKind::DeleteBackup)
        .unwrap();
    // The expired set's step, pointed at the newest set's directories.
    edit(&mut p.steps[i], |x| {
        x["directories"] =
            serde_json::json!(["s3://acme-backups/asbackup/prod-east/bs-20261120T100000Z/users"])
    });
    let v = verify(&unlocked, &w, &p);
    assert!(
        v.iter().any(|x| x.rule == "R13"
            && x.message
                .contains("a run of set bs-20261120T100000Z, not of set")),
        "{v:?}"
    );
}

#[test]
fn r20_a_run_resumed_after_its_sets_lock_ended_is_said_to_go_without_retention_and_status_reads_asbackups_bucket()
 {
    // every 7d, lock 2d: the unfinished set from 11-18 is resumed (events) on 11-21.
    let policy = asbackup_example()
        .edit("every: 24h", "every: 7d")
        .edit(
            "retain: {count: 7, max_age: 30d}",
            "retain: {count: 2}\n  lock: {mode: compliance, duration: 2d}",
        )
        .policy();
    assert!(
        policy
            .notes
            .iter()
            .any(|n| n.contains("less than every 7d")),
        "{:?}",
        policy.notes
    );
    let w = world(
        &policy,
        &[
            ("bs-20261110T090000Z", None, BOTH),
            ("bs-20261118T090000Z", None, &["users"]),
        ],
    );
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        p.warnings.iter().any(|x| x.rule == "R20"
            && x.message
                .contains("set bs-20261118T090000Z is finished (events) after its lock ended")),
        "{:#?}",
        p.warnings
    );
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
    // status: the asbackup bucket's Object Lock is what counts for this method.
    let mut w = w;
    w.object_lock.insert("acme-backups".into(), false);
    let status = asdr_planner::status::status(&policy, &w, NOW);
    assert!(
        status
            .problems
            .iter()
            .any(|p| p.contains("bucket acme-backups (s3://acme-backups/asbackup/prod-east)")),
        "{:#?}",
        status.problems
    );
}

#[test]
fn r20_an_incrementals_retention_reaches_back_over_the_sets_it_follows_in_its_chain() {
    let policy = asbackup_example()
        .edit("every: 24h", "every: 7d")
        .edit(
            "retain: {count: 7, max_age: 30d}",
            "retain: {count: 1}\n  lock: {mode: compliance, duration: 2d}",
        )
        .edit(
            "    args: [--compress, zstd]\n",
            "    args: [--compress, zstd]\n    incremental_every: 1d\n",
        )
        .policy();
    let w = world(
        &policy,
        &[
            ("bs-20261115T090000Z", None, BOTH),
            ("bs-20261120T090000Z", Some("bs-20261115T090000Z"), BOTH),
        ],
    );
    let w = retained(w, "bs-20261115T090000Z", "2026-11-17T09:00:00Z");
    let w = retained(w, "bs-20261120T090000Z", "2026-11-22T09:00:00Z");
    let p = plan(&policy, &w, NOW, &Operation::Backup).unwrap();
    assert!(
        p.steps.iter().any(|s| s.kind() == StepKind::Asbackup),
        "an incremental is due"
    );
    // The full set and the earlier incremental are retained as long as the new incremental.
    for set in ["bs-20261115T090000Z", "bs-20261120T090000Z"] {
        let s = p
            .step(&format!("retain_files:{set}"))
            .unwrap_or_else(|| panic!("{set} retained again"));
        let x = params(s);
        assert_eq!(x["retention"]["until"], "2026-11-23T09:00:00Z", "{set}");
        assert_eq!(x["retention"]["mode"], "compliance", "{set}");
        assert_eq!(
            x["directories"],
            serde_json::json!([
                format!("s3://acme-backups/asbackup/prod-east/{set}/users"),
                format!("s3://acme-backups/asbackup/prod-east/{set}/events")
            ]),
            "{set}"
        );
    }
    assert!(
        verify(&policy, &w, &p).is_empty(),
        "{:?}",
        verify(&policy, &w, &p)
    );
}

#[test]
fn r20_status_shows_each_asbackup_sets_retention_as_observed_and_says_where_it_falls_short() {
    let policy = locked("compliance", "5d");
    let w = world(
        &policy,
        &[
            ("bs-20261119T090000Z", None, BOTH),
            ("bs-20261120T100000Z", None, BOTH),
        ],
    );
    // The newest set's runs hold their retention; the older set's do not (written before the
    // lock, or its retention never read back).
    let mut w = w;
    for a in w
        .asbackup_archives
        .iter_mut()
        .filter(|a| a.set == "bs-20261120T100000Z")
    {
        a.retention = Some(asdr_planner::params::Retention {
            mode: asdr_specs::LockMode::Compliance,
            until: "2026-11-25T10:00:00Z".into(),
        });
    }
    let status = asdr_planner::status::status(&policy, &w, NOW);
    let row = |set: &str| {
        status
            .locks
            .iter()
            .find(|l| l.set == set)
            .unwrap_or_else(|| panic!("{set}: {:#?}", status.locks))
    };
    let newest = row("bs-20261120T100000Z");
    assert!(newest.locked && newest.is_final, "{newest:?}");
    assert_eq!((newest.locked_members, newest.members), (2, 2));
    assert_eq!(
        newest.until,
        Some(time::macros::datetime!(2026-11-25 10:00:00 UTC))
    );
    let older = row("bs-20261119T090000Z");
    assert!(!older.locked && older.until.is_none(), "{older:?}");
    assert!(
        status.problems.iter().any(|p| p.contains(
            "asbackup set bs-20261119T090000Z is not retained as the policy says (compliance until 2026-11-24T09:00:00Z): 2 of its 2 runs"
        )),
        "{:#?}",
        status.problems
    );
    assert!(
        !status
            .problems
            .iter()
            .any(|p| p.contains("bs-20261120T100000Z")),
        "{:#?}",
        status.problems
    );
}

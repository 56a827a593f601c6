//! R20: a locked set is never deleted. Locks observed on snapshots and the policy's own lock
//! (`backup.lock`) both keep a set past retain; a new set is locked before it is marked; sets
//! made before the lock was declared are locked by the plan; the verifier refuses a plan that
//! deletes a locked snapshot or marks a set unlocked, whatever the planner did.

use std::collections::HashSet;

use asdr_planner::testkit::{ExamplePolicy, WorldSpec, world_for};
use asdr_planner::world::{SnapshotLock, World};
use asdr_planner::{Operation, Plan, StepKind, plan, verify};
use asdr_specs::{LockMode, Policy};
use time::OffsetDateTime;
use time::macros::datetime;

use crate::params;

pub(crate) const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);
pub(crate) const OLDEST: &str = "bs-20261111T030000Z";

/// The example policy (retain count 7, max_age 30d) with `lock` under `backup`.
pub(crate) fn locked_policy(lock: &str) -> Policy {
    ExamplePolicy::prod_east()
        .edit(
            "  tags: {team: data}",
            &format!("  tags: {{team: data}}\n  lock: {lock}"),
        )
        .policy()
}

/// Ten daily sets, the newest 30 h old: with count 7 and the new set, the oldest four are past
/// retain.
pub(crate) fn ten_sets(policy: &Policy) -> World {
    let mut spec = WorldSpec::new(NOW);
    spec.sets = 10;
    spec.newest_set_age = time::Duration::hours(30);
    world_for(policy, &spec)
}

fn lock_set(world: &mut World, set: &str, mode: LockMode, expires: OffsetDateTime) {
    for s in world
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set").map(String::as_str) == Some(set))
    {
        s.lock = Some(SnapshotLock {
            mode,
            expires,
            cool_off_until: None,
        });
    }
}

fn deleted_sets(p: &Plan, world: &World) -> HashSet<String> {
    p.steps
        .iter()
        .filter(|s| s.kind() == StepKind::DeleteSnapshot)
        .map(|s| {
            let id = params(s)["snapshot_id"].as_str().unwrap().to_string();
            world
                .snapshots
                .iter()
                .find(|x| x.id == id)
                .and_then(|x| x.tags.get("asdr:set").cloned())
                .unwrap()
        })
        .collect()
}

#[test]
fn r20_a_set_locked_past_retain_is_kept_and_the_plan_says_until_when() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    lock_set(
        &mut world,
        OLDEST,
        LockMode::Governance,
        NOW + time::Duration::days(5),
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let deleted = deleted_sets(&p, &world);
    assert_eq!(deleted.len(), 3, "the three other sets past retain go");
    assert!(!deleted.contains(OLDEST), "the locked set is kept");
    let w = p
        .warnings
        .iter()
        .find(|w| w.rule == "R20" && w.message.contains(OLDEST))
        .expect("the plan says why the set stays");
    assert!(
        w.message
            .contains("locked (governance) until 2026-11-26T09:00:00Z"),
        "{}",
        w.message
    );
    // The lock only: the set is still counted and listed as complete.
    assert!(asdr_planner::verify(&policy, &world, &p).is_empty());
}

#[test]
fn r20_a_lock_on_one_snapshot_keeps_the_whole_set() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    let one = world
        .snapshots
        .iter_mut()
        .find(|s| s.tags.get("asdr:set").map(String::as_str) == Some(OLDEST))
        .unwrap();
    one.lock = Some(SnapshotLock {
        mode: LockMode::Compliance,
        expires: NOW + time::Duration::days(1),
        cool_off_until: None,
    });
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(!deleted_sets(&p, &world).contains(OLDEST));
}

#[test]
fn r20_an_expired_lock_keeps_nothing() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    lock_set(
        &mut world,
        OLDEST,
        LockMode::Compliance,
        NOW - time::Duration::seconds(1),
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(deleted_sets(&p, &world).contains(OLDEST));
}

#[test]
fn r20_a_new_set_is_locked_before_its_manifest_and_mark() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let world = ten_sets(&policy);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let set = asdr_planner::set_id(NOW);
    let lock = p
        .steps
        .iter()
        .find(|s| s.id == format!("lock_snapshots:{set}"))
        .expect("the new set is locked");
    let v = params(lock);
    assert_eq!(v["mode"], "governance");
    assert_eq!(v["until"], "2026-12-05T09:00:00Z", "the set's time + 14d");
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 9, "every member");
    assert!(
        lock.depends_on
            .iter()
            .filter(|d| d.starts_with("wait_snapshot:"))
            .count()
            == 9,
        "locked once every snapshot is complete: {:?}",
        lock.depends_on
    );
    let write = p
        .steps
        .iter()
        .find(|s| s.id == format!("write_manifest:{set}"))
        .unwrap();
    assert!(
        write.depends_on.contains(&lock.id),
        "the manifest waits for the lock"
    );
    assert!(p.changes.iter().any(|c| c.address == format!("lock.{set}")));
}

#[test]
fn r20_the_policys_lock_keeps_sets_past_retain_even_unlocked_and_the_plan_locks_them() {
    // 14 days: every one of the ten sets (the oldest 10 days old) is under the policy's lock.
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let world = ten_sets(&policy);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(
        deleted_sets(&p, &world).is_empty(),
        "no set under the lock is deleted"
    );
    assert!(p.warnings.iter().any(|w| w.rule == "R20"
        && w.message.contains(OLDEST)
        && w.message.contains("under the policy's lock")));
    // Adoption: each existing set gets its own lock step, until its time + 14 days.
    let adopted: Vec<_> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::LockSnapshots)
        .filter(|s| s.id != format!("lock_snapshots:{}", asdr_planner::set_id(NOW)))
        .collect();
    assert_eq!(
        adopted.len(),
        10,
        "{:?}",
        adopted.iter().map(|s| &s.id).collect::<Vec<_>>()
    );
    let oldest = adopted
        .iter()
        .find(|s| s.id == format!("lock_snapshots:{OLDEST}"))
        .unwrap();
    assert_eq!(params(oldest)["until"], "2026-11-25T03:00:00Z");
}

#[test]
fn r20_a_set_whose_lock_would_end_within_a_day_is_kept_but_not_locked_again() {
    // 11 days: the oldest set (10 d 6 h old) has 18 hours of its lock left.
    let policy = locked_policy("{mode: governance, duration: 11d}");
    let world = ten_sets(&policy);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(
        !p.steps
            .iter()
            .any(|s| s.id == format!("lock_snapshots:{OLDEST}"))
    );
    assert!(!deleted_sets(&p, &world).contains(OLDEST));
    assert!(p.warnings.iter().any(|w| w.rule == "R20"
        && w.message.contains(OLDEST)
        && w.message.contains("at least a day")));
}

#[test]
fn r20_sets_already_locked_as_the_policy_says_are_not_locked_again() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    for k in 11..=20 {
        let set = format!("bs-202611{k}T030000Z");
        let until = asdr_planner::set_time(&set).unwrap() + time::Duration::days(14);
        lock_set(&mut world, &set, LockMode::Governance, until);
    }
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let locks: Vec<&str> = p
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::LockSnapshots)
        .map(|s| s.id.as_str())
        .collect();
    assert_eq!(
        locks,
        vec![format!("lock_snapshots:{}", asdr_planner::set_id(NOW))],
        "only the new set"
    );
}

#[test]
fn r20_a_compliance_lock_is_said_to_be_irreversible_like_a_deletion() {
    let policy = locked_policy("{mode: compliance, duration: 30d, cool_off: 24h}");
    let world = ten_sets(&policy);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let w = p
        .warnings
        .iter()
        .find(|w| w.rule == "R20" && w.message.starts_with("cannot be undone"))
        .expect("a compliance lock is warned of");
    assert!(w.message.contains("cool-off of 24h"), "{}", w.message);
    let lock = p
        .steps
        .iter()
        .find(|s| s.id == format!("lock_snapshots:{}", asdr_planner::set_id(NOW)))
        .unwrap();
    assert_eq!(params(lock)["cool_off_hours"], 24);
}

#[test]
fn r20_with_locks_unobserved_retention_deletes_nothing_and_says_why() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    world.locks_unobserved.insert(
        "us-east-1".into(),
        "DescribeLockedSnapshots: UnauthorizedOperation".into(),
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(deleted_sets(&p, &world).is_empty());
    let w = p.warnings.iter().find(|w| w.rule == "R20").unwrap();
    assert!(
        w.message.contains("could not be observed") && w.message.contains("4 sets past retain"),
        "{}",
        w.message
    );
}

#[test]
fn r20_the_verifier_refuses_a_tampered_plan_deleting_a_locked_snapshot() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    lock_set(
        &mut world,
        OLDEST,
        LockMode::Governance,
        NOW + time::Duration::days(5),
    );
    let mut p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let locked = world
        .snapshots
        .iter()
        .find(|s| s.tags.get("asdr:set").map(String::as_str) == Some(OLDEST))
        .unwrap()
        .id
        .clone();
    let mut forged = p
        .steps
        .iter()
        .find(|s| s.kind() == StepKind::DeleteSnapshot)
        .unwrap()
        .clone();
    crate::edit(&mut forged, |v| v["snapshot_id"] = locked.clone().into());
    forged.id = format!("delete_snapshot:{locked}");
    p.steps.push(forged);
    // A plan file claiming a later time does not make the lock expire either.
    p.now = "2027-06-01T00:00:00Z".into();
    let v = verify(&policy, &world, &p);
    assert!(
        v.iter().any(|v| v.rule == "R20"
            && v.message.contains(&locked)
            && v.message.contains("never deleted")),
        "{v:?}"
    );
}

#[test]
fn r20_the_verifier_refuses_deleting_a_set_the_policy_locks_though_no_lock_is_observed() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let world = ten_sets(&policy);
    // The plan without a lock (retention deletes the oldest four), checked against the policy
    // that locks them.
    let unlocked = ExamplePolicy::prod_east().policy();
    let p = plan(&unlocked, &world, NOW, &Operation::Backup).unwrap();
    let v = verify(&policy, &world, &p);
    assert!(
        v.iter()
            .any(|v| v.rule == "R20" && v.message.contains("which the policy locks")),
        "{v:?}"
    );
    assert!(
        v.iter()
            .any(|v| v.rule == "R20" && v.message.contains("without first locking")),
        "the new set's mark waits for no lock: {v:?}"
    );
}

#[test]
fn r20_restores_lock_nothing() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let world = ten_sets(&policy);
    let mut p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    p.operation = "restore:replace-a1".into();
    let v = verify(&policy, &world, &p);
    assert!(
        v.iter()
            .any(|v| v.rule == "R20" && v.message.contains("only a backup locks")),
        "{v:?}"
    );
}

#[test]
fn r20_a_lock_is_never_shortened_weakened_or_made_compliance_past_the_policys_date() {
    use asdr_planner::locks::{Want, decide};
    let held = |mode, days| SnapshotLock {
        mode,
        expires: NOW + time::Duration::days(days),
        cool_off_until: None,
    };
    let until = datetime!(2026-12-01 09:00:00 UTC);
    // Already as long and as strong: left alone.
    assert_eq!(
        decide(
            Some(held(LockMode::Governance, 30)),
            LockMode::Governance,
            until,
            None,
            NOW
        ),
        Want::Held
    );
    // Compliance asked of a governance lock ending later than the policy's date: left as it
    // is, never made compliance for longer than the policy says, never shortened.
    assert!(matches!(
        decide(Some(held(LockMode::Governance, 30)), LockMode::Compliance, until, Some(2), NOW),
        Want::Leave(why) if why.contains("neither shortens a lock nor makes one compliance for longer")
    ));
    // Compliance asked of a governance lock ending sooner: made compliance until the policy's
    // date, with its cool-off.
    let Want::Lock(w) = decide(
        Some(held(LockMode::Governance, 3)),
        LockMode::Compliance,
        until,
        Some(2),
        NOW,
    ) else {
        panic!("locked")
    };
    assert_eq!((w.mode, w.expires), (LockMode::Compliance, until));
    assert_eq!(w.cool_off_until, Some(NOW + time::Duration::hours(2)));
    // Governance asked of a compliance lock ending sooner: left to run out (EBS cannot make it
    // governance; asdr does not extend it in compliance), then locked in governance.
    assert_eq!(
        decide(
            Some(held(LockMode::Compliance, 3)),
            LockMode::Governance,
            until,
            None,
            NOW
        ),
        Want::Held
    );
    let Want::Lock(w) = decide(
        None,
        LockMode::Governance,
        until,
        None,
        NOW + time::Duration::days(4),
    ) else {
        panic!("locked in governance once it ran out")
    };
    assert_eq!((w.mode, w.expires), (LockMode::Governance, until));
    // No lock: locked as asked.
    let Want::Lock(w) = decide(None, LockMode::Governance, until, None, NOW) else {
        panic!("locked")
    };
    assert_eq!((w.mode, w.expires), (LockMode::Governance, until));
    // Less than a day of the policy's lock left (a step run late, a resumed apply): not locked,
    // never for longer than the policy says.
    assert!(matches!(
        decide(None, LockMode::Compliance, NOW + time::Duration::hours(20), Some(2), NOW),
        Want::Leave(why) if why.contains("less than a day")
    ));
}

/// Review findings: what a plan says of a lock is the lock it makes.
#[test]
fn r20_a_longer_governance_lock_is_not_made_compliance_and_status_says_why() {
    let policy = locked_policy("{mode: compliance, duration: 14d, cool_off: 24h}");
    let mut world = ten_sets(&policy);
    let set = "bs-20261115T030000Z";
    lock_set(
        &mut world,
        set,
        LockMode::Governance,
        datetime!(2027-11-15 00:00:00 UTC),
    );
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(
        !p.steps
            .iter()
            .any(|s| s.id == format!("lock_snapshots:{set}"))
    );
    assert!(p.warnings.iter().any(|w| w.rule == "R20"
        && w.message.contains(set)
        && w.message.contains("not locked again")));
    // No warning names a compliance date past the policy's for this set.
    assert!(!p.warnings.iter().any(|w| w.message.contains(set)
        && w.message.contains("2027-11-15")
        && w.message.starts_with("cannot be undone")));
    let st = asdr_planner::status::status(&policy, &world, NOW);
    assert!(
        st.problems
            .iter()
            .any(|p| p.contains(set) && p.contains("not locked as the policy says")),
        "{:?}",
        st.problems
    );
}

#[test]
fn r20_a_compliance_lock_under_a_governance_policy_is_left_to_run_out_and_never_extended() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    let set = "bs-20261114T030000Z";
    let first = world
        .snapshots
        .iter_mut()
        .find(|s| s.tags.get("asdr:set").map(String::as_str) == Some(set))
        .unwrap();
    first.lock = Some(SnapshotLock {
        mode: LockMode::Compliance,
        expires: datetime!(2026-11-25 00:00:00 UTC),
        cool_off_until: None,
    });
    let held = first.id.clone();
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let step = p
        .steps
        .iter()
        .find(|s| s.id == format!("lock_snapshots:{set}"))
        .unwrap();
    let v = params(step);
    assert!(!v["snapshots"].to_string().contains(&held), "{v}");
    assert_eq!(v["snapshots"].as_array().unwrap().len(), 8);
    assert_eq!(v["mode"], "governance");
    assert!(
        !p.warnings
            .iter()
            .any(|w| w.message.starts_with("cannot be undone")),
        "{:?}",
        p.warnings
    );
}

#[test]
fn r20_a_snapshot_that_only_carries_a_sets_tags_is_never_locked_as_its_member() {
    let policy = locked_policy("{mode: compliance, duration: 14d}");
    let mut world = ten_sets(&policy);
    let mut stranger = world
        .snapshots
        .iter()
        .find(|s| s.tags.get("asdr:set").map(String::as_str) == Some("bs-20261120T030000Z"))
        .unwrap()
        .clone();
    stranger.id = "snap-notours".into();
    stranger.volume_id = "vol-someone-else".into();
    world.snapshots.push(stranger);
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    let step = p
        .steps
        .iter()
        .find(|s| s.id == "lock_snapshots:bs-20261120T030000Z")
        .unwrap();
    let locked = params(step)["snapshots"].to_string();
    assert!(!locked.contains("snap-notours"), "{locked}");
    assert_eq!(params(step)["snapshots"].as_array().unwrap().len(), 9);
}

#[test]
fn r20_a_partly_locked_set_is_shown_by_its_weakest_lock_and_final_only_when_every_member_is() {
    let policy = ExamplePolicy::prod_east().policy();
    let mut world = ten_sets(&policy);
    let set = "bs-20261114T030000Z";
    let mut members = world
        .snapshots
        .iter_mut()
        .filter(|s| s.tags.get("asdr:set").map(String::as_str) == Some(set));
    members.next().unwrap().lock = Some(SnapshotLock {
        mode: LockMode::Compliance,
        expires: NOW + time::Duration::days(1),
        cool_off_until: None,
    });
    members.next().unwrap().lock = Some(SnapshotLock {
        mode: LockMode::Governance,
        expires: datetime!(2027-05-01 00:00:00 UTC),
        cool_off_until: None,
    });
    let st = asdr_planner::status::status(&policy, &world, NOW);
    let row = st.locks.iter().find(|l| l.set == set).unwrap();
    assert_eq!(row.mode, Some(LockMode::Governance), "the weakest lock");
    assert!(
        !row.is_final,
        "one member can be unlocked, seven are not locked"
    );
    assert!(!row.locked);
    assert_eq!((row.locked_members, row.members), (2, 9));
    assert_eq!(
        row.until,
        Some(NOW + time::Duration::days(1)),
        "shown until the first lock ends, not the last"
    );
}

#[test]
fn r20_a_backup_that_locks_is_refused_up_front_where_locks_cannot_be_read() {
    let policy = locked_policy("{mode: governance, duration: 14d}");
    let mut world = ten_sets(&policy);
    world.locks_unobserved.insert(
        "us-east-1".into(),
        "DescribeLockedSnapshots: UnauthorizedOperation".into(),
    );
    let Err(asdr_planner::PlanError::Refused(d)) = plan(&policy, &world, NOW, &Operation::Backup)
    else {
        panic!("refused")
    };
    assert!(d.message.contains("could not be read"), "{}", d.message);
    assert!(
        d.help
            .as_deref()
            .is_some_and(|h| h.contains("ec2:DescribeLockedSnapshots")),
        "{d:?}"
    );
    let st = asdr_planner::status::status(&policy, &world, NOW);
    assert!(
        st.problems
            .iter()
            .any(|p| p.contains("could not be observed"))
    );
}

#[test]
fn r20_lock_values_ebs_refuses_are_refused_at_validation_and_retention_shorter_than_the_lock_is_explained()
 {
    let bad = |lock: &str| {
        ExamplePolicy::prod_east()
            .edit(
                "  tags: {team: data}",
                &format!("  tags: {{team: data}}\n  lock: {lock}"),
            )
            .parse()
            .expect_err(lock)
            .to_string()
    };
    assert!(bad("{mode: governance, duration: 12h}").contains("outside 2 to 36500 days"));
    assert!(bad("{mode: governance, duration: 1d}").contains("outside 2 to 36500 days"));
    assert!(bad("{mode: governance, duration: 30d, cool_off: 2h}").contains("compliance` only"));
    assert!(bad("{mode: compliance, duration: 30d, cool_off: 80h}").contains("1h to 72h"));
    assert!(bad("{mode: legal-hold, duration: 30d}").contains("governance"));
    let ok = locked_policy("{mode: compliance, duration: 60d, cool_off: 24h}");
    let notes = ok.notes.join("\n");
    assert!(notes.contains("longer than retain.max_age 30d"), "{notes}");
    assert!(
        notes.contains("about 60 sets are locked at once, more than retain.count 7"),
        "{notes}"
    );
    assert!(
        notes.contains("written with S3 Object Lock retention as long as the lock"),
        "{notes}"
    );
    assert!(
        notes.starts_with("asdr.yaml:"),
        "notes point at the line: {notes}"
    );
}

#[test]
fn r20_where_a_copy_regions_locks_cannot_be_read_nothing_is_copied_there_and_the_backup_goes_on() {
    let policy = ExamplePolicy::prod_east()
        .edit(
            "  max_nodes_at_once: 1 ",
            "  lock: {mode: governance, duration: 14d}\n  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east}\n  max_nodes_at_once: 1 ",
        )
        .policy();
    let mut world = ten_sets(&policy);
    world
        .locks_unobserved
        .insert("us-west-2".into(), "UnauthorizedOperation".into());
    let p = plan(&policy, &world, NOW, &Operation::Backup).unwrap();
    assert!(
        p.steps
            .iter()
            .any(|s| s.kind() == StepKind::SnapshotInstance)
    );
    assert!(
        !p.steps
            .iter()
            .any(|s| s.region.as_deref() == Some("us-west-2")),
        "nothing is planned in us-west-2"
    );
    assert!(p.warnings.iter().any(|w| w.rule == "R20"
        && w.message.contains("nothing is copied to us-west-2")
        && !w.message.contains("[R20]")));
}

//! R20: a locked set is never deleted. A set counts as locked when any of its snapshots holds an
//! EBS snapshot lock now, or when the policy locks that region's sets and the set is younger than
//! `lock.duration` (so a lock that failed, or was removed by someone allowed to, still keeps the
//! set, and the plan puts the lock back). The policy's lock is put on every set it covers: a new
//! set's snapshots once they are complete, before its mark; an older set (made before the lock
//! was declared, or found unlocked) by its own `lock_snapshots` step (docs/immutability.md).

use asdr_specs::{Lock, LockMode};
use serde_json::json;
use time::OffsetDateTime;

use crate::Ctx;
use crate::builder::Builder;
use crate::observe::BackupSet;
use crate::params::{self, Params, Ref};
use crate::plan::Action;
use crate::world::Snapshot;

/// EBS locks a snapshot for at least a day: an older set with less of its lock left is not
/// locked again (it would be held longer than the policy says).
const MIN_LOCK: time::Duration = time::Duration::days(1);
/// An observed lock ending this close to the one wanted is the same lock (whole seconds, and a
/// lock made with a duration in days).
const SLACK: time::Duration = time::Duration::minutes(1);

/// A set's lock as observed: over its members whose lock holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLock {
    /// Compliance when any member is locked so.
    pub mode: LockMode,
    /// When the last of its locks expires: the set can be deleted only after.
    pub until: OffsetDateTime,
    /// Members locked now, of `of`.
    pub locked: usize,
    pub of: usize,
    /// Whether no one can remove a member's lock any more (compliance past its cool-off).
    pub is_final: bool,
}

/// The members of a set: its manifest's listed snapshots when it has one, else every snapshot
/// carrying its tags.
pub(crate) fn members<'a, 'w>(set: &'a BackupSet<'w>) -> impl Iterator<Item = &'w Snapshot> + 'a {
    set.snapshots
        .iter()
        .copied()
        .filter(|s| set.listed.as_ref().is_none_or(|l| l.contains(&s.id)))
}

/// The set's observed lock at `now`, if any member's lock holds.
pub fn observed(set: &BackupSet<'_>, now: OffsetDateTime) -> Option<SetLock> {
    let mut out: Option<SetLock> = None;
    let mut of = 0;
    for s in members(set) {
        of += 1;
        let Some(l) = s.lock.filter(|l| l.holds(now)) else {
            continue;
        };
        let o = out.get_or_insert(SetLock {
            mode: l.mode,
            until: l.expires,
            locked: 0,
            of: 0,
            is_final: false,
        });
        o.mode = o.mode.max(l.mode);
        o.until = o.until.max(l.expires);
        o.locked += 1;
        o.is_final |= l.is_final(now);
    }
    out.map(|o| SetLock { of, ..o })
}

/// Why `set` may not be deleted now (R20), or none.
pub(crate) fn why_kept(
    set: &BackupSet<'_>,
    policy_lock: Option<&Lock>,
    now: OffsetDateTime,
) -> Option<String> {
    if let Some(l) = observed(set, now) {
        return Some(format!(
            "locked ({}) until {}",
            l.mode,
            crate::manifest::utc(l.until)
        ));
    }
    let lock = policy_lock?;
    let until = lock.until(set.time);
    (was_locked_by_policy(set) && until > now).then(|| {
        format!(
            "under the policy's lock ({}, {}) until {}, though no lock is observed on it",
            lock.mode,
            lock.duration,
            crate::manifest::utc(until)
        )
    })
}

/// Sets the policy's lock covers: those that were complete once (marked). A leftover of a run
/// that never completed is no recovery point.
fn was_locked_by_policy(set: &BackupSet<'_>) -> bool {
    set.is_complete()
        || set
            .snapshots
            .iter()
            .any(|s| s.tags.get(crate::tags::COMPLETE).map(String::as_str) == Some("true"))
}

/// A `lock_snapshots` step's parameters for a set taken at `set_time`.
pub(crate) fn params(
    ctx: &Ctx<'_, '_>,
    set: &str,
    set_time: OffsetDateTime,
    lock: &Lock,
    snapshots: Vec<Ref>,
) -> Params {
    Params::LockSnapshots(params::LockSnapshots {
        set: set.to_string(),
        snapshots,
        mode: lock.mode,
        until: crate::manifest::utc(lock.until(set_time)),
        cool_off_hours: lock
            .cool_off
            .filter(|_| lock.mode == LockMode::Compliance)
            .map(|c| (c.seconds() / 3600) as u32),
        cluster_id: Some(ctx.cluster_id.to_string()),
    })
}

/// Says what a lock the plan puts on a set means: a compliance lock without a cool-off cannot be
/// undone once made, and is said as plainly as a deletion.
pub(crate) fn describe(
    b: &mut Builder,
    set: &str,
    region: Option<&str>,
    lock: &Lock,
    until: OffsetDateTime,
    why: &str,
) {
    let (address, place) = match region {
        Some(r) => (format!("lock.{r}.{set}"), format!(" in {r}")),
        None => (format!("lock.{set}"), String::new()),
    };
    b.change(
        address,
        Action::Update,
        why,
        None,
        Some(json!({
            "mode": lock.mode.to_string(),
            "until": crate::manifest::utc(until),
            "cool_off": lock.cool_off.map(|c| c.to_string()),
        })),
    );
    if lock.mode == LockMode::Compliance {
        b.warn(
            "R20",
            format!(
                "cannot be undone: set {set}{place} is locked in compliance mode until {}{}: no one, asdr and the account's root user included, can delete its snapshots or shorten the lock before then",
                crate::manifest::utc(until),
                match lock.cool_off {
                    Some(c) => format!(" once its cool-off of {c} has passed"),
                    None => " (no cool-off: final at once)".to_string(),
                }
            ),
        );
    }
}

/// An observed set the policy locks but whose members are not locked as it says (made before
/// the lock was declared, its lock removed or shortened): locked by its own step. Returns the
/// step, if one was planned.
pub(crate) fn adopt(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    set: &BackupSet<'_>,
    lock: &Lock,
    region: Option<&str>,
) -> Option<String> {
    if !set.is_complete() {
        return None;
    }
    let until = lock.until(set.time);
    if until <= ctx.now {
        return None;
    }
    let missing: Vec<&Snapshot> = members(set)
        .filter(|s| {
            !s.lock.is_some_and(|l| {
                l.holds(ctx.now)
                    && l.expires + SLACK >= until
                    && (l.mode == lock.mode || l.mode == LockMode::Compliance)
            })
        })
        .collect();
    if missing.is_empty() {
        return None;
    }
    if until - ctx.now < MIN_LOCK {
        b.warn(
            "R20",
            format!(
                "set {} is not locked: its lock would end at {}, less than a day from now, and EBS locks a snapshot for at least a day; it is kept until then",
                set.id,
                crate::manifest::utc(until)
            ),
        );
        return None;
    }
    let id = match region {
        Some(r) => format!("lock_snapshots:{r}:{}", set.id),
        None => format!("lock_snapshots:{}", set.id),
    };
    if b.steps.iter().any(|s| s.id == id) {
        return None;
    }
    let observed_any = missing.iter().any(|s| s.lock.is_some());
    describe(
        b,
        &set.id,
        region,
        lock,
        until,
        &format!(
            "backup.lock: {} of set {}'s {} snapshots {} not locked as the policy says{}",
            missing.len(),
            set.id,
            members(set).count(),
            if missing.len() == 1 { "is" } else { "are" },
            if observed_any {
                " (a lock shorter or weaker than the policy's)"
            } else {
                " (made before the lock was declared, or its lock removed)"
            }
        ),
    );
    let snapshots = missing.iter().map(|s| Ref::Known(s.id.clone())).collect();
    Some(b.step(
        id,
        None,
        Vec::new(),
        params(ctx, &set.id, set.time, lock, snapshots),
    ))
}

/// The lock a `lock_snapshots` step leaves on a snapshot locked as `existing` (at `now`), or none
/// when the existing lock already holds as long and as strongly: a lock is never shortened or
/// weakened, so a governance lock may become compliance but never the reverse. A new lock lasts
/// at least a day (EBS's minimum).
pub fn wanted(
    existing: Option<crate::world::SnapshotLock>,
    p: &params::LockSnapshots,
    now: OffsetDateTime,
) -> Result<Option<crate::world::SnapshotLock>, String> {
    let until = OffsetDateTime::parse(&p.until, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("lock_snapshots: `until` {} is not a time: {e}", p.until))?;
    let existing = existing.filter(|l| l.holds(now));
    if let Some(l) = existing
        && l.expires + SLACK >= until
        && l.mode >= p.mode
    {
        return Ok(None);
    }
    // EBS locks for at least a day: a lock asked for less is made a day long (never shorter
    // than the policy says).
    let until = until.max(now + MIN_LOCK);
    let mode = existing.map_or(p.mode, |l| l.mode.max(p.mode));
    let cool_off_until = match existing {
        Some(l) if l.mode == LockMode::Compliance => l.cool_off_until,
        _ if mode == LockMode::Compliance => p
            .cool_off_hours
            .map(|h| now + time::Duration::hours(i64::from(h))),
        _ => None,
    };
    Ok(Some(crate::world::SnapshotLock {
        mode,
        expires: existing.map_or(until, |l| l.expires.max(until)),
        cool_off_until,
    }))
}

/// One complete set's lock in one region, as `status` reports it.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetLockStatus {
    pub set: String,
    pub region: String,
    /// Whether every member is locked now.
    pub locked: bool,
    /// Members locked, of all.
    pub locked_members: usize,
    pub members: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mode: Option<LockMode>,
    /// When the last of its locks expires.
    #[serde(
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub until: Option<OffsetDateTime>,
    /// No one can remove it any more (compliance past its cool-off).
    pub is_final: bool,
}

/// The locks of every complete set in `region` (its observed sets, `policy_lock` the lock the
/// policy puts there), and what is not as the policy says: a set the policy locks that is not
/// (wholly) locked, or locks that could not be observed.
pub fn status(
    region: &str,
    obs: &crate::observe::Observed<'_>,
    policy_lock: Option<&Lock>,
    now: OffsetDateTime,
) -> (Vec<SetLockStatus>, Vec<String>) {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    if let Some(why) = obs.world.locks_unobserved.get(region) {
        if policy_lock.is_some() {
            problems.push(format!(
                "snapshot locks in {region} could not be observed ({why}): whether its sets are locked is unknown"
            ));
        }
        return (rows, problems);
    }
    for set in obs.sets.iter().filter(|s| s.is_complete()) {
        let seen = observed(set, now);
        let row = SetLockStatus {
            set: set.id.clone(),
            region: region.to_string(),
            locked: seen.is_some_and(|l| l.locked == l.of),
            locked_members: seen.map_or(0, |l| l.locked),
            members: members(set).count(),
            mode: seen.map(|l| l.mode),
            until: seen.map(|l| l.until),
            is_final: seen.is_some_and(|l| l.is_final),
        };
        if let Some(lock) = policy_lock {
            let until = lock.until(set.time);
            let short = members(set).any(|s| {
                !s.lock.is_some_and(|l| {
                    l.holds(now) && l.expires + SLACK >= until && l.mode >= lock.mode
                })
            });
            if until - now >= MIN_LOCK && short {
                problems.push(format!(
                    "set {} in {region} is not locked as the policy says ({} until {}): {} of its {} snapshots are; apply locks it",
                    set.id,
                    lock.mode,
                    crate::manifest::utc(until),
                    row.locked_members,
                    row.members
                ));
            }
        }
        if seen.is_some() || policy_lock.is_some() {
            rows.push(row);
        }
    }
    (rows, problems)
}

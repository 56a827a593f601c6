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

/// A lock step's id: `<kind>:<set>` at home, `<kind>:<region>:<set>` in a copy region.
pub(crate) fn step_id(kind: &str, region: Option<&str>, set: &str) -> String {
    match region {
        Some(r) => format!("{kind}:{r}:{set}"),
        None => format!("{kind}:{set}"),
    }
}

/// EBS locks a snapshot for at least a day: an older set with less of its lock left is not
/// locked again (it would be held longer than the policy says).
pub(crate) const MIN_LOCK: time::Duration = time::Duration::days(1);
/// An observed lock ending this close to the one wanted is the same lock (whole seconds, and a
/// lock made with a duration in days).
const SLACK: time::Duration = time::Duration::minutes(1);

/// A set's lock as observed: over its members whose lock holds now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SetLock {
    /// The weakest mode among its locked members (governance when any is).
    pub mode: LockMode,
    /// When the first of its locks ends: the set is wholly protected (if every member is
    /// locked) until then. Retention keeps it until the last ends.
    pub until: OffsetDateTime,
    /// Members locked now, of `of`.
    pub locked: usize,
    pub of: usize,
    /// Whether no one can remove any member's lock (every member compliance past its cool-off).
    pub is_final: bool,
}

/// The members of a set: one snapshot per node and device, its manifest's when it has one.
pub(crate) fn members<'a, 'w>(set: &'a BackupSet<'w>) -> impl Iterator<Item = &'w Snapshot> + 'a {
    // By device as the observer took them: a snapshot that only carries the set's tags (of a
    // volume that is not the device's) is no member, and is never locked as one.
    set.member_pairs()
        .into_iter()
        .filter_map(|(node, device)| set.snapshot_for(&node, &device))
        .filter(|s| set.listed.as_ref().is_none_or(|l| l.contains(&s.id)))
}

/// The set's observed lock at `now`, if any member's lock holds.
pub fn observed(set: &BackupSet<'_>, now: OffsetDateTime) -> Option<SetLock> {
    let mut out: Option<SetLock> = None;
    let mut of = 0;
    let mut all_final = true;
    for s in members(set) {
        of += 1;
        let Some(l) = s.lock.filter(|l| l.holds(now)) else {
            all_final = false;
            continue;
        };
        let o = out.get_or_insert(SetLock {
            mode: l.mode,
            until: l.expires,
            locked: 0,
            of: 0,
            is_final: false,
        });
        // The weakest lock says what the set is: one governance member can be unlocked.
        o.mode = o.mode.min(l.mode);
        // When the first lock ends: from then on the set is no longer wholly protected.
        o.until = o.until.min(l.expires);
        o.locked += 1;
        all_final &= l.is_final(now);
    }
    out.map(|o| SetLock {
        of,
        is_final: all_final && o.locked == of,
        ..o
    })
}

/// The last lock that holds on any snapshot carrying the set's tags (members or not): what
/// keeps the set from retention, read as the verifier reads it.
fn any_lock(set: &BackupSet<'_>, now: OffsetDateTime) -> Option<(LockMode, OffsetDateTime)> {
    set.snapshots
        .iter()
        .filter_map(|s| s.lock.filter(|l| l.holds(now)))
        .map(|l| (l.mode, l.expires))
        .max_by_key(|(_, e)| *e)
}

/// Why `set` may not be deleted now (R20), or none.
pub(crate) fn why_kept(
    set: &BackupSet<'_>,
    policy_lock: Option<&Lock>,
    now: OffsetDateTime,
) -> Option<String> {
    if let Some((mode, until)) = any_lock(set, now) {
        return Some(format!(
            "locked ({mode}) until {}",
            crate::manifest::utc(until)
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

/// The lock a plan puts on a set, as it will be: its mode and when it ends (the latest over the
/// snapshots it locks; an existing longer or stronger lock is kept, never shortened).
pub(crate) struct Planned {
    pub mode: LockMode,
    pub until: OffsetDateTime,
    /// Compliance made now, with this cool-off (none: final at once).
    pub cool_off: Option<asdr_specs::Duration>,
    /// Whether any snapshot already holds a compliance lock it extends.
    pub extends_compliance: bool,
}

/// Says what a lock the plan puts on a set means: a compliance lock cannot be undone once its
/// cool-off has passed, and is said as plainly as a deletion, with the date it really ends.
pub(crate) fn describe(
    b: &mut Builder,
    set: &str,
    region: Option<&str>,
    planned: &Planned,
    why: &str,
) {
    let (address, place) = match region {
        Some(r) => (
            format!("lock.{r}.{set}"),
            format!(" in {}", asdr_specs::place_text(r)),
        ),
        None => (format!("lock.{set}"), String::new()),
    };
    b.change(
        address,
        Action::Update,
        why,
        None,
        Some(json!({
            "mode": planned.mode.to_string(),
            "until": crate::manifest::utc(planned.until),
            "cool_off": planned.cool_off.map(|c| c.to_string()),
        })),
    );
    if planned.mode == LockMode::Compliance {
        b.warn(
            "R20",
            format!(
                "cannot be undone: set {set}{place} is locked in compliance mode until {}{}: no one, asdr and the account's root user included, can delete its snapshots (nor, in an S3 store, its retained SMD archives and manifest) or shorten the lock before then",
                crate::manifest::utc(planned.until),
                if planned.extends_compliance {
                    " (a compliance lock it already holds, extended)".to_string()
                } else {
                    match planned.cool_off {
                        Some(c) => format!(" once its cool-off of {c} has passed"),
                        None => " (no cool-off: final at once)".to_string(),
                    }
                }
            ),
        );
    }
}

/// A new set's (or copy's) lock as the plan makes it: its snapshots hold none yet.
pub(crate) fn fresh(lock: &Lock, set_time: OffsetDateTime) -> Planned {
    Planned {
        mode: lock.mode,
        until: lock.until(set_time),
        cool_off: lock.cool_off.filter(|_| lock.mode == LockMode::Compliance),
        extends_compliance: false,
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
    let place = region
        .map(|r| format!(" in {}", asdr_specs::place_text(r)))
        .unwrap_or_default();
    let mut missing: Vec<(&Snapshot, crate::world::SnapshotLock)> = Vec::new();
    let mut left = Vec::new();
    for s in members(set) {
        match decide_for(lock, set.time, s, ctx.now) {
            Want::Held => {}
            Want::Lock(l) => missing.push((s, l)),
            Want::Leave(why) => left.push((s, why)),
        }
    }
    if (missing.is_empty() && left.is_empty()) || until - ctx.now < MIN_LOCK {
        if until - ctx.now < MIN_LOCK && !(missing.is_empty() && left.is_empty()) {
            b.warn(
                "R20",
                format!(
                    "set {}{place} is not locked: its lock would end at {}, less than a day from now, and EBS locks a snapshot for at least a day; it is kept until then",
                    set.id,
                    crate::manifest::utc(until)
                ),
            );
        }
        return None;
    }
    // Said once per set: the first snapshot's reason, and how many share the set's fate.
    if let Some((s, why)) = left.first() {
        b.warn(
            "R20",
            format!(
                "set {}{place}: {} not locked again ({}{}): {why}",
                set.id,
                if left.len() == 1 {
                    "1 snapshot is"
                } else {
                    "snapshots are"
                },
                s.id,
                if left.len() > 1 {
                    format!(" and {} more", left.len() - 1)
                } else {
                    String::new()
                }
            ),
        );
    }
    if missing.is_empty() {
        return None;
    }
    let id = step_id("lock_snapshots", region, &set.id);
    if b.steps.iter().any(|s| s.id == id) {
        return None;
    }
    let observed_any = missing.iter().any(|(s, _)| s.lock.is_some());
    let planned = Planned {
        mode: missing
            .iter()
            .map(|(_, l)| l.mode)
            .max()
            .unwrap_or(lock.mode),
        until: missing
            .iter()
            .map(|(_, l)| l.expires)
            .max()
            .unwrap_or(until),
        cool_off: lock.cool_off.filter(|_| lock.mode == LockMode::Compliance),
        extends_compliance: missing.iter().any(|(s, _)| {
            s.lock
                .is_some_and(|l| l.holds(ctx.now) && l.mode == LockMode::Compliance)
        }),
    };
    describe(
        b,
        &set.id,
        region,
        &planned,
        &format!(
            "{}: {} of set {}'s {} snapshots {} not locked as the policy says{}",
            match region {
                Some(r) => format!("backup.copies ({}) lock", asdr_specs::place_text(r)),
                None => "backup.lock".to_string(),
            },
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
    let snapshots = missing
        .iter()
        .map(|(s, _)| Ref::Known(s.id.clone()))
        .collect();
    // The files first: a retention that fails leaves the snapshots unlocked too, so the next
    // plan adopts the set again, files included (no plan could tell the files were missed).
    let files = retain_files(ctx, b, set, lock, region);
    Some(b.step(
        id,
        None,
        files.into_iter().collect(),
        params(ctx, &set.id, set.time, lock, snapshots),
    ))
}

/// A set adopted into the lock also gets its store files retained (S3 Object Lock), as a new
/// set's are when written: its SMD archives with their checksums and its manifest.
fn retain_files(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    set: &BackupSet<'_>,
    lock: &Lock,
    region: Option<&str>,
) -> Option<String> {
    let store = match region {
        None => ctx.policy.backup.smd_to.as_str(),
        Some(r) => match ctx.policy.backup.copies.iter().find(|c| c.region == r) {
            Some(c) => c.smd_to.as_str(),
            None => return None,
        },
    };
    let retention = retention(ctx, Some(lock), store, &set.id)?;
    let mut uris: Vec<String> = match set.manifest {
        Some(m) => m.smd.iter().map(|a| a.uri.clone()).collect(),
        None => set.smd_archive.iter().map(|a| a.uri.clone()).collect(),
    };
    uris.extend(uris.clone().into_iter().map(|u| format!("{u}.sha256")));
    if set.manifest.is_some() {
        uris.push(crate::manifest::uri(
            store,
            &ctx.policy.cluster.name,
            &set.id,
        ));
    }
    uris.sort();
    if uris.is_empty() {
        return None;
    }
    let id = step_id("retain_files", region, &set.id);
    Some(b.step(
        id,
        None,
        Vec::new(),
        Params::RetainFiles(params::RetainFiles {
            set: set.id.clone(),
            uris,
            directories: Vec::new(),
            retention,
        }),
    ))
}

/// What locking a snapshot locked as `existing` comes to, at `now`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Want {
    /// Its lock already holds as long and as strongly.
    Held,
    /// Locked so: the stronger mode, the later end, at least a day.
    Lock(crate::world::SnapshotLock),
    /// Left as it is, for this reason: a governance lock ending after the compliance lock the
    /// policy asks for is neither shortened nor made compliance past the policy's date (an
    /// irreversible lock no one reviewed).
    Leave(String),
}

/// The lock a snapshot locked as `existing` gets when the policy asks for `mode` until `until`:
/// never shortened or weakened (governance may become compliance, never the reverse), never
/// compliance for longer than asked, a new lock at least a day (EBS's minimum).
pub fn decide(
    existing: Option<crate::world::SnapshotLock>,
    mode: LockMode,
    until: OffsetDateTime,
    cool_off_hours: Option<u32>,
    now: OffsetDateTime,
) -> Want {
    let existing = existing.filter(|l| l.holds(now));
    if let Some(l) = existing {
        // As long and as strong; or stronger than asked (a compliance lock under a governance
        // policy runs out first: EBS cannot make it governance, and asdr does not extend it).
        if (l.expires + SLACK >= until && l.mode >= mode) || l.mode > mode {
            return Want::Held;
        }
        if l.mode < mode && l.expires > until + SLACK {
            return Want::Leave(format!(
                "it holds a {} lock until {}, past the {mode} lock the policy asks for (until {}): asdr neither shortens a lock nor makes one {mode} for longer than the policy says; shorten or remove that lock by hand to have the policy's",
                l.mode,
                crate::manifest::utc(l.expires),
                crate::manifest::utc(until)
            ));
        }
    }
    // EBS locks for at least a day: a lock the policy wants for less (a step run late, a set near
    // the end of its lock) is not made longer than the policy says; the set is kept until then.
    if until < now + MIN_LOCK {
        return Want::Leave(format!(
            "less than a day of the policy's lock is left (until {}), and EBS locks a snapshot for at least a day: not locked; the set is kept until then",
            crate::manifest::utc(until)
        ));
    }
    let cool_off_until = match existing {
        Some(l) if l.mode == LockMode::Compliance => l.cool_off_until,
        _ if mode == LockMode::Compliance => {
            cool_off_hours.map(|h| now + time::Duration::hours(i64::from(h)))
        }
        _ => None,
    };
    Want::Lock(crate::world::SnapshotLock {
        mode,
        expires: until,
        cool_off_until,
    })
}

/// The lock a `lock_snapshots` step leaves on a snapshot locked as `existing` (at `now`), or none
/// when there is nothing to do ([`decide`]: held already, or left as it is).
pub fn wanted(
    existing: Option<crate::world::SnapshotLock>,
    p: &params::LockSnapshots,
    now: OffsetDateTime,
) -> Result<Option<crate::world::SnapshotLock>, String> {
    let until = OffsetDateTime::parse(&p.until, &time::format_description::well_known::Rfc3339)
        .map_err(|e| format!("lock_snapshots: `until` {} is not a time: {e}", p.until))?;
    Ok(
        match decide(existing, p.mode, until, p.cool_off_hours, now) {
            Want::Lock(l) => Some(l),
            Want::Held | Want::Leave(_) => None,
        },
    )
}

/// What the policy's `lock` comes to on one snapshot of a set taken at `set_time`.
fn decide_for(lock: &Lock, set_time: OffsetDateTime, s: &Snapshot, now: OffsetDateTime) -> Want {
    decide(
        s.lock,
        lock.mode,
        lock.until(set_time),
        lock.cool_off.map(|c| (c.seconds() / 3600) as u32),
        now,
    )
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
    let said = asdr_specs::place_text(region);
    // Locks are read only where they matter (the policy locks, or asdr locked once): not read,
    // whether sets are locked is unknown and retention there deletes nothing.
    if let Some(why) = obs.world.locks_unobserved.get(region) {
        problems.push(format!(
            "snapshot locks in {said} could not be observed ({why}): whether its sets are locked is unknown, and retention there deletes nothing until they can be"
        ));
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
            let wants: Vec<Want> = members(set)
                .map(|s| decide_for(lock, set.time, s, now))
                .collect();
            let short = wants.iter().filter(|w| matches!(w, Want::Lock(_))).count();
            let due = until - now >= MIN_LOCK;
            if due && short > 0 {
                problems.push(format!(
                    "set {} in {said} is not locked as the policy says ({} until {}): {short} of its {} snapshots not locked; apply locks them",
                    set.id,
                    lock.mode,
                    crate::manifest::utc(until),
                    row.members
                ));
            }
            // Left as they are (a longer governance lock the policy would make compliance):
            // not as the policy says, and not for asdr to change.
            if let (true, Some(Want::Leave(why))) =
                (due, wants.iter().find(|w| matches!(w, Want::Leave(_))))
            {
                problems.push(format!(
                    "set {} in {said} is not locked as the policy says: {why}",
                    set.id
                ));
            }
        }
        if seen.is_some() || policy_lock.is_some() {
            rows.push(row);
        }
    }
    (rows, problems)
}

/// The S3 Object Lock retention a set's store files are written with: the set's lock, in an S3
/// bucket not seen without Object Lock, while the lock runs (a file store cannot be locked).
pub(crate) fn retention(
    ctx: &Ctx<'_, '_>,
    lock: Option<&Lock>,
    store: &str,
    set: &str,
) -> Option<params::Retention> {
    let lock = lock?;
    let until = lock.until(crate::observe::set_time(set)?);
    let Some(asdr_specs::StoreUri::S3 { bucket, .. }) = asdr_specs::StoreUri::parse(store) else {
        return None;
    };
    // A bucket seen without Object Lock refuses retention: its files go without (the plan
    // says so, or refuses the backup at home).
    let refused = ctx.world.object_lock.get(&bucket) == Some(&false);
    (!refused && until > ctx.now).then(|| params::Retention {
        mode: lock.mode,
        until: crate::manifest::utc(until),
    })
}

/// A set is locked before its mark, and locking reads the snapshots' locks first: where they
/// cannot be read, a backup that locks would stop before its mark, after disturbing the nodes.
/// Refused up front instead, saying which permission is missing.
pub(crate) fn check_observed(
    ctx: &Ctx<'_, '_>,
    lock: Option<&Lock>,
    region: &str,
) -> Result<(), crate::PlanError> {
    let (Some(lock), Some(why)) = (lock, ctx.world.locks_unobserved.get(region)) else {
        return Ok(());
    };
    let said = asdr_specs::place_text(region);
    Err(crate::error::refuse(
        asdr_specs::Diagnostic::new(
            lock.span,
            format!(
                "the policy locks its sets, but snapshot locks in {said} could not be read ({why}): a set is locked before its mark, after reading its snapshots' locks, so a backup locking sets there would stop before its mark"
            ),
        )
        .rule("R20")
        .help("allow ec2:DescribeLockedSnapshots (asdr iam-policy includes it), or remove the lock"),
    ))
}

/// What the plan says of the store a locked set's files go to (R20): an S3 bucket observed
/// without Object Lock is refused (its archives could be deleted while the snapshots cannot),
/// one not observed is warned of, a file store is said plainly to be unlockable.
pub(crate) fn check_store(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    lock: Option<&Lock>,
    store: &str,
    what: &str,
) -> Result<(), crate::PlanError> {
    let Some(lock) = lock else {
        return Ok(());
    };
    match asdr_specs::StoreUri::parse(store) {
        Some(asdr_specs::StoreUri::S3 { bucket, .. }) => {
            match ctx.world.object_lock.get(&bucket) {
                Some(true) => Ok(()),
                Some(false) => Err(crate::error::refuse(
                    asdr_specs::Diagnostic::new(
                        lock.span,
                        format!(
                            "{what} locks its sets, but bucket {bucket} ({store}) has no S3 Object Lock: the sets' files there (SMD archives, manifests, asbackup runs) could be deleted while the lock says they cannot, and a set cannot be restored whole without them"
                        ),
                    )
                    .rule("R20")
                    .help(format!("enable Object Lock on bucket {bucket} (aws s3api put-object-lock-configuration --bucket {bucket} --object-lock-configuration ObjectLockEnabled=Enabled), or remove the lock")),
                )),
                None => {
                    b.warn(
                        "R20",
                        format!(
                            "whether bucket {bucket} has S3 Object Lock was not observed: the sets' files there are written with Object Lock retention, which S3 refuses (failing the backup before it counts as complete) if the bucket has none"
                        ),
                    );
                    Ok(())
                }
            }
        }
        _ => {
            b.warn(
                "R20",
                format!(
                    "{what} locks its sets' snapshots, but {store} is a file store, which cannot be locked: the sets' SMD archives and manifests there can be deleted; keep a copy where the workload cannot delete it (docs/immutability.md)"
                ),
            );
            Ok(())
        }
    }
}

/// `status` problems of the stores a locked set's files go to: a bucket observed without S3
/// Object Lock (at home every backup is refused; in a copy region the copies' files go
/// unretained).
pub fn store_problems(policy: &asdr_specs::Policy, world: &crate::World) -> Vec<String> {
    // asbackup sets are retained in asbackup's own store.
    let home = match (&policy.backup.asbackup, policy.backup.method) {
        (Some(a), asdr_specs::Method::Asbackup) => a.to.as_str(),
        _ => policy.backup.smd_to.as_str(),
    };
    let refused = "backups are refused until it has";
    let stores = std::iter::once((policy.backup.lock.as_ref(), home, refused)).chain(
        policy.backup.copies.iter().map(|c| {
            (
                c.lock.as_ref(),
                c.smd_to.as_str(),
                "the copies' SMD archives and manifests there are kept without retention",
            )
        }),
    );
    stores
        .filter_map(|(lock, store, then)| {
            lock?;
            let Some(asdr_specs::StoreUri::S3 { bucket, .. }) = asdr_specs::StoreUri::parse(store)
            else {
                return None;
            };
            (world.object_lock.get(&bucket) == Some(&false)).then(|| {
                format!("the policy locks its sets, but bucket {bucket} ({store}) has no S3 Object Lock: {then}")
            })
        })
        .collect()
}

//! `backup.lock` and `backup.copies[].lock`: EBS snapshot locks (docs/immutability.md). Refused
//! here: what EBS would refuse (a lock under a day or over 36500 days, a cool-off outside 1–72
//! hours or on a governance lock); for asbackup sets, retained with S3 Object Lock in their
//! store, a file store or a cool-off. Explained
//! without refusing: a lock that outlives retention (the sets stay until it expires) and what
//! the lock means for the SMD store (S3 Object Lock retention, or a file store it cannot lock).

use super::*;

/// EBS locks a snapshot for 1 to 36500 days; a set is locked a little after it is taken, and
/// never for longer than the policy says, so a lock of at least two days is asked for.
const MIN_LOCK_S: u64 = 2 * 86_400;
const MAX_LOCK_S: u64 = 36_500 * 86_400;

impl Validator<'_> {
    pub(super) fn lock(
        &mut self,
        l: &Sp<RawLock>,
        b: &RawBackup,
        retain: Retain,
        every: Duration,
        what: &str,
        store: &str,
    ) -> Option<Lock> {
        let raw = &l.value;
        // asbackup sets live in `asbackup.to`: their files are retained there (S3 Object Lock),
        // which a file store cannot do, and S3 has no cool-off (compliance is final at once).
        let asbackup_to = (b.method.value == Method::Asbackup)
            .then(|| b.asbackup.as_ref().map(|a| a.value.to.value.clone()))
            .flatten();
        if let Some(to) = &asbackup_to {
            if !crate::StoreUri::is_s3(to) {
                self.err(l.span, format!("backup.lock with method asbackup retains each set's files in asbackup.to with S3 Object Lock, but {to} is a file store, which cannot be locked: name an s3:// bucket with Object Lock enabled"));
                return None;
            }
            if let Some(c) = &raw.cool_off {
                self.err(c.span, "cool_off is an EBS snapshot lock's: asbackup sets are retained with S3 Object Lock, which has none (a compliance retention is final at once)");
                return None;
            }
        }
        let duration = self.duration(&raw.duration);
        let parsed = Duration::parse(&raw.duration.value).is_ok();
        if parsed && !(MIN_LOCK_S..=MAX_LOCK_S).contains(&duration.seconds()) {
            self.err(
                raw.duration.span,
                if asbackup_to.is_some() {
                    format!("lock.duration {duration} is outside 2 to 36500 days: counted from the set's time, a shorter one would have run out before a run's files are retained")
                } else {
                    format!("lock.duration {duration} is outside 2 to 36500 days: EBS locks a snapshot for at least a day, from when the set is locked (a little after it is taken), and for at most 36500 days")
                },
            );
        }
        // asbackup: a lock shorter than `every` leaves the newest set unretained for the rest
        // of each interval (and a run resumed after its lock ended retains nothing).
        if asbackup_to.is_some() && parsed && duration.seconds() < every.seconds() {
            self.notes.push((l.span, format!("backup.lock: sets are retained for {duration}, less than every {every}: for the rest of each interval the newest set is not retained, and a run resumed after its set's lock ended is written without retention")));
        }
        let cool_off = raw.cool_off.as_ref().map(|c| {
            let d = self.duration(c);
            if raw.mode.value == LockMode::Governance {
                self.err(c.span, "cool_off applies to `mode: compliance` only: a governance lock can be changed or removed at any time by a user allowed to");
            } else if Duration::parse(&c.value).is_ok()
                && (!d.seconds().is_multiple_of(3600) || !(1..=72).contains(&(d.seconds() / 3600)))
            {
                self.err(
                    c.span,
                    format!("cool_off {d} must be whole hours from 1h to 72h (EBS's cooling-off period)"),
                );
            }
            d
        });
        if parsed {
            self.lock_notes(l.span, duration, retain, every, what);
        }
        // A set is restorable whole with its SMD archive and manifest, which live in the store.
        let about_store = if let Some(to) = &asbackup_to {
            format!(
                "every asbackup set's files and manifest in {to} are written with S3 Object Lock retention as long as the lock ({} mode): the bucket must have Object Lock enabled, or backups are refused; a set is never deleted before its retention ends (docs/immutability.md)",
                raw.mode.value
            )
        } else if crate::StoreUri::is_s3(store) {
            format!(
                "the sets' SMD archives and manifests in {store} are written with S3 Object Lock retention as long as the lock: the bucket must have Object Lock enabled, or backups are refused (docs/immutability.md)"
            )
        } else {
            format!(
                "the lock covers the EBS snapshots; {store} is a file store, which cannot be locked: the sets' SMD archives and manifests there can be deleted; keep a copy the workload's credentials cannot delete (docs/immutability.md)"
            )
        };
        self.notes.push((l.span, format!("{what}: {about_store}")));
        Some(Lock {
            mode: raw.mode.value,
            duration,
            cool_off,
            span: l.span,
        })
    }

    /// A lock longer than retention keeps sets past it: said where the lock is declared, with
    /// how many sets that holds at once.
    fn lock_notes(
        &mut self,
        span: Span,
        duration: Duration,
        retain: Retain,
        every: Duration,
        what: &str,
    ) {
        if let Some(max_age) = retain.max_age
            && max_age < duration
        {
            self.notes.push((
                span,
                format!(
                    "{what}: sets are locked for {duration}, longer than retain.max_age {max_age}: each set is kept until its lock expires, then deleted by the next apply"
                ),
            ));
        }
        if let Some(count) = retain.count
            && every.seconds() > 0
        {
            let locked_at_once = duration.seconds().div_ceil(every.seconds());
            if locked_at_once > u64::from(count) {
                self.notes.push((
                    span,
                    format!(
                        "{what}: with a set every {every} locked for {duration}, about {locked_at_once} sets are locked at once, more than retain.count {count}: the older ones are kept until their locks expire (and paid for meanwhile)"
                    ),
                ));
            }
        }
    }
}

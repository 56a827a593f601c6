//! R20 evidence for asbackup sets: the S3 Object Lock retention each set's runs hold, as
//! observed (never the policy's arithmetic), and where it is not what the policy's lock says.

use asdr_specs::{LockMode, Policy};
use time::OffsetDateTime;

use crate::locks::SetLockStatus;
use crate::observe::Observed;

/// One row per complete asbackup set that holds any retention or that the policy locks, and the
/// sets not retained as the policy says (while its lock still runs).
pub fn status(
    policy: &Policy,
    obs: &Observed<'_>,
    now: OffsetDateTime,
) -> (Vec<SetLockStatus>, Vec<String>) {
    let namespaces: Vec<String> = policy
        .cluster
        .namespaces
        .iter()
        .map(|n| n.name.clone())
        .collect();
    let lock = policy.backup.lock.as_ref();
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for set in obs.sets.iter().filter(|s| s.asbackup_complete(&namespaces)) {
        let held: Vec<(LockMode, OffsetDateTime)> = set
            .asbackup
            .iter()
            .filter_map(|a| a.retention.as_ref())
            .filter_map(|r| r.until_time().map(|u| (r.mode, u)))
            .filter(|(_, u)| *u > now)
            .collect();
        let runs = set.asbackup.len();
        let row = SetLockStatus {
            set: set.id.clone(),
            region: policy.cluster.region.clone(),
            locked: held.len() == runs,
            locked_members: held.len(),
            members: runs,
            mode: held.iter().map(|(m, _)| *m).min(),
            until: held.iter().map(|(_, u)| *u).min(),
            // S3 compliance retention has no cool-off: final once held by every run.
            is_final: held.len() == runs && held.iter().all(|(m, _)| *m == LockMode::Compliance),
        };
        if let Some(lock) = lock {
            let want = lock.until(set.time);
            let short = set
                .asbackup
                .iter()
                .filter(|a| {
                    !a.retention.as_ref().is_some_and(|r| {
                        r.mode >= lock.mode && r.until_time().is_some_and(|u| u >= want)
                    })
                })
                .count();
            if want > now && short > 0 {
                problems.push(format!(
                    "asbackup set {} is not retained as the policy says ({} until {}): {short} of its {runs} runs' manifests hold less",
                    set.id,
                    lock.mode,
                    crate::manifest::utc(want)
                ));
            }
        }
        if !held.is_empty() || lock.is_some() {
            rows.push(row);
        }
    }
    (rows, problems)
}

//! Restore time: what `status` says a declared restore takes to load its data, from the set's
//! sizes and the restore's volume settings.

use asdr_specs::{Method, Policy, RestoreSource};

use crate::observe::{BackupSet, human_age};

/// A lower bound on a restore's data-load time, in seconds where one is known, and why.
pub(crate) fn estimate(
    policy: &Policy,
    source: &RestoreSource,
    set: Option<&BackupSet<'_>>,
    nodes: &[&str],
    rate: Option<u32>,
) -> (Option<u64>, String) {
    match source {
        RestoreSource::CurrentVolumes => (
            Some(0),
            "the node's own volumes are reattached: no data to load".into(),
        ),
        RestoreSource::Empty => (
            Some(0),
            "blank volumes: migrations refill the node from its peers".into(),
        ),
        _ if policy.backup.method == Method::Asbackup => (
            None,
            "asrestore: its time depends on the records, not told in advance".into(),
        ),
        _ => {
            let Some(set) = set else {
                return (None, "no complete set to restore from".into());
            };
            let largest = set
                .snapshots
                .iter()
                .filter(|s| {
                    s.tags
                        .get(crate::tags::NODE)
                        .is_some_and(|n| nodes.contains(&n.as_str()))
                })
                .map(|s| u64::from(s.volume_size_gib))
                .max()
                .unwrap_or(0);
            match rate {
                Some(rate) => {
                    let seconds = (largest * 1024).div_ceil(u64::from(rate.max(1)));
                    (
                        Some(seconds),
                        format!(
                            "the largest volume, {largest} GiB at {rate} MiB/s ({}), plus launch and cluster formation",
                            human_age(seconds)
                        ),
                    )
                }
                None => (
                    None,
                    format!(
                        "volumes load lazily from S3 (largest {largest} GiB); set the restore's volume.initialization_rate for a bound"
                    ),
                ),
            }
        }
    }
}

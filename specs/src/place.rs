//! Places: where a copy's snapshots are kept apart from every other place asdr acts in (a
//! region, or a backup account's `REGION@ACCOUNT`), and the backup account itself.

use crate::model::Copy;

/// A backup account of `backup.copies`: copies there are made, locked and deleted by its own
/// role, never by the workload account's credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupAccount {
    pub id: String,
    pub role_arn: String,
    pub external_id: Option<String>,
}

/// Where a copy's snapshots are kept apart from every other place asdr acts in: the region, or
/// `REGION@ACCOUNT` in a backup account (which may be the cluster's own region). Everything
/// keyed by region (the world's resources, steps, observation, status) takes this key.
pub fn place(region: &str, account: Option<&str>) -> String {
    match account {
        Some(a) => format!("{region}@{a}"),
        None => region.to_string(),
    }
}

/// A place key as people read it: `us-west-2`, or `us-west-2 (backup account 111122223333)`.
pub fn place_text(place: &str) -> String {
    match split_place(place) {
        (region, Some(a)) => format!("{region} (backup account {a})"),
        (region, None) => region.to_string(),
    }
}

/// The AWS region and the account (none: the workload account's) of a place key.
pub fn split_place(place: &str) -> (&str, Option<&str>) {
    match place.split_once('@') {
        Some((r, a)) => (r, Some(a)),
        None => (place, None),
    }
}

impl Copy {
    /// How the copy's place reads in plans and status (see [`place_text`]).
    pub fn label(&self) -> String {
        place_text(&self.region)
    }
}

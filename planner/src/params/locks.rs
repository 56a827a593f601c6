//! The parameters of locking: EBS snapshot locks (`lock_snapshots`) and the S3 Object Lock
//! retention a set's store files are written with (R20).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Ref;

/// lock_snapshots: every snapshot of a set (in the step's region) locked until `until` (R20).
/// A snapshot already locked in the same mode until then or later is left as it is; a lock is
/// never shortened or weakened.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct LockSnapshots {
    pub set: String,
    /// The set's snapshots: known, or learned from the waits that saw them complete.
    pub snapshots: Vec<Ref>,
    pub mode: asdr_specs::LockMode,
    /// RFC 3339, whole seconds: the set's time plus `lock.duration`.
    pub until: String,
    /// Compliance only: the cooling-off period, in hours.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cool_off_hours: Option<u32>,
    /// The cluster's id: a snapshot carrying another is refused (R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// S3 Object Lock retention: the object cannot be deleted or overwritten (that version) until
/// `until`, as the set's snapshots cannot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Retention {
    pub mode: asdr_specs::LockMode,
    /// RFC 3339, whole seconds.
    pub until: String,
}

impl Retention {
    /// `until` as a time (none when it does not parse: nothing is then taken as retained).
    pub fn until_time(&self) -> Option<time::OffsetDateTime> {
        time::OffsetDateTime::parse(&self.until, &time::format_description::well_known::Rfc3339)
            .ok()
    }
}

/// retain_files: an existing set's store files retained (S3 Object Lock) until its lock ends;
/// retention an object already holds as long is left as it is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RetainFiles {
    pub set: String,
    /// The set's SMD archives, their `.sha256` files and its manifest.
    pub uris: Vec<String>,
    /// asbackup run directories: every object in each (its files and manifest), listed when
    /// the step runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub directories: Vec<String>,
    pub retention: Retention,
}

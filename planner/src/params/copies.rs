//! What copies carry: a snapshot copied into another region or a backup account, and the mark
//! of a restore that stands there.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{Ref, TagMap};

/// A snapshot copied into the step's region (CopySnapshot there, `SourceRegion` set), tagged
/// like its source plus `asdr:source-snapshot` and `asdr:source-region`; found again by those.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopySnapshot {
    /// The completed snapshot in the cluster's region.
    pub source: Ref,
    pub source_region: String,
    pub set: String,
    pub node: String,
    pub device: String,
    pub description: String,
    /// Encrypted with `kms_key_id` in the destination region; otherwise as the source is.
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    pub tags: TagMap,
    /// The backup account (`copies[].account`) the source is shared with, then copied by its
    /// role; only ever the account of the copy the step acts in (R16).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub share_with: Option<String>,
    /// The cluster's id: a source carrying another is a same-named cluster's, never shared.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The backup account's role, granted an encrypted source's KMS key; only that copy's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub grant_to: Option<String>,
    /// A time-based copy: it completes within this many minutes (`copies[].complete_within`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completion_duration_minutes: Option<u32>,
}

/// mark_restore_complete: a restore into another region stands — every node started, the cluster
/// stable at its full size — and its instances say so (`asdr:restore-complete`). Without the mark
/// instances of that restore are a partly built cluster, never one that stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarkRestoreComplete {
    pub restore: String,
    /// The instances the restore launched (learned from their provision steps).
    pub instances: Vec<Ref>,
    pub tag: TagMap,
}

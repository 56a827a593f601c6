//! What a step learned: the resource ids it made or found, handed to later steps.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Resource ids a step learned, kept in the journal and handed to later steps whose parameters
/// refer to it ([`crate::params::Ref::Learned`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Learned {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub instance_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub snapshot_ids: Vec<String>,
    /// When the snapshot started (AWS's clock, RFC 3339 UTC): a set's manifest records it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
    /// The volume each of `snapshot_ids` was taken of (a multi-volume snapshot step's waits find
    /// their own by it).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub snapshot_volumes: BTreeMap<String, String>,
    /// Where an archive was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub uri: Option<String>,
    /// The SHA-256 of an archive written or checked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    /// The node an archive was taken from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    /// The cluster key the nodes agreed on when the cluster was found stable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<String>,
    /// The manifest asdr wrote beside an asbackup run, and the records it counts.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
    /// The command a tool step ran (secrets left out), for the journal.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// How many files a deletion removed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<u64>,
}

impl Learned {
    /// Nothing learned: the step's effect is there, with no new id.
    pub fn new() -> Learned {
        Learned::default()
    }

    pub fn instance(id: impl Into<String>) -> Learned {
        Learned {
            instance_id: Some(id.into()),
            ..Learned::default()
        }
    }

    pub fn volume(id: impl Into<String>) -> Learned {
        Learned {
            volume_id: Some(id.into()),
            ..Learned::default()
        }
    }

    pub fn snapshot(id: impl Into<String>) -> Learned {
        Learned {
            snapshot_id: Some(id.into()),
            ..Learned::default()
        }
    }

    pub fn snapshots(ids: Vec<String>) -> Learned {
        Learned {
            snapshot_ids: ids,
            ..Learned::default()
        }
    }

    /// Snapshots and the volume each was taken of.
    pub fn snapshots_of_volumes(by_snapshot: BTreeMap<String, String>) -> Learned {
        Learned {
            snapshot_ids: by_snapshot.keys().cloned().collect(),
            snapshot_volumes: by_snapshot,
            ..Learned::default()
        }
    }

    pub fn uri(uri: impl Into<String>) -> Learned {
        Learned {
            uri: Some(uri.into()),
            ..Learned::default()
        }
    }
}

//! What the steps that move volumes between instances carry, and what a start checks of them.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::Ref;

/// detach_volume: a volume taken off an instance.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DetachVolume {
    pub volume_id: String,
    pub instance_id: String,
    pub device: String,
    pub delete_on_termination: bool,
    /// The volume is replaced for good: it is tagged `asdr:superseded` once detached.
    pub supersede: bool,
    /// The plan terminates the instance afterwards: a termination-protected instance is refused
    /// before its volumes are taken, not after (EC2 would refuse the termination, leaving a
    /// stopped machine without its data and the replacement unlaunched).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
}

/// fast_snapshot_restore: Fast Snapshot Restore enabled for a restore's snapshots in the zones
/// its volumes are made in (done once every pair is `enabled`: its volumes are then whole at
/// creation), or disabled again once they are made (EBS bills each pair by the hour).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct FastSnapshotRestore {
    pub enable: bool,
    /// The restore (or drill) whose volumes it speeds up.
    pub restore: String,
    /// Zone → the snapshots volumes are made from there: each snapshot only in its volume's
    /// zone (EBS bills every snapshot–zone pair enabled).
    pub snapshots: std::collections::BTreeMap<String, Vec<String>>,
    /// The cluster's id: a snapshot carrying another is a same-named cluster's, never touched.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// Done once EBS accepted the request, not waited `enabled` for (`backup.fast_restore`: a
    /// backup does not wait an hour per TiB).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_wait: bool,
}

/// attach_volume: a volume attached at a device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct AttachVolume {
    pub volume_id: Ref,
    pub instance_id: Option<Ref>,
    pub device: String,
}

/// One device a start checks: `path` (as aerospike.conf names it) must be the volume
/// `volume_id`, attached at `ebs`. Read on the node: the volume's stable name
/// (`/dev/disk/by-id/nvme-Amazon_Elastic_Block_Store_vol…`, the NVMe serial is the volume id)
/// and `path` resolve to one device.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceCheck {
    pub path: String,
    pub ebs: String,
    pub volume_id: Ref,
}

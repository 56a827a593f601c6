//! The plan: resource changes, the step graph, warnings. Its JSON form (format_version 1) is the
//! plan file of CLI.md; `asdr show` renders a saved plan from this type alone.

use std::fmt;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::params::Params;

pub const FORMAT_VERSION: u32 = 1;

/// The plan file's JSON Schema: every step kind with its parameters.
pub fn json_schema() -> serde_json::Value {
    serde_json::to_value(schemars::schema_for!(Plan)).expect("a schema serializes")
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Plan {
    pub format_version: u32,
    pub plan_id: String,
    pub cluster: String,
    /// The cluster's id (`asdr:cluster-id`); absent in plan files made before ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// `backup` or `restore:<name>`.
    pub operation: String,
    /// The time the plan was made for (the world's `now`).
    pub now: String,
    pub spec_digest: String,
    pub world_digest: String,
    pub changes: Vec<Change>,
    /// In execution order: every step comes after the steps it depends on.
    pub steps: Vec<Step>,
    pub warnings: Vec<Warning>,
    pub summary: Summary,
    /// A restore's or drill's time by phase against its objective (docs/rto.md).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rto: Option<crate::rto::RtoEstimate>,
}

impl Plan {
    pub fn has_changes(&self) -> bool {
        !self.changes.is_empty() || !self.steps.is_empty()
    }

    pub fn step(&self, id: &str) -> Option<&Step> {
        self.steps.iter().find(|s| s.id == id)
    }
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Action {
    Create,
    Update,
    Delete,
    Replace,
    Read,
}

impl Action {
    /// Terraform's markers.
    pub fn marker(self) -> &'static str {
        match self {
            Action::Create => "+",
            Action::Update => "~",
            Action::Delete => "-",
            Action::Replace => "-/+",
            Action::Read => "<=",
        }
    }
}

/// A resource-level change: what will exist, change or vanish, and why.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Change {
    pub address: String,
    pub action: Action,
    pub reason: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    /// A unified diff for files asdr writes (aerospike.conf).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub diff: Option<String>,
}

#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum StepKind {
    CheckClusterStable,
    Quiesce,
    Unquiesce,
    StopNode,
    StartNode,
    Snapshot,
    SnapshotInstance,
    WaitSnapshot,
    CopySmd,
    RestoreSmd,
    Asbackup,
    Asrestore,
    DeleteSnapshot,
    DetachVolume,
    AttachVolume,
    TerminateInstance,
    ProvisionInstance,
    CreateVolume,
    WaitVolume,
    WriteConfig,
    WaitClusterStable,
    /// Full-cluster restores: every node is stopped (none answers on its info port) before any
    /// volume is swapped (R12).
    WaitNodesStopped,
    WaitQuiesceDrained,
    /// Strong consistency: the roster set to the nodes observed, after a node joined with an id
    /// the roster does not hold (R19).
    SetRoster,
    /// Strong consistency: no partition unavailable or dead after a restore (R19).
    WaitPartitionsAvailable,
    MarkSetComplete,
    /// A set's manifest written into its SMD store, before its mark.
    WriteManifest,
    /// A full-cluster restore's SMD archive checked against its recorded SHA-256 before any node
    /// is stopped.
    CheckSmdArchive,
    /// Drill teardown only: a volume tagged `asdr:drill` (restores never delete volumes, R7).
    DeleteVolume,
    /// A running instance whose Aerospike does not answer is stopped (and waited for) before its
    /// volumes are detached: volumes are never taken from a running machine.
    StopInstance,
    /// Retention of asbackup sets: one set's directories (each with asdr's manifest) deleted.
    DeleteBackup,
    /// A completed snapshot copied to another region (`backup.copies`).
    CopySnapshot,
    /// A set's SMD archive copied to another region's store.
    CopySmdArchive,
    /// A restore into another region stands: its instances are tagged so.
    MarkRestoreComplete,
    /// The cluster's id tagged on its nodes' instances that do not carry it yet.
    ClaimCluster,
    /// A set's snapshots locked (EBS snapshot locks) until the set is `lock.duration` old (R20).
    LockSnapshots,
    /// An existing set's store files (SMD archives, checksums, manifest) given S3 Object Lock
    /// retention as its snapshots are locked (R20).
    RetainFiles,
    /// Fast Snapshot Restore enabled (and waited for) or disabled for a restore's snapshots.
    FastSnapshotRestore,
}

impl StepKind {
    pub fn as_str(self) -> &'static str {
        match self {
            StepKind::CheckClusterStable => "check_cluster_stable",
            StepKind::Quiesce => "quiesce",
            StepKind::Unquiesce => "unquiesce",
            StepKind::StopNode => "stop_node",
            StepKind::StartNode => "start_node",
            StepKind::Snapshot => "snapshot",
            StepKind::SnapshotInstance => "snapshot_instance",
            StepKind::WaitSnapshot => "wait_snapshot",
            StepKind::CopySmd => "copy_smd",
            StepKind::RestoreSmd => "restore_smd",
            StepKind::Asbackup => "asbackup",
            StepKind::Asrestore => "asrestore",
            StepKind::DeleteSnapshot => "delete_snapshot",
            StepKind::DetachVolume => "detach_volume",
            StepKind::AttachVolume => "attach_volume",
            StepKind::TerminateInstance => "terminate_instance",
            StepKind::ProvisionInstance => "provision_instance",
            StepKind::CreateVolume => "create_volume",
            StepKind::WaitVolume => "wait_volume",
            StepKind::WriteConfig => "write_config",
            StepKind::WaitClusterStable => "wait_cluster_stable",
            StepKind::WaitNodesStopped => "wait_nodes_stopped",
            StepKind::WaitQuiesceDrained => "wait_quiesce_drained",
            StepKind::SetRoster => "set_roster",
            StepKind::WaitPartitionsAvailable => "wait_partitions_available",
            StepKind::MarkSetComplete => "mark_set_complete",
            StepKind::WriteManifest => "write_manifest",
            StepKind::CheckSmdArchive => "check_smd_archive",
            StepKind::DeleteVolume => "delete_volume",
            StepKind::StopInstance => "stop_instance",
            StepKind::DeleteBackup => "delete_backup",
            StepKind::CopySnapshot => "copy_snapshot",
            StepKind::CopySmdArchive => "copy_smd_archive",
            StepKind::MarkRestoreComplete => "mark_restore_complete",
            StepKind::ClaimCluster => "claim_cluster",
            StepKind::LockSnapshots => "lock_snapshots",
            StepKind::RetainFiles => "retain_files",
            StepKind::FastSnapshotRestore => "fast_snapshot_restore",
        }
    }

    /// Steps that take a node out of service (R8 counts them against `max_nodes_at_once`).
    pub fn takes_node_out(self) -> bool {
        matches!(self, StepKind::Quiesce | StepKind::StopNode)
    }

    /// Steps that only poll until something is true; they hold no parallelism slot.
    pub fn is_wait(self) -> bool {
        matches!(
            self,
            StepKind::WaitSnapshot
                | StepKind::WaitVolume
                | StepKind::WaitClusterStable
                | StepKind::WaitNodesStopped
                | StepKind::WaitQuiesceDrained
                | StepKind::WaitPartitionsAvailable
        )
    }

    /// Steps that bring a node back (the end of its write-stop window).
    pub fn brings_node_back(self) -> bool {
        matches!(self, StepKind::Unquiesce | StepKind::StartNode)
    }
}

impl fmt::Display for StepKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// In the plan file: `{"id", "kind", "params", "node", "depends_on", "cleanup"}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, JsonSchema)]
pub struct Step {
    /// Stable and derived from what the step does, e.g. `snapshot:a1:/dev/sdf:bs-20261121T090000Z`.
    pub id: String,
    /// The kind (`kind`) and what it carries (`params`).
    #[serde(flatten)]
    pub params: Params,
    pub node: Option<String>,
    /// The region the step acts in, when not the cluster's own (copies, restores elsewhere).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub depends_on: Vec<String>,
    /// Runs even when a step before it failed (unquiesce, start a node asdr stopped).
    pub cleanup: bool,
}

impl Step {
    pub fn kind(&self) -> StepKind {
        self.params.kind()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Warning {
    pub rule: String,
    pub message: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, JsonSchema)]
pub struct Summary {
    pub add: usize,
    pub change: usize,
    pub destroy: usize,
    pub steps: usize,
}

impl Summary {
    pub fn of(changes: &[Change], steps: usize) -> Summary {
        let mut s = Summary {
            steps,
            ..Summary::default()
        };
        for c in changes {
            match c.action {
                Action::Create => s.add += 1,
                Action::Update => s.change += 1,
                Action::Delete => s.destroy += 1,
                Action::Replace => {
                    s.add += 1;
                    s.destroy += 1;
                }
                Action::Read => {}
            }
        }
        s
    }
}

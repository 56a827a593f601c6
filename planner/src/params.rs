//! What each step kind carries: one parameter struct per kind, the contract between the planner
//! (which fills them), the safety verifier (which reads them), the executor and the providers
//! (which carry them out). In the plan file a step is `{"kind": "<kind>", "params": {…}}`; the
//! JSON Schema of the whole plan file is `asdr schema --plan`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::plan::StepKind;

mod consistency;
mod copies;
mod locks;
mod tools;
mod volumes;
pub use consistency::{SetRoster, WaitPartitionsAvailable};
pub use copies::{CopySnapshot, MarkRestoreComplete};
pub use locks::{LockSnapshots, RetainFiles, Retention};
pub use tools::{Asbackup, Asrestore, BackupKind, Tool, ToolEncrypt};
pub use volumes::{AttachVolume, DetachVolume, DeviceCheck, FastSnapshotRestore};

/// Tags a step puts on what it creates (besides `asdr:plan` and `asdr:step`).
pub type TagMap = BTreeMap<String, String>;

/// A resource id known when the plan is made, or one an earlier step of the same plan learns
/// (`{"from_step": "<step id>"}`: a volume created a minute ago, a replacement instance).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(untagged)]
pub enum Ref {
    Learned { from_step: String },
    Known(String),
}

impl Ref {
    pub fn known(&self) -> Option<&str> {
        match self {
            Ref::Known(id) => Some(id),
            Ref::Learned { .. } => None,
        }
    }

    pub fn from_step(&self) -> Option<&str> {
        match self {
            Ref::Learned { from_step } => Some(from_step),
            Ref::Known(_) => None,
        }
    }
}

fn yes() -> bool {
    true
}

fn is_true(b: &bool) -> bool {
    *b
}

/// check_cluster_stable, wait_cluster_stable: every node answers `cluster-stable:size=<size>`
/// with one cluster key.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Stable {
    pub size: usize,
    /// The nodes asked; empty: the policy's nodes.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub nodes: Vec<String>,
    pub ignore_migrations: bool,
}

/// quiesce, unquiesce, stop_node, start_node: a node's info address and, to stop or start the
/// service, the rendered command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeService {
    /// `<ip>:<info port>`.
    pub address: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub command: Option<String>,
    /// Counted against `max_nodes_at_once` (R8). A full-cluster restore stops every node on
    /// purpose (R12): its stops are not.
    #[serde(default = "yes", skip_serializing_if = "is_true")]
    pub rolling: bool,
    /// start_node only: which kind of start this is, and so which command it runs (R17).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub start: Option<StartKind>,
    /// start_node only: the id the config this plan wrote sets (`node-id`). A node answering with
    /// another id runs a config asdr did not write (an image that starts Aerospike at boot), and
    /// is never taken as started (R18).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    /// start_node only: the EBS volumes this node's aerospike.conf names, each checked on the
    /// node to be the device at its path before Aerospike starts. On Nitro instances the kernel
    /// numbers NVMe devices in the order volumes arrive (`/dev/nvme3n1` is whichever came first),
    /// so a path can name another volume than the one attached at its `ebs` name: started on it,
    /// a namespace would read another namespace's (or another node's) data as its own.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub devices: Vec<DeviceCheck>,
    /// start_node only, beside `devices`: the instance-store primaries aerospike.conf names,
    /// each checked on the node to be an instance-store drive. On a new instance the kernel may
    /// number the root EBS volume `nvme1n1`: started on it, Aerospike would write over the OS.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub instance_store: Vec<String>,
}

/// How a node's Aerospike comes up, which decides whether it reads its storage (R17).
///
/// Enterprise restarts **warm** after a clean shutdown: it reattaches to the index it left in
/// shared memory and does not read the namespace's devices. After asdr swaps a node's volumes or
/// restores its SMD on the same instance, a warm start would serve the old index over the restored
/// data, so such starts must be **cold** (`cluster.service.cold_start`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum StartKind {
    /// `service.start` on Enterprise with nothing changed underneath: reattaching the index is
    /// right (a stop-node backup's restart).
    Warm,
    /// `service.cold_start`: the index is rebuilt from the (restored) devices.
    Cold,
    /// The first start of an instance this plan launched: it has no shared memory, so it
    /// cold-starts with `service.start`.
    NewInstance,
    /// Community Edition has no warm restart: every start reads the devices.
    Community,
}

impl StartKind {
    /// As the plan file spells it.
    pub fn name(self) -> &'static str {
        match self {
            StartKind::Warm => "warm",
            StartKind::Cold => "cold",
            StartKind::NewInstance => "new-instance",
            StartKind::Community => "community",
        }
    }

    /// Said in the plan beside the step.
    pub fn describe(self) -> &'static str {
        match self {
            StartKind::Warm => "warm start: nothing changed under the node",
            StartKind::Cold => "cold start: reads the restored volumes",
            StartKind::NewInstance => "cold start: a new instance has no index to reattach",
            StartKind::Community => "cold start: Community Edition always reads its devices",
        }
    }
}

/// snapshot: one EBS volume (CreateSnapshot), tagged at creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct Snapshot {
    pub volume_id: String,
    pub device: String,
    pub set: String,
    pub description: String,
    pub tags: TagMap,
}

/// One data volume of an instance and the device it is attached at.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeviceVolume {
    pub device: String,
    pub volume_id: String,
}

/// snapshot_instance: every data volume of an instance at one point in time (CreateSnapshots).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SnapshotInstance {
    pub instance_id: String,
    pub set: String,
    pub volumes: Vec<DeviceVolume>,
    pub exclude_boot_volume: bool,
    /// The instance's other data volumes, left out of the snapshot set (never its root volume:
    /// EC2 refuses that). Absent when the observation did not say which volume is the root: the
    /// provider then asks EC2.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub exclude_volume_ids: Option<Vec<String>>,
    pub descriptions: Vec<String>,
    pub tags: TagMap,
}

/// wait_snapshot: a snapshot reaches `completed`. Either a known snapshot, or the one a step of
/// this plan creates for `node`'s `device` in `set`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitSnapshot {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub set: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// The volume the awaited snapshot is taken of, when a step of this plan creates it. A
    /// multi-volume CreateSnapshots tags all its snapshots alike: the wait finds its own by this
    /// volume and gives it its `asdr:device` tag (the waits of a set tag together, one CreateTags
    /// per device, outside the nodes' write-stop windows).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub volume_id: Option<String>,
    /// The cluster's id: a snapshot carrying another is never the one awaited (a same-named
    /// cluster's set begun in the same second carries the same set, node and device tags).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// The progress observed when the plan was made.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub progress: Option<u8>,
    /// A time-based copy's promise (`copies[].complete_within`): the wait allows it, and an hour.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub within_minutes: Option<u32>,
}

/// copy_smd: a node's SMD directory archived to the store (R2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopySmd {
    pub set: String,
    pub from: String,
    pub to: String,
    /// S3 Object Lock retention the archive is written with (the set's lock, R20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// restore_smd: a set's SMD archive replaces a node's SMD directory.
/// A set's SMD archive copied from one store to another, its SHA-256 checked on both sides.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CopySmdArchive {
    pub set: String,
    pub from: String,
    pub to: String,
    /// The archive's SHA-256 when known in advance (observed); otherwise the source's, read.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct RestoreSmd {
    pub set: String,
    pub from: String,
    pub to: String,
    pub sha256: Option<String>,
    /// Replace, never merge (R2).
    pub replace: bool,
    /// Where the directory that was there is kept.
    pub keep_previous: String,
}

/// check_smd_archive: before a full-cluster restore stops anything, the set's SMD archive is read
/// and its SHA-256 compared with the one the set recorded (its manifest's, else the one beside it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CheckSmdArchive {
    pub set: String,
    pub uri: String,
    pub sha256: Option<String>,
}

/// delete_snapshot: one snapshot of an expired set (R13).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteSnapshot {
    pub snapshot_id: String,
    /// The set the snapshot belongs to (absent in plan files older than the set check).
    #[serde(default)]
    pub set: String,
    /// The cluster's id: a snapshot carrying another is refused right before the delete (R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// claim_cluster: the cluster's id tagged (`asdr:cluster-id`) on the instances of its nodes that
/// do not carry it yet. Refused on an instance that carries another.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ClaimCluster {
    pub cluster: String,
    pub cluster_id: String,
    pub instances: Vec<String>,
}

/// terminate_instance, stop_instance: an instance brought to `wait_until`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct TerminateInstance {
    pub instance_id: String,
    pub wait_until: String,
    pub reason: String,
}

/// stop_instance: a running instance whose Aerospike does not answer, stopped before its volumes
/// are detached.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct StopInstance {
    pub instance_id: String,
    pub force: bool,
    /// The plan terminates the instance afterwards: a termination-protected instance is refused
    /// before it is stopped (a stop wipes its instance store and leaves it down).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub terminating: bool,
    /// `stopped`, or [`STOP_REQUESTED`]: done once EC2 has accepted the stop (an instance in a
    /// lost zone stops only when the zone comes back).
    pub wait_until: String,
}

/// stop_instance's `wait_until` for a stop that is requested, not waited for.
pub const STOP_REQUESTED: &str = "stopping";

/// provision_instance: a replacement (or a drill's stand-in) at a given address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ProvisionInstance {
    pub private_ip: String,
    pub availability_zone: String,
    pub subnet_id: Option<String>,
    pub instance_type: String,
    pub ami: String,
    pub security_groups: Vec<String>,
    pub iam_instance_profile: Option<String>,
    pub key_name: Option<String>,
    pub instance_store_volumes: u32,
    pub client_token: String,
    pub tags: TagMap,
    /// A zone-loss restore's old instance of the node (same node id), which must not run when
    /// the replacement launches: checked again at launch, since a resumed apply may come after
    /// the lost zone gave it back.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_first: Option<String>,
}

/// create_volume: a volume from a snapshot, or blank.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct CreateVolume {
    pub availability_zone: String,
    pub snapshot_id: Option<String>,
    pub size_gib: u32,
    #[serde(rename = "type")]
    pub volume_type: String,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initialization_rate: Option<u32>,
    pub encrypted: bool,
    pub kms_key_id: Option<String>,
    pub client_token: String,
    pub tags: TagMap,
}

/// wait_volume: a volume reaches `available`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitVolume {
    pub volume_id: Ref,
}

/// write_config: aerospike.conf written on a node.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteConfig {
    pub path: String,
    pub content: String,
    /// The suffix of the copy of the file that was there.
    pub keep_previous: String,
}

/// wait_quiesce_drained: a quiesced node no longer takes client writes (R1): it reports itself
/// quiesced, and its client write counters stay unchanged for `quiet_ms`. Given up after
/// `timeout_s` (the snapshot is not taken, and the cleanup's unquiesce resumes the node).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitQuiesceDrained {
    pub address: String,
    pub quiet_ms: u64,
    pub timeout_s: u64,
}

/// wait_nodes_stopped: none of these nodes answers on its info port (R12).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitNodesStopped {
    pub nodes: Vec<String>,
}

/// mark_set_complete: every snapshot of a set tagged `asdr:complete=true`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct MarkSetComplete {
    pub set: String,
    /// How many snapshots the set holds (nodes × devices).
    pub snapshots: usize,
    pub tag: TagMap,
    /// The set's manifest: its SHA-256, learned from the step that wrote it, is tagged with the
    /// mark (`asdr:manifest`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub manifest: Option<Ref>,
    /// The cluster's id: snapshots carrying another are neither counted nor tagged by the mark.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// write_manifest: a set's manifest written into its SMD store, before the set is marked
/// complete. Snapshot ids the plan does not know yet come from the steps that waited for them;
/// each SMD archive is read and its SHA-256 recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WriteManifest {
    pub uri: String,
    pub set: String,
    pub cluster: String,
    /// The cluster's id, recorded in the manifest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    pub region: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_region: Option<String>,
    pub members: Vec<ManifestMember>,
    pub namespaces: Vec<String>,
    /// The SMD archives (node, uri): each read and checked against the `.sha256` beside it.
    pub smd: Vec<NodeUri>,
    /// Each node's Aerospike node id, so a restore from the set rejoins as the same nodes (R18).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_ids: BTreeMap<String, String>,
    pub policy_digest: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
}

/// One member of a set as the plan knows it; its snapshot known or learned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct ManifestMember {
    pub node: String,
    pub device: String,
    pub volume_id: String,
    pub snapshot: Ref,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub source_snapshot_id: Option<Ref>,
    pub size_gib: u32,
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// The snapshot's start, when the plan knows it (else learned with the snapshot).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct NodeUri {
    pub node: String,
    pub uri: String,
}

/// delete_volume: a drill's volume, at teardown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteVolume {
    pub volume_id: String,
    pub drill: String,
    /// The cluster's id: a volume carrying another is refused right before the delete (R13).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// delete_backup: the directories of one expired asbackup set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct DeleteBackup {
    pub set: String,
    pub to: String,
    pub directories: Vec<String>,
    pub cluster: String,
    /// The manifest key naming the cluster (R13: only the cluster's own sets go).
    pub tag: String,
    /// The cluster's id: a run whose manifest names another is refused right before the delete.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
}

/// A step's kind and its parameters, one variant per [`StepKind`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(tag = "kind", content = "params", rename_all = "snake_case")]
pub enum Params {
    CheckClusterStable(Stable),
    Quiesce(NodeService),
    Unquiesce(NodeService),
    StopNode(NodeService),
    StartNode(NodeService),
    Snapshot(Snapshot),
    SnapshotInstance(SnapshotInstance),
    WaitSnapshot(WaitSnapshot),
    CopySmd(CopySmd),
    RestoreSmd(RestoreSmd),
    Asbackup(Asbackup),
    Asrestore(Asrestore),
    DeleteSnapshot(DeleteSnapshot),
    DetachVolume(DetachVolume),
    AttachVolume(AttachVolume),
    TerminateInstance(TerminateInstance),
    ProvisionInstance(ProvisionInstance),
    CreateVolume(CreateVolume),
    WaitVolume(WaitVolume),
    WriteConfig(WriteConfig),
    WaitClusterStable(Stable),
    WaitNodesStopped(WaitNodesStopped),
    WaitQuiesceDrained(WaitQuiesceDrained),
    SetRoster(SetRoster),
    WaitPartitionsAvailable(WaitPartitionsAvailable),
    MarkSetComplete(MarkSetComplete),
    WriteManifest(WriteManifest),
    CheckSmdArchive(CheckSmdArchive),
    DeleteVolume(DeleteVolume),
    StopInstance(StopInstance),
    DeleteBackup(DeleteBackup),
    CopySnapshot(CopySnapshot),
    CopySmdArchive(CopySmdArchive),
    MarkRestoreComplete(MarkRestoreComplete),
    ClaimCluster(ClaimCluster),
    LockSnapshots(LockSnapshots),
    RetainFiles(RetainFiles),
    FastSnapshotRestore(FastSnapshotRestore),
}

impl Params {
    /// A kind's parameters from their plan-file form (`{"kind": …, "params": …}` split in two).
    pub fn from_json(
        kind: StepKind,
        params: serde_json::Value,
    ) -> Result<Params, serde_json::Error> {
        serde_json::from_value(serde_json::json!({"kind": kind, "params": params}))
    }

    pub fn kind(&self) -> StepKind {
        match self {
            Params::CheckClusterStable(_) => StepKind::CheckClusterStable,
            Params::Quiesce(_) => StepKind::Quiesce,
            Params::Unquiesce(_) => StepKind::Unquiesce,
            Params::StopNode(_) => StepKind::StopNode,
            Params::StartNode(_) => StepKind::StartNode,
            Params::Snapshot(_) => StepKind::Snapshot,
            Params::SnapshotInstance(_) => StepKind::SnapshotInstance,
            Params::WaitSnapshot(_) => StepKind::WaitSnapshot,
            Params::CopySmd(_) => StepKind::CopySmd,
            Params::RestoreSmd(_) => StepKind::RestoreSmd,
            Params::Asbackup(_) => StepKind::Asbackup,
            Params::Asrestore(_) => StepKind::Asrestore,
            Params::DeleteSnapshot(_) => StepKind::DeleteSnapshot,
            Params::DetachVolume(_) => StepKind::DetachVolume,
            Params::AttachVolume(_) => StepKind::AttachVolume,
            Params::TerminateInstance(_) => StepKind::TerminateInstance,
            Params::ProvisionInstance(_) => StepKind::ProvisionInstance,
            Params::CreateVolume(_) => StepKind::CreateVolume,
            Params::WaitVolume(_) => StepKind::WaitVolume,
            Params::WriteConfig(_) => StepKind::WriteConfig,
            Params::WaitClusterStable(_) => StepKind::WaitClusterStable,
            Params::WaitNodesStopped(_) => StepKind::WaitNodesStopped,
            Params::WaitQuiesceDrained(_) => StepKind::WaitQuiesceDrained,
            Params::SetRoster(_) => StepKind::SetRoster,
            Params::WaitPartitionsAvailable(_) => StepKind::WaitPartitionsAvailable,
            Params::MarkSetComplete(_) => StepKind::MarkSetComplete,
            Params::WriteManifest(_) => StepKind::WriteManifest,
            Params::CheckSmdArchive(_) => StepKind::CheckSmdArchive,
            Params::DeleteVolume(_) => StepKind::DeleteVolume,
            Params::StopInstance(_) => StepKind::StopInstance,
            Params::DeleteBackup(_) => StepKind::DeleteBackup,
            Params::CopySnapshot(_) => StepKind::CopySnapshot,
            Params::CopySmdArchive(_) => StepKind::CopySmdArchive,
            Params::MarkRestoreComplete(_) => StepKind::MarkRestoreComplete,
            Params::ClaimCluster(_) => StepKind::ClaimCluster,
            Params::LockSnapshots(_) => StepKind::LockSnapshots,
            Params::RetainFiles(_) => StepKind::RetainFiles,
            Params::FastSnapshotRestore(_) => StepKind::FastSnapshotRestore,
        }
    }

    /// The node-service parameters of quiesce, unquiesce, stop_node and start_node.
    pub fn node_service(&self) -> Option<&NodeService> {
        match self {
            Params::Quiesce(p)
            | Params::Unquiesce(p)
            | Params::StopNode(p)
            | Params::StartNode(p) => Some(p),
            _ => None,
        }
    }

    /// Whether the step counts against `max_nodes_at_once` when it takes a node out: all do
    /// but the stops of a full-cluster restore (R12).
    pub fn rolling(&self) -> bool {
        self.node_service().is_none_or(|p| p.rolling)
    }

    /// The stability parameters of check_cluster_stable and wait_cluster_stable.
    pub fn stable(&self) -> Option<&Stable> {
        match self {
            Params::CheckClusterStable(p) | Params::WaitClusterStable(p) => Some(p),
            _ => None,
        }
    }

    /// The backup set a step makes, copies, restores or deletes.
    pub fn set(&self) -> Option<&str> {
        match self {
            Params::Snapshot(p) => Some(&p.set),
            Params::SnapshotInstance(p) => Some(&p.set),
            Params::WaitSnapshot(p) => p.set.as_deref(),
            Params::CopySmd(p) => Some(&p.set),
            Params::RestoreSmd(p) => Some(&p.set),
            Params::Asbackup(p) => Some(&p.set),
            Params::Asrestore(p) => Some(&p.set),
            Params::DeleteSnapshot(p) => Some(&p.set),
            Params::MarkSetComplete(p) => Some(&p.set),
            Params::WriteManifest(p) => Some(&p.set),
            Params::CheckSmdArchive(p) => Some(&p.set),
            Params::DeleteBackup(p) => Some(&p.set),
            Params::CopySnapshot(p) => Some(&p.set),
            Params::CopySmdArchive(p) => Some(&p.set),
            Params::LockSnapshots(p) => Some(&p.set),
            Params::RetainFiles(p) => Some(&p.set),
            _ => None,
        }
    }

    /// The snapshot a step names (created volumes, waits, deletions).
    pub fn snapshot_id(&self) -> Option<&str> {
        match self {
            Params::WaitSnapshot(p) => p.snapshot_id.as_deref(),
            Params::CreateVolume(p) => p.snapshot_id.as_deref(),
            Params::DeleteSnapshot(p) => Some(&p.snapshot_id),
            _ => None,
        }
    }

    /// The instance a step acts on, when the plan knows it.
    pub fn instance_id(&self) -> Option<&str> {
        match self {
            Params::SnapshotInstance(p) => Some(&p.instance_id),
            Params::DetachVolume(p) => Some(&p.instance_id),
            Params::AttachVolume(p) => p.instance_id.as_ref().and_then(Ref::known),
            Params::TerminateInstance(p) => Some(&p.instance_id),
            Params::StopInstance(p) => Some(&p.instance_id),
            _ => None,
        }
    }

    /// The volume a step acts on, when the plan knows it.
    pub fn volume_id(&self) -> Option<&str> {
        match self {
            Params::Snapshot(p) => Some(&p.volume_id),
            Params::DetachVolume(p) => Some(&p.volume_id),
            Params::AttachVolume(p) => p.volume_id.known(),
            Params::WaitVolume(p) => p.volume_id.known(),
            Params::DeleteVolume(p) => Some(&p.volume_id),
            _ => None,
        }
    }

    /// The device a step's volume is (or is to be) attached at.
    pub fn device(&self) -> Option<&str> {
        match self {
            Params::Snapshot(p) => Some(&p.device),
            Params::WaitSnapshot(p) => p.device.as_deref(),
            Params::CopySnapshot(p) => Some(&p.device),
            Params::DetachVolume(p) => Some(&p.device),
            Params::AttachVolume(p) => Some(&p.device),
            _ => None,
        }
    }

    /// The tags the planner gives what the step creates.
    pub fn tags(&self) -> Option<&TagMap> {
        match self {
            Params::Snapshot(p) => Some(&p.tags),
            Params::SnapshotInstance(p) => Some(&p.tags),
            Params::ProvisionInstance(p) => Some(&p.tags),
            Params::CreateVolume(p) => Some(&p.tags),
            Params::CopySnapshot(p) => Some(&p.tags),
            _ => None,
        }
    }
}

pub use crate::learned::Learned;

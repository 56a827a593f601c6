//! The checked policy: what the planner reads. Every value here has passed validation; spans are
//! kept where a later refusal (at plan time) must point back at the policy text.

use std::collections::BTreeMap;
use std::fmt;
use std::net::Ipv4Addr;

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::duration::Duration;
use crate::span::Span;
use crate::template::Template;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Edition {
    Enterprise,
    Community,
}

impl Edition {
    /// Reads an `edition` info reply (`Aerospike Enterprise Edition`) or a bare name.
    pub fn from_reply(reply: &str) -> Option<Edition> {
        let lower = reply.to_ascii_lowercase();
        if lower.contains("enterprise") {
            Some(Edition::Enterprise)
        } else if lower.contains("community") {
            Some(Edition::Community)
        } else {
            None
        }
    }
}

impl fmt::Display for Edition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Edition::Enterprise => "enterprise",
            Edition::Community => "community",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Method {
    EbsSnapshot,
    Asbackup,
}

/// How a snapshot lock holds (EBS snapshot locks, docs/immutability.md).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize, JsonSchema,
)]
#[serde(rename_all = "kebab-case")]
pub enum LockMode {
    /// Undeletable until it expires, but a user allowed `ec2:UnlockSnapshot` may unlock it.
    Governance,
    /// Undeletable until it expires; no one can unlock it once its cool-off has passed.
    Compliance,
}

impl fmt::Display for LockMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            LockMode::Governance => "governance",
            LockMode::Compliance => "compliance",
        })
    }
}

/// `backup.lock` (or a copy's): every snapshot of a set locked until the set is `duration` old.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lock {
    pub mode: LockMode,
    /// Counted from the set's time: a set is locked until it is this old.
    pub duration: Duration,
    /// Compliance only: how long after locking the lock may still be changed or removed.
    pub cool_off: Option<Duration>,
    pub span: Span,
}

impl Lock {
    /// When a set taken at `set_time` stops being locked.
    pub fn until(&self, set_time: OffsetDateTime) -> OffsetDateTime {
        set_time + time::Duration::seconds(self.duration.seconds() as i64)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Consistency {
    MultiVolume,
    Quiesce,
    StopNode,
    None,
}

impl fmt::Display for Consistency {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Consistency::MultiVolume => "multi-volume",
            Consistency::Quiesce => "quiesce",
            Consistency::StopNode => "stop-node",
            Consistency::None => "none",
        })
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Scope {
    Node,
    Cluster,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Transport {
    Ssm,
    Ssh,
    Local,
}

/// A validated policy file and the texts it was read from (for digests and error rendering).
#[derive(Debug, Clone)]
pub struct Policy {
    pub path: String,
    pub text: String,
    pub cluster: Cluster,
    pub backup: Backup,
    pub restores: Vec<Restore>,
    /// `s3://bucket/key` or `file:///path`; None for the default local lock.
    pub lock: Option<String>,
    /// A stale S3 lock older than this is broken by the next apply.
    pub lock_expiry: Option<Duration>,
    pub drills: Vec<Drill>,
    /// What validation explains without refusing (`file:line:col: note: …`), e.g. a lock that
    /// outlives retention.
    pub notes: Vec<String>,
}

impl Policy {
    /// The lock on sets in `region` (none: the cluster's own): `backup.lock`, or the copy's.
    pub fn lock_in(&self, region: Option<&str>) -> Option<&Lock> {
        match region {
            None => self.backup.lock.as_ref(),
            Some(r) => self
                .backup
                .copies
                .iter()
                .find(|c| c.region == r)
                .and_then(|c| c.lock.as_ref()),
        }
    }

    pub fn drill(&self, name: &str) -> Option<&Drill> {
        self.drills.iter().find(|d| d.name == name)
    }

    pub fn node(&self, name: &str) -> Option<&Node> {
        self.cluster.nodes.iter().find(|n| n.name == name)
    }

    pub fn restore(&self, name: &str) -> Option<&Restore> {
        self.restores.iter().find(|r| r.name == name)
    }

    /// The policy as `restore` leaves it: the nodes its zone move takes out of their zone placed
    /// in the target zone at their new addresses, each keeping the rack of the zone it leaves.
    /// None when the restore moves no node (no `zone`, or every node already placed there: the
    /// policy was updated after the move).
    pub fn zone_moved(&self, restore: &Restore) -> Option<Policy> {
        let zone = restore.zone.as_ref()?;
        let mut moved = self.clone();
        let mut any = false;
        for node in moved.cluster.nodes.iter_mut() {
            if !restore.nodes.contains(&node.name) || node.availability_zone == zone.to {
                continue;
            }
            let Some(ip) = zone.private_ips.get(&node.name) else {
                continue;
            };
            node.moved_from = Some(MovedFrom {
                availability_zone: node.availability_zone.clone(),
                private_ip: node.private_ip,
                instance_id: node.instance_id.clone(),
                rack: self.cluster.rack_of(node),
            });
            node.availability_zone = zone.to.clone();
            node.private_ip = *ip;
            node.instance_id = None;
            any = true;
        }
        any.then_some(moved)
    }

    /// The nodes `restore` moves to another zone (see [`Policy::zone_moved`]).
    pub fn moved_nodes(&self, restore: &Restore) -> Vec<&Node> {
        let Some(zone) = &restore.zone else {
            return Vec::new();
        };
        self.cluster
            .nodes
            .iter()
            .filter(|n| {
                restore.nodes.contains(&n.name)
                    && n.availability_zone != zone.to
                    && zone.private_ips.contains_key(&n.name)
            })
            .collect()
    }

    /// The smallest replication factor of any namespace (R8 bounds the rolling limit by it).
    pub fn min_replication_factor(&self) -> u32 {
        self.cluster.min_replication_factor()
    }

    /// The regions other than the cluster's that the policy acts in: its copies' (restores
    /// elsewhere are from copies, so in one of them), sorted.
    pub fn other_regions(&self) -> Vec<String> {
        let mut out: Vec<String> = self
            .backup
            .copies
            .iter()
            .map(|c| c.region.clone())
            .chain(
                self.restores
                    .iter()
                    .filter_map(|r| r.region().map(str::to_string)),
            )
            .collect();
        out.sort();
        out.dedup();
        out
    }

    /// The nodes' names, in policy order.
    pub fn node_names(&self) -> Vec<&str> {
        self.cluster.nodes.iter().map(|n| n.name.as_str()).collect()
    }

    /// Every EBS device name the nodes' namespaces use, in policy order, without repeats.
    pub fn ebs_devices(&self) -> Vec<&Template> {
        let mut seen = Vec::<&Template>::new();
        for ns in &self.cluster.namespaces {
            for d in &ns.devices {
                if !seen.iter().any(|s| s.source() == d.ebs.source()) {
                    seen.push(&d.ebs);
                }
            }
        }
        seen
    }
}

#[derive(Debug, Clone)]
pub struct Cluster {
    pub name: String,
    /// `cluster.id`: the cluster id the policy states, and its line.
    pub id: Option<String>,
    pub id_span: Span,
    pub region: String,
    pub edition: Edition,
    pub edition_span: Span,
    pub info_port: u16,
    pub durable_deletes: bool,
    /// Availability zone → rack id (`rack-id` in every namespace); empty: not rack-aware.
    pub racks: BTreeMap<String, u32>,
    pub work_directory: Template,
    pub access: Access,
    pub service_stop: Template,
    pub service_start: Template,
    /// `service.cold_start` (Enterprise): starts that must read the restored devices (R17).
    pub service_cold_start: Option<Template>,
    pub config: ConfigSpec,
    pub namespaces: Vec<Namespace>,
    pub instance: InstanceDefaults,
    pub nodes: Vec<Node>,
}

impl Cluster {
    /// The rack of `node`: the one it keeps after a zone move, its own `rack`, else its zone's;
    /// 0 when the cluster is not rack-aware.
    pub fn rack_of(&self, node: &Node) -> u32 {
        node.moved_from
            .as_ref()
            .map(|m| m.rack)
            .or(node.rack)
            .unwrap_or_else(|| {
                self.racks
                    .get(&node.availability_zone)
                    .copied()
                    .unwrap_or(0)
            })
    }
}

impl Cluster {
    /// The smallest replication factor of the namespaces (how many nodes hold every record).
    pub fn min_replication_factor(&self) -> u32 {
        self.namespaces
            .iter()
            .map(|n| n.replication_factor)
            .min()
            .unwrap_or(1)
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Access {
    pub transport: Transport,
    pub ssh: Option<Ssh>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<String>,
    /// A pinned known-hosts file: only its keys are trusted, none on first contact.
    pub known_hosts: Option<String>,
}

#[derive(Debug, Clone)]
pub struct ConfigSpec {
    /// The template file as written in the policy, and its text (read at load time).
    pub template_path: String,
    pub template: Template,
    pub path: Template,
}

#[derive(Debug, Clone)]
pub struct Namespace {
    pub name: String,
    pub name_span: Span,
    pub replication_factor: u32,
    /// `strong-consistency true` (Enterprise, R19).
    pub strong_consistency: bool,
    pub devices: Vec<Device>,
}

#[derive(Debug, Clone)]
pub struct Device {
    pub device: Template,
    pub shadow: Option<Template>,
    /// The EBS attachment name: what EC2 snapshots, attaches and detaches (R5).
    pub ebs: Template,
}

#[derive(Debug, Clone)]
pub struct InstanceDefaults {
    pub instance_type: String,
    pub ami: String,
    pub subnets: BTreeMap<String, String>,
    pub security_groups: Vec<String>,
    pub iam_instance_profile: Option<String>,
    pub key_name: Option<String>,
    pub instance_store_volumes: u32,
    pub instance_store_volumes_span: Span,
}

#[derive(Debug, Clone)]
pub struct Node {
    pub name: String,
    pub name_span: Span,
    pub instance_id: Option<String>,
    /// The pinned Aerospike node id (canonical: upper-case hex, no leading zeros).
    pub node_id: Option<String>,
    pub node_id_span: Span,
    pub private_ip: Ipv4Addr,
    pub availability_zone: String,
    /// The node's rack when it is not its zone's (`cluster.nodes[].rack`).
    pub rack: Option<u32>,
    /// Where a zone-loss restore moved the node from (never read from the policy file:
    /// [`Policy::zone_moved`] sets it).
    pub moved_from: Option<MovedFrom>,
}

/// The zone a node left in a zone-loss restore, and the rack it keeps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MovedFrom {
    pub availability_zone: String,
    pub private_ip: Ipv4Addr,
    /// The instance the policy pinned there.
    pub instance_id: Option<String>,
    pub rack: u32,
}

#[derive(Debug, Clone)]
pub struct Backup {
    pub method: Method,
    pub consistency: Consistency,
    pub consistency_span: Span,
    pub every: Duration,
    pub every_span: Span,
    pub retain: Retain,
    pub smd_to: String,
    /// Nodes out at once; with `by_rack`, the size of the largest rack (what may be out together).
    pub max_nodes_at_once: u32,
    /// `max_nodes_at_once: rack`: one whole rack at a time, racks in turn (R8).
    pub by_rack: bool,
    pub tags: BTreeMap<String, String>,
    pub snapshot_description: Template,
    pub asbackup: Option<Asbackup>,
    pub accept_zombie_records: bool,
    /// Copies of every set in other regions.
    pub copies: Vec<Copy>,
    /// Snapshot locks on every set (none: sets are not locked).
    pub lock: Option<Lock>,
    /// Fast Snapshot Restore kept on the newest complete set (`backup.fast_restore: newest`).
    pub fast_restore: Option<FastRestoreKeep>,
}

/// Which sets `backup.fast_restore` keeps Fast Snapshot Restore on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum FastRestoreKeep {
    Newest,
}

/// `backup.copies[]`: every backup set copied to another region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Copy {
    pub region: String,
    pub region_span: Span,
    pub retain: Retain,
    pub kms_key_id: Option<String>,
    pub smd_to: String,
    /// Snapshot copies in flight to the region at once.
    pub max_in_flight: u32,
    /// Locks on the copies there; `backup.lock` unless the copy names its own.
    pub lock: Option<Lock>,
    /// The AWS region the copies are in. `region` is where asdr keeps them apart: the same, or
    /// `REGION@ACCOUNT` for a backup account's copies (see [`place`]).
    pub aws_region: String,
    /// A separate backup account the copies are made in, through `role_arn`.
    pub account: Option<crate::place::BackupAccount>,
    /// Time-based copies: CompletionDurationMinutes of every snapshot copy.
    pub complete_within_minutes: Option<u32>,
}

/// The default of `backup.copies[].max_in_flight`: EBS limits concurrent snapshot copies per
/// destination region, for the whole account; asdr leaves most of it to others.
pub const DEFAULT_COPIES_IN_FLIGHT: u32 = 5;
/// EBS's quota of concurrent snapshot copies into one region (per account).
pub const MAX_COPIES_IN_FLIGHT: u32 = 20;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retain {
    pub count: Option<u32>,
    pub max_age: Option<Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Asbackup {
    pub to: String,
    pub run_on: RunOn,
    pub compress: Option<Compress>,
    pub encrypt: Option<Encrypt>,
    pub incremental_every: Option<Duration>,
    /// Extra asbackup options.
    pub args: Vec<String>,
    /// Extra asrestore options.
    pub restore_args: Vec<String>,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum RunOn {
    /// On a node of the cluster, through the policy's transport.
    #[default]
    Node,
    /// On the machine running asdr.
    Local,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Compress {
    Zstd,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum EncryptAlgorithm {
    Aes128,
    Aes256,
}

impl EncryptAlgorithm {
    pub fn as_str(self) -> &'static str {
        match self {
            EncryptAlgorithm::Aes128 => "aes128",
            EncryptAlgorithm::Aes256 => "aes256",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Encrypt {
    pub algorithm: EncryptAlgorithm,
    pub key_file: String,
}

#[derive(Debug, Clone)]
pub struct Restore {
    pub name: String,
    pub name_span: Span,
    pub scope: Scope,
    pub nodes: Vec<String>,
    pub source: RestoreSource,
    pub source_span: Span,
    pub accept_zombie_records: bool,
    /// R19: revive dead partitions of strong-consistency namespaces.
    pub accept_dead_partitions: bool,
    pub volume: VolumeSpec,
    /// A restore into another region, from the copies there.
    pub region: Option<RegionTarget>,
    /// A zone-loss restore: the nodes rebuilt in another zone of the region.
    pub zone: Option<ZoneMove>,
    /// The restore's time objective.
    pub rto: Option<Duration>,
}

/// `restores[].zone`: the restore's nodes are rebuilt in zone `to` of the cluster's own region
/// (its subnet in `cluster.instance.subnets`), each at its address there, keeping its rack and
/// node id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZoneMove {
    pub to: String,
    pub to_span: Span,
    /// Node name → its address in `to`.
    pub private_ips: BTreeMap<String, Ipv4Addr>,
}

impl Restore {
    /// The region the restore builds in, when not the cluster's own.
    pub fn region(&self) -> Option<&str> {
        self.region.as_ref().map(|r| r.region.as_str())
    }
}

/// `restores[].region` + `target`: a new cluster in another region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegionTarget {
    pub region: String,
    pub region_span: Span,
    /// Availability zone of that region → subnet.
    pub subnets: BTreeMap<String, String>,
    /// Node name → its address there.
    pub private_ips: BTreeMap<String, Ipv4Addr>,
    pub security_groups: Vec<String>,
    pub ami: String,
    pub instance_type: Option<String>,
}

impl RegionTarget {
    /// The zone of this region a node of `home_az` goes to: the one with the same letter
    /// (`us-east-1b` → `us-west-2b`).
    pub fn zone_for(&self, home_az: &str) -> String {
        zone_in(&self.region, home_az)
    }

    /// The addresses of the new cluster (the template's `peers`).
    pub fn peers(&self) -> Vec<Ipv4Addr> {
        self.private_ips.values().copied().collect()
    }
}

/// The zone of `region` with `home_az`'s letter: `zone_in("us-west-2", "us-east-1b")` is
/// `us-west-2b`.
pub fn zone_in(region: &str, home_az: &str) -> String {
    // A backup account's place (`REGION@ACCOUNT`): its zones are its region's.
    let region = crate::place::split_place(region).0;
    let letter: String = home_az
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    format!("{region}{letter}")
}

/// Where restored data comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RestoreSource {
    /// Reattach the node's own EBS volumes to a replacement instance.
    CurrentVolumes,
    /// Blank volumes of the same size and type; migrations refill the node.
    Empty,
    /// The newest complete backup set.
    LatestBackup,
    /// A named backup set, `bs-YYYYMMDDTHHMMSSZ`.
    Set(String),
    /// The newest complete set taken before this time.
    Before(OffsetDateTime),
}

impl RestoreSource {
    /// Whether the restored node cold-starts holding data (R6).
    pub fn brings_data(&self) -> bool {
        !matches!(self, RestoreSource::Empty)
    }

    /// Whether the data comes from a backup set.
    pub fn uses_backup(&self) -> bool {
        matches!(
            self,
            RestoreSource::LatestBackup | RestoreSource::Set(_) | RestoreSource::Before(_)
        )
    }
}

impl fmt::Display for RestoreSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RestoreSource::CurrentVolumes => f.write_str("current-volumes"),
            RestoreSource::Empty => f.write_str("empty"),
            RestoreSource::LatestBackup => f.write_str("latest-backup"),
            RestoreSource::Set(id) => write!(f, "set:{id}"),
            RestoreSource::Before(t) => write!(
                f,
                "before:{}",
                t.format(&time::format_description::well_known::Rfc3339)
                    .unwrap_or_default()
            ),
        }
    }
}

/// Settings of volumes a restore creates; unset values come from the backed-up volume.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VolumeSpec {
    pub volume_type: Option<String>,
    pub iops: Option<u32>,
    pub throughput: Option<u32>,
    pub initialization_rate: Option<u32>,
    /// Fast Snapshot Restore for the restore's snapshots in its zones while its volumes are made.
    pub fast_snapshot_restore: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Teardown {
    Always,
    OnSuccess,
    Never,
}

/// A disaster-recovery drill: `restore` replayed into `target`, validated, timed, torn down.
#[derive(Debug, Clone)]
pub struct Drill {
    pub name: String,
    pub name_span: Span,
    pub restore: String,
    pub subnets: BTreeMap<String, String>,
    /// Node name → the drill node's address.
    pub private_ips: BTreeMap<String, Ipv4Addr>,
    pub min_objects: BTreeMap<String, u64>,
    /// `sindex`, `udf`.
    pub smd: Vec<String>,
    pub deadline: Duration,
    pub teardown: Teardown,
    /// The drill's own security groups: never production's, so its nodes cannot mesh with it.
    pub security_groups: Vec<String>,
}

impl Drill {
    /// The cluster name the drill's nodes form: never production's (`cluster-name` in the
    /// rendered aerospike.conf, `{{ cluster }}` in every per-node template).
    pub fn cluster_name(&self, production: &str) -> String {
        format!("{production}-{}", self.name)
    }

    /// The stand-in of production `node`: its own name, `<node>@<drill>`, and the drill's address,
    /// so every per-node template (paths, commands, config) renders for the stand-in.
    pub fn stand_in(&self, node: &Node) -> Node {
        Node {
            name: format!("{}@{}", node.name, self.name),
            private_ip: self
                .private_ips
                .get(&node.name)
                .copied()
                .unwrap_or(node.private_ip),
            instance_id: None,
            ..node.clone()
        }
    }

    /// The addresses of the drill's own cluster (the template's `peers`).
    pub fn peers(&self) -> Vec<Ipv4Addr> {
        self.private_ips.values().copied().collect()
    }
}

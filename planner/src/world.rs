//! The observed world: what the providers saw of EC2 and of the Aerospike nodes. A world file is
//! this type written as YAML or JSON (docs/world-file.md), so plans can be reviewed offline.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

pub type Tags = BTreeMap<String, String>;

/// Everything the planner reads besides the policy. Field order is the serialization order, and
/// every map is sorted, so the world digest of equal worlds is equal.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// When the observation was made; plans made from a world file use it as "now".
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub now: Option<OffsetDateTime>,
    #[serde(default)]
    pub instances: Vec<Instance>,
    #[serde(default)]
    pub volumes: Vec<Volume>,
    #[serde(default)]
    pub snapshots: Vec<Snapshot>,
    #[serde(default)]
    pub nodes: Vec<NodeObservation>,
    #[serde(default)]
    pub smd_archives: Vec<SmdArchive>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub asbackup_archives: Vec<AsbackupArchive>,
    /// The set manifests found in the SMD stores (`<store>/<cluster>/<set>/manifest.json`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub set_manifests: Vec<crate::manifest::ObservedManifest>,
    /// Instance-store drive counts by instance type (DescribeInstanceTypes), for R4.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub instance_types: BTreeMap<String, InstanceType>,
    /// The subnets replacements may go into (DescribeSubnets), for R4: a private IP outside its
    /// subnet's range cannot be launched there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subnets: Vec<Subnet>,
    /// Network interfaces holding a node's address that no instance holds
    /// (DescribeNetworkInterfaces): a detached interface, or one kept when its instance was
    /// terminated, keeps its address, and a replacement cannot launch with it.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub network_interfaces: Vec<NetworkInterface>,
    /// Regions other than the cluster's that could not be observed, and why: nothing is planned
    /// there (no copy, no retention, no restore) until they answer again.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub unobserved_regions: BTreeMap<String, String>,
    /// Regions whose snapshot locks could not be observed (DescribeLockedSnapshots refused or
    /// not answered), with why: a plan there cannot tell a locked snapshot from an unlocked one.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub locks_unobserved: BTreeMap<String, String>,
    /// Recycle Bin retention rules for EBS snapshots, by region (ListRules / GetRule). A region
    /// not listed was not observed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub recycle_bin: BTreeMap<String, Vec<RecycleRule>>,
    /// S3 buckets of the policy's stores, by name: whether S3 Object Lock is enabled on them
    /// (GetObjectLockConfiguration). A bucket not listed was not observed.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub object_lock: BTreeMap<String, bool>,
    /// What each drill's applies launched or created, by drill name, as their journals recorded
    /// it (asdr adds it when it observes): `<id>@<plan id>` (`drill::made_by`), or
    /// `step:<plan id>/<step>` for a step in flight at a kill (`drill::in_flight`). A drill's teardown
    /// deletes only these: a tag alone (`asdr:drill`) is anyone's to write.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub drill_resources: BTreeMap<String, std::collections::BTreeSet<String>>,
    /// The snapshots the cluster's applies recorded taking (`<id>@<plan id>`,
    /// `drill::made_by`), from their journals: a snapshot asdr took is its own even once the
    /// volume it was taken of is gone.
    #[serde(default, skip_serializing_if = "std::collections::BTreeSet::is_empty")]
    pub recorded_snapshots: std::collections::BTreeSet<String>,
}

impl World {
    /// Whether an apply of this cluster recorded taking `s` (its journal; the snapshot carries
    /// that plan's id from its creation).
    pub fn took(&self, s: &Snapshot) -> bool {
        s.tags.get(crate::tags::PLAN).is_some_and(|plan| {
            self.recorded_snapshots
                .contains(&crate::drill::made_by(&s.id, plan))
        })
    }

    /// Whether anything observed lies outside the cluster's own region.
    pub fn has_other_regions(&self) -> bool {
        self.instances.iter().any(|i| i.region.is_some())
            || self.volumes.iter().any(|v| v.region.is_some())
            || self.snapshots.iter().any(|s| s.region.is_some())
            || self.subnets.iter().any(|s| s.region.is_some())
    }

    /// The part of the world in `region` (a resource with no region is in `home`), with the SMD
    /// archives and set manifests whose uri `store` keeps; node observations only in the home region. Copies carry the
    /// same asdr:set/node/device tags as their sources: a view of one region never mistakes
    /// another region's copy for its own snapshot.
    pub fn in_region(&self, region: &str, home: &str, store: impl Fn(&str) -> bool) -> World {
        let here = |r: &Option<String>| r.as_deref().unwrap_or(home) == region;
        World {
            now: self.now,
            instances: self
                .instances
                .iter()
                .filter(|i| here(&i.region))
                .cloned()
                .collect(),
            volumes: self
                .volumes
                .iter()
                .filter(|v| here(&v.region))
                .cloned()
                .collect(),
            snapshots: self
                .snapshots
                .iter()
                .filter(|s| here(&s.region))
                .cloned()
                .collect(),
            nodes: if region == home {
                self.nodes.clone()
            } else {
                Vec::new()
            },
            smd_archives: self
                .smd_archives
                .iter()
                .filter(|a| store(&a.uri))
                .cloned()
                .collect(),
            set_manifests: self
                .set_manifests
                .iter()
                .filter(|m| store(&m.uri))
                .cloned()
                .collect(),
            unobserved_regions: self.unobserved_regions.clone(),
            locks_unobserved: self.locks_unobserved.clone(),
            object_lock: self.object_lock.clone(),
            recycle_bin: self.recycle_bin.clone(),
            asbackup_archives: if region == home {
                self.asbackup_archives.clone()
            } else {
                Vec::new()
            },
            instance_types: self.instance_types.clone(),
            subnets: self
                .subnets
                .iter()
                .filter(|s| here(&s.region))
                .cloned()
                .collect(),
            // Observed at home only (the nodes' addresses).
            network_interfaces: if region == home {
                self.network_interfaces.clone()
            } else {
                Vec::new()
            },
            drill_resources: self.drill_resources.clone(),
            recorded_snapshots: self.recorded_snapshots.clone(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Subnet {
    pub id: String,
    /// The region it is in; none: the cluster's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    /// IPv4 range, `10.0.1.0/24`.
    pub cidr: String,
    pub availability_zone: String,
}

/// A network interface, as far as addresses go.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NetworkInterface {
    pub id: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    /// Its private IPv4 addresses, primary and secondary.
    pub private_ips: Vec<String>,
    /// `available` (attached to nothing) or `in-use`.
    pub status: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attached_to: Option<String>,
}

impl Subnet {
    /// What AWS reserves `ip` for in this subnet, if it is one of the five addresses no instance
    /// can have (Amazon VPC User Guide, "Subnet CIDR blocks": the first four and the last).
    pub fn reserved(&self, ip: std::net::Ipv4Addr) -> Option<&'static str> {
        let (net, bits) = self.cidr.split_once('/')?;
        let (net, bits) = (
            net.parse::<std::net::Ipv4Addr>().ok()?,
            bits.parse::<u32>().ok()?,
        );
        if !(1..=28).contains(&bits) || !self.contains(ip) {
            return None;
        }
        let first = u32::from(net) & (u32::MAX << (32 - bits));
        let last = first | !(u32::MAX << (32 - bits));
        match u32::from(ip) {
            a if a == first => Some("the network address"),
            a if a == first + 1 => Some("the VPC router"),
            a if a == first + 2 => Some("the Amazon DNS server"),
            a if a == first + 3 => Some("future use"),
            a if a == last => Some("the broadcast address"),
            _ => None,
        }
    }

    /// Whether `ip` lies in this subnet's range (false when the range does not parse).
    pub fn contains(&self, ip: std::net::Ipv4Addr) -> bool {
        let Some((net, bits)) = self.cidr.split_once('/') else {
            return false;
        };
        let (Ok(net), Ok(bits)) = (net.parse::<std::net::Ipv4Addr>(), bits.parse::<u32>()) else {
            return false;
        };
        if bits > 32 {
            return false;
        }
        let mask = if bits == 0 {
            0
        } else {
            u32::MAX << (32 - bits)
        };
        u32::from(ip) & mask == u32::from(net) & mask
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum InstanceState {
    Pending,
    Running,
    ShuttingDown,
    Terminated,
    Stopping,
    Stopped,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Instance {
    pub id: String,
    /// The region it is in; none: the cluster's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub state: InstanceState,
    #[serde(rename = "type")]
    pub instance_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub private_ip: Option<String>,
    pub availability_zone: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subnet_id: Option<String>,
    #[serde(default)]
    pub instance_store_drives: u32,
    /// The root volume's device (EC2's RootDeviceName): never a data volume.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub root_device: Option<String>,
    #[serde(default)]
    pub block_devices: Vec<BlockDevice>,
    #[serde(default)]
    pub tags: Tags,
    /// Why EC2 says it is in its state (StateReason), e.g. why a launch ended at once.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_reason: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BlockDevice {
    pub device_name: String,
    pub volume_id: String,
    #[serde(default)]
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum VolumeState {
    Creating,
    Available,
    InUse,
    Deleting,
    Deleted,
    Error,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Volume {
    pub id: String,
    /// The region it is in; none: the cluster's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub availability_zone: String,
    pub size_gib: u32,
    #[serde(rename = "type")]
    pub volume_type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub iops: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub throughput: Option<u32>,
    pub state: VolumeState,
    /// The snapshot the volume was created from, if any: how a restore recognises its own work.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub snapshot_id: Option<String>,
    /// EBS encryption at rest, and the KMS key (ARN or id) when encrypted.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    #[serde(default)]
    pub attachments: Vec<Attachment>,
    #[serde(default)]
    pub tags: Tags,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AttachmentState {
    Attaching,
    Attached,
    Detaching,
    Detached,
    Busy,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Attachment {
    pub instance_id: String,
    pub device: String,
    pub state: AttachmentState,
    #[serde(default)]
    pub delete_on_termination: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SnapshotState {
    Pending,
    Completed,
    Error,
    Recoverable,
    Recovering,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Snapshot {
    pub id: String,
    /// The region it is in; none: the cluster's own region.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub region: Option<String>,
    pub volume_id: String,
    #[serde(default)]
    pub volume_size_gib: u32,
    pub state: SnapshotState,
    /// Percent done, 0–100 (EC2 reports "42%").
    #[serde(default = "hundred")]
    pub progress: u8,
    #[serde(with = "time::serde::rfc3339")]
    pub start_time: OffsetDateTime,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub encrypted: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kms_key_id: Option<String>,
    /// Why a snapshot or copy is in `error` (EC2's StateMessage: a KMS key it may not use…).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub state_message: Option<String>,
    #[serde(default)]
    pub tags: Tags,
    /// Its EBS snapshot lock (DescribeLockedSnapshots); none: not locked, or its lock expired.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub lock: Option<SnapshotLock>,
    /// Fast Snapshot Restore by zone (DescribeFastSnapshotRestores): `enabling`, `optimizing`,
    /// `enabled`, `disabling`; a zone absent is disabled.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub fast_restore: BTreeMap<String, String>,
}

/// A Recycle Bin retention rule for EBS snapshots: tag-level (it keeps deleted snapshots carrying
/// any of `tags`) or Region-level (no `tags`: it keeps every deleted snapshot but those carrying
/// any of `exclude_tags`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RecycleRule {
    pub id: String,
    pub retention_days: u32,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub exclude_tags: BTreeMap<String, String>,
    /// Locked: it cannot be changed or deleted before its unlock delay has run.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub locked: bool,
}

/// An EBS snapshot lock: the snapshot cannot be deleted until `expires` (docs/immutability.md).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SnapshotLock {
    pub mode: asdr_specs::LockMode,
    #[serde(with = "time::serde::rfc3339")]
    pub expires: OffsetDateTime,
    /// A compliance lock's cooling-off period ends then: until that time the lock may still be
    /// changed or removed; after it, no one can.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub cool_off_until: Option<OffsetDateTime>,
}

impl SnapshotLock {
    /// Whether the snapshot cannot be deleted at `now`.
    pub fn holds(&self, now: OffsetDateTime) -> bool {
        self.expires > now
    }

    /// Whether the lock can no longer be removed or shortened by anyone (compliance, past its
    /// cool-off).
    pub fn is_final(&self, now: OffsetDateTime) -> bool {
        self.mode == asdr_specs::LockMode::Compliance
            && self.cool_off_until.is_none_or(|c| c <= now)
            && self.holds(now)
    }
}

fn hundred() -> u8 {
    100
}

/// One Aerospike node as its info port answered (or did not).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct NodeObservation {
    /// The policy's node name.
    pub name: String,
    pub reachable: bool,
    /// The `edition` reply, e.g. `Aerospike Enterprise Edition`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub edition: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub build: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub node_id: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_size: Option<u32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_key: Option<String>,
    #[serde(default)]
    pub quiesced: bool,
    #[serde(default)]
    pub migrations_remaining: u64,
    #[serde(default)]
    pub dead_partitions: u64,
    #[serde(default)]
    pub unavailable_partitions: u64,
    /// Devices per namespace as `get-config:context=namespace;id=NS` reports them.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<ObservedNamespace>,
    /// The node's current aerospike.conf.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<String>,
    /// The backup set whose SMD archive was last put back into the node's work directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub smd_restored_from: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedNamespace {
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replication_factor: Option<u32>,
    /// `rack-id` from the namespace's config (Enterprise; 0: not rack-aware).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub rack_id: Option<u32>,
    /// `strong-consistency` from the namespace's config (Enterprise).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub strong_consistency: bool,
    /// Strong consistency: the active roster (`roster:namespace=NS`), node ids.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub roster: Vec<String>,
    /// Strong consistency: the nodes the namespace sees (`observed_nodes`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub observed_nodes: Vec<String>,
    /// This namespace's share of the node's `dead_partitions` / `unavailable_partitions`.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub dead_partitions: u64,
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub unavailable_partitions: u64,
    #[serde(default)]
    pub devices: Vec<ObservedDevice>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ObservedDevice {
    pub device: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shadow: Option<String>,
}

/// An archive of one node's `<work_directory>/smd` in the SMD store, for one backup set (R2).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmdArchive {
    pub set: String,
    pub node: String,
    pub uri: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sha256: Option<String>,
}

/// The output of one `asbackup` run (one namespace) for a set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AsbackupArchive {
    pub set: String,
    pub namespace: String,
    /// The directory the run wrote: `<asbackup.to>/<set>/<namespace>`. Listed only once asdr's
    /// manifest is in it (the run finished).
    pub uri: String,
    /// For an incremental backup: the full set its chain starts from.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub incremental_of: Option<String>,
    /// The cluster its manifest names; none for a manifest written before manifests named it
    /// (adopted only while no set in the store names another cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    /// The cluster id its manifest names; none for a manifest written before ids.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster_id: Option<String>,
    /// For an incremental: the set of its chain it follows (what its `--modified-after` was
    /// taken from). A chain whose link is gone is not replayed past it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub after: Option<String>,
    /// Files the manifest counts that are no longer in the directory: the run is damaged.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub missing_files: u32,
    /// When the run finished (UTC, from its manifest's name): asbackup scans while the cluster
    /// takes writes, so a run holds records written up to this moment. None for a manifest
    /// written before names said it.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub finished: Option<OffsetDateTime>,
    /// How the run's files are compressed (`zstd`, `none`) and encrypted (`aes128`, `aes256`,
    /// `none`), from its manifest's name: asrestore is told the same, whatever the policy says
    /// now. None for a manifest written before names said it (the policy's are used).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compress: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub encrypt: Option<String>,
    /// The S3 Object Lock retention its manifest holds, as observed (HeadObject): a set whose
    /// retention still runs is never deleted, whatever the policy says now (R20).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<crate::params::Retention>,
}

fn is_zero(n: &u32) -> bool {
    *n == 0
}

fn is_zero_u64(n: &u64) -> bool {
    *n == 0
}

/// The asbackup runs in the store that are `cluster`'s: those whose manifest names it, and
/// (written before manifests named their cluster) those naming none, while no run in the store
/// names another cluster and only when older than this cluster's first named run: once it
/// names itself, an unnamed run after that is another cluster's, still writing the old way
/// (R13).
pub fn asbackup_runs_of<'w>(
    all: &'w [AsbackupArchive],
    cluster: &str,
) -> impl Iterator<Item = &'w AsbackupArchive> {
    let foreign_here = all
        .iter()
        .any(|o| o.cluster.as_deref().is_some_and(|c| c != cluster));
    // Set ids are `bs-<UTC time>`: they order as times.
    let first_named = all
        .iter()
        .filter(|o| o.cluster.as_deref() == Some(cluster))
        .map(|o| o.set.as_str())
        .min();
    all.iter().filter(move |a| match &a.cluster {
        Some(c) => c == cluster,
        None => !foreign_here && first_named.is_none_or(|f| a.set.as_str() < f),
    })
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InstanceType {
    pub instance_store_drives: u32,
}

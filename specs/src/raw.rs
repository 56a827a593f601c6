//! The policy file as written: serde types that mirror POLICY.md key for key. Nothing outside this
//! crate sees them; `validate` turns them into the checked model. Their JSON Schema is `asdr schema`.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;

use crate::model::{Consistency, Edition, Method, Scope, Transport};
use crate::span::Sp;

/// An asdr policy file (`asdr.yaml`): one Aerospike cluster, its backup policy and its declared restores.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "asdr policy")]
pub struct RawPolicy {
    /// Format version of this file; only 1 exists.
    pub version: Sp<u32>,
    pub cluster: RawCluster,
    pub backup: RawBackup,
    /// Restores that may be planned with `asdr plan --restore NAME`. Nothing restores by itself.
    #[serde(default)]
    pub restores: Vec<RawRestore>,
    /// Disaster-recovery drills: a declared restore replayed into an isolated target, validated,
    /// timed and torn down.
    #[serde(default)]
    pub drills: Vec<RawDrill>,
    /// Where applies of this cluster take their lock: `s3://bucket/key` for a team (a conditional
    /// put), or `file:///path`. Default: `.asdr/locks/<cluster>.lock` beside the policy file.
    #[serde(default)]
    pub lock: Option<Sp<String>>,
    /// An S3 lock whose holder has not renewed it for this long (`6h`) is broken by the next
    /// apply. Without it a stale lock is only reported, and broken with `--break-lock`.
    #[serde(default)]
    pub lock_expiry: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCluster {
    /// `[a-z0-9-]+`; used in the `asdr:cluster` tag and in names.
    pub name: Sp<String>,
    /// The cluster's id (`asdr:cluster-id`, 16 hex digits), when stated: it wins over what the
    /// instances carry or the stores record, and a node instance carrying another is refused.
    /// Optional: asdr mints and claims one on the first apply; state it to settle an ambiguity
    /// (a store shared with a same-named cluster, every instance gone).
    #[serde(default)]
    pub id: Option<Sp<String>>,
    pub region: Sp<String>,
    /// Checked against each node's `edition` reply (R9).
    pub edition: Sp<Edition>,
    /// Aerospike info/service port (default 3000).
    #[serde(default)]
    pub info_port: Option<Sp<u16>>,
    /// True when every delete the applications issue is durable (Enterprise); see R6.
    #[serde(default)]
    pub durable_deletes: Option<Sp<bool>>,
    /// SMD lives in `<work_directory>/smd` (R10). Default `/opt/aerospike`. A per-node template.
    #[serde(default)]
    pub work_directory: Option<Sp<String>>,
    pub access: RawAccess,
    pub service: RawService,
    pub config: RawConfig,
    pub namespaces: Sp<Vec<RawNamespace>>,
    /// Rack-aware clusters (Enterprise `rack-id`): the rack of each availability zone's nodes,
    /// e.g. `{us-east-1a: 1, us-east-1b: 2}`. A replacement keeps its node's rack.
    #[serde(default)]
    pub racks: Option<Sp<std::collections::BTreeMap<String, Sp<u32>>>>,
    pub instance: RawInstance,
    pub nodes: Sp<Vec<RawNode>>,
}

/// How asdr runs commands and moves files on a node.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAccess {
    pub transport: Sp<Transport>,
    #[serde(default)]
    pub ssh: Option<Sp<RawSsh>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSsh {
    pub user: Sp<String>,
    #[serde(default)]
    pub port: Option<u16>,
    #[serde(default)]
    pub identity_file: Option<String>,
    /// A known-hosts file pinned for the cluster: only its keys are trusted (none on first
    /// contact).
    #[serde(default)]
    pub known_hosts: Option<String>,
}

/// Shell commands run on a node through the transport (per-node templates).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawService {
    pub stop: Sp<String>,
    pub start: Sp<String>,
    /// Enterprise: the command that starts Aerospike **cold**, reading its devices instead of
    /// reattaching the index in shared memory (`asd-coldstart` with systemd, `service aerospike
    /// coldstart` with SysV). Every start after a volume swap or an SMD restore on the same
    /// instance uses it; required on Enterprise when a restore can swap volumes in place.
    #[serde(default)]
    pub cold_start: Option<Sp<String>>,
}

/// aerospike.conf of a (replacement) node, rendered with minijinja.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawConfig {
    /// Path of the minijinja template, relative to the policy file.
    pub template: Sp<String>,
    /// Where aerospike.conf lives on the node (a per-node template).
    pub path: Sp<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNamespace {
    pub name: Sp<String>,
    pub replication_factor: Sp<u32>,
    /// `strong-consistency true` in aerospike.conf (Enterprise): restores keep the roster whole
    /// and wait until no partition is unavailable (R19).
    #[serde(default)]
    pub strong_consistency: Option<Sp<bool>>,
    /// One entry per storage-engine `device` line.
    pub devices: Sp<Vec<RawDevice>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDevice {
    /// The device path as aerospike.conf names it.
    pub device: Sp<String>,
    /// The EBS shadow device: authoritative on cold start (R5); this is what is backed up.
    #[serde(default)]
    pub shadow: Option<Sp<String>>,
    /// The EBS attachment name of the backed-up volume. Defaults to the shadow's path, else the device's.
    #[serde(default)]
    pub ebs: Option<Sp<String>>,
}

/// Defaults for replacement instances (R4).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawInstance {
    #[serde(rename = "type")]
    pub instance_type: Sp<String>,
    pub ami: Sp<String>,
    /// One subnet per availability zone the nodes use.
    pub subnets: Sp<BTreeMap<String, String>>,
    #[serde(default)]
    pub security_groups: Vec<String>,
    #[serde(default)]
    pub iam_instance_profile: Option<String>,
    #[serde(default)]
    pub key_name: Option<String>,
    /// A replacement type must offer at least this many ephemeral drives.
    #[serde(default)]
    pub instance_store_volumes: Option<Sp<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawNode {
    pub name: Sp<String>,
    /// Optional; otherwise the instance is found by tag `asdr:node=<name>`.
    #[serde(default)]
    pub instance_id: Option<Sp<String>>,
    /// Pins the node's Aerospike id (`node-id` in the service context, 1–16 hex digits): a
    /// replacement must render it, so it rejoins as the same node (R18).
    #[serde(default)]
    pub node_id: Option<Sp<String>>,
    pub private_ip: Sp<String>,
    pub availability_zone: Sp<String>,
    /// The node's rack when it is not its zone's in `racks`: a rack rebuilt in another zone
    /// after a zone loss keeps its id there (R4).
    #[serde(default)]
    pub rack: Option<Sp<u32>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawBackup {
    pub method: Sp<Method>,
    /// How snapshots of several volumes are made consistent (R1, R9).
    pub consistency: Sp<Consistency>,
    /// A complete backup set younger than this must exist (`30s`, `15m`, `24h`, `7d`).
    pub every: Sp<String>,
    pub retain: Sp<RawRetain>,
    pub smd: RawSmd,
    /// Nodes quiesced or stopped at the same time; at most replication_factor - 1 (R8). Default 1.
    /// `rack`: one whole rack at a time (rack-aware clusters).
    #[serde(default)]
    pub max_nodes_at_once: Option<Sp<MaxAtOnce>>,
    /// Added to every resource asdr creates.
    #[serde(default)]
    pub tags: Option<Sp<BTreeMap<Sp<String>, String>>>,
    /// minijinja template with `cluster`, `node`, `device`, `set`.
    #[serde(default)]
    pub snapshot_description: Option<Sp<String>>,
    /// Used when method is asbackup.
    #[serde(default)]
    pub asbackup: Option<Sp<RawAsbackup>>,
    /// Acknowledges R6 for `consistency: stop-node` (each bounce is a cold start).
    #[serde(default)]
    pub accept_zombie_records: Option<Sp<bool>>,
    /// Copies of every backup set in other regions (docs/regions.md).
    #[serde(default)]
    pub copies: Option<Sp<Vec<Sp<RawCopy>>>>,
    /// Snapshot locks: every snapshot of a set locked once the set is whole, before it is
    /// marked complete; a locked set is never deleted (docs/immutability.md).
    #[serde(default)]
    pub lock: Option<Sp<RawLock>>,
    /// `newest`: Fast Snapshot Restore kept on for the newest complete set's snapshots, each in
    /// its node's zone, and off for every older set: a replacement never waits on lazy loading.
    #[serde(default)]
    pub fast_restore: Option<Sp<crate::model::FastRestoreKeep>>,
}

/// An EBS snapshot lock on every snapshot of a set.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawLock {
    /// `governance` (a user allowed `ec2:UnlockSnapshot` can unlock) or `compliance` (no one
    /// can, once the cool-off has passed).
    pub mode: Sp<crate::model::LockMode>,
    /// How long each set stays locked, counted from the set's time (`30d`): 2 to 36500 days.
    pub duration: Sp<String>,
    /// Compliance only: how long after locking the lock may still be changed or removed, whole
    /// hours from `1h` to `72h` (none: final at once).
    #[serde(default)]
    pub cool_off: Option<Sp<String>>,
}

/// A copy of every backup set in another region: each snapshot copied there, the SMD archive
/// copied beside it, the set marked complete there once whole.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawCopy {
    /// The destination region, e.g. `us-west-2` (not the cluster's own).
    pub region: Sp<String>,
    /// Retention in that region; defaults to `backup.retain`.
    #[serde(default)]
    pub retain: Option<Sp<RawRetain>>,
    /// Copies are encrypted with this KMS key of the destination region.
    #[serde(default)]
    pub kms_key_id: Option<Sp<String>>,
    /// Where the set's SMD archive is copied (`s3://bucket/prefix` or `file:///directory`).
    pub smd_to: Sp<String>,
    /// Snapshot copies in flight to this region at once (AWS limits concurrent copies per
    /// destination region). Default 5.
    #[serde(default)]
    pub max_in_flight: Option<Sp<u32>>,
    /// Locks on the copies in that region; defaults to `backup.lock`.
    #[serde(default)]
    pub lock: Option<Sp<RawLock>>,
    /// A separate backup account (12 digits) the copies are made in, by `role_arn`: the
    /// workload account's own credentials can then delete none of them (docs/immutability.md).
    #[serde(default)]
    pub account: Option<Sp<String>>,
    /// The backup account's role asdr assumes (STS AssumeRole) to copy, lock, keep and delete
    /// there: `arn:aws:iam::ACCOUNT:role/NAME`. Required with `account`.
    #[serde(default)]
    pub role_arn: Option<Sp<String>>,
    /// The external id the role's trust policy requires, if any.
    #[serde(default)]
    pub external_id: Option<Sp<String>>,
    /// Time-based copies: each snapshot copy completes within this duration (15m to 48h, in
    /// steps of 15 minutes; CopySnapshot's CompletionDurationMinutes), billed per GiB copied.
    #[serde(default)]
    pub complete_within: Option<Sp<String>>,
}

/// Keep the newest `count` complete sets, and none older than `max_age`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRetain {
    #[serde(default)]
    pub count: Option<Sp<u32>>,
    #[serde(default)]
    pub max_age: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawSmd {
    /// `s3://bucket/prefix` or `file:///directory` (R2).
    pub to: Sp<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawAsbackup {
    /// `file:///directory` or `s3://bucket/prefix`: sets go to `<to>/<set>/<namespace>/`.
    pub to: Sp<String>,
    /// Where asbackup and asrestore run: on a node through the transport (default), or on the
    /// machine running asdr (they are clients of the cluster).
    #[serde(default)]
    pub run_on: Option<Sp<crate::model::RunOn>>,
    /// `zstd`: compress the backup files.
    #[serde(default)]
    pub compress: Option<Sp<crate::model::Compress>>,
    /// Encrypt the backup files with a key file (where the tool runs).
    #[serde(default)]
    pub encrypt: Option<Sp<RawEncrypt>>,
    /// Incremental backups (records changed since the previous set) this often between full ones.
    #[serde(default)]
    pub incremental_every: Option<Sp<String>>,
    /// Further arguments for asbackup (only asbackup: its options are not asrestore's), each an
    /// asbackup option asdr does not set itself.
    #[serde(default)]
    pub args: Option<Sp<Vec<String>>>,
    /// Further arguments for asrestore, each an asrestore option asdr does not set itself.
    #[serde(default)]
    pub restore_args: Option<Sp<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawEncrypt {
    pub algorithm: Sp<crate::model::EncryptAlgorithm>,
    pub key_file: Sp<String>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRestore {
    pub name: Sp<String>,
    pub scope: Sp<Scope>,
    /// The nodes a `scope: node` restore concerns.
    #[serde(default)]
    pub nodes: Option<Sp<Vec<Sp<String>>>>,
    /// `current-volumes` | `empty` | `latest-backup` | `set:<set id>` | `before:<RFC 3339 time>`.
    pub source: Sp<String>,
    /// Acknowledges R6: a node that missed deletes brings them back on cold start.
    #[serde(default)]
    pub accept_zombie_records: Option<Sp<bool>>,
    /// Strong consistency (R19): dead partitions found during or after this restore are revived
    /// (`revive:`), accepting that their latest writes may be lost. Refused otherwise.
    #[serde(default)]
    pub accept_dead_partitions: Option<Sp<bool>>,
    /// Volumes created from snapshots.
    #[serde(default)]
    pub volume: Option<Sp<RawVolume>>,
    /// Restore from the copies in this region (one of `backup.copies`), into `target`.
    #[serde(default)]
    pub region: Option<Sp<String>>,
    /// Where a restore with `region` builds the cluster: that region's subnets, addresses,
    /// security groups and AMI.
    #[serde(default)]
    pub target: Option<Sp<RawRestoreTarget>>,
    /// With `region`: restore from the copies in this backup account (`backup.copies[].account`)
    /// and build the cluster inside it, through its role (the workload account may be the one
    /// lost). `target` then names that account's subnets, security groups and AMI.
    #[serde(default)]
    pub account: Option<Sp<String>>,
    /// A zone-loss restore: the restore's nodes rebuilt in another availability zone of the
    /// cluster's region, keeping their racks and node ids.
    #[serde(default)]
    pub zone: Option<Sp<RawZoneMove>>,
    /// The restore's time objective (e.g. `30m`): the plan and `drill --check` estimate the
    /// restore by phase and warn when the estimate exceeds it (docs/rto.md).
    #[serde(default)]
    pub rto: Option<Sp<String>>,
}

/// `restores[].zone`: where the nodes of a lost zone are rebuilt.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawZoneMove {
    /// The zone they go to: one of `cluster.instance.subnets`.
    pub to: Sp<String>,
    /// Node name → its private IP in that zone's subnet (every node of the restore).
    pub private_ips: Sp<BTreeMap<String, String>>,
}

/// A new cluster in another region: subnets by that region's availability zones (each node goes
/// to the zone with its own zone's letter), addresses, security groups and an AMI of that region.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawRestoreTarget {
    pub subnets: Sp<BTreeMap<String, String>>,
    /// Node name → its private IP there.
    #[serde(default)]
    pub private_ips: Option<Sp<BTreeMap<String, String>>>,
    /// Or: each node's production IP plus this offset in the last octet.
    #[serde(default)]
    pub ip_offset: Option<Sp<u8>>,
    pub security_groups: Sp<Vec<String>>,
    /// AMIs are regional.
    pub ami: Sp<String>,
    /// Defaults to `cluster.instance.type`.
    #[serde(rename = "type", default)]
    pub instance_type: Option<Sp<String>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawVolume {
    #[serde(rename = "type", default)]
    pub volume_type: Option<Sp<String>>,
    #[serde(default)]
    pub iops: Option<u32>,
    #[serde(default)]
    pub throughput: Option<u32>,
    /// MiB/s, 100 to 300 (EBS volume initialization rate).
    #[serde(default)]
    pub initialization_rate: Option<Sp<u32>>,
    /// Fast Snapshot Restore: enabled for the set's snapshots in the restore's zones before its
    /// volumes are created (they are then initialised at creation), disabled after. Not with
    /// `initialization_rate`.
    #[serde(default)]
    pub fast_snapshot_restore: Option<Sp<bool>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrill {
    pub name: Sp<String>,
    /// The declared restore to replay (it must restore from a backup).
    pub restore: Sp<String>,
    pub target: Sp<RawDrillTarget>,
    #[serde(default)]
    pub validations: Option<RawValidations>,
    /// How long the drill may take before it is stopped and torn down (default 4h).
    #[serde(default)]
    pub deadline: Option<Sp<String>>,
    /// `always` (default), `on-success` or `never`.
    #[serde(default)]
    pub teardown: Option<Sp<crate::model::Teardown>>,
}

/// Where the drill's nodes go: never production's addresses.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawDrillTarget {
    /// One subnet per availability zone the nodes use.
    pub subnets: Sp<BTreeMap<String, String>>,
    /// Node name → the drill node's private IP.
    #[serde(default)]
    pub private_ips: Option<Sp<BTreeMap<String, String>>>,
    /// Or: each node's production IP plus this offset in the last octet.
    #[serde(default)]
    pub ip_offset: Option<Sp<u8>>,
    /// The drill's own security groups (none of production's): its nodes cannot reach production.
    #[serde(default)]
    pub security_groups: Option<Sp<Vec<String>>>,
}

#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct RawValidations {
    /// Namespace → the least number of objects it must report after the restore.
    #[serde(default)]
    pub min_objects: BTreeMap<String, u64>,
    /// SMD definitions that must be present: `sindex`, `udf`.
    #[serde(default)]
    pub smd: Vec<Sp<String>>,
}

/// `max_nodes_at_once`: a count, or `rack` (one whole rack at a time).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MaxAtOnce {
    Nodes(u32),
    Rack,
}

impl<'de> Deserialize<'de> for MaxAtOnce {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = MaxAtOnce;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a whole number of nodes, or `rack`")
            }
            fn visit_u64<E: serde::de::Error>(self, v: u64) -> Result<MaxAtOnce, E> {
                u32::try_from(v)
                    .map(MaxAtOnce::Nodes)
                    .map_err(|_| E::custom("a whole number of nodes, or `rack`"))
            }
            fn visit_i64<E: serde::de::Error>(self, v: i64) -> Result<MaxAtOnce, E> {
                u64::try_from(v)
                    .map_err(|_| E::custom("a whole number of nodes, or `rack`"))
                    .and_then(|v| self.visit_u64(v))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<MaxAtOnce, E> {
                match v {
                    "rack" => Ok(MaxAtOnce::Rack),
                    other => Err(E::custom(format!(
                        "`{other}`: expected a whole number of nodes, or `rack`"
                    ))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

impl JsonSchema for MaxAtOnce {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "MaxAtOnce".into()
    }
    fn json_schema(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
        schemars::json_schema!({
            "description": "Nodes taken out at once (R8): a number, or `rack` for one whole rack at a time.",
            "anyOf": [
                {"type": "integer", "minimum": 1},
                {"const": "rack"}
            ]
        })
    }
}

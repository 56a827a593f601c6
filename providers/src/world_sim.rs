//! What each step does to a world: EC2's and Aerospike's semantics, as pure functions on `World`,
//! so the world-file provider behaves like the real thing, errors included:
//! `InvalidIPAddress.InUse` while the old instance holds the address, attach across AZs or onto a
//! used device name refused, DeleteOnTermination volumes deleted with their instance, snapshots
//! `pending` for a few polls, migrations that drain over polls after a node starts.
//!
//! Resources are found again by `asdr:plan` + `asdr:step` tags (EC2's client-token idempotency,
//! for every kind), and their ids derive from the plan and step, so a resumed apply makes the same
//! ids an uninterrupted one would.

use std::collections::BTreeMap;
use std::time::Duration;

use asdr_planner::StepKind;
use asdr_planner::ports::{Progress, Resources, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::*;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

/// How the simulated cloud and nodes behave (a test and rehearsal aid; see docs/world-file.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Simulation {
    /// Polls a new snapshot stays `pending` before `completed`.
    pub snapshot_polls: u32,
    /// Polls of `wait_cluster_stable` before migrations drain after a node starts.
    pub migration_polls: u32,
    /// Added to every provider call, like a network round trip.
    pub latency_ms: u64,
    /// How long the executor waits between polls of a pending step.
    pub poll_interval_ms: u64,
    /// How long transient errors ask to wait before a retry.
    pub retry_ms: u64,
    pub faults: Vec<Fault>,
}

impl Default for Simulation {
    fn default() -> Self {
        Simulation {
            snapshot_polls: 2,
            migration_polls: 1,
            latency_ms: 0,
            poll_interval_ms: 2,
            retry_ms: 2,
            faults: Vec::new(),
        }
    }
}

/// Make step `step` (an id, or a prefix ending in `*`) fail `times` times (absent: always).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Fault {
    pub step: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub times: Option<u32>,
    #[serde(default = "default_fault_code")]
    pub code: String,
    #[serde(default)]
    pub transient: bool,
}

fn default_fault_code() -> String {
    "InternalError".into()
}

impl Fault {
    pub fn matches(&self, step: &str) -> bool {
        match self.step.strip_suffix('*') {
            Some(prefix) => step.starts_with(prefix),
            None => step == self.step,
        }
    }
}

#[derive(Debug)]
pub struct Ctx<'a> {
    pub cluster: &'a str,
    pub sim: &'a Simulation,
}

fn token(plan_id: &str, step: &str, extra: &str) -> String {
    let h = Sha256::digest(format!("{plan_id}\0{step}\0{extra}").as_bytes());
    h.iter()
        .take(9)
        .map(|b| format!("{b:02x}"))
        .collect::<String>()[..17]
        .to_string()
}

fn bad(code: &str, message: impl Into<String>) -> StepError {
    StepError::permanent(code, message)
}

fn need(input: &StepInput<'_>, name: &str, key: &str) -> Result<String, StepError> {
    input.param_str(name, key).ok_or_else(|| {
        bad(
            "MissingParameter",
            format!("step {} has no `{name}`", input.step.id),
        )
    })
}

fn node_name(input: &StepInput<'_>) -> Result<String, StepError> {
    input.step.node.clone().ok_or_else(|| {
        bad(
            "MissingParameter",
            format!("step {} names no node", input.step.id),
        )
    })
}

fn created_tags(input: &StepInput<'_>, extra: &[(&str, &str)]) -> Tags {
    input.created_tags(extra)
}

fn made_by(t: &Tags, input: &StepInput<'_>) -> bool {
    t.get(tags::PLAN).map(String::as_str) == Some(input.plan_id)
        && t.get(tags::STEP) == Some(&input.step.id)
}

fn node_mut<'w>(world: &'w mut World, name: &str) -> &'w mut NodeObservation {
    if let Some(i) = world.nodes.iter().position(|n| n.name == name) {
        return &mut world.nodes[i];
    }
    world.nodes.push(NodeObservation {
        name: name.into(),
        ..NodeObservation::default()
    });
    world.nodes.last_mut().expect("just pushed")
}

fn address_ip(input: &StepInput<'_>) -> Option<String> {
    input
        .param_str("address", "")
        .and_then(|a| a.split(':').next().map(str::to_string))
}

/// The live instance of a node: the one holding its address, else the one tagged for it.
fn live_instance<'w>(
    world: &'w World,
    cx: &Ctx<'_>,
    node: &str,
    ip: Option<&str>,
) -> Option<&'w Instance> {
    let live = |i: &&Instance| matches!(i.state, InstanceState::Running | InstanceState::Pending);
    world
        .instances
        .iter()
        .filter(live)
        .find(|i| ip.is_some() && i.private_ip.as_deref() == ip)
        .or_else(|| {
            world.instances.iter().filter(live).find(|i| {
                i.tags.get(tags::NODE).map(String::as_str) == Some(node)
                    && i.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
            })
        })
}

/// Cluster membership follows the nodes that answer: every change reclusters.
fn recluster(world: &mut World) {
    let clusters: std::collections::BTreeSet<String> = world
        .nodes
        .iter()
        .map(|n| cluster_of(&n.name).to_string())
        .collect();
    for cluster in clusters {
        let mut up: Vec<&str> = world
            .nodes
            .iter()
            .filter(|n| n.reachable && cluster_of(&n.name) == cluster)
            .map(|n| n.name.as_str())
            .collect();
        up.sort();
        let key: String = Sha256::digest(up.join(",").as_bytes())
            .iter()
            .take(6)
            .map(|b| format!("{b:02X}"))
            .collect();
        let size = up.len() as u32;
        for n in world
            .nodes
            .iter_mut()
            .filter(|n| cluster_of(&n.name) == cluster)
        {
            if n.reachable {
                n.cluster_size = Some(size);
                n.cluster_key = Some(key.clone());
            } else {
                n.cluster_size = None;
                n.cluster_key = None;
                n.migrations_remaining = 0;
            }
        }
    }
}

/// What a node reports for its namespaces is what its aerospike.conf says.
fn namespaces_of(config: &str) -> Vec<ObservedNamespace> {
    let mut out: Vec<ObservedNamespace> = Vec::new();
    for line in config.lines().map(str::trim) {
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["namespace", name, "{"] => out.push(ObservedNamespace {
                name: (*name).into(),
                replication_factor: None,
                devices: Vec::new(),
            }),
            ["replication-factor", n] => {
                if let Some(ns) = out.last_mut() {
                    ns.replication_factor = n.parse().ok();
                }
            }
            ["device", dev] | ["file", dev] => {
                if let Some(ns) = out.last_mut() {
                    ns.devices.push(ObservedDevice {
                        device: (*dev).into(),
                        shadow: None,
                    });
                }
            }
            ["device", dev, shadow] | ["file", dev, shadow] => {
                if let Some(ns) = out.last_mut() {
                    ns.devices.push(ObservedDevice {
                        device: (*dev).into(),
                        shadow: Some((*shadow).into()),
                    });
                }
            }
            _ => {}
        }
    }
    out
}

/// The cluster a node belongs to: a drill's stand-ins (`a1@quarterly`) form their own.
fn cluster_of(name: &str) -> &str {
    name.split_once('@').map_or("", |(_, drill)| drill)
}

/// Why the cluster of `nodes` (or production's, when none are named) is not stable at `size`.
fn cluster_unstable(world: &World, size: usize, nodes: Option<&[String]>) -> Option<String> {
    let member = |n: &NodeObservation| match nodes {
        Some(names) if !names.is_empty() => names.contains(&n.name),
        _ => cluster_of(&n.name).is_empty(),
    };
    let up: Vec<&NodeObservation> = world
        .nodes
        .iter()
        .filter(|n| n.reachable && member(n))
        .collect();
    if let Some(names) = nodes
        && let Some(missing) = names
            .iter()
            .find(|name| !up.iter().any(|n| &n.name == *name))
    {
        return Some(format!("node {missing} does not answer"));
    }
    if up.len() != size {
        return Some(format!(
            "cluster not specified size: {} of {size} nodes",
            up.len()
        ));
    }
    if let Some(n) = up.iter().find(|n| n.migrations_remaining > 0) {
        return Some(format!(
            "unstable cluster: {} has {} migrations remaining",
            n.name, n.migrations_remaining
        ));
    }
    None
}

fn list(input: &StepInput<'_>, name: &str) -> Vec<String> {
    input
        .step
        .params
        .get(name)
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        })
        .unwrap_or_default()
}

/// The volume `id`, or EC2's `InvalidVolume.NotFound`.
fn instance_mut<'w>(world: &'w mut World, id: &str) -> Result<&'w mut Instance, StepError> {
    world
        .instances
        .iter_mut()
        .find(|i| i.id == id)
        .ok_or_else(|| {
            bad(
                "InvalidInstanceID.NotFound",
                format!("instance {id} does not exist"),
            )
        })
}

fn volume_mut<'w>(world: &'w mut World, id: &str) -> Result<&'w mut Volume, StepError> {
    world
        .volumes
        .iter_mut()
        .find(|v| v.id == id)
        .ok_or_else(|| {
            bad(
                "InvalidVolume.NotFound",
                format!("volume {id} does not exist"),
            )
        })
}

fn snapshot_of<'w>(world: &'w World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<&'w Snapshot> {
    if let Some(id) = input.param_str("snapshot_id", "snapshot_id") {
        return world.snapshots.iter().find(|s| s.id == id);
    }
    let set = input.param_str("set", "")?;
    let node = input.param_str("node", "")?;
    let device = input.param_str("device", "")?;
    world.snapshots.iter().find(|s| {
        let t = |k: &str| s.tags.get(k).map(String::as_str);
        t(tags::CLUSTER) == Some(cx.cluster)
            && t(tags::SET) == Some(&set)
            && t(tags::NODE) == Some(&node)
            && t(tags::DEVICE) == Some(&device)
    })
}

/// Evidence that a step already took effect: the resources to adopt.
pub fn observe(world: &World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    let node = step.node.as_deref().unwrap_or("");
    let obs = world.nodes.iter().find(|n| n.name == node);
    let r = |pairs: &[(&str, Value)]| {
        Some(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect::<Resources>(),
        )
    };
    match step.kind {
        StepKind::Quiesce => obs.filter(|n| n.quiesced).and_then(|_| r(&[])),
        StepKind::Unquiesce => obs.filter(|n| !n.quiesced).and_then(|_| r(&[])),
        StepKind::StopNode => obs.filter(|n| !n.reachable).and_then(|_| r(&[])),
        StepKind::StartNode => obs.filter(|n| n.reachable).and_then(|_| r(&[])),
        StepKind::SnapshotInstance | StepKind::Snapshot => {
            let ids: Vec<Value> = world
                .snapshots
                .iter()
                .filter(|s| made_by(&s.tags, input))
                .map(|s| json!(s.id))
                .collect();
            (!ids.is_empty()).then(|| {
                [("snapshot_ids".to_string(), Value::Array(ids))]
                    .into_iter()
                    .collect()
            })
        }
        StepKind::WaitSnapshot => snapshot_of(world, cx, input)
            .filter(|s| s.state == SnapshotState::Completed)
            .and_then(|s| r(&[("snapshot_id", json!(s.id))])),
        StepKind::CopySmd => {
            let set = input.param_str("set", "")?;
            world
                .smd_archives
                .iter()
                .find(|a| a.set == set)
                .and_then(|a| r(&[("uri", json!(a.uri))]))
        }
        StepKind::RestoreSmd => {
            let set = input.param_str("set", "")?;
            obs.filter(|n| n.smd_restored_from.as_deref() == Some(set.as_str()))
                .and_then(|_| r(&[]))
        }
        StepKind::MarkSetComplete => {
            let set = input.param_str("set", "")?;
            let of_set: Vec<&Snapshot> = world
                .snapshots
                .iter()
                .filter(|s| {
                    s.tags.get(tags::SET) == Some(&set)
                        && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
                })
                .collect();
            (!of_set.is_empty()
                && of_set
                    .iter()
                    .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")))
            .then(Resources::new)
        }
        StepKind::DeleteSnapshot => {
            let id = input.param_str("snapshot_id", "")?;
            (!world.snapshots.iter().any(|s| s.id == id)).then(Resources::new)
        }
        StepKind::DetachVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            let inst = input.param_str("instance_id", "instance_id")?;
            let v = world.volumes.iter().find(|v| v.id == vol)?;
            (!v.attachments.iter().any(|a| a.instance_id == inst)).then(Resources::new)
        }
        StepKind::AttachVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            let inst = input.param_str("instance_id", "instance_id")?;
            let dev = input.param_str("device", "")?;
            let v = world.volumes.iter().find(|v| v.id == vol)?;
            v.attachments
                .iter()
                .any(|a| a.instance_id == inst && a.device == dev)
                .then(Resources::new)
        }
        StepKind::TerminateInstance => {
            let id = input.param_str("instance_id", "instance_id")?;
            world
                .instances
                .iter()
                .find(|i| i.id == id)
                .filter(|i| i.state == InstanceState::Terminated)
                .and_then(|_| r(&[]))
        }
        StepKind::StopInstance => {
            let id = input.param_str("instance_id", "instance_id")?;
            world
                .instances
                .iter()
                .find(|i| i.id == id)
                .filter(|i| matches!(i.state, InstanceState::Stopped | InstanceState::Terminated))
                .and_then(|_| r(&[]))
        }
        StepKind::ProvisionInstance => world
            .instances
            .iter()
            .find(|i| made_by(&i.tags, input) && i.state != InstanceState::Terminated)
            .and_then(|i| r(&[("instance_id", json!(i.id))])),
        StepKind::CreateVolume => world
            .volumes
            .iter()
            .find(|v| {
                made_by(&v.tags, input)
                    && !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting)
            })
            .and_then(|v| r(&[("volume_id", json!(v.id))])),
        StepKind::WaitVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            world
                .volumes
                .iter()
                .find(|v| v.id == vol && v.state == VolumeState::Available)
                .and_then(|_| r(&[]))
        }
        StepKind::WriteConfig => {
            let content = input.param_str("content", "")?;
            obs.filter(|n| n.config.as_deref() == Some(content.as_str()))
                .and_then(|_| r(&[]))
        }
        StepKind::Asbackup => {
            let (set, ns) = (
                input.param_str("set", "")?,
                input.param_str("namespace", "")?,
            );
            world
                .asbackup_archives
                .iter()
                .find(|a| a.set == set && a.namespace == ns)
                .and_then(|a| r(&[("uri", json!(a.uri))]))
        }
        StepKind::DeleteVolume => {
            let id = input.param_str("volume_id", "volume_id")?;
            (!world.volumes.iter().any(|v| v.id == id)).then(Resources::new)
        }
        StepKind::DeleteBackup => {
            let set = input.param_str("set", "")?;
            (!world.asbackup_archives.iter().any(|a| a.set == set)).then(Resources::new)
        }
        // Checks and waits are cheap to run again; asrestore leaves no mark to find.
        StepKind::CheckClusterStable
        | StepKind::WaitClusterStable
        | StepKind::WaitNodesStopped
        | StepKind::Asrestore => None,
    }
}

/// Carries a step out on the world (or advances a wait by one poll).
pub fn act(world: &mut World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Result<Progress, StepError> {
    let step = input.step;
    let retry = Duration::from_millis(cx.sim.retry_ms);
    match step.kind {
        StepKind::CheckClusterStable => {
            let size = step.params.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
            let nodes = list(input, "nodes");
            match cluster_unstable(world, size, Some(&nodes)) {
                None => Progress::done(&[]),
                // R14: refuse to go on.
                Some(why) => Err(bad("ERROR:7", why)),
            }
        }
        StepKind::WaitClusterStable => {
            let size = step.params.get("size").and_then(Value::as_u64).unwrap_or(0) as usize;
            let nodes = list(input, "nodes");
            match cluster_unstable(world, size, Some(&nodes)) {
                None => Progress::done(&[(
                    "cluster_key",
                    json!(world.nodes.iter().find_map(|n| n.cluster_key.clone())),
                )]),
                Some(why) => {
                    for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                        n.migrations_remaining = n.migrations_remaining.saturating_sub(1);
                    }
                    Progress::pending(why, None)
                }
            }
        }
        StepKind::WaitNodesStopped => {
            let names = list(input, "nodes");
            match world
                .nodes
                .iter()
                .find(|n| n.reachable && names.contains(&n.name))
            {
                None => Progress::done(&[]),
                Some(n) => Progress::pending(format!("{} still answers", n.name), None),
            }
        }
        StepKind::Quiesce | StepKind::Unquiesce => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            if !n.reachable {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} does not answer on its info port"),
                ));
            }
            n.quiesced = step.kind == StepKind::Quiesce;
            Progress::done(&[])
        }
        StepKind::StopNode => {
            let name = node_name(input)?;
            let n = node_mut(world, &name);
            // The edition is the software's, not the process's: it comes back as it was.
            n.reachable = false;
            n.quiesced = false;
            n.build = None;
            recluster(world);
            Progress::done(&[])
        }
        StepKind::StartNode => {
            let name = node_name(input)?;
            let ip = address_ip(input);
            let instance = live_instance(world, cx, &name, ip.as_deref()).ok_or_else(|| {
                bad(
                    "Unreachable",
                    format!(
                        "node {name} has no running instance at {}",
                        ip.unwrap_or_default()
                    ),
                )
            })?;
            let drives = instance.instance_store_drives;
            // A new instance runs the same build as its peers (a Community cluster stays
            // Community); Enterprise only when nothing says otherwise.
            let peers_edition = world
                .nodes
                .iter()
                .find_map(|n| n.edition.clone())
                .unwrap_or_else(|| "Aerospike Enterprise Edition".into());
            let n = node_mut(world, &name);
            n.reachable = true;
            n.edition = n.edition.clone().or(Some(peers_edition));
            n.build = Some("8.1.1.2".into());
            n.node_id = Some(format!(
                "BB9{:012X}",
                u64::from_str_radix(&token("node", &name, "")[..10], 16).unwrap_or(0)
                    + u64::from(drives)
            ));
            if let Some(conf) = &n.config {
                let namespaces = namespaces_of(conf);
                if !namespaces.is_empty() {
                    n.namespaces = namespaces;
                }
            }
            recluster(world);
            // A node that joins makes the cluster migrate partitions for a while.
            for n in world.nodes.iter_mut().filter(|n| n.reachable) {
                n.migrations_remaining = u64::from(cx.sim.migration_polls);
            }
            Progress::done(&[])
        }
        StepKind::SnapshotInstance | StepKind::Snapshot => {
            let volumes: Vec<(String, String)> = if step.kind == StepKind::SnapshotInstance {
                step.params
                    .get("volumes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| {
                                Some((
                                    v.get("device")?.as_str()?.to_string(),
                                    v.get("volume_id")?.as_str()?.to_string(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                vec![(
                    need(input, "device", "")?,
                    need(input, "volume_id", "volume_id")?,
                )]
            };
            let now = world.now.unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
            let mut ids = Vec::new();
            for (device, volume_id) in volumes {
                let volume = world
                    .volumes
                    .iter()
                    .find(|v| v.id == volume_id)
                    .ok_or_else(|| {
                        bad(
                            "InvalidVolume.NotFound",
                            format!("volume {volume_id} does not exist"),
                        )
                    })?;
                let id = format!("snap-{}", token(input.plan_id, &step.id, &volume_id));
                let size = volume.size_gib;
                let (encrypted, kms_key_id) = (volume.encrypted, volume.kms_key_id.clone());
                world.snapshots.push(Snapshot {
                    id: id.clone(),
                    volume_id,
                    volume_size_gib: size,
                    state: SnapshotState::Pending,
                    progress: 0,
                    start_time: now,
                    encrypted,
                    kms_key_id,
                    tags: created_tags(input, &[(tags::DEVICE, &device)]),
                });
                ids.push(json!(id));
            }
            Progress::done(&[("snapshot_ids", Value::Array(ids))])
        }
        StepKind::WaitSnapshot => {
            let polls = cx.sim.snapshot_polls.max(1);
            let id = snapshot_of(world, cx, input)
                .map(|s| s.id.clone())
                .ok_or_else(|| {
                    bad(
                        "InvalidSnapshot.NotFound",
                        format!("no snapshot for step {}", step.id),
                    )
                })?;
            let s = world
                .snapshots
                .iter_mut()
                .find(|s| s.id == id)
                .expect("found above");
            match s.state {
                SnapshotState::Completed => Progress::done(&[("snapshot_id", json!(s.id))]),
                SnapshotState::Pending => {
                    s.progress = (u32::from(s.progress) + 100_u32.div_ceil(polls)).min(100) as u8;
                    if s.progress >= 100 {
                        s.state = SnapshotState::Completed;
                    }
                    Progress::pending(format!("{} {}%", s.id, s.progress), Some(s.progress))
                }
                other => Err(bad(
                    "IncorrectState",
                    format!("snapshot {} is {other:?}", s.id),
                )),
            }
        }
        StepKind::CopySmd => {
            let set = need(input, "set", "")?;
            let uri = need(input, "to", "")?;
            let name = node_name(input)?;
            let sha = token(&set, &name, "smd");
            world.smd_archives.push(SmdArchive {
                set,
                node: name,
                uri: uri.clone(),
                sha256: Some(sha),
            });
            Progress::done(&[("uri", json!(uri))])
        }
        StepKind::RestoreSmd => {
            let set = need(input, "set", "")?;
            let from = need(input, "from", "")?;
            if !world.smd_archives.iter().any(|a| a.uri == from) {
                return Err(bad(
                    "NoSuchKey",
                    format!("SMD archive {from} is not in the store"),
                ));
            }
            node_mut(world, &node_name(input)?).smd_restored_from = Some(set);
            Progress::done(&[])
        }
        StepKind::MarkSetComplete => {
            let set = need(input, "set", "")?;
            let expected = step
                .params
                .get("snapshots")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let mine = |s: &Snapshot| {
                s.tags.get(tags::SET) == Some(&set)
                    && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
            };
            let of_set: Vec<&Snapshot> = world.snapshots.iter().filter(|s| mine(s)).collect();
            if of_set.len() < expected || of_set.iter().any(|s| s.state != SnapshotState::Completed)
            {
                return Err(bad(
                    "IncompleteSet",
                    format!(
                        "set {set} has {} snapshots, {expected} expected, not all completed",
                        of_set.len()
                    ),
                ));
            }
            if !world.smd_archives.iter().any(|a| a.set == set) {
                // With real nodes, copy_smd wrote the archive to the store, not to this file: the
                // archive it reported (a dependency of this step) is recorded as observed.
                let copied = input.learned.get(&format!("copy_smd:{set}"));
                let field = |k: &str| {
                    copied
                        .and_then(|r| r.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let Some(uri) = field("uri") else {
                    return Err(bad(
                        "IncompleteSet",
                        format!("set {set} has no SMD archive (R2)"),
                    ));
                };
                let (node, sha256) = (field("node").unwrap_or_default(), field("sha256"));
                world.smd_archives.push(SmdArchive {
                    set: set.clone(),
                    node,
                    uri,
                    sha256,
                });
            }
            for s in world.snapshots.iter_mut().filter(|s| mine(s)) {
                s.tags.insert(tags::COMPLETE.into(), "true".into());
            }
            Progress::done(&[])
        }
        StepKind::DeleteSnapshot => {
            let id = need(input, "snapshot_id", "")?;
            let Some(i) = world.snapshots.iter().position(|s| s.id == id) else {
                return Progress::done(&[]);
            };
            if world.snapshots[i]
                .tags
                .get(tags::CLUSTER)
                .map(String::as_str)
                != Some(cx.cluster)
            {
                return Err(bad(
                    "R13",
                    format!(
                        "snapshot {id} is not tagged asdr:cluster={}: asdr does not delete it",
                        cx.cluster
                    ),
                ));
            }
            world.snapshots.remove(i);
            Progress::done(&[])
        }
        StepKind::DetachVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let inst = need(input, "instance_id", "instance_id")?;
            let v = volume_mut(world, &vol)?;
            v.attachments.retain(|a| a.instance_id != inst);
            if v.attachments.is_empty() {
                v.state = VolumeState::Available;
            }
            if step.params.get("supersede").and_then(Value::as_bool) == Some(true) {
                v.tags
                    .insert(tags::SUPERSEDED.into(), input.plan_id.to_string());
            }
            if let Some(i) = world.instances.iter_mut().find(|i| i.id == inst) {
                i.block_devices.retain(|b| b.volume_id != vol);
            }
            Progress::done(&[])
        }
        StepKind::AttachVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let inst = need(input, "instance_id", "instance_id")?;
            let dev = need(input, "device", "")?;
            let instance = world
                .instances
                .iter()
                .find(|i| i.id == inst)
                .ok_or_else(|| {
                    bad(
                        "InvalidInstanceID.NotFound",
                        format!("instance {inst} does not exist"),
                    )
                })?;
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped
            ) {
                return Err(bad(
                    "IncorrectInstanceState",
                    format!("instance {inst} is {:?}", instance.state),
                ));
            }
            if instance.block_devices.iter().any(|b| b.device_name == dev) {
                return Err(bad(
                    "InvalidParameterValue",
                    format!("Attachment point {dev} is already in use on {inst}"),
                ));
            }
            let az = instance.availability_zone.clone();
            let v = volume_mut(world, &vol)?;
            if v.availability_zone != az {
                return Err(bad(
                    "InvalidVolume.ZoneMismatch",
                    format!(
                        "volume {vol} is in {}, instance {inst} in {az}",
                        v.availability_zone
                    ),
                ));
            }
            if v.state != VolumeState::Available {
                return Err(bad("VolumeInUse", format!("volume {vol} is {:?}", v.state)));
            }
            v.state = VolumeState::InUse;
            v.attachments.push(Attachment {
                instance_id: inst.clone(),
                device: dev.clone(),
                state: AttachmentState::Attached,
                delete_on_termination: false,
            });
            let i = world
                .instances
                .iter_mut()
                .find(|i| i.id == inst)
                .expect("found above");
            i.block_devices.push(BlockDevice {
                device_name: dev,
                volume_id: vol,
                delete_on_termination: false,
            });
            Progress::done(&[])
        }
        StepKind::StopInstance => {
            let id = need(input, "instance_id", "instance_id")?;
            let i = instance_mut(world, &id)?;
            match i.state {
                InstanceState::Stopped | InstanceState::Terminated => Progress::done(&[]),
                InstanceState::Stopping => {
                    i.state = InstanceState::Stopped;
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::done(&[])
                }
                _ => {
                    i.state = InstanceState::Stopping;
                    Progress::pending(format!("{id} stopping"), None)
                }
            }
        }
        StepKind::TerminateInstance => {
            let id = need(input, "instance_id", "instance_id")?;
            let i = instance_mut(world, &id)?;
            match i.state {
                InstanceState::Terminated => Progress::done(&[]),
                InstanceState::ShuttingDown => {
                    // Terminated: DeleteOnTermination volumes go with it, the others are detached.
                    i.state = InstanceState::Terminated;
                    i.private_ip = None;
                    let devices = std::mem::take(&mut i.block_devices);
                    for b in devices {
                        if b.delete_on_termination {
                            world.volumes.retain(|v| v.id != b.volume_id);
                        } else if let Some(v) =
                            world.volumes.iter_mut().find(|v| v.id == b.volume_id)
                        {
                            v.attachments.retain(|a| a.instance_id != id);
                            v.state = VolumeState::Available;
                        }
                    }
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::done(&[])
                }
                _ => {
                    i.state = InstanceState::ShuttingDown;
                    Progress::pending(format!("{id} shutting down"), None)
                }
            }
        }
        StepKind::ProvisionInstance => {
            let ip = need(input, "private_ip", "")?;
            if let Some(holder) = world.instances.iter().find(|i| {
                i.state != InstanceState::Terminated && i.private_ip.as_deref() == Some(ip.as_str())
            }) {
                return Err(StepError::transient(
                    "InvalidIPAddress.InUse",
                    format!("Address {ip} is in use by {}", holder.id),
                    retry,
                ));
            }
            let id = format!("i-{}", token(input.plan_id, &step.id, ""));
            let instance_type = need(input, "instance_type", "")?;
            let drives = world
                .instance_types
                .get(&instance_type)
                .map(|t| t.instance_store_drives)
                .unwrap_or_else(|| {
                    step.params
                        .get("instance_store_volumes")
                        .and_then(Value::as_u64)
                        .unwrap_or(0) as u32
                });
            world.instances.push(Instance {
                id: id.clone(),
                state: InstanceState::Running,
                instance_type,
                private_ip: Some(ip),
                availability_zone: need(input, "availability_zone", "")?,
                subnet_id: input.param_str("subnet_id", ""),
                instance_store_drives: drives,
                block_devices: Vec::new(),
                tags: created_tags(input, &[]),
            });
            if let Some(node) = step.node.as_deref() {
                let n = node_mut(world, node);
                n.reachable = false;
                n.config = None;
                n.namespaces.clear();
                n.smd_restored_from = None;
            }
            Progress::done(&[("instance_id", json!(id))])
        }
        StepKind::CreateVolume => {
            let snapshot_id = input.param_str("snapshot_id", "");
            // EBS: a volume from an encrypted snapshot is encrypted; asking for a key sets it.
            let from_snapshot = snapshot_id
                .as_ref()
                .and_then(|sid| world.snapshots.iter().find(|s| &s.id == sid))
                .map(|s| (s.encrypted, s.kms_key_id.clone()));
            let encrypted = step.params.get("encrypted").and_then(Value::as_bool) == Some(true)
                || from_snapshot.as_ref().is_some_and(|s| s.0);
            let kms_key_id = input
                .param_str("kms_key_id", "")
                .or_else(|| from_snapshot.and_then(|s| s.1))
                .filter(|_| encrypted);
            if let Some(sid) = &snapshot_id {
                match world.snapshots.iter().find(|s| &s.id == sid) {
                    None => {
                        return Err(bad(
                            "InvalidSnapshot.NotFound",
                            format!("snapshot {sid} does not exist"),
                        ));
                    }
                    // R3: volumes only from completed snapshots.
                    Some(s) if s.state != SnapshotState::Completed => {
                        return Err(bad(
                            "IncorrectState",
                            format!("snapshot {sid} is {:?}", s.state),
                        ));
                    }
                    Some(_) => {}
                }
            }
            let id = format!("vol-{}", token(input.plan_id, &step.id, ""));
            world.volumes.push(Volume {
                id: id.clone(),
                availability_zone: need(input, "availability_zone", "")?,
                size_gib: step
                    .params
                    .get("size_gib")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                volume_type: input.param_str("type", "").unwrap_or_else(|| "gp3".into()),
                iops: step
                    .params
                    .get("iops")
                    .and_then(Value::as_u64)
                    .map(|v| v as u32),
                throughput: step
                    .params
                    .get("throughput")
                    .and_then(Value::as_u64)
                    .map(|v| v as u32),
                state: VolumeState::Creating,
                snapshot_id,
                encrypted,
                kms_key_id,
                attachments: Vec::new(),
                tags: created_tags(input, &[]),
            });
            Progress::done(&[("volume_id", json!(id))])
        }
        StepKind::WaitVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let v = volume_mut(world, &vol)?;
            match v.state {
                VolumeState::Available => Progress::done(&[]),
                VolumeState::Creating => {
                    v.state = VolumeState::Available;
                    Progress::pending(format!("{vol} creating"), None)
                }
                other => Err(bad("IncorrectState", format!("volume {vol} is {other:?}"))),
            }
        }
        StepKind::WriteConfig => {
            let name = node_name(input)?;
            if live_instance(world, cx, &name, None).is_none() {
                return Err(bad(
                    "Unreachable",
                    format!("node {name} has no running instance to write aerospike.conf on"),
                ));
            }
            node_mut(world, &name).config = Some(need(input, "content", "")?);
            Progress::done(&[])
        }
        StepKind::Asbackup => {
            let (set, namespace, uri) = (
                need(input, "set", "")?,
                need(input, "namespace", "")?,
                need(input, "to", "")?,
            );
            world.asbackup_archives.push(AsbackupArchive {
                set,
                namespace,
                uri: uri.clone(),
                incremental_of: input.param_str("incremental_of", ""),
            });
            Progress::done(&[("uri", json!(uri))])
        }
        StepKind::Asrestore => Progress::done(&[]),
        StepKind::DeleteBackup => {
            let set = need(input, "set", "")?;
            world.asbackup_archives.retain(|a| a.set != set);
            Progress::done(&[])
        }
        StepKind::DeleteVolume => {
            let id = need(input, "volume_id", "volume_id")?;
            let Some(i) = world.volumes.iter().position(|v| v.id == id) else {
                return Progress::done(&[]);
            };
            // Only a drill's own volumes are ever deleted (R7, R13).
            if !world.volumes[i]
                .tags
                .contains_key(asdr_planner::drill::DRILL)
                || world.volumes[i].tags.get(tags::CLUSTER).map(String::as_str) != Some(cx.cluster)
            {
                return Err(bad(
                    "R13",
                    format!(
                        "volume {id} is not a drill volume of {}: asdr does not delete it",
                        cx.cluster
                    ),
                ));
            }
            if !world.volumes[i].attachments.is_empty() {
                return Err(StepError::transient(
                    "VolumeInUse",
                    format!("volume {id} is still attached"),
                    retry,
                ));
            }
            world.volumes.remove(i);
            Progress::done(&[])
        }
    }
}

/// Puts every list in a canonical order, so the same world is written the same way whatever order
/// parallel steps finished in (and world-file diffs stay reviewable).
pub fn canonicalize(world: &mut World) {
    world.instances.sort_by(|a, b| a.id.cmp(&b.id));
    for i in &mut world.instances {
        i.block_devices
            .sort_by(|a, b| a.device_name.cmp(&b.device_name));
    }
    world.volumes.sort_by(|a, b| a.id.cmp(&b.id));
    for v in &mut world.volumes {
        v.attachments
            .sort_by(|a, b| (&a.instance_id, &a.device).cmp(&(&b.instance_id, &b.device)));
    }
    world.snapshots.sort_by(|a, b| a.id.cmp(&b.id));
    world.nodes.sort_by(|a, b| a.name.cmp(&b.name));
    world
        .smd_archives
        .sort_by(|a, b| (&a.set, &a.node).cmp(&(&b.set, &b.node)));
    world
        .asbackup_archives
        .sort_by(|a, b| (&a.set, &a.namespace).cmp(&(&b.set, &b.namespace)));
}

/// Every created resource of this plan, by kind, for reports and tests.
pub fn created_by(world: &World, plan_id: &str) -> BTreeMap<&'static str, usize> {
    let by = |t: &Tags| t.get(tags::PLAN).map(String::as_str) == Some(plan_id);
    BTreeMap::from([
        (
            "instances",
            world.instances.iter().filter(|i| by(&i.tags)).count(),
        ),
        (
            "volumes",
            world.volumes.iter().filter(|v| by(&v.tags)).count(),
        ),
        (
            "snapshots",
            world.snapshots.iter().filter(|s| by(&s.tags)).count(),
        ),
    ])
}

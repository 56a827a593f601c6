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
use asdr_planner::params::{self, Learned, Params, Ref};
use asdr_planner::ports::{Progress, Resources, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::*;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

mod consistency;
mod fast_restore;
mod instances;
mod nodes;
mod snapshots;
mod volumes;

/// How the simulated cloud and nodes behave (a test and rehearsal aid; see docs/world-file.md).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Simulation {
    /// Polls a new snapshot stays `pending` before `completed`.
    pub snapshot_polls: u32,
    /// Seconds between a snapshot's request and the start time EBS records for it: a set's id
    /// (the moment of the plan) then comes before its data's moment, as on AWS.
    pub snapshot_start_lag_s: u64,
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
            snapshot_start_lag_s: 0,
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

/// Evidence found, nothing to learn from it.
fn found() -> Option<Resources> {
    Some(Learned::default())
}

fn bad(code: &str, message: impl Into<String>) -> StepError {
    StepError::permanent(code, message)
}

/// A resource id the plan knows or an earlier step learned.
fn need(
    input: &StepInput<'_>,
    r: &Ref,
    pick: impl Fn(&Learned) -> Option<&String>,
) -> Result<String, StepError> {
    input.resolve(r, pick).ok_or_else(|| {
        bad(
            "UnresolvedReference",
            format!(
                "step {}: step {} has not learned the resource it needs",
                input.step.id,
                r.from_step().unwrap_or_default()
            ),
        )
    })
}

/// The volume a step names, known or learned.
fn volume_ref(input: &StepInput<'_>, r: &Ref) -> Result<String, StepError> {
    need(input, r, |l| l.volume_id.as_ref())
}

/// The instance an attach names, known or learned.
fn instance_ref(input: &StepInput<'_>, r: Option<&Ref>) -> Result<String, StepError> {
    let r = r.ok_or_else(|| {
        bad(
            "MissingParameter",
            format!("step {} names no instance", input.step.id),
        )
    })?;
    need(input, r, |l| l.instance_id.as_ref())
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
        .step
        .params
        .node_service()
        .and_then(|p| p.address.split(':').next().map(str::to_string))
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
                ..ObservedNamespace::default()
            }),
            ["rack-id", v] => {
                if let Some(ns) = out.last_mut() {
                    ns.rack_id = v.parse().ok();
                }
            }
            ["strong-consistency", v] => {
                if let Some(ns) = out.last_mut() {
                    ns.strong_consistency = *v == "true";
                }
            }
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

/// The instance `id`, or EC2's `InvalidInstanceID.NotFound`.
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

/// The volume `id`, or EC2's `InvalidVolume.NotFound`.
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

/// Whether a resource is in the region a step acts in (none: the cluster's own).
fn here(resource: &Option<String>, input: &StepInput<'_>) -> bool {
    resource.as_deref() == input.step.region.as_deref()
}

fn snapshot_of<'w>(
    world: &'w World,
    cx: &Ctx<'_>,
    input: &StepInput<'_>,
    p: &params::WaitSnapshot,
) -> Option<&'w Snapshot> {
    if let Some(id) = &p.snapshot_id {
        return world.snapshots.iter().find(|s| &s.id == id);
    }
    let (set, node, device) = (p.set.as_deref()?, p.node.as_deref()?, p.device.as_deref()?);
    world.snapshots.iter().find(|s| {
        let t = |k: &str| s.tags.get(k).map(String::as_str);
        here(&s.region, input)
            && s.state != SnapshotState::Error
            && t(tags::CLUSTER) == Some(cx.cluster)
            && tags::of_id(&s.tags, p.cluster_id.as_deref())
            && t(tags::SET) == Some(set)
            && t(tags::NODE) == Some(node)
            && t(tags::DEVICE) == Some(device)
    })
}

/// Evidence that a step already took effect: the resources to adopt.
pub fn observe(world: &World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    match family(input.step.kind()) {
        Family::Instances => instances::observe(world, cx, input),
        Family::Volumes => volumes::observe(world, cx, input),
        Family::Snapshots => snapshots::observe(world, cx, input),
        Family::Nodes => nodes::observe(world, cx, input),
    }
}

/// Carries a step out on the world (or advances a wait by one poll).
pub fn act(world: &mut World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Result<Progress, StepError> {
    match family(input.step.kind()) {
        Family::Instances => instances::act(world, cx, input),
        Family::Volumes => volumes::act(world, cx, input),
        Family::Snapshots => snapshots::act(world, cx, input),
        Family::Nodes => nodes::act(world, cx, input),
    }
}

/// The resource family a step kind acts on: the simulation is split as the EC2 provider is.
enum Family {
    Instances,
    Volumes,
    Snapshots,
    Nodes,
}

fn family(kind: StepKind) -> Family {
    match kind {
        StepKind::ProvisionInstance
        | StepKind::TerminateInstance
        | StepKind::StopInstance
        | StepKind::MarkRestoreComplete
        | StepKind::ClaimCluster => Family::Instances,
        StepKind::CreateVolume
        | StepKind::WaitVolume
        | StepKind::AttachVolume
        | StepKind::DetachVolume
        | StepKind::DeleteVolume => Family::Volumes,
        StepKind::SnapshotInstance
        | StepKind::Snapshot
        | StepKind::WaitSnapshot
        | StepKind::MarkSetComplete
        | StepKind::DeleteSnapshot
        | StepKind::CopySnapshot
        | StepKind::LockSnapshots
        | StepKind::FastSnapshotRestore => Family::Snapshots,
        _ => Family::Nodes,
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

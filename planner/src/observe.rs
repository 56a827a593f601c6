//! A read-only view of the world as the planner needs it: which instance is which node, which
//! volume sits at which device, which snapshots form which backup set. Built once per plan with
//! indexes, so a 256-node world with 60k snapshots is read in linear time.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use asdr_specs::{Edition, NodeVars, Policy, Template};
use time::{OffsetDateTime, PrimitiveDateTime};

use crate::manifest::{ObservedManifest, SetManifest};
use crate::tags;
use crate::world::*;

/// How a node's machine and service look right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NodeHealth {
    /// Instance running and Aerospike answering.
    Healthy,
    /// Instance running but Aerospike does not answer.
    Unreachable,
    /// Instance stopped or stopping.
    Stopped,
    /// Instance shutting down.
    ShuttingDown,
    /// Instance terminated, or no instance found.
    Gone,
}

impl NodeHealth {
    pub fn describe(self) -> &'static str {
        match self {
            NodeHealth::Healthy => "healthy",
            NodeHealth::Unreachable => "running but Aerospike does not answer",
            NodeHealth::Stopped => "stopped",
            NodeHealth::ShuttingDown => "shutting down",
            NodeHealth::Gone => "gone (terminated or missing)",
        }
    }
}

/// One policy node and what was found of it.
#[derive(Debug, Clone)]
pub struct NodeView<'w> {
    pub name: String,
    pub instance: Option<&'w Instance>,
    pub observation: Option<&'w NodeObservation>,
    pub health: NodeHealth,
    /// Per EBS device (rendered `ebs` name, policy order): the data volume found, if any.
    pub volumes: Vec<DeviceView<'w>>,
}

#[derive(Debug, Clone)]
pub struct DeviceView<'w> {
    pub ebs: String,
    /// The attached volume, else the one candidate found; None when none, or more than one
    /// (then `candidates` lists them and `source: current-volumes` refuses to guess).
    pub volume: Option<&'w Volume>,
    /// For a device with no attached volume: every volume that may be the node's data there
    /// (tagged for the node and device, or snapshotted as it by the newest set), never one asdr
    /// marked `asdr:superseded`.
    pub candidates: Vec<&'w Volume>,
    /// Whether that volume is attached to the node's live instance at `ebs`.
    pub attached: bool,
    pub delete_on_termination: bool,
}

/// The snapshots of one backup run, found by their `asdr:set` tag.
#[derive(Debug, Clone)]
pub struct BackupSet<'w> {
    pub id: String,
    pub time: OffsetDateTime,
    pub snapshots: Vec<&'w Snapshot>,
    pub marked_complete: bool,
    pub smd_archive: Option<&'w SmdArchive>,
    pub asbackup: Vec<&'w AsbackupArchive>,
    /// Whether the set holds a snapshot of every policy node's every EBS device *today*: a set
    /// that does not (made before a node or device was added) is still complete by its own
    /// members, but a new set is due so the cluster as it is now is covered.
    pub covers_every_device: bool,
    /// Whether the set holds every member it had when it was marked: the `asdr:members` count
    /// recorded with the mark, or (sets marked before that tag existed) a snapshot of every
    /// device of every node present in it.
    pub whole_by_its_members: bool,
    /// When its last snapshot started: the newest point in time the set's data may come from.
    pub last_start: Option<OffsetDateTime>,
    /// The set's manifest, when one is in its store, whole and of this cluster: its members are
    /// the set's (a snapshot that only carries the set's tags is not one).
    pub manifest: Option<&'w SetManifest>,
    /// Why a set marked with a manifest (`asdr:manifest`) cannot use it: missing, altered, of
    /// another cluster, or its members no longer as it lists them.
    pub manifest_problem: Option<String>,
    /// Its mark names a manifest that the store does not hold as named (missing, unreadable,
    /// another one): nothing proves the set is this cluster's (a same-named cluster writing to
    /// another store marks its sets the same way). Never deleted, never restored from.
    pub unproven: bool,
    /// The snapshot ids its manifest (whole, this cluster's, in the store) lists: all that is
    /// the set's; other snapshots carrying its tags are not (retention leaves them).
    pub listed: Option<std::collections::HashSet<String>>,
    /// (node, device) → snapshot: restores look up every node's every device.
    by_device: HashMap<(&'w str, &'w str), &'w Snapshot>,
}

impl<'w> BackupSet<'w> {
    /// R2: complete only when marked, it still holds every member it was marked with, every
    /// snapshot is `completed`, and the SMD archive exists. A set with a snapshot missing (lost,
    /// deleted by hand) restores nothing whole, so it is not counted as restorable. Today's policy
    /// plays no part: a node or device added since does not make an old set incomplete.
    pub fn is_complete(&self) -> bool {
        self.marked_complete
            && self.whole_by_its_members
            && self.smd_archive.is_some()
            && match self.manifest {
                // Its members, whatever else carries the set's tags.
                Some(_) => self
                    .by_device
                    .values()
                    .all(|s| s.state == SnapshotState::Completed),
                None => self
                    .snapshots
                    .iter()
                    .all(|s| s.state == SnapshotState::Completed),
            }
    }

    /// The SHA-256 the set's manifest records for the SMD archive of `node`.
    pub fn smd_sha256(&self, node: &str) -> Option<&'w str> {
        self.manifest?
            .smd
            .iter()
            .find(|e| e.node == node)
            .map(|e| e.sha256.as_str())
    }

    /// asbackup: every namespace has a finished run (asdr's manifest) in this set, with every file
    /// its manifest counts still there.
    pub fn asbackup_complete(&self, namespaces: &[String]) -> bool {
        !namespaces.is_empty()
            && !self.asbackup_damaged()
            && namespaces
                .iter()
                .all(|ns| self.asbackup.iter().any(|a| &a.namespace == ns))
    }

    /// asbackup: a finished run of this set lost files since (its manifest counts more).
    pub fn asbackup_damaged(&self) -> bool {
        self.asbackup.iter().any(|a| a.missing_files > 0)
    }

    /// asbackup, an incremental: the set of its chain it follows, when its manifest names it.
    pub fn asbackup_after(&self) -> Option<&str> {
        self.asbackup.iter().find_map(|a| a.after.as_deref())
    }

    /// asbackup: the full set this set's chain starts from (itself for a full set).
    pub fn chain(&self) -> &str {
        self.asbackup
            .iter()
            .find_map(|a| a.incremental_of.as_deref())
            .unwrap_or(&self.id)
    }

    /// The moment the set's data may be as new as: its last snapshot's start, else its id's time.
    /// For an asbackup set: the newest moment its records may be from. asbackup scans while the
    /// cluster takes writes, and namespaces run one after another: a run holds records written
    /// until it finished. The latest finish of its runs; the set's start for a run whose
    /// manifest predates the finish in its name.
    pub fn asbackup_time(&self) -> OffsetDateTime {
        self.asbackup
            .iter()
            .map(|a| a.finished.unwrap_or(self.time))
            .max()
            .unwrap_or(self.time)
            .max(self.time)
    }

    pub fn data_time(&self) -> OffsetDateTime {
        self.last_start.unwrap_or(self.time).max(self.time)
    }

    pub fn snapshot_for(&self, node: &str, device: &str) -> Option<&'w Snapshot> {
        self.by_device.get(&(node, device)).copied()
    }

    /// How many node devices the set holds: what a copy of it must hold to be whole.
    pub fn members(&self) -> usize {
        self.by_device.len()
    }

    /// The (node, device) pairs the set holds, sorted.
    pub fn member_pairs(&self) -> Vec<(String, String)> {
        let mut out: Vec<(String, String)> = self
            .by_device
            .keys()
            .map(|(n, d)| (n.to_string(), d.to_string()))
            .collect();
        out.sort();
        out
    }
}

pub struct Observed<'w> {
    pub world: &'w World,
    pub nodes: Vec<NodeView<'w>>,
    /// Backup sets of this cluster, oldest first.
    pub sets: Vec<BackupSet<'w>>,
    volumes_by_id: HashMap<&'w str, &'w Volume>,
}

impl std::fmt::Debug for Observed<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Observed")
            .field("nodes", &self.nodes.len())
            .field("sets", &self.sets.len())
            .finish()
    }
}

/// Renders a per-node template; validation already rendered every one of them once.
pub fn render(t: &Template, vars: &NodeVars<'_>) -> String {
    t.render(vars).unwrap_or_else(|_| t.source().to_string())
}

impl<'w> Observed<'w> {
    pub fn new(policy: &Policy, world: &'w World) -> Self {
        let cluster = &policy.cluster.name;
        let volumes_by_id: HashMap<&str, &Volume> =
            world.volumes.iter().map(|v| (v.id.as_str(), v)).collect();
        let expected: Vec<(String, String)> = policy
            .cluster
            .nodes
            .iter()
            .flat_map(|node| {
                let vars = NodeVars::new(cluster, node);
                policy
                    .ebs_devices()
                    .into_iter()
                    .map(move |t| (node.name.clone(), render(t, &vars)))
            })
            .collect();
        let sets = collect_sets(cluster, world, &expected);
        let obs_by_name: HashMap<&str, &NodeObservation> =
            world.nodes.iter().map(|n| (n.name.as_str(), n)).collect();

        // Volumes tagged for a node and device, for nodes whose instance is gone.
        let mut tagged: HashMap<(&str, &str), Vec<&Volume>> = HashMap::new();
        for v in &world.volumes {
            if v.tags.get(tags::CLUSTER) == Some(cluster)
                && let (Some(n), Some(d)) = (v.tags.get(tags::NODE), v.tags.get(tags::DEVICE))
                && !v.tags.contains_key(tags::SUPERSEDED)
                && !matches!(v.state, VolumeState::Deleting | VolumeState::Deleted)
            {
                tagged.entry((n.as_str(), d.as_str())).or_default().push(v);
            }
        }
        let newest_set_with_snapshots = sets.iter().rev().find(|s| !s.snapshots.is_empty());

        let nodes = policy
            .cluster
            .nodes
            .iter()
            .map(|node| {
                let instance = crate::nodes::find_instance(&policy.cluster, node, &world.instances);
                let observation = obs_by_name.get(node.name.as_str()).copied();
                let health = match instance.map(|i| i.state) {
                    Some(InstanceState::Running | InstanceState::Pending) => {
                        if observation.is_some_and(|o| o.reachable) {
                            NodeHealth::Healthy
                        } else {
                            NodeHealth::Unreachable
                        }
                    }
                    Some(InstanceState::Stopped | InstanceState::Stopping) => NodeHealth::Stopped,
                    Some(InstanceState::ShuttingDown) => NodeHealth::ShuttingDown,
                    Some(InstanceState::Terminated) | None => NodeHealth::Gone,
                };
                let live = instance.filter(|i| i.state != InstanceState::Terminated);
                let vars = NodeVars::new(cluster, node);
                let volumes = policy
                    .ebs_devices()
                    .into_iter()
                    .map(|t| {
                        let ebs = render(t, &vars);
                        // 1. attached to the live instance at that device name
                        let bd = live
                            .and_then(|i| i.block_devices.iter().find(|b| b.device_name == ebs));
                        if let Some(bd) = bd {
                            return DeviceView {
                                volume: volumes_by_id.get(bd.volume_id.as_str()).copied(),
                                candidates: Vec::new(),
                                attached: true,
                                delete_on_termination: bd.delete_on_termination,
                                ebs,
                            };
                        }
                        // 2. tagged asdr:node / asdr:device; 3. the volume the newest set
                        // snapshotted. Every such volume is a candidate; one is the answer, more
                        // than one is a question only the operator can settle.
                        let mut candidates: Vec<&Volume> = tagged
                            .get(&(node.name.as_str(), ebs.as_str()))
                            .cloned()
                            .unwrap_or_default();
                        if let Some(v) = newest_set_with_snapshots
                            .and_then(|s| s.snapshot_for(&node.name, &ebs))
                            .and_then(|s| volumes_by_id.get(s.volume_id.as_str()).copied())
                            .filter(|v| {
                                !v.tags.contains_key(tags::SUPERSEDED)
                                    && !matches!(
                                        v.state,
                                        VolumeState::Deleting | VolumeState::Deleted
                                    )
                            })
                            && !candidates.iter().any(|c| c.id == v.id)
                        {
                            candidates.push(v);
                        }
                        // A volume in another zone can never attach here (a node moved out of a
                        // lost zone leaves its volumes there): when some are in the node's own
                        // zone, the others are not candidates.
                        if candidates
                            .iter()
                            .any(|v| v.availability_zone == node.availability_zone)
                        {
                            candidates.retain(|v| v.availability_zone == node.availability_zone);
                        }
                        candidates
                            .sort_by_key(|v| (v.state != VolumeState::Available, v.id.as_str()));
                        DeviceView {
                            volume: (candidates.len() == 1).then(|| candidates[0]),
                            candidates,
                            attached: false,
                            delete_on_termination: false,
                            ebs,
                        }
                    })
                    .collect();
                NodeView {
                    name: node.name.clone(),
                    instance,
                    observation,
                    health,
                    volumes,
                }
            })
            .collect();
        Observed {
            world,
            nodes,
            sets,
            volumes_by_id,
        }
    }

    /// Names of the nodes that run and answer, in policy order.
    pub fn healthy_names(&self) -> Vec<String> {
        self.nodes
            .iter()
            .filter(|n| n.health == NodeHealth::Healthy)
            .map(|n| n.name.clone())
            .collect()
    }

    pub fn node(&self, name: &str) -> &NodeView<'w> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .expect("policy nodes are all viewed")
    }

    pub fn volume(&self, id: &str) -> Option<&'w Volume> {
        self.volumes_by_id.get(id).copied()
    }

    /// `before: T`: the newest complete set whose data is older than T (its last snapshot's start,
    /// the moment its data may be as new as). The planner and `status` both ask this.
    pub fn complete_set_before(&self, t: OffsetDateTime) -> Option<&BackupSet<'w>> {
        self.sets
            .iter()
            .rev()
            .find(|s| s.is_complete() && s.data_time() < t)
    }

    pub fn newest_complete_set(&self) -> Option<&BackupSet<'w>> {
        self.sets.iter().rev().find(|s| s.is_complete())
    }

    pub fn set(&self, id: &str) -> Option<&BackupSet<'w>> {
        self.sets.iter().find(|s| s.id == id)
    }

    /// Nodes whose `edition` reply contradicts `expected` (R9).
    pub fn edition_mismatch(&self, expected: Edition) -> Option<(&NodeView<'w>, &'w str)> {
        self.nodes.iter().find_map(|n| {
            let reply = n.observation.filter(|o| o.reachable)?.edition.as_deref()?;
            (Edition::from_reply(reply) != Some(expected)).then_some((n, reply))
        })
    }
}

fn collect_sets<'w>(
    cluster: &str,
    world: &'w World,
    expected: &[(String, String)],
) -> Vec<BackupSet<'w>> {
    let mut by_set: BTreeMap<&str, Vec<&Snapshot>> = BTreeMap::new();
    for s in &world.snapshots {
        if s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster)
            && let Some(set) = s.tags.get(tags::SET)
        {
            by_set.entry(set.as_str()).or_default().push(s);
        }
    }
    let mut smd: HashMap<&str, &SmdArchive> = HashMap::new();
    for a in &world.smd_archives {
        smd.entry(a.set.as_str()).or_insert(a);
    }
    let mut asb: BTreeMap<&str, Vec<&AsbackupArchive>> = BTreeMap::new();
    // Only this cluster's runs (R13): a store shared with another cluster holds theirs too.
    for a in crate::world::asbackup_runs_of(&world.asbackup_archives, cluster) {
        asb.entry(a.set.as_str()).or_default().push(a);
        by_set.entry(a.set.as_str()).or_default();
    }
    // Manifests in the set's store (one store per region view); snapshots by id, for members.
    // Each manifest's checksum is computed once.
    type Seen<'w> = (&'w ObservedManifest, Result<&'w SetManifest, String>);
    let mut manifests: HashMap<&str, Seen<'w>> = HashMap::new();
    for m in &world.set_manifests {
        if manifests.contains_key(m.set.as_str()) {
            continue;
        }
        // A set is found by its snapshots; its manifest then says which of them are its members
        // (a manifest whose snapshots retention deleted stays behind with the SMD archives).
        manifests.insert(m.set.as_str(), (m, m.usable(cluster)));
    }
    // How often each volume was a node device's across the cluster's snapshots: in a set made
    // before manifests, two snapshots claiming one device are told apart by the volume that
    // device has been (a snapshot of another volume carrying the tags is anyone's).
    let mut usual: HashMap<(&str, &str, &str), usize> = HashMap::new();
    for snaps in by_set.values() {
        for s in snaps {
            if let (Some(n), Some(d)) = (s.tags.get(tags::NODE), s.tags.get(tags::DEVICE)) {
                *usual
                    .entry((n.as_str(), d.as_str(), s.volume_id.as_str()))
                    .or_insert(0) += 1;
            }
        }
    }
    let by_id: HashMap<&str, &Snapshot> = if manifests.is_empty() {
        HashMap::new()
    } else {
        world.snapshots.iter().map(|s| (s.id.as_str(), s)).collect()
    };
    let mut sets: Vec<BackupSet<'w>> = by_set
        .into_iter()
        .filter_map(|(id, mut snapshots)| {
            let time = set_time(id)?;
            snapshots.sort_by(|a, b| a.id.cmp(&b.id));
            let named = snapshots.iter().find_map(|s| s.tags.get(tags::MANIFEST));
            let complete_tag =
                |s: &&Snapshot| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true");
            // A set marked before manifests is judged as it was marked: a manifest that appears
            // for it later was not what its mark checked, and is not trusted.
            let marked_without = named.is_none() && snapshots.iter().any(complete_tag);
            let (manifest, mut manifest_problem) = match manifests.get(id) {
                Some(_) if marked_without => (None, None),
                Some((_, Ok(m))) => match members_of(m, &by_id, cluster) {
                    Ok(()) => (Some(*m), None),
                    Err(why) => (None, Some(why)),
                },
                Some((seen, Err(why))) => (
                    None,
                    named.map(|_| format!("its manifest {}: {why}", seen.uri)),
                ),
                None => (
                    None,
                    named.map(|_| "its manifest is not in the SMD store".to_string()),
                ),
            };
            // The mark names the manifest it was made with: another one in its place is not it.
            if manifest_problem.is_none()
                && let Some(m) = manifest
                && let Some(want) = m
                    .members
                    .iter()
                    .find_map(|mb| by_id.get(mb.snapshot_id.as_str())?.tags.get(tags::MANIFEST))
                && let Some(have) = manifests.get(id).and_then(|(seen, _)| seen.file.as_ref())
                && &have.sha256 != want
            {
                manifest_problem = Some(format!(
                    "its snapshots name manifest {want}, the store holds {}",
                    have.sha256
                ));
            }
            // Its SMD archive: the one of the node the manifest names, in this store (a store
            // moved with its files keeps its sets), and, where its checksum was read, the one the
            // manifest recorded.
            let mut smd_archive = smd.get(id).copied();
            if manifest_problem.is_none()
                && let Some(m) = manifest
            {
                let archive_of = |e: &crate::manifest::SmdEntry| {
                    world
                        .smd_archives
                        .iter()
                        .find(|a| a.set == id && (a.node == e.node || a.uri == e.uri))
                };
                smd_archive = m.smd.iter().find_map(archive_of);
                for e in &m.smd {
                    if let Some(a) = archive_of(e)
                        && let Some(have) = a.sha256.as_deref().filter(|h| *h != e.sha256)
                    {
                        manifest_problem = Some(format!(
                            "its SMD archive {} has SHA-256 {have}, its manifest records {}",
                            a.uri, e.sha256
                        ));
                    }
                }
            }
            // Named by the mark, and is that manifest in the store, whole and this cluster's?
            // With a whole manifest of this cluster in the store, its members' mark decides
            // (another cluster's snapshots may carry the same set id and a mark of their own).
            // Once none of the manifest's members is left (retention took them), what still
            // carries the set's id is not this set.
            let (unproven, listed) = match manifests.get(id) {
                Some((seen, Ok(m)))
                    if !marked_without
                        && m.members
                            .iter()
                            .any(|mb| by_id.contains_key(mb.snapshot_id.as_str())) =>
                {
                    let member_named = m.members.iter().find_map(|mb| {
                        by_id.get(mb.snapshot_id.as_str())?.tags.get(tags::MANIFEST)
                    });
                    let unproven = member_named
                        .is_some_and(|w| seen.file.as_ref().is_none_or(|f| &f.sha256 != w));
                    let listed = m.members.iter().map(|mb| mb.snapshot_id.clone()).collect();
                    (unproven, Some(listed))
                }
                _ => (named.is_some(), None),
            };
            let manifest = manifest.filter(|_| manifest_problem.is_none());
            let mut by_device = HashMap::with_capacity(snapshots.len());
            match (manifest, &manifest_problem) {
                (Some(m), _) => {
                    for mb in &m.members {
                        if let Some(s) = by_id.get(mb.snapshot_id.as_str()) {
                            by_device.insert((mb.node.as_str(), mb.device.as_str()), *s);
                        }
                    }
                }
                // A set whose manifest no longer holds has no members to restore from, resume or
                // copy: its tags alone prove nothing.
                (None, Some(_)) => {}
                (None, None) => {
                    let mut claims: HashMap<(&str, &str), Vec<&Snapshot>> = HashMap::new();
                    for s in &snapshots {
                        if let (Some(n), Some(d)) =
                            (s.tags.get(tags::NODE), s.tags.get(tags::DEVICE))
                        {
                            claims.entry((n.as_str(), d.as_str())).or_default().push(s);
                        }
                    }
                    for ((n, d), mut candidates) in claims {
                        // The device's usual volume wins; among snapshots of one volume (a retried
                        // snapshot), the first by id, whatever the input order. Two volumes as
                        // usual as each other: the device is left out (the set is not whole)
                        // rather than one guessed.
                        let seen = |s: &Snapshot| {
                            usual
                                .get(&(n, d, s.volume_id.as_str()))
                                .copied()
                                .unwrap_or(0)
                        };
                        candidates.sort_by(|a, b| seen(b).cmp(&seen(a)).then(a.id.cmp(&b.id)));
                        let best = candidates[0];
                        let tied = candidates
                            .iter()
                            .any(|c| c.volume_id != best.volume_id && seen(c) == seen(best));
                        if !tied {
                            by_device.insert((n, d), best);
                        }
                    }
                }
            }
            let marked_complete = match manifest {
                // Every member carries the mark (the manifest is written before it).
                Some(_) => by_device
                    .values()
                    .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")),
                None => {
                    !snapshots.is_empty()
                        && snapshots
                            .iter()
                            .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"))
                }
            };
            let covers_every_device = !expected.is_empty()
                && expected
                    .iter()
                    .all(|(n, d)| by_device.contains_key(&(n.as_str(), d.as_str())));
            let whole_by_its_members = match (manifest, &manifest_problem) {
                (Some(_), _) => true,
                (None, Some(_)) => false,
                (None, None) => whole_by_members(&snapshots, &by_device),
            };
            let last_start = by_device.values().map(|s| s.start_time).max();
            Some(BackupSet {
                covers_every_device,
                whole_by_its_members,
                last_start,
                manifest,
                manifest_problem,
                unproven,
                listed,
                by_device,
                id: id.to_string(),
                time,
                marked_complete,
                smd_archive,
                asbackup: asb.remove(id).unwrap_or_default(),
                snapshots,
            })
        })
        .collect();
    sets.sort_by(|a, b| a.time.cmp(&b.time).then_with(|| a.id.cmp(&b.id)));
    sets
}

/// A manifest's members are in the world as it lists them: each snapshot there, of the volume it
/// names (for a copy: copied from the snapshot it names). A member lost, or replaced by another
/// snapshot carrying its tags, leaves the set incomplete (R2).
fn members_of(
    m: &SetManifest,
    by_id: &HashMap<&str, &Snapshot>,
    cluster: &str,
) -> Result<(), String> {
    for mb in &m.members {
        let Some(s) = by_id
            .get(mb.snapshot_id.as_str())
            .filter(|s| s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cluster))
        else {
            return Err(format!(
                "member {} {} ({}) is gone",
                mb.node, mb.device, mb.snapshot_id
            ));
        };
        let matches = match &mb.source_snapshot_id {
            Some(src) => s.tags.get(tags::SOURCE_SNAPSHOT) == Some(src),
            None => s.volume_id == mb.volume_id,
        };
        if !matches {
            return Err(format!(
                "member {} {} ({}) is not the snapshot its manifest lists",
                mb.node, mb.device, mb.snapshot_id
            ));
        }
    }
    if m.members.is_empty() {
        return Err("its manifest lists no member".into());
    }
    Ok(())
}

/// A set's own membership is intact: as many node devices as the mark recorded (`asdr:members`),
/// or, for a set marked before that tag, as many devices for every node present as for the others.
fn whole_by_members(snapshots: &[&Snapshot], by_device: &HashMap<(&str, &str), &Snapshot>) -> bool {
    if by_device.is_empty() {
        return false;
    }
    let recorded = snapshots
        .iter()
        .filter_map(|s| s.tags.get(tags::MEMBERS)?.parse::<usize>().ok())
        .max();
    match recorded {
        Some(n) => by_device.len() >= n,
        // Every node present has as many devices as the others (device names may differ per
        // node: `ebs` is a per-node template).
        None => {
            let mut per_node: BTreeMap<&str, usize> = BTreeMap::new();
            for (n, _) in by_device.keys() {
                *per_node.entry(n).or_default() += 1;
            }
            let counts: BTreeSet<usize> = per_node.values().copied().collect();
            counts.len() == 1
        }
    }
}

/// The time a set id names: `bs-YYYYMMDDTHHMMSSZ`.
pub fn set_time(id: &str) -> Option<OffsetDateTime> {
    if !asdr_specs::is_set_id(id) {
        return None;
    }
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    PrimitiveDateTime::parse(&id[3..], &fmt)
        .ok()
        .map(PrimitiveDateTime::assume_utc)
}

/// The set id for a backup started at `now`.
pub fn set_id(now: OffsetDateTime) -> String {
    let fmt = time::macros::format_description!("[year][month][day]T[hour][minute][second]Z");
    format!(
        "bs-{}",
        now.to_offset(time::UtcOffset::UTC)
            .format(&fmt)
            .expect("formats")
    )
}

/// An age as people say it: `45s`, `12m`, `30h`, `9d`.
pub(crate) fn human_age(seconds: u64) -> String {
    match seconds {
        s if s >= 2 * 86_400 => format!("{}d", s / 86_400),
        s if s >= 3600 => format!("{}h", s / 3600),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

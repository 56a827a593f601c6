//! Whose a resource is: the cluster id.
//!
//! A name is not an identity: two clusters called `prod` (two policy files, two accounts' worth
//! of habits in one account, a rebuilt cluster next to the old one) tag their resources alike and
//! may share a store. Every cluster therefore has an id, minted on its first apply and tagged
//! `asdr:cluster-id` on its instances; every snapshot, copy, volume and instance asdr creates
//! carries it, and every set manifest records it. A resource or manifest that carries another id
//! is another cluster's, whatever its name tag says: asdr never counts, restores from, resumes,
//! marks or deletes it (R13), and the providers check the id again right before deleting.
//!
//! Where the id comes from, in order:
//! 1. the policy nodes' instances: the one id they carry (instances without it are claimed with
//!    it: a node added, or an instance replaced by hand); two ids among them are refused;
//! 2. none carries one (their instances all replaced, say): the one id the set manifests in the
//!    policy's own stores record — the store the policy names is the proof, never a tag alone;
//! 3. neither: minted from the cluster's name, region and instances. Deterministic, so a plan is
//!    the same every time it is made, and an interrupted first apply mints the same id again.
//!
//! Resources without the tag (made before ids existed) are judged as before: by their name tag,
//! their manifests and their source tags.

use std::borrow::Cow;
use std::collections::{BTreeMap, BTreeSet};

use asdr_specs::{Diagnostic, Policy};
use sha2::{Digest, Sha256};

use crate::PlanError;
use crate::error::refuse;
use crate::tags;
use crate::world::{InstanceState, Tags, World};

/// The cluster's id and how it was found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Identity {
    pub id: String,
    pub how: How,
    /// The policy nodes' instances (home region, not terminated) that do not carry the id yet:
    /// a plan that changes anything claims them (`claim_cluster`).
    pub unclaimed: Vec<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum How {
    /// `cluster.id` in the policy.
    Stated,
    /// Tagged on the cluster's instances.
    Claimed,
    /// Recorded by the set manifests in the policy's stores.
    Adopted,
    /// Not recorded anywhere yet: this apply claims it.
    Minted,
}

impl How {
    /// For a plan's change: where the id it claims comes from.
    pub fn short(&self) -> &'static str {
        match self {
            How::Stated => "stated by the policy",
            How::Claimed => "carried by the other instances",
            How::Adopted => "recorded by the cluster's manifests, runs or earlier instances",
            How::Minted => "new",
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            How::Stated => "stated by the policy (cluster.id)",
            How::Claimed => "tagged on the cluster's instances",
            How::Adopted => "recorded by the cluster's manifests, runs or earlier instances",
            How::Minted => {
                "new, made from the cluster's name, region, SMD store and instances; the first apply that changes anything claims it"
            }
        }
    }
}

/// Whether `tags` carry a cluster id other than `id` (a resource without one is judged by its
/// other tags, as before ids existed).
pub fn is_foreign(tags: &Tags, id: &str) -> bool {
    tags.get(tags::CLUSTER_ID).is_some_and(|t| t != id)
}

/// The cluster's id (see the module's comment), or a refusal when its instances carry two, or
/// when a volume attached to one of its nodes carries another id.
pub fn resolve(policy: &Policy, world: &World) -> Result<Identity, PlanError> {
    one_instance_per_node(policy, world)?;
    let identity = resolve_id(policy, world)?;
    // A volume attached to a node's instance that carries another id is a contradiction (a
    // tag changed by hand, or by someone else): left out of the world, the node would seem to
    // lack that device, and a restore would stop the cluster and then fail to attach there.
    let home = policy.cluster.region.as_str();
    for node in &policy.cluster.nodes {
        let Some(i) = crate::nodes::find_instance(&policy.cluster, node, in_home(world, home))
        else {
            continue;
        };
        // A pinned instance that its tags say is another cluster's (a policy written for the
        // wrong instances, or a name reused): asdr acts on it for no cluster but the one named.
        if let Some(other) = i
            .tags
            .get(tags::CLUSTER)
            .filter(|c| **c != policy.cluster.name)
        {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "instance {} of node `{}` is tagged {}={other}: another cluster's, not `{}`'s",
                        i.id,
                        node.name,
                        tags::CLUSTER,
                        policy.cluster.name
                    ),
                )
                .rule("R13")
                .help(format!(
                    "check the node's `instance_id` (remove it from the policy if that instance is gone or not this node's); if the instance is this cluster's (the cluster was renamed), set its tag: aws ec2 create-tags --resources {} --tags Key={},Value={}",
                    i.id,
                    tags::CLUSTER,
                    policy.cluster.name
                )),
            ));
        }
        for b in &i.block_devices {
            if let Some(v) = world.volumes.iter().find(|v| v.id == b.volume_id)
                && let Some(other) = v.tags.get(tags::CLUSTER_ID).filter(|o| **o != identity.id)
            {
                return Err(refuse(
                    Diagnostic::new(
                        node.name_span,
                        format!(
                            "volume {} attached to node `{}` ({}) at {} carries {}={other}, and the cluster is {}: asdr acts on neither while they disagree",
                            v.id,
                            node.name,
                            i.id,
                            b.device_name,
                            tags::CLUSTER_ID,
                            identity.id
                        ),
                    )
                    .rule("R13")
                    .help(format!(
                        "if the volume is this node's, set its tag back: aws ec2 create-tags --resources {} --tags Key={},Value={}",
                        v.id,
                        tags::CLUSTER_ID,
                        identity.id
                    )),
                ));
            }
        }
    }
    Ok(identity)
}

/// A node is one instance: two live instances tagged for the same node at its address (a
/// same-named cluster in another VPC with the same address plan, say) are refused rather than
/// one chosen by its id. A live pinned instance settles it.
fn one_instance_per_node(policy: &Policy, world: &World) -> Result<(), PlanError> {
    let home = policy.cluster.region.as_str();
    for node in &policy.cluster.nodes {
        let ip = node.private_ip.to_string();
        let live = |i: &&crate::world::Instance| {
            i.region.as_deref().unwrap_or(home) == home && i.state != InstanceState::Terminated
        };
        if world
            .instances
            .iter()
            .filter(live)
            .any(|i| node.instance_id.as_deref() == Some(i.id.as_str()))
        {
            continue;
        }
        let tagged: Vec<&str> = world
            .instances
            .iter()
            .filter(live)
            .filter(|i| {
                let pinned_subnet = world
                    .instances
                    .iter()
                    .find(|p| node.instance_id.as_deref() == Some(p.id.as_str()))
                    .and_then(|p| p.subnet_id.as_deref());
                crate::nodes::is_replacement(&policy.cluster, node, i, pinned_subnet)
            })
            .map(|i| i.id.as_str())
            .collect();
        if tagged.len() > 1 {
            return Err(refuse(
                Diagnostic::new(
                    node.name_span,
                    format!(
                        "{} live instances are tagged for node `{}` of cluster `{}` at {ip}: {}; asdr does not guess which is the node (a same-named cluster in another VPC with the same addresses?)",
                        tagged.len(),
                        node.name,
                        policy.cluster.name,
                        tagged.join(", ")
                    ),
                )
                .rule("R13")
                .help("pin the node's instance in the policy (`instance_id`), or remove the asdr tags from the instance that is not this node"),
            ));
        }
    }
    Ok(())
}

fn resolve_id(policy: &Policy, world: &World) -> Result<Identity, PlanError> {
    let cluster = &policy.cluster;
    let home = cluster.region.as_str();
    // The instances that are the policy's nodes, exactly as the planner takes them (pinned by
    // `instance_id`, else tagged for the cluster and the node at the node's address): only they
    // say whose the cluster is, and only they are claimed. An instance that merely carries the
    // tags is not a node: it neither votes nor is tagged.
    let mut ids: BTreeMap<String, Vec<String>> = BTreeMap::new();
    let mut unclaimed = Vec::new();
    let mut seen = BTreeSet::new();
    for node in &cluster.nodes {
        let Some(i) = crate::nodes::find_instance(cluster, node, in_home(world, home))
            .filter(|i| i.state != InstanceState::Terminated)
        else {
            continue;
        };
        if !seen.insert(i.id.clone()) {
            continue;
        }
        match i.tags.get(tags::CLUSTER_ID) {
            Some(id) => ids.entry(id.clone()).or_default().push(i.id.clone()),
            None => unclaimed.push(i.id.clone()),
        }
    }
    // Stated by the policy: it wins, and a node instance carrying another is refused.
    if let Some(stated) = &cluster.id {
        if let Some((other, on)) = ids.iter().find(|(i, _)| *i != stated) {
            return Err(refuse(
                Diagnostic::new(
                    cluster.id_span,
                    format!(
                        "the policy states cluster id {stated}, but {} carr{} {}={other}",
                        on.join(", "),
                        if on.len() == 1 { "ies" } else { "y" },
                        tags::CLUSTER_ID
                    ),
                )
                .rule("R13")
                .help("if those instances are this cluster's, set their tag to the stated id; if not, the policy names the wrong instances"),
            ));
        }
        return Ok(Identity {
            id: stated.clone(),
            how: How::Stated,
            unclaimed,
        });
    }
    if ids.len() > 1 {
        let said: Vec<String> = ids
            .iter()
            .map(|(id, is)| format!("{id} on {}", is.join(", ")))
            .collect();
        return Err(refuse(
            Diagnostic::new(
                first_node_span(policy),
                format!(
                    "the instances of cluster `{}`'s nodes carry {} different {} tags ({}): two clusters named `{}` are in {home}, and asdr cannot tell which is this one",
                    cluster.name,
                    ids.len(),
                    tags::CLUSTER_ID,
                    said.join("; "),
                    cluster.name
                ),
            )
            .rule("R13")
            .help(format!(
                "state the cluster's id in the policy (`cluster.id`), pin each node's `instance_id`, or give one of the clusters another name; an instance that is this cluster's but carries the wrong id can be retagged: aws ec2 create-tags --resources <instance> --tags Key={},Value=<id>",
                tags::CLUSTER_ID
            )),
        ));
    }
    if let Some((id, _)) = ids.into_iter().next() {
        return Ok(Identity {
            id: id.to_string(),
            how: How::Claimed,
            unclaimed,
        });
    }
    let manifests: Vec<&crate::manifest::SetManifest> = world
        .set_manifests
        .iter()
        .filter_map(|m| m.usable(&cluster.name).ok())
        .filter(|m| m.cluster_id.is_some())
        .collect();
    // What else records the id: the nodes' terminated instances (tags outlive them a while),
    // the cluster's asbackup runs (their manifests' names), and what asdr built for it elsewhere
    // (a restore into another region, a drill's stand-ins), which carry the id it had then.
    let terminated = cluster.nodes.iter().filter_map(|n| {
        crate::nodes::find_instance(cluster, n, in_home(world, home))
            .filter(|i| i.state == InstanceState::Terminated)
            .and_then(|i| i.tags.get(tags::CLUSTER_ID))
            .map(String::as_str)
    });
    let runs = world
        .asbackup_archives
        .iter()
        .filter(|a| a.cluster.as_deref() == Some(cluster.name.as_str()))
        .filter_map(|a| a.cluster_id.as_deref());
    let built = world
        .instances
        .iter()
        .filter(|i| {
            i.region.as_deref().is_some_and(|r| r != home)
                && i.tags.get(tags::CLUSTER) == Some(&cluster.name)
                && (i.tags.contains_key(tags::RESTORE) || i.tags.contains_key(crate::drill::DRILL))
        })
        .filter_map(|i| i.tags.get(tags::CLUSTER_ID).map(String::as_str));
    let recorded: BTreeSet<&str> = manifests
        .iter()
        .filter_map(|m| m.cluster_id.as_deref())
        .chain(terminated)
        .chain(runs)
        .chain(built)
        .collect();
    match recorded.len() {
        0 => {}
        1 => {
            let id = recorded.into_iter().next().unwrap_or_default();
            // With no instance to contradict it (all gone, or the region lost), the store's
            // record is the id. With instances that carry none, a manifest must show they are
            // this cluster: a member volume of one of its sets still attached to one of them.
            // Otherwise the store may be another same-named cluster's, and taking its id would
            // take its sets for ours.
            let attached: BTreeSet<&str> = world
                .instances
                .iter()
                .filter(|i| unclaimed.contains(&i.id))
                .flat_map(|i| i.block_devices.iter().map(|b| b.volume_id.as_str()))
                .collect();
            let shown = unclaimed.is_empty()
                || manifests.iter().any(|m| {
                    m.cluster_id.as_deref() == Some(id)
                        && m.members
                            .iter()
                            .any(|x| attached.contains(x.volume_id.as_str()))
                });
            if !shown {
                return Err(refuse(
                    Diagnostic::new(
                        first_node_span(policy),
                        format!(
                            "no instance of cluster `{}` carries {}, and what its stores and resources record is id {id}, but no set manifest of that id has a member that is a volume of these instances ({}): the store may hold another cluster named `{}`",
                            cluster.name,
                            tags::CLUSTER_ID,
                            unclaimed.join(", "),
                            cluster.name
                        ),
                    )
                    .rule("R13")
                    .help(format!(
                        "if these instances are the cluster those sets were made of, state `cluster.id: {id}` in the policy or tag them: aws ec2 create-tags --resources {} --tags Key={},Value={id}; if not, give this cluster a store of its own",
                        unclaimed.join(" "),
                        tags::CLUSTER_ID
                    )),
                ));
            }
            return Ok(Identity {
                id: id.to_string(),
                how: How::Adopted,
                unclaimed,
            });
        }
        _ => {
            return Err(refuse(
                Diagnostic::new(
                    first_node_span(policy),
                    format!(
                        "no instance of cluster `{}` carries {}, and its stores and resources record {} ids ({}): two clusters named `{}` write to the same store, or the cluster was rebuilt beside its old self",
                        cluster.name,
                        tags::CLUSTER_ID,
                        recorded.len(),
                        recorded.iter().copied().collect::<Vec<_>>().join(", "),
                        cluster.name
                    ),
                )
                .rule("R13")
                .help(format!(
                    "state this cluster's id in the policy (`cluster.id: <id>`) or tag its instances with it (aws ec2 create-tags --resources <instances> --tags Key={},Value=<id>), and give each cluster its own store",
                    tags::CLUSTER_ID
                )),
            ));
        }
    }
    let mut h = Sha256::new();
    h.update(b"asdr cluster id\n");
    h.update(cluster.name.as_bytes());
    h.update(b"\n");
    h.update(home.as_bytes());
    // The stores too: two same-named clusters with no instance to tell them apart (every one
    // gone) still differ by where they keep their backups.
    h.update(b"\n");
    h.update(policy.backup.smd_to.as_bytes());
    let mut instances = unclaimed.clone();
    instances.sort();
    for i in &instances {
        h.update(b"\n");
        h.update(i.as_bytes());
    }
    let id = crate::hex(&h.finalize())[..16].to_string();
    Ok(Identity {
        id,
        how: How::Minted,
        unclaimed,
    })
}

/// The world without what carries another cluster's id: instances, volumes and snapshots tagged
/// with another `asdr:cluster-id`, and set manifests recording another. Borrowed when there is
/// nothing to leave out.
pub fn ours<'w>(world: &'w World, id: &str) -> Cow<'w, World> {
    let foreign_manifest = |m: &crate::manifest::ObservedManifest| {
        m.file
            .as_ref()
            .and_then(|f| f.manifest.cluster_id.as_deref())
            .is_some_and(|c| c != id)
    };
    let any = world.instances.iter().any(|i| is_foreign(&i.tags, id))
        || world.volumes.iter().any(|v| is_foreign(&v.tags, id))
        || world.snapshots.iter().any(|s| is_foreign(&s.tags, id))
        || world.set_manifests.iter().any(foreign_manifest)
        || world.asbackup_archives.iter().any(|a| foreign_run(a, id));
    if !any {
        return Cow::Borrowed(world);
    }
    let mut w = world.clone();
    w.instances.retain(|i| !is_foreign(&i.tags, id));
    w.volumes.retain(|v| !is_foreign(&v.tags, id));
    w.snapshots.retain(|s| !is_foreign(&s.tags, id));
    w.set_manifests.retain(|m| !foreign_manifest(m));
    w.asbackup_archives.retain(|a| !foreign_run(a, id));
    Cow::Owned(w)
}

/// Whether an asbackup run's manifest names another cluster id.
pub fn foreign_run(a: &crate::world::AsbackupArchive, id: &str) -> bool {
    a.cluster_id.as_deref().is_some_and(|c| c != id)
}

/// How many resources and asbackup runs named for cluster `name` carry another id: a
/// same-named cluster's (said by `status` and plans).
pub fn foreign_count(world: &World, name: &str, id: &str) -> usize {
    let named = |t: &Tags| t.get(tags::CLUSTER).map(String::as_str) == Some(name);
    let other = |t: &Tags| named(t) && is_foreign(t, id);
    world.instances.iter().filter(|i| other(&i.tags)).count()
        + world.volumes.iter().filter(|v| other(&v.tags)).count()
        + world.snapshots.iter().filter(|s| other(&s.tags)).count()
        + world
            .asbackup_archives
            .iter()
            .filter(|a| a.cluster.as_deref() == Some(name) && foreign_run(a, id))
            .count()
}

fn first_node_span(policy: &Policy) -> asdr_specs::Span {
    policy
        .cluster
        .nodes
        .first()
        .map(|n| n.name_span)
        .unwrap_or(policy.cluster.edition_span)
}

/// Snapshots of the cluster's own node volumes (attached to its nodes' instances now) that carry
/// another cluster id, by that id: the instances' id was changed (by hand, or by someone else),
/// and the cluster's own history now reads as another cluster's. Said, never acted on.
pub fn own_history_under_other_ids(
    policy: &Policy,
    world: &World,
    id: &str,
) -> BTreeMap<String, usize> {
    let home = policy.cluster.region.as_str();
    let attached: BTreeSet<&str> = policy
        .cluster
        .nodes
        .iter()
        .filter_map(|n| crate::nodes::find_instance(&policy.cluster, n, in_home(world, home)))
        .flat_map(|i| i.block_devices.iter().map(|b| b.volume_id.as_str()))
        .collect();
    let mut out = BTreeMap::new();
    // Snapshots the nodes' volumes made at home: a copy elsewhere (another region, a backup
    // account) names its source's volume but says nothing of the instances' tags.
    for s in &world.snapshots {
        if s.region.as_deref().unwrap_or(home) != home || tags::is_copy(&s.tags) {
            continue;
        }
        if let Some(other) = s.tags.get(tags::CLUSTER_ID).filter(|o| o.as_str() != id)
            && s.tags.get(tags::CLUSTER) == Some(&policy.cluster.name)
            && attached.contains(s.volume_id.as_str())
        {
            *out.entry(other.clone()).or_insert(0) += 1;
        }
    }
    out
}

/// The instances in the cluster's own region (none given: the cluster's).
fn in_home<'w>(
    world: &'w World,
    home: &'w str,
) -> impl Iterator<Item = &'w crate::world::Instance> {
    world
        .instances
        .iter()
        .filter(move |i| i.region.as_deref().unwrap_or(home) == home)
}

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
            How::Claimed => "carried by the other instances",
            How::Adopted => "recorded by the set manifests",
            How::Minted => "new",
        }
    }

    pub fn as_str(&self) -> &'static str {
        match self {
            How::Claimed => "tagged on the cluster's instances",
            How::Adopted => "recorded by the set manifests in the policy's stores",
            How::Minted => {
                "new, made from the cluster's name, region and instances; the first apply that changes anything claims it"
            }
        }
    }
}

/// Whether `tags` carry a cluster id other than `id` (a resource without one is judged by its
/// other tags, as before ids existed).
pub fn is_foreign(tags: &Tags, id: &str) -> bool {
    tags.get(tags::CLUSTER_ID).is_some_and(|t| t != id)
}

/// The cluster's id (see the module's comment), or a refusal when its instances carry two.
pub fn resolve(policy: &Policy, world: &World) -> Result<Identity, PlanError> {
    let cluster = &policy.cluster;
    let home = cluster.region.as_str();
    // The instances that are the policy's nodes: pinned by `instance_id`, else tagged for the
    // cluster and the node. A same-named cluster's instance of a node of the same name is among
    // them only by its tags, and its id then conflicts with ours.
    let mut ids: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut unclaimed = Vec::new();
    let mut seen = BTreeSet::new();
    for node in &cluster.nodes {
        for i in world.instances.iter().filter(|i| {
            i.region.as_deref().unwrap_or(home) == home
                && i.state != InstanceState::Terminated
                && match &node.instance_id {
                    Some(pinned) => &i.id == pinned,
                    None => {
                        i.tags.get(tags::NODE) == Some(&node.name)
                            && i.tags.get(tags::CLUSTER) == Some(&cluster.name)
                    }
                }
        }) {
            if !seen.insert(i.id.as_str()) {
                continue;
            }
            match i.tags.get(tags::CLUSTER_ID) {
                Some(id) => ids.entry(id.as_str()).or_default().push(i.id.as_str()),
                None => unclaimed.push(i.id.clone()),
            }
        }
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
                "pin each node's `instance_id` in the policy, or give one of the clusters another name; an instance that is this cluster's but carries the wrong id can be retagged: aws ec2 create-tags --resources <instance> --tags Key={},Value=<id>",
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
    let recorded: BTreeSet<&str> = manifests
        .iter()
        .filter_map(|m| m.cluster_id.as_deref())
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
                            "no instance of cluster `{}` carries {}, and the set manifests in its stores record id {id}, but none of their members is a volume of these instances ({}): the store may hold another cluster named `{}`",
                            cluster.name,
                            tags::CLUSTER_ID,
                            unclaimed.join(", "),
                            cluster.name
                        ),
                    )
                    .rule("R13")
                    .help(format!(
                        "if these instances are the cluster those sets were made of, tag them: aws ec2 create-tags --resources {} --tags Key={},Value={id}; if not, give this cluster a store of its own",
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
                        "no instance of cluster `{}` carries {}, and the set manifests in its stores record {} ids ({}): two clusters named `{}` write to the same store",
                        cluster.name,
                        tags::CLUSTER_ID,
                        recorded.len(),
                        recorded.iter().copied().collect::<Vec<_>>().join(", "),
                        cluster.name
                    ),
                )
                .rule("R13")
                .help(format!(
                    "tag this cluster's instances with its id (aws ec2 create-tags --resources <instances> --tags Key={},Value=<id>), and give each cluster its own store",
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
        || world.set_manifests.iter().any(foreign_manifest);
    if !any {
        return Cow::Borrowed(world);
    }
    let mut w = world.clone();
    w.instances.retain(|i| !is_foreign(&i.tags, id));
    w.volumes.retain(|v| !is_foreign(&v.tags, id));
    w.snapshots.retain(|s| !is_foreign(&s.tags, id));
    w.set_manifests.retain(|m| !foreign_manifest(m));
    Cow::Owned(w)
}

/// How many resources and manifests of the world carry another id (said by `status` and plans).
pub fn foreign_count(world: &World, id: &str) -> usize {
    world
        .instances
        .iter()
        .filter(|i| is_foreign(&i.tags, id))
        .count()
        + world
            .volumes
            .iter()
            .filter(|v| is_foreign(&v.tags, id))
            .count()
        + world
            .snapshots
            .iter()
            .filter(|s| is_foreign(&s.tags, id))
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

//! Which Aerospike node id a node's rendered aerospike.conf gets (`{{ node_id }}`), so a
//! replacement or a restored cluster rejoins as the nodes it replaces (R18): under strong
//! consistency a node with a new id is not in the roster, and its partitions stay unavailable.

use std::fmt;

use asdr_specs::{Node, Policy, canonical_node_id, derived_node_id};

use crate::observe::{BackupSet, NodeHealth, NodeView, Observed};

/// Where a node's id came from, newest knowledge first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// `cluster.nodes[].node_id` in the policy.
    Pinned,
    /// The `node` reply of the node, answering now.
    Answering,
    /// The manifest of a set that recorded it (the set's id).
    Set(String),
    /// The strong-consistency roster: the one id it holds that no node answers with, and the
    /// one node whose id is otherwise unknown.
    Roster,
    /// Never known: derived from the cluster's and node's names.
    Derived,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KnownId {
    pub id: String,
    pub source: IdSource,
}

impl fmt::Display for KnownId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.source {
            IdSource::Pinned => write!(f, "{} (pinned by the policy)", self.id),
            IdSource::Answering => write!(f, "{} (as the node answers now)", self.id),
            IdSource::Set(s) => write!(f, "{} (as set {s}'s manifest recorded it)", self.id),
            IdSource::Roster => write!(
                f,
                "{} (the roster's one member no node answers as)",
                self.id
            ),
            IdSource::Derived => write!(
                f,
                "{} (derived by asdr: no id of the node is known)",
                self.id
            ),
        }
    }
}

/// The id `node` is rendered with: the policy's pin; else, when the restore puts `set`'s SMD back
/// (its roster names the ids of that moment), the id the set recorded; else the id it answers
/// with now; else the newest recorded by any whole manifest of this cluster (a node re-ided since
/// an older set rejoins as what its peers knew last); else one derived from the names.
pub fn node_id(
    policy: &Policy,
    home: &Observed<'_>,
    node: &Node,
    set: Option<&BackupSet<'_>>,
    smd_from_set: bool,
) -> KnownId {
    if let Some(id) = &node.node_id {
        return KnownId {
            id: id.clone(),
            source: IdSource::Pinned,
        };
    }
    let recorded = |s: &BackupSet<'_>| {
        s.manifest
            .and_then(|m| m.node_ids.get(&node.name))
            .and_then(|id| canonical_node_id(id))
            .map(|id| KnownId {
                id,
                source: IdSource::Set(s.id.clone()),
            })
    };
    if smd_from_set && let Some(k) = set.and_then(recorded) {
        return k;
    }
    let answering = home
        .nodes
        .iter()
        .find(|v| v.name == node.name)
        .and_then(answering_id);
    if let Some(id) = answering {
        return KnownId {
            id,
            source: IdSource::Answering,
        };
    }
    if let Some(k) = home.sets.iter().rev().find_map(recorded) {
        return k;
    }
    if let Some(id) = roster_ghost(policy, home, node) {
        return KnownId {
            id,
            source: IdSource::Roster,
        };
    }
    KnownId {
        id: derived_node_id(&policy.cluster.name, &node.name),
        source: IdSource::Derived,
    }
}

/// The id a node answers with now (canonical), when it is healthy.
pub(crate) fn answering_id(view: &NodeView<'_>) -> Option<String> {
    if view.health != NodeHealth::Healthy {
        return None;
    }
    view.observation?
        .node_id
        .as_deref()
        .and_then(canonical_node_id)
}

/// The newest whole manifest of this cluster that recorded node ids.
fn newest_recorded<'w>(home: &Observed<'w>) -> Option<&'w crate::manifest::SetManifest> {
    home.sets
        .iter()
        .rev()
        .find_map(|s| s.manifest.filter(|m| !m.node_ids.is_empty()))
}

/// The ids the nodes answer with now, by node name, for a set's manifest.
pub fn answering_ids(home: &Observed<'_>) -> std::collections::BTreeMap<String, String> {
    home.nodes
        .iter()
        .filter_map(|v| Some((v.name.clone(), answering_id(v)?)))
        .collect()
}

/// The id other nodes of the cluster have: answering now, or recorded for them by the newest set
/// that recorded one.
fn ids_of_others<'a>(
    home: &'a Observed<'_>,
    node: &'a str,
) -> impl Iterator<Item = (String, String)> + 'a {
    let answering = home
        .nodes
        .iter()
        .filter(move |v| v.name != node)
        .filter_map(|v| Some((v.name.clone(), answering_id(v)?)));
    let recorded = newest_recorded(home).into_iter().flat_map(move |m| {
        m.node_ids
            .iter()
            .filter(move |(n, _)| n.as_str() != node)
            .filter_map(|(n, id)| Some((n.clone(), canonical_node_id(id)?)))
    });
    answering.chain(recorded)
}

/// R18 before a restore renders `nodes`' configs: an id that another node has (answering, or
/// recorded for it) is refused — two nodes with one id split the cluster; a pin or a set's id
/// that is not the id the node answers with or last recorded is said.
pub(crate) fn check(
    ctx: &crate::Ctx<'_, '_>,
    nodes: &[&str],
    set: Option<&BackupSet<'_>>,
    smd_from_set: bool,
    b: &mut crate::builder::Builder,
) -> Result<(), crate::error::PlanError> {
    for name in nodes {
        let node = ctx.policy_node(name);
        check_rack_kept(ctx, node)?;
        let known = node_id(ctx.policy, ctx.obs, node, set, smd_from_set);
        if let Some((other, _)) = ids_of_others(ctx.obs, name).find(|(_, id)| *id == known.id) {
            return Err(crate::error::refuse(
                asdr_specs::Diagnostic::new(
                    node.node_id_span,
                    format!(
                        "{name} would rejoin as node id {known}, which is node {other}'s: two nodes with one id split the cluster"
                    ),
                )
                .rule("R18")
                .help("pin each node's own id in `cluster.nodes[].node_id`, or remove the pin"),
            ));
        }
        // A node restored on its own instance keeps the id it runs with: a config that changes
        // it (a pin, or a template without `node-id` over a config with one) re-ides it.
        let view = ctx.obs.node(name);
        if !smd_from_set
            && view.health == NodeHealth::Healthy
            && let Some(o) = view.observation
        {
            let answering = answering_id(view);
            let rendered = crate::config::render(ctx.policy, node, &known.id);
            let said = asdr_specs::config_node_ids(&rendered.content);
            let running = o
                .config
                .as_deref()
                .map(asdr_specs::config_node_ids)
                .unwrap_or_default();
            let change = match said.as_slice() {
                [] => (!running.is_empty()).then(|| {
                    "an id derived from its MAC (the template sets no `node-id`)".to_string()
                }),
                [id] => answering
                    .as_ref()
                    .filter(|a| *a != id)
                    .map(|_| format!("node id {known}")),
                _ => None,
            };
            if let Some(to) = change {
                let was = answering.unwrap_or_else(|| "its id".into());
                let message = format!(
                    "restoring {name} in place would change its node id from {was} to {to}: it would rejoin as another node"
                );
                if !crate::restore::consistency::sc_namespaces(ctx).is_empty() {
                    return Err(crate::error::refuse(
                        asdr_specs::Diagnostic::new(
                            node.node_id_span,
                            format!("{message}, outside the strong-consistency roster"),
                        )
                        .rule("R19")
                        .help("render the id the node runs with (`node-id {{ node_id }}`, or pin that id), or change ids in a roster change of its own"),
                    ));
                }
                b.warn("R18", message);
                continue;
            }
        }
        let unpinned = node_id(
            ctx.policy,
            ctx.obs,
            &Node {
                node_id: None,
                ..node.clone()
            },
            set,
            smd_from_set,
        );
        if known.source != IdSource::Derived
            && unpinned.source != IdSource::Derived
            && unpinned.id != known.id
        {
            b.warn(
                "R18",
                format!("{name} is rendered as node id {known}, but it was {unpinned}: it rejoins as another node"),
            );
        }
    }
    Ok(())
}

/// The id the strong-consistency roster holds for `node` when that is unambiguous: the roster
/// has exactly one id no answering node has and no other node is known by (pin or manifest),
/// and `node` is the only node that does not answer and has no id known otherwise.
fn roster_ghost(policy: &Policy, home: &Observed<'_>, node: &Node) -> Option<String> {
    let roster = crate::restore::consistency::observed_roster(home.world)?;
    let newest = newest_recorded(home);
    let known_otherwise = |n: &Node| -> Option<String> {
        n.node_id.clone().or_else(|| {
            home.nodes
                .iter()
                .find(|v| v.name == n.name)
                .and_then(answering_id)
                .or_else(|| {
                    newest
                        .and_then(|m| m.node_ids.get(&n.name))
                        .and_then(|i| canonical_node_id(i))
                })
        })
    };
    let known: Vec<String> = policy
        .cluster
        .nodes
        .iter()
        .filter_map(known_otherwise)
        .collect();
    let ghosts: Vec<&String> = roster.iter().filter(|r| !known.contains(r)).collect();
    let unknown: Vec<&Node> = policy
        .cluster
        .nodes
        .iter()
        .filter(|n| known_otherwise(n).is_none())
        .collect();
    match (ghosts.as_slice(), unknown.as_slice()) {
        ([id], [only]) if only.name == node.name => Some((*id).clone()),
        _ => None,
    }
}

/// R4 in a rack-aware cluster: a node comes back in the rack it ran in. The zone it ran in is
/// its instance's (even terminated, while EC2 still lists it) or its volumes'; a policy that moved
/// the node to a zone of another rack would rebuild it there silently, leaving its rack short.
fn check_rack_kept(ctx: &crate::Ctx<'_, '_>, node: &Node) -> Result<(), crate::error::PlanError> {
    let racks = &ctx.policy.cluster.racks;
    if racks.is_empty() {
        return Ok(());
    }
    let view = ctx.obs.node(&node.name);
    let ran_in = view
        .instance
        .map(|i| i.availability_zone.clone())
        .or_else(|| {
            view.volumes
                .iter()
                .find_map(|d| d.volume.or_else(|| d.candidates.first().copied()))
                .map(|v| v.availability_zone.clone())
        });
    let Some(zone) = ran_in.filter(|z| *z != node.availability_zone) else {
        return Ok(());
    };
    let now = ctx.policy.cluster.rack_of(node);
    let was = racks.get(&zone).copied();
    if was == Some(now) {
        return Ok(());
    }
    Err(crate::error::refuse(
        asdr_specs::Diagnostic::new(
            node.name_span,
            format!(
                "{} ran in {zone} ({}) and the policy now puts it in {} (rack {now}): it would come back in another rack, leaving its own a node short",
                node.name,
                was.map_or("no rack of `racks`".to_string(), |r| format!("rack {r}")),
                node.availability_zone
            ),
        )
        .rule("R4")
        .help("restore the node in its own zone; moving a rack's nodes to another zone is a zone-loss restore (`restores[].zone`), and a node that stays in another zone names its rack (`cluster.nodes[].rack`)"),
    ))
}

/// R18: say when a restored node will not rejoin as the node it was. A node on its own instance
/// keeps its MAC-derived id without a `node-id`; a new instance does not.
pub(crate) fn warn_identity(
    node: &Node,
    known: &KnownId,
    rendered: &[String],
    new_instance: bool,
    b: &mut crate::builder::Builder,
) {
    match rendered {
        [] if new_instance => b.warn(
            "R18",
            format!(
                "{} gets a new instance and the config template sets no `node-id`: it rejoins as a new node (its id derives from the new MAC), not as {known}; under strong consistency it is outside the roster. Put `node-id {{{{ node_id }}}}` in the template's service context to keep it",
                node.name
            ),
        ),
        [] => {}
        [id] if *id == known.id => {
            if known.source == IdSource::Derived && new_instance {
                b.warn(
                    "R18",
                    format!(
                        "no id of {} is known (it does not answer and no set's manifest records one): it rejoins as {}, derived by asdr; pin the id in `cluster.nodes[].node_id` if it had another",
                        node.name, known.id
                    ),
                );
            }
        }
        ids => b.warn(
            "R18",
            format!(
                "{}'s rendered config sets `node-id {}`, not its id {known}: it rejoins as another node",
                node.name,
                ids.join("`, `node-id ")
            ),
        ),
    }
}

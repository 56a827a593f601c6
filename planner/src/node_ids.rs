//! Which Aerospike node id a node's rendered aerospike.conf gets (`{{ node_id }}`), so a
//! replacement or a restored cluster rejoins as the nodes it replaces (R18): under strong
//! consistency a node with a new id is not in the roster, and its partitions stay unavailable.

use std::fmt;

use asdr_specs::{Node, Policy, canonical_node_id, derived_node_id};

use crate::observe::{BackupSet, NodeHealth, Observed};

/// Where a node's id came from, newest knowledge first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IdSource {
    /// `cluster.nodes[].node_id` in the policy.
    Pinned,
    /// The `node` reply of the node, answering now.
    Answering,
    /// The manifest of a set that recorded it (the set's id).
    Set(String),
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
            IdSource::Derived => write!(
                f,
                "{} (derived by asdr: no id of the node is known)",
                self.id
            ),
        }
    }
}

/// The id `node` is rendered with: the policy's pin; else the id it answers with now; else the
/// one `set`'s manifest recorded (the set a restore replays); else the newest recorded by any
/// whole manifest of this cluster; else one derived from the names.
pub fn node_id(
    policy: &Policy,
    home: &Observed<'_>,
    node: &Node,
    set: Option<&BackupSet<'_>>,
) -> KnownId {
    if let Some(id) = &node.node_id {
        return KnownId {
            id: id.clone(),
            source: IdSource::Pinned,
        };
    }
    let answering = home
        .nodes
        .iter()
        .find(|v| v.name == node.name && v.health == NodeHealth::Healthy)
        .and_then(|v| v.observation)
        .and_then(|o| o.node_id.as_deref())
        .and_then(canonical_node_id);
    if let Some(id) = answering {
        return KnownId {
            id,
            source: IdSource::Answering,
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
    if let Some(k) = set.and_then(recorded) {
        return k;
    }
    if let Some(k) = home.sets.iter().rev().find_map(recorded) {
        return k;
    }
    KnownId {
        id: derived_node_id(&policy.cluster.name, &node.name),
        source: IdSource::Derived,
    }
}

/// The ids the nodes answer with now, by node name, for a set's manifest.
pub fn answering_ids(home: &Observed<'_>) -> std::collections::BTreeMap<String, String> {
    home.nodes
        .iter()
        .filter(|v| v.health == NodeHealth::Healthy)
        .filter_map(|v| {
            let id = v
                .observation?
                .node_id
                .as_deref()
                .and_then(canonical_node_id)?;
            Some((v.name.clone(), id))
        })
        .collect()
}

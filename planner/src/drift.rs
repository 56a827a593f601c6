//! Drift: what the world shows of the cluster that the policy does not declare. A node the policy
//! does not name is in no backup set and no restore, and a plan that ignores it silently blames
//! what it does know for what it sees; so it is said, in every plan and in `status`.

use asdr_specs::Policy;

use crate::world::{InstanceState, World};

/// One thing found and not declared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Drift {
    pub message: String,
    /// It takes part in the cluster now (runs, answers, or is counted by a node): its data is in
    /// no backup set, so the cluster's recovery is not whole. A stopped leftover is only said.
    pub active: bool,
}

/// Instances tagged for the cluster with a node name the policy lacks, node records or replies of
/// undeclared nodes, and nodes that count more members than the policy declares. Drills' stand-ins
/// and instances in other regions (a region restore's) are not drift.
pub fn undeclared(policy: &Policy, world: &World) -> Vec<Drift> {
    let cluster = &policy.cluster;
    let declared = |name: &str| cluster.nodes.iter().any(|n| n.name == name);
    let mut out = Vec::new();
    for i in &world.instances {
        let home = i.region.as_deref().is_none_or(|r| r == cluster.region);
        let gone = matches!(
            i.state,
            InstanceState::Terminated | InstanceState::ShuttingDown
        );
        if !home || gone || i.tags.contains_key(crate::drill::DRILL) {
            continue;
        }
        if i.tags.get(crate::tags::CLUSTER) != Some(&cluster.name) {
            continue;
        }
        let Some(node) = i.tags.get(crate::tags::NODE).filter(|n| !declared(n)) else {
            continue;
        };
        // A declared node's own instance (pinned, or at its address) whose node tag says
        // another name is not an undeclared node: its tag is what drifted.
        if let Some(owner) = cluster.nodes.iter().find(|n| {
            n.instance_id.as_deref() == Some(i.id.as_str())
                || i.private_ip.as_deref() == Some(n.private_ip.to_string().as_str())
        }) {
            out.push(Drift {
                message: format!(
                    "instance {} is node `{}`'s ({}), but is tagged {}={node}: set its tag back (aws ec2 create-tags --resources {} --tags Key={},Value={})",
                    i.id,
                    owner.name,
                    if owner.instance_id.as_deref() == Some(i.id.as_str()) {
                        "its pinned instance_id".to_string()
                    } else {
                        format!("at its address {}", owner.private_ip)
                    },
                    crate::tags::NODE,
                    i.id,
                    crate::tags::NODE,
                    owner.name
                ),
                active: false,
            });
            continue;
        }
        let active = matches!(i.state, InstanceState::Running | InstanceState::Pending);
        out.push(Drift {
            message: format!(
                "instance {} ({}, {}) is tagged {}={} and {}={node}, but the policy declares no node `{node}`{}: {}",
                i.id,
                i.private_ip.as_deref().unwrap_or("no address"),
                state_word(i.state),
                crate::tags::CLUSTER,
                cluster.name,
                crate::tags::NODE,
                typo_of(node, policy),
                if active {
                    "its volumes are in no backup set; declare it in cluster.nodes, or remove its asdr tags if it is not this cluster's"
                } else {
                    "declare it in cluster.nodes if it comes back, or remove its asdr tags"
                }
            ),
            active,
        });
    }
    // A stand-in's record (`a1@quarterly`: a drill's or a region restore's node) is not drift.
    for o in world
        .nodes
        .iter()
        .filter(|o| !declared(&o.name) && !o.name.contains('@'))
    {
        out.push(Drift {
            message: format!(
                "node `{}` is observed ({}) but the policy declares no such node{}: new backup sets leave it out; declare it in cluster.nodes",
                o.name,
                if o.reachable {
                    "Aerospike answers"
                } else {
                    "not answering"
                },
                typo_of(&o.name, policy)
            ),
            active: o.reachable,
        });
    }
    // A member the policy does not name, untagged or at an address it does not know: the nodes
    // count it.
    // The largest count, said by the first node (in the policy's order) that reports it.
    let mut size: Option<(u32, &str)> = None;
    for n in &cluster.nodes {
        let Some(s) = world
            .nodes
            .iter()
            .find(|o| o.name == n.name && o.reachable)
            .and_then(|o| o.cluster_size)
        else {
            continue;
        };
        if size.is_none_or(|(b, _)| s > b) {
            size = Some((s, n.name.as_str()));
        }
    }
    if let Some((size, by)) = size.filter(|(s, _)| *s as usize > cluster.nodes.len()) {
        out.push(Drift {
            message: format!(
                "node {by} sees a cluster of {size} nodes, but the policy declares {}: {} member(s) the policy does not name are in no backup set; declare every node in cluster.nodes",
                cluster.nodes.len(),
                size as usize - cluster.nodes.len()
            ),
            active: true,
        });
    }
    out
}

/// ` (a typo of `node-a1`?)` when a declared node's name is one edit away: the policy may be the
/// one that is wrong.
fn typo_of(name: &str, policy: &Policy) -> String {
    // Short names (`c1`, `a3`) are one edit from each other by design: no guess there.
    if name.chars().count() < 4 {
        return String::new();
    }
    asdr_specs::suggest::closest(name, policy.cluster.nodes.iter().map(|n| n.name.as_str()))
        .map(|c| format!(" (a typo of `{c}`?)"))
        .unwrap_or_default()
}

fn state_word(s: InstanceState) -> &'static str {
    match s {
        InstanceState::Pending => "pending",
        InstanceState::Running => "running",
        InstanceState::ShuttingDown => "shutting down",
        InstanceState::Terminated => "terminated",
        InstanceState::Stopping => "stopping",
        InstanceState::Stopped => "stopped",
    }
}

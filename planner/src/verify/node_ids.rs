//! R18: a node whose aerospike.conf the plan writes rejoins as the node it was. Read from the
//! plan's `write_config` steps and the world, apart from how the planner chose the id.

use std::collections::{BTreeMap, BTreeSet};

use asdr_specs::{canonical_node_id, config_node_ids};

use super::*;

/// Every written config sets at most one `node-id`, a valid one; the policy's pinned id when it
/// pins one; else, when it sets one, the id the node answers with now or one a manifest of this
/// cluster recorded for it (a node known by neither may get any).
pub(super) fn node_ids(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    if !plan
        .steps
        .iter()
        .any(|s| matches!(s.params, Params::WriteConfig(_)))
    {
        return Vec::new();
    }
    let by_set = recorded(policy, world);
    let smd_sets: BTreeMap<&str, &str> = plan
        .steps
        .iter()
        .filter_map(|x| match &x.params {
            Params::RestoreSmd(r) => Some((x.node.as_deref()?, r.set.as_str())),
            _ => None,
        })
        .collect();
    let mut bad = Vec::new();
    let mut racks = Vec::new();
    for s in &plan.steps {
        let Params::WriteConfig(p) = &s.params else {
            continue;
        };
        // A drill's stand-in is `<node>@<drill>`: it renders as its production node.
        let Some(name) = s.node.as_deref().map(|n| n.split('@').next().unwrap_or(n)) else {
            continue;
        };
        let Some(node) = policy.node(name) else {
            continue;
        };
        // R4: a rack-aware cluster's node (or its stand-in) keeps its rack in every namespace.
        if !policy.cluster.racks.is_empty() {
            let rack = policy.cluster.rack_of(node).to_string();
            if let Some((ns, said)) = asdr_specs::config_rack_ids(&p.content)
                .into_iter()
                .find(|(_, r)| r.as_deref() != Some(rack.as_str()))
            {
                racks.push((s, format!(
                    "writes a config whose namespace {ns} sets {}, but {name} is in rack {rack}: it would join another rack",
                    said.map_or("no `rack-id`".to_string(), |r| format!("`rack-id {r}`"))
                )));
            }
        }
        let said = config_node_ids(&p.content);
        if let Some(pinned) = &node.node_id {
            if said.as_slice() != std::slice::from_ref(pinned) {
                let found = if said.is_empty() {
                    "no `node-id`".to_string()
                } else {
                    format!("`node-id {}`", said.join("`, `node-id "))
                };
                bad.push((s, format!("writes a config with {found}, but the policy pins {name}'s id {pinned}: the node would rejoin as another node")));
            }
            continue;
        }
        let id = match said.as_slice() {
            [] => continue,
            [id] => id,
            many => {
                bad.push((
                    s,
                    format!("writes a config setting `node-id` {} times", many.len()),
                ));
                continue;
            }
        };
        if canonical_node_id(id).as_deref() != Some(id.as_str()) {
            bad.push((
                s,
                format!("writes a config with `node-id {id}`, which is no node id"),
            ));
            continue;
        }
        // A node whose SMD is put back from a set rejoins under that set's roster: the id the
        // set's manifest recorded for it is its own.
        if let Some(set) = s.node.as_deref().and_then(|n| smd_sets.get(n))
            && by_set.get(*set).and_then(|ids| ids.get(name)) == Some(id)
        {
            continue;
        }
        let answering = world
            .nodes
            .iter()
            .find(|o| o.name == name && o.reachable)
            .and_then(|o| o.node_id.as_deref())
            .and_then(canonical_node_id);
        let recorded: BTreeSet<&String> = by_set.values().filter_map(|ids| ids.get(name)).collect();
        let fits = match &answering {
            Some(a) => a == id,
            None => recorded.is_empty() || recorded.contains(id),
        };
        if !fits {
            let known = answering.map_or_else(
                || {
                    format!(
                        "recorded as {}",
                        recorded
                            .into_iter()
                            .map(String::as_str)
                            .collect::<Vec<_>>()
                            .join(" or ")
                    )
                },
                |a| format!("answering as {a}"),
            );
            bad.push((s, format!("writes a config with `node-id {id}`, but {name} is {known}: it would rejoin as another node")));
        }
    }
    let rule = |r: &'static str| {
        move |(s, m): (&Step, String)| Violation {
            rule: r,
            step: Some(s.id.clone()),
            message: m,
        }
    };
    bad.into_iter()
        .map(rule("R18"))
        .chain(racks.into_iter().map(rule("R4")))
        .collect()
}

/// What each whole manifest of this cluster recorded: set → node → canonical id. Read once per
/// verification: checking a manifest hashes it, and a 256-node plan has 256 configs to read.
pub(super) type Recorded = BTreeMap<String, BTreeMap<String, String>>;

pub(super) fn recorded(policy: &Policy, world: &World) -> Recorded {
    let mut out = Recorded::new();
    for m in &world.set_manifests {
        let Some(f) = m.file.as_ref() else { continue };
        if f.manifest.cluster != policy.cluster.name || f.check().is_err() {
            continue;
        }
        let ids = out.entry(m.set.clone()).or_default();
        for (node, id) in &f.manifest.node_ids {
            if let Some(id) = canonical_node_id(id) {
                ids.insert(node.clone(), id);
            }
        }
    }
    out
}

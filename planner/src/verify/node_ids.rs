//! R18: a node whose aerospike.conf the plan writes rejoins as the node it was. Read from the
//! plan's `write_config` steps and the world, apart from how the planner chose the id.

use std::collections::BTreeSet;

use asdr_specs::{canonical_node_id, config_node_ids};

use super::*;

/// Every written config sets at most one `node-id`, a valid one; the policy's pinned id when it
/// pins one; else, when it sets one, the id the node answers with now or one a manifest of this
/// cluster recorded for it (a node known by neither may get any).
pub(super) fn node_ids(policy: &Policy, world: &World, plan: &Plan) -> Vec<Violation> {
    let mut bad = Vec::new();
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
        let answering = world
            .nodes
            .iter()
            .find(|o| o.name == name && o.reachable)
            .and_then(|o| o.node_id.as_deref())
            .and_then(canonical_node_id);
        let recorded: BTreeSet<String> = world
            .set_manifests
            .iter()
            .filter_map(|m| m.file.as_ref())
            .filter(|f| f.check().is_ok() && f.manifest.cluster == policy.cluster.name)
            .filter_map(|f| f.manifest.node_ids.get(name))
            .filter_map(|id| canonical_node_id(id))
            .collect();
        let fits = match &answering {
            Some(a) => a == id,
            None => recorded.is_empty() || recorded.contains(id),
        };
        if !fits {
            let known = answering.map_or_else(
                || {
                    format!(
                        "recorded as {}",
                        recorded.into_iter().collect::<Vec<_>>().join(" or ")
                    )
                },
                |a| format!("answering as {a}"),
            );
            bad.push((s, format!("writes a config with `node-id {id}`, but {name} is {known}: it would rejoin as another node")));
        }
    }
    bad.into_iter()
        .map(|(s, m)| Violation {
            rule: "R18",
            step: Some(s.id.clone()),
            message: m,
        })
        .collect()
}

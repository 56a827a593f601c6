//! aerospike.conf for a node: rendered from the policy's template, shown as a unified diff against
//! what the node runs now (R4: a replacement is configured exactly as the node it replaces).

use asdr_specs::{Node, Policy};
use similar::TextDiff;

pub struct RenderedConfig {
    pub path: String,
    pub content: String,
}

/// The config of `node`, rendered with `node_id` as its `{{ node_id }}` (R18).
pub fn render(policy: &Policy, node: &Node, node_id: &str) -> RenderedConfig {
    let peers: Vec<std::net::Ipv4Addr> =
        policy.cluster.nodes.iter().map(|n| n.private_ip).collect();
    let rack = policy.cluster.rack_of(node);
    render_for(policy, &policy.cluster.name, node, &peers, node_id, rack)
}

/// The config of `node` in a cluster named `cluster_name` whose members are at `peers`: a
/// drill's stand-ins render with the drill's own name and addresses.
pub fn render_for(
    policy: &Policy,
    cluster_name: &str,
    node: &Node,
    peers: &[std::net::Ipv4Addr],
    node_id: &str,
    rack_id: u32,
) -> RenderedConfig {
    let cluster = &policy.cluster;
    let vars = asdr_specs::NodeVars::new(cluster_name, node);
    let content = cluster
        .config
        .template
        .render(asdr_specs::config_vars_for(
            cluster,
            cluster_name,
            node,
            peers,
            node_id,
            rack_id,
        ))
        .expect("validation rendered the config template for every node");
    RenderedConfig {
        path: crate::observe::render(&cluster.config.path, &vars),
        content,
    }
}

/// A unified diff from `current` (empty for a new instance) to `rendered`; None when equal.
pub fn diff(current: Option<&str>, rendered: &str, path: &str) -> Option<String> {
    let current = current.unwrap_or("");
    if current == rendered {
        return None;
    }
    let diff = TextDiff::from_lines(current, rendered);
    let old = if current.is_empty() {
        "/dev/null".to_string()
    } else {
        format!("{path} (current)")
    };
    Some(
        diff.unified_diff()
            .context_radius(3)
            .header(&old, &format!("{path} (rendered)"))
            .to_string(),
    )
}

/// R5: the config a node starts with names its devices as the policy does, each shadow beside
/// its primary: the start checks the policy's paths on the node, so a template that renders
/// other paths (or swaps a primary and its shadow) would be checked against the wrong disks.
pub fn check_device_lines(
    policy: &Policy,
    node: &Node,
    vars: &asdr_specs::NodeVars,
    content: &str,
) -> Result<(), crate::error::PlanError> {
    if let Some((ns, got, want)) =
        asdr_specs::config_device_mismatch(&policy.cluster.namespaces, vars, content)
    {
        return Err(crate::error::refuse(
            asdr_specs::Diagnostic::new(
                ns.name_span,
                format!(
                    "the config template renders namespace `{}` of node `{}` with [{got}], but the policy says [{want}]: the node would open other disks than the ones asdr checks before it starts it",
                    ns.name, node.name
                ),
            )
            .rule("R5")
            .help("render each device as `device {{ d.device }}{% if d.shadow %} {{ d.shadow }}{% endif %}` from `ns.devices`, or make the policy's paths say what the template writes"),
        ));
    }
    Ok(())
}

use crate::args::Global;
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;

/// `asdr validate`: parse and check the policy; no network, no world.
pub fn cmd_validate(g: &Global) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let c = &policy.cluster;
    if g.json {
        print(&json(&serde_json::json!({
            "valid": true,
            "file": policy.path,
            "cluster": c.name,
            "nodes": c.nodes.len(),
            "namespaces": c.namespaces.len(),
            "restores": policy.restores.iter().map(|r| r.name.clone()).collect::<Vec<_>>(),
        }))?)?;
    } else if !g.quiet {
        print(&format!(
            "{}: valid: cluster {} ({} nodes, {} namespaces, backup {} every {}, {} restores)\n",
            policy.path,
            c.name,
            c.nodes.len(),
            c.namespaces.len(),
            policy.backup.consistency,
            policy.backup.every,
            policy.restores.len()
        ))?;
    }
    Ok(0)
}

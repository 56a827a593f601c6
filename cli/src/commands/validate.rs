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
            "notes": policy.notes,
        }))?)?;
    } else if !g.quiet {
        print(&format!(
            "{}: valid: cluster {} ({}, {}, backup {} every {}, {})\n",
            policy.path,
            c.name,
            count(c.nodes.len(), "node"),
            count(c.namespaces.len(), "namespace"),
            policy.backup.consistency,
            policy.backup.every,
            count(policy.restores.len(), "restore")
        ))?;
        for note in &policy.notes {
            print(&format!("{note}\n"))?;
        }
    }
    Ok(0)
}

/// "1 namespace", "2 namespaces".
fn count(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

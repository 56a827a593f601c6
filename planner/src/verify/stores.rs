//! What a plan hands to stores and tools outside asdr: the SMD stores of copy regions, and the
//! options asbackup and asrestore are run with. Both were guarded by validation alone; read
//! from the plan's steps here, a validation gap cannot reach the world.

use super::*;

/// asbackup and asrestore get only their own options, never one asdr sets itself (the
/// namespace, the directory, the cut-off of an incremental…), one that makes a run partial
/// or changes what asrestore writes, or the other tool's: a set made with them would be
/// counted whole while holding something else.
pub(super) fn tool_args(plan: &Plan) -> Vec<Violation> {
    let mut bad = Vec::new();
    for s in &plan.steps {
        let (tool, problems) = match &s.params {
            Params::Asbackup(p) => ("asbackup", asdr_specs::asbackup_arg_problems(&p.tool.args)),
            Params::Asrestore(p) => (
                "asrestore",
                asdr_specs::asrestore_arg_problems(&p.tool.args),
            ),
            _ => continue,
        };
        for p in problems {
            bad.push((s, format!("{tool} is run with {p}")));
        }
    }
    bad.into_iter()
        .map(|(s, m)| violation("tools", s, m))
        .collect()
}

/// What a plan writes for a copy region (its SMD archives, its manifests) goes to a store
/// apart from the cluster's own: an S3 bucket lives in one region, so a copy region's
/// archive in the home bucket is lost with the home region, and a file store inside the
/// home store's directory is the same disk.
pub(super) fn copy_stores(policy: &Policy, plan: &Plan) -> Vec<Violation> {
    let home = policy.backup.smd_to.as_str();
    let home_region = policy.cluster.region.as_str();
    let mut bad = Vec::new();
    for s in &plan.steps {
        let Some(region) = s.region.as_deref().filter(|r| *r != home_region) else {
            continue;
        };
        let to = match &s.params {
            Params::CopySmdArchive(p) => p.to.as_str(),
            Params::WriteManifest(p) => p.uri.as_str(),
            _ => continue,
        };
        if let Some(why) = asdr_specs::shares_home_store(to, home) {
            bad.push((
                s,
                format!(
                    "writes {to} for {region}, which {why}: it would be lost with {home_region}"
                ),
            ));
        }
    }
    bad.into_iter()
        .map(|(s, m)| violation("R16", s, m))
        .collect()
}

fn violation(rule: &'static str, step: &Step, message: String) -> Violation {
    Violation {
        rule,
        step: Some(step.id.clone()),
        message,
    }
}

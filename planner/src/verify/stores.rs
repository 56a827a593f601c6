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

/// Every store a plan reads, writes or deletes in is one the policy names (`backup.smd_to`,
/// each copy's `smd_to`, `asbackup.to`): a URI taken from a world file, a store's listing or an
/// edited plan never sends an archive elsewhere, unpacks one from elsewhere, or deletes under
/// another directory. A path that climbs (`..`) is refused wherever it points.
pub(super) fn confined(policy: &Policy, plan: &Plan) -> Vec<Violation> {
    let stores: Vec<&str> = std::iter::once(policy.backup.smd_to.as_str())
        .chain(policy.backup.copies.iter().map(|c| c.smd_to.as_str()))
        .chain(policy.backup.asbackup.as_ref().map(|a| a.to.as_str()))
        .map(|s| s.trim_end_matches('/'))
        .collect();
    let inside = |uri: &str| {
        !uri.split('/').any(|seg| seg == "..")
            && stores.iter().any(|s| {
                uri.trim_end_matches('/')
                    .strip_prefix(s)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('/'))
            })
    };
    let mut bad = Vec::new();
    for s in &plan.steps {
        let uris: Vec<&str> = match &s.params {
            Params::CopySmd(p) => vec![p.to.as_str()],
            Params::CopySmdArchive(p) => vec![p.from.as_str(), p.to.as_str()],
            Params::RestoreSmd(p) => vec![p.from.as_str()],
            Params::CheckSmdArchive(p) => vec![p.uri.as_str()],
            Params::RetainFiles(p) => p
                .uris
                .iter()
                .chain(&p.directories)
                .map(String::as_str)
                .collect(),
            Params::WriteManifest(p) => std::iter::once(p.uri.as_str())
                .chain(p.smd.iter().map(|a| a.uri.as_str()))
                .collect(),
            Params::DeleteBackup(p) => std::iter::once(p.to.as_str())
                .chain(p.directories.iter().map(String::as_str))
                .collect(),
            Params::Asbackup(p) => vec![p.to.as_str()],
            Params::Asrestore(p) => p.directories.iter().map(String::as_str).collect(),
            _ => continue,
        };
        for uri in uris {
            if !inside(uri) {
                bad.push((
                    s,
                    format!(
                        "{uri} is outside the stores the policy names ({}): asdr reads, writes and deletes only there",
                        stores.join(", ")
                    ),
                ));
            }
        }
    }
    bad.into_iter()
        .map(|(s, m)| violation("R13", s, m))
        .collect()
}

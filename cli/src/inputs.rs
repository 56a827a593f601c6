//! Loading what a command needs: the policy, a session over it (the world observed once), and
//! plans made from them.

use asdr_engine::{Knobs, Session, Source};
use asdr_planner::{Operation, Plan, World};
use asdr_specs::Policy;

use crate::args::Global;
use crate::error::CommandError;

pub fn policy(global: &Global) -> Result<Policy, CommandError> {
    let policy = asdr_specs::load(&global.file)?;
    // The cluster lives in its own region: `--region` may only say so again. Another would
    // observe (and act on) another region's resources as if they were the cluster's home.
    if let Some(region) = &global.region
        && *region != policy.cluster.region
    {
        return Err(CommandError::User(format!(
            "--region {region} is not the cluster's region ({} in {}): asdr acts in the cluster's region and reaches others through the policy (backup.copies, restores[].region); drop --region or correct cluster.region",
            policy.cluster.region,
            global.file.display()
        )));
    }
    Ok(policy)
}

/// Where the world comes from: `--world` (with `--live-nodes`), else AWS.
pub fn source(global: &Global) -> Source {
    match &global.world {
        Some(path) => Source::WorldFile {
            path: path.clone(),
            live_nodes: global.live_nodes,
        },
        None => Source::Aws,
    }
}

pub fn aws(global: &Global) -> asdr_providers::live::AwsSettings {
    asdr_providers::live::AwsSettings {
        region: global.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
        profile: global.profile.clone(),
    }
}

/// A session over the policy: AWS settings and the environment's knobs read once here.
pub fn session(global: &Global) -> Result<Session, CommandError> {
    let policy = policy(global)?;
    Session::open(
        policy,
        source(global),
        aws(global),
        Knobs::from_env(),
        global.verbose > 0,
    )
    .map_err(|e| CommandError::User(e.to_string()))
}

/// The observed world; a world file needs no policy unless its nodes are live.
pub fn world(global: &Global, policy: Option<&Policy>) -> Result<World, CommandError> {
    let rt = asdr_engine::runtime().map_err(|e| CommandError::User(e.to_string()))?;
    asdr_engine::observe(
        &rt,
        policy,
        &source(global),
        &aws(global),
        global.verbose > 0,
    )
    .map_err(|e| CommandError::User(e.to_string()))
}

pub fn operation(restore: Option<&str>) -> Operation {
    restore.map_or(Operation::Backup, |r| Operation::Restore(r.to_string()))
}

pub fn plan(global: &Global, restore: Option<&str>) -> Result<Plan, CommandError> {
    plan_op(global, &operation(restore))
}

pub fn plan_op(global: &Global, op: &Operation) -> Result<Plan, CommandError> {
    let session = session(global)?;
    session
        .plan(op)
        .map(|(plan, _)| plan)
        .map_err(|e| CommandError::engine(&session.policy, e))
}

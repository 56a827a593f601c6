//! Loading what a command needs: the policy, the world, and a plan made from them.

use asdr_planner::{Operation, Plan, PlanError, World};
use asdr_providers::world_file;
use asdr_specs::Policy;
use time::OffsetDateTime;

use crate::args::Global;
use crate::error::CommandError;

pub fn policy(global: &Global) -> Result<Policy, CommandError> {
    Ok(asdr_specs::load(&global.file)?)
}

/// The observed world: with `--world`, a world file (its node records and asbackup sets refreshed
/// from the nodes and the store under `--live-nodes`); without it, AWS, the nodes and the stores,
/// observed now.
pub fn world(global: &Global, policy: Option<&Policy>) -> Result<World, CommandError> {
    let Some(path) = &global.world else {
        // AWS, the nodes and the SMD store, observed now.
        let policy = policy
            .ok_or_else(|| CommandError::User("observing AWS needs the policy (-f)".into()))?;
        let (world, calls) = runtime()?
            .block_on(asdr_providers::live::observe_aws(policy, &aws(global)))
            .map_err(CommandError::User)?;
        if global.verbose > 0 {
            eprintln!(
                "observed cluster {} with {calls} EC2 API calls",
                policy.cluster.name
            );
        }
        return Ok(world);
    };
    let world = world_file::load(path)?;
    if !global.live_nodes {
        return Ok(world);
    }
    let policy = policy.ok_or_else(|| {
        CommandError::User("--live-nodes needs the policy (-f) to know the nodes' addresses".into())
    })?;
    let aws = aws(global);
    runtime()?.block_on(async {
        let mut world = asdr_providers::live::refresh_nodes(policy, world).await;
        // The real nodes write asbackup sets to the real store: what is there is read from it.
        if policy.backup.method == asdr_specs::Method::Asbackup {
            let store = asdr_providers::live::smd_store(policy, &aws).await;
            world.asbackup_archives = asdr_providers::live::asbackup_archives(policy, &store)
                .await
                .map_err(CommandError::User)?;
        }
        Ok(world)
    })
}

pub fn runtime() -> Result<tokio::runtime::Runtime, CommandError> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|e| CommandError::User(format!("cannot start the runtime: {e}")))
}

pub fn aws(global: &Global) -> asdr_providers::live::AwsSettings {
    asdr_providers::live::AwsSettings {
        region: global.region.clone(),
        endpoint_url: global.endpoint_url.clone(),
        profile: global.profile.clone(),
    }
}

pub fn operation(restore: Option<&str>) -> Operation {
    restore.map_or(Operation::Backup, |r| Operation::Restore(r.to_string()))
}

pub fn plan(global: &Global, restore: Option<&str>) -> Result<Plan, CommandError> {
    plan_op(global, &operation(restore))
}

pub fn plan_op(global: &Global, op: &asdr_planner::Operation) -> Result<Plan, CommandError> {
    plan_with_world(global, op).map(|(plan, _)| plan)
}

/// The plan, and the world it was made from (an apply records it beside the journal).
pub fn plan_with_world(
    global: &Global,
    op: &asdr_planner::Operation,
) -> Result<(Plan, World), CommandError> {
    let policy = policy(global)?;
    let world = world(global, Some(&policy))?;
    let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
    let plan = asdr_planner::plan(&policy, &world, now, op).map_err(|e| match e {
        PlanError::Refused(d) => CommandError::refused(&policy, d),
        other => CommandError::User(other.to_string()),
    })?;
    Ok((plan, world))
}

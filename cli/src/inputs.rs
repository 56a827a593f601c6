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

/// The observed world. Only world files exist so far: asdr never reaches for AWS unless asked
/// with an explicit endpoint, and the AWS provider is not part of this build yet.
pub fn world(global: &Global) -> Result<World, CommandError> {
    match &global.world {
        Some(path) => Ok(world_file::load(path)?),
        None => Err(CommandError::User(format!(
            "observing AWS and the nodes directly is not available in this build{}: pass --world FILE (a world file, see docs/world-file.md)",
            global
                .endpoint_url
                .as_deref()
                .map(|u| format!(" (endpoint {u})"))
                .unwrap_or_default()
        ))),
    }
}

pub fn operation(restore: Option<&str>) -> Operation {
    restore.map_or(Operation::Backup, |r| Operation::Restore(r.to_string()))
}

pub fn plan(global: &Global, restore: Option<&str>) -> Result<Plan, CommandError> {
    let policy = policy(global)?;
    let world = world(global)?;
    let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
    asdr_planner::plan(&policy, &world, now, &operation(restore)).map_err(|e| match e {
        PlanError::Refused(d) => CommandError::refused(&policy, d),
        other => CommandError::User(other.to_string()),
    })
}

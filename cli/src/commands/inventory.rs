use asdr_providers::world_file::{self, Format};

use crate::args::Global;
use crate::commands::print;
use crate::error::CommandError;
use crate::inputs;

/// `asdr inventory`: the observed world as a world file (YAML; JSON with --json).
pub fn cmd_inventory(g: &Global) -> Result<i32, CommandError> {
    let policy = if g.live_nodes || g.world.is_none() {
        Some(inputs::policy(g)?)
    } else {
        None
    };
    let world = inputs::world(g, policy.as_ref())?;
    let format = if g.json { Format::Json } else { Format::Yaml };
    print(&world_file::to_string(&world, format)?)?;
    Ok(0)
}

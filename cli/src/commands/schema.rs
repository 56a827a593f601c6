use crate::args::SchemaArgs;
use crate::commands::{json, print};
use crate::error::CommandError;

/// `asdr schema`: the policy file's JSON Schema, for editors; `--plan`: the plan file's, for tools
/// that read plans (every step kind with its parameters).
pub fn cmd_schema(a: &SchemaArgs) -> Result<i32, CommandError> {
    let schema = if a.plan {
        asdr_planner::plan::json_schema()
    } else {
        asdr_specs::json_schema()
    };
    print(&json(&schema)?)?;
    Ok(0)
}

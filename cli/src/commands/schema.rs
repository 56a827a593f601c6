use crate::commands::{json, print};
use crate::error::CommandError;

/// `asdr schema`: the policy file's JSON Schema, for editors.
pub fn cmd_schema() -> Result<i32, CommandError> {
    print(&json(&asdr_specs::json_schema())?)?;
    Ok(0)
}

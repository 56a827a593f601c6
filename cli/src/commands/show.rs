use asdr_planner::{FORMAT_VERSION, Plan};

use crate::args::{Global, PlanFormat, ShowArgs};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::{markdown, render};

/// `asdr show FILE`: a saved plan, rendered as `plan` rendered it.
pub fn cmd_show(g: &Global, a: &ShowArgs) -> Result<i32, CommandError> {
    let path = a.plan_file.display();
    let text = std::fs::read_to_string(&a.plan_file)
        .map_err(|e| CommandError::User(format!("cannot read plan file {path}: {e}")))?;
    let version: serde_json::Value = serde_json::from_str(&text).map_err(|e| {
        CommandError::User(format!(
            "{path}:{}:{}: error: not a plan file: {e}",
            e.line(),
            e.column()
        ))
    })?;
    if version.get("format_version").and_then(|v| v.as_u64()) != Some(u64::from(FORMAT_VERSION)) {
        return Err(CommandError::User(format!(
            "{path}: plan format_version {} is not {FORMAT_VERSION}, the one this asdr reads",
            version
                .get("format_version")
                .unwrap_or(&serde_json::Value::Null)
        )));
    }
    let plan: Plan = serde_json::from_value(version)
        .map_err(|e| CommandError::User(format!("{path}: error: not a plan file: {e}")))?;
    match PlanFormat::chosen(a.format, g.json) {
        PlanFormat::Json => print(&json(&plan)?)?,
        PlanFormat::Markdown => print(&markdown::plan(&plan))?,
        PlanFormat::Text => print(&render::plan(&plan))?,
    }
    Ok(0)
}

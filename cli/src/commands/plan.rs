use crate::args::{Global, PlanArgs, PlanFormat};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::{inputs, markdown, render};

/// `asdr plan`: observe, plan, show; optionally save the plan file.
pub fn cmd_plan(g: &Global, a: &PlanArgs) -> Result<i32, CommandError> {
    let plan = inputs::plan(g, a.restore.as_deref())?;
    let plan_json = json(&plan)?;
    if let Some(out) = &a.out {
        write_atomically(out, &plan_json)?;
    }
    let format = PlanFormat::chosen(a.format, g.json);
    if format == PlanFormat::Json {
        print(&plan_json)?;
    } else if format == PlanFormat::Markdown {
        print(&markdown::plan(&plan))?;
    } else if g.quiet {
        // Quiet is the summary line, not nothing: a scheduled job's log still says what it saw.
        print(&format!("{}\n", render::summary_line(&plan)))?;
    } else {
        print(&render::plan(&plan))?;
        if let Some(out) = &a.out {
            print(&format!(
                "Saved the plan to {}: review it with `asdr show {}`.\n",
                out.display(),
                out.display()
            ))?;
        }
    }
    Ok(if a.detailed_exitcode && plan.has_changes() {
        2
    } else {
        0
    })
}

/// A plan file is written whole or not at all: temp file, then rename.
fn write_atomically(path: &std::path::Path, text: &str) -> Result<(), CommandError> {
    let tmp = path.with_extension("asdr-tmp");
    std::fs::write(&tmp, text)
        .and_then(|()| std::fs::rename(&tmp, path))
        .map_err(|e| CommandError::User(format!("cannot write plan file {}: {e}", path.display())))
}

use crate::args::{Global, GraphArgs, GraphFormat};
use crate::commands::print;
use crate::error::CommandError;
use crate::{inputs, render};

/// `asdr graph`: the plan's step graph, for `dot -Tsvg` or a Mermaid block.
pub fn cmd_graph(g: &Global, a: &GraphArgs) -> Result<i32, CommandError> {
    let plan = inputs::plan(g, a.restore.as_deref())?;
    print(&match a.format {
        GraphFormat::Dot => render::dot(&plan),
        GraphFormat::Mermaid => render::mermaid(&plan),
    })?;
    Ok(0)
}

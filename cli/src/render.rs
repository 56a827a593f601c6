//! Human renderings of a plan (from the Plan alone, so `show` prints what `plan` printed) and its
//! graph in DOT and Mermaid.

use std::fmt::Write;

use anstyle::{AnsiColor, Style};
use asdr_planner::graph::StepGraph;
use asdr_planner::{Action, Plan};
use serde_json::Value;

const BOLD: Style = Style::new().bold();
const DIM: Style = Style::new().dimmed();
const GREEN: Style = AnsiColor::Green.on_default();
const YELLOW: Style = AnsiColor::Yellow.on_default();
const RED: Style = AnsiColor::Red.on_default();
const CYAN: Style = AnsiColor::Cyan.on_default();

fn paint(style: Style, text: &str) -> String {
    format!("{style}{text}{style:#}")
}

fn action_style(a: Action) -> Style {
    match a {
        Action::Create => GREEN,
        Action::Update => YELLOW,
        Action::Delete => RED,
        Action::Replace => RED,
        Action::Read => CYAN,
    }
}

/// The plan as a reviewer reads it. Styled; the caller's stream strips styles off a terminal.
/// A time as operators read it: RFC 3339 in UTC, to the second (a journal's nanoseconds are noise).
pub fn rfc3339_seconds(t: time::OffsetDateTime) -> String {
    t.to_offset(time::UtcOffset::UTC)
        .replace_nanosecond(0)
        .unwrap_or(t)
        .format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let op = match plan.operation.strip_prefix("restore:") {
        Some(r) => format!("restore `{r}`"),
        None => plan.operation.clone(),
    };
    let _ = writeln!(
        out,
        "{} {op} of cluster {} ({})",
        paint(BOLD, "asdr plan:"),
        plan.cluster,
        plan.plan_id
    );
    let _ = writeln!(out, "{}", paint(DIM, &format!("as of {}", plan.now)));
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "\nNo changes: cluster {} matches the policy for {op}.",
            plan.cluster
        );
    }
    if !plan.changes.is_empty() {
        let _ = writeln!(out, "\n{}", paint(BOLD, "Changes:"));
        for c in &plan.changes {
            let style = action_style(c.action);
            let _ = writeln!(
                out,
                "  {} {}",
                paint(style, &format!("{:>3}", c.action.marker())),
                paint(BOLD, &c.address)
            );
            let _ = writeln!(out, "        {}", paint(DIM, &format!("# {}", c.reason)));
            let attrs = match c.action {
                Action::Delete => c.before.as_ref(),
                _ => c.after.as_ref(),
            };
            if let Some(Value::Object(map)) = attrs {
                // Aligned on the attributes shown: unset (null) ones are left out.
                let width = map
                    .iter()
                    .filter(|(_, v)| !v.is_null())
                    .map(|(k, _)| k.len())
                    .max()
                    .unwrap_or(0);
                for (k, v) in map {
                    if v.is_null() {
                        continue;
                    }
                    let v = match v {
                        Value::String(s) => format!("{s:?}"),
                        other => other.to_string(),
                    };
                    let _ = writeln!(out, "        {k:<width$} = {v}");
                }
            }
            if let Some(diff) = &c.diff {
                for line in diff.lines() {
                    let style = if line.starts_with("+++") || line.starts_with("---") {
                        BOLD
                    } else if line.starts_with('+') {
                        GREEN
                    } else if line.starts_with('-') {
                        RED
                    } else if line.starts_with("@@") {
                        CYAN
                    } else {
                        Style::new()
                    };
                    let _ = writeln!(out, "        {}", paint(style, line));
                }
            }
        }
    }
    if !plan.steps.is_empty() {
        let critical = StepGraph::new(&plan.steps)
            .map(|g| g.critical_path().len())
            .unwrap_or(0);
        let _ = writeln!(
            out,
            "\n{} ({} steps; critical path {critical} steps):",
            paint(BOLD, "Steps"),
            plan.steps.len()
        );
        let width = plan.steps.len().to_string().len();
        for (i, s) in plan.steps.iter().enumerate() {
            let cleanup = if s.cleanup {
                paint(YELLOW, " [cleanup]")
            } else {
                String::new()
            };
            let _ = write!(out, "  {:>width$}. {}{cleanup}", i + 1, s.id);
            if let Some(kind) = start_kind(s) {
                let _ = write!(out, "{}", paint(CYAN, &kind));
            }
            if !s.depends_on.is_empty() {
                let _ = write!(
                    out,
                    "{}",
                    paint(DIM, &format!("  ← {}", dependencies(&s.depends_on)))
                );
            }
            out.push('\n');
        }
    }
    if let Some(rto) = &plan.rto {
        let _ = writeln!(out, "\n{} {}", paint(BOLD, "Restore time:"), rto.line());
        for p in &rto.phases {
            let _ = writeln!(out, "  {:10} {}", p.phase, paint(DIM, &p.basis));
        }
    }
    if !plan.warnings.is_empty() {
        let _ = writeln!(out, "\n{}", paint(BOLD, "Warnings:"));
        for w in &plan.warnings {
            let _ = writeln!(
                out,
                "  {} {}",
                paint(YELLOW, &format!("[{}]", w.rule)),
                w.message
            );
        }
    }
    let _ = writeln!(out, "\n{}", summary_line(plan));
    out
}

/// What kind of start a start_node is (R17): a reviewer sees which starts read the devices.
pub(crate) fn start_kind(s: &asdr_planner::plan::Step) -> Option<String> {
    use asdr_planner::params::{Params, StartKind};
    let Params::StartNode(p) = &s.params else {
        return None;
    };
    Some(match p.start? {
        StartKind::Cold => format!(
            " [cold start: `{}`]",
            p.command.as_deref().unwrap_or_default()
        ),
        StartKind::Warm => " [warm start]".into(),
        StartKind::NewInstance => " [new instance: starts cold]".into(),
        StartKind::Community => " [Community: starts cold]".into(),
    })
}

/// The plan's last line, and all `plan -q` prints.
pub fn summary_line(plan: &Plan) -> String {
    let s = plan.summary;
    format!(
        "{} {} to add, {} to change, {} to destroy, {} steps.",
        paint(BOLD, "Plan:"),
        s.add,
        s.change,
        s.destroy,
        s.steps
    )
}

/// A step's dependencies, the first few by name: a set's mark depends on every wait of the set,
/// which would make a line of hundreds of characters (`graph` and the plan file list them all).
fn dependencies(deps: &[String]) -> String {
    const SHOWN: usize = 3;
    if deps.len() <= 6 {
        return deps.join(", ");
    }
    format!(
        "{} and {} more",
        deps[..SHOWN].join(", "),
        deps.len() - SHOWN
    )
}

fn dot_escape(s: &str) -> String {
    s.replace('\\', "\\\\").replace('"', "\\\"")
}

pub fn dot(plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph \"{}\" {{", dot_escape(&plan.plan_id));
    let _ = writeln!(
        out,
        "  rankdir=LR;\n  node [shape=box, fontname=\"monospace\"];"
    );
    for s in &plan.steps {
        let style = if s.cleanup { ", style=dashed" } else { "" };
        let _ = writeln!(
            out,
            "  \"{}\" [label=\"{}\"{style}];",
            dot_escape(&s.id),
            dot_escape(&s.id)
        );
    }
    for s in &plan.steps {
        for d in &s.depends_on {
            let _ = writeln!(out, "  \"{}\" -> \"{}\";", dot_escape(d), dot_escape(&s.id));
        }
    }
    out.push_str("}\n");
    out
}

pub fn mermaid(plan: &Plan) -> String {
    let mut out = String::from("flowchart LR\n");
    for (i, s) in plan.steps.iter().enumerate() {
        let label = s.id.replace('"', "#quot;");
        let _ = writeln!(out, "  s{i}[\"{label}\"]");
    }
    let index: std::collections::HashMap<&str, usize> = plan
        .steps
        .iter()
        .enumerate()
        .map(|(i, s)| (s.id.as_str(), i))
        .collect();
    for (i, s) in plan.steps.iter().enumerate() {
        for d in &s.depends_on {
            let _ = writeln!(out, "  s{} --> s{i}", index[d.as_str()]);
        }
    }
    out
}

//! The plan in Markdown, for a pull request's comment: the summary first, the changes as a table,
//! the steps folded away, the warnings with their rules. Nothing in it depends on when or where
//! it was rendered, so two renderings of the same plan diff to nothing.

use std::fmt::Write;

use asdr_planner::Plan;

/// A table cell: pipes escaped, one line.
fn cell(s: &str) -> String {
    s.replace('|', "\\|").replace('\n', " ")
}

/// Prose for Markdown: `<cluster>` outside code spans is an HTML tag to a renderer, which drops
/// it; escaped there, and left as written inside backticks (where it shows as is).
fn prose(s: &str) -> String {
    s.split('`')
        .enumerate()
        .map(|(i, part)| {
            if i % 2 == 1 {
                part.to_string()
            } else {
                part.replace('&', "&amp;")
                    .replace('<', "&lt;")
                    .replace('>', "&gt;")
            }
        })
        .collect::<Vec<_>>()
        .join("`")
}

pub fn plan(plan: &Plan) -> String {
    let mut out = String::new();
    let op = match plan.operation.strip_prefix("restore:") {
        Some(r) => format!("restore `{r}`"),
        None => plan.operation.clone(),
    };
    let s = plan.summary;
    let _ = writeln!(out, "### asdr plan: {op} of cluster `{}`\n", plan.cluster);
    let _ = writeln!(
        out,
        "**Plan: {} to add, {} to change, {} to destroy, {} steps.** Plan `{}`, as of {}.\n",
        s.add, s.change, s.destroy, s.steps, plan.plan_id, plan.now
    );
    if !plan.has_changes() {
        let _ = writeln!(
            out,
            "No changes: cluster `{}` matches the policy for {op}.\n",
            plan.cluster
        );
    }
    if !plan.changes.is_empty() {
        out.push_str("| | resource | why |\n|---|---|---|\n");
        for c in &plan.changes {
            let _ = writeln!(
                out,
                "| `{}` | `{}` | {} |",
                c.action.marker(),
                cell(&c.address),
                cell(&prose(&c.reason))
            );
        }
        out.push('\n');
    }
    let diffs: Vec<_> = plan.changes.iter().filter(|c| c.diff.is_some()).collect();
    for c in diffs {
        let _ = writeln!(
            out,
            "<details><summary><code>{}</code>: the file asdr writes</summary>\n\n```diff\n{}\n```\n\n</details>\n",
            c.address,
            c.diff.as_deref().unwrap_or_default().trim_end()
        );
    }
    if !plan.steps.is_empty() {
        let _ = writeln!(
            out,
            "<details><summary>{} steps</summary>\n\n| # | step | after |\n|---|---|---|",
            plan.steps.len()
        );
        for (i, step) in plan.steps.iter().enumerate() {
            let after: Vec<String> = step.depends_on.iter().map(|d| format!("`{d}`")).collect();
            let _ = writeln!(
                out,
                "| {} | `{}`{}{} | {} |",
                i + 1,
                cell(&step.id),
                if step.cleanup { " (cleanup)" } else { "" },
                crate::render::start_kind(step)
                    .map(|k| cell(&k))
                    .unwrap_or_default(),
                cell(&after.join(", "))
            );
        }
        out.push_str("\n</details>\n\n");
    }
    if !plan.warnings.is_empty() {
        out.push_str("**Warnings**\n\n");
        for w in &plan.warnings {
            let _ = writeln!(out, "- **[{}]** {}", w.rule, cell(&prose(&w.message)));
        }
        out.push('\n');
    }
    out
}

//! `asdr apply`: lock, prepare the plan (saved, resumed or made now), show and confirm it,
//! execute, summarise. The rules live in the engine.

use std::io::{BufRead, IsTerminal, Write};
use std::path::Path;

use asdr_engine::Session;
use asdr_engine::apply::{self, Origin, Request};
use asdr_planner::Plan;

use crate::args::{ApplyArgs, Global};
use crate::commands::print;
use crate::error::CommandError;
use crate::progress::Reporter;
use crate::{inputs, render, summary};

pub fn cmd_apply(g: &Global, a: &ApplyArgs) -> Result<i32, CommandError> {
    let session = inputs::session(g)?;
    let fail = |e| CommandError::engine(&session.policy, e);
    if a.break_lock {
        let (what, holder) = session.lock().and_then(|l| l.break_it()).map_err(fail)?;
        print(&match holder {
            Some(h) => format!("Broke the lock {what} held by {h}.\n"),
            None => format!("No lock at {what}.\n"),
        })?;
        return Ok(0);
    }
    session.locked("(planning)", || apply_locked(g, a, &session))
}

fn apply_locked(g: &Global, a: &ApplyArgs, session: &Session) -> Result<i32, CommandError> {
    let fail = |e| CommandError::engine(&session.policy, e);
    if let Some(id) = &a.discard {
        let operation = apply::discard(session, id).map_err(fail)?;
        print(&format!(
            "Discarded the interrupted apply of plan {id} ({operation}); its journal is kept.\n"
        ))?;
        return Ok(0);
    }
    let request = Request {
        plan_file: a.plan_file.as_deref().map(load_plan).transpose()?,
        restore: a.restore.clone(),
    };
    let prepared = apply::prepare(session, request).map_err(fail)?;
    match prepared.origin {
        Origin::Resumed if !g.quiet => {
            eprintln!(
                "Resuming the interrupted apply of plan {} ({}), checked again against the world it was made from.",
                prepared.plan.plan_id, prepared.plan.operation
            );
        }
        Origin::Planned if !g.json && !g.quiet => print(&render::plan(&prepared.plan))?,
        _ => {}
    }
    if !prepared.plan.has_changes() {
        return Ok(0);
    }
    confirm(g, a.yes, &prepared.plan)?;
    // Applying to a world file rewrites it: comments a person wrote in it do not survive.
    let commented = g.world.as_deref().filter(|w| {
        std::fs::read_to_string(w).is_ok_and(|t| t.lines().any(|l| l.trim_start().starts_with('#')))
    });
    let progress = Reporter::new(g.json, g.quiet, prepared.plan.steps.len());
    let done = apply::run(session, prepared, usize::from(a.parallelism), &|e| {
        progress.event(e)
    })
    .map_err(fail)?;
    progress.finish();
    print(&summary::apply(
        g.json,
        &done.plan,
        &done.report,
        &done.journal,
    ))?;
    if let Some(world) = commented {
        eprintln!(
            "note: {} now records this apply's changes; the comments it held were not kept (keep the commented original under version control)",
            world.display()
        );
    }
    Ok(match (done.report.interrupted, done.report.succeeded()) {
        // 128 + SIGINT, as shells report an interrupted command.
        (true, _) => 130,
        (false, true) => 0,
        (false, false) => 1,
    })
}

fn load_plan(file: &Path) -> Result<Plan, CommandError> {
    let text = std::fs::read_to_string(file).map_err(|e| {
        CommandError::User(format!("cannot read plan file {}: {e}", file.display()))
    })?;
    serde_json::from_str(&text).map_err(|e| {
        CommandError::User(format!(
            "{}:{}:{}: error: not a plan file: {e}",
            file.display(),
            e.line(),
            e.column()
        ))
    })
}

/// A plan is applied only on an explicit yes: `--yes`, or `yes` typed at a terminal.
pub(crate) fn confirm(g: &Global, yes: bool, plan: &Plan) -> Result<(), CommandError> {
    if yes {
        return Ok(());
    }
    if !std::io::stdin().is_terminal() || g.json {
        return Err(CommandError::User("refusing to apply without confirmation: stdin is not a terminal; review the plan and pass --yes".into()));
    }
    print(&format!(
        "\nApply plan {} to cluster {}? Only 'yes' will be accepted: ",
        plan.plan_id, plan.cluster
    ))?;
    let _ = std::io::stdout().flush();
    let mut answer = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut answer)
        .map_err(|e| CommandError::User(e.to_string()))?;
    if answer.trim() == "yes" {
        Ok(())
    } else {
        Err(CommandError::User("apply cancelled".into()))
    }
}

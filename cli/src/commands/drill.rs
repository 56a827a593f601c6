//! `asdr drill NAME`: run a drill (`--check`: create nothing; `--teardown-only`: remove what an
//! interrupted drill left). The drill itself is the engine's; this parses, calls and prints.

use asdr_engine::{EngineError, Session, drill};
use asdr_executor::Outcome;

use crate::args::{DrillArgs, Global};
use crate::commands::apply::confirm;
use crate::commands::print;
use crate::error::CommandError;
use crate::progress::Reporter;
use crate::{inputs, render, summary};

pub fn cmd_drill(g: &Global, a: &DrillArgs) -> Result<i32, CommandError> {
    let session = inputs::session(g)?;
    let fail = |e| CommandError::engine(&session.policy, e);
    let d = drill::find(&session, &a.name).map_err(fail)?.clone();
    if a.check {
        let report = drill::check(&session, &d).map_err(fail)?;
        let (text, failed) = summary::drill_check(&d, &report);
        print(&text)?;
        return Ok(if failed { 1 } else { 0 });
    }
    session.locked(&format!("drill:{}", d.name), || {
        if a.teardown_only {
            teardown_only(g, &session, &d)
        } else {
            run(g, a, &session, &d)
        }
    })
}

fn teardown_only(
    g: &Global,
    session: &Session,
    d: &asdr_specs::Drill,
) -> Result<i32, CommandError> {
    let progress = Reporter::new(g.json, g.quiet, 0);
    let (report, remaining) = drill::teardown(session, d, &|e| progress.event(e))
        .map_err(|e| CommandError::engine(&session.policy, e))?;
    progress.finish();
    let removed = report.as_ref().map_or(0, |r| {
        r.count(|o| matches!(o, Outcome::Done { .. } | Outcome::Adopted { .. }))
    });
    print(&format!(
        "Drill `{}` teardown: {removed} step(s) done, {} resource(s) it made remain{}\n",
        d.name,
        remaining.len(),
        if remaining.is_empty() {
            String::new()
        } else {
            format!(": {}", remaining.join(", "))
        }
    ))?;
    let strangers = drill::unrecorded(session, &d.name)
        .map_err(|e| CommandError::engine(&session.policy, e))?;
    if !strangers.is_empty() {
        eprintln!(
            "warning: [R13] {} carr{} asdr:drill={} but no apply of drill `{}` recorded making {}: not torn down. A tag is anyone's to write; remove {} by hand only once you know {} the drill's.",
            strangers.join(", "),
            if strangers.len() == 1 { "ies" } else { "y" },
            d.name,
            d.name,
            if strangers.len() == 1 { "it" } else { "them" },
            if strangers.len() == 1 { "it" } else { "them" },
            if strangers.len() == 1 {
                "it is"
            } else {
                "they are"
            },
        );
    }
    Ok(
        if remaining.is_empty() && strangers.is_empty() && report.is_none_or(|r| r.succeeded()) {
            0
        } else {
            1
        },
    )
}

fn run(
    g: &Global,
    a: &DrillArgs,
    session: &Session,
    d: &asdr_specs::Drill,
) -> Result<i32, CommandError> {
    let fail = |e| CommandError::engine(&session.policy, e);
    let left = drill::leftovers(session, &d.name).map_err(fail)?;
    if !left.is_empty() {
        eprintln!(
            "Drill `{}`: removing {} resource(s) an earlier run left behind.",
            d.name,
            left.len()
        );
    }
    let progress = Reporter::new(g.json, g.quiet, 0);
    let show_and_confirm = |plan: &asdr_planner::Plan| {
        if !g.quiet && !g.json {
            print(&render::plan(plan)).map_err(|e| EngineError::Other(e.message()))?;
        }
        confirm(g, a.yes, plan).map_err(|e| EngineError::Other(e.message()))
    };
    let outcomes = drill::run(
        session,
        d,
        usize::from(a.parallelism),
        &show_and_confirm,
        &|e| progress.event(e),
    )
    .map_err(fail)?;
    progress.finish();
    let path = drill::write_report(session, d, &outcomes).map_err(fail)?;
    print(&summary::drill(d, &outcomes, &path))?;
    Ok(if outcomes.passed { 0 } else { 1 })
}

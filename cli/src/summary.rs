//! What an apply and a drill print when they end: counts, write-stop windows, failures, the
//! cleanups that ran, where the journal and the report are.

use asdr_engine::drill::{CheckReport, Outcomes};
use asdr_executor::{Outcome, Report};
use asdr_planner::Plan;
use asdr_providers::ec2::dry_run::Verdict;
use asdr_specs::Drill;

/// The apply's closing summary: one JSON event with `--json`, else lines for a person.
pub fn apply(json: bool, plan: &Plan, report: &Report, journal: &std::path::Path) -> String {
    let count = |f: fn(&Outcome) -> bool| report.count(f);
    let done = count(|o| matches!(o, Outcome::Done { .. }));
    let adopted = count(|o| matches!(o, Outcome::Adopted { .. }));
    let resumed = count(|o| matches!(o, Outcome::Resumed));
    let skipped = count(|o| matches!(o, Outcome::Skipped { .. }));
    let failed = count(|o| matches!(o, Outcome::Failed { .. }));
    let measured = asdr_engine::apply::measured(journal, plan);
    if json {
        let windows: serde_json::Map<String, serde_json::Value> = report
            .write_stop
            .iter()
            .map(|(n, d)| (n.clone(), d.as_secs_f64().into()))
            .collect();
        return serde_json::json!({
            "event": "summary", "plan_id": plan.plan_id, "done": done, "adopted": adopted, "resumed": resumed,
            "skipped": skipped, "failed": failed, "interrupted": report.interrupted, "wall_seconds": report.wall.as_secs_f64(), "write_stop_seconds": windows,
            "journal": journal.display().to_string(), "restore_time": measured,
        })
        .to_string()
            + "\n";
    }
    let mut out = format!(
        "\nApply of plan {} {} in {:.1} s: {done} done, {adopted} adopted, {resumed} resumed, {skipped} skipped, {failed} failed.\n",
        plan.plan_id,
        if failed + skipped == 0 {
            "complete"
        } else {
            "incomplete"
        },
        report.wall.as_secs_f64()
    );
    if !report.write_stop.is_empty() {
        let windows: Vec<String> = report
            .write_stop
            .iter()
            .map(|(n, d)| format!("{n} {:.2} s", d.as_secs_f64()))
            .collect();
        out.push_str(&format!("Write-stop windows: {}\n", windows.join(", ")));
    }
    for (id, o) in &report.outcomes {
        if let Outcome::Failed { error, attempts } = o {
            out.push_str(&format!(
                "  failed   {id} after {attempts} attempt(s): {error}\n"
            ));
        }
    }
    let cleanups: Vec<&str> = plan
        .steps
        .iter()
        .filter(|s| {
            s.cleanup
                && matches!(
                    report.outcomes.get(&s.id),
                    Some(Outcome::Done { .. } | Outcome::Adopted { .. })
                )
        })
        .map(|s| s.id.as_str())
        .collect();
    if report.interrupted {
        out.push_str(&format!(
            "Interrupted: {skipped} step(s) not run; cleanups run: {}.\nRun `asdr apply` again to finish: it plans from what is there now.\n",
            if cleanups.is_empty() {
                "none".to_string()
            } else {
                cleanups.join(", ")
            }
        ));
    } else if failed + skipped > 0 {
        out.push_str(&format!(
            "  skipped  {skipped} step(s) whose upstream failed; cleanups run: {}\n",
            if cleanups.is_empty() {
                "none".to_string()
            } else {
                cleanups.join(", ")
            }
        ));
        out.push_str("Run `asdr apply` again once the cause is fixed: finished steps are found again, not repeated.\n");
    }
    if let Some(m) = &measured {
        out.push_str(&format!(
            "Restore time: {}{}\n",
            measured_line(m),
            if failed + skipped > 0 || report.interrupted {
                " — of the steps that ran: the restore did not finish"
            } else {
                ""
            }
        ));
    }
    out.push_str(&format!("Journal: {}\n", journal.display()));
    out
}

/// `12m 3s measured (launch 2m 1s, …), estimated 31m`.
pub fn measured_line(m: &asdr_planner::rto::Measured) -> String {
    let secs = |s: f64| {
        if s < 60.0 {
            format!("{s:.1} s")
        } else {
            let s = s.round() as u64;
            format!("{}m {}s", s / 60, s % 60)
        }
    };
    let phases: Vec<String> = m
        .phases
        .iter()
        .map(|p| match p.estimate_seconds {
            Some(e) => format!(
                "{} {} (estimated {})",
                p.phase,
                secs(p.seconds),
                secs(e as f64)
            ),
            None => format!("{} {}", p.phase, secs(p.seconds)),
        })
        .collect();
    format!(
        "{} measured ({}){}",
        secs(m.total_seconds),
        phases.join(", "),
        m.estimate_seconds
            .map_or_else(String::new, |e| format!(", estimated {}", secs(e as f64)))
    )
}

/// The drill's closing line.
pub fn drill(drill: &Drill, o: &Outcomes, report: &std::path::Path) -> String {
    let validations = if o.validated {
        format!(
            "{} of {} validations passed",
            o.validations.iter().filter(|v| v.ok).count(),
            o.validations.len()
        )
    } else if o.restore.succeeded() {
        "validations not run (simulated nodes)".to_string()
    } else {
        "restore failed".to_string()
    };
    format!(
        "\nDrill `{}` {}: restore {:.1} s, {validations}, {}; report {}\n",
        drill.name,
        if o.passed { "passed" } else { "FAILED" },
        o.restore_wall.as_secs_f64(),
        if !o.torn_down {
            format!("left in place ({} resources)", o.remaining.len())
        } else if o.remaining.is_empty() {
            "torn down, nothing left".into()
        } else {
            format!(
                "{} resource(s) left: {}",
                o.remaining.len(),
                o.remaining.join(", ")
            )
        },
        report.display()
    )
}

/// `drill --check`: (the text, whether the check failed).
pub fn drill_check(drill: &Drill, c: &CheckReport) -> (String, bool) {
    let mut failed = false;
    let mut out = format!(
        "Drill `{}` check (nothing is created)\n\nMutations:\n",
        drill.name
    );
    match &c.mutations {
        None => {
            out.push_str("  not checked with DryRun: a world file has no AWS account behind it\n")
        }
        Some(checks) => {
            for c in checks {
                failed |= c.verdict != Verdict::Allowed;
                out.push_str(&format!(
                    "  {:<8} {:<24} {}{}\n",
                    format!("{:?}", c.verdict).to_lowercase(),
                    c.action,
                    c.step,
                    if c.verdict == Verdict::Allowed {
                        String::new()
                    } else {
                        format!(": {}", c.message)
                    }
                ));
            }
        }
    }
    let ready = &c.readiness;
    out.push_str(&format!(
        "\nBackup set: {} snapshot(s), {}; SMD archive {}: {}\n",
        ready.snapshots.len(),
        if ready.pending.is_empty() {
            "all completed".to_string()
        } else {
            format!(
                "{} not completed yet: {}",
                ready.pending.len(),
                ready.pending.join(", ")
            )
        },
        ready.archive.as_deref().unwrap_or_default(),
        match &c.archive {
            Ok(Some(n)) => format!("readable ({n} bytes)"),
            Ok(None) => "recorded in the world file (no store behind it to read)".to_string(),
            Err(e) => {
                failed = true;
                format!("NOT readable: {e}")
            }
        }
    ));
    out.push_str(&format!("Restore time: {}\n", c.estimate));
    out.push_str(&format!(
        "\nCheck {}.\n",
        if failed { "FAILED" } else { "passed" }
    ));
    (out, failed)
}

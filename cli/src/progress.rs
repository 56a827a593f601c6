//! Apply progress: indicatif bars when stderr is a terminal (overall steps, snapshot %, waits),
//! plain lines otherwise, JSON-lines events with `--json`.

use std::io::IsTerminal;
use std::sync::Mutex;

use asdr_executor::{Event, Outcome};
use indicatif::{ProgressBar, ProgressStyle};

pub struct Reporter {
    json: bool,
    quiet: bool,
    /// The number of steps is not known in advance (a drill runs several plans): the bar grows
    /// as steps start.
    grows: bool,
    bar: Option<ProgressBar>,
    last_pending: Mutex<Option<String>>,
    /// What the bar says: the steps still waiting, each with its latest note.
    waiting: Mutex<Waiting>,
}

/// The steps waiting on something, newest last: the bar shows the newest, and a step that
/// finished is no longer shown (a bar stuck on "terminate_instance … shutting down" long after
/// the instance was gone).
#[derive(Debug, Default)]
struct Waiting(Vec<(String, String)>);

impl Waiting {
    fn note(&mut self, step: &str, text: String) -> &str {
        self.0.retain(|(s, _)| s != step);
        self.0.push((step.to_string(), text));
        &self.0.last().expect("just pushed").1
    }

    fn finished(&mut self, step: &str) -> &str {
        self.0.retain(|(s, _)| s != step);
        self.0.last().map_or("", |(_, t)| t.as_str())
    }
}

fn outcome_word(o: &Outcome) -> &'static str {
    match o {
        Outcome::Done { .. } => "done",
        Outcome::Adopted { .. } => "adopted",
        Outcome::Resumed => "resumed",
        Outcome::Failed { .. } => "failed",
        Outcome::Skipped { .. } => "skipped",
    }
}

impl Reporter {
    /// `steps`: how many the plan has; 0 when unknown (the bar then grows as steps start).
    pub fn new(json: bool, quiet: bool, steps: usize) -> Self {
        let bar = (!json && !quiet && std::io::stderr().is_terminal()).then(|| {
            let bar = ProgressBar::new(steps as u64);
            bar.set_style(
                ProgressStyle::with_template("{spinner} [{bar:30}] {pos}/{len} steps  {msg}")
                    .expect("valid template")
                    .progress_chars("=> "),
            );
            bar.enable_steady_tick(std::time::Duration::from_millis(120));
            bar
        });
        Reporter {
            json,
            quiet,
            grows: steps == 0,
            bar,
            last_pending: Mutex::new(None),
            waiting: Mutex::default(),
        }
    }

    pub fn event(&self, e: &Event) {
        if let (true, Some(bar), Event::Started { .. }) = (self.grows, &self.bar, e) {
            bar.inc_length(1);
        }
        if self.json {
            let v = match e {
                Event::Started { step } => serde_json::json!({"event": "started", "step": step}),
                Event::Interrupted { grace } => {
                    serde_json::json!({"event": "interrupted", "grace_seconds": grace.as_secs_f64()})
                }
                Event::EvidenceGone { step } => {
                    serde_json::json!({"event": "evidence_gone", "step": step})
                }
                Event::Pending {
                    step,
                    percent,
                    note,
                } => {
                    serde_json::json!({"event": "pending", "step": step, "percent": percent, "note": note})
                }
                Event::Retrying {
                    step,
                    attempt,
                    error,
                } => {
                    serde_json::json!({"event": "retrying", "step": step, "attempt": attempt, "error": error})
                }
                Event::Finished { step, outcome } => {
                    let mut v = serde_json::json!({"event": "finished", "step": step, "outcome": outcome_word(outcome)});
                    match outcome {
                        Outcome::Done {
                            resources,
                            took,
                            attempts,
                        } => {
                            v["resources"] = serde_json::to_value(resources).unwrap_or_default();
                            v["seconds"] = took.as_secs_f64().into();
                            v["attempts"] = (*attempts).into();
                        }
                        Outcome::Adopted { resources } => {
                            v["resources"] = serde_json::to_value(resources).unwrap_or_default()
                        }
                        Outcome::Failed { error, .. } => v["error"] = error.clone().into(),
                        Outcome::Skipped { because } => v["error"] = because.clone().into(),
                        Outcome::Resumed => {}
                    }
                    v
                }
            };
            println!("{v}");
            return;
        }
        if let Event::Interrupted { grace } = e {
            // Said even with -q: the operator must know what the stop is waiting for.
            let line = format!(
                "Interrupt received: no new step starts. Steps in flight may finish (waits stop now, operations within {} s), then the cleanups run (unquiesce, start) and the lock is released. Send the signal again to exit at once.",
                grace.as_secs()
            );
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
            return;
        }
        if self.quiet {
            return;
        }
        let line = match e {
            Event::Started { .. } | Event::Interrupted { .. } => None,
            Event::EvidenceGone { step } => Some(format!(
                "The journal says {step} was done, but its result is gone: running every step again (what exists is adopted)."
            )),
            Event::Pending {
                step,
                percent,
                note,
            } => {
                let text = match percent {
                    Some(p) => format!("{step} {p}%"),
                    None => format!("{step}: {note}"),
                };
                match &self.bar {
                    Some(bar) => {
                        let mut waiting = self.waiting.lock().expect("not poisoned");
                        bar.set_message(waiting.note(step, text).to_string());
                        None
                    }
                    None => {
                        // One line per change of state, not per poll.
                        let mut last = self.last_pending.lock().expect("not poisoned");
                        (last.as_deref() != Some(text.as_str())).then(|| {
                            *last = Some(text.clone());
                            format!("  waiting  {text}")
                        })
                    }
                }
            }
            Event::Retrying {
                step,
                attempt,
                error,
            } => Some(format!("  retry    {step} (attempt {attempt}): {error}")),
            Event::Finished { step, outcome } => {
                if let Some(bar) = &self.bar {
                    bar.inc(1);
                    let mut waiting = self.waiting.lock().expect("not poisoned");
                    bar.set_message(waiting.finished(step).to_string());
                }
                let detail = match outcome {
                    Outcome::Done { took, .. } => format!(" ({:.2} s)", took.as_secs_f64()),
                    Outcome::Failed { error, .. } => format!(": {error}"),
                    Outcome::Skipped { because } => format!(": {because}"),
                    _ => String::new(),
                };
                Some(format!("  {:<8} {step}{detail}", outcome_word(outcome)))
            }
        };
        if let Some(line) = line {
            match &self.bar {
                Some(bar) => bar.println(line),
                None => eprintln!("{line}"),
            }
        }
    }

    pub fn finish(&self) {
        if let Some(bar) = &self.bar {
            bar.finish_and_clear();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Waiting;

    #[test]
    fn a_finished_step_leaves_the_bar_to_the_steps_still_waiting() {
        let mut w = Waiting::default();
        assert_eq!(
            w.note("terminate_instance:a1", "i-1 shutting down".into()),
            "i-1 shutting down"
        );
        assert_eq!(
            w.note("wait_volume:a1", "vol-1 creating".into()),
            "vol-1 creating"
        );
        assert_eq!(
            w.note("terminate_instance:a1", "i-1 still shutting down".into()),
            "i-1 still shutting down"
        );
        assert_eq!(w.finished("terminate_instance:a1"), "vol-1 creating");
        assert_eq!(
            w.finished("wait_volume:a1"),
            "",
            "nothing waiting: no stale note"
        );
        assert_eq!(w.finished("provision_instance:a1"), "");
    }
}

//! The walk itself.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::{Duration, Instant};

use asdr_planner::ports::{
    Progress as StepProgress, Provider, Resources, Retry, StepError, StepInput,
};
use asdr_planner::{Plan, Step, StepKind};
use tokio::task::JoinSet;

use crate::journal::{Entry, EventKind, Journal, JournalError};
use crate::{StepStates, ready};

/// Called at named points of the run ("before:<step>", "after:<step>") so tests can kill the
/// process exactly there.
pub type Hook = Arc<dyn Fn(&str) + Send + Sync>;

#[derive(Clone)]
pub struct Options {
    pub parallelism: usize,
    pub max_nodes_at_once: usize,
    /// Between two polls of a pending step.
    pub poll_interval: Duration,
    /// Attempts of a step whose errors are transient, the first included.
    pub max_attempts: u32,
    /// Overrides every step's deadline (tests); otherwise it depends on the kind.
    pub step_timeout: Option<Duration>,
    pub hook: Hook,
    /// Asked to stop (a signal): no step starts any more but the cleanups.
    pub interrupt: Interrupt,
    /// How long operations in flight may finish once interrupted; waits stop at once.
    pub grace: Duration,
}

/// A request to stop an execution early, from outside it (the first SIGINT or SIGTERM).
#[derive(Debug, Clone)]
pub struct Interrupt {
    tx: Arc<tokio::sync::watch::Sender<bool>>,
}

impl Default for Interrupt {
    fn default() -> Self {
        Interrupt {
            tx: Arc::new(tokio::sync::watch::channel(false).0),
        }
    }
}

impl Interrupt {
    pub fn request(&self) {
        self.tx.send_replace(true);
    }

    pub fn requested(&self) -> bool {
        *self.tx.borrow()
    }

    fn subscribe(&self) -> tokio::sync::watch::Receiver<bool> {
        self.tx.subscribe()
    }
}

impl std::fmt::Debug for Options {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Options")
            .field("parallelism", &self.parallelism)
            .field("max_nodes_at_once", &self.max_nodes_at_once)
            .finish()
    }
}

impl Default for Options {
    fn default() -> Self {
        Options {
            parallelism: 10,
            max_nodes_at_once: 1,
            poll_interval: Duration::from_secs(5),
            max_attempts: 5,
            step_timeout: None,
            hook: Arc::new(|_| {}),
            interrupt: Interrupt::default(),
            grace: Duration::from_secs(30),
        }
    }
}

impl Options {
    /// A step's deadline: its kind's, or, for the wait of a time-based copy, what the copy was
    /// promised and an hour more (EBS may take up to 48 hours, longer than any wait's 12).
    pub fn timeout_for(&self, step: &Step) -> Duration {
        let by_kind = self.timeout(step.kind());
        match &step.params {
            asdr_planner::params::Params::WaitSnapshot(w) if self.step_timeout.is_none() => {
                w.within_minutes.map_or(by_kind, |m| {
                    by_kind.max(Duration::from_secs((u64::from(m) + 60) * 60))
                })
            }
            _ => by_kind,
        }
    }

    /// Waits for snapshots may take hours (a first snapshot is a full copy, R3); the rest minutes.
    pub fn timeout(&self, kind: StepKind) -> Duration {
        self.step_timeout.unwrap_or(match kind {
            StepKind::WaitSnapshot => Duration::from_secs(12 * 3600),
            // Optimising takes about an hour per TiB, and FSR takes snapshots up to 16 TiB.
            StepKind::FastSnapshotRestore => Duration::from_secs(24 * 3600),
            StepKind::WaitClusterStable
            | StepKind::WaitVolume
            | StepKind::Asbackup
            | StepKind::Asrestore => Duration::from_secs(3 * 3600),
            StepKind::TerminateInstance
            | StepKind::ProvisionInstance
            | StepKind::WaitNodesStopped => Duration::from_secs(30 * 60),
            _ => Duration::from_secs(10 * 60),
        })
    }
}

/// What happened to one step.
#[derive(Debug, Clone, PartialEq)]
pub enum Outcome {
    Done {
        resources: Resources,
        attempts: u32,
        took: Duration,
    },
    Adopted {
        resources: Resources,
    },
    /// Finished by an earlier, interrupted run of this plan (from the journal).
    Resumed,
    Failed {
        error: String,
        attempts: u32,
    },
    Skipped {
        because: String,
    },
}

/// What a panicked task said, when it said it with a string.
fn panic_message(e: tokio::task::JoinError) -> String {
    match e.try_into_panic() {
        Ok(payload) => payload
            .downcast_ref::<&str>()
            .map(|s| (*s).to_string())
            .or_else(|| payload.downcast_ref::<String>().cloned())
            .unwrap_or_else(|| "a panic without a message".into()),
        Err(e) => e.to_string(),
    }
}

/// Progress for the person watching (bars, lines, JSON events).
// A few events per step: what a finished step learned travels unboxed.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum Event {
    Started {
        step: String,
    },
    Pending {
        step: String,
        percent: Option<u8>,
        note: String,
    },
    Retrying {
        step: String,
        attempt: u32,
        error: String,
    },
    Finished {
        step: String,
        outcome: Outcome,
    },
    /// A step the journal records as done left no trace in the world: nothing of the journal is
    /// trusted, and every step runs again (observing first).
    EvidenceGone {
        step: String,
    },
    /// Asked to stop: no new step starts; operations in flight have `grace` to finish, then the
    /// cleanups run.
    Interrupted {
        grace: Duration,
    },
}

#[derive(Debug)]
pub struct Report {
    pub outcomes: BTreeMap<String, Outcome>,
    /// The execution was asked to stop before its end.
    pub interrupted: bool,
    /// Per node: how long writes were stopped (from quiesce/stop to unquiesce/start done).
    pub write_stop: BTreeMap<String, Duration>,
    pub wall: Duration,
    /// Wall time of each step that ran, for critical-path comparisons.
    pub took: BTreeMap<String, Duration>,
}

impl Report {
    pub fn count(&self, f: impl Fn(&Outcome) -> bool) -> usize {
        self.outcomes.values().filter(|o| f(o)).count()
    }

    pub fn succeeded(&self) -> bool {
        self.outcomes.values().all(|o| {
            matches!(
                o,
                Outcome::Done { .. } | Outcome::Adopted { .. } | Outcome::Resumed
            )
        })
    }
}

/// Steps a cleanup of the same plan has undone are not done any more: a restore that failed
/// turned Fast Snapshot Restore off again (a cleanup), so an apply resuming it turns it on and
/// waits for it again before the volumes it has yet to make, rather than making them lazily.
fn undone_by_cleanup(plan: &Plan, done: &mut BTreeMap<String, Resources>) {
    use asdr_planner::params::Params;
    let disabled_then = plan.steps.iter().any(|s| {
        matches!(&s.params, Params::FastSnapshotRestore(p) if !p.enable) && done.contains_key(&s.id)
    });
    let volumes_left = plan
        .steps
        .iter()
        .any(|s| s.kind() == StepKind::CreateVolume && !done.contains_key(&s.id));
    if disabled_then && volumes_left {
        for s in &plan.steps {
            if let Params::FastSnapshotRestore(p) = &s.params
                && !p.no_wait
            {
                done.remove(&s.id);
            }
        }
    }
}

/// Runs `plan` to the end. `done` holds what an earlier run finished (resume); those steps are not
/// run again.
pub async fn execute<P: Provider>(
    plan: Arc<Plan>,
    provider: Arc<P>,
    journal: &mut Journal,
    done: BTreeMap<String, Resources>,
    opts: &Options,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<Report, JournalError> {
    let started = Instant::now();
    let mut progress = StepStates::default();
    let mut outcomes = BTreeMap::new();
    let mut learned: BTreeMap<String, Resources> = BTreeMap::new();
    let mut done = with_evidence(&*provider, &plan, done, on_event).await;
    undone_by_cleanup(&plan, &mut done);
    for (id, res) in done {
        if plan.step(&id).is_some() {
            progress.done.insert(id.clone());
            outcomes.insert(id.clone(), Outcome::Resumed);
            learned.insert(id, res);
        }
    }
    journal.record(&Entry::new(EventKind::Begin, None))?;
    let to_run: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| !progress.done.contains(&s.id))
        .cloned()
        .collect();
    provider.expect(&plan.plan_id, &to_run);
    let by_id: HashMap<String, Step> = plan
        .steps
        .iter()
        .map(|s| (s.id.clone(), s.clone()))
        .collect();
    let mut out_since: HashMap<String, Instant> = HashMap::new();
    let mut write_stop = BTreeMap::new();
    let mut took = BTreeMap::new();
    let mut tasks: JoinSet<(String, Outcome)> = JoinSet::new();
    // Which step each task runs, to stop it (waits at once, operations after the grace).
    let mut handles: HashMap<tokio::task::Id, (String, tokio::task::AbortHandle)> = HashMap::new();
    // Steps report progress (polls, retries) from their tasks; the loop hands it on.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<Event>();
    let mut stop = opts.interrupt.subscribe();
    let mut interrupted: Option<tokio::time::Instant> = None;
    let mut grace_over = false;

    loop {
        if interrupted.is_none() && opts.interrupt.requested() {
            interrupted = Some(tokio::time::Instant::now());
            on_event(&Event::Interrupted { grace: opts.grace });
            // Waits only poll: they stop now. Nothing else starts but the cleanups.
            for (step, handle) in handles.values() {
                if by_id[step].kind().is_wait() && !by_id[step].cleanup {
                    handle.abort();
                }
            }
            let not_started: Vec<&Step> = plan
                .steps
                .iter()
                .filter(|s| !s.cleanup && !outcomes.contains_key(&s.id))
                .filter(|s| !progress.running.contains(&s.id))
                .collect();
            for s in not_started {
                let outcome = skipped(journal, &s.id, "interrupted before it started".into())?;
                progress.skipped.insert(s.id.clone());
                on_event(&Event::Finished {
                    step: s.id.clone(),
                    outcome: outcome.clone(),
                });
                outcomes.insert(s.id.clone(), outcome);
            }
        }
        skip_dependents(&plan, &mut progress, &mut outcomes, journal, on_event)?;
        // Parallelism bounds operations in flight; waits, and operations that made their change
        // and now watch it settle (an attachment, an instance starting), only poll: no slot.
        let operations = progress
            .running
            .iter()
            .filter(|id| !by_id[*id].kind().is_wait() && !progress.polling.contains(*id))
            .count();
        let mut slots = opts.parallelism.max(1).saturating_sub(operations);
        let mut next: Vec<String> = Vec::new();
        let mut candidates = ready(&plan, &progress, opts.max_nodes_at_once);
        // Launches take the slots first: an instance comes up in minutes and everything of its
        // node waits on it, while a volume is created in seconds. Taken in plan order, a wave
        // of volume creations would put every launch last on the restore's critical path.
        candidates.sort_by_key(|id| by_id[*id].kind() != StepKind::ProvisionInstance);
        for id in candidates {
            if interrupted.is_some() && !by_id[id].cleanup {
                continue;
            }
            if by_id[id].kind().is_wait() {
                next.push(id.to_string());
            } else if slots > 0 {
                slots -= 1;
                next.push(id.to_string());
            }
        }
        for id in next {
            let step = by_id[&id].clone();
            (opts.hook)(&format!("before:{id}"));
            journal.record(&Entry::new(EventKind::Start, Some(&id)))?;
            on_event(&Event::Started { step: id.clone() });
            if step.kind().takes_node_out()
                && let Some(n) = &step.node
            {
                out_since.entry(n.clone()).or_insert_with(Instant::now);
            }
            progress.running.insert(id.clone());
            let (provider, plan, learned, opts, tx) = (
                provider.clone(),
                plan.clone(),
                learned.clone(),
                opts.clone(),
                tx.clone(),
            );
            let handle = tasks.spawn(async move {
                let outcome = run_step(&*provider, &plan.plan_id, &step, &learned, &opts, &|e| {
                    let _ = tx.send(e);
                })
                .await;
                (step.id, outcome)
            });
            handles.insert(handle.id(), (id, handle));
        }
        let grace_ends = interrupted.map(|at| at + opts.grace);
        let joined = loop {
            tokio::select! {
                Some(e) = rx.recv() => {
                    let frees_slot = matches!(&e, Event::Pending { step, .. }
                        if progress.running.contains(step) && progress.polling.insert(step.clone()));
                    on_event(&e);
                    // A slot came free: the top of the loop starts what is ready.
                    if frees_slot {
                        break None;
                    }
                }
                j = tasks.join_next_with_id() => break Some(j),
                _ = stop.changed(), if interrupted.is_none() => break None,
                () = tokio::time::sleep_until(grace_ends.unwrap_or_else(tokio::time::Instant::now)),
                    if grace_ends.is_some() && !grace_over =>
                {
                    // The grace is over: operations still in flight are stopped too (their
                    // journal entry says they started: a later apply observes them first).
                    grace_over = true;
                    for (step, handle) in handles.values() {
                        if !by_id[step].cleanup {
                            handle.abort();
                        }
                    }
                }
            }
        };
        // Interrupted, or a slot freed: the top of the loop stops or starts what it must.
        let Some(joined) = joined else { continue };
        let Some(joined) = joined else { break };
        let (id, outcome) = match joined {
            Ok((task, (id, outcome))) => {
                handles.remove(&task);
                (id, outcome)
            }
            Err(e) if e.is_cancelled() => {
                let (id, _) = handles.remove(&e.id()).expect("a task of ours");
                progress.running.remove(&id);
                progress.polling.remove(&id);
                let outcome = skipped(journal, &id, "interrupted while it ran".into())?;
                progress.skipped.insert(id.clone());
                on_event(&Event::Finished {
                    step: id.clone(),
                    outcome: outcome.clone(),
                });
                outcomes.insert(id, outcome);
                continue;
            }
            // A step that panicked (a bug, or a reply no one foresaw) is a failed step, never
            // the end of the run: the cleanups after it (unquiesce, start the node) still run.
            Err(e) => {
                let (id, _) = handles.remove(&e.id()).expect("a task of ours");
                let why = panic_message(e);
                (
                    id,
                    Outcome::Failed {
                        error: format!(
                            "the step stopped on an internal error (a bug in asdr; please report it): {why}"
                        ),
                        attempts: 1,
                    },
                )
            }
        };
        progress.running.remove(&id);
        progress.polling.remove(&id);
        let step = &by_id[&id];
        let mut entry = Entry::new(EventKind::Done, Some(&id));
        match &outcome {
            Outcome::Done {
                resources,
                attempts,
                took: t,
            } => {
                entry.resources = Some(resources.clone());
                entry.attempt = Some(*attempts);
                learned.insert(id.clone(), resources.clone());
                progress.done.insert(id.clone());
                took.insert(id.clone(), *t);
            }
            Outcome::Adopted { resources } => {
                entry.event = EventKind::Adopted;
                entry.resources = Some(resources.clone());
                learned.insert(id.clone(), resources.clone());
                progress.done.insert(id.clone());
            }
            Outcome::Failed { error, attempts } => {
                entry.event = EventKind::Failed;
                entry.error = Some(error.clone());
                entry.attempt = Some(*attempts);
                progress.failed.insert(id.clone());
            }
            Outcome::Resumed | Outcome::Skipped { .. } => unreachable!("not produced by a task"),
        }
        journal.record(&entry)?;
        (opts.hook)(&format!("after:{id}"));
        if step.kind().brings_node_back()
            && progress.done.contains(&id)
            && let Some(n) = &step.node
            && let Some(since) = out_since.remove(n)
        {
            write_stop.insert(n.clone(), since.elapsed());
        }
        on_event(&Event::Finished {
            step: id.clone(),
            outcome: outcome.clone(),
        });
        outcomes.insert(id, outcome);
    }
    skip_dependents(&plan, &mut progress, &mut outcomes, journal, on_event)?;
    // Nothing runs and nothing is ready, yet steps remain: never report that as success.
    for s in &plan.steps {
        if !outcomes.contains_key(&s.id) {
            let because = "never became ready (a dependency did not finish, or the rolling limit could not be met)".to_string();
            let mut e = Entry::new(EventKind::Skipped, Some(&s.id));
            e.error = Some(because.clone());
            journal.record(&e)?;
            let outcome = Outcome::Skipped { because };
            on_event(&Event::Finished {
                step: s.id.clone(),
                outcome: outcome.clone(),
            });
            outcomes.insert(s.id.clone(), outcome);
        }
    }
    journal.record(&Entry::new(EventKind::Finished, None))?;
    Ok(Report {
        outcomes,
        interrupted: interrupted.is_some(),
        write_stop,
        wall: started.elapsed(),
        took,
    })
}

/// A journal says what was done; the world must still show it. A resumed step that created
/// something (a snapshot, a volume, an instance, an SMD archive, a set's mark) is looked for
/// again: if any such effect is gone (the world was restored from a copy, a resource deleted by
/// hand), the journal is not trusted and every step runs again, each observing first, so what
/// does exist is adopted and what does not is done.
async fn with_evidence<P: Provider>(
    provider: &P,
    plan: &Plan,
    done: BTreeMap<String, Resources>,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> BTreeMap<String, Resources> {
    for id in done.keys() {
        let Some(step) = plan.step(id) else { continue };
        if !leaves_evidence(step.kind()) {
            continue;
        }
        let input = StepInput {
            plan_id: &plan.plan_id,
            step,
            learned: &done,
        };
        if !matches!(provider.observe(input).await, Ok(Some(_))) {
            on_event(&Event::EvidenceGone { step: id.clone() });
            return BTreeMap::new();
        }
    }
    done
}

/// Step kinds whose effect stays in the world and can be found again.
fn leaves_evidence(kind: asdr_planner::StepKind) -> bool {
    use asdr_planner::StepKind::*;
    matches!(
        kind,
        Snapshot | SnapshotInstance | CreateVolume | ProvisionInstance | CopySmd | MarkSetComplete
    )
}

/// Marks every step that can no longer run (a dependency failed or was skipped) as skipped,
/// except cleanup steps, which run once their dependencies have finished either way.
/// Records that a step will not run, and why.
fn skipped(journal: &mut Journal, id: &str, because: String) -> Result<Outcome, JournalError> {
    let mut e = Entry::new(EventKind::Skipped, Some(id));
    e.error = Some(because.clone());
    journal.record(&e)?;
    Ok(Outcome::Skipped { because })
}

fn skip_dependents(
    plan: &Plan,
    progress: &mut StepStates,
    outcomes: &mut BTreeMap<String, Outcome>,
    journal: &mut Journal,
    on_event: &(dyn Fn(&Event) + Send + Sync),
) -> Result<(), JournalError> {
    loop {
        let mut changed = false;
        for s in &plan.steps {
            if s.cleanup
                || progress.done.contains(&s.id)
                || progress.failed.contains(&s.id)
                || progress.skipped.contains(&s.id)
                || progress.running.contains(&s.id)
            {
                continue;
            }
            if let Some(bad) = s
                .depends_on
                .iter()
                .find(|d| progress.failed.contains(*d) || progress.skipped.contains(*d))
            {
                let because = format!("upstream {bad} did not succeed");
                let mut e = Entry::new(EventKind::Skipped, Some(&s.id));
                e.error = Some(because.clone());
                journal.record(&e)?;
                progress.skipped.insert(s.id.clone());
                let outcome = Outcome::Skipped { because };
                on_event(&Event::Finished {
                    step: s.id.clone(),
                    outcome: outcome.clone(),
                });
                outcomes.insert(s.id.clone(), outcome);
                changed = true;
            }
        }
        if !changed {
            return Ok(());
        }
    }
}

/// One step: observe, then act (polling while pending), retrying transient errors, within the
/// step's deadline.
async fn run_step<P: Provider>(
    provider: &P,
    plan_id: &str,
    step: &Step,
    learned: &BTreeMap<String, Resources>,
    opts: &Options,
    on_event: &(dyn Fn(Event) + Send + Sync),
) -> Outcome {
    let started = Instant::now();
    let input = StepInput {
        plan_id,
        step,
        learned,
    };
    let mut attempts = 0;
    // What the step waited on last, for the timeout's message.
    let mut last_note = String::new();
    let work = async {
        loop {
            attempts += 1;
            let result: Result<Outcome, StepError> = async {
                if let Some(resources) = provider.observe(input).await? {
                    return Ok(Outcome::Adopted { resources });
                }
                // The first poll comes soon (an attachment or a launch often settles within a
                // second or two), then polls back off: ×1.5 each time, up to 4× the interval.
                let mut interval = opts.poll_interval.min(Duration::from_secs(1));
                loop {
                    match provider.act(input).await? {
                        StepProgress::Done(resources) => {
                            return Ok(Outcome::Done {
                                resources,
                                attempts,
                                took: started.elapsed(),
                            });
                        }
                        StepProgress::Pending { percent, note } => {
                            note.clone_into(&mut last_note);
                            on_event(Event::Pending {
                                step: step.id.clone(),
                                percent,
                                note,
                            });
                            tokio::time::sleep(interval).await;
                            interval = (interval * 3 / 2).min(opts.poll_interval * 4);
                        }
                    }
                }
            }
            .await;
            match result {
                Ok(outcome) => return outcome,
                Err(e) => match e.retry {
                    Retry::Transient { after } if attempts < opts.max_attempts => {
                        on_event(Event::Retrying {
                            step: step.id.clone(),
                            attempt: attempts,
                            error: e.to_string(),
                        });
                        // Back off at least as long as asked, doubling with each attempt (R15).
                        tokio::time::sleep(after * 2u32.pow(attempts - 1)).await;
                    }
                    _ => {
                        return Outcome::Failed {
                            error: e.to_string(),
                            attempts,
                        };
                    }
                },
            }
        }
    };
    let deadline = opts.timeout_for(step);
    match tokio::time::timeout(deadline, work).await {
        Ok(outcome) => outcome,
        Err(_) => Outcome::Failed {
            error: if last_note.is_empty() {
                format!("timed out after {}s", deadline.as_secs_f64())
            } else {
                format!(
                    "timed out after {}s, still: {last_note}",
                    deadline.as_secs_f64()
                )
            },
            attempts,
        },
    }
}

#[cfg(test)]
mod tests;

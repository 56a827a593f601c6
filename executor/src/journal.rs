//! The journal: `.asdr/journal/<plan-id>.jsonl`, one line per step event, written (and synced)
//! before and after each step, with the resource ids the step learned. The plan itself is kept
//! beside it (`<plan-id>.plan.json`), so an interrupted apply can be resumed from these two files.

use std::collections::BTreeMap;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use asdr_planner::Plan;
use asdr_planner::ports::Resources;
use serde::{Deserialize, Serialize};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    /// The apply began (or resumed) this plan.
    Begin,
    Start,
    Done,
    /// The effect already existed and was adopted.
    Adopted,
    Retry,
    Failed,
    Skipped,
    /// The apply ended; a journal without it was interrupted.
    Finished,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    /// Wall-clock time, RFC 3339 with fractions.
    pub t: String,
    pub event: EventKind,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub step: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<Resources>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub attempt: Option<u32>,
}

impl Entry {
    pub fn new(event: EventKind, step: Option<&str>) -> Self {
        Entry {
            t: OffsetDateTime::now_utc()
                .format(&Rfc3339)
                .unwrap_or_default(),
            event,
            step: step.map(str::to_string),
            resources: None,
            error: None,
            attempt: None,
        }
    }

    pub fn time(&self) -> Option<OffsetDateTime> {
        OffsetDateTime::parse(&self.t, &Rfc3339).ok()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    #[error("journal {path}: {source}")]
    Io {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "{path} holds another plan with the id {plan_id} (two plans made in the same second): nothing was applied. Make the plan again"
    )]
    Collision { plan_id: String, path: String },
    #[error("journal {path}:{line}: {message}")]
    Corrupt {
        path: String,
        line: usize,
        message: String,
    },
}

/// The same plan: the same operation, inputs and steps (the time it was made aside).
fn same_plan(a: &Plan, b: &Plan) -> bool {
    a.cluster == b.cluster
        && a.operation == b.operation
        && a.spec_digest == b.spec_digest
        && a.world_digest == b.world_digest
        && serde_json::to_value(&a.steps).ok() == serde_json::to_value(&b.steps).ok()
}

fn io(path: &Path) -> impl Fn(std::io::Error) -> JournalError + '_ {
    move |source| JournalError::Io {
        path: path.display().to_string(),
        source,
    }
}

#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// What an earlier, interrupted run of the same plan finished.
#[derive(Debug, Default, Clone)]
pub struct Resumed {
    pub done: BTreeMap<String, Resources>,
    pub entries: Vec<Entry>,
}

pub fn journal_path(dir: &Path, plan_id: &str) -> PathBuf {
    dir.join(format!("{plan_id}.jsonl"))
}

pub fn plan_path(dir: &Path, plan_id: &str) -> PathBuf {
    dir.join(format!("{plan_id}.plan.json"))
}

/// Reads a journal's entries. A torn last line (the process died mid-write) is ignored: the
/// step it described is observed again.
pub fn read(path: &Path) -> Result<Vec<Entry>, JournalError> {
    let file = crate::private::open(path).map_err(io(path))?;
    let lines: Vec<String> = BufReader::new(file)
        .lines()
        .collect::<Result<_, _>>()
        .map_err(io(path))?;
    let mut out = Vec::new();
    for (i, line) in lines.iter().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match serde_json::from_str(line) {
            Ok(e) => out.push(e),
            Err(_) if i + 1 == lines.len() => break,
            Err(e) => {
                return Err(JournalError::Corrupt {
                    path: path.display().to_string(),
                    line: i + 1,
                    message: e.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// The journals in `dir` (`<plan-id>.jsonl`), by plan id; none when there is no such directory.
fn journal_files(dir: &Path) -> Vec<(String, PathBuf)> {
    let Ok(read_dir) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    read_dir
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().and_then(|e| e.to_str()) == Some("jsonl"))
        .map(|p| {
            let id = p
                .file_stem()
                .and_then(|s| s.to_str())
                .unwrap_or_default()
                .to_string();
            (id, p)
        })
        .collect()
}

/// The plan kept beside the journal of `id`.
pub fn plan_of(dir: &Path, id: &str) -> Result<Plan, JournalError> {
    let plan_file = plan_path(dir, id);
    let text = crate::private::read_to_string(&plan_file).map_err(io(&plan_file))?;
    serde_json::from_str(&text).map_err(|e| JournalError::Corrupt {
        path: plan_file.display().to_string(),
        line: e.line(),
        message: e.to_string(),
    })
}

/// How an apply ended, as its journal tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Ended {
    /// Every step done.
    Succeeded,
    /// A step failed or was skipped (the apply ran its cleanups and stopped).
    Failed,
    /// No end recorded: killed, or still running.
    Unfinished,
    /// Ended by `asdr apply --discard` (or a drill's clean-up) without finishing: never a
    /// success, whatever its steps did before.
    Discarded,
}

/// One apply of a cluster's plan.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Applied {
    pub plan_id: String,
    pub operation: String,
    #[serde(with = "time::serde::rfc3339")]
    pub began: OffsetDateTime,
    /// The last entry's time.
    #[serde(with = "time::serde::rfc3339")]
    pub last: OffsetDateTime,
    pub ended: Ended,
}

/// The entries of a journal's last run: from its last `begin` (a failed build resumed runs again
/// in the same journal, and how it ended is how its last run ended).
fn last_run(entries: &[Entry]) -> &[Entry] {
    let start = entries
        .iter()
        .rposition(|e| e.event == EventKind::Begin)
        .unwrap_or(0);
    &entries[start..]
}

/// The applies of `cluster` the journals in `dir` record, oldest first.
pub fn history(dir: &Path, cluster: &str) -> Result<Vec<Applied>, JournalError> {
    let mut out = Vec::new();
    for (id, path) in journal_files(dir) {
        let plan = plan_of(dir, &id)?;
        if plan.cluster != cluster {
            continue;
        }
        let entries = read(&path)?;
        let times: Vec<OffsetDateTime> = entries.iter().filter_map(Entry::time).collect();
        let (Some(began), Some(last)) = (times.iter().min(), times.iter().max()) else {
            continue;
        };
        let run = last_run(&entries);
        let failed = run
            .iter()
            .any(|e| matches!(e.event, EventKind::Failed | EventKind::Skipped));
        let finished = run.iter().any(|e| e.event == EventKind::Finished);
        let discarded = run.iter().any(|e| {
            e.event == EventKind::Finished
                && e.error
                    .as_deref()
                    .is_some_and(|m| m.starts_with("discarded"))
        });
        out.push(Applied {
            plan_id: id,
            operation: plan.operation.clone(),
            began: *began,
            last: *last,
            ended: match (finished, failed) {
                _ if discarded => Ended::Discarded,
                (_, true) => Ended::Failed,
                (true, false) => Ended::Succeeded,
                (false, false) => Ended::Unfinished,
            },
        });
    }
    out.sort_by(|a, b| {
        a.began
            .cmp(&b.began)
            .then_with(|| a.plan_id.cmp(&b.plan_id))
    });
    Ok(out)
}

/// Plans whose journal has no `finished` entry (and no failure), oldest first: applies that were
/// killed and can be resumed.
pub fn unfinished(dir: &Path, cluster: &str) -> Result<Vec<Plan>, JournalError> {
    let mut plans = Vec::new();
    for (id, path) in journal_files(dir) {
        let entries = read(&path)?;
        // Ended, or past a failure: once a step failed or was skipped, the cleanups may have run
        // ahead of the steps they close (an unquiesce before its node's snapshot). Resuming
        // that journal would run the rest without them; such an apply is planned afresh.
        if entries.iter().any(|e| {
            matches!(
                e.event,
                EventKind::Finished | EventKind::Failed | EventKind::Skipped
            )
        }) {
            continue;
        }
        let plan = plan_of(dir, &id)?;
        if plan.cluster == cluster {
            plans.push(plan);
        }
    }
    plans.sort_by(|a, b| a.plan_id.cmp(&b.plan_id));
    Ok(plans)
}

/// What each drill's applies for `cluster` launched or created (instance and volume ids, by
/// drill name), as their journals recorded it: a drill's teardown deletes only these. A plan or
/// journal that cannot be read records nothing (its resources are kept, never deleted on a guess).
pub fn drill_resources(
    dir: &Path,
    cluster: &str,
) -> BTreeMap<String, std::collections::BTreeSet<String>> {
    let mut out: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for (id, path) in journal_files(dir) {
        let Ok(plan) = plan_of(dir, &id) else {
            continue;
        };
        let Some(drill) = plan.operation.strip_prefix("drill:") else {
            continue;
        };
        if plan.cluster != cluster {
            continue;
        }
        let made = out.entry(drill.to_string()).or_default();
        let mut in_flight = std::collections::BTreeSet::new();
        for e in read(&path).unwrap_or_default() {
            match (e.event, e.step) {
                (EventKind::Start, Some(step)) => {
                    in_flight.insert(step);
                }
                (EventKind::Done | EventKind::Adopted, step) => {
                    if let Some(step) = step {
                        in_flight.remove(&step);
                    }
                    if let Some(r) = e.resources {
                        made.extend(
                            r.instance_id
                                .iter()
                                .chain(r.volume_id.iter())
                                .map(|made| asdr_planner::drill::made_by(made, &id)),
                        );
                    }
                }
                _ => {}
            }
        }
        // Steps started and never recorded done (a drill killed while EC2 made what they
        // asked for): what they made is known by the plan and step it was tagged with at
        // creation (`asdr:plan`, `asdr:step`), one resource per step.
        made.extend(
            in_flight
                .into_iter()
                .map(|step| asdr_planner::drill::in_flight(&id, &step)),
        );
    }
    out
}

/// The snapshots `cluster`'s applies recorded taking (`<id>@<plan id>`), from their journals.
pub fn snapshots_taken(dir: &Path, cluster: &str) -> std::collections::BTreeSet<String> {
    let mut out = std::collections::BTreeSet::new();
    for (id, path) in journal_files(dir) {
        let Ok(plan) = plan_of(dir, &id) else {
            continue;
        };
        if plan.cluster != cluster {
            continue;
        }
        for e in read(&path).unwrap_or_default() {
            if matches!(e.event, EventKind::Done | EventKind::Adopted)
                && let Some(r) = e.resources
            {
                out.extend(
                    r.snapshot_id
                        .iter()
                        .chain(r.snapshot_ids.iter())
                        .map(|s| asdr_planner::drill::made_by(s, &id)),
                );
            }
        }
    }
    out
}

/// The instances a journal's steps launched or learned, as it recorded them.
pub fn learned_instances(dir: &Path, plan_id: &str) -> Result<Vec<String>, JournalError> {
    let path = journal_path(dir, plan_id);
    let mut out: Vec<String> = read(&path)?
        .into_iter()
        .filter(|e| matches!(e.event, EventKind::Done | EventKind::Adopted))
        .filter_map(|e| e.resources?.instance_id)
        .collect();
    out.sort();
    out.dedup();
    Ok(out)
}

/// Whether `plan` builds what planning afresh would find partly built and refuse: a new cluster
/// in another region (every step acts there, none is a cleanup), or a zone-loss restore's nodes
/// in another zone. A failed apply of it is resumed.
pub fn builds_elsewhere(plan: &Plan) -> bool {
    plan.operation.starts_with("restore:")
        && !plan.steps.is_empty()
        && (plan.steps.iter().all(|s| s.region.is_some() && !s.cleanup)
            // A zone-loss restore builds in another zone and marks what it built: planned
            // afresh halfway, it would find its nodes partly built and refuse.
            || plan
                .steps
                .iter()
                .any(|s| s.kind() == asdr_planner::StepKind::MarkRestoreComplete))
}

/// The failed build of `wanted` (a restore into another region) to resume, if the newest apply
/// of that operation is one: its failed steps are tried again, its done steps kept. A build
/// discarded (`asdr apply --discard`) or followed by another apply of the operation is not.
pub fn failed_build(dir: &Path, cluster: &str, wanted: &str) -> Result<Option<Plan>, JournalError> {
    let mut newest: Option<(OffsetDateTime, String, bool)> = None;
    for (id, path) in journal_files(dir) {
        let plan = plan_of(dir, &id)?;
        if plan.cluster != cluster || plan.operation != wanted {
            continue;
        }
        let entries = read(&path)?;
        let Some(began) = entries.iter().filter_map(Entry::time).min() else {
            continue;
        };
        let run = last_run(&entries);
        let failed = run
            .iter()
            .any(|e| matches!(e.event, EventKind::Failed | EventKind::Skipped));
        let discarded = run.iter().any(|e| {
            e.event == EventKind::Finished
                && e.error
                    .as_deref()
                    .is_some_and(|m| m.starts_with("discarded"))
        });
        let resumable = failed && !discarded && builds_elsewhere(&plan);
        if newest
            .as_ref()
            .is_none_or(|(t, i, _)| (began, &id) > (*t, i))
        {
            newest = Some((began, id, resumable));
        }
    }
    match newest {
        Some((_, id, true)) => Ok(Some(plan_of(dir, &id)?)),
        _ => Ok(None),
    }
}

impl Journal {
    /// Opens (or creates) the journal of `plan` in `dir`, keeping the plan beside it, and returns
    /// what an earlier run of it finished.
    pub fn open(dir: &Path, plan: &Plan) -> Result<(Journal, Resumed), JournalError> {
        crate::private::create_own_dir(dir).map_err(io(dir))?;
        let plan_file = plan_path(dir, &plan.plan_id);
        if plan_file.exists() {
            // Plan ids carry the second and a short hash: two different plans made in the same
            // second may share one. The journal of one never stands for the other (its steps
            // would be taken as done).
            let kept = plan_of(dir, &plan.plan_id)?;
            if !same_plan(&kept, plan) {
                return Err(JournalError::Collision {
                    plan_id: plan.plan_id.clone(),
                    path: plan_file.display().to_string(),
                });
            }
        } else {
            let text = serde_json::to_string_pretty(plan).expect("a plan serializes");
            crate::private::write(&plan_file, text.as_bytes()).map_err(io(&plan_file))?;
        }
        let path = journal_path(dir, &plan.plan_id);
        let entries = if path.exists() {
            read(&path)?
        } else {
            Vec::new()
        };
        // What is done is what the latest word on each step says: a step done in one run and
        // failed or skipped in a later one (its evidence gone, say) is not done.
        let mut done = BTreeMap::new();
        for e in &entries {
            let Some(step) = &e.step else { continue };
            match e.event {
                EventKind::Done | EventKind::Adopted => {
                    done.insert(step.clone(), e.resources.clone().unwrap_or_default());
                }
                EventKind::Failed | EventKind::Skipped => {
                    done.remove(step);
                }
                _ => {}
            }
        }
        let file = crate::private::append(&path).map_err(io(&path))?;
        Ok((Journal { path, file }, Resumed { done, entries }))
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one entry and syncs it to disk before returning.
    pub fn record(&mut self, entry: &Entry) -> Result<(), JournalError> {
        let mut line = serde_json::to_string(entry).expect("an entry serializes");
        line.push('\n');
        self.file
            .write_all(line.as_bytes())
            .map_err(io(&self.path))?;
        self.file.sync_data().map_err(io(&self.path))
    }
}

/// Marks the interrupted apply of `plan_id` as ended without finishing it: the journal keeps
/// every entry and gains a last one saying so, and the plan is no longer resumed.
pub fn abandon(dir: &Path, plan_id: &str) -> Result<(), JournalError> {
    abandon_because(
        dir,
        plan_id,
        "discarded by the operator (asdr apply --discard)",
    )
}

/// As [`abandon`], saying why (`why` starts with "discarded").
pub fn abandon_because(dir: &Path, plan_id: &str, why: &str) -> Result<(), JournalError> {
    let path = journal_path(dir, plan_id);
    if !path.exists() {
        return Err(io(&path)(std::io::ErrorKind::NotFound.into()));
    }
    let mut file = crate::private::append(&path).map_err(io(&path))?;
    let mut e = Entry::new(EventKind::Finished, None);
    e.error = Some(why.into());
    let line = serde_json::to_string(&e).expect("an entry serializes");
    writeln!(file, "{line}").map_err(io(&path))?;
    file.sync_all().map_err(io(&path))
}

/// Why an interrupted apply stands in the way.
#[derive(Debug, thiserror::Error)]
pub enum ResumeError {
    /// Another operation was interrupted: it is finished or discarded first, never set aside.
    #[error(
        "the apply of plan {plan_id} ({operation}) was interrupted and must be finished or discarded first: resume it with `asdr apply{resume}`, or discard it with `asdr apply --discard {plan_id}`"
    )]
    OtherOperation {
        plan_id: String,
        operation: String,
        resume: String,
    },
}

/// The interrupted plan to resume for the `wanted` operation label, if any. Only the same
/// operation resumes: an interrupted restore is never finished by asking for another one.
pub fn resumable(interrupted: Vec<Plan>, wanted: &str) -> Result<Option<Plan>, ResumeError> {
    let Some(plan) = interrupted.into_iter().next() else {
        return Ok(None);
    };
    if plan.operation != wanted {
        return Err(ResumeError::OtherOperation {
            resume: plan
                .operation
                .strip_prefix("restore:")
                .map(|r| format!(" --restore {r}"))
                .unwrap_or_default(),
            plan_id: plan.plan_id,
            operation: plan.operation,
        });
    }
    Ok(Some(plan))
}

/// Where the world a plan was made from is kept, beside its plan: `<plan-id>.world.json`.
pub fn world_path(dir: &Path, plan_id: &str) -> PathBuf {
    dir.join(format!("{plan_id}.world.json"))
}

/// Records the world `plan_id` was made from (once: an existing record is kept), so a resumed
/// apply can check that the plan file still is what planning those inputs gives.
pub fn save_world(
    dir: &Path,
    plan_id: &str,
    world: &asdr_planner::World,
) -> Result<(), JournalError> {
    let path = world_path(dir, plan_id);
    if path.exists() {
        return Ok(());
    }
    crate::private::create_own_dir(dir).map_err(io(dir))?;
    let text = serde_json::to_vec(world).expect("a world serializes");
    crate::private::write(&path, &text).map_err(io(&path))
}

/// The recorded world of `plan_id`, if one was kept.
pub fn load_world(dir: &Path, plan_id: &str) -> Result<Option<asdr_planner::World>, JournalError> {
    let path = world_path(dir, plan_id);
    let text = match crate::private::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(io(&path)(e)),
    };
    serde_json::from_str(&text)
        .map(Some)
        .map_err(|e| JournalError::Corrupt {
            path: path.display().to_string(),
            line: e.line(),
            message: e.to_string(),
        })
}

//! `status`: the planner's view of the backups against the policy, with what only this machine
//! knows: who holds the cluster's lock, and how the last applies ended.

use asdr_executor::journal::{self, Applied, Ended};
use asdr_planner::status::Status;
use serde::Serialize;
use time::OffsetDateTime;

use crate::{EngineError, Session};

#[derive(Debug, Clone, Serialize)]
pub struct Report {
    #[serde(flatten)]
    pub status: Status,
    /// Who holds the lock, when someone does.
    pub lock_held_by: Option<String>,
    pub last_apply: Option<Applied>,
    /// When the last apply that succeeded ended.
    #[serde(with = "time::serde::rfc3339::option")]
    pub last_success: Option<OffsetDateTime>,
    /// Each declared drill's last run that passed, from its report here.
    pub drills: Vec<DrillRecord>,
}

/// A drill's last passing run, as its report (`.asdr/drills/<drill>-<plan>.json`) says.
#[derive(Debug, Clone, Serialize)]
pub struct DrillRecord {
    pub drill: String,
    #[serde(with = "time::serde::rfc3339")]
    pub last_success: OffsetDateTime,
    /// The restore's time as measured then (first step's start to last step's end).
    pub rto_seconds: Option<f64>,
    /// What the plan estimated for it.
    pub estimate_seconds: Option<u64>,
}

/// Each declared drill's newest passing report. A report that does not parse, or names a drill
/// the policy no longer declares, is passed over.
fn drills(session: &Session) -> Vec<DrillRecord> {
    let dir = session.state_dir().join("drills");
    let Ok(entries) = std::fs::read_dir(&dir) else {
        return Vec::new();
    };
    let mut newest: std::collections::BTreeMap<String, DrillRecord> = Default::default();
    for e in entries.flatten() {
        let path = e.path();
        if path.extension().and_then(|x| x.to_str()) != Some("json") {
            continue;
        }
        let Some(v) = std::fs::read_to_string(&path)
            .ok()
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        else {
            continue;
        };
        let (Some(drill), Some(true), Some(finished)) = (
            v["drill"].as_str(),
            v["passed"].as_bool(),
            v["finished"].as_str().and_then(|t| {
                OffsetDateTime::parse(t, &time::format_description::well_known::Rfc3339).ok()
            }),
        ) else {
            continue;
        };
        if v["cluster"].as_str() != Some(session.policy.cluster.name.as_str())
            || session.policy.drill(drill).is_none()
        {
            continue;
        }
        let record = DrillRecord {
            drill: drill.to_string(),
            last_success: finished,
            rto_seconds: v["restore_time"]["measured"]["total_seconds"].as_f64(),
            estimate_seconds: v["restore_time"]["measured"]["estimate_seconds"].as_u64(),
        };
        if newest
            .get(drill)
            .is_none_or(|r| r.last_success < record.last_success)
        {
            newest.insert(drill.to_string(), record);
        }
    }
    newest.into_values().collect()
}

pub fn report(session: &Session) -> Result<Report, EngineError> {
    let world = session.world()?;
    // The wrong world (another cluster's file, region or account) is refused as `plan` refuses
    // it, never reported on as a cluster whose every node is gone.
    asdr_planner::cluster_present(&session.policy, &world)?;
    let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
    let status = asdr_planner::status::status(&session.policy, &world, now);
    let applies = journal::history(&session.journal_dir(), &session.policy.cluster.name)
        .map_err(|e| EngineError::Journal(e.to_string()))?;
    Ok(Report {
        status,
        lock_held_by: session.lock()?.held_by()?,
        last_success: applies
            .iter()
            .filter(|a| a.ended == Ended::Succeeded)
            .map(|a| a.last)
            .max(),
        last_apply: applies.last().cloned(),
        drills: drills(session),
    })
}

/// `sets`: the cluster's backup sets as of the observed world's time, newest first.
pub fn sets(
    session: &Session,
) -> Result<(OffsetDateTime, Vec<asdr_planner::sets::SetRow>), EngineError> {
    let world = session.world()?;
    // A lost home region leaves its copies: they are the sets there are.
    if !world
        .unobserved_regions
        .contains_key(&session.policy.cluster.region)
    {
        asdr_planner::cluster_present(&session.policy, &world)?;
    }
    let now = world.now.unwrap_or_else(OffsetDateTime::now_utc);
    Ok((now, asdr_planner::sets::sets(&session.policy, &world, now)))
}

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

//! `asdr sets`: the backup sets, one row each, to choose a restore's `set:<id>`. Whether a set is
//! complete is what `status` says of it (the same question asked the same way), so a set listed
//! here as complete is one a restore would take.

use asdr_specs::{Method, Policy};
use serde::Serialize;
use time::OffsetDateTime;

use crate::observe::Observed;
use crate::world::World;

/// One backup set of the cluster.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SetRow {
    pub id: String,
    /// When it was taken (the set's id says it, to the second).
    #[serde(with = "time::serde::rfc3339")]
    pub time: OffsetDateTime,
    pub age_seconds: u64,
    /// `complete` (a recovery point), `unfinished` (begun, not complete: never restored from), or
    /// `not proven` (its mark names a manifest the store does not hold: never counted or deleted).
    pub state: &'static str,
    /// EBS: the snapshots it holds and their volumes' provisioned size (the data may be less).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub snapshots: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub volume_gib: Option<u64>,
    /// asbackup: the namespaces it holds files of, and the set it is an increment of.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub namespaces: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub incremental_of: Option<String>,
    /// The copy regions (`backup.copies`) holding a complete copy of it.
    pub copies: Vec<String>,
    /// Whether the cluster's region holds it; a set kept only as copies (the home retention is
    /// shorter, or the region is lost) is still one a restore in a copy region takes.
    pub at_home: bool,
    /// Why it is not complete, when that can be said.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub why: Option<String>,
    /// Its snapshot locks, per region (R20), as `status` reports them.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub locks: Vec<crate::locks::SetLockStatus>,
}

/// Every set of the cluster, newest first.
pub fn sets(policy: &Policy, world: &World, now: OffsetDateTime) -> Vec<SetRow> {
    let status = crate::status::status(policy, world, now);
    // Whose is what, as `status` and the planner have it.
    let world = match status.cluster_id.as_deref() {
        Some(id) => crate::identity::ours(world, id),
        None => std::borrow::Cow::Borrowed(world),
    };
    let home = crate::copies::home_view(policy, &world);
    let obs = Observed::new(policy, &home);
    let views: Vec<(String, World)> = policy
        .backup
        .copies
        .iter()
        .map(|c| {
            (
                c.region.clone(),
                crate::copies::region_view(policy, &world, c),
            )
        })
        .collect();
    let region_obs: Vec<(&str, Observed<'_>)> = views
        .iter()
        .map(|(r, v)| (r.as_str(), Observed::new(policy, v)))
        .collect();
    let asbackup = policy.backup.method == Method::Asbackup;
    let locks_of = |id: &str| -> Vec<crate::locks::SetLockStatus> {
        status
            .locks
            .iter()
            .filter(|l| l.set == id)
            .cloned()
            .collect()
    };
    let mut rows: Vec<SetRow> = obs
        .sets
        .iter()
        .map(|s| {
            let state = if status.complete_sets.contains(&s.id) {
                "complete"
            } else if s.unproven {
                "not proven"
            } else {
                "unfinished"
            };
            let mut namespaces: Vec<String> =
                s.asbackup.iter().map(|a| a.namespace.clone()).collect();
            namespaces.sort();
            namespaces.dedup();
            SetRow {
                id: s.id.clone(),
                time: s.time,
                age_seconds: (now - s.time).whole_seconds().max(0) as u64,
                state,
                snapshots: (!asbackup).then_some(s.snapshots.len()),
                volume_gib: (!asbackup).then(|| {
                    s.snapshots
                        .iter()
                        .map(|p| u64::from(p.volume_size_gib))
                        .sum()
                }),
                namespaces,
                incremental_of: s.asbackup.iter().find_map(|a| a.incremental_of.clone()),
                copies: region_obs
                    .iter()
                    .filter(|(_, o)| o.set(&s.id).is_some_and(|c| c.is_complete()))
                    .map(|(r, _)| r.to_string())
                    .collect(),
                at_home: true,
                why: (state != "complete")
                    .then(|| s.manifest_problem.clone())
                    .flatten(),
                locks: locks_of(&s.id),
            }
        })
        .collect();
    // Sets held only as copies: each copy region's complete sets the home region no longer holds.
    for (region, robs) in &region_obs {
        for c in robs.sets.iter().filter(|c| c.is_complete()) {
            if let Some(row) = rows.iter_mut().find(|r| r.id == c.id) {
                if !row.at_home && !row.copies.iter().any(|r| r == region) {
                    row.copies.push(region.to_string());
                }
                continue;
            }
            rows.push(SetRow {
                id: c.id.clone(),
                time: c.time,
                age_seconds: (now - c.time).whole_seconds().max(0) as u64,
                state: "complete",
                snapshots: (!asbackup).then_some(c.snapshots.len()),
                volume_gib: (!asbackup).then(|| {
                    c.snapshots
                        .iter()
                        .map(|p| u64::from(p.volume_size_gib))
                        .sum()
                }),
                namespaces: Vec::new(),
                incremental_of: None,
                copies: vec![region.to_string()],
                at_home: false,
                why: None,
                locks: locks_of(&c.id),
            });
        }
    }
    rows.sort_by(|a, b| b.time.cmp(&a.time).then_with(|| b.id.cmp(&a.id)));
    rows
}

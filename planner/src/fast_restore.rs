//! Fast Snapshot Restore (`restores[].volume.fast_snapshot_restore`): the restore's snapshots
//! are enabled in the zones its volumes are made in, each volume is made only once its snapshot
//! is `enabled` there (whole at creation, no lazy loading), and the pairs are disabled again once
//! the volumes are made. Nodes are stopped only once it is enabled, so the wait for it (an hour
//! per TiB) is not downtime. What it costs, and the quota it meets, are said in the plan.

use std::collections::{BTreeMap, BTreeSet};

use asdr_specs::Restore;

use crate::builder::Builder;
use crate::params::{self, Params, Ref};
use crate::plan::StepKind;

/// A restore's volumes from snapshots, grouped by zone: zone → snapshot ids.
fn pairs(b: &Builder) -> BTreeMap<String, Vec<String>> {
    let mut by_zone: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for s in &b.steps {
        if let Params::CreateVolume(p) = &s.params
            && let Some(id) = &p.snapshot_id
        {
            by_zone
                .entry(p.availability_zone.clone())
                .or_default()
                .insert(id.clone());
        }
    }
    by_zone
        .into_iter()
        .map(|(z, ids)| (z, ids.into_iter().collect()))
        .collect()
}

/// The pairs already on before this plan (enabling, optimizing or enabled): someone else's (a
/// lifecycle rule, an operator, `backup.fast_restore`), waited for but never turned off here.
pub(crate) fn already_on(world: &crate::World, region: Option<&str>) -> BTreeSet<(String, String)> {
    world
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == region)
        .flat_map(|s| {
            s.fast_restore
                .iter()
                .filter(|(_, state)| {
                    matches!(state.as_str(), "enabling" | "optimizing" | "enabled")
                })
                .map(|(zone, _)| (zone.clone(), s.id.clone()))
        })
        .collect()
}

/// Adds the enable (waited for) and disable steps around the restore's volume creations.
pub(crate) fn add(restore: &Restore, world: &crate::World, cluster_id: &str, b: &mut Builder) {
    if !restore.volume.fast_snapshot_restore {
        return;
    }
    let by_zone = pairs(b);
    if by_zone.is_empty() {
        return;
    }
    let creates: Vec<usize> = (0..b.steps.len())
        .filter(
            |&i| matches!(&b.steps[i].params, Params::CreateVolume(p) if p.snapshot_id.is_some()),
        )
        .collect();
    let region = b.steps[creates[0]].region.clone();
    // Enabled once the plan's checks passed and the snapshots are complete (R3): FSR is billed
    // from the first minute, so a plan refused at its checks never turns it on.
    let mut before: Vec<String> = creates
        .iter()
        .flat_map(|&i| b.steps[i].depends_on.clone())
        .filter(|d| d.starts_with("wait_snapshot:"))
        .chain(
            b.steps
                .iter()
                .filter(|s| {
                    matches!(
                        s.kind(),
                        StepKind::CheckClusterStable
                            | StepKind::ClaimCluster
                            | StepKind::CheckSmdArchive
                    )
                })
                .map(|s| s.id.clone()),
        )
        .collect();
    before.sort();
    before.dedup();
    let enable_id = format!("fast_snapshot_restore:enable:{}", restore.name);
    let disable_id = format!("fast_snapshot_restore:disable:{}", restore.name);
    let step = |enable: bool, snapshots: BTreeMap<String, Vec<String>>| {
        Params::FastSnapshotRestore(params::FastSnapshotRestore {
            enable,
            restore: restore.name.clone(),
            snapshots,
            cluster_id: Some(cluster_id.to_string()),
        })
    };
    // Only what this plan turns on is turned off again.
    let on = already_on(world, region.as_deref());
    let ours: BTreeMap<String, Vec<String>> = by_zone
        .iter()
        .map(|(z, ids)| {
            (
                z.clone(),
                ids.iter()
                    .filter(|id| !on.contains(&(z.clone(), (*id).clone())))
                    .cloned()
                    .collect::<Vec<_>>(),
            )
        })
        .filter(|(_, ids)| !ids.is_empty())
        .collect();
    let created: Vec<String> = creates.iter().map(|&i| b.steps[i].id.clone()).collect();
    for s in &mut b.steps {
        let takes_out = matches!(
            s.kind(),
            StepKind::StopNode | StepKind::StopInstance | StepKind::DetachVolume
        );
        if takes_out || created.contains(&s.id) {
            s.depends_on.push(enable_id.clone());
            s.depends_on.sort();
        }
    }
    // Disabled once each volume is `available` (made with its snapshot's benefit), or made.
    let made: Vec<String> = b
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::WaitVolume(w) => match &w.volume_id {
                Ref::Learned { from_step } if created.contains(from_step) => Some(s.id.clone()),
                _ => None,
            },
            _ => None,
        })
        .collect();
    let saved = b.region.take();
    b.region = region;
    b.step(enable_id.clone(), None, before, step(true, by_zone.clone()));
    // A cleanup: EBS bills every hour a pair stays on, so it is turned off even when the
    // restore fails (a run again turns it on again, and waits for it again).
    if !ours.is_empty() {
        let mut after = if made.is_empty() { created } else { made };
        after.push(enable_id);
        b.cleanup_step(disable_id, None, after, step(false, ours));
    }
    b.region = saved;
    // What a reviewer approves: the pairs billed while the restore's volumes are made.
    b.change(
        format!("fast_snapshot_restore.{}", restore.name),
        crate::plan::Action::Update,
        "volume.fast_snapshot_restore: enabled before the restore's volumes are made, disabled once they are",
        None,
        Some(serde_json::json!({ "snapshots_by_zone": by_zone, "already_on": on.len() })),
    );
    say_cost(restore, &by_zone, b);
}

/// What the plan costs and meets: EBS bills each snapshot–zone pair per DSU-hour (per minute,
/// an hour at least), fills each pair's credit bucket from empty, and enables at most 5
/// snapshots per region unless the quota is raised.
fn say_cost(restore: &Restore, by_zone: &BTreeMap<String, Vec<String>>, b: &mut Builder) {
    let pairs: usize = by_zone.values().map(Vec::len).sum();
    let largest = b
        .steps
        .iter()
        .filter_map(|s| match &s.params {
            Params::CreateVolume(p) if p.snapshot_id.is_some() => Some(u64::from(p.size_gib)),
            _ => None,
        })
        .max()
        .unwrap_or(0);
    // Enabled from the plan's start until its volumes are made: the optimisation, then minutes.
    let hours = (largest * 3600 / 1024 + crate::rto::VOLUME_CREATE_SECONDS)
        .div_ceil(3600)
        .max(1);
    let snapshots: BTreeSet<&String> = by_zone.values().flatten().collect();
    b.warn(
        "cost",
        format!(
            "restore `{}` enables Fast Snapshot Restore for {pairs} snapshot–zone pair(s) ({} snapshot(s) in {} zone(s)) from before its volumes are made until they are: {pairs} DSU-hour(s) for each hour enabled, billed per minute with one hour at least, about {} DSU-hours here (${:.2} at us-east-1's list price of $0.75); each pair's credit bucket starts empty and fills at MIN(10, 1024 ÷ snapshot GiB) credits an hour, one credit per volume made; optimisation takes about 60 minutes per TiB before a pair is `enabled`",
            restore.name,
            snapshots.len(),
            by_zone.len(),
            pairs as u64 * hours,
            pairs as f64 * hours as f64 * 0.75,
        ),
    );
    if snapshots.len() > crate::rto::FSR_SNAPSHOTS_PER_REGION {
        b.warn(
            "limit",
            format!(
                "restore `{}` enables Fast Snapshot Restore for {} snapshots, and EBS enables {} per region unless its quota (\"Fast snapshot restore\" in Service Quotas) is raised: raise it before you need the restore, or its enable step fails",
                restore.name,
                snapshots.len(),
                crate::rto::FSR_SNAPSHOTS_PER_REGION
            ),
        );
    }
}

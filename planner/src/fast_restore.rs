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

/// A pair EBS bills and serves from: asked for, optimising, or enabled.
fn is_on(state: &str) -> bool {
    matches!(state, "enabling" | "optimizing" | "enabled")
}

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
                .filter(|(_, state)| is_on(state))
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
            no_wait: false,
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
    // Pairs on before: a lifecycle rule's or an operator's, or left by an apply killed before
    // its cleanup. asdr cannot tell which, so it leaves them, and says so.
    let used = on
        .iter()
        .filter(|(z, id)| by_zone.get(z).is_some_and(|ids| ids.contains(id)))
        .count();
    if used > 0 {
        b.warn(
            "cost",
            format!(
                "{} snapshot–zone pair(s) of restore `{}` already had Fast Snapshot Restore on before this plan (a lifecycle rule's, an operator's, `backup.fast_restore`, or left by an apply killed before it turned them off): this plan uses them and leaves them on; `asdr status` lists the pairs on",
                used,
                restore.name
            ),
        );
    }
    say_cost(restore, &by_zone, &on, b);
}

/// What the plan costs and meets: EBS bills each snapshot–zone pair per DSU-hour (per minute,
/// an hour at least), fills each pair's credit bucket from empty, and enables at most 5
/// snapshots per region unless the quota is raised.
fn say_cost(
    restore: &Restore,
    by_zone: &BTreeMap<String, Vec<String>>,
    on: &BTreeSet<(String, String)>,
    b: &mut Builder,
) {
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
    // The quota counts every snapshot with FSR on in the region: the cluster's already on too.
    let in_region: BTreeSet<&String> = snapshots
        .iter()
        .copied()
        .chain(on.iter().map(|(_, id)| id))
        .collect();
    if in_region.len() > crate::rto::FSR_SNAPSHOTS_PER_REGION {
        b.warn(
            "limit",
            format!(
                "restore `{}` needs Fast Snapshot Restore on {} snapshots in the region ({} its own{}), and EBS enables {} per region unless its quota (\"Fast snapshot restore\" in Service Quotas) is raised: raise it before you need the restore, or its enable step fails",
                restore.name,
                in_region.len(),
                snapshots.len(),
                if in_region.len() > snapshots.len() {
                    format!(", {} of the cluster's already on", in_region.len() - snapshots.len())
                } else {
                    String::new()
                },
                crate::rto::FSR_SNAPSHOTS_PER_REGION
            ),
        );
    }
}

/// `backup.fast_restore: newest`, reconciled by every backup plan from what is observed: Fast
/// Snapshot Restore on for the newest complete set's snapshots, each in its node's zone, and off
/// for every older set of the cluster. Older sets are turned off first (EBS enables 5 snapshots
/// per region by default). The newest is not waited for: a backup does not wait an hour per
/// TiB. A plan that makes a new set leaves the newest as it is: the next plan turns it over to
/// the new set (its snapshot ids are known once it is complete).
pub(crate) fn keep_newest(ctx: &crate::Ctx<'_, '_>, b: &mut Builder) {
    use crate::tags;
    if ctx.policy.backup.fast_restore.is_none() {
        return;
    }
    let on = |s: &crate::world::Snapshot, zone: &str| {
        s.fast_restore.get(zone).is_some_and(|st| is_on(st))
    };
    let making = b
        .steps
        .iter()
        .any(|s| s.kind() == StepKind::MarkSetComplete && s.region.is_none());
    let newest = ctx.obs.newest_complete_set().filter(|_| !making);
    let mut enable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    if let Some(set) = newest {
        for s in &set.snapshots {
            let Some(node) = s.tags.get(tags::NODE).and_then(|n| ctx.policy.node(n)) else {
                continue;
            };
            if !on(s, &node.availability_zone) {
                enable
                    .entry(node.availability_zone.clone())
                    .or_default()
                    .push(s.id.clone());
            }
        }
    }
    // The newest complete set stays on while a new one is made (until the next plan moves it).
    let keep: BTreeSet<&str> = ctx
        .obs
        .newest_complete_set()
        .map(|s| s.snapshots.iter().map(|x| x.id.as_str()).collect())
        .unwrap_or_default();
    let mut disable: BTreeMap<String, Vec<String>> = BTreeMap::new();
    for set in &ctx.obs.sets {
        for s in set
            .snapshots
            .iter()
            .filter(|s| !keep.contains(s.id.as_str()))
        {
            for zone in s.fast_restore.keys().filter(|z| on(s, z)) {
                disable.entry(zone.clone()).or_default().push(s.id.clone());
            }
        }
    }
    let params = |enable: bool, snapshots: BTreeMap<String, Vec<String>>| {
        Params::FastSnapshotRestore(params::FastSnapshotRestore {
            enable,
            restore: "backup.fast_restore".into(),
            snapshots,
            cluster_id: Some(ctx.cluster_id.to_string()),
            no_wait: true,
        })
    };
    // After the plan's claim of the cluster id, as everything it does.
    let mut after: Vec<String> = b
        .steps
        .iter()
        .filter(|s| s.kind() == StepKind::ClaimCluster)
        .map(|s| s.id.clone())
        .collect();
    if !disable.is_empty() {
        let pairs: usize = disable.values().map(Vec::len).sum();
        let id = b.step(
            "fast_snapshot_restore:disable:older-sets".into(),
            None,
            after.clone(),
            params(false, disable),
        );
        after.push(id);
        b.warn("cost", format!("backup.fast_restore: Fast Snapshot Restore turned off for {pairs} snapshot–zone pair(s) of older sets"));
    }
    if let (Some(set), false) = (newest, enable.is_empty()) {
        let pairs: usize = enable.values().map(Vec::len).sum();
        b.step(
            format!("fast_snapshot_restore:enable:{}", set.id),
            None,
            after,
            params(true, enable),
        );
        b.warn("cost", format!("backup.fast_restore: Fast Snapshot Restore turned on for the {pairs} snapshot–zone pair(s) of set {}, each in its node's zone: {pairs} DSU-hour(s) for every hour it stays on ($0.75 each in us-east-1 at list price), until a newer set takes its place; optimised at about 60 minutes per TiB", set.id));
    }
}

/// Fast Snapshot Restore on for one set's snapshots, as observed.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct SetOn {
    pub set: String,
    /// Snapshot–zone pairs on (enabling, optimizing or enabled): DSU-hours every hour.
    pub pairs: usize,
    /// The newest complete set, which `backup.fast_restore: newest` keeps on; any other is on
    /// because a restore or someone turned it on (an apply killed before its cleanup leaves it).
    pub kept: bool,
}

/// Every set of the cluster with Fast Snapshot Restore on for any of its snapshots.
pub(crate) fn on_by_set(
    policy: &asdr_specs::Policy,
    obs: &crate::observe::Observed<'_>,
) -> Vec<SetOn> {
    let newest = obs.newest_complete_set().map(|s| s.id.as_str());
    obs.sets
        .iter()
        .filter_map(|set| {
            let pairs = set
                .snapshots
                .iter()
                .flat_map(|s| s.fast_restore.values())
                .filter(|st| is_on(st))
                .count();
            (pairs > 0).then(|| SetOn {
                set: set.id.clone(),
                pairs,
                kept: policy.backup.fast_restore.is_some() && Some(set.id.as_str()) == newest,
            })
        })
        .collect()
}

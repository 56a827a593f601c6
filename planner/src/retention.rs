//! Retention: keep the newest `count` complete sets and none older than `max_age`, never the
//! newest complete set, and never a snapshot asdr did not make for this cluster (R13).

use serde_json::json;
use time::format_description::well_known::Rfc3339;

use std::collections::HashSet;

use asdr_specs::Retain;

use crate::Ctx;
use crate::builder::Builder;
use crate::observe::human_age;
use crate::observe::{BackupSet, Observed};
use crate::params::{DeleteSnapshot, Params};
use crate::plan::Action;
use crate::tags;

/// The volumes asdr has seen as the cluster's: attached to its nodes' instances, members of its
/// sets' manifests, or snapshotted by a set that completed. A snapshot of any other volume that
/// carries a never-completed set's tags is not proven this cluster's (tags are anyone's to
/// write): never deleted as a leftover.
fn known_volumes(ctx: &Ctx<'_, '_>, obs: &Observed<'_>) -> std::collections::BTreeSet<String> {
    let home = ctx.policy.cluster.region.as_str();
    let mut known = std::collections::BTreeSet::new();
    for node in &ctx.policy.cluster.nodes {
        let here = ctx
            .world
            .instances
            .iter()
            .filter(|i| i.region.as_deref().unwrap_or(home) == home);
        if let Some(i) = crate::nodes::find_instance(&ctx.policy.cluster, node, here) {
            known.extend(i.block_devices.iter().map(|b| b.volume_id.clone()));
        }
    }
    for set in &obs.sets {
        if let Some(m) = set.manifest {
            known.extend(m.members.iter().map(|mb| mb.volume_id.clone()));
        }
        if set.is_complete() {
            known.extend(set.snapshots.iter().map(|s| s.volume_id.clone()));
        }
    }
    known
}

/// Whether any snapshot of `set` carries the mark (`asdr:complete`): it was complete once.
fn was_marked(set: &BackupSet<'_>) -> bool {
    set.snapshots
        .iter()
        .any(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true"))
}

/// The sets a declared restore of this region restores from now (`set:` names one; `before:`
/// takes the newest complete set before its time), with the restore's name: retention never
/// deletes a recovery point the policy declares.
pub(crate) fn pinned_sets(
    ctx: &Ctx<'_, '_>,
    obs: &Observed<'_>,
    region: Option<&str>,
) -> std::collections::BTreeMap<String, String> {
    let home = ctx.policy.cluster.region.as_str();
    let mut out = std::collections::BTreeMap::new();
    for r in &ctx.policy.restores {
        if r.region().filter(|x| *x != home) != region {
            continue;
        }
        let sets: Vec<String> = match &r.source {
            asdr_specs::RestoreSource::Set(id) => vec![id.clone()],
            // The set it takes now and, should that one's SMD archive no longer be seen (or a
            // member be lost), the newest set before T once marked complete: the recovery point
            // the operator declared, whatever asdr can see of it today.
            asdr_specs::RestoreSource::Before(t) => {
                let marked = obs
                    .sets
                    .iter()
                    .rev()
                    .find(|s| s.data_time() < *t && was_marked(s));
                obs.complete_set_before(*t)
                    .into_iter()
                    .chain(marked)
                    .map(|s| s.id.clone())
                    .collect()
            }
            _ => Vec::new(),
        };
        for set in sets {
            out.entry(set).or_insert_with(|| r.name.clone());
        }
    }
    out
}

/// `new_set` is the set this plan creates, if any: it counts toward `count`, and deletions wait
/// for it to be marked complete, so a failed backup never costs an old set.
pub(crate) fn plan(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    new_set: Option<&str>,
    keep: &HashSet<String>,
) -> Vec<String> {
    let after: Vec<String> = new_set
        .map(|s| format!("mark_set_complete:{s}"))
        .into_iter()
        .collect();
    plan_in(
        ctx,
        b,
        Where {
            obs: ctx.obs,
            retain: ctx.policy.backup.retain,
            region: None,
            lock: ctx.policy.backup.lock,
        },
        new_set,
        after,
        keep,
    )
}

/// The sets of one region and the retention that applies there.
pub(crate) struct Where<'o, 'w> {
    pub obs: &'o Observed<'w>,
    pub retain: Retain,
    /// None: the cluster's own region.
    pub region: Option<&'o str>,
    /// The policy's lock on the sets there (R20).
    pub lock: Option<asdr_specs::Lock>,
}

/// Retention over `at`'s sets. `after`: the steps deletions wait for (the new set marked
/// complete there), `keep`: sets that stay whatever their age (a copy of them is under way).
/// Returns the sets it deletes.
pub(crate) fn plan_in(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    at: Where<'_, '_>,
    new_set: Option<&str>,
    after: Vec<String>,
    keep: &HashSet<String>,
) -> Vec<String> {
    let retain = at.retain;
    let obs = at.obs;
    let newest_complete = obs.newest_complete_set().map(|s| s.id.clone());
    let age_of = |s: &BackupSet<'_>| (ctx.now - s.time).whole_seconds().max(0) as u64;
    let too_old = |s: &BackupSet<'_>| retain.max_age.is_some_and(|m| age_of(s) > m.seconds());

    let pinned = pinned_sets(ctx, obs, at.region);
    let mut kept_complete =
        usize::from(new_set.is_some_and(|n| obs.set(n).is_none_or(|s| !s.is_complete())));
    let mut oldest_kept = None;
    let mut expired: Vec<(&BackupSet<'_>, String)> = Vec::new();
    let place_name = at.region.unwrap_or(ctx.policy.cluster.region.as_str());
    let locks_unobserved = ctx.world.locks_unobserved.get(place_name);
    // R20: a set past retain that is locked stays, and the plan says until when.
    let locked = |b: &mut Builder, set: &BackupSet<'_>, past: bool| -> bool {
        let Some(why) = crate::locks::why_kept(set, at.lock.as_ref(), ctx.now) else {
            return false;
        };
        if past {
            b.warn(
                "R20",
                format!(
                    "set {}{} is past retain but {why}: kept, and deleted by the first apply after",
                    set.id,
                    at.region
                        .map(|r| format!(" in {}", asdr_specs::place_text(r)))
                        .unwrap_or_default()
                ),
            );
        }
        true
    };
    // Newest first.
    for set in obs.sets.iter().rev().filter(|s| s.is_complete()) {
        if let Some(restore) = pinned.get(&set.id) {
            // Kept, and not counted: the newest `count` sets are kept besides.
            if retain.count.is_some_and(|c| kept_complete >= c as usize) || too_old(set) {
                b.warn(
                    "R13",
                    format!(
                        "set {} is past retain but kept: restore `{restore}` restores from it",
                        set.id
                    ),
                );
            }
            continue;
        }
        if Some(&set.id) == newest_complete.as_ref() || keep.contains(&set.id) {
            kept_complete += 1;
            oldest_kept = Some(set.time);
            continue;
        }
        let over_count = retain.count.is_some_and(|c| kept_complete >= c as usize);
        if (over_count || too_old(set)) && locked(b, set, true) {
            kept_complete += 1;
            oldest_kept = Some(set.time);
            continue;
        }
        if over_count {
            expired.push((
                set,
                format!(
                    "set {} is beyond the newest {} complete sets (retain.count)",
                    set.id,
                    retain.count.unwrap_or(0)
                ),
            ));
        } else if too_old(set) {
            expired.push((
                set,
                format!(
                    "set {} is {} old, older than retain.max_age {}",
                    set.id,
                    human_age(age_of(set)),
                    retain.max_age.expect("too_old")
                ),
            ));
        } else {
            kept_complete += 1;
            oldest_kept = Some(set.time);
        }
    }
    // Unfinished sets older than every kept complete set are leftovers of failed runs; the newer
    // ones may still be in progress and stay. A set that was marked complete and is not
    // complete now (its SMD archive no longer seen: `smd.to` moved, a lifecycle rule; a member
    // lost) is no leftover: it goes only as a complete set would, past `count` or `max_age`.
    for set in obs.sets.iter().rev().filter(|s| {
        !s.is_complete()
            && Some(s.id.as_str()) != new_set
            && !keep.contains(&s.id)
            && !pinned.contains_key(&s.id)
    }) {
        let older_than_kept = oldest_kept.is_some_and(|t| set.time < t);
        // Marked with a manifest the store does not hold: not proven this cluster's (a
        // same-named cluster writing to another store marks its sets alike). Never deleted.
        if set.unproven {
            b.warn(
                "R13",
                format!(
                    "set {} names a manifest that is not in {}: it is not proven this cluster's and is never deleted; put the store's files back, or delete its snapshots by hand if it is not this cluster's",
                    set.id,
                    at.region.map_or("the SMD store", |_| "this region's SMD store")
                ),
            );
            continue;
        }
        if was_marked(set) {
            let over_count = retain.count.is_some_and(|c| kept_complete >= c as usize);
            if older_than_kept && (over_count || too_old(set)) && !locked(b, set, true) {
                expired.push((
                    set,
                    format!(
                        "set {} was marked complete but is not restorable now (no SMD archive in the store, or a member lost), and is past retain",
                        set.id
                    ),
                ));
            }
            continue;
        }
        if older_than_kept && (too_old(set) || retain.max_age.is_none()) && !locked(b, set, true) {
            expired.push((
                set,
                format!(
                    "set {} never completed and is older than every set kept",
                    set.id
                ),
            ));
        }
    }
    expired.sort_by(|a, b| a.0.time.cmp(&b.0.time).then_with(|| a.0.id.cmp(&b.0.id)));
    // Locks not observed here: a locked snapshot cannot be told from another, so nothing goes.
    if let Some(why) = locks_unobserved
        && !expired.is_empty()
    {
        b.warn(
            "R20",
            format!(
                "snapshot locks in {place_name} could not be observed ({why}): retention deletes nothing there until they can ({} set{} past retain kept); allow ec2:DescribeLockedSnapshots",
                expired.len(),
                if expired.len() == 1 { "" } else { "s" }
            ),
        );
        expired.clear();
    }
    // The policy's lock on every set it keeps and covers, where locks are observed.
    if let Some(lock) = at.lock.as_ref()
        && locks_unobserved.is_none()
    {
        for set in obs.sets.iter().filter(|s| {
            Some(s.id.as_str()) != new_set && !expired.iter().any(|(e, _)| e.id == s.id)
        }) {
            crate::locks::adopt(ctx, b, set, lock, at.region);
        }
    }

    let place = at.region.map_or_else(String::new, |r| {
        format!(" in {} (backup.copies retain)", asdr_specs::place_text(r))
    });
    // At home, a never-completed set's snapshots go only when they are of a volume known as the
    // cluster's (copies elsewhere carry no volume of their own to tell by).
    let known = at.region.is_none().then(|| known_volumes(ctx, obs));
    for (set, reason) in &expired {
        let reason = format!("{reason}{place}");
        let never_completed = !set.is_complete() && !was_marked(set) && set.manifest.is_none();
        let unproven: Vec<&str> = set
            .snapshots
            .iter()
            .filter(|s| {
                never_completed
                    && known.as_ref().is_some_and(|k| !k.contains(&s.volume_id))
                    && !ctx.world.took(s)
            })
            .map(|s| s.id.as_str())
            .collect();
        if !unproven.is_empty() {
            b.warn(
                "R13",
                format!(
                    "{} carr{} set {}'s tags but {} of no volume asdr has seen as this cluster's (its nodes' volumes, its manifests' members, its complete sets' volumes) and no journal here records taking: not proven this cluster's, left alone. If it is this cluster's (taken by a run whose journal is elsewhere), delete it by hand: aws ec2 delete-snapshot --snapshot-id <id>",
                    unproven.join(", "),
                    if unproven.len() == 1 { "ies" } else { "y" },
                    set.id,
                    if unproven.len() == 1 { "is a snapshot" } else { "are snapshots" },
                ),
            );
        }
        // A set with a manifest: only its members go. Other snapshots carrying its tags (another
        // same-named cluster's set of the same second) are not this set's.
        let strangers = set
            .snapshots
            .iter()
            .filter(|s| set.listed.as_ref().is_some_and(|l| !l.contains(&s.id)))
            .count();
        if strangers > 0 {
            b.warn(
                "R13",
                format!(
                    "{strangers} snapshot(s) carry set {}'s tags but are not members of its manifest: they are not this cluster's and are left alone",
                    set.id
                ),
            );
        }
        for snap in set
            .snapshots
            .iter()
            .filter(|s| set.listed.as_ref().is_none_or(|l| l.contains(&s.id)))
            .filter(|s| !unproven.contains(&s.id.as_str()))
        {
            let get = |k: &str| snap.tags.get(k).cloned().unwrap_or_default();
            b.change(
                format!("snapshot.{}", snap.id),
                Action::Delete,
                reason.clone(),
                Some(json!({
                    "set": set.id,
                    "node": get(tags::NODE),
                    "device": get(tags::DEVICE),
                    "start_time": snap.start_time.format(&Rfc3339).unwrap_or_default(),
                    "state": snap.state,
                })),
                None,
            );
            b.step(
                format!("delete_snapshot:{}", snap.id),
                snap.tags.get(tags::NODE).map(String::as_str),
                after.clone(),
                Params::DeleteSnapshot(DeleteSnapshot {
                    snapshot_id: snap.id.clone(),
                    set: set.id.clone(),
                    cluster_id: Some(ctx.cluster_id.to_string()),
                }),
            );
        }
    }
    if !expired.is_empty()
        && let Some(said) = crate::recycle_bin::on_delete(ctx.policy, ctx.world, place_name)
    {
        b.warn("recycle-bin", said);
    }
    if !expired.is_empty() {
        b.warn("R13", "only snapshots tagged asdr:cluster for this cluster are deleted; SMD archives stay in the store: expire them by a lifecycle rule on <cluster>/bs-, never on <cluster>/manifests/");
    }
    expired.iter().map(|(s, _)| s.id.clone()).collect()
}

//! Copies of backup sets in other regions (`backup.copies`): every snapshot of a set copied once
//! it is complete, the SMD archive copied beside it, the set marked complete in that region once
//! whole; missing copies of the sets a region keeps are caught up without a new set; retention
//! runs per region and never takes a region's last complete copy.

use std::collections::{BTreeSet, HashSet};

use asdr_specs::{Copy, Policy};
use serde_json::json;
use time::OffsetDateTime;

use crate::builder::Builder;
use crate::observe::{BackupSet, Observed};
use crate::params::{self, Params, Ref};
use crate::plan::Action;
use crate::retention::{self, Where};
use crate::world::{SnapshotState, World};
use crate::{Ctx, tags};

/// Whether `uri` lies in the store `prefix` names.
pub fn under(uri: &str, prefix: &str) -> bool {
    let p = prefix.trim_end_matches('/');
    uri.strip_prefix(p)
        .is_some_and(|rest| rest.starts_with('/'))
}

/// The world as seen from the cluster's own region: a copy's snapshots (same asdr:set, node
/// and device tags) and its SMD archives are never taken for the cluster's own, and neither is a
/// copy made into this region from another (a same-named cluster elsewhere, backed up with
/// copies here: it carries the source tags): the cluster's own backups here are snapshots of its
/// volumes, never copies.
pub fn home_view<'w>(policy: &Policy, world: &'w World) -> std::borrow::Cow<'w, World> {
    let copies_here = || world.snapshots.iter().any(|s| tags::is_copy(&s.tags));
    // Only the home store's archives and manifests: a store the policy no longer names (a copy
    // region removed from it) is read from nowhere (the verifier confines every URI).
    let home_store = |a: &str| under(a, &policy.backup.smd_to);
    let elsewhere = || {
        world.smd_archives.iter().any(|a| !home_store(&a.uri))
            || world.set_manifests.iter().any(|m| !home_store(&m.uri))
    };
    if policy.backup.copies.is_empty()
        && !world.has_other_regions()
        && !copies_here()
        && !elsewhere()
    {
        return std::borrow::Cow::Borrowed(world);
    }
    let home = &policy.cluster.region;
    let mut view = world.in_region(home, home, home_store);
    view.snapshots.retain(|s| !tags::is_copy(&s.tags));
    std::borrow::Cow::Owned(view)
}

/// The world in a copy's region: the copies there and the SMD archives in its store. A snapshot
/// there is this cluster's copy only when its source tags say so (R13): copied from the
/// cluster's region, from a snapshot that — where it still exists — is this cluster's, of the
/// same set. A same-named cluster whose home is that region tags its snapshots `asdr:cluster`
/// and `asdr:set` too, but never as copies of ours: asdr neither counts, restores from nor
/// deletes them.
pub fn region_view(policy: &Policy, world: &World, copy: &Copy) -> World {
    let mut view = world.in_region(&copy.region, &policy.cluster.region, |a| {
        under(a, &copy.smd_to)
    });
    // The cluster's own snapshots by id, once: every copy there is checked against its source.
    let home = policy.cluster.region.as_str();
    let sources: std::collections::HashMap<&str, &crate::world::Snapshot> = world
        .snapshots
        .iter()
        .filter(|h| h.region.as_deref().unwrap_or(home) == home)
        .map(|h| (h.id.as_str(), h))
        .collect();
    let source_of = |s: &crate::world::Snapshot| {
        s.tags
            .get(tags::SOURCE_SNAPSHOT)
            .and_then(|from| sources.get(from.as_str()).copied())
    };
    view.snapshots
        .retain(|s| is_our_copy(policy, s, source_of(s)));
    // A copy's data is its source's: it keeps the source's moment (its start), not the moment it
    // was copied, so `before:` means the same in every region. Without the source (expired at
    // home), the copy's own later start is kept: later is the safe side for `before:`.
    for s in &mut view.snapshots {
        if let Some(src) = source_of(s) {
            s.start_time = src.start_time;
        }
    }
    view
}

/// Whether `s`, in a copy region, is a copy of one of this cluster's snapshots; `source` is the
/// snapshot its `asdr:source-snapshot` names in the cluster's region, when that still exists.
fn is_our_copy(
    policy: &Policy,
    s: &crate::world::Snapshot,
    source: Option<&crate::world::Snapshot>,
) -> bool {
    let (Some(_), Some(region)) = (
        s.tags.get(tags::SOURCE_SNAPSHOT),
        s.tags.get(tags::SOURCE_REGION),
    ) else {
        return false;
    };
    if region != &policy.cluster.region || s.tags.get(tags::CLUSTER) != Some(&policy.cluster.name) {
        return false;
    }
    // The source may be gone (home retention is shorter than the copy's): then the tags are all
    // there is. Where it exists, it must be this cluster's snapshot of the same set, node and
    // device.
    source.is_none_or(|h| {
        h.tags.get(tags::CLUSTER) == Some(&policy.cluster.name)
            && [tags::SET, tags::NODE, tags::DEVICE]
                .iter()
                .all(|k| h.tags.get(*k) == s.tags.get(*k))
    })
}

/// The copy a region holds of `set`'s (node, device), unless it failed (a failed copy is copied
/// again; the failed one goes with its set).
fn copy_of<'w>(
    rset: Option<&BackupSet<'w>>,
    node: &str,
    device: &str,
) -> Option<&'w crate::world::Snapshot> {
    rset.and_then(|s| s.snapshot_for(node, device))
        .filter(|c| c.state != SnapshotState::Error)
}

/// The SMD archive's place in a copy's store.
pub fn smd_uri_in(copy: &Copy, cluster: &str, set: &str, node: &str) -> String {
    format!(
        "{}/{cluster}/{set}/{node}.smd.tar",
        copy.smd_to.trim_end_matches('/')
    )
}

/// The copy regions observed: each copy's view of the world.
pub(crate) fn views(ctx: &Ctx<'_, '_>) -> Vec<World> {
    ctx.policy
        .backup
        .copies
        .iter()
        .map(|c| region_view(ctx.policy, ctx.world, c))
        .collect()
}

/// Sets of the cluster's region a copy is still being made of somewhere: retention keeps them
/// until it is done (deleting the source of a copy under way would fail the copy).
pub(crate) fn sources_in_flight(ctx: &Ctx<'_, '_>, regions: &[Observed<'_>]) -> HashSet<String> {
    // A region that could not be observed may hold copies under way of any set: every set it
    // would keep stays until it is seen again.
    let blind = ctx
        .policy
        .backup
        .copies
        .iter()
        .any(|c| ctx.world.unobserved_regions.contains_key(&c.region));
    let mut keep: HashSet<String> = HashSet::new();
    if blind {
        keep.extend(
            ctx.obs
                .sets
                .iter()
                .filter(|s| s.is_complete())
                .map(|s| s.id.clone()),
        );
    }
    keep.extend(
        regions
            .iter()
            .flat_map(|o| o.sets.iter())
            .filter(|s| {
                s.snapshots
                    .iter()
                    .any(|c| c.state == SnapshotState::Pending)
            })
            .map(|s| s.id.clone()),
    );
    keep
}

/// Copies for every copy region: the sets the region should keep and lacks, then retention there.
pub(crate) fn plan(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    regions: &[Observed<'_>],
    new_set: Option<&str>,
    expired_home: &[String],
) {
    for (copy, robs) in ctx.policy.backup.copies.iter().zip(regions) {
        if let Some(why) = ctx.world.unobserved_regions.get(&copy.region) {
            b.warn(
                "R16",
                format!(
                    "{} could not be observed ({why}): no copy and no retention there in this plan; the next apply catches up",
                    copy.label()
                ),
            );
            continue;
        }
        // A copy store without Object Lock does not stop the cluster's own backup: said, and the
        // copies' files go without retention. Locks not readable there: nothing is copied there
        // (a copy could not be locked, so never marked, and would only pile up unmarked).
        if let Err(crate::PlanError::Refused(d)) = crate::locks::check_store(
            ctx,
            b,
            copy.lock.as_ref(),
            &copy.smd_to,
            &format!("backup.copies ({})", copy.label()),
        ) {
            b.warn(
                "R20",
                format!(
                    "{} (copies to {} only; the backup itself goes on)",
                    d.message,
                    copy.label()
                ),
            );
        }
        if let Err(crate::PlanError::Refused(d)) =
            crate::locks::check_observed(ctx, copy.lock.as_ref(), &copy.region)
        {
            b.warn(
                "R20",
                format!(
                    "{}: nothing is copied to {} until they can be (the backup itself goes on)",
                    d.message,
                    copy.label()
                ),
            );
            continue;
        }
        plan_region(ctx, b, copy, robs, new_set, expired_home);
    }
}

fn plan_region(
    ctx: &Ctx<'_, '_>,
    b: &mut Builder,
    copy: &Copy,
    robs: &Observed<'_>,
    new_set: Option<&str>,
    expired_home: &[String],
) {
    let region = copy.region.as_str();
    // How the place reads in messages (a backup account's is named as such).
    let said = asdr_specs::place_text(region);
    let wanted = wanted(ctx, copy, new_set, expired_home);
    let mut marks = Vec::new();
    let mut caught_up = HashSet::new();
    // Copies in flight, in lanes: copy k + n waits for copy k to complete (max_in_flight).
    let mut lanes: Vec<Option<String>> = vec![None; copy.max_in_flight.max(1) as usize];
    let mut next_lane = 0usize;

    let mut planned_copies = 0usize;
    b.region = Some(region.to_string());
    // Copies of an earlier run still under way — of any set, wanted or not (a retain lowered
    // since does not stop them): new copies start once they are done (which of them finishes
    // first is not known in advance, so all of them), then lanes keep the bound. Their sets are
    // never deleted while they are under way.
    let mut under_way = Vec::new();
    let mut copying: HashSet<String> = HashSet::new();
    for rset in &robs.sets {
        let set = &rset.id;
        for c in rset.snapshots.iter() {
            if c.state == SnapshotState::Pending {
                let (Some(n), Some(d)) = (c.tags.get(tags::NODE), c.tags.get(tags::DEVICE)) else {
                    continue;
                };
                copying.insert(set.clone());
                under_way.push(b.step(
                    format!("wait_snapshot:{region}:{n}:{d}:{set}"),
                    Some(n),
                    vec![],
                    Params::WaitSnapshot(params::WaitSnapshot {
                        cluster_id: Some(ctx.cluster_id.to_string()),
                        snapshot_id: Some(c.id.clone()),
                        set: Some(set.clone()),
                        node: Some(n.clone()),
                        device: Some(d.clone()),
                        volume_id: None,
                        progress: Some(c.progress),
                        within_minutes: copy.complete_within_minutes,
                    }),
                ));
            }
        }
    }
    for (set, why) in &wanted {
        let rset = robs.set(set);
        if rset.is_some_and(BackupSet::is_complete) {
            continue;
        }
        // Copies whose manifest there no longer holds are not marked again from their tags:
        // said, and left to retention; the next set is copied whole.
        if let Some(why) = rset.and_then(|s| s.manifest_problem.as_deref()) {
            b.warn(
                "R2",
                format!("set {set} in {said} was recorded with a manifest, but {why}: it is not counted there and not marked again"),
            );
            continue;
        }
        let hset = ctx.obs.set(set);
        let is_new = new_set == Some(set.as_str());
        let mut before_mark = Vec::new();
        // A copy that failed (state error) is copied again, and removed: the set is marked in
        // the region only once nothing of it there is failed.
        for failed in rset
            .iter()
            .flat_map(|s| s.snapshots.iter())
            .filter(|c| c.state == SnapshotState::Error)
        {
            b.change(
                format!("snapshot.{}", failed.id),
                Action::Delete,
                format!(
                    "a failed copy (state error{}) of set {set} in {said}: copied again",
                    failed
                        .state_message
                        .as_deref()
                        .map(|m| format!(": {m}"))
                        .unwrap_or_default()
                ),
                Some(json!({"set": set, "node": failed.tags.get(tags::NODE), "device": failed.tags.get(tags::DEVICE)})),
                None,
            );
            before_mark.push(b.step(
                format!("delete_snapshot:{}", failed.id),
                failed.tags.get(tags::NODE).map(String::as_str),
                vec![],
                Params::DeleteSnapshot(params::DeleteSnapshot {
                    snapshot_id: failed.id.clone(),
                    set: set.clone(),
                    cluster_id: Some(ctx.cluster_id.to_string()),
                }),
            ));
        }
        // What to copy: a complete set's own members (a node removed or added since changes
        // nothing about what it holds); the set this plan makes, the cluster's nodes now.
        let members: Vec<(String, String)> = match hset.filter(|s| s.is_complete()) {
            Some(s) => s.member_pairs(),
            None => ctx
                .obs
                .nodes
                .iter()
                .flat_map(|v| v.volumes.iter().map(|d| (v.name.clone(), d.ebs.clone())))
                .collect(),
        };
        let mut listed = Vec::new();
        for (node, ebs) in &members {
            {
                let (node, ebs) = (node.as_str(), ebs.as_str());
                let wait_id = format!("wait_snapshot:{region}:{node}:{ebs}:{set}");
                // What the manifest in the region lists for this member: the home snapshot's
                // volume (a set this plan makes: the node's volume now), and the copy.
                let home_snapshot = hset.and_then(|s| s.snapshot_for(node, ebs));
                let home_volume = ctx
                    .obs
                    .nodes
                    .iter()
                    .find(|v| v.name == node)
                    .and_then(|v| v.volumes.iter().find(|d| d.ebs == ebs))
                    .and_then(|d| d.volume);
                let mut member = params::ManifestMember {
                    node: node.to_string(),
                    device: ebs.to_string(),
                    volume_id: home_snapshot
                        .map(|s| s.volume_id.clone())
                        .or_else(|| home_volume.map(|v| v.id.clone()))
                        .unwrap_or_default(),
                    snapshot: Ref::Learned {
                        from_step: wait_id.clone(),
                    },
                    source_snapshot_id: None,
                    size_gib: home_snapshot
                        .map(|s| s.volume_size_gib)
                        .or_else(|| home_volume.map(|v| v.size_gib))
                        .unwrap_or_default(),
                    encrypted: copy.kms_key_id.is_some()
                        || home_snapshot.is_some_and(|s| s.encrypted)
                        || home_volume.is_some_and(|v| v.encrypted),
                    kms_key_id: copy.kms_key_id.clone(),
                    started: None,
                };
                match copy_of(rset, node, ebs) {
                    Some(c) if c.state == SnapshotState::Completed => {
                        member.snapshot = Ref::Known(c.id.clone());
                        member.source_snapshot_id =
                            c.tags.get(tags::SOURCE_SNAPSHOT).cloned().map(Ref::Known);
                        member.started = Some(crate::manifest::utc(c.start_time));
                        listed.push(member);
                        continue;
                    }
                    Some(c) => {
                        // An earlier run's copy under way: its wait was planned above.
                        member.source_snapshot_id =
                            c.tags.get(tags::SOURCE_SNAPSHOT).cloned().map(Ref::Known);
                        listed.push(member);
                        before_mark.push(wait_id);
                        continue;
                    }
                    None => {}
                }
                // The source: the snapshot this plan waits for, else the completed one.
                let home_wait = format!("wait_snapshot:{node}:{ebs}:{set}");
                let (source, mut deps) = if b.steps.iter().any(|s| s.id == home_wait) {
                    (
                        Ref::Learned {
                            from_step: home_wait.clone(),
                        },
                        vec![home_wait],
                    )
                } else {
                    match hset
                        .and_then(|s| s.snapshot_for(node, ebs))
                        .filter(|s| s.state == SnapshotState::Completed)
                    {
                        Some(s) => (Ref::Known(s.id.clone()), vec![]),
                        // Nothing complete to copy from yet (a set this plan cannot finish).
                        None => continue,
                    }
                };
                let lane = next_lane % lanes.len();
                next_lane += 1;
                deps.extend(lanes[lane].clone());
                deps.extend(under_way.iter().cloned());
                let id = format!("copy_snapshot:{region}:{node}:{ebs}:{set}");
                b.change(
                    format!("copy.{region}.{node}.{ebs}.{set}"),
                    Action::Create,
                    why.clone(),
                    None,
                    Some(match &copy.account {
                        // Sharing the source is part of the change a reviewer approves.
                        Some(a) => json!({
                            "region": copy.aws_region,
                            "account": a.id,
                            "role_arn": a.role_arn,
                            "source": source.known().unwrap_or("(the snapshot this plan takes)"),
                            "source_shared_with": a.id,
                            "kms_key_id": copy.kms_key_id,
                        }),
                        None => json!({
                            "region": region,
                            "source": source.known().unwrap_or("(the snapshot this plan takes)"),
                            "kms_key_id": copy.kms_key_id,
                        }),
                    }),
                );
                b.step(
                    id.clone(),
                    Some(node),
                    deps,
                    Params::CopySnapshot(params::CopySnapshot {
                        source: source.clone(),
                        source_region: ctx.policy.cluster.region.clone(),
                        set: set.clone(),
                        node: node.to_string(),
                        device: ebs.to_string(),
                        description: description(ctx, node, ebs, set),
                        encrypted: copy.kms_key_id.is_some(),
                        kms_key_id: copy.kms_key_id.clone(),
                        tags: ctx.tags(&[
                            (tags::SET, set),
                            (tags::NODE, node),
                            (tags::DEVICE, ebs),
                            (tags::STEP, &id),
                            (tags::SOURCE_REGION, &ctx.policy.cluster.region),
                        ]),
                        share_with: copy.account.as_ref().map(|a| a.id.clone()),
                        cluster_id: copy.account.as_ref().map(|_| ctx.cluster_id.to_string()),
                        grant_to: copy.account.as_ref().map(|a| a.role_arn.clone()),
                        completion_duration_minutes: copy.complete_within_minutes,
                    }),
                );
                planned_copies += 1;
                member.source_snapshot_id = Some(source.clone());
                listed.push(member);
                let wait = b.step(
                    wait_id,
                    Some(node),
                    vec![id],
                    Params::WaitSnapshot(params::WaitSnapshot {
                        cluster_id: Some(ctx.cluster_id.to_string()),
                        snapshot_id: None,
                        set: Some(set.clone()),
                        node: Some(node.to_string()),
                        device: Some(ebs.to_string()),
                        volume_id: None,
                        progress: None,
                        within_minutes: copy.complete_within_minutes,
                    }),
                );
                lanes[lane] = Some(wait.clone());
                before_mark.push(wait);
            }
        }
        let mut smd: Vec<params::NodeUri> = rset
            .and_then(|s| s.smd_archive)
            .map(|a| params::NodeUri {
                node: a.node.clone(),
                uri: a.uri.clone(),
            })
            .into_iter()
            .collect();
        if rset.and_then(|s| s.smd_archive).is_none() {
            let home_copy_smd = format!("copy_smd:{set}");
            let source = match b.steps.iter().find(|s| s.id == home_copy_smd) {
                Some(s) => match &s.params {
                    Params::CopySmd(p) => Some((
                        p.to.clone(),
                        s.node.clone().unwrap_or_default(),
                        None,
                        Some(home_copy_smd.clone()),
                    )),
                    _ => None,
                },
                None => hset.and_then(|s| s.smd_archive).map(|a| {
                    let sha = hset
                        .and_then(|s| s.smd_sha256(&a.node))
                        .map(str::to_string)
                        .or_else(|| a.sha256.clone());
                    (a.uri.clone(), a.node.clone(), sha, None)
                }),
            };
            if let Some((from, node, sha256, dep)) = source {
                let to = smd_uri_in(copy, &ctx.policy.cluster.name, set, &node);
                smd.push(params::NodeUri {
                    node: node.clone(),
                    uri: to.clone(),
                });
                b.change(
                    format!("smd_archive.{region}.{set}"),
                    Action::Create,
                    format!("the SMD archive of set {set} beside its copies in {said}"),
                    None,
                    Some(json!({"from": from, "to": to})),
                );
                before_mark.push(b.step(
                    format!("copy_smd_archive:{region}:{set}"),
                    None,
                    dep.into_iter().collect(),
                    Params::CopySmdArchive(params::CopySmdArchive {
                        set: set.clone(),
                        from,
                        retention: crate::locks::retention(ctx, copy.lock.as_ref(), &to, set),
                        to,
                        sha256,
                    }),
                ));
            }
        }
        // A set is complete in a region only once it is complete at home too.
        if is_new {
            before_mark.push(format!("mark_set_complete:{set}"));
        }
        caught_up.insert(set.clone());
        listed.sort_by(|a, b| (&a.node, &a.device).cmp(&(&b.node, &b.device)));
        // R20: the copies locked in their region once complete, before the region's mark.
        let set_time = crate::observe::set_time(set).unwrap_or(ctx.now);
        if let Some(lock) = &copy.lock
            && lock.until(set_time) >= ctx.now + crate::locks::MIN_LOCK
        {
            crate::locks::describe(
                b,
                set,
                Some(region),
                &crate::locks::fresh(lock, set_time),
                &format!(
                    "backup.copies lock: every copy of set {set} in {said} locked ({}) for {} once complete, before the set is marked there",
                    lock.mode, lock.duration
                ),
            );
            let snapshots = listed.iter().map(|m| m.snapshot.clone()).collect();
            let step = b.step(
                crate::locks::step_id("lock_snapshots", Some(region), set),
                None,
                before_mark.clone(),
                crate::locks::params(ctx, set, set_time, lock, snapshots),
            );
            before_mark.push(step);
        }
        let write = b.step(
            format!("write_manifest:{region}:{set}"),
            None,
            before_mark,
            crate::backup::write_manifest(
                ctx,
                crate::manifest::uri(&copy.smd_to, &ctx.policy.cluster.name, set),
                set,
                Some(region),
                listed,
                smd,
            ),
        );
        marks.push(
            b.step(
                format!("mark_set_complete:{region}:{set}"),
                None,
                vec![write.clone()],
                Params::MarkSetComplete(params::MarkSetComplete {
                    cluster_id: Some(ctx.cluster_id.to_string()),
                    manifest: Some(Ref::Learned { from_step: write }),
                    set: set.clone(),
                    // Whole as the set is at home: an older set holds the nodes it had then.
                    snapshots: hset
                        .filter(|s| s.is_complete())
                        .map_or(ctx.obs.nodes.len() * ctx.policy.ebs_devices().len(), |s| {
                            s.members()
                        }),
                    tag: [(tags::COMPLETE.to_string(), "true".to_string())].into(),
                }),
            ),
        );
    }
    if planned_copies > 0 {
        b.warn(
            "limit",
            format!(
                "copies to {said}: at most {} snapshot copies in flight at once (backup.copies[].max_in_flight; AWS limits concurrent copies per destination region)",
                copy.max_in_flight
            ),
        );
        if let Some(note) = crate::rto::time_based_copies(copy, &said, ctx.obs) {
            b.warn("cost", note);
        }
    }
    let new_in_region = new_set.filter(|id| caught_up.contains(*id));
    let mut keep = caught_up;
    keep.extend(copying);
    retention::plan_in(
        ctx,
        b,
        Where {
            obs: robs,
            retain: copy.retain,
            region: Some(region),
            lock: copy.lock,
        },
        new_in_region,
        marks,
        &keep,
    );
    b.region = None;
}

/// The sets a region should hold, newest first, with why: the copy's retention over the sets
/// the cluster's region keeps (and the one this plan takes).
fn wanted(
    ctx: &Ctx<'_, '_>,
    copy: &Copy,
    new_set: Option<&str>,
    expired_home: &[String],
) -> Vec<(String, String)> {
    let mut candidates: Vec<(String, OffsetDateTime, bool)> = Vec::new();
    if let Some(n) = new_set {
        let time = crate::observe::set_time(n).unwrap_or(ctx.now);
        candidates.push((n.to_string(), time, true));
    }
    let mut seen: BTreeSet<String> = candidates.iter().map(|c| c.0.clone()).collect();
    for s in ctx.obs.sets.iter().rev() {
        if s.is_complete() && !expired_home.contains(&s.id) && seen.insert(s.id.clone()) {
            candidates.push((s.id.clone(), s.time, false));
        }
    }
    let retain = copy.retain;
    candidates
        .into_iter()
        .enumerate()
        .filter(|(i, (_, time, _))| {
            let in_count = retain.count.is_none_or(|c| *i < c as usize);
            let age = (ctx.now - *time).whole_seconds().max(0) as u64;
            let in_age = retain.max_age.is_none_or(|m| age <= m.seconds());
            in_count && in_age
        })
        .map(|(_, (id, _, new))| {
            let why = if new {
                format!("backup.copies: set {id} copied to {}", copy.label())
            } else {
                format!(
                    "backup.copies: set {id} has no complete copy in {} yet (catching up)",
                    copy.label()
                )
            };
            (id, why)
        })
        .collect()
}

/// The source's description, and where the copy came from.
fn description(ctx: &Ctx<'_, '_>, node: &str, device: &str, set: &str) -> String {
    format!(
        "{} (copy from {})",
        crate::backup::snapshot_description(ctx, node, device, set),
        ctx.policy.cluster.region
    )
}

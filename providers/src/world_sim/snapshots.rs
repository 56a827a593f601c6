//! Snapshots: CreateSnapshot(s) tagged at creation, pending for a few polls, a set marked complete
//! only whole, deleted only when asdr's (R13).

use super::*;

pub(super) fn observe(world: &World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    match &input.step.params {
        Params::SnapshotInstance(_) | Params::Snapshot(_) => {
            let ids: Vec<String> = world
                .snapshots
                .iter()
                .filter(|s| made_by(&s.tags, input))
                .map(|s| s.id.clone())
                .collect();
            (!ids.is_empty()).then(|| Learned::snapshots(ids))
        }
        Params::CopySnapshot(p) => {
            copy_of(world, input, p).map(|s| Learned::snapshot(s.id.clone()))
        }
        Params::WaitSnapshot(p) => snapshot_of(world, cx, input, p)
            .filter(|s| s.state == SnapshotState::Completed)
            .map(started),
        Params::MarkSetComplete(p) => {
            let of_set: Vec<&Snapshot> = world
                .snapshots
                .iter()
                .filter(|s| {
                    here(&s.region, input)
                        && s.tags.get(tags::SET) == Some(&p.set)
                        && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
                        && tags::of_id(&s.tags, p.cluster_id.as_deref())
                        && if input.step.region.is_none() {
                            !tags::is_copy(&s.tags)
                        } else {
                            s.tags.contains_key(tags::SOURCE_SNAPSHOT)
                        }
                })
                .collect();
            // Marked, with the membership the mark records (a set marked before that tag is
            // marked again, which only adds it).
            let manifest = p
                .manifest
                .as_ref()
                .and_then(|r| input.resolve(r, |l| l.sha256.as_ref()));
            (!of_set.is_empty()
                && of_set.iter().all(|s| {
                    s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")
                        && s.tags.contains_key(tags::MEMBERS)
                        && (manifest.is_none() || s.tags.get(tags::MANIFEST) == manifest.as_ref())
                }))
            .then(Resources::new)
        }
        Params::DeleteSnapshot(p) => {
            (!world.snapshots.iter().any(|s| s.id == p.snapshot_id)).then(Resources::new)
        }
        Params::LockSnapshots(p) => {
            // A world without a time of its own is at this machine's, as the planner reads it.
            let now = world.now.unwrap_or_else(time::OffsetDateTime::now_utc);
            p.snapshots
                .iter()
                .all(|r| {
                    input
                        .resolve(r, |l| l.snapshot_id.as_ref())
                        .and_then(|id| world.snapshots.iter().find(|s| s.id == id))
                        .is_some_and(|s| {
                            asdr_planner::locks::wanted(s.lock, p, now).is_ok_and(|w| w.is_none())
                        })
                })
                .then(Resources::new)
        }
        _ => None,
    }
}

pub(super) fn act(
    world: &mut World,
    cx: &Ctx<'_>,
    input: &StepInput<'_>,
) -> Result<Progress, StepError> {
    let step = input.step;
    match &step.params {
        Params::FastSnapshotRestore(p) => super::fast_restore::act(world, cx, input, p),
        Params::SnapshotInstance(_) | Params::Snapshot(_) => {
            let volumes: Vec<(String, String)> = match &step.params {
                Params::SnapshotInstance(p) => p
                    .volumes
                    .iter()
                    .map(|v| (v.device.clone(), v.volume_id.clone()))
                    .collect(),
                Params::Snapshot(p) => vec![(p.device.clone(), p.volume_id.clone())],
                _ => unreachable!("matched above"),
            };
            let now = world.now.unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                + time::Duration::seconds(cx.sim.snapshot_start_lag_s as i64);
            let mut ids = Vec::new();
            for (device, volume_id) in volumes {
                let volume = world
                    .volumes
                    .iter()
                    .find(|v| v.id == volume_id)
                    .ok_or_else(|| {
                        bad(
                            "InvalidVolume.NotFound",
                            format!("volume {volume_id} does not exist"),
                        )
                    })?;
                let id = format!("snap-{}", token(input.plan_id, &step.id, &volume_id));
                let size = volume.size_gib;
                let (encrypted, kms_key_id) = (volume.encrypted, volume.kms_key_id.clone());
                world.snapshots.push(Snapshot {
                    state_message: None,
                    lock: None,
                    fast_restore: Default::default(),
                    region: None,
                    id: id.clone(),
                    volume_id,
                    volume_size_gib: size,
                    state: SnapshotState::Pending,
                    progress: 0,
                    start_time: now,
                    encrypted,
                    kms_key_id,
                    tags: created_tags(input, &[(tags::DEVICE, &device)]),
                });
                ids.push(id);
            }
            Progress::done(Learned::snapshots(ids))
        }
        Params::CopySnapshot(p) => {
            if let Some(c) = copy_of(world, input, p) {
                return Progress::done(Learned::snapshot(c.id.clone()));
            }
            let source_id = need(input, &p.source, |l| l.snapshot_id.as_ref())?;
            let source = world
                .snapshots
                .iter()
                .find(|s| s.id == source_id && s.region.as_deref() != input.step.region.as_deref())
                .cloned()
                .ok_or_else(|| {
                    bad(
                        "InvalidSnapshot.NotFound",
                        format!("snapshot {source_id} does not exist in {}", p.source_region),
                    )
                })?;
            if source.state != SnapshotState::Completed {
                return Err(bad(
                    "IncorrectState",
                    format!("snapshot {source_id} is not completed: it cannot be copied yet"),
                ));
            }
            let id = format!("snap-{}", token(input.plan_id, &step.id, &source_id));
            // A copy starts once its source is complete: never before the source's start.
            let now = world
                .now
                .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
                .max(source.start_time);
            world.snapshots.push(Snapshot {
                state_message: None,
                lock: None,
                fast_restore: Default::default(),
                region: input.step.region.clone(),
                id: id.clone(),
                volume_id: source.volume_id.clone(),
                volume_size_gib: source.volume_size_gib,
                state: SnapshotState::Pending,
                progress: 0,
                start_time: now,
                encrypted: p.encrypted || source.encrypted,
                kms_key_id: p.kms_key_id.clone().or(source.kms_key_id.clone()),
                tags: created_tags(input, &[(tags::SOURCE_SNAPSHOT, &source_id)]),
            });
            Progress::done(Learned::snapshot(id))
        }
        Params::WaitSnapshot(p) => {
            let polls = cx.sim.snapshot_polls.max(1);
            let id = snapshot_of(world, cx, input, p)
                .map(|s| s.id.clone())
                .ok_or_else(|| {
                    bad(
                        "InvalidSnapshot.NotFound",
                        format!("no snapshot for step {}", step.id),
                    )
                })?;
            let s = world
                .snapshots
                .iter_mut()
                .find(|s| s.id == id)
                .expect("found above");
            match s.state {
                SnapshotState::Completed => Progress::done(started(s)),
                SnapshotState::Pending => {
                    s.progress = (u32::from(s.progress) + 100_u32.div_ceil(polls)).min(100) as u8;
                    if s.progress >= 100 {
                        s.state = SnapshotState::Completed;
                    }
                    Progress::pending(format!("{} {}%", s.id, s.progress), Some(s.progress))
                }
                other => Err(bad(
                    "IncorrectState",
                    format!("snapshot {} is {other:?}", s.id),
                )),
            }
        }
        Params::MarkSetComplete(p) => {
            let (set, expected) = (p.set.clone(), p.snapshots);
            // In a copy region only copies count (a same-named cluster's own snapshots there carry
            // no source tags): they are neither counted nor marked; at home never a copy (one
            // made into this region by a same-named cluster elsewhere).
            let copy_region = input.step.region.is_some();
            let mine = |s: &Snapshot| {
                here(&s.region, input)
                    && s.tags.get(tags::SET) == Some(&set)
                    && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
                    && tags::of_id(&s.tags, p.cluster_id.as_deref())
                    && if copy_region {
                        s.tags.contains_key(tags::SOURCE_SNAPSHOT)
                    } else {
                        !tags::is_copy(&s.tags)
                    }
            };
            let of_set: Vec<&Snapshot> = world.snapshots.iter().filter(|s| mine(s)).collect();
            if of_set.len() < expected || of_set.iter().any(|s| s.state != SnapshotState::Completed)
            {
                return Err(bad(
                    "IncompleteSet",
                    format!(
                        "set {set} has {} snapshots, {expected} expected, not all completed",
                        of_set.len()
                    ),
                ));
            }
            // In another region, the archive copy_smd_archive put in that region's store.
            let copied_here = input
                .learned
                .get(&format!(
                    "copy_smd_archive:{}:{set}",
                    input.step.region.as_deref().unwrap_or_default()
                ))
                .and_then(|l| l.uri.clone());
            if input.step.region.is_some() {
                let present = copied_here
                    .as_ref()
                    .is_some_and(|u| world.smd_archives.iter().any(|a| &a.uri == u));
                // Without the step's answer (a resumed apply): the set has a second archive.
                let copies = world.smd_archives.iter().filter(|a| a.set == set).count();
                if !present && copies < 2 {
                    return Err(bad(
                        "IncompleteSet",
                        format!("set {set} has no SMD archive in this region's store (R2)"),
                    ));
                }
            } else if !world.smd_archives.iter().any(|a| a.set == set) {
                // With real nodes, copy_smd wrote the archive to the store, not to this file: the
                // archive it reported (a dependency of this step) is recorded as observed.
                let copied = input.learned.get(&format!("copy_smd:{set}"));
                let Some(uri) = copied.and_then(|c| c.uri.clone()) else {
                    return Err(bad(
                        "IncompleteSet",
                        format!("set {set} has no SMD archive (R2)"),
                    ));
                };
                // The node it came from: as reported, else the archive's name (`<node>.smd.tar`).
                let node = copied.and_then(|c| c.node.clone()).unwrap_or_else(|| {
                    uri.rsplit('/')
                        .next()
                        .and_then(|f| f.strip_suffix(".smd.tar"))
                        .unwrap_or_default()
                        .to_string()
                });
                let sha256 = copied.and_then(|c| c.sha256.clone());
                world.smd_archives.push(SmdArchive {
                    set: set.clone(),
                    node,
                    uri,
                    sha256,
                });
            }
            // The set's own membership, recorded with the mark: what it held, not the policy's
            // nodes today.
            let members = world
                .snapshots
                .iter()
                .filter(|s| mine(s))
                .filter_map(|s| Some((s.tags.get(tags::NODE)?, s.tags.get(tags::DEVICE)?)))
                .collect::<std::collections::HashSet<_>>()
                .len()
                .to_string();
            let manifest = match &p.manifest {
                None => None,
                Some(r) => Some(input.resolve(r, |l| l.sha256.as_ref()).ok_or_else(|| {
                    bad(
                        "IncompleteSet",
                        format!("set {set}: its manifest was not written (R2)"),
                    )
                })?),
            };
            for s in world.snapshots.iter_mut().filter(|s| mine(s)) {
                s.tags.insert(tags::COMPLETE.into(), "true".into());
                s.tags.insert(tags::MEMBERS.into(), members.clone());
                if let Some(m) = &manifest {
                    s.tags.insert(tags::MANIFEST.into(), m.clone());
                }
            }
            Progress::finished()
        }
        Params::LockSnapshots(p) => {
            let now = world.now.unwrap_or_else(time::OffsetDateTime::now_utc);
            for r in &p.snapshots {
                let id = need(input, r, |l| l.snapshot_id.as_ref())?;
                let snap = world
                    .snapshots
                    .iter_mut()
                    .find(|s| s.id == id && here(&s.region, input))
                    .ok_or_else(|| {
                        bad(
                            "InvalidSnapshot.NotFound",
                            format!("snapshot {id} does not exist"),
                        )
                    })?;
                if snap.tags.get(tags::CLUSTER).map(String::as_str) != Some(cx.cluster)
                    || !tags::of_id(&snap.tags, p.cluster_id.as_deref())
                {
                    return Err(bad(
                        "R13",
                        format!("[R13] snapshot {id} is not this cluster's: asdr does not lock it"),
                    ));
                }
                if let Some(lock) = asdr_planner::locks::wanted(snap.lock, p, now)
                    .map_err(|m| bad("InvalidParameterValue", m))?
                {
                    snap.tags.insert(
                        tags::LOCK.into(),
                        format!(
                            "{} until {}",
                            lock.mode,
                            asdr_planner::manifest::utc(lock.expires)
                        ),
                    );
                    snap.lock = Some(lock);
                }
            }
            Progress::finished()
        }
        Params::DeleteSnapshot(p) => {
            let id = &p.snapshot_id;
            let Some(i) = world.snapshots.iter().position(|s| &s.id == id) else {
                return Progress::finished();
            };
            // EBS refuses to delete a locked snapshot, whoever asks.
            let now = world.now.unwrap_or_else(time::OffsetDateTime::now_utc);
            if let Some(l) = world.snapshots[i].lock.filter(|l| l.holds(now)) {
                return Err(bad(
                    "SnapshotLocked",
                    format!(
                        "snapshot {id} is locked ({}) until {}: it cannot be deleted",
                        l.mode,
                        asdr_planner::manifest::utc(l.expires)
                    ),
                ));
            }
            tags::may_delete_snapshot(
                id,
                &world.snapshots[i].tags,
                cx.cluster,
                p.cluster_id.as_deref(),
                input.step.region.is_some(),
            )
            .map_err(|m| bad("R13", m))?;
            world.snapshots.remove(i);
            Progress::finished()
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{} is not carried out here", other.kind()),
        )),
    }
}

/// The copy of a copy step's source already in the step's region (CopySnapshot takes no client
/// token: the source tag is how a copy is found again).
/// A completed snapshot, and when it started (a set's manifest records it).
fn started(s: &Snapshot) -> Learned {
    Learned {
        started: Some(asdr_planner::manifest::utc(s.start_time)),
        ..Learned::snapshot(s.id.clone())
    }
}

fn copy_of<'w>(
    world: &'w World,
    input: &StepInput<'_>,
    p: &params::CopySnapshot,
) -> Option<&'w Snapshot> {
    let source = input.resolve(&p.source, |l| l.snapshot_id.as_ref())?;
    world.snapshots.iter().find(|s| {
        here(&s.region, input)
            && s.state != SnapshotState::Error
            && s.tags.get(tags::SOURCE_SNAPSHOT) == Some(&source)
    })
}

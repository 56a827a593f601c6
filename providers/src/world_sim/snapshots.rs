//! Snapshots: CreateSnapshot(s) tagged at creation, pending for a few polls, a set marked complete
//! only whole, deleted only when asdr's (R13).

use super::*;

pub(super) fn observe(world: &World, cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    match step.kind {
        StepKind::SnapshotInstance | StepKind::Snapshot => {
            let ids: Vec<Value> = world
                .snapshots
                .iter()
                .filter(|s| made_by(&s.tags, input))
                .map(|s| json!(s.id))
                .collect();
            (!ids.is_empty()).then(|| {
                [("snapshot_ids".to_string(), Value::Array(ids))]
                    .into_iter()
                    .collect()
            })
        }
        StepKind::WaitSnapshot => snapshot_of(world, cx, input)
            .filter(|s| s.state == SnapshotState::Completed)
            .and_then(|s| r(&[("snapshot_id", json!(s.id))])),
        StepKind::MarkSetComplete => {
            let set = input.param_str("set", "")?;
            let of_set: Vec<&Snapshot> = world
                .snapshots
                .iter()
                .filter(|s| {
                    s.tags.get(tags::SET) == Some(&set)
                        && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
                })
                .collect();
            (!of_set.is_empty()
                && of_set
                    .iter()
                    .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")))
            .then(Resources::new)
        }
        StepKind::DeleteSnapshot => {
            let id = input.param_str("snapshot_id", "")?;
            (!world.snapshots.iter().any(|s| s.id == id)).then(Resources::new)
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
    match step.kind {
        StepKind::SnapshotInstance | StepKind::Snapshot => {
            let volumes: Vec<(String, String)> = if step.kind == StepKind::SnapshotInstance {
                step.params
                    .get("volumes")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|v| {
                                Some((
                                    v.get("device")?.as_str()?.to_string(),
                                    v.get("volume_id")?.as_str()?.to_string(),
                                ))
                            })
                            .collect()
                    })
                    .unwrap_or_default()
            } else {
                vec![(
                    need(input, "device", "")?,
                    need(input, "volume_id", "volume_id")?,
                )]
            };
            let now = world.now.unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
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
                ids.push(json!(id));
            }
            Progress::done(&[("snapshot_ids", Value::Array(ids))])
        }
        StepKind::WaitSnapshot => {
            let polls = cx.sim.snapshot_polls.max(1);
            let id = snapshot_of(world, cx, input)
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
                SnapshotState::Completed => Progress::done(&[("snapshot_id", json!(s.id))]),
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
        StepKind::MarkSetComplete => {
            let set = need(input, "set", "")?;
            let expected = step
                .params
                .get("snapshots")
                .and_then(Value::as_u64)
                .unwrap_or(0) as usize;
            let mine = |s: &Snapshot| {
                s.tags.get(tags::SET) == Some(&set)
                    && s.tags.get(tags::CLUSTER).map(String::as_str) == Some(cx.cluster)
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
            if !world.smd_archives.iter().any(|a| a.set == set) {
                // With real nodes, copy_smd wrote the archive to the store, not to this file: the
                // archive it reported (a dependency of this step) is recorded as observed.
                let copied = input.learned.get(&format!("copy_smd:{set}"));
                let field = |k: &str| {
                    copied
                        .and_then(|r| r.get(k))
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                let Some(uri) = field("uri") else {
                    return Err(bad(
                        "IncompleteSet",
                        format!("set {set} has no SMD archive (R2)"),
                    ));
                };
                let (node, sha256) = (field("node").unwrap_or_default(), field("sha256"));
                world.smd_archives.push(SmdArchive {
                    set: set.clone(),
                    node,
                    uri,
                    sha256,
                });
            }
            for s in world.snapshots.iter_mut().filter(|s| mine(s)) {
                s.tags.insert(tags::COMPLETE.into(), "true".into());
            }
            Progress::done(&[])
        }
        StepKind::DeleteSnapshot => {
            let id = need(input, "snapshot_id", "")?;
            let Some(i) = world.snapshots.iter().position(|s| s.id == id) else {
                return Progress::done(&[]);
            };
            if world.snapshots[i]
                .tags
                .get(tags::CLUSTER)
                .map(String::as_str)
                != Some(cx.cluster)
            {
                return Err(bad(
                    "R13",
                    format!(
                        "snapshot {id} is not tagged asdr:cluster={}: asdr does not delete it",
                        cx.cluster
                    ),
                ));
            }
            world.snapshots.remove(i);
            Progress::done(&[])
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{other} is not carried out here"),
        )),
    }
}

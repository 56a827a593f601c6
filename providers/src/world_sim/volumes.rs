//! Volumes: created (from snapshots only once completed, R3), waited for, attached within their
//! AZ at a free device, detached (marked superseded when they leave the node for good), deleted
//! (only a drill's own, R13).

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    match step.kind {
        StepKind::DetachVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            let inst = input.param_str("instance_id", "instance_id")?;
            let v = world.volumes.iter().find(|v| v.id == vol)?;
            (!v.attachments.iter().any(|a| a.instance_id == inst)).then(Resources::new)
        }
        StepKind::AttachVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            let inst = input.param_str("instance_id", "instance_id")?;
            let dev = input.param_str("device", "")?;
            let v = world.volumes.iter().find(|v| v.id == vol)?;
            v.attachments
                .iter()
                .any(|a| a.instance_id == inst && a.device == dev)
                .then(Resources::new)
        }
        StepKind::CreateVolume => world
            .volumes
            .iter()
            .find(|v| {
                made_by(&v.tags, input)
                    && !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting)
            })
            .and_then(|v| r(&[("volume_id", json!(v.id))])),
        StepKind::WaitVolume => {
            let vol = input.param_str("volume_id", "volume_id")?;
            world
                .volumes
                .iter()
                .find(|v| v.id == vol && v.state == VolumeState::Available)
                .and_then(|_| r(&[]))
        }
        StepKind::DeleteVolume => {
            let id = input.param_str("volume_id", "volume_id")?;
            (!world.volumes.iter().any(|v| v.id == id)).then(Resources::new)
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
    let retry = Duration::from_millis(cx.sim.retry_ms);
    match step.kind {
        StepKind::DetachVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let inst = need(input, "instance_id", "instance_id")?;
            let v = volume_mut(world, &vol)?;
            v.attachments.retain(|a| a.instance_id != inst);
            if v.attachments.is_empty() {
                v.state = VolumeState::Available;
            }
            if step.params.get("supersede").and_then(Value::as_bool) == Some(true) {
                v.tags
                    .insert(tags::SUPERSEDED.into(), input.plan_id.to_string());
            }
            if let Some(i) = world.instances.iter_mut().find(|i| i.id == inst) {
                i.block_devices.retain(|b| b.volume_id != vol);
            }
            Progress::done(&[])
        }
        StepKind::AttachVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let inst = need(input, "instance_id", "instance_id")?;
            let dev = need(input, "device", "")?;
            let instance = world
                .instances
                .iter()
                .find(|i| i.id == inst)
                .ok_or_else(|| {
                    bad(
                        "InvalidInstanceID.NotFound",
                        format!("instance {inst} does not exist"),
                    )
                })?;
            if !matches!(
                instance.state,
                InstanceState::Running | InstanceState::Stopped
            ) {
                return Err(bad(
                    "IncorrectInstanceState",
                    format!("instance {inst} is {:?}", instance.state),
                ));
            }
            if instance.block_devices.iter().any(|b| b.device_name == dev) {
                return Err(bad(
                    "InvalidParameterValue",
                    format!("Attachment point {dev} is already in use on {inst}"),
                ));
            }
            let az = instance.availability_zone.clone();
            let v = volume_mut(world, &vol)?;
            if v.availability_zone != az {
                return Err(bad(
                    "InvalidVolume.ZoneMismatch",
                    format!(
                        "volume {vol} is in {}, instance {inst} in {az}",
                        v.availability_zone
                    ),
                ));
            }
            if v.state != VolumeState::Available {
                return Err(bad("VolumeInUse", format!("volume {vol} is {:?}", v.state)));
            }
            v.state = VolumeState::InUse;
            v.attachments.push(Attachment {
                instance_id: inst.clone(),
                device: dev.clone(),
                state: AttachmentState::Attached,
                delete_on_termination: false,
            });
            let i = world
                .instances
                .iter_mut()
                .find(|i| i.id == inst)
                .expect("found above");
            i.block_devices.push(BlockDevice {
                device_name: dev,
                volume_id: vol,
                delete_on_termination: false,
            });
            Progress::done(&[])
        }
        StepKind::CreateVolume => {
            let snapshot_id = input.param_str("snapshot_id", "");
            // EBS: a volume from an encrypted snapshot is encrypted; asking for a key sets it.
            let from_snapshot = snapshot_id
                .as_ref()
                .and_then(|sid| world.snapshots.iter().find(|s| &s.id == sid))
                .map(|s| (s.encrypted, s.kms_key_id.clone()));
            let encrypted = step.params.get("encrypted").and_then(Value::as_bool) == Some(true)
                || from_snapshot.as_ref().is_some_and(|s| s.0);
            let kms_key_id = input
                .param_str("kms_key_id", "")
                .or_else(|| from_snapshot.and_then(|s| s.1))
                .filter(|_| encrypted);
            if let Some(sid) = &snapshot_id {
                match world.snapshots.iter().find(|s| &s.id == sid) {
                    None => {
                        return Err(bad(
                            "InvalidSnapshot.NotFound",
                            format!("snapshot {sid} does not exist"),
                        ));
                    }
                    // R3: volumes only from completed snapshots.
                    Some(s) if s.state != SnapshotState::Completed => {
                        return Err(bad(
                            "IncorrectState",
                            format!("snapshot {sid} is {:?}", s.state),
                        ));
                    }
                    Some(_) => {}
                }
            }
            let id = format!("vol-{}", token(input.plan_id, &step.id, ""));
            world.volumes.push(Volume {
                id: id.clone(),
                availability_zone: need(input, "availability_zone", "")?,
                size_gib: step
                    .params
                    .get("size_gib")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as u32,
                volume_type: input.param_str("type", "").unwrap_or_else(|| "gp3".into()),
                iops: step
                    .params
                    .get("iops")
                    .and_then(Value::as_u64)
                    .map(|v| v as u32),
                throughput: step
                    .params
                    .get("throughput")
                    .and_then(Value::as_u64)
                    .map(|v| v as u32),
                state: VolumeState::Creating,
                snapshot_id,
                encrypted,
                kms_key_id,
                attachments: Vec::new(),
                tags: created_tags(input, &[]),
            });
            Progress::done(&[("volume_id", json!(id))])
        }
        StepKind::WaitVolume => {
            let vol = need(input, "volume_id", "volume_id")?;
            let v = volume_mut(world, &vol)?;
            match v.state {
                VolumeState::Available => Progress::done(&[]),
                VolumeState::Creating => {
                    v.state = VolumeState::Available;
                    Progress::pending(format!("{vol} creating"), None)
                }
                other => Err(bad("IncorrectState", format!("volume {vol} is {other:?}"))),
            }
        }
        StepKind::DeleteVolume => {
            let id = need(input, "volume_id", "volume_id")?;
            let Some(i) = world.volumes.iter().position(|v| v.id == id) else {
                return Progress::done(&[]);
            };
            // Only a drill's own volumes are ever deleted (R7, R13).
            if !world.volumes[i]
                .tags
                .contains_key(asdr_planner::drill::DRILL)
                || world.volumes[i].tags.get(tags::CLUSTER).map(String::as_str) != Some(cx.cluster)
            {
                return Err(bad(
                    "R13",
                    format!(
                        "volume {id} is not a drill volume of {}: asdr does not delete it",
                        cx.cluster
                    ),
                ));
            }
            if !world.volumes[i].attachments.is_empty() {
                return Err(StepError::transient(
                    "VolumeInUse",
                    format!("volume {id} is still attached"),
                    retry,
                ));
            }
            world.volumes.remove(i);
            Progress::done(&[])
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{other} is not carried out here"),
        )),
    }
}

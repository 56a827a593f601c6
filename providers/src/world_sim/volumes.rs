//! Volumes: created (from snapshots only once completed, R3), waited for, attached within their
//! AZ at a free device, detached (marked superseded when they leave the node for good), deleted
//! (only a drill's own, R13).

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    match &input.step.params {
        Params::DetachVolume(p) => {
            let v = world.volumes.iter().find(|v| v.id == p.volume_id)?;
            (!v.attachments.iter().any(|a| a.instance_id == p.instance_id)).then(Resources::new)
        }
        Params::AttachVolume(p) => {
            let vol = volume_ref(input, &p.volume_id).ok()?;
            let inst = instance_ref(input, p.instance_id.as_ref()).ok()?;
            let v = world.volumes.iter().find(|v| v.id == vol)?;
            v.attachments
                .iter()
                .any(|a| a.instance_id == inst && a.device == p.device)
                .then(Resources::new)
        }
        Params::CreateVolume(_) => world
            .volumes
            .iter()
            .find(|v| {
                made_by(&v.tags, input)
                    && !matches!(v.state, VolumeState::Deleted | VolumeState::Deleting)
            })
            .map(|v| Learned::volume(v.id.clone())),
        Params::WaitVolume(p) => {
            let vol = volume_ref(input, &p.volume_id).ok()?;
            world
                .volumes
                .iter()
                .find(|v| v.id == vol && v.state == VolumeState::Available)
                .and_then(|_| found())
        }
        Params::DeleteVolume(p) => {
            (!world.volumes.iter().any(|v| v.id == p.volume_id)).then(Resources::new)
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
    match &step.params {
        Params::DetachVolume(p) => {
            let (vol, inst) = (&p.volume_id, &p.instance_id);
            let v = volume_mut(world, vol)?;
            v.attachments.retain(|a| &a.instance_id != inst);
            if v.attachments.is_empty() {
                v.state = VolumeState::Available;
            }
            if p.supersede {
                v.tags
                    .insert(tags::SUPERSEDED.into(), input.plan_id.to_string());
            }
            if let Some(i) = world.instances.iter_mut().find(|i| &i.id == inst) {
                i.block_devices.retain(|b| &b.volume_id != vol);
            }
            Progress::finished()
        }
        Params::AttachVolume(p) => {
            let vol = volume_ref(input, &p.volume_id)?;
            let inst = instance_ref(input, p.instance_id.as_ref())?;
            let dev = p.device.clone();
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
            Progress::finished()
        }
        Params::CreateVolume(p) => {
            let snapshot_id = p.snapshot_id.clone();
            // EBS: a volume from an encrypted snapshot is encrypted; asking for a key sets it.
            let from_snapshot = snapshot_id
                .as_ref()
                .and_then(|sid| world.snapshots.iter().find(|s| &s.id == sid))
                .map(|s| (s.encrypted, s.kms_key_id.clone()));
            let encrypted = p.encrypted || from_snapshot.as_ref().is_some_and(|s| s.0);
            let kms_key_id = p
                .kms_key_id
                .clone()
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
                region: input.step.region.clone(),
                id: id.clone(),
                availability_zone: p.availability_zone.clone(),
                size_gib: p.size_gib,
                volume_type: p.volume_type.clone(),
                iops: p.iops,
                throughput: p.throughput,
                state: VolumeState::Creating,
                snapshot_id,
                encrypted,
                kms_key_id,
                attachments: Vec::new(),
                tags: created_tags(input, &[]),
            });
            Progress::done(Learned::volume(id))
        }
        Params::WaitVolume(p) => {
            let vol = volume_ref(input, &p.volume_id)?;
            let v = volume_mut(world, &vol)?;
            match v.state {
                VolumeState::Available => Progress::finished(),
                VolumeState::Creating => {
                    v.state = VolumeState::Available;
                    Progress::pending(format!("{vol} creating"), None)
                }
                other => Err(bad("IncorrectState", format!("volume {vol} is {other:?}"))),
            }
        }
        Params::DeleteVolume(p) => {
            let id = &p.volume_id;
            let Some(i) = world.volumes.iter().position(|v| &v.id == id) else {
                return Progress::finished();
            };
            tags::may_delete_volume(
                id,
                &world.volumes[i].tags,
                cx.cluster,
                p.cluster_id.as_deref(),
            )
            .map_err(|m| bad("R13", m))?;
            if !world.volumes[i].attachments.is_empty() {
                return Err(StepError::transient(
                    "VolumeInUse",
                    format!("volume {id} is still attached"),
                    retry,
                ));
            }
            world.volumes.remove(i);
            Progress::finished()
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{} is not carried out here", other.kind()),
        )),
    }
}

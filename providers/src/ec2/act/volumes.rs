//! Volumes on EC2: CreateVolume (client token, encryption, tags at creation), waits, attach and
//! detach at the recorded device (superseded volumes tagged), DeleteVolume of a drill's own.

use super::*;

impl Ec2Provider {
    pub(super) async fn observe_volumes(
        &self,
        input: StepInput<'_>,
    ) -> Result<Option<Resources>, StepError> {
        Ok(match &input.step.params {
            Params::DetachVolume(p) => {
                let (inst, supersede) = (&p.instance_id, p.supersede);
                self.volume(&p.volume_id)
                    .await?
                    .filter(|v| !v.attachments.iter().any(|a| &a.instance_id == inst))
                    .filter(|v| !supersede || v.tags.contains_key(tags::SUPERSEDED))
                    .map(|_| Resources::new())
            }
            Params::AttachVolume(p) => {
                let (vol, inst, dev) = (
                    volume_of(&input, &p.volume_id)?,
                    instance_of(&input, p.instance_id.as_ref())?,
                    &p.device,
                );
                self.volume(&vol)
                    .await?
                    .filter(|v| {
                        v.attachments.iter().any(|a| {
                            a.instance_id == inst
                                && &a.device == dev
                                && a.state == asdr_planner::world::AttachmentState::Attached
                        })
                    })
                    .map(|_| Resources::new())
            }
            Params::CreateVolume(_) => self
                .volumes_of_step(&input)
                .await?
                .into_iter()
                .find(|v| {
                    matches!(
                        v.state,
                        VolumeState::Creating | VolumeState::Available | VolumeState::InUse
                    )
                })
                .map(|v| Learned::volume(v.id)),
            Params::WaitVolume(p) => self
                .volume(&volume_of(&input, &p.volume_id)?)
                .await?
                .filter(|v| v.state == VolumeState::Available)
                .map(|_| Resources::new()),
            Params::DeleteVolume(p) => self
                .volume(&p.volume_id)
                .await?
                .is_none_or(|v| v.state == VolumeState::Deleted)
                .then(Resources::new),
            _ => None,
        })
    }

    pub(super) async fn act_volumes(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match &step.params {
            Params::DetachVolume(p) => {
                let (vol, inst, dev) = (&p.volume_id, &p.instance_id, &p.device);
                let v = self.volume(vol).await?.ok_or_else(|| {
                    StepError::permanent(
                        "InvalidVolume.NotFound",
                        format!("volume {vol} does not exist"),
                    )
                })?;
                match v.attachments.iter().find(|a| &a.instance_id == inst) {
                    None => {
                        // Detached for good: mark it, so current-volumes never reattaches it.
                        if p.supersede && !v.tags.contains_key(tags::SUPERSEDED) {
                            self.client
                                .create_tags()
                                .resources(vol)
                                .tags(
                                    Tag::builder()
                                        .key(tags::SUPERSEDED)
                                        .value(input.plan_id)
                                        .build(),
                                )
                                .send()
                                .await
                                .map_err(|e| self.classify("CreateTags", e))?;
                            self.views.volumes.changed(vol);
                        }
                        Progress::finished()
                    }
                    Some(a) if a.state == asdr_planner::world::AttachmentState::Detaching => {
                        Progress::pending(format!("{vol} detaching"), None)
                    }
                    Some(_) => {
                        if p.terminating {
                            self.check_terminable(inst).await?;
                        }
                        self.client
                            .detach_volume()
                            .volume_id(vol)
                            .instance_id(inst)
                            .device(dev)
                            .send()
                            .await
                            .map_err(|e| self.classify("DetachVolume", e))?;
                        self.views.volumes.changed(vol);
                        self.views.instances.changed(inst);
                        Progress::pending(format!("{vol} detaching"), None)
                    }
                }
            }
            Params::AttachVolume(p) => {
                let (vol, inst, dev) = (
                    volume_of(&input, &p.volume_id)?,
                    instance_of(&input, p.instance_id.as_ref())?,
                    &p.device,
                );
                let v = self.volume(&vol).await?.ok_or_else(|| {
                    StepError::transient(
                        "InvalidVolume.NotFound",
                        format!("volume {vol} is not visible yet"),
                        Duration::from_secs(2),
                    )
                })?;
                match v.attachments.iter().find(|a| a.instance_id == inst) {
                    Some(a) if a.state == asdr_planner::world::AttachmentState::Attached => {
                        Progress::finished()
                    }
                    Some(_) => Progress::pending(format!("{vol} attaching at {dev}"), None),
                    None => {
                        self.client
                            .attach_volume()
                            .volume_id(&vol)
                            .instance_id(&inst)
                            .device(dev)
                            .send()
                            .await
                            .map_err(|e| self.classify("AttachVolume", e))?;
                        self.views.volumes.changed(&vol);
                        self.views.instances.changed(&inst);
                        Progress::pending(format!("{vol} attaching at {dev}"), None)
                    }
                }
            }
            Params::CreateVolume(p) => {
                // A client token names its first volume for hours, even one EBS dropped (a KMS
                // key refused): a volume that old is a replay, so the next attempt gets a token
                // of its own. A live volume of this step was adopted before acting.
                self.acting_on(&input).await;
                for attempt in 0..MAX_CREATES {
                    let token = if attempt == 0 {
                        step.id.clone()
                    } else {
                        format!("{}#{attempt}", step.id)
                    };
                    let out = self.create_volume(&input, p, &token).await?;
                    let id = out.volume_id().unwrap_or_default().to_string();
                    let replayed = out.create_time().is_some_and(|t| {
                        let age = std::time::SystemTime::now()
                            .duration_since(std::time::UNIX_EPOCH)
                            .map(|d| d.as_secs() as i64)
                            .unwrap_or(0)
                            - t.secs();
                        // A volume counts as gone only after `vanish_grace`: one older than
                        // half of it that cannot be found is not the one just asked for.
                        age > (self.vanish_grace / 2).as_secs() as i64
                    }) && self.volume(&id).await?.is_none();
                    if !replayed {
                        return Progress::done(Learned::volume(id));
                    }
                }
                Err(StepError::permanent(
                    "VolumeVanished",
                    format!(
                        "{MAX_CREATES} CreateVolume calls for {} named volumes that no longer exist: EBS drops a volume it cannot create (most often a KMS key the role may not use)",
                        step.id
                    ),
                ))
            }
            Params::WaitVolume(p) => {
                let vol = volume_of(&input, &p.volume_id)?;
                let state = self.volume(&vol).await?.map(|v| v.state);
                if state.is_some() {
                    self.missing.lock().expect("not poisoned").remove(&vol);
                }
                match state {
                    Some(VolumeState::Available) => Progress::finished(),
                    Some(VolumeState::Creating) => {
                        Progress::pending(format!("{vol} creating"), None)
                    }
                    None => self.vanished(&vol),
                    Some(other) => Err(StepError::permanent(
                        "IncorrectState",
                        format!("volume {vol} is {other:?}"),
                    )),
                }
            }
            Params::DeleteVolume(p) => {
                let vol = &p.volume_id;
                let Some(v) = self.volume(vol).await? else {
                    return Progress::finished();
                };
                tags::may_delete_volume(vol, &v.tags, &self.cluster, p.cluster_id.as_deref())
                    .map_err(|m| StepError::permanent("R13", m))?;
                // Done only once the volume is gone: a teardown that reports success leaves
                // nothing behind, not even a volume still `deleting`.
                match v.state {
                    VolumeState::Deleted => return Progress::finished(),
                    VolumeState::Deleting => {
                        return Progress::pending(format!("{vol} deleting"), None);
                    }
                    _ => {}
                }
                self.client
                    .delete_volume()
                    .volume_id(vol)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteVolume", e))?;
                self.views.volumes.changed(vol);
                Progress::pending(format!("{vol} deleting"), None)
            }
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{} is not an EC2 volumes step", other.kind()),
            )),
        }
    }
}

/// CreateVolume attempts for one step whose volumes EBS dropped, before it fails.
const MAX_CREATES: u32 = 3;
/// Looks in a row that do not find a created volume before it counts as gone (with
/// `vanish_grace` passed since the first).
const VANISHED_AFTER: u32 = 12;

impl Ec2Provider {
    async fn create_volume(
        &self,
        input: &StepInput<'_>,
        p: &params::CreateVolume,
        token: &str,
    ) -> Result<aws_sdk_ec2::operation::create_volume::CreateVolumeOutput, StepError> {
        self.volume_request(input, p, token)
            .send()
            .await
            .map_err(|e| self.classify("CreateVolume", e))
    }

    /// The CreateVolume request of a step, as apply sends it (and `drill --check` asks it with
    /// DryRun): type, performance, source, encryption and key, tags at creation.
    pub(crate) fn volume_request(
        &self,
        input: &StepInput<'_>,
        p: &params::CreateVolume,
        token: &str,
    ) -> aws_sdk_ec2::operation::create_volume::builders::CreateVolumeFluentBuilder {
        let mut create = self
            .client
            .create_volume()
            .availability_zone(&p.availability_zone)
            .size(p.size_gib as i32)
            .volume_type(aws_sdk_ec2::types::VolumeType::from(p.volume_type.as_str()))
            .set_iops(p.iops.map(|v| v as i32))
            .set_throughput(p.throughput.map(|v| v as i32))
            .set_snapshot_id(p.snapshot_id.clone())
            .set_encrypted(p.encrypted.then_some(true))
            .set_kms_key_id(p.kms_key_id.clone())
            .client_token(client_token(input.plan_id, token))
            .tag_specifications(tag_spec(ResourceType::Volume, step_tags(input, &[])));
        if let Some(rate) = p.initialization_rate {
            create = create.volume_initialization_rate(rate as i32);
        }
        create
    }

    /// Refuses an instance with termination protection (`DisableApiTermination`): its volumes
    /// are not detached for a termination EC2 would refuse.
    pub(super) async fn check_terminable(&self, instance: &str) -> Result<(), StepError> {
        let out = self
            .client
            .describe_instance_attribute()
            .instance_id(instance)
            .attribute(aws_sdk_ec2::types::InstanceAttributeName::DisableApiTermination)
            .send()
            .await
            .map_err(|e| self.classify("DescribeInstanceAttribute", e))?;
        if out
            .disable_api_termination()
            .and_then(|v| v.value())
            .unwrap_or(false)
        {
            return Err(StepError::permanent(
                "TerminationProtected",
                format!(
                    "instance {instance} has termination protection (DisableApiTermination): it was neither stopped nor its volumes detached, since EC2 would refuse to terminate it afterwards. Turn the protection off (`aws ec2 modify-instance-attribute --instance-id {instance} --no-disable-api-termination`) if replacing it is right, and apply again"
                ),
            ));
        }
        Ok(())
    }

    /// Some(time waited so far) while what `key` waits for may still appear (EC2 shows new
    /// resources, tags and states after a delay): within `vanish_grace` of the first look.
    pub(super) fn still_settling(&self, key: &str) -> Option<Duration> {
        let mut missing = self.missing.lock().expect("not poisoned");
        let (_, since) = missing
            .entry(key.to_string())
            .or_insert((0, std::time::Instant::now()));
        let waited = since.elapsed();
        (waited < self.vanish_grace).then_some(waited)
    }

    /// A volume the wait does not find: not yet visible (EC2 is eventually consistent), or gone.
    fn vanished(&self, vol: &str) -> Result<Progress, StepError> {
        let mut missing = self.missing.lock().expect("not poisoned");
        let (looks, since) = missing
            .entry(vol.to_string())
            .or_insert((0, std::time::Instant::now()));
        *looks += 1;
        if *looks >= VANISHED_AFTER && since.elapsed() >= self.vanish_grace {
            return Err(StepError::permanent(
                "VolumeVanished",
                format!(
                    "volume {vol} was created and is gone (not found for {:.0} s): EBS drops a volume it cannot create, most often one encrypted with a KMS key the role may not use (kms:CreateGrant, kms:Decrypt, kms:GenerateDataKeyWithoutPlaintext) or a disabled key. Fix that and apply again: a new volume is created",
                    since.elapsed().as_secs_f64()
                ),
            ));
        }
        Progress::pending(format!("{vol} creating (not visible yet)"), None)
    }
}

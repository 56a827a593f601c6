//! Volumes on EC2: CreateVolume (client token, encryption, tags at creation), waits, attach and
//! detach at the recorded device (superseded volumes tagged), DeleteVolume of a drill's own.

use super::*;

impl Ec2Provider {
    pub(super) async fn observe_volumes(
        &self,
        input: StepInput<'_>,
    ) -> Result<Option<Resources>, StepError> {
        let r = |pairs: &[(&str, Value)]| {
            Some(
                pairs
                    .iter()
                    .map(|(k, v)| ((*k).to_string(), v.clone()))
                    .collect::<Resources>(),
            )
        };
        Ok(match input.step.kind {
            StepKind::DetachVolume => {
                let (vol, inst) = (
                    param(&input, "volume_id", "volume_id")?,
                    param(&input, "instance_id", "instance_id")?,
                );
                let supersede = step_supersedes(&input);
                self.volume(&vol)
                    .await?
                    .filter(|v| !v.attachments.iter().any(|a| a.instance_id == inst))
                    .filter(|v| !supersede || v.tags.contains_key(tags::SUPERSEDED))
                    .map(|_| Resources::new())
            }
            StepKind::AttachVolume => {
                let (vol, inst, dev) = (
                    param(&input, "volume_id", "volume_id")?,
                    param(&input, "instance_id", "instance_id")?,
                    param(&input, "device", "")?,
                );
                self.volume(&vol)
                    .await?
                    .filter(|v| {
                        v.attachments.iter().any(|a| {
                            a.instance_id == inst
                                && a.device == dev
                                && a.state == asdr_planner::world::AttachmentState::Attached
                        })
                    })
                    .map(|_| Resources::new())
            }
            StepKind::CreateVolume => {
                let mut found = BTreeMap::new();
                let mut filters = mine(&input);
                filters.push(
                    Filter::builder()
                        .name("status")
                        .values("creating")
                        .values("available")
                        .values("in-use")
                        .build(),
                );
                self.volumes(filters, &mut found).await.map_err(|m| {
                    StepError::transient("DescribeVolumes", m, Duration::from_secs(2))
                })?;
                found
                    .into_values()
                    .next()
                    .and_then(|v| r(&[("volume_id", json!(v.id))]))
            }
            StepKind::WaitVolume => self
                .volume(&param(&input, "volume_id", "volume_id")?)
                .await?
                .filter(|v| v.state == VolumeState::Available)
                .map(|_| Resources::new()),
            StepKind::DeleteVolume => self
                .volume(&param(&input, "volume_id", "volume_id")?)
                .await?
                .is_none_or(|v| v.state == VolumeState::Deleted)
                .then(Resources::new),
            _ => None,
        })
    }

    pub(super) async fn act_volumes(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match step.kind {
            StepKind::DetachVolume => {
                let (vol, inst, dev) = (
                    param(&input, "volume_id", "volume_id")?,
                    param(&input, "instance_id", "instance_id")?,
                    param(&input, "device", "")?,
                );
                let v = self.volume(&vol).await?.ok_or_else(|| {
                    StepError::permanent(
                        "InvalidVolume.NotFound",
                        format!("volume {vol} does not exist"),
                    )
                })?;
                match v.attachments.iter().find(|a| a.instance_id == inst) {
                    None => {
                        // Detached for good: mark it, so current-volumes never reattaches it.
                        if step_supersedes(&input) && !v.tags.contains_key(tags::SUPERSEDED) {
                            self.client
                                .create_tags()
                                .resources(&vol)
                                .tags(
                                    Tag::builder()
                                        .key(tags::SUPERSEDED)
                                        .value(input.plan_id)
                                        .build(),
                                )
                                .send()
                                .await
                                .map_err(|e| self.classify("CreateTags", e))?;
                        }
                        Progress::done(&[])
                    }
                    Some(a) if a.state == asdr_planner::world::AttachmentState::Detaching => {
                        Progress::pending(format!("{vol} detaching"), None)
                    }
                    Some(_) => {
                        self.client
                            .detach_volume()
                            .volume_id(&vol)
                            .instance_id(&inst)
                            .device(&dev)
                            .send()
                            .await
                            .map_err(|e| self.classify("DetachVolume", e))?;
                        Progress::pending(format!("{vol} detaching"), None)
                    }
                }
            }
            StepKind::AttachVolume => {
                let (vol, inst, dev) = (
                    param(&input, "volume_id", "volume_id")?,
                    param(&input, "instance_id", "instance_id")?,
                    param(&input, "device", "")?,
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
                        Progress::done(&[])
                    }
                    Some(_) => Progress::pending(format!("{vol} attaching at {dev}"), None),
                    None => {
                        self.client
                            .attach_volume()
                            .volume_id(&vol)
                            .instance_id(&inst)
                            .device(&dev)
                            .send()
                            .await
                            .map_err(|e| self.classify("AttachVolume", e))?;
                        Progress::pending(format!("{vol} attaching at {dev}"), None)
                    }
                }
            }
            StepKind::CreateVolume => {
                let mut create = self
                    .client
                    .create_volume()
                    .availability_zone(param(&input, "availability_zone", "")?)
                    .size(
                        step.params
                            .get("size_gib")
                            .and_then(Value::as_i64)
                            .unwrap_or(0) as i32,
                    )
                    .volume_type(aws_sdk_ec2::types::VolumeType::from(
                        input
                            .param_str("type", "")
                            .unwrap_or_else(|| "gp3".into())
                            .as_str(),
                    ))
                    .set_iops(
                        step.params
                            .get("iops")
                            .and_then(Value::as_i64)
                            .map(|v| v as i32),
                    )
                    .set_throughput(
                        step.params
                            .get("throughput")
                            .and_then(Value::as_i64)
                            .map(|v| v as i32),
                    )
                    .set_snapshot_id(input.param_str("snapshot_id", ""))
                    .set_encrypted(
                        (step.params.get("encrypted").and_then(Value::as_bool) == Some(true))
                            .then_some(true),
                    )
                    .set_kms_key_id(input.param_str("kms_key_id", ""))
                    .client_token(client_token(input.plan_id, &step.id))
                    .tag_specifications(tag_spec(ResourceType::Volume, step_tags(&input, &[])));
                if let Some(rate) = step
                    .params
                    .get("initialization_rate")
                    .and_then(Value::as_i64)
                {
                    create = create.volume_initialization_rate(rate as i32);
                }
                let out = create
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateVolume", e))?;
                Progress::done(&[("volume_id", json!(out.volume_id().unwrap_or_default()))])
            }
            StepKind::WaitVolume => {
                let vol = param(&input, "volume_id", "volume_id")?;
                match self.volume(&vol).await?.map(|v| v.state) {
                    Some(VolumeState::Available) => Progress::done(&[]),
                    Some(VolumeState::Creating) | None => {
                        Progress::pending(format!("{vol} creating"), None)
                    }
                    Some(other) => Err(StepError::permanent(
                        "IncorrectState",
                        format!("volume {vol} is {other:?}"),
                    )),
                }
            }
            StepKind::DeleteVolume => {
                let vol = param(&input, "volume_id", "volume_id")?;
                let Some(v) = self.volume(&vol).await? else {
                    return Progress::done(&[]);
                };
                // Only a drill's own volumes are ever deleted (R7, R13).
                if !v.tags.contains_key(asdr_planner::drill::DRILL)
                    || v.tags.get(tags::CLUSTER) != Some(&self.cluster)
                {
                    return Err(StepError::permanent(
                        "R13",
                        format!(
                            "[R13] volume {vol} is not a drill volume of {}: asdr does not delete it",
                            self.cluster
                        ),
                    ));
                }
                // Done only once the volume is gone: a teardown that reports success leaves
                // nothing behind, not even a volume still `deleting`.
                match v.state {
                    VolumeState::Deleted => return Progress::done(&[]),
                    VolumeState::Deleting => {
                        return Progress::pending(format!("{vol} deleting"), None);
                    }
                    _ => {}
                }
                self.client
                    .delete_volume()
                    .volume_id(&vol)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteVolume", e))?;
                Progress::pending(format!("{vol} deleting"), None)
            }
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{other} is not an EC2 volumes step"),
            )),
        }
    }
}

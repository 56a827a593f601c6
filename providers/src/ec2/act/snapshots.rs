//! Snapshots on EC2: CreateSnapshots / CreateSnapshot with tags at creation, waits with progress,
//! a set marked complete in one CreateTags, DeleteSnapshot with the R13 guard.

use super::*;

impl Ec2Provider {
    pub(super) async fn observe_snapshots(
        &self,
        input: StepInput<'_>,
    ) -> Result<Option<Resources>, StepError> {
        Ok(match &input.step.params {
            Params::SnapshotInstance(_) | Params::Snapshot(_) => {
                let snaps = self.snapshots_of_step(&input).await?;
                // Adopted only once every snapshot carries its device tag.
                (!snaps.is_empty() && snaps.iter().all(|s| s.tags.contains_key(tags::DEVICE)))
                    .then(|| Learned::snapshots(snaps.iter().map(|s| s.id.clone()).collect()))
            }
            Params::WaitSnapshot(p) => self
                .wait_target(&input, p)
                .await?
                .filter(|s| s.state == SnapshotState::Completed)
                .map(|s| Learned::snapshot(s.id)),
            Params::MarkSetComplete(p) => {
                let snaps = self
                    .snapshots_by(vec![
                        filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                        filter(&format!("tag:{}", tags::SET), &p.set),
                    ])
                    .await?;
                (!snaps.is_empty()
                    && snaps
                        .iter()
                        .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")))
                .then(Resources::new)
            }
            Params::DeleteSnapshot(p) => self
                .snapshots_by(vec![filter("snapshot-id", &p.snapshot_id)])
                .await
                .map(|s| s.is_empty())
                .unwrap_or(false)
                .then(Resources::new),
            _ => None,
        })
    }

    pub(super) async fn act_snapshots(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match &step.params {
            Params::SnapshotInstance(p) => {
                // Snapshots of an earlier, interrupted run that never got their device tags.
                let existing = self.snapshots_of_step(&input).await?;
                self.acting_on(&input).await;
                let snaps = if existing.is_empty() {
                    let instance = &p.instance_id;
                    let wanted: Vec<&String> = p.volumes.iter().map(|v| &v.volume_id).collect();
                    // Only the planned data volumes: every other data volume is excluded. The root
                    // volume is left to ExcludeBootVolume: EC2 refuses the request when it is
                    // named among the excluded data volumes.
                    let others: Vec<String> = match &p.exclude_volume_ids {
                        Some(planned) => planned.clone(),
                        None => self
                            .instance(instance)
                            .await?
                            .map(|i| excluded_data_volumes(&i, &wanted))
                            .unwrap_or_default(),
                    };
                    let spec = InstanceSpecification::builder()
                        .instance_id(instance)
                        .exclude_boot_volume(true)
                        .set_exclude_data_volume_ids((!others.is_empty()).then_some(others))
                        .build();
                    let out = self
                        .client
                        .create_snapshots()
                        .instance_specification(spec)
                        .description(format!("asdr {}", step.id))
                        .tag_specifications(tag_spec(
                            ResourceType::Snapshot,
                            step_tags(&input, &[]),
                        ))
                        .send()
                        .await
                        .map_err(|e| self.classify("CreateSnapshots", e))?;
                    out.snapshots()
                        .iter()
                        .map(|s| asdr_planner::world::Snapshot {
                            id: s.snapshot_id().unwrap_or_default().into(),
                            volume_id: s.volume_id().unwrap_or_default().into(),
                            volume_size_gib: 0,
                            state: SnapshotState::Pending,
                            progress: 0,
                            start_time: time::OffsetDateTime::UNIX_EPOCH,
                            encrypted: false,
                            kms_key_id: None,
                            tags: Default::default(),
                        })
                        .collect()
                } else {
                    existing
                };
                self.tag_devices(p, &snaps).await?;
                Progress::done(Learned::snapshots(
                    snaps.iter().map(|s| s.id.clone()).collect(),
                ))
            }
            Params::Snapshot(p) => {
                self.acting_on(&input).await;
                let out = self
                    .client
                    .create_snapshot()
                    .volume_id(&p.volume_id)
                    .description(&p.description)
                    .tag_specifications(tag_spec(
                        ResourceType::Snapshot,
                        step_tags(&input, &[(tags::DEVICE, &p.device)]),
                    ))
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateSnapshot", e))?;
                Progress::done(Learned::snapshots(vec![
                    out.snapshot_id().unwrap_or_default().to_string(),
                ]))
            }
            Params::WaitSnapshot(p) => match self.wait_target(&input, p).await? {
                None => Err(StepError::transient(
                    "InvalidSnapshot.NotFound",
                    format!("no snapshot yet for {}", step.id),
                    Duration::from_secs(2),
                )),
                Some(s) => match s.state {
                    SnapshotState::Completed => Progress::done(Learned::snapshot(s.id)),
                    SnapshotState::Error => Err(StepError::permanent(
                        "SnapshotError",
                        format!("snapshot {} failed (state error)", s.id),
                    )),
                    _ => Progress::pending(format!("{} {}%", s.id, s.progress), Some(s.progress)),
                },
            },
            Params::MarkSetComplete(p) => {
                let (set, expected) = (&p.set, p.snapshots);
                let snaps = self
                    .snapshots_by(vec![
                        filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                        filter(&format!("tag:{}", tags::SET), set),
                    ])
                    .await?;
                if snaps.len() < expected
                    || snaps.iter().any(|s| s.state != SnapshotState::Completed)
                {
                    return Err(StepError::permanent(
                        "IncompleteSet",
                        format!(
                            "set {set} has {} snapshots, {expected} expected, not all completed (R2)",
                            snaps.len()
                        ),
                    ));
                }
                self.client
                    .create_tags()
                    .set_resources(Some(snaps.iter().map(|s| s.id.clone()).collect()))
                    .tags(Tag::builder().key(tags::COMPLETE).value("true").build())
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateTags", e))?;
                Progress::finished()
            }
            Params::DeleteSnapshot(p) => {
                let id = &p.snapshot_id;
                let Some(s) = self
                    .snapshots_by(vec![filter("snapshot-id", id)])
                    .await?
                    .into_iter()
                    .next()
                else {
                    return Progress::finished();
                };
                tags::may_delete_snapshot(id, &s.tags, &self.cluster)
                    .map_err(|m| StepError::permanent("R13", m))?;
                self.client
                    .delete_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteSnapshot", e))?;
                Progress::finished()
            }
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{} is not an EC2 snapshots step", other.kind()),
            )),
        }
    }
}

/// The data volumes of `instance` a multi-volume snapshot leaves out: all but `wanted`, and never
/// the root volume.
pub(crate) fn excluded_data_volumes(
    instance: &asdr_planner::world::Instance,
    wanted: &[&String],
) -> Vec<String> {
    instance
        .block_devices
        .iter()
        .filter(|b| instance.root_device.as_deref() != Some(b.device_name.as_str()))
        .map(|b| b.volume_id.clone())
        .filter(|v| !wanted.contains(&v))
        .collect()
}

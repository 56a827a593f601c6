//! Snapshots on EC2: CreateSnapshots / CreateSnapshot with tags at creation, waits with progress,
//! a set marked complete in one CreateTags, DeleteSnapshot with the R13 guard.

use super::*;

impl Ec2Provider {
    pub(super) async fn observe_snapshots(
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
            StepKind::SnapshotInstance | StepKind::Snapshot => {
                let snaps = self.snapshots_by(mine(&input)).await?;
                // Adopted only once every snapshot carries its device tag.
                (!snaps.is_empty() && snaps.iter().all(|s| s.tags.contains_key(tags::DEVICE))).then(
                    || {
                        [(
                            "snapshot_ids".to_string(),
                            json!(snaps.iter().map(|s| s.id.clone()).collect::<Vec<_>>()),
                        )]
                        .into_iter()
                        .collect()
                    },
                )
            }
            StepKind::WaitSnapshot => self
                .wait_target(&input)
                .await?
                .filter(|s| s.state == SnapshotState::Completed)
                .and_then(|s| r(&[("snapshot_id", json!(s.id))])),
            StepKind::MarkSetComplete => {
                let set = param(&input, "set", "")?;
                let snaps = self
                    .snapshots_by(vec![
                        filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                        filter(&format!("tag:{}", tags::SET), &set),
                    ])
                    .await?;
                (!snaps.is_empty()
                    && snaps
                        .iter()
                        .all(|s| s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")))
                .then(Resources::new)
            }
            StepKind::DeleteSnapshot => {
                let id = param(&input, "snapshot_id", "")?;
                self.snapshots_by(vec![filter("snapshot-id", &id)])
                    .await
                    .map(|s| s.is_empty())
                    .unwrap_or(false)
                    .then(Resources::new)
            }
            _ => None,
        })
    }

    pub(super) async fn act_snapshots(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match step.kind {
            StepKind::SnapshotInstance => {
                let existing = self.snapshots_by(mine(&input)).await?;
                let snaps = if existing.is_empty() {
                    let instance = param(&input, "instance_id", "instance_id")?;
                    let wanted: Vec<String> = step
                        .params
                        .get("volumes")
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.get("volume_id")?.as_str().map(str::to_string))
                                .collect()
                        })
                        .unwrap_or_default();
                    // Only the planned data volumes: every other attached volume is excluded.
                    let others: Vec<String> = self
                        .instance(&instance)
                        .await?
                        .map(|i| {
                            i.block_devices
                                .into_iter()
                                .map(|b| b.volume_id)
                                .filter(|v| !wanted.contains(v))
                                .collect()
                        })
                        .unwrap_or_default();
                    let spec = InstanceSpecification::builder()
                        .instance_id(&instance)
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
                self.tag_devices(&input, &snaps).await?;
                Progress::done(&[(
                    "snapshot_ids",
                    json!(snaps.iter().map(|s| s.id.clone()).collect::<Vec<_>>()),
                )])
            }
            StepKind::Snapshot => {
                let device = param(&input, "device", "")?;
                let out = self
                    .client
                    .create_snapshot()
                    .volume_id(param(&input, "volume_id", "volume_id")?)
                    .description(input.param_str("description", "").unwrap_or_default())
                    .tag_specifications(tag_spec(
                        ResourceType::Snapshot,
                        step_tags(&input, &[(tags::DEVICE, &device)]),
                    ))
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateSnapshot", e))?;
                Progress::done(&[(
                    "snapshot_ids",
                    json!([out.snapshot_id().unwrap_or_default()]),
                )])
            }
            StepKind::WaitSnapshot => match self.wait_target(&input).await? {
                None => Err(StepError::transient(
                    "InvalidSnapshot.NotFound",
                    format!("no snapshot yet for {}", step.id),
                    Duration::from_secs(2),
                )),
                Some(s) => match s.state {
                    SnapshotState::Completed => Progress::done(&[("snapshot_id", json!(s.id))]),
                    SnapshotState::Error => Err(StepError::permanent(
                        "SnapshotError",
                        format!("snapshot {} failed (state error)", s.id),
                    )),
                    _ => Progress::pending(format!("{} {}%", s.id, s.progress), Some(s.progress)),
                },
            },
            StepKind::MarkSetComplete => {
                let set = param(&input, "set", "")?;
                let expected = step
                    .params
                    .get("snapshots")
                    .and_then(Value::as_u64)
                    .unwrap_or(0) as usize;
                let snaps = self
                    .snapshots_by(vec![
                        filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                        filter(&format!("tag:{}", tags::SET), &set),
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
                Progress::done(&[])
            }
            StepKind::DeleteSnapshot => {
                let id = param(&input, "snapshot_id", "")?;
                let Some(s) = self
                    .snapshots_by(vec![filter("snapshot-id", &id)])
                    .await?
                    .into_iter()
                    .next()
                else {
                    return Progress::done(&[]);
                };
                if s.tags.get(tags::CLUSTER) != Some(&self.cluster) {
                    return Err(StepError::permanent(
                        "R13",
                        format!(
                            "[R13] snapshot {id} is not tagged asdr:cluster={}: asdr does not delete it",
                            self.cluster
                        ),
                    ));
                }
                self.client
                    .delete_snapshot()
                    .snapshot_id(&id)
                    .send()
                    .await
                    .map_err(|e| self.classify("DeleteSnapshot", e))?;
                Progress::done(&[])
            }
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{other} is not an EC2 snapshots step"),
            )),
        }
    }
}

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
                // Made by this step: their device tags are the waits' to give.
                let snaps = self.snapshots_of_step(&input).await?;
                (!snaps.is_empty()).then(|| {
                    Learned::snapshots_of_volumes(
                        snaps
                            .iter()
                            .map(|s| (s.id.clone(), s.volume_id.clone()))
                            .collect(),
                    )
                })
            }
            // Just made and not yet given its device tag: nothing to adopt; acting tags it
            // (without first waiting for a view of the set to show it).
            Params::WaitSnapshot(p) if self.untagged_made(&input, p).is_some() => None,
            Params::WaitSnapshot(p) => self
                .wait_target(&input, p)
                .await?
                .filter(|s| s.state == SnapshotState::Completed)
                // Adopted once tagged; otherwise acting tags it.
                .filter(|s| p.device.is_none() || s.tags.contains_key(tags::DEVICE))
                .map(started),
            Params::MarkSetComplete(p) => {
                let snaps = self
                    .set_for_mark(&input, &p.set, p.cluster_id.as_deref())
                    .await?;
                let manifest = p
                    .manifest
                    .as_ref()
                    .and_then(|r| input.resolve(r, |l| l.sha256.as_ref()));
                (!snaps.is_empty()
                    && snaps.iter().all(|s| {
                        s.tags.get(tags::COMPLETE).map(String::as_str) == Some("true")
                            && s.tags.contains_key(tags::MEMBERS)
                            && (manifest.is_none()
                                || s.tags.get(tags::MANIFEST) == manifest.as_ref())
                    }))
                .then(Resources::new)
            }
            Params::CopySnapshot(p) => self
                .copy_in_region(&input, p)
                .await?
                .map(|s| Learned::snapshot(s.id)),
            Params::LockSnapshots(p) => self.observe_locks(&input, p).await?,
            Params::DeleteSnapshot(p) => self
                .snapshots_by(vec![filter("snapshot-id", &p.snapshot_id)])
                .await
                .map(|s| s.is_empty())
                .unwrap_or(false)
                .then(Resources::new),
            _ => None,
        })
    }

    /// The snapshots a set's mark counts and tags: this cluster's of the set and, in a copy
    /// region, only copies (a same-named cluster's own snapshots there carry no source tags); at
    /// home, only snapshots that are not copies; never one carrying another cluster id (a
    /// same-named cluster's set begun in the same second has the same set id).
    async fn set_for_mark(
        &self,
        input: &StepInput<'_>,
        set: &str,
        cluster_id: Option<&str>,
    ) -> Result<Vec<asdr_planner::world::Snapshot>, StepError> {
        let snaps = self
            .snapshots_by(vec![
                filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                filter(&format!("tag:{}", tags::SET), set),
            ])
            .await?;
        // At home never a copy made into this region (a same-named cluster's from elsewhere).
        let copy_region = input.step.region.is_some();
        Ok(snaps
            .into_iter()
            .filter(|s| tags::of_id(&s.tags, cluster_id))
            .filter(|s| {
                if copy_region {
                    s.tags.contains_key(tags::SOURCE_SNAPSHOT)
                } else {
                    !tags::is_copy(&s.tags)
                }
            })
            .collect())
    }

    /// Shares a copy's source with the backup account the copy is made in (createVolumePermission)
    /// so that account's role can copy it, once the source is known to be this cluster's own
    /// snapshot (R13: asdr never shares what is not its own). Adding a permission already there
    /// changes nothing: a retried or resumed step shares again harmlessly.
    pub(super) async fn share_source(
        &self,
        input: &StepInput<'_>,
        p: &params::CopySnapshot,
        account: &str,
    ) -> Result<(), StepError> {
        let source = resolve(input, &p.source, |l| l.snapshot_id.as_ref())?;
        let Some(s) = self
            .snapshots_by(vec![filter("snapshot-id", &source)])
            .await?
            .into_iter()
            .next()
        else {
            return Err(StepError::transient(
                "InvalidSnapshot.NotFound",
                format!("source snapshot {source} is not seen yet"),
                Duration::from_secs(2),
            ));
        };
        if s.tags.get(tags::CLUSTER) != Some(&self.cluster)
            || !tags::of_id(&s.tags, p.cluster_id.as_deref())
            || tags::is_copy(&s.tags)
        {
            return Err(StepError::permanent(
                "R13",
                format!(
                    "snapshot {source} is not one of cluster {}'s own snapshots: it is not shared with account {account}",
                    self.cluster
                ),
            ));
        }
        self.client
            .modify_snapshot_attribute()
            .snapshot_id(&source)
            .attribute(aws_sdk_ec2::types::SnapshotAttributeName::CreateVolumePermission)
            .operation_type(aws_sdk_ec2::types::OperationType::Add)
            .user_ids(account)
            .send()
            .await
            .map_err(|e| self.classify("ModifySnapshotAttribute", e))?;
        // An encrypted source is copied only by a role that may use its key: granted here,
        // once per key (a grant of the same name and terms is the same grant).
        if let (true, Some(key), Some(role)) =
            (s.encrypted, s.kms_key_id.as_deref(), p.grant_to.as_deref())
        {
            self.grant_key(key, role, account).await?;
        }
        Ok(())
    }

    /// A KMS grant on `key` to the backup account's `role`: what EBS needs to read the shared
    /// snapshot and write the copy (the grant's terms are EBS's own, never encryption).
    async fn grant_key(&self, key: &str, role: &str, account: &str) -> Result<(), StepError> {
        use aws_sdk_kms::error::ProvideErrorMetadata as _;
        use aws_sdk_kms::types::GrantOperation as Op;
        let Some(kms) = &self.kms else {
            return Err(StepError::permanent(
                "NoKmsClient",
                format!(
                    "the source is encrypted with {key}: its key must be granted to {role}, and this provider has no KMS client"
                ),
            ));
        };
        let name: String = format!("asdr-{}-{account}", self.cluster)
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || ":/_-".contains(c) {
                    c
                } else {
                    '-'
                }
            })
            .collect();
        kms.create_grant()
            .key_id(key)
            .grantee_principal(role)
            .name(name)
            .set_operations(Some(vec![
                Op::Decrypt,
                Op::DescribeKey,
                Op::CreateGrant,
                Op::ReEncryptFrom,
                Op::GenerateDataKeyWithoutPlaintext,
            ]))
            .send()
            .await
            .map_err(|e| {
                let code = e.code().unwrap_or("Unknown").to_string();
                let message = crate::aws_error::one_line("CreateGrant", &e, self.endpoint.as_deref());
                if matches!(code.as_str(), "ThrottlingException" | "KMSInternalException" | "DependencyTimeoutException") {
                    StepError::transient(code, message, Duration::from_secs(2))
                } else {
                    StepError::permanent(
                        code,
                        format!("{message}: the backup account's role {role} cannot be let use key {key}, so the copy cannot be made (a snapshot encrypted with the account's default key aws/ebs cannot be shared with another account: encrypt the volumes with a customer managed key)"),
                    )
                }
            })?;
        Ok(())
    }

    pub(super) async fn act_snapshots(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match &step.params {
            Params::SnapshotInstance(p) => {
                // Observing found none of this step's snapshots: from now on they are looked up
                // afresh.
                self.acting_on(&input).await;
                let instance = &p.instance_id;
                let wanted: Vec<&String> = p.volumes.iter().map(|v| &v.volume_id).collect();
                // Only the planned data volumes: every other data volume is excluded. The root
                // volume is left to ExcludeBootVolume: EC2 refuses the request when it is named
                // among the excluded data volumes.
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
                // One call, so every device comes from the same moment (R1). The snapshots get
                // their `asdr:device` tags from their waits, after the node is back in service.
                let _out = InFlight::new(&self.snapshots_in_flight);
                let out = self
                    .client
                    .create_snapshots()
                    .instance_specification(spec)
                    .description(format!("asdr {}", step.id))
                    .tag_specifications(tag_spec(ResourceType::Snapshot, step_tags(&input, &[])))
                    .customize()
                    .config_override(once())
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateSnapshots", e))?;
                Progress::done(Learned::snapshots_of_volumes(
                    out.snapshots()
                        .iter()
                        .map(|s| {
                            (
                                s.snapshot_id().unwrap_or_default().to_string(),
                                s.volume_id().unwrap_or_default().to_string(),
                            )
                        })
                        .collect(),
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
                    .customize()
                    .config_override(once())
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateSnapshot", e))?;
                Progress::done(Learned::snapshots(vec![
                    out.snapshot_id().unwrap_or_default().to_string(),
                ]))
            }
            Params::WaitSnapshot(p) => match self.wait_target_tagged(&input, p).await? {
                None => Err(StepError::transient(
                    "InvalidSnapshot.NotFound",
                    format!("no snapshot yet for {}", step.id),
                    Duration::from_secs(2),
                )),
                Some(s) => match s.state {
                    SnapshotState::Completed => Progress::done(started(s)),
                    SnapshotState::Error => Err(StepError::permanent(
                        "SnapshotError",
                        format!(
                            "snapshot {} failed (state error){}",
                            s.id,
                            s.state_message
                                .as_deref()
                                .map(|m| format!(": {m}"))
                                .unwrap_or_default()
                        ),
                    )),
                    _ => Progress::pending(format!("{} {}%", s.id, s.progress), Some(s.progress)),
                },
            },
            Params::MarkSetComplete(p) => {
                let (set, expected) = (&p.set, p.snapshots);
                let snaps = self
                    .set_for_mark(&input, set, p.cluster_id.as_deref())
                    .await?;
                // Every node's every device, by its tags: a snapshot whose wait never tagged it
                // does not count (R2).
                let devices: std::collections::HashSet<(&String, &String)> = snaps
                    .iter()
                    .filter_map(|s| Some((s.tags.get(tags::NODE)?, s.tags.get(tags::DEVICE)?)))
                    .collect();
                if let Some(bad) = snaps.iter().find(|s| s.state == SnapshotState::Error) {
                    return Err(StepError::permanent(
                        "IncompleteSet",
                        format!("set {set}: snapshot {} failed (state error) (R2)", bad.id),
                    ));
                }
                let incomplete = devices.len() < expected
                    || snaps.iter().any(|s| s.state != SnapshotState::Completed);
                // EC2 is eventually consistent: tags the waits just wrote, or a state just
                // completed, may not show in DescribeSnapshots for a while. Only a set still
                // short after the grace is incomplete.
                let key = format!("mark:{}:{}", input.plan_id, step.id);
                if incomplete && let Some(waited) = self.still_settling(&key) {
                    return Progress::pending(
                        format!(
                            "set {set}: {} of {expected} node devices seen tagged and completed after {:.0} s; EC2 shows new tags and states after a delay",
                            devices.len(),
                            waited.as_secs_f64()
                        ),
                        None,
                    );
                }
                if incomplete {
                    return Err(StepError::permanent(
                        "IncompleteSet",
                        format!(
                            "set {set} has {} snapshots covering {} node devices, {expected} expected, not all completed (R2)",
                            snaps.len(),
                            devices.len()
                        ),
                    ));
                }
                // The manifest the set was recorded in: the mark names it (R2).
                let manifest = match &p.manifest {
                    None => None,
                    Some(r) => Some(input.resolve(r, |l| l.sha256.as_ref()).ok_or_else(|| {
                        StepError::permanent(
                            "IncompleteSet",
                            format!("set {set}: its manifest was not written (R2)"),
                        )
                    })?),
                };
                let ids: Vec<String> = snaps.iter().map(|s| s.id.clone()).collect();
                // CreateTags takes up to 1,000 resource ids (256 nodes × 4 devices is more). The
                // mark is complete once every chunk carries it: a retry tags them all again.
                for chunk in ids.chunks(super::MAX_TAGGED) {
                    let mut request = self
                        .client
                        .create_tags()
                        .set_resources(Some(chunk.to_vec()))
                        .tags(Tag::builder().key(tags::COMPLETE).value("true").build());
                    if let Some(m) = &manifest {
                        request = request.tags(Tag::builder().key(tags::MANIFEST).value(m).build());
                    }
                    request
                        // The set's own membership, recorded with the mark (never judged later by
                        // the policy's nodes of the day).
                        .tags(
                            Tag::builder()
                                .key(tags::MEMBERS)
                                .value(devices.len().to_string())
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| self.classify("CreateTags", e))?;
                }
                Progress::finished()
            }
            Params::CopySnapshot(p) => {
                // CopySnapshot takes no client token: a copy is found again by its source tag.
                if let Some(c) = self.copy_in_region(&input, p).await? {
                    return Progress::done(Learned::snapshot(c.id));
                }
                let source = resolve(&input, &p.source, |l| l.snapshot_id.as_ref())?;
                self.acting_on(&input).await;
                let out = self
                    .client
                    .copy_snapshot()
                    .source_region(&p.source_region)
                    .source_snapshot_id(&source)
                    .description(&p.description)
                    .set_encrypted(p.encrypted.then_some(true))
                    .set_kms_key_id(p.kms_key_id.clone())
                    .set_completion_duration_minutes(
                        p.completion_duration_minutes.map(|m| m as i32),
                    )
                    .tag_specifications(tag_spec(
                        ResourceType::Snapshot,
                        step_tags(&input, &[(tags::SOURCE_SNAPSHOT, &source)]),
                    ))
                    .customize()
                    .config_override(once())
                    .send()
                    .await
                    .map_err(|e| self.classify("CopySnapshot", e))?;
                Progress::done(Learned::snapshot(
                    out.snapshot_id().unwrap_or_default().to_string(),
                ))
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
                tags::may_delete_snapshot(
                    id,
                    &s.tags,
                    &self.cluster,
                    p.cluster_id.as_deref(),
                    step.region.is_some(),
                )
                .map_err(|m| StepError::permanent("R13", m))?;
                // R20: a set with any snapshot locked loses none of them, though the plan was
                // made without reading locks (none declared): asked once per set.
                if !p.set.is_empty()
                    && let Some(locked) = self.locked_member(&p.set).await
                {
                    return Err(StepError::permanent(
                        "SnapshotLocked",
                        format!(
                            "set {} holds locked snapshot {locked}: snapshot {id} is not deleted, nor any of the set (R20); declare backup.lock, or plan again once the lock has expired",
                            p.set
                        ),
                    ));
                }
                self.client
                    .delete_snapshot()
                    .snapshot_id(id)
                    .send()
                    .await
                    .map_err(|e| {
                        use aws_sdk_ec2::error::ProvideErrorMetadata;
                        // The code EC2 gives a locked snapshot's delete is not documented:
                        // `SnapshotLocked`, or any refusal whose message says it is locked.
                        let locked = e.code() == Some("SnapshotLocked")
                            || e.message().is_some_and(|m| m.to_lowercase().contains("locked"));
                        if locked {
                            // A lock the plan did not see (made since, or not observed): EC2
                            // kept the snapshot, and so does asdr (R20).
                            StepError::permanent(
                                "SnapshotLocked",
                                format!(
                                    "snapshot {id} is locked: EC2 refused to delete it, and it is kept (R20); plan again and the set is kept until its lock expires"
                                ),
                            )
                        } else {
                            self.classify("DeleteSnapshot", e)
                        }
                    })?;
                Progress::finished()
            }
            Params::LockSnapshots(_) => self.act_locks(&input).await,
            Params::FastSnapshotRestore(p) => self.act_fast_restore(&input, p).await,
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{} is not an EC2 snapshots step", other.kind()),
            )),
        }
    }
}

impl Ec2Provider {
    /// The copy of a copy step's source in this region (not a failed one), when there is one.
    async fn copy_in_region(
        &self,
        input: &StepInput<'_>,
        p: &params::CopySnapshot,
    ) -> Result<Option<asdr_planner::world::Snapshot>, StepError> {
        let Some(source) = input.resolve(&p.source, |l| l.snapshot_id.as_ref()) else {
            return Ok(None);
        };
        Ok(self
            .snapshots_by(vec![
                filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                filter(&format!("tag:{}", tags::SOURCE_SNAPSHOT), &source),
            ])
            .await?
            .into_iter()
            .find(|s| s.state != SnapshotState::Error))
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

/// Counts a call while it is out (also when its step is stopped mid-call).
struct InFlight<'a>(&'a std::sync::atomic::AtomicUsize);

impl<'a> InFlight<'a> {
    fn new(n: &'a std::sync::atomic::AtomicUsize) -> Self {
        n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        InFlight(n)
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, std::sync::atomic::Ordering::SeqCst);
    }
}

/// A completed snapshot, and when it started (a set's manifest records it).
fn started(s: asdr_planner::world::Snapshot) -> Learned {
    Learned {
        started: Some(asdr_planner::manifest::utc(s.start_time)),
        ..Learned::snapshot(s.id)
    }
}

/// CreateSnapshot(s) and CopySnapshot take no client token: a request the SDK sent again after
/// an I/O error or a timeout (it may have been carried out) makes a second snapshot. They are
/// sent once; a failure is retried by the executor, which looks for what the step made first.
fn once() -> aws_sdk_ec2::config::Builder {
    aws_sdk_ec2::config::Builder::new()
        .retry_config(aws_sdk_ec2::config::retry::RetryConfig::disabled())
}

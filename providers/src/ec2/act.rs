//! Every cloud step kind on EC2: observe first (a resource carrying this plan's and step's tags,
//! or the state the step leads to), then act; waits report progress and are polled.

use std::collections::BTreeMap;
use std::time::Duration;

use asdr_planner::StepKind;
use asdr_planner::ports::{Progress, Provider, Resources, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::{InstanceState, SnapshotState, VolumeState};
use aws_sdk_ec2::types::{Filter, InstanceSpecification, ResourceType, Tag, TagSpecification};
use serde_json::{Value, json};

use super::observe::{to_instance, to_volume};
use super::{Ec2Provider, client_token};

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

fn param(input: &StepInput<'_>, name: &str, key: &str) -> Result<String, StepError> {
    input.param_str(name, key).ok_or_else(|| {
        StepError::permanent(
            "MissingParameter",
            format!("step {} has no `{name}`", input.step.id),
        )
    })
}

/// The step's tags ([`StepInput::created_tags`]) as EC2 tags.
fn step_tags(input: &StepInput<'_>, extra: &[(&str, &str)]) -> Vec<Tag> {
    input
        .created_tags(extra)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

fn tag_spec(kind: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

fn mine(input: &StepInput<'_>) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{}", tags::PLAN), input.plan_id),
        filter(&format!("tag:{}", tags::STEP), &input.step.id),
    ]
}

impl Ec2Provider {
    async fn instance(&self, id: &str) -> Result<Option<asdr_planner::world::Instance>, StepError> {
        match self
            .client
            .describe_instances()
            .instance_ids(id)
            .send()
            .await
        {
            Ok(out) => Ok(out
                .reservations()
                .iter()
                .flat_map(|r| r.instances())
                .next()
                .map(to_instance)),
            Err(e) => {
                let e = self.classify("DescribeInstances", e);
                if e.code == "InvalidInstanceID.NotFound" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn volume(&self, id: &str) -> Result<Option<asdr_planner::world::Volume>, StepError> {
        match self.client.describe_volumes().volume_ids(id).send().await {
            Ok(out) => Ok(out.volumes().first().map(to_volume)),
            Err(e) => {
                let e = self.classify("DescribeVolumes", e);
                if e.code == "InvalidVolume.NotFound" {
                    Ok(None)
                } else {
                    Err(e)
                }
            }
        }
    }

    async fn snapshots_by(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<asdr_planner::world::Snapshot>, StepError> {
        self.snapshots(filters)
            .await
            .map_err(|m| StepError::transient("DescribeSnapshots", m, Duration::from_secs(2)))
    }

    /// The snapshot a wait_snapshot step is about: by id, or by set, node and device.
    async fn wait_target(
        &self,
        input: &StepInput<'_>,
    ) -> Result<Option<asdr_planner::world::Snapshot>, StepError> {
        if let Some(id) = input.param_str("snapshot_id", "snapshot_id") {
            return Ok(self
                .snapshots_by(vec![filter("snapshot-id", &id)])
                .await?
                .into_iter()
                .next());
        }
        let f = |k: &str, v: String| filter(&format!("tag:{k}"), &v);
        Ok(self
            .snapshots_by(vec![
                f(tags::CLUSTER, self.cluster.clone()),
                f(tags::SET, param(input, "set", "")?),
                f(tags::NODE, param(input, "node", "")?),
                f(tags::DEVICE, param(input, "device", "")?),
            ])
            .await?
            .into_iter()
            .next())
    }

    /// CreateSnapshots tags every snapshot alike; each then gets its own `asdr:device`.
    async fn tag_devices(
        &self,
        input: &StepInput<'_>,
        snaps: &[asdr_planner::world::Snapshot],
    ) -> Result<(), StepError> {
        let devices: BTreeMap<String, String> = input
            .step
            .params
            .get("volumes")
            .and_then(Value::as_array)
            .map(|a| {
                a.iter()
                    .filter_map(|v| {
                        Some((
                            v.get("volume_id")?.as_str()?.to_string(),
                            v.get("device")?.as_str()?.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default();
        for s in snaps.iter().filter(|s| !s.tags.contains_key(tags::DEVICE)) {
            if let Some(dev) = devices.get(&s.volume_id) {
                self.client
                    .create_tags()
                    .resources(&s.id)
                    .tags(Tag::builder().key(tags::DEVICE).value(dev).build())
                    .send()
                    .await
                    .map_err(|e| self.classify("CreateTags", e))?;
            }
        }
        Ok(())
    }
}

impl Provider for Ec2Provider {
    async fn observe(&self, input: StepInput<'_>) -> Result<Option<Resources>, StepError> {
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
            StepKind::StopInstance => self
                .instance(&param(&input, "instance_id", "instance_id")?)
                .await?
                .filter(|i| matches!(i.state, InstanceState::Stopped | InstanceState::Terminated))
                .map(|_| Resources::new()),
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
            StepKind::TerminateInstance => self
                .instance(&param(&input, "instance_id", "instance_id")?)
                .await?
                .filter(|i| i.state == InstanceState::Terminated)
                .map(|_| Resources::new()),
            StepKind::ProvisionInstance => {
                let mut found = BTreeMap::new();
                self.instances(mine(&input), &mut found)
                    .await
                    .map_err(|m| {
                        StepError::transient("DescribeInstances", m, Duration::from_secs(2))
                    })?;
                found
                    .into_values()
                    .find(|i| i.state == InstanceState::Running)
                    .and_then(|i| r(&[("instance_id", json!(i.id))]))
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

    async fn act(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
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
            StepKind::StopInstance => {
                let id = param(&input, "instance_id", "instance_id")?;
                match self.instance(&id).await?.map(|i| i.state) {
                    None | Some(InstanceState::Stopped | InstanceState::Terminated) => {
                        Progress::done(&[])
                    }
                    Some(InstanceState::Stopping | InstanceState::ShuttingDown) => {
                        Progress::pending(format!("{id} stopping"), None)
                    }
                    Some(_) => {
                        // Force: the instance is not answering; its volumes are what matters.
                        self.client
                            .stop_instances()
                            .instance_ids(&id)
                            .force(step.params.get("force").and_then(Value::as_bool) == Some(true))
                            .send()
                            .await
                            .map_err(|e| self.classify("StopInstances", e))?;
                        Progress::pending(format!("{id} stopping"), None)
                    }
                }
            }
            StepKind::TerminateInstance => {
                let id = param(&input, "instance_id", "instance_id")?;
                match self.instance(&id).await?.map(|i| i.state) {
                    None | Some(InstanceState::Terminated) => Progress::done(&[]),
                    Some(InstanceState::ShuttingDown) => {
                        Progress::pending(format!("{id} shutting down"), None)
                    }
                    Some(_) => {
                        self.client
                            .terminate_instances()
                            .instance_ids(&id)
                            .send()
                            .await
                            .map_err(|e| self.classify("TerminateInstances", e))?;
                        Progress::pending(format!("{id} shutting down"), None)
                    }
                }
            }
            StepKind::ProvisionInstance => {
                let ip = param(&input, "private_ip", "")?;
                // The old instance may still hold the address (shutting down): wait it out rather
                // than have RunInstances fail (moto answers that with a bare 500).
                let mut holders = BTreeMap::new();
                self.instances(
                    vec![
                        filter("private-ip-address", &ip),
                        Filter::builder()
                            .name("instance-state-name")
                            .values("pending")
                            .values("running")
                            .values("shutting-down")
                            .values("stopping")
                            .values("stopped")
                            .build(),
                    ],
                    &mut holders,
                )
                .await
                .map_err(|m| {
                    StepError::transient("DescribeInstances", m, Duration::from_secs(2))
                })?;
                if let Some(h) = holders.values().find(|i| {
                    !(i.tags.get(tags::PLAN).map(String::as_str) == Some(input.plan_id)
                        && i.tags.get(tags::STEP) == Some(&step.id))
                }) {
                    return Err(StepError::transient(
                        "InvalidIPAddress.InUse",
                        format!("Address {ip} is in use by {}", h.id),
                        Duration::from_secs(5),
                    ));
                }
                if let Some(mine) = holders.into_values().next() {
                    return if mine.state == InstanceState::Running {
                        Progress::done(&[("instance_id", json!(mine.id))])
                    } else {
                        Progress::pending(format!("{} {:?}", mine.id, mine.state), None)
                    };
                }
                let list = |name: &str| {
                    step.params
                        .get(name)
                        .and_then(Value::as_array)
                        .map(|a| {
                            a.iter()
                                .filter_map(|v| v.as_str().map(str::to_string))
                                .collect::<Vec<_>>()
                        })
                        .filter(|v| !v.is_empty())
                };
                // The address on an explicit primary interface that goes with the instance: the same
                // as SubnetId + PrivateIpAddress on EC2, and said out loud, so a later replacement
                // finds the address free once this instance is terminated.
                let nic = aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
                    .device_index(0)
                    .subnet_id(param(&input, "subnet_id", "")?)
                    .private_ip_address(&ip)
                    .set_groups(list("security_groups"))
                    .delete_on_termination(true)
                    .build();
                let mut run = self
                    .client
                    .run_instances()
                    .image_id(param(&input, "ami", "")?)
                    .instance_type(aws_sdk_ec2::types::InstanceType::from(
                        param(&input, "instance_type", "")?.as_str(),
                    ))
                    .min_count(1)
                    .max_count(1)
                    .network_interfaces(nic)
                    .client_token(client_token(input.plan_id, &step.id))
                    .tag_specifications(tag_spec(ResourceType::Instance, step_tags(&input, &[])));
                if let Some(profile) = input.param_str("iam_instance_profile", "") {
                    run = run.iam_instance_profile(
                        aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                            .name(profile)
                            .build(),
                    );
                }
                if let Some(key) = input.param_str("key_name", "") {
                    run = run.key_name(key);
                }
                let out = run
                    .send()
                    .await
                    .map_err(|e| self.classify("RunInstances", e))?;
                let id = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .unwrap_or_default()
                    .to_string();
                Progress::pending(format!("{id} launching"), None)
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
                "NotACloudStep",
                format!("{other} is not carried out on EC2"),
            )),
        }
    }
}

/// Whether a detach takes the volume away from its node for good (another volume replaces it).
fn step_supersedes(input: &StepInput<'_>) -> bool {
    input.step.params.get("supersede").and_then(Value::as_bool) == Some(true)
}

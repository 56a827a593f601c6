//! Observation in a bounded number of calls: instances by the nodes' private IPs and by the
//! cluster tag, volumes attached to them and tagged for the cluster, the cluster's snapshots, and
//! the instance-store drives of the instance types in play — never one call per resource.

use std::collections::{BTreeMap, BTreeSet};

use asdr_planner::World;
use asdr_planner::tags;
use asdr_planner::world::*;
use asdr_specs::Policy;
use aws_sdk_ec2::types::Filter;

use asdr_planner::ports::{Retry, StepError};

use super::Ec2Provider;

/// Values one filter takes (more answer FilterLimitExceeded).
const MAX_FILTER_VALUES: usize = 200;

/// `name` in `values`, as filters of at most 200 values each: one call per filter.
fn filters(name: &str, values: &[String]) -> Vec<Filter> {
    values
        .chunks(MAX_FILTER_VALUES)
        .map(|c| filter(name, c.to_vec()))
        .collect()
}

fn filter(name: &str, values: impl IntoIterator<Item = impl Into<String>>) -> Filter {
    Filter::builder()
        .name(name)
        .set_values(Some(values.into_iter().map(Into::into).collect()))
        .build()
}

fn tags_of(t: &[aws_sdk_ec2::types::Tag]) -> Tags {
    t.iter()
        .filter_map(|t| {
            Some((
                t.key()?.to_string(),
                t.value().unwrap_or_default().to_string(),
            ))
        })
        .collect()
}

fn time(t: Option<&aws_smithy_types::DateTime>) -> time::OffsetDateTime {
    t.and_then(|d| time::OffsetDateTime::from_unix_timestamp(d.secs()).ok())
        .unwrap_or(time::OffsetDateTime::UNIX_EPOCH)
}

fn instance_state(s: Option<&aws_sdk_ec2::types::InstanceStateName>) -> InstanceState {
    use aws_sdk_ec2::types::InstanceStateName as N;
    match s {
        Some(N::Pending) => InstanceState::Pending,
        Some(N::Running) => InstanceState::Running,
        Some(N::ShuttingDown) => InstanceState::ShuttingDown,
        Some(N::Stopping) => InstanceState::Stopping,
        Some(N::Stopped) => InstanceState::Stopped,
        _ => InstanceState::Terminated,
    }
}

pub(crate) fn volume_state(s: Option<&aws_sdk_ec2::types::VolumeState>) -> VolumeState {
    use aws_sdk_ec2::types::VolumeState as S;
    match s {
        Some(S::Creating) => VolumeState::Creating,
        Some(S::Available) => VolumeState::Available,
        Some(S::InUse) => VolumeState::InUse,
        Some(S::Deleting) => VolumeState::Deleting,
        Some(S::Deleted) => VolumeState::Deleted,
        _ => VolumeState::Error,
    }
}

pub(crate) fn snapshot_state(s: Option<&aws_sdk_ec2::types::SnapshotState>) -> SnapshotState {
    use aws_sdk_ec2::types::SnapshotState as S;
    match s {
        Some(S::Completed) => SnapshotState::Completed,
        Some(S::Pending) => SnapshotState::Pending,
        Some(S::Recoverable) => SnapshotState::Recoverable,
        Some(S::Recovering) => SnapshotState::Recovering,
        Some(S::Error) => SnapshotState::Error,
        // A state this SDK does not know (or none): never taken for a failed snapshot, which
        // retention and copies may delete at once; waited on like one still being made.
        _ => SnapshotState::Pending,
    }
}

/// "42%" → 42.
pub(crate) fn percent(p: Option<&str>) -> u8 {
    p.and_then(|p| p.trim_end_matches('%').parse().ok())
        .unwrap_or(0)
}

pub(crate) fn to_snapshot(s: &aws_sdk_ec2::types::Snapshot) -> Snapshot {
    Snapshot {
        state_message: s.state_message().map(str::to_string),
        lock: None,
        fast_restore: Default::default(),
        region: None,
        id: s.snapshot_id().unwrap_or_default().into(),
        volume_id: s.volume_id().unwrap_or_default().into(),
        volume_size_gib: s.volume_size().unwrap_or(0) as u32,
        state: snapshot_state(s.state()),
        progress: percent(s.progress()),
        start_time: time(s.start_time()),
        encrypted: s.encrypted().unwrap_or(false),
        kms_key_id: s.kms_key_id().map(str::to_string),
        tags: tags_of(s.tags()),
    }
}

pub(crate) fn to_volume(v: &aws_sdk_ec2::types::Volume) -> Volume {
    Volume {
        region: None,
        id: v.volume_id().unwrap_or_default().into(),
        availability_zone: v.availability_zone().unwrap_or_default().into(),
        size_gib: v.size().unwrap_or(0) as u32,
        volume_type: v
            .volume_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        iops: v.iops().map(|i| i as u32),
        throughput: v.throughput().map(|t| t as u32),
        state: volume_state(v.state()),
        snapshot_id: v
            .snapshot_id()
            .filter(|s| !s.is_empty())
            .map(str::to_string),
        encrypted: v.encrypted().unwrap_or(false),
        kms_key_id: v.kms_key_id().map(str::to_string),
        attachments: v
            .attachments()
            .iter()
            .map(|a| Attachment {
                instance_id: a.instance_id().unwrap_or_default().into(),
                device: a.device().unwrap_or_default().into(),
                state: match a.state() {
                    Some(aws_sdk_ec2::types::VolumeAttachmentState::Attaching) => {
                        AttachmentState::Attaching
                    }
                    Some(aws_sdk_ec2::types::VolumeAttachmentState::Detaching) => {
                        AttachmentState::Detaching
                    }
                    Some(aws_sdk_ec2::types::VolumeAttachmentState::Detached) => {
                        AttachmentState::Detached
                    }
                    Some(aws_sdk_ec2::types::VolumeAttachmentState::Busy) => AttachmentState::Busy,
                    _ => AttachmentState::Attached,
                },
                delete_on_termination: a.delete_on_termination().unwrap_or(false),
            })
            .collect(),
        tags: tags_of(v.tags()),
    }
}

pub(crate) fn to_instance(i: &aws_sdk_ec2::types::Instance) -> Instance {
    Instance {
        region: None,
        id: i.instance_id().unwrap_or_default().into(),
        state: instance_state(i.state().and_then(|s| s.name())),
        instance_type: i
            .instance_type()
            .map(|t| t.as_str().to_string())
            .unwrap_or_default(),
        private_ip: i.private_ip_address().map(str::to_string),
        availability_zone: i
            .placement()
            .and_then(|p| p.availability_zone())
            .unwrap_or_default()
            .into(),
        subnet_id: i.subnet_id().map(str::to_string),
        instance_store_drives: 0,
        root_device: i.root_device_name().map(str::to_string),
        state_reason: i
            .state_reason()
            .and_then(|r| r.message())
            .map(str::to_string),
        block_devices: i
            .block_device_mappings()
            .iter()
            .filter_map(|b| {
                let ebs = b.ebs()?;
                Some(BlockDevice {
                    device_name: b.device_name()?.into(),
                    volume_id: ebs.volume_id()?.into(),
                    delete_on_termination: ebs.delete_on_termination().unwrap_or(false),
                })
            })
            .collect(),
        tags: tags_of(i.tags()),
    }
}

/// A describe call that failed: throttling and service hiccups are tried again after the delay
/// the classification gives (the SDK's own retries came first); anything else is the answer.
async fn described<T, F, Fut>(mut call: F) -> Result<T, StepError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Result<T, StepError>>,
{
    let mut attempt = 1;
    loop {
        match call().await {
            Err(e) if attempt < 4 && throttled(&e) => {
                if let Retry::Transient { after } = e.retry {
                    tokio::time::sleep(after).await;
                }
                attempt += 1;
            }
            other => return other,
        }
    }
}

fn throttled(e: &StepError) -> bool {
    matches!(e.retry, Retry::Transient { .. })
        && matches!(
            e.code.as_str(),
            "RequestLimitExceeded" | "Throttling" | "InternalError" | "Unavailable"
        )
}

impl Ec2Provider {
    /// Every instance matching `filters`, every page, into `out`.
    pub(crate) async fn instances(
        &self,
        filters: Vec<Filter>,
        out: &mut BTreeMap<String, Instance>,
    ) -> Result<(), StepError> {
        let found = described(|| async {
            let mut pages = self
                .client
                .describe_instances()
                .set_filters(Some(filters.clone()))
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.classify("DescribeInstances", e))?;
                for r in page.reservations() {
                    found.extend(r.instances().iter().map(to_instance));
                }
            }
            Ok(found)
        })
        .await?;
        out.extend(found.into_iter().map(|i| (i.id.clone(), i)));
        Ok(())
    }

    /// Every volume matching `filters`, every page, into `out`.
    pub(crate) async fn volumes(
        &self,
        filters: Vec<Filter>,
        out: &mut BTreeMap<String, Volume>,
    ) -> Result<(), StepError> {
        let found = described(|| async {
            let mut pages = self
                .client
                .describe_volumes()
                .set_filters(Some(filters.clone()))
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.classify("DescribeVolumes", e))?;
                found.extend(page.volumes().iter().map(to_volume));
            }
            Ok(found)
        })
        .await?;
        out.extend(found.into_iter().map(|v| (v.id.clone(), v)));
        Ok(())
    }

    /// Every snapshot of this account matching `filters`, every page.
    pub(crate) async fn snapshots(&self, filters: Vec<Filter>) -> Result<Vec<Snapshot>, StepError> {
        described(|| async {
            // OwnerIds=self: only this account's snapshots (moto ignores it; the tag filter
            // holds).
            let mut pages = self
                .client
                .describe_snapshots()
                .owner_ids("self")
                .set_filters(Some(filters.clone()))
                .into_paginator()
                .send();
            let mut found = Vec::new();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.classify("DescribeSnapshots", e))?;
                found.extend(page.snapshots().iter().map(to_snapshot));
            }
            Ok(found)
        })
        .await
    }
}

/// The cloud half of the world: instances, volumes, snapshots and instance types. Node
/// observations and SMD archives come from the nodes and the store.
/// Errors are classified as a step's are ([`Ec2Provider::classify`]); throttling is retried.
pub async fn observe_cloud(ec2: &Ec2Provider, policy: &Policy) -> Result<World, StepError> {
    // The cluster's region and every other region the policy acts in, at once: a few calls per
    // region, whatever the number of sets.
    let regions = ec2.regions.clone();
    let (home, others) = tokio::join!(observe_home(ec2, policy), async {
        let asked: Vec<_> = regions
            .iter()
            .map(|(region, p)| observe_region(p, policy, region))
            .collect();
        regions
            .keys()
            .cloned()
            .zip(join_all(asked).await)
            .collect::<Vec<_>>()
    });
    // The cluster's own region not answering is the disaster a restore elsewhere is for: with
    // other regions to act in, it is recorded (the planner then plans only restores elsewhere);
    // without, it is the answer.
    let mut world = match home {
        Ok(w) => w,
        Err(e) if !regions.is_empty() => {
            let mut w = World::default();
            w.unobserved_regions
                .insert(policy.cluster.region.clone(), e.message);
            w
        }
        Err(e) => return Err(e),
    };
    // Snapshot locks (R20), where they matter: a region whose locks cannot be read is recorded,
    // and retention deletes nothing there.
    let home_region = policy.cluster.region.clone();
    if !world.unobserved_regions.contains_key(&home_region)
        && super::locks::wanted(policy, None, &world.snapshots)
        && let Err(e) = ec2.fill_locks(&mut world.snapshots).await
    {
        world
            .locks_unobserved
            .insert(home_region.clone(), e.message);
    }
    // A region that does not answer does not stop the cluster's own backup: it is recorded, and
    // nothing is planned there until it answers again.
    for (region, observed) in others {
        match observed {
            Ok(mut w) => {
                if super::locks::wanted(policy, Some(&region), &w.snapshots)
                    && let Some(p) = regions.get(&region)
                    && let Err(e) = p.fill_locks(&mut w.snapshots).await
                {
                    world.locks_unobserved.insert(region.clone(), e.message);
                }
                world.instances.extend(w.instances);
                world.volumes.extend(w.volumes);
                world.snapshots.extend(w.snapshots);
                world.subnets.extend(w.subnets);
            }
            Err(e) => {
                world.unobserved_regions.insert(region, e.message);
            }
        }
    }
    // Fast Snapshot Restore, where a restore or the backup uses it: which pairs are on before a
    // plan (a restore turns off only those it turned on; a backup keeps it on the newest set).
    if policy.backup.fast_restore.is_some()
        || policy
            .restores
            .iter()
            .any(|r| r.volume.fast_snapshot_restore)
    {
        if !world.unobserved_regions.contains_key(&home_region) {
            ec2.fill_fast_restore(&mut world.snapshots, None).await?;
        }
        for (region, p) in regions.iter() {
            if !world.unobserved_regions.contains_key(region) {
                p.fill_fast_restore(&mut world.snapshots, Some(region))
                    .await?;
            }
        }
    }
    Ok(world)
}

/// Runs the futures concurrently and returns their outputs in order.
async fn join_all<F: std::future::Future>(futures: Vec<F>) -> Vec<F::Output> {
    let mut pinned: Vec<std::pin::Pin<Box<F>>> = futures.into_iter().map(Box::pin).collect();
    let mut out: Vec<Option<F::Output>> = (0..pinned.len()).map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut pending = false;
        for (i, f) in pinned.iter_mut().enumerate() {
            if out[i].is_none() {
                match f.as_mut().poll(cx) {
                    std::task::Poll::Ready(v) => out[i] = Some(v),
                    std::task::Poll::Pending => pending = true,
                }
            }
        }
        if pending {
            std::task::Poll::Pending
        } else {
            std::task::Poll::Ready(())
        }
    })
    .await;
    out.into_iter()
        .map(|o| o.expect("every future ran to completion"))
        .collect()
}

/// What a region other than the cluster's holds of it: the copies there (one call), its
/// instances and volumes (a restore built there), and the subnets restores there name.
async fn observe_region(
    ec2: &Ec2Provider,
    policy: &Policy,
    region: &str,
) -> Result<World, StepError> {
    let cluster = policy.cluster.name.as_str();
    let tagged = || vec![filter(&format!("tag:{}", tags::CLUSTER), [cluster])];
    let subnet_ids: Vec<String> = policy
        .restores
        .iter()
        .filter_map(|r| r.region.as_ref())
        .filter(|t| t.region == region)
        .flat_map(|t| t.subnets.values().cloned())
        .chain(
            policy
                .drills
                .iter()
                .filter(|d| policy.restore(&d.restore).and_then(|r| r.region()) == Some(region))
                .flat_map(|d| d.subnets.values().cloned()),
        )
        .collect();
    let mut instances = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    let (a, b, snapshots, subnets) = tokio::join!(
        ec2.instances(tagged(), &mut instances),
        ec2.volumes(tagged(), &mut volumes),
        ec2.snapshots(tagged()),
        async {
            if subnet_ids.is_empty() {
                return Ok(Vec::new());
            }
            ec2.client
                .describe_subnets()
                .filters(filter("subnet-id", subnet_ids.clone()))
                .send()
                .await
                .map(|d| d.subnets().to_vec())
                .map_err(|e| ec2.classify("DescribeSubnets", e))
        },
    );
    a?;
    b?;
    let here = || Some(region.to_string());
    let mut subnets: Vec<asdr_planner::world::Subnet> = subnets?
        .iter()
        .map(|s| asdr_planner::world::Subnet {
            region: here(),
            id: s.subnet_id().unwrap_or_default().into(),
            cidr: s.cidr_block().unwrap_or_default().into(),
            availability_zone: s.availability_zone().unwrap_or_default().into(),
        })
        .collect();
    subnets.sort_by(|a, b| a.id.cmp(&b.id));
    Ok(World {
        instances: instances
            .into_values()
            .map(|i| Instance {
                region: here(),
                ..i
            })
            .collect(),
        volumes: volumes
            .into_values()
            .map(|v| Volume {
                region: here(),
                ..v
            })
            .collect(),
        snapshots: snapshots?
            .into_iter()
            .map(|s| Snapshot {
                region: here(),
                ..s
            })
            .collect(),
        subnets,
        ..World::default()
    })
}

async fn observe_home(ec2: &Ec2Provider, policy: &Policy) -> Result<World, StepError> {
    let cluster = &policy.cluster.name;
    let ips: Vec<String> = policy
        .cluster
        .nodes
        .iter()
        .map(|n| n.private_ip.to_string())
        .collect();
    // What does not depend on another answer is asked at once: the instances at the nodes'
    // addresses and those tagged for the cluster, its volumes and its snapshots.
    let mut by_ip = BTreeMap::new();
    let mut by_tag = BTreeMap::new();
    let mut volumes = BTreeMap::new();
    let (a, b, c, snapshots) = tokio::join!(
        async {
            for f in filters("private-ip-address", &ips) {
                ec2.instances(vec![f], &mut by_ip).await?;
            }
            Ok::<(), StepError>(())
        },
        ec2.instances(
            vec![filter(
                &format!("tag:{}", tags::CLUSTER),
                [cluster.as_str()],
            )],
            &mut by_tag,
        ),
        ec2.volumes(
            vec![filter(
                &format!("tag:{}", tags::CLUSTER),
                [cluster.as_str()],
            )],
            &mut volumes,
        ),
        ec2.snapshots(vec![filter(
            &format!("tag:{}", tags::CLUSTER),
            [cluster.as_str()],
        )]),
    );
    a?;
    b?;
    c?;
    let snapshots = snapshots?;
    let mut instances = by_ip;
    instances.extend(by_tag);
    let pinned: Vec<String> = policy
        .cluster
        .nodes
        .iter()
        .filter_map(|n| n.instance_id.clone())
        .filter(|id| !instances.contains_key(id))
        .collect();
    if !pinned.is_empty() {
        for f in filters("instance-id", &pinned) {
            ec2.instances(vec![f], &mut instances).await?;
        }
    }
    // Then at once: the volumes attached to those instances (untagged ones included), their
    // instance types, and the subnets replacements may go into.
    let ids: Vec<String> = instances.keys().cloned().collect();
    let mut types: BTreeSet<String> = instances
        .values()
        .map(|i| i.instance_type.clone())
        .collect();
    types.insert(policy.cluster.instance.instance_type.clone());
    // The subnets replacements may go into (the policy's and the nodes' own), for R4: one call.
    let mut subnet_ids: std::collections::BTreeSet<String> =
        policy.cluster.instance.subnets.values().cloned().collect();
    subnet_ids.extend(instances.values().filter_map(|i| i.subnet_id.clone()));
    // Node addresses no instance holds: a replacement may need them, and a network interface
    // that outlived its instance (or was never attached) would hold them still.
    let free: Vec<String> = ips
        .iter()
        .filter(|ip| {
            !instances.values().any(|i| {
                i.private_ip.as_deref() == Some(ip.as_str())
                    && i.state != asdr_planner::world::InstanceState::Terminated
            })
        })
        .cloned()
        .collect();
    let mut attached = BTreeMap::new();
    let (attached_found, types_described, subnets_described, interfaces) = tokio::join!(
        async {
            if ids.is_empty() {
                return Ok(());
            }
            for f in filters("attachment.instance-id", &ids) {
                ec2.volumes(vec![f], &mut attached).await?;
            }
            Ok::<(), StepError>(())
        },
        ec2.client
            .describe_instance_types()
            .set_instance_types(Some(
                types
                    .iter()
                    .map(|t| aws_sdk_ec2::types::InstanceType::from(t.as_str()))
                    .collect(),
            ))
            .send(),
        ec2.client
            .describe_subnets()
            // A filter, not SubnetIds: a subnet that does not exist is simply not found (the
            // planner then has no range to check), rather than failing the whole observation.
            .filters(
                aws_sdk_ec2::types::Filter::builder()
                    .name("subnet-id")
                    .set_values(Some(subnet_ids.into_iter().collect()))
                    .build(),
            )
            .send(),
        ec2.interfaces_holding(&free),
    );
    let network_interfaces = interfaces?;
    attached_found?;
    volumes.extend(attached);
    let described = types_described.map_err(|e| ec2.classify("DescribeInstanceTypes", e))?;
    let mut instance_types = BTreeMap::new();
    for t in described.instance_types() {
        let drives = t
            .instance_storage_info()
            .map(|s| {
                s.disks()
                    .iter()
                    .map(|d| d.count().unwrap_or(0) as u32)
                    .sum()
            })
            .unwrap_or(0);
        if let Some(name) = t.instance_type() {
            instance_types.insert(
                name.as_str().to_string(),
                InstanceType {
                    instance_store_drives: drives,
                },
            );
        }
    }
    let described = subnets_described.map_err(|e| ec2.classify("DescribeSubnets", e))?;
    let mut subnets: Vec<asdr_planner::world::Subnet> = described
        .subnets()
        .iter()
        .map(|s| asdr_planner::world::Subnet {
            region: None,
            id: s.subnet_id().unwrap_or_default().into(),
            cidr: s.cidr_block().unwrap_or_default().into(),
            availability_zone: s.availability_zone().unwrap_or_default().into(),
        })
        .collect();
    subnets.sort_by(|a, b| a.id.cmp(&b.id));
    let mut instances: Vec<Instance> = instances.into_values().collect();
    for i in &mut instances {
        i.instance_store_drives = instance_types
            .get(&i.instance_type)
            .map_or(0, |t| t.instance_store_drives);
    }
    Ok(World {
        now: None,
        instances,
        volumes: volumes.into_values().collect(),
        snapshots,
        instance_types,
        subnets,
        network_interfaces,
        ..World::default()
    })
}

impl Ec2Provider {
    /// The network interfaces holding any of `ips` (primary or secondary): none asked when
    /// there are none.
    async fn interfaces_holding(
        &self,
        ips: &[String],
    ) -> Result<Vec<asdr_planner::world::NetworkInterface>, StepError> {
        let mut out = Vec::new();
        for f in filters("addresses.private-ip-address", ips) {
            let mut pages = self
                .client
                .describe_network_interfaces()
                .filters(f)
                .into_paginator()
                .send();
            while let Some(page) = pages.next().await {
                let page = page.map_err(|e| self.classify("DescribeNetworkInterfaces", e))?;
                for n in page.network_interfaces() {
                    out.push(asdr_planner::world::NetworkInterface {
                        id: n.network_interface_id().unwrap_or_default().into(),
                        subnet_id: n.subnet_id().map(str::to_string),
                        private_ips: n
                            .private_ip_addresses()
                            .iter()
                            .filter_map(|a| a.private_ip_address().map(str::to_string))
                            .chain(n.private_ip_address().map(str::to_string))
                            .collect::<std::collections::BTreeSet<_>>()
                            .into_iter()
                            .collect(),
                        status: n
                            .status()
                            .map(|s| s.as_str().to_string())
                            .unwrap_or_default(),
                        attached_to: n
                            .attachment()
                            .and_then(|a| a.instance_id())
                            .map(str::to_string),
                    });
                }
            }
        }
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out.dedup_by(|a, b| a.id == b.id);
        Ok(out)
    }
}

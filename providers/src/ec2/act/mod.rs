//! Every cloud step kind on EC2: observe first (a resource carrying this plan's and step's tags,
//! or the state the step leads to), then act; waits report progress and are polled.

use std::collections::BTreeMap;
use std::time::Duration;

use asdr_planner::StepKind;
use asdr_planner::params::{self, Learned, Params, Ref};
use asdr_planner::ports::{Progress, Provider, Resources, StepError, StepInput};
use asdr_planner::tags;
use asdr_planner::world::{InstanceState, SnapshotState, VolumeState};
use aws_sdk_ec2::types::{Filter, InstanceSpecification, ResourceType, Tag, TagSpecification};

use super::{Ec2Provider, client_token};

/// CreateTags takes up to 1,000 resource ids (EC2 API Reference, CreateTags: ResourceId.N).
pub(super) const MAX_TAGGED: usize = 1000;

mod instances;
mod snapshots;
mod volumes;

fn filter(name: &str, value: &str) -> Filter {
    Filter::builder().name(name).values(value).build()
}

/// A resource id the plan knows or an earlier step learned; an earlier step that learned nothing
/// is a broken journal, not something to wait for.
fn resolve(
    input: &StepInput<'_>,
    r: &Ref,
    pick: impl Fn(&Learned) -> Option<&String>,
) -> Result<String, StepError> {
    input.resolve(r, pick).ok_or_else(|| {
        StepError::permanent(
            "UnresolvedReference",
            format!(
                "step {}: step {} has not learned the resource it needs",
                input.step.id,
                r.from_step().unwrap_or_default()
            ),
        )
    })
}

fn volume_of(input: &StepInput<'_>, r: &Ref) -> Result<String, StepError> {
    resolve(input, r, |l| l.volume_id.as_ref())
}

fn instance_of(input: &StepInput<'_>, r: Option<&Ref>) -> Result<String, StepError> {
    let r = r.ok_or_else(|| {
        StepError::permanent(
            "MissingParameter",
            format!("step {} names no instance", input.step.id),
        )
    })?;
    resolve(input, r, |l| l.instance_id.as_ref())
}

/// The step's tags ([`StepInput::created_tags`]) as EC2 tags.
pub(crate) fn step_tags(input: &StepInput<'_>, extra: &[(&str, &str)]) -> Vec<Tag> {
    input
        .created_tags(extra)
        .into_iter()
        .map(|(k, v)| Tag::builder().key(k).value(v).build())
        .collect()
}

pub(crate) fn tag_spec(kind: ResourceType, tags: Vec<Tag>) -> TagSpecification {
    TagSpecification::builder()
        .resource_type(kind)
        .set_tags(Some(tags))
        .build()
}

/// What a plan view holds of this step (its `asdr:step` tag).
fn of_step<T: Clone>(
    all: &[T],
    input: &StepInput<'_>,
    tags_of: impl Fn(&T) -> &BTreeMap<String, String>,
) -> Vec<T> {
    all.iter()
        .filter(|r| tags_of(r).get(tags::STEP) == Some(&input.step.id))
        .cloned()
        .collect()
}

fn mine(input: &StepInput<'_>) -> Vec<Filter> {
    vec![
        filter(&format!("tag:{}", tags::PLAN), input.plan_id),
        filter(&format!("tag:{}", tags::STEP), &input.step.id),
    ]
}

impl Ec2Provider {
    async fn snapshots_by(
        &self,
        filters: Vec<Filter>,
    ) -> Result<Vec<asdr_planner::world::Snapshot>, StepError> {
        self.snapshots(filters).await
    }

    /// The snapshot a wait_snapshot step is about: by id, or by set, node and device.
    /// The snapshots this step made. Everything a plan made before this process started is in
    /// one DescribeSnapshots of the plan, made once and shared by every step; a step this process
    /// has acted on (a retry after an answer that was lost) is described afresh.
    async fn snapshots_of_step(
        &self,
        input: &StepInput<'_>,
    ) -> Result<Vec<asdr_planner::world::Snapshot>, StepError> {
        let key = (input.plan_id.to_string(), input.step.id.clone());
        let mut views = self.plan_views.lock().await;
        if views.acted.contains(&key) {
            drop(views);
            return self.snapshots_by(mine(input)).await;
        }
        if !views.snapshots.contains_key(input.plan_id) {
            let all = self
                .snapshots_by(vec![filter(&format!("tag:{}", tags::PLAN), input.plan_id)])
                .await?;
            views.snapshots.insert(input.plan_id.to_string(), all);
        }
        Ok(of_step(&views.snapshots[input.plan_id], input, |s| &s.tags))
    }

    /// The volumes this step made, as `snapshots_of_step` finds snapshots.
    async fn volumes_of_step(
        &self,
        input: &StepInput<'_>,
    ) -> Result<Vec<asdr_planner::world::Volume>, StepError> {
        let key = (input.plan_id.to_string(), input.step.id.clone());
        let mut views = self.plan_views.lock().await;
        let mut found = BTreeMap::new();
        if views.acted.contains(&key) {
            drop(views);
            self.volumes(mine(input), &mut found).await?;
            return Ok(found.into_values().collect());
        }
        if !views.volumes.contains_key(input.plan_id) {
            self.volumes(
                vec![filter(&format!("tag:{}", tags::PLAN), input.plan_id)],
                &mut found,
            )
            .await?;
            views
                .volumes
                .insert(input.plan_id.to_string(), found.into_values().collect());
        }
        Ok(of_step(&views.volumes[input.plan_id], input, |v| &v.tags))
    }

    /// The instances this step launched, as `snapshots_of_step` finds snapshots.
    async fn instances_of_step(
        &self,
        input: &StepInput<'_>,
    ) -> Result<Vec<asdr_planner::world::Instance>, StepError> {
        let key = (input.plan_id.to_string(), input.step.id.clone());
        let mut views = self.plan_views.lock().await;
        let mut found = BTreeMap::new();
        if views.acted.contains(&key) {
            drop(views);
            self.instances(mine(input), &mut found).await?;
            return Ok(found.into_values().collect());
        }
        if !views.instances.contains_key(input.plan_id) {
            self.instances(
                vec![filter(&format!("tag:{}", tags::PLAN), input.plan_id)],
                &mut found,
            )
            .await?;
            views
                .instances
                .insert(input.plan_id.to_string(), found.into_values().collect());
        }
        Ok(of_step(&views.instances[input.plan_id], input, |i| &i.tags))
    }

    /// From now on, this step's evidence is looked up afresh.
    pub(super) async fn acting_on(&self, input: &StepInput<'_>) {
        self.plan_views
            .lock()
            .await
            .acted
            .insert((input.plan_id.to_string(), input.step.id.clone()));
    }

    /// The snapshots of this cluster's `set`, from one DescribeSnapshots shared by every wait on
    /// the set within `set_view_fresh` (the lock is held across the call: concurrent waits queue
    /// behind the one that asks, then read its answer). A wait whose snapshots (`made`) the view
    /// predates asks for a newer one, but views are described at most once per
    /// `set_view_newer`: the waits of nodes snapshotted one after another share a few calls, not
    /// one each.
    async fn set_view(
        &self,
        set: &str,
        made: &[&String],
    ) -> Result<Vec<asdr_planner::world::Snapshot>, StepError> {
        loop {
            let mut views = self.set_views.lock().await;
            match views.get(set) {
                Some((at, snaps))
                    if at.elapsed() < self.set_view_fresh
                        && made.iter().all(|id| snaps.iter().any(|s| &&s.id == id)) =>
                {
                    return Ok(snaps.clone());
                }
                Some((at, _)) if at.elapsed() < self.set_view_newer => {
                    let newer_at = *at + self.set_view_newer;
                    drop(views);
                    tokio::time::sleep_until(newer_at).await;
                }
                _ => {
                    let snaps = self
                        .snapshots_by(vec![
                            filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                            filter(&format!("tag:{}", tags::SET), set),
                        ])
                        .await?;
                    views.insert(
                        set.to_string(),
                        (tokio::time::Instant::now(), snaps.clone()),
                    );
                    return Ok(snaps);
                }
            }
        }
    }

    async fn wait_target(
        &self,
        input: &StepInput<'_>,
        p: &params::WaitSnapshot,
    ) -> Result<Option<asdr_planner::world::Snapshot>, StepError> {
        // Waits of a backup know their set: one view of it answers them all.
        if let Some(set) = &p.set {
            // The snapshots the step this wait follows made: the view must show them.
            let made: Vec<&String> = input
                .step
                .depends_on
                .iter()
                .filter_map(|d| input.learned.get(d))
                .flat_map(|l| l.snapshot_ids.iter().chain(&l.snapshot_id))
                .collect();
            let view = self.set_view(set, &made).await?;
            let found = match &p.snapshot_id {
                Some(id) => view.into_iter().find(|s| &s.id == id),
                // In a copy region a failed copy of another run is not the answer (it is copied
                // again beside it), but the copy this plan made failing is: its reason is said,
                // not waited out. At home a failed snapshot is the wait's answer (the set is not
                // finished).
                None => {
                    let mine = |s: &asdr_planner::world::Snapshot| {
                        let t = |k: &str| s.tags.get(k).map(String::as_str);
                        tags::of_id(&s.tags, p.cluster_id.as_deref())
                            && t(tags::NODE) == p.node.as_deref()
                            && match t(tags::DEVICE) {
                                Some(d) => Some(d) == p.device.as_deref(),
                                // Not tagged yet: the snapshot of this wait's volume that a step
                                // of this plan made, never another run's.
                                None => {
                                    p.volume_id.as_ref() == Some(&s.volume_id)
                                        && t(tags::PLAN) == Some(input.plan_id)
                                }
                            }
                    };
                    let copy_region = input.step.region.is_some();
                    let (failed, live): (Vec<_>, Vec<_>) = view
                        .into_iter()
                        .filter(|s| mine(s))
                        .partition(|s| s.state == SnapshotState::Error);
                    live.into_iter().next().or_else(|| {
                        failed.into_iter().find(|s| {
                            !copy_region
                                || s.tags.get(tags::PLAN).map(String::as_str) == Some(input.plan_id)
                        })
                    })
                }
            };
            if found.is_some() || p.snapshot_id.is_none() {
                return Ok(found);
            }
        }
        if let Some(id) = &p.snapshot_id {
            return Ok(self
                .snapshots_by(vec![filter("snapshot-id", id)])
                .await?
                .into_iter()
                .next());
        }
        let f = |k: &str, v: &Option<String>| -> Result<Filter, StepError> {
            let v = v.as_deref().ok_or_else(|| {
                StepError::permanent(
                    "MissingParameter",
                    format!(
                        "step {} names neither a snapshot nor its {k}",
                        input.step.id
                    ),
                )
            })?;
            Ok(filter(&format!("tag:{k}"), v))
        };
        Ok(self
            .snapshots_by(vec![
                filter(&format!("tag:{}", tags::CLUSTER), &self.cluster),
                f(tags::SET, &p.set)?,
                f(tags::NODE, &p.node)?,
                f(tags::DEVICE, &p.device)?,
            ])
            .await?
            .into_iter()
            .find(|s| tags::of_id(&s.tags, p.cluster_id.as_deref())))
    }

    /// The snapshot a wait is for, with its `asdr:device` tag: the snapshot of a multi-volume
    /// step carries only the tags CreateSnapshots gave all its snapshots alike, and the wait
    /// tags it (one CreateTags per device for every wait of the set asking at about the same
    /// time). Waits take no executor slot, so all of a set's waits batch together whatever the
    /// parallelism, and the tagging stays out of the nodes' write-stop windows.
    async fn wait_target_tagged(
        &self,
        input: &StepInput<'_>,
        p: &params::WaitSnapshot,
    ) -> Result<Option<asdr_planner::world::Snapshot>, StepError> {
        // Known from the step that made it: tagged at once, before any view shows it, so the
        // waits tag together as their snapshots are made.
        if let (Some(id), Some(device)) = (self.untagged_made(input, p), &p.device) {
            self.tag_device_once(&id, device).await?;
        }
        let Some(mut s) = self.wait_target(input, p).await? else {
            return Ok(None);
        };
        if let (Some(device), Some(set)) = (&p.device, &p.set)
            && !s.tags.contains_key(tags::DEVICE)
        {
            self.tag_device_once(&s.id, device).await?;
            s.tags.insert(tags::DEVICE.into(), device.clone());
            // The set's shared view learns it too.
            if let Some((_, view)) = self.set_views.lock().await.get_mut(set)
                && let Some(v) = view.iter_mut().find(|v| v.id == s.id)
            {
                v.tags.insert(tags::DEVICE.into(), device.clone());
            }
        }
        Ok(Some(s))
    }

    /// The snapshot of the wait's volume that the step it follows made, unless this process
    /// has given it its device tag already.
    fn untagged_made(&self, input: &StepInput<'_>, p: &params::WaitSnapshot) -> Option<String> {
        p.device.as_ref()?;
        let id = input
            .step
            .depends_on
            .iter()
            .filter_map(|d| input.learned.get(d))
            .flat_map(|l| &l.snapshot_volumes)
            .find(|(_, v)| Some(*v) == p.volume_id.as_ref())
            .map(|(id, _)| id.clone())?;
        let tagged = self.device_tagged.lock().expect("not poisoned");
        (!tagged.contains(&id)).then_some(id)
    }

    /// The `asdr:device` tag, unless this process gave it already.
    async fn tag_device_once(&self, snapshot: &str, device: &str) -> Result<(), StepError> {
        if self
            .device_tagged
            .lock()
            .expect("not poisoned")
            .contains(snapshot)
        {
            return Ok(());
        }
        self.tag_together(tags::DEVICE, device, vec![snapshot.to_string()])
            .await?;
        self.device_tagged
            .lock()
            .expect("not poisoned")
            .insert(snapshot.to_string());
        Ok(())
    }
}

impl Provider for Ec2Provider {
    /// The addresses a plan's launches check and the volumes and instances its steps name
    /// by id join the first describe of their view (each region's provider its own).
    fn expect(&self, _plan_id: &str, steps: &[asdr_planner::plan::Step]) {
        for s in steps {
            let Ok(this) = self.for_region(s.region.as_deref()) else {
                continue;
            };
            let v = &this.views;
            match &s.params {
                Params::ProvisionInstance(p) => v.holders.expect([p.private_ip.clone()]),
                Params::StopInstance(p) => v.instances.expect([p.instance_id.clone()]),
                Params::TerminateInstance(p) => v.instances.expect([p.instance_id.clone()]),
                Params::DetachVolume(p) => v.volumes.expect([p.volume_id.clone()]),
                Params::DeleteVolume(p) => v.volumes.expect([p.volume_id.clone()]),
                Params::AttachVolume(p) => v.volumes.expect(p.volume_id.known().map(String::from)),
                Params::WaitVolume(p) => v.volumes.expect(p.volume_id.known().map(String::from)),
                _ => {}
            }
        }
    }

    // A step that acts in another region goes to that region's provider (its own client, views
    // and batches).
    async fn observe(&self, input: StepInput<'_>) -> Result<Option<Resources>, StepError> {
        let this = self.for_region(input.step.region.as_deref())?;
        match family(input.step.kind()) {
            Some(Family::Instances) => this.observe_instances(input).await,
            Some(Family::Volumes) => this.observe_volumes(input).await,
            Some(Family::Snapshots) => this.observe_snapshots(input).await,
            None => Ok(None),
        }
    }

    async fn act(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let this = self.for_region(input.step.region.as_deref())?;
        let kind = input.step.kind();
        // A copy into a backup account: the cluster's account shares the source first (the
        // backup account's role, which copies it, can read nothing else of ours).
        if let Params::CopySnapshot(p) = &input.step.params
            && let Some(account) = &p.share_with
            && input.step.region.is_some()
        {
            self.share_source(&input, p, account).await?;
        }
        let done = match family(kind) {
            Some(Family::Instances) => this.act_instances(input).await,
            Some(Family::Volumes) => this.act_volumes(input).await,
            Some(Family::Snapshots) => this.act_snapshots(input).await,
            None => Err(StepError::permanent(
                "NotACloudStep",
                format!("{} is not carried out on EC2", input.step.kind()),
            )),
        };
        match done {
            Err(e) => match passes_with_time(kind, &e.code) {
                Some(why) => Progress::pending(format!("{why} ({})", e.message), None),
                None => Err(e),
            },
            done => done,
        }
    }
}

/// Refusals that pass with time, not with a retry or two: the step waits (polled until its
/// deadline, like any wait) instead of failing after a few attempts. None of them made anything,
/// so asking again is safe.
fn passes_with_time(kind: StepKind, code: &str) -> Option<&'static str> {
    Some(match (kind, code) {
        // EBS: at most 5 pending snapshots per gp/io volume (1 for st1/sc1). Waited for only by
        // a multi-volume snapshot, whose node stays in service: a single-volume snapshot is taken
        // with its node quiesced or stopped, and holding the node out of service for a quota that
        // takes hours to clear would only lengthen the window (it fails, and the node is brought
        // back).
        (StepKind::SnapshotInstance, "ConcurrentSnapshotLimitExceeded") => {
            "the volumes have as many snapshots pending as EBS allows: waiting for them to complete"
        }
        // EBS: 20 concurrent copies per destination region, shared with every other copier.
        (StepKind::CopySnapshot, "ResourceLimitExceeded") => {
            "as many snapshot copies are in flight into this region as EBS allows (20, for the whole account): waiting for some to complete"
        }
        (StepKind::ProvisionInstance, "InsufficientInstanceCapacity") => {
            "EC2 has no capacity for this instance type in this zone now: asking again until the step's deadline"
        }
        // A volume of an instance just terminated stays attached until the termination ends.
        (StepKind::DeleteVolume, "VolumeInUse") => {
            "the volume is still attached (a terminating instance releases it): waiting for it to be released"
        }
        _ => return None,
    })
}

/// The resource family a step kind acts on, as in the world simulation.
enum Family {
    Instances,
    Volumes,
    Snapshots,
}

fn family(kind: StepKind) -> Option<Family> {
    match kind {
        StepKind::ProvisionInstance
        | StepKind::TerminateInstance
        | StepKind::StopInstance
        | StepKind::MarkRestoreComplete
        | StepKind::ClaimCluster => Some(Family::Instances),
        StepKind::CreateVolume
        | StepKind::WaitVolume
        | StepKind::AttachVolume
        | StepKind::DetachVolume
        | StepKind::DeleteVolume => Some(Family::Volumes),
        StepKind::SnapshotInstance
        | StepKind::Snapshot
        | StepKind::WaitSnapshot
        | StepKind::MarkSetComplete
        | StepKind::DeleteSnapshot
        | StepKind::CopySnapshot
        | StepKind::LockSnapshots
        | StepKind::FastSnapshotRestore => Some(Family::Snapshots),
        _ => None,
    }
}

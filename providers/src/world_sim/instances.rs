//! Instances: RunInstances with the address held until the old instance is gone, StopInstances,
//! TerminateInstances (DeleteOnTermination volumes go with the instance, the others are detached).

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    match &input.step.params {
        Params::TerminateInstance(p) => world
            .instances
            .iter()
            .find(|i| i.id == p.instance_id)
            .filter(|i| i.state == InstanceState::Terminated)
            .and_then(|_| found()),
        Params::StopInstance(p) => world
            .instances
            .iter()
            .find(|i| i.id == p.instance_id)
            .filter(|i| stop_done(p, i.state))
            .and_then(|_| found()),
        Params::ProvisionInstance(_) => world
            .instances
            .iter()
            .find(|i| made_by(&i.tags, input) && i.state != InstanceState::Terminated)
            .map(|i| Learned::instance(i.id.clone())),
        Params::ClaimCluster(p) => p
            .instances
            .iter()
            .all(|id| {
                world
                    .instances
                    .iter()
                    .all(|i| &i.id != id || i.tags.get(tags::CLUSTER_ID) == Some(&p.cluster_id))
            })
            .then(Resources::new),
        Params::MarkRestoreComplete(p) => {
            let ids: Vec<String> = p
                .instances
                .iter()
                .map(|r| need(input, r, |l| l.instance_id.as_ref()))
                .collect::<Result<_, _>>()
                .ok()?;
            ids.iter()
                .all(|id| {
                    world
                        .instances
                        .iter()
                        .any(|i| &i.id == id && p.tag.keys().all(|k| i.tags.contains_key(k)))
                })
                .then(Resources::new)
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
        Params::ClaimCluster(p) => {
            for id in &p.instances {
                let Some(i) = world.instances.iter_mut().find(|i| &i.id == id) else {
                    continue;
                };
                match i.tags.get(tags::CLUSTER_ID) {
                    Some(have) if have != &p.cluster_id => {
                        return Err(bad(
                            "R13",
                            format!(
                                "[R13] instance {id} carries {}={have}, not {}: another cluster's; asdr does not retag it",
                                tags::CLUSTER_ID,
                                p.cluster_id
                            ),
                        ));
                    }
                    _ => {
                        i.tags.insert(tags::CLUSTER_ID.into(), p.cluster_id.clone());
                    }
                }
            }
            Progress::finished()
        }
        Params::MarkRestoreComplete(p) => {
            for r in &p.instances {
                let id = need(input, r, |l| l.instance_id.as_ref())?;
                let i = instance_mut(world, &id)?;
                i.tags.extend(p.tag.clone());
            }
            Progress::finished()
        }
        Params::StopInstance(p) => {
            let id = &p.instance_id;
            let i = instance_mut(world, id)?;
            match i.state {
                InstanceState::Stopped | InstanceState::Terminated => Progress::finished(),
                InstanceState::Stopping => {
                    i.state = InstanceState::Stopped;
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::finished()
                }
                _ if p.wait_until == asdr_planner::params::STOP_REQUESTED => {
                    // Requested, not waited for (an instance in a lost zone): the simulated
                    // zone answers, so it stops at once.
                    i.state = InstanceState::Stopped;
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::finished()
                }
                _ => {
                    i.state = InstanceState::Stopping;
                    Progress::pending(format!("{id} stopping"), None)
                }
            }
        }
        Params::TerminateInstance(p) => {
            let id = p.instance_id.clone();
            let i = instance_mut(world, &id)?;
            match i.state {
                InstanceState::Terminated => Progress::finished(),
                InstanceState::ShuttingDown => {
                    // Terminated: DeleteOnTermination volumes go with it, the others are detached.
                    i.state = InstanceState::Terminated;
                    i.private_ip = None;
                    let devices = std::mem::take(&mut i.block_devices);
                    for b in devices {
                        if b.delete_on_termination {
                            world.volumes.retain(|v| v.id != b.volume_id);
                        } else if let Some(v) =
                            world.volumes.iter_mut().find(|v| v.id == b.volume_id)
                        {
                            v.attachments.retain(|a| a.instance_id != id);
                            v.state = VolumeState::Available;
                        }
                    }
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::finished()
                }
                _ => {
                    i.state = InstanceState::ShuttingDown;
                    Progress::pending(format!("{id} shutting down"), None)
                }
            }
        }
        Params::ProvisionInstance(p) => {
            // A zone-loss replacement never launches beside its old instance running again: it
            // is stopped first (the simulated zone answers, so at once).
            if let Some(old) = &p.stopped_first
                && let Some(i) = world.instances.iter_mut().find(|i| {
                    &i.id == old
                        && matches!(i.state, InstanceState::Running | InstanceState::Pending)
                })
            {
                i.state = InstanceState::Stopped;
                return Progress::pending(
                    format!("{old}, the node's old instance, runs again: stopped first"),
                    None,
                );
            }
            let ip = p.private_ip.clone();
            // An address is taken only in the same region: VPCs (and their subnets) are
            // regional, so a restore elsewhere may reuse the addresses of home.
            if let Some(holder) = world.instances.iter().find(|i| {
                i.state != InstanceState::Terminated
                    && i.private_ip.as_deref() == Some(ip.as_str())
                    && i.region == input.step.region
            }) {
                return Err(StepError::transient(
                    "InvalidIPAddress.InUse",
                    format!("Address {ip} is in use by {}", holder.id),
                    retry,
                ));
            }
            let id = format!("i-{}", token(input.plan_id, &step.id, ""));
            let instance_type = p.instance_type.clone();
            let drives = world
                .instance_types
                .get(&instance_type)
                .map_or(p.instance_store_volumes, |t| t.instance_store_drives);
            world.instances.push(Instance {
                // Launched where the step acts (a restore into another region builds there).
                region: step.region.clone(),
                id: id.clone(),
                state: InstanceState::Running,
                instance_type,
                private_ip: Some(ip),
                availability_zone: p.availability_zone.clone(),
                subnet_id: p.subnet_id.clone(),
                instance_store_drives: drives,
                root_device: None,
                state_reason: None,
                block_devices: Vec::new(),
                tags: created_tags(input, &[]),
            });
            if let Some(node) = step.node.as_deref() {
                let n = node_mut(world, node);
                n.reachable = false;
                n.config = None;
                n.namespaces.clear();
                n.smd_restored_from = None;
            }
            Progress::done(Learned::instance(id))
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{} is not carried out here", other.kind()),
        )),
    }
}

/// A stop is done once the instance is stopped, or only asked to stop when the step says so.
pub(super) fn stop_done(p: &asdr_planner::params::StopInstance, state: InstanceState) -> bool {
    matches!(state, InstanceState::Stopped | InstanceState::Terminated)
        || (p.wait_until == asdr_planner::params::STOP_REQUESTED
            && matches!(state, InstanceState::Stopping | InstanceState::ShuttingDown))
}

//! Instances: RunInstances with the address held until the old instance is gone, StopInstances,
//! TerminateInstances (DeleteOnTermination volumes go with the instance, the others are detached).

use super::*;

pub(super) fn observe(world: &World, _cx: &Ctx<'_>, input: &StepInput<'_>) -> Option<Resources> {
    let step = input.step;
    match step.kind {
        StepKind::TerminateInstance => {
            let id = input.param_str("instance_id", "instance_id")?;
            world
                .instances
                .iter()
                .find(|i| i.id == id)
                .filter(|i| i.state == InstanceState::Terminated)
                .and_then(|_| r(&[]))
        }
        StepKind::StopInstance => {
            let id = input.param_str("instance_id", "instance_id")?;
            world
                .instances
                .iter()
                .find(|i| i.id == id)
                .filter(|i| matches!(i.state, InstanceState::Stopped | InstanceState::Terminated))
                .and_then(|_| r(&[]))
        }
        StepKind::ProvisionInstance => world
            .instances
            .iter()
            .find(|i| made_by(&i.tags, input) && i.state != InstanceState::Terminated)
            .and_then(|i| r(&[("instance_id", json!(i.id))])),
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
    match step.kind {
        StepKind::StopInstance => {
            let id = need(input, "instance_id", "instance_id")?;
            let i = instance_mut(world, &id)?;
            match i.state {
                InstanceState::Stopped | InstanceState::Terminated => Progress::done(&[]),
                InstanceState::Stopping => {
                    i.state = InstanceState::Stopped;
                    if let Some(node) = input.step.node.as_deref() {
                        node_mut(world, node).reachable = false;
                        recluster(world);
                    }
                    Progress::done(&[])
                }
                _ => {
                    i.state = InstanceState::Stopping;
                    Progress::pending(format!("{id} stopping"), None)
                }
            }
        }
        StepKind::TerminateInstance => {
            let id = need(input, "instance_id", "instance_id")?;
            let i = instance_mut(world, &id)?;
            match i.state {
                InstanceState::Terminated => Progress::done(&[]),
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
                    Progress::done(&[])
                }
                _ => {
                    i.state = InstanceState::ShuttingDown;
                    Progress::pending(format!("{id} shutting down"), None)
                }
            }
        }
        StepKind::ProvisionInstance => {
            let ip = need(input, "private_ip", "")?;
            if let Some(holder) = world.instances.iter().find(|i| {
                i.state != InstanceState::Terminated && i.private_ip.as_deref() == Some(ip.as_str())
            }) {
                return Err(StepError::transient(
                    "InvalidIPAddress.InUse",
                    format!("Address {ip} is in use by {}", holder.id),
                    retry,
                ));
            }
            let id = format!("i-{}", token(input.plan_id, &step.id, ""));
            let instance_type = need(input, "instance_type", "")?;
            let drives = world
                .instance_types
                .get(&instance_type)
                .map(|t| t.instance_store_drives)
                .unwrap_or_else(|| {
                    step.params
                        .get("instance_store_volumes")
                        .and_then(Value::as_u64)
                        .unwrap_or(0) as u32
                });
            world.instances.push(Instance {
                id: id.clone(),
                state: InstanceState::Running,
                instance_type,
                private_ip: Some(ip),
                availability_zone: need(input, "availability_zone", "")?,
                subnet_id: input.param_str("subnet_id", ""),
                instance_store_drives: drives,
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
            Progress::done(&[("instance_id", json!(id))])
        }
        other => Err(bad(
            "NotThisFamily",
            format!("{other} is not carried out here"),
        )),
    }
}

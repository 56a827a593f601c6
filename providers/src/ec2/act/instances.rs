//! Instances on EC2: RunInstances (address, subnet, client token, tags at creation), StopInstances,
//! TerminateInstances, each waited for.

use super::*;

/// Launches of one step that EC2 ends at once before the step fails.
const MAX_LAUNCHES: usize = 3;

impl Ec2Provider {
    /// The instance and its address, changed by this process just now.
    fn changed_instance(&self, i: Option<&asdr_planner::world::Instance>) {
        if let Some(i) = i {
            self.views.instances.changed(&i.id);
            if let Some(ip) = &i.private_ip {
                self.views.holders.changed(ip);
            }
        }
    }

    pub(super) async fn observe_instances(
        &self,
        input: StepInput<'_>,
    ) -> Result<Option<Resources>, StepError> {
        Ok(match &input.step.params {
            Params::StopInstance(p) => self
                .instance(&p.instance_id)
                .await?
                .filter(|i| {
                    matches!(i.state, InstanceState::Stopped | InstanceState::Terminated)
                        || (p.wait_until == asdr_planner::params::STOP_REQUESTED
                            && matches!(
                                i.state,
                                InstanceState::Stopping | InstanceState::ShuttingDown
                            ))
                })
                .map(|_| Resources::new()),
            Params::TerminateInstance(p) => self
                .instance(&p.instance_id)
                .await?
                .filter(|i| i.state == InstanceState::Terminated)
                .map(|_| Resources::new()),
            Params::ProvisionInstance(_) => self
                .instances_of_step(&input)
                .await?
                .into_iter()
                .find(|i| i.state == InstanceState::Running)
                .map(|i| Learned::instance(i.id)),
            Params::ClaimCluster(p) => {
                let found = self.instances_by_id(&p.instances).await?;
                let mut all = true;
                for id in &p.instances {
                    all &= claimed(id, found.get(id), &p.cluster_id)?;
                }
                all.then(Resources::new)
            }
            Params::MarkRestoreComplete(p) => {
                let mut all = true;
                for r in &p.instances {
                    let id = resolve(&input, r, |l| l.instance_id.as_ref())?;
                    let tagged = self
                        .instance(&id)
                        .await?
                        .is_some_and(|i| p.tag.keys().all(|k| i.tags.contains_key(k)));
                    all &= tagged;
                }
                all.then(Resources::new)
            }
            _ => None,
        })
    }

    pub(super) async fn act_instances(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match &step.params {
            Params::ClaimCluster(p) => {
                // Checked right before: an instance another cluster claimed meanwhile is refused,
                // never retagged.
                let found = self.instances_by_id(&p.instances).await?;
                let mut ids = Vec::new();
                for id in &p.instances {
                    if !claimed(id, found.get(id), &p.cluster_id)? {
                        ids.push(id.clone());
                    }
                }
                for chunk in ids.chunks(super::MAX_TAGGED) {
                    self.client
                        .create_tags()
                        .set_resources(Some(chunk.to_vec()))
                        .tags(
                            Tag::builder()
                                .key(tags::CLUSTER_ID)
                                .value(&p.cluster_id)
                                .build(),
                        )
                        .send()
                        .await
                        .map_err(|e| self.classify("CreateTags", e))?;
                    for id in &ids {
                        self.views.instances.changed(id);
                    }
                }
                Progress::finished()
            }
            Params::MarkRestoreComplete(p) => {
                let ids = p
                    .instances
                    .iter()
                    .map(|r| resolve(&input, r, |l| l.instance_id.as_ref()))
                    .collect::<Result<Vec<_>, _>>()?;
                for chunk in ids.chunks(super::MAX_TAGGED) {
                    let mut call = self
                        .client
                        .create_tags()
                        .set_resources(Some(chunk.to_vec()));
                    for (k, v) in &p.tag {
                        call = call.tags(Tag::builder().key(k).value(v).build());
                    }
                    call.send()
                        .await
                        .map_err(|e| self.classify("CreateTags", e))?;
                }
                for id in &ids {
                    self.views.instances.changed(id);
                }
                Progress::finished()
            }
            Params::StopInstance(p) => {
                let id = &p.instance_id;
                let found = self.instance(id).await?;
                match found.as_ref().map(|i| i.state) {
                    None | Some(InstanceState::Stopped | InstanceState::Terminated) => {
                        Progress::finished()
                    }
                    // Only asked to stop (an instance in a lost zone, which stops when the zone
                    // comes back): accepted is done.
                    Some(InstanceState::Stopping | InstanceState::ShuttingDown)
                        if p.wait_until == asdr_planner::params::STOP_REQUESTED =>
                    {
                        Progress::finished()
                    }
                    Some(InstanceState::Stopping | InstanceState::ShuttingDown) => {
                        Progress::pending(format!("{id} stopping"), None)
                    }
                    Some(_) => {
                        if p.terminating {
                            self.check_terminable(id).await?;
                        }
                        // Force: the instance is not answering; its volumes are what matters.
                        self.client
                            .stop_instances()
                            .instance_ids(id)
                            .force(p.force)
                            .send()
                            .await
                            .map_err(|e| self.classify("StopInstances", e))?;
                        self.changed_instance(found.as_ref());
                        if p.wait_until == asdr_planner::params::STOP_REQUESTED {
                            Progress::finished()
                        } else {
                            Progress::pending(format!("{id} stopping"), None)
                        }
                    }
                }
            }
            Params::TerminateInstance(p) => {
                let id = &p.instance_id;
                let found = self.instance(id).await?;
                match found.as_ref().map(|i| i.state) {
                    None | Some(InstanceState::Terminated) => Progress::finished(),
                    Some(InstanceState::ShuttingDown) => {
                        Progress::pending(format!("{id} shutting down"), None)
                    }
                    Some(_) => {
                        self.client
                            .terminate_instances()
                            .instance_ids(id)
                            .send()
                            .await
                            .map_err(|e| self.classify("TerminateInstances", e))?;
                        self.changed_instance(found.as_ref());
                        Progress::pending(format!("{id} shutting down"), None)
                    }
                }
            }
            Params::ProvisionInstance(p) => {
                let ip = &p.private_ip;
                // The old instance may still hold the address (shutting down): wait it out rather
                // than have RunInstances fail (moto answers that with a bare 500).
                // Only an instance in the launch's subnet holds its address: the same address in
                // another subnet is another VPC's (subnets of one VPC never overlap).
                let holders: Vec<_> = self
                    .holders(ip)
                    .await?
                    .into_iter()
                    .filter(|i| match (i.subnet_id.as_deref(), p.subnet_id.as_deref()) {
                        (Some(theirs), Some(ours)) => theirs == ours,
                        _ => true,
                    })
                    .collect();
                if let Some(h) = holders.iter().find(|i| {
                    !(i.tags.get(tags::PLAN).map(String::as_str) == Some(input.plan_id)
                        && i.tags.get(tags::STEP) == Some(&step.id))
                }) {
                    return Err(StepError::transient(
                        "InvalidIPAddress.InUse",
                        format!("Address {ip} is in use by {}", h.id),
                        Duration::from_secs(5),
                    ));
                }
                if let Some(mine) = holders.into_iter().next() {
                    return if mine.state == InstanceState::Running {
                        Progress::done(Learned::instance(mine.id))
                    } else {
                        Progress::pending(format!("{} {:?}", mine.id, mine.state), None)
                    };
                }
                // A zone-loss replacement never launches beside its old instance running again
                // (the lost zone came back, e.g. between a failure and the resume): it is asked
                // to stop first, and the launch waits until it no longer runs.
                if let Some(old) = &p.stopped_first
                    && let Some(i) = self.instance(old).await?
                    && matches!(i.state, InstanceState::Running | InstanceState::Pending)
                {
                    self.client
                        .stop_instances()
                        .instance_ids(old)
                        .send()
                        .await
                        .map_err(|e| self.classify("StopInstances", e))?;
                    self.changed_instance(Some(&i));
                    return Progress::pending(
                        format!(
                            "{old}, the node's old instance in {}, runs again: asked to stop before the replacement launches",
                            i.availability_zone
                        ),
                        None,
                    );
                }
                // A launch EC2 ended at once (no capacity, a bad image, a key it cannot use): the
                // same client token would only name that terminated instance again (for hours),
                // so each attempt has its own, and the reason is said.
                let ended: Vec<asdr_planner::world::Instance> = self
                    .instances_of_step(&input)
                    .await?
                    .into_iter()
                    .filter(|i| {
                        matches!(
                            i.state,
                            InstanceState::Terminated | InstanceState::ShuttingDown
                        )
                    })
                    .collect();
                let reasons: Vec<String> = ended
                    .iter()
                    .map(|i| {
                        format!(
                            "{} ended: {}",
                            i.id,
                            i.state_reason.as_deref().unwrap_or("no reason given")
                        )
                    })
                    .collect();
                if ended.len() >= MAX_LAUNCHES {
                    return Err(StepError::permanent(
                        "LaunchEnded",
                        format!(
                            "{MAX_LAUNCHES} launches for {} at {ip} ended at once: {}",
                            step.id,
                            reasons.join("; ")
                        ),
                    ));
                }
                let token_of = if ended.is_empty() {
                    step.id.clone()
                } else {
                    format!("{}#{}", step.id, ended.len())
                };
                let subnet = p.subnet_id.as_deref().ok_or_else(|| {
                    StepError::permanent(
                        "MissingParameter",
                        format!("step {} names no subnet", step.id),
                    )
                })?;
                let run = self.run_request(&input, p, subnet, &token_of);
                self.acting_on(&input).await;
                let out = run
                    .send()
                    .await
                    .map_err(|e| self.classify("RunInstances", e))?;
                self.views.holders.changed(ip);
                let id = out
                    .instances()
                    .first()
                    .and_then(|i| i.instance_id())
                    .unwrap_or_default()
                    .to_string();
                if reasons.is_empty() {
                    Progress::pending(format!("{id} launching"), None)
                } else {
                    Progress::pending(
                        format!("{id} launching again ({})", reasons.join("; ")),
                        None,
                    )
                }
            }
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{} is not an EC2 instances step", other.kind()),
            )),
        }
    }
}

/// Whether instance `id` carries the cluster id `want` already (gone: nothing to claim); one that
/// carries another is another cluster's, and the claim is refused (R13).
fn claimed(
    id: &str,
    i: Option<&asdr_planner::world::Instance>,
    want: &str,
) -> Result<bool, StepError> {
    match i.map(|i| i.tags.get(tags::CLUSTER_ID)) {
        None => Ok(true),
        Some(None) => Ok(false),
        Some(Some(have)) if have == want => Ok(true),
        Some(Some(have)) => Err(StepError::permanent(
            "R13",
            format!(
                "[R13] instance {id} carries {}={have}, not {want}: another cluster's; asdr does not retag it",
                tags::CLUSTER_ID
            ),
        )),
    }
}

impl Ec2Provider {
    /// The RunInstances request of a provision step, as apply sends it (and `drill --check` asks
    /// it with DryRun): the address on an explicit primary interface, the instance, its root
    /// volume and its interface tagged for the cluster, the profile and key.
    pub(crate) fn run_request(
        &self,
        input: &StepInput<'_>,
        p: &params::ProvisionInstance,
        subnet: &str,
        token_of: &str,
    ) -> aws_sdk_ec2::operation::run_instances::builders::RunInstancesFluentBuilder {
        let ip = &p.private_ip;
        // The address on an explicit primary interface that goes with the instance: the same
        // as SubnetId + PrivateIpAddress on EC2, and said out loud, so a later replacement
        // finds the address free once this instance is terminated.
        let nic = aws_sdk_ec2::types::InstanceNetworkInterfaceSpecification::builder()
            .device_index(0)
            .subnet_id(subnet)
            .private_ip_address(ip)
            .set_groups((!p.security_groups.is_empty()).then(|| p.security_groups.clone()))
            .delete_on_termination(true)
            .build();
        let mut run = self
            .client
            .run_instances()
            .image_id(&p.ami)
            .instance_type(aws_sdk_ec2::types::InstanceType::from(
                p.instance_type.as_str(),
            ))
            .min_count(1)
            .max_count(1)
            .network_interfaces(nic)
            .client_token(client_token(input.plan_id, token_of))
            .tag_specifications(tag_spec(ResourceType::Instance, step_tags(input, &[])))
            // The root volume and the interface RunInstances creates are tagged for the
            // cluster too: an IAM policy may then require the tag on all it creates.
            .tag_specifications(tag_spec(ResourceType::Volume, step_tags(input, &[])))
            .tag_specifications(tag_spec(
                ResourceType::NetworkInterface,
                step_tags(input, &[]),
            ));
        if let Some(profile) = &p.iam_instance_profile {
            run = run.iam_instance_profile(
                aws_sdk_ec2::types::IamInstanceProfileSpecification::builder()
                    .name(profile)
                    .build(),
            );
        }
        if let Some(key) = &p.key_name {
            run = run.key_name(key);
        }
        run
    }
}

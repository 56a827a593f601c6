//! Instances on EC2: RunInstances (address, subnet, client token, tags at creation), StopInstances,
//! TerminateInstances, each waited for.

use super::*;

impl Ec2Provider {
    pub(super) async fn observe_instances(
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
            StepKind::StopInstance => self
                .instance(&param(&input, "instance_id", "instance_id")?)
                .await?
                .filter(|i| matches!(i.state, InstanceState::Stopped | InstanceState::Terminated))
                .map(|_| Resources::new()),
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
            _ => None,
        })
    }

    pub(super) async fn act_instances(&self, input: StepInput<'_>) -> Result<Progress, StepError> {
        let step = input.step;
        match step.kind {
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
            other => Err(StepError::permanent(
                "NotThisFamily",
                format!("{other} is not an EC2 instances step"),
            )),
        }
    }
}

//! The steps of one restored node: its volumes made ready, taken out of service, swapped,
//! configured and started.

use super::data::{
    Same, check_instance_type, create_volume, data_for, data_kind, provision_params,
};
use super::placement::{check_not_a_member, replacement_subnet};
use super::*;

/// One data device of a restored node.
pub(super) struct DeviceFlow {
    ebs: String,
    /// The volume to attach: an id, or one this plan creates.
    volume: Ref,
    /// The steps that make that volume ready.
    ready: Vec<String>,
    /// The attachment to remove first.
    old: Option<OldAttachment>,
}

pub(super) struct OldAttachment {
    volume_id: String,
    instance_id: String,
    delete_on_termination: bool,
    /// The volume leaves the node for good (another takes its place): mark it superseded so
    /// `source: current-volumes` never reattaches it.
    superseded: bool,
}

/// The steps of one node, built in two halves: `prepare` (volumes ready, the node out of service)
/// and `finish` (swap, configure, start), so a full-cluster restore can put every stop before
/// every swap (R12).
pub(super) struct NodeFlow<'n> {
    pub(super) node: &'n Node,
    /// The step that took a healthy node out (stop_node), if any.
    pub(super) stop: Option<String>,
    /// The step that stopped a running instance whose Aerospike does not answer, so its volumes
    /// are never detached from a running machine.
    stop_instance: Option<String>,
    /// The instance volumes attach to: the live one, or a replacement from this step.
    instance: Option<Ref>,
    replaced: bool,
    /// The old instance to terminate (id, why), when it still exists.
    old_instance: Option<(String, String)>,
    devices: Vec<DeviceFlow>,
    check: Option<String>,
    subnet: Option<String>,
    /// It joins with an id the strong-consistency roster does not hold: a new instance whose
    /// config sets no `node-id`, or one asdr had to derive (R19).
    pub(super) rejoins_as_new: bool,
    /// A zone-loss restore rebuilds it in another zone: the restore's name, tagged on the
    /// replacement (nothing of the lost zone is detached or terminated).
    moved: Option<String>,
    /// Its old instance in the lost zone (same node id), checked again at launch.
    left_behind: Option<String>,
}

impl<'n> NodeFlow<'n> {
    /// `lane`: the steps this node's stop waits for (R8: the nodes before it are back).
    pub(super) fn prepare(
        ctx: &'n Ctx<'_, '_>,
        restore: &Restore,
        set: Option<&BackupSet<'_>>,
        view: &NodeView<'_>,
        check: Option<String>,
        lane: Vec<String>,
        b: &mut Builder,
    ) -> Result<Self, PlanError> {
        let node = ctx.policy_node(&view.name);
        let replaced = view.health != NodeHealth::Healthy;
        // Moved to another zone: its old volumes cannot follow (EBS is zonal), and nothing is
        // waited for in the zone it leaves, which may not answer.
        let moved = node.moved_from.is_some();
        let base: Vec<String> = check.clone().into_iter().collect();
        let live_old = view
            .instance
            .filter(|i| i.state != InstanceState::Terminated && replaced);
        if view.health == NodeHealth::Unreachable {
            check_not_a_member(ctx, restore, view)?;
        }
        // R5: the config this restore may write names the devices the start will check.
        let rendered = config::render(ctx.policy, node, "");
        config::check_device_lines(ctx.policy, node, &ctx.vars(node), &rendered.content)?;
        let subnet = if replaced {
            Some(replacement_subnet(ctx, node, view, b)?)
        } else {
            None
        };
        let mut devices = Vec::new();
        for d in &view.volumes {
            let data = data_for(ctx, restore, set, view, node, d)?;
            let (volume_ref, ready): (Ref, Vec<String>) = match data {
                Data::Existing(v) => {
                    if replaced {
                        crate::nodes::warn_untagged_volume(ctx, b, &node.name, v, "attach");
                        // The reviewer sees exactly which volume goes back on the node.
                        b.change(
                            format!("volume.{}.{}", node.name, d.ebs),
                            Action::Update,
                            format!(
                                "{} is reattached to the replacement at {} (the volume the node last ran on)",
                                v.id, d.ebs
                            ),
                            Some(json!({"volume_id": v.id, "state": v.state, "attached_to": v.attachments.first().map(|a| a.instance_id.clone())})),
                            Some(json!({"volume_id": v.id, "device": d.ebs, "attached_to": format!("provision_instance:{}", node.name)})),
                        );
                    }
                    (Ref::Known(v.id.clone()), Vec::new())
                }
                other => {
                    let (id, params, change) =
                        create_volume(ctx, restore, node, &d.ebs, &other, set, d)?;
                    let mut deps = base.clone();
                    if let Data::FromSnapshot(s, _) = &other
                        && s.state != SnapshotState::Completed
                    {
                        // R3: volumes come only from completed snapshots.
                        deps.push(b.step(
                            format!("wait_snapshot:{}", s.id),
                            Some(&node.name),
                            base.clone(),
                            Params::WaitSnapshot(params::WaitSnapshot {
                                cluster_id: Some(ctx.cluster_id.to_string()),
                                snapshot_id: Some(s.id.clone()),
                                progress: Some(s.progress),
                                within_minutes: None,
                                set: None,
                                node: None,
                                device: None,
                                volume_id: None,
                            }),
                        ));
                    }
                    b.change(
                        format!("volume.{}.{}", node.name, d.ebs),
                        Action::Create,
                        change,
                        None,
                        serde_json::to_value(&params).ok(),
                    );
                    let created = b.step(
                        id.clone(),
                        Some(&node.name),
                        deps,
                        Params::CreateVolume(params),
                    );
                    let learned = Ref::Learned { from_step: id };
                    let ready = b.step(
                        format!("wait_volume:{}:{}", node.name, d.ebs),
                        Some(&node.name),
                        vec![created],
                        Params::WaitVolume(params::WaitVolume {
                            volume_id: learned.clone(),
                        }),
                    );
                    (learned, vec![ready])
                }
            };
            let same = matches!(data_kind(&volume_ref, d.volume), Same::Yes);
            // The old attachment goes when the volume changes, or when the old instance goes (R7).
            let swapping = !same || live_old.is_some();
            let old = match (d.attached, d.volume, view.instance) {
                (true, Some(old), Some(inst))
                    if swapping && !moved && inst.state != InstanceState::ShuttingDown =>
                {
                    crate::nodes::warn_untagged_volume(ctx, b, &node.name, old, "detach");
                    Some(OldAttachment {
                        volume_id: old.id.clone(),
                        instance_id: inst.id.clone(),
                        delete_on_termination: d.delete_on_termination,
                        superseded: !same,
                    })
                }
                _ => None,
            };
            devices.push(DeviceFlow {
                ebs: d.ebs.clone(),
                volume: volume_ref,
                ready,
                old,
            });
        }
        // Stop a healthy node only when its new volumes are ready (the write-stop window stays
        // short) and its lane's previous node is back (R8).
        let stop = (!replaced).then(|| {
            let mut deps = base.clone();
            deps.extend(lane.iter().cloned());
            for d in &devices {
                deps.extend(d.ready.iter().cloned());
            }
            let mut params = node_params(ctx, node, StepKind::StopNode);
            if let Params::StopNode(p) = &mut params
                && restore.scope == Scope::Cluster
                && restore.source.uses_backup()
            {
                // R12 takes every node down: the rolling limit does not count these stops.
                p.rolling = false;
            }
            b.step(
                format!("stop_node:{}", node.name),
                Some(&node.name),
                deps,
                params,
            )
        });
        // An instance that runs while its Aerospike does not answer is stopped (and waited for)
        // before any volume is taken from it: detaching from a running machine can tear writes.
        let stop_instance = match live_old {
            Some(old)
                if moved
                    && matches!(old.state, InstanceState::Running | InstanceState::Pending) =>
            {
                Some(super::zone::stop_left_behind(node, old, view, &base, b))
            }
            Some(old)
                if matches!(old.state, InstanceState::Running | InstanceState::Pending)
                    && devices.iter().any(|d| d.old.is_some()) =>
            {
                b.change(
                    format!("instance.{}.state", node.name),
                    Action::Update,
                    format!(
                        "node {} is {}: its instance is stopped before its volumes are detached",
                        node.name,
                        view.health.describe()
                    ),
                    Some(json!({"instance_id": old.id, "state": old.state})),
                    Some(json!({"instance_id": old.id, "state": "stopped"})),
                );
                Some(b.step(
                    format!("stop_instance:{}", node.name),
                    Some(&node.name),
                    base.clone(),
                    Params::StopInstance(params::StopInstance {
                        instance_id: old.id.clone(),
                        force: true,
                        wait_until: "stopped".into(),
                        // A replacement terminates it once its volumes are off.
                        terminating: replaced,
                    }),
                ))
            }
            _ => None,
        };
        let old_instance = live_old.filter(|_| !moved).map(|old| {
            if view.volumes.iter().any(|d| d.attached && d.delete_on_termination) {
                b.warn("R7", format!(
                    "{}'s data volumes are attached with DeleteOnTermination=true: they are detached before instance {} is terminated, and kept",
                    node.name, old.id
                ));
            }
            (old.id.clone(), format!("node {} is {}", node.name, view.health.describe()))
        });
        let instance = if replaced {
            Some(Ref::Learned {
                from_step: format!("provision_instance:{}", node.name),
            })
        } else {
            view.instance.map(|i| Ref::Known(i.id.clone()))
        };
        if replaced {
            let mut after = provision_params(ctx, node, subnet.as_deref(), None);
            if moved {
                after
                    .tags
                    .insert(tags::RESTORE.into(), restore.name.clone());
            }
            let (action, before) = match live_old {
                Some(old) => (
                    Action::Replace,
                    Some(json!({"instance_id": old.id, "state": old.state})),
                ),
                None => (
                    Action::Create,
                    view.instance
                        .map(|old| json!({"instance_id": old.id, "state": old.state})),
                ),
            };
            let why = match &node.moved_from {
                Some(from) => format!(
                    "node {} is {} in {}: a replacement in {} at {} (restore `{}`), keeping rack {} (R4)",
                    node.name,
                    view.health.describe(),
                    from.availability_zone,
                    node.availability_zone,
                    node.private_ip,
                    restore.name,
                    from.rack
                ),
                None => format!(
                    "node {} is {}: a replacement with the same private IP, AZ and subnet (R4)",
                    node.name,
                    view.health.describe()
                ),
            };
            let action = if moved { Action::Create } else { action };
            b.change(
                format!("instance.{}", node.name),
                action,
                why,
                before,
                serde_json::to_value(&after).ok(),
            );
            check_instance_type(ctx, b)?;
        }
        Ok(NodeFlow {
            node,
            stop,
            stop_instance,
            instance,
            replaced,
            old_instance,
            devices,
            check,
            subnet,
            rejoins_as_new: false,
            moved: moved.then(|| restore.name.clone()),
            left_behind: live_old.filter(|_| moved).map(|i| i.id.clone()),
        })
    }

    /// R19 after this node's wait for stability: see [`super::consistency::settle`].
    pub(super) fn settle(
        &self,
        ctx: &Ctx<'_, '_>,
        restore: &Restore,
        after: String,
        b: &mut Builder,
    ) -> String {
        let new: Vec<&str> = if self.rejoins_as_new {
            vec![self.node.name.as_str()]
        } else {
            Vec::new()
        };
        super::consistency::settle(ctx, restore, Some(&self.node.name), None, &new, after, b)
    }

    /// Attach, configure, (SMD), start. Returns the start step.
    pub(super) fn finish(
        &mut self,
        ctx: &Ctx<'_, '_>,
        set: Option<&BackupSet<'_>>,
        full_cluster: bool,
        all_stops: &[String],
        b: &mut Builder,
    ) -> String {
        let node = self.node;
        let base: Vec<String> = self.check.clone().into_iter().collect();
        // Detach after this node's stop (of Aerospike, or of its instance) and, in a full-cluster
        // restore, after every stop (R12).
        let mut detaches = Vec::new();
        let mut detach_of = Vec::new();
        // What takes the node's volumes out of use: its stops (of Aerospike, of its instance),
        // the check, and in a full-cluster restore every node's stop.
        let stopped = |first: &[String]| -> Vec<String> {
            first
                .iter()
                .chain(&self.stop_instance)
                .chain(&base)
                .chain(all_stops)
                .cloned()
                .collect()
        };
        for DeviceFlow { ebs, old, .. } in &self.devices {
            detach_of.push(old.as_ref().map(|old| {
                let deps = stopped(self.stop.as_slice());
                let id = b.step(
                    format!("detach_volume:{}:{ebs}", node.name),
                    Some(&node.name),
                    deps,
                    Params::DetachVolume(params::DetachVolume {
                        volume_id: old.volume_id.clone(),
                        instance_id: old.instance_id.clone(),
                        device: ebs.clone(),
                        delete_on_termination: old.delete_on_termination,
                        supersede: old.superseded,
                        terminating: self
                            .old_instance
                            .as_ref()
                            .is_some_and(|(id, _)| *id == old.instance_id),
                    }),
                );
                detaches.push(id.clone());
                id
            }));
        }
        // R7: the old instance goes only once its data volumes are detached.
        let old_terminate = self.old_instance.as_ref().map(|(instance_id, why)| {
            let deps = stopped(&detaches);
            b.step(
                format!("terminate_instance:{}", node.name),
                Some(&node.name),
                deps,
                Params::TerminateInstance(params::TerminateInstance {
                    instance_id: instance_id.clone(),
                    wait_until: "terminated".into(),
                    reason: why.clone(),
                }),
            )
        });
        let provision = self.replaced.then(|| {
            // IP reuse: the replacement may launch only once the old instance is terminated. A
            // node moved to another zone launches once its old instance was asked to stop: with
            // the same node id, the two must never run together when the lost zone comes back.
            let mut deps: Vec<String> = base.iter().cloned().chain(old_terminate.clone()).collect();
            let id = format!("provision_instance:{}", node.name);
            let mut params = provision_params(ctx, node, self.subnet.as_deref(), Some(&id));
            if let Some(restore) = &self.moved {
                deps.extend(self.stop_instance.iter().cloned());
                params.tags.insert(tags::RESTORE.into(), restore.clone());
                params.stopped_first = self.left_behind.clone();
            }
            b.step(
                id.clone(),
                Some(&node.name),
                deps,
                Params::ProvisionInstance(params),
            )
        });
        let mut before_start = Vec::new();
        let vars = ctx.vars(node);
        let path_of = |ebs: &str| crate::nodes::config_path_of(ctx.policy, &vars, ebs);
        let mut order: Vec<usize> = (0..self.devices.len()).collect();
        order.sort_by_key(|&i| {
            crate::nodes::attach_rank(&path_of(&self.devices[i].ebs).unwrap_or_default())
        });
        let mut previous: Option<String> = None;
        for i in order {
            let (
                DeviceFlow {
                    ebs,
                    volume: volume_ref,
                    ready,
                    ..
                },
                detach,
            ) = (&self.devices[i], &detach_of[i]);
            let unchanged = detach.is_none() && ready.is_empty() && !self.replaced;
            if unchanged {
                continue;
            }
            let mut deps: Vec<String> = ready.clone();
            deps.extend(provision.iter().cloned());
            deps.extend(self.stop.iter().cloned());
            deps.extend(all_stops.iter().cloned());
            // The first attach after every detach of the node (a number the kernel frees is the
            // one the next arrival takes); each later one after the attach before it.
            match previous.take() {
                Some(p) => deps.push(p),
                None => deps.extend(detach_of.iter().flatten().cloned()),
            }
            deps.extend(detach.iter().cloned());
            let id = b.step(
                format!("attach_volume:{}:{ebs}", node.name),
                Some(&node.name),
                deps,
                Params::AttachVolume(params::AttachVolume {
                    volume_id: volume_ref.clone(),
                    instance_id: self.instance.clone(),
                    device: ebs.clone(),
                }),
            );
            previous = Some(id.clone());
            before_start.push(id);
        }
        // Every EBS path the config names is checked on the node before it starts on them.
        let device_checks: Vec<params::DeviceCheck> = if before_start.is_empty() {
            Vec::new()
        } else {
            self.devices
                .iter()
                .filter_map(|d| {
                    Some(params::DeviceCheck {
                        path: path_of(&d.ebs)?,
                        ebs: d.ebs.clone(),
                        volume_id: d.volume.clone(),
                    })
                })
                .collect()
        };
        // R17: a volume attached to the node's own instance must be read at start.
        let mut swapped = !before_start.is_empty();
        let out_of_service: Vec<String> =
            provision.iter().chain(self.stop.iter()).cloned().collect();
        let smd_from_set = full_cluster && set.is_some_and(|s| s.smd_archive.is_some());
        let known = crate::node_ids::node_id(ctx.policy, ctx.obs, node, set, smd_from_set);
        let rendered = config::render(ctx.policy, node, &known.id);
        let keeps = asdr_specs::config_node_ids(&rendered.content);
        let current = ctx
            .obs
            .node(&node.name)
            .observation
            .and_then(|o| o.config.as_deref());
        let diff = config::diff(current, &rendered.content, &rendered.path);
        let mut written_id = None;
        if self.replaced || diff.is_some() {
            if let [id] = keeps.as_slice() {
                written_id = Some(id.clone());
            }
            let action = if current.is_some() {
                Action::Update
            } else {
                Action::Create
            };
            let reason = if self.replaced {
                if keeps == [known.id.clone()] {
                    format!(
                        "a replacement is configured exactly as the node it replaces (R4), and rejoins as node id {known} (R18)"
                    )
                } else {
                    "a replacement is configured exactly as the node it replaces (R4)".to_string()
                }
            } else {
                "the node's aerospike.conf differs from the policy's template".to_string()
            };
            crate::node_ids::warn_identity(node, &known, &keeps, self.replaced, b);
            // Outside the roster: no id in the config, or one the observed roster lacks (when
            // none is observed, one asdr had to derive).
            // A node whose SMD comes back from the set joins that set's roster (its recorded ids).
            let roster = smd_from_set
                .then(|| set.and_then(|s| s.manifest))
                .flatten()
                .map(|m| {
                    m.node_ids
                        .values()
                        .filter_map(|i| asdr_specs::canonical_node_id(i))
                        .collect::<std::collections::BTreeSet<String>>()
                })
                .filter(|r| !r.is_empty())
                .or_else(|| super::consistency::observed_roster(ctx.obs.world));
            self.rejoins_as_new = self.replaced
                && match (keeps.as_slice(), roster) {
                    ([id], Some(roster)) => !roster.contains(id),
                    ([id], None) => {
                        *id != known.id || known.source == crate::node_ids::IdSource::Derived
                    }
                    _ => true,
                };
            let change = b.change(
                format!("config.{}", node.name),
                action,
                reason,
                None,
                Some(json!({"path": rendered.path})),
            );
            change.diff = diff.or_else(|| {
                Some(format!(
                    "(no difference from the current {})\n",
                    rendered.path
                ))
            });
            // After the volumes are attached, as the seed's procedure has it: attach, then restore
            // the config, then restart.
            let mut deps = out_of_service.clone();
            deps.extend(base.iter().cloned());
            deps.extend(before_start.iter().cloned());
            before_start.push(b.step(
                format!("write_config:{}", node.name),
                Some(&node.name),
                deps,
                write_config(rendered),
            ));
        }
        if full_cluster && let Some(set) = set {
            swapped = true;
            let archive = set.smd_archive.expect("check_set_covers requires it");
            let vars = ctx.vars(node);
            let smd_dir = format!(
                "{}/smd",
                render(&ctx.policy.cluster.work_directory, &vars).trim_end_matches('/')
            );
            let mut deps = out_of_service.clone();
            deps.extend(all_stops.iter().cloned());
            before_start.push(b.step(
                format!("restore_smd:{}", node.name),
                Some(&node.name),
                deps,
                restore_smd_params(
                    &set.id,
                    &archive.uri,
                    &smd_dir,
                    set.smd_sha256(&archive.node).or(archive.sha256.as_deref()),
                ),
            ));
        }
        // On Enterprise only a cold start reads what was attached or restored.
        let kind = start_kind(ctx, swapped, self.replaced);
        before_start.extend(out_of_service);
        let mut start = start_params(ctx, node, kind);
        if let (Params::StartNode(s), Some(id)) = (&mut start, written_id) {
            s.node_id = Some(id);
        }
        if let Params::StartNode(s) = &mut start
            && !device_checks.is_empty()
        {
            s.devices = device_checks;
            s.instance_store = crate::nodes::primaries(ctx.policy, &ctx.vars(node));
        }
        b.step(
            format!("start_node:{}", node.name),
            Some(&node.name),
            before_start,
            start,
        )
    }
}

/// restore_smd replaces the SMD directory with exactly the archive's content; what was there is
/// kept aside as `smd.asdr-prev` (R2: merging would keep truncates and dropped indexes issued
/// after the backup).
pub(crate) fn restore_smd_params(set: &str, from: &str, to: &str, sha256: Option<&str>) -> Params {
    Params::RestoreSmd(params::RestoreSmd {
        set: set.to_string(),
        from: from.to_string(),
        to: to.to_string(),
        sha256: sha256.map(str::to_string),
        replace: true,
        keep_previous: format!("{}.asdr-prev", to.trim_end_matches('/')),
    })
}

/// aerospike.conf written as rendered, the file that was there kept beside it.
pub(crate) fn write_config(rendered: config::RenderedConfig) -> Params {
    Params::WriteConfig(params::WriteConfig {
        path: rendered.path,
        content: rendered.content,
        keep_previous: ".asdr-prev".into(),
    })
}

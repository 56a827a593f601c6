//! R17: a start that follows a volume swap or an SMD restore on the node's own instance reads the
//! devices (a cold start); Enterprise's default warm start would reattach the old index.
use super::*;
use crate::params::StartKind;

impl<'a> Verifier<'a> {
    /// Every start_node says which start it is, and that is the start its history needs: cold
    /// (the policy's `cold_start` command) after an attach or an SMD restore on an existing
    /// Enterprise instance, never warm there.
    pub(super) fn check_r17_starts(&mut self) {
        let community = self.policy.cluster.edition == Edition::Community;
        let mut bad: Vec<(&Step, String)> = Vec::new();
        for (i, s) in self.steps(StepKind::StartNode) {
            let Params::StartNode(p) = &s.params else {
                continue;
            };
            if s.node.is_none() {
                bad.push((s, "starts a node without naming it".into()));
                continue;
            }
            // What the plan does to this node anywhere, not only what the start depends on: a
            // start that does not wait for its node's attach is refused, not excused.
            let same_node = |x: &Step| x.node == s.node;
            let of_node = |kinds: &[StepKind]| {
                self.plan
                    .steps
                    .iter()
                    .any(|x| kinds.contains(&x.kind()) && same_node(x))
            };
            let launched = of_node(&[StepKind::ProvisionInstance]);
            let swapped = of_node(&[StepKind::AttachVolume, StepKind::RestoreSmd]);
            let after_swap = self.has_ancestor(i, |x| {
                matches!(x.kind(), StepKind::AttachVolume | StepKind::RestoreSmd) && same_node(x)
            });
            if swapped && !after_swap {
                bad.push((
                    s,
                    "starts the node before its volumes are attached or its SMD restored".into(),
                ));
                continue;
            }
            let (expected, why) = if community {
                (StartKind::Community, "the cluster is Community Edition")
            } else if launched {
                (StartKind::NewInstance, "the plan launches its instance")
            } else if swapped {
                (
                    StartKind::Cold,
                    "the plan attaches volumes or restores SMD on the node's own instance",
                )
            } else {
                (StartKind::Warm, "nothing under the node changes")
            };
            if p.start != Some(expected) {
                let said = p.start.map_or("no kind of start".to_string(), |k| {
                    format!("a {} start", k.name())
                });
                bad.push((
                    s,
                    format!(
                        "says {said}, but {why}: it must be {} ({})",
                        expected.name(),
                        expected.describe()
                    ),
                ));
                continue;
            }
            if expected != StartKind::Cold {
                continue;
            }
            let words = |c: &str| c.split_whitespace().collect::<Vec<_>>().join(" ");
            let node = self.step_node(s);
            let plain = node.map(|n| words(&self.render(&self.policy.cluster.service_start, n)));
            if plain.is_some() && plain.as_deref() == p.command.as_deref().map(words).as_deref() {
                bad.push((
                    s,
                    "runs the plain start command after a swap: Enterprise would restart warm and ignore the restored data".into(),
                ));
                continue;
            }
            let cold = node
                .zip(self.policy.cluster.service_cold_start.as_ref())
                .map(|(n, t)| self.render(t, n));
            match cold {
                None => bad.push((
                    s,
                    "starts a node over swapped volumes, and the policy has no `cluster.service.cold_start`: Enterprise would restart warm and ignore the restored data".into(),
                )),
                Some(c) if p.command.as_deref() != Some(c.as_str()) => bad.push((
                    s,
                    format!(
                        "runs `{}`, not the cold start `{c}`: Enterprise would restart warm over the swapped volumes and ignore the restored data",
                        p.command.as_deref().unwrap_or_default()
                    ),
                )),
                Some(_) => {}
            }
        }
        for (s, m) in bad {
            self.bad("R17", Some(s), m);
        }
    }

    /// R5: a node starts on the volumes attached for it. Every volume the plan attaches to a
    /// node is checked on the node by its start (the path aerospike.conf names for that
    /// attachment resolves to the volume's own device), and a node's attaches come one at a
    /// time: a Nitro kernel numbers devices as they arrive.
    pub(super) fn check_r5_devices(&mut self) {
        let mut bad: Vec<(&Step, String)> = Vec::new();
        let attaches: Vec<&Step> = self
            .plan
            .steps
            .iter()
            .filter(|x| x.kind() == StepKind::AttachVolume)
            .collect();
        for (_, s) in self.steps(StepKind::StartNode) {
            let Params::StartNode(p) = &s.params else {
                continue;
            };
            let node = self.step_node(s);
            if let Some(n) = node
                && !p.devices.is_empty()
            {
                for ns in &self.policy.cluster.namespaces {
                    for d in ns.devices.iter().filter(|d| d.shadow.is_some()) {
                        let primary = self.render(&d.device, n);
                        if !p.instance_store.contains(&primary) {
                            bad.push((
                                s,
                                format!(
                                    "starts the node without checking on it that {primary} (namespace {}'s primary) is an instance-store drive",
                                    ns.name
                                ),
                            ));
                        }
                    }
                }
            }
            for a in attaches.iter().filter(|a| a.node == s.node) {
                let Params::AttachVolume(at) = &a.params else {
                    continue;
                };
                let checked = p.devices.iter().find(|d| d.ebs == at.device);
                let Some(d) = checked else {
                    bad.push((
                        s,
                        format!(
                            "starts the node without checking on it that the volume {} attaches at {} is the device its config names",
                            a.id, at.device
                        ),
                    ));
                    continue;
                };
                if d.volume_id != at.volume_id {
                    bad.push((
                        s,
                        format!(
                            "checks another volume at {} than the one {} attaches",
                            at.device, a.id
                        ),
                    ));
                }
                let want = node.and_then(|n| {
                    self.policy
                        .cluster
                        .namespaces
                        .iter()
                        .flat_map(|ns| &ns.devices)
                        .find(|x| self.render(&x.ebs, n) == at.device)
                        .map(|x| self.render(x.shadow.as_ref().unwrap_or(&x.device), n))
                });
                if let Some(want) = want
                    && want != d.path
                {
                    bad.push((
                        s,
                        format!(
                            "checks {} for the volume at {}, but aerospike.conf names {want} for it",
                            d.path, at.device
                        ),
                    ));
                }
            }
        }
        // One at a time per node: at most one of a node's attaches waits for none of the others.
        let mut first: BTreeMap<Option<String>, String> = BTreeMap::new();
        for (i, a) in self.steps(StepKind::AttachVolume) {
            let after_one = self.has_ancestor(i, |x| {
                x.kind() == StepKind::AttachVolume && x.node == a.node
            });
            if after_one {
                continue;
            }
            if let Some(other) = first.get(&a.node) {
                bad.push((
                    a,
                    format!(
                        "attaches beside {other} on the same node: the kernel would number the devices in whatever order they arrive"
                    ),
                ));
            } else {
                first.insert(a.node.clone(), a.id.clone());
            }
        }
        for (s, m) in bad {
            self.bad("R5", Some(s), m);
        }
    }
}

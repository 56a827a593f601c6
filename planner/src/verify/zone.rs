//! Zone loss (R4): a restore that moves nodes to another zone is read against the policy it
//! leaves (the nodes in their new zone, at their new addresses, each keeping its rack), and
//! nothing of the zone they leave is detached, terminated or reattached: EBS volumes attach only
//! in their own zone, and a lost zone may never answer.
use super::*;

/// The policy a zone-loss restore plan acts under; None for any other plan.
pub(super) fn moved_policy(policy: &Policy, plan: &Plan) -> Option<Policy> {
    let name = plan.operation.strip_prefix("restore:")?;
    policy.zone_moved(policy.restore(name)?)
}

impl Verifier<'_> {
    pub(super) fn check_zone(&mut self, r: &asdr_specs::Restore) {
        let Some(zone) = &r.zone else {
            return;
        };
        let mut bad: Vec<(Option<&Step>, String)> = Vec::new();
        let moved: Vec<&Node> = self
            .policy
            .cluster
            .nodes
            .iter()
            .filter(|n| n.moved_from.is_some())
            .collect();
        for node in moved {
            let from = node.moved_from.as_ref().expect("moved");
            let of_node = |s: &&Step| s.node.as_deref() == Some(node.name.as_str());
            for s in self.plan.steps.iter().filter(of_node) {
                match (&s.params, s.kind()) {
                    (_, StepKind::DetachVolume | StepKind::TerminateInstance) => bad.push((
                        Some(s),
                        format!(
                            "{} moves to {}: nothing of it in {} is detached or terminated (the zone may not answer; its volumes are kept)",
                            node.name, zone.to, from.availability_zone
                        ),
                    )),
                    (Params::CreateVolume(p), _) if p.availability_zone != zone.to => bad.push((
                        Some(s),
                        format!(
                            "a volume for {} is created in {}, not {}, where it moves",
                            node.name, p.availability_zone, zone.to
                        ),
                    )),
                    (Params::AttachVolume(p), _) => {
                        if let crate::params::Ref::Known(id) = &p.volume_id {
                            bad.push((
                                Some(s),
                                format!(
                                    "{} moves to {}: volume {id}, which exists already, is not one this restore creates there",
                                    node.name, zone.to
                                ),
                            ));
                        }
                    }
                    (Params::StopInstance(p), _) => {
                        let old = self
                            .world
                            .instances
                            .iter()
                            .find(|i| i.id == p.instance_id);
                        if old.is_none_or(|i| i.availability_zone != from.availability_zone) {
                            bad.push((
                                Some(s),
                                format!(
                                    "stops instance {}, which is not {}'s in {}",
                                    p.instance_id, node.name, from.availability_zone
                                ),
                            ));
                        }
                    }
                    _ => {}
                }
            }
            // R18: the replacement runs with the node's id; its old instance, which has the same
            // id, must have been asked to stop first, or both run when the zone comes back.
            let running_old = self.world.instances.iter().find(|i| {
                i.availability_zone == from.availability_zone
                    && i.private_ip.as_deref() == Some(from.private_ip.to_string().as_str())
                    && matches!(i.state, InstanceState::Running | InstanceState::Pending)
                    && (from.instance_id.as_deref() == Some(i.id.as_str())
                        || (self.own_tags(&i.tags) && i.tags.get(tags::NODE) == Some(&node.name)))
            });
            for (i, s) in self.steps(StepKind::ProvisionInstance) {
                if s.node.as_deref() != Some(node.name.as_str()) {
                    continue;
                }
                if let Some(old) = running_old {
                    if !matches!(&s.params, Params::ProvisionInstance(p) if p.stopped_first.as_deref() == Some(old.id.as_str()))
                    {
                        bad.push((Some(s), format!(
                            "{}'s launch does not check that its old instance {} no longer runs (a resumed apply may come after the zone gave it back)",
                            node.name, old.id
                        )));
                    }
                    let stopped = self.has_ancestor(
                        i,
                        |a| matches!(&a.params, Params::StopInstance(p) if p.instance_id == old.id),
                    );
                    if !stopped {
                        bad.push((Some(s), format!(
                            "{}'s instance {} in {} still runs and is never asked to stop before the replacement launches: both would run with one node id when the zone comes back",
                            node.name, old.id, from.availability_zone
                        )));
                    }
                }
            }
        }
        for (s, m) in bad {
            self.bad("R4", s, m);
        }
    }
}

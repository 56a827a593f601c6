//! Where a plan acts: the part of it in one region, and the region a restore builds in.

use super::*;

/// The plan's steps that act in `region` (None: the cluster's own), their dependencies on steps
/// elsewhere dropped (those are checked on the whole plan).
pub(super) fn sub_plan(plan: &Plan, region: Option<&str>) -> Plan {
    let steps: Vec<Step> = plan
        .steps
        .iter()
        .filter(|s| s.region.as_deref() == region)
        .cloned()
        .collect();
    let ids: HashSet<String> = steps.iter().map(|s| s.id.clone()).collect();
    let steps = steps
        .into_iter()
        .map(|mut s| {
            s.depends_on.retain(|d| ids.contains(d));
            s
        })
        .collect();
    Plan {
        steps,
        ..plan.clone()
    }
}

/// The region a restore (or a drill of one) builds in, when not the cluster's own.
pub(super) fn restore_region<'p>(
    policy: &'p Policy,
    plan: &Plan,
) -> Option<&'p asdr_specs::RegionTarget> {
    let label = plan.operation.as_str();
    let restore = if let Some(name) = label.strip_prefix("restore:") {
        policy.restore(name)
    } else if let Some(name) = label.strip_prefix("drill:") {
        policy.drill(name).and_then(|d| policy.restore(&d.restore))
    } else {
        None
    }?;
    restore.region.as_ref()
}

impl Verifier<'_> {
    /// A restore elsewhere that plans nothing says its cluster stands there: only true when as
    /// many of its instances as nodes are live there and every one carries the mark of the apply
    /// that saw the cluster stable (`asdr:restore-complete`). Instances without it are a build
    /// that stopped halfway, volumes attached and Aerospike perhaps never started.
    pub(super) fn check_nothing_to_build(&mut self, world: &World, name: &str, region: &str) {
        if !self.plan.steps.is_empty() {
            return;
        }
        let built: Vec<&crate::world::Instance> = world
            .instances
            .iter()
            .filter(|i| {
                i.region.as_deref() == Some(region)
                    && i.tags.get(tags::RESTORE).map(String::as_str) == Some(name)
                    && i.tags.get(tags::CLUSTER) == Some(&self.policy.cluster.name)
                    && i.state != crate::world::InstanceState::Terminated
            })
            .collect();
        let marked = built
            .iter()
            .filter(|i| i.tags.contains_key(tags::RESTORE_COMPLETE))
            .count();
        let nodes = self.policy.cluster.nodes.len();
        let running = built
            .iter()
            .filter(|i| i.state == crate::world::InstanceState::Running)
            .count();
        if built.len() < nodes || marked < built.len() || running < built.len() {
            self.bad(
                "R16",
                None,
                format!(
                    "plans nothing for restore `{name}`, yet its cluster in {region} does not stand: {} of {nodes} instances, {marked} marked {}, {running} running",
                    built.len(),
                    tags::RESTORE_COMPLETE
                ),
            );
        }
    }
}

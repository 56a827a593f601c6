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

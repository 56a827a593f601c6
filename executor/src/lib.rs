//! The executor walks a plan's step graph. This crate starts with the scheduling core that apply
//! builds on: which steps may run next, given the ones finished, failed or running, and the
//! rolling limit of R8.

use std::collections::{HashMap, HashSet};

use asdr_planner::Plan;

/// What the executor knows of each step so far.
#[derive(Debug, Default)]
pub struct Progress {
    pub done: HashSet<String>,
    pub failed: HashSet<String>,
    pub running: HashSet<String>,
}

/// Steps whose dependencies are all done, not yet started, and that keep the number of nodes
/// out of service (quiesced or stopped and not yet back) within `max_nodes_at_once` (R8).
/// Cleanup steps become ready when their dependencies have finished at all, failed or not.
pub fn ready<'p>(plan: &'p Plan, progress: &Progress, max_nodes_at_once: usize) -> Vec<&'p str> {
    let finished = |id: &String| progress.done.contains(id) || progress.failed.contains(id);
    let mut out_of_service: HashSet<&str> = HashSet::new();
    let by_id: HashMap<&str, &asdr_planner::Step> =
        plan.steps.iter().map(|s| (s.id.as_str(), s)).collect();
    for s in &plan.steps {
        if s.kind.takes_node_out()
            && (progress.done.contains(&s.id) || progress.running.contains(&s.id))
        {
            let back = plan.steps.iter().any(|c| {
                c.kind.brings_node_back() && c.node == s.node && progress.done.contains(&c.id)
            });
            if !back && let Some(n) = &s.node {
                out_of_service.insert(n.as_str());
            }
        }
    }
    let mut ready = Vec::new();
    for s in &plan.steps {
        if progress.done.contains(&s.id)
            || progress.failed.contains(&s.id)
            || progress.running.contains(&s.id)
        {
            continue;
        }
        let deps_ok = if s.cleanup {
            s.depends_on.iter().all(finished)
        } else {
            s.depends_on.iter().all(|d| progress.done.contains(d))
        };
        if !deps_ok || s.depends_on.iter().any(|d| !by_id.contains_key(d.as_str())) {
            continue;
        }
        if s.kind.takes_node_out()
            && let Some(n) = &s.node
            && !out_of_service.contains(n.as_str())
        {
            if out_of_service.len() >= max_nodes_at_once {
                continue;
            }
            out_of_service.insert(n.as_str());
        }
        ready.push(s.id.as_str());
    }
    ready
}

//! R19: a restore of a cluster with strong-consistency namespaces ends with the partitions
//! available, revives dead partitions only when the restore says so, re-rosters a node that joins
//! with an id the roster lacks, and never sets a roster of fewer nodes than the cluster has.
use super::*;

impl<'a> Verifier<'a> {
    pub(super) fn check_r19(&mut self, r: &asdr_specs::Restore) {
        let sc: Vec<&str> = self
            .policy
            .cluster
            .namespaces
            .iter()
            .filter(|n| n.strong_consistency)
            .map(|n| n.name.as_str())
            .collect();
        if sc.is_empty() {
            return;
        }
        let size = self.policy.cluster.nodes.len();
        let roster: Option<std::collections::BTreeSet<String>> = {
            let ids: std::collections::BTreeSet<String> = self
                .world
                .nodes
                .iter()
                .filter(|n| n.reachable)
                .flat_map(|n| &n.namespaces)
                .filter(|ns| ns.strong_consistency)
                .flat_map(|ns| ns.roster.iter().cloned())
                .collect();
            (!ids.is_empty()).then_some(ids)
        };
        let waits: Vec<(usize, &Step)> = self.steps(StepKind::WaitPartitionsAvailable).collect();
        let by_set = super::node_ids::recorded(self.policy, self.world);
        let rosters: Vec<(usize, &Step)> = self.steps(StepKind::SetRoster).collect();
        let mut bad: Vec<(Option<&Step>, String)> = Vec::new();
        for (_, s) in &waits {
            if let Params::WaitPartitionsAvailable(p) = &s.params {
                if p.revive && !r.accept_dead_partitions {
                    bad.push((Some(s), format!("revives dead partitions, but restore `{}` does not declare `accept_dead_partitions`", r.name)));
                }
                if let Some(ns) = sc.iter().find(|ns| !p.namespaces.iter().any(|n| n == *ns)) {
                    bad.push((
                        Some(s),
                        format!("does not wait for strong-consistency namespace {ns}"),
                    ));
                }
            }
        }
        for (_, s) in &rosters {
            if let Params::SetRoster(p) = &s.params
                && p.size != size
            {
                bad.push((Some(s), format!("sets the roster once {} nodes are observed, not all {size}: a roster of part of the cluster leaves partitions unavailable", p.size)));
            }
        }
        for (i, start) in self.steps(StepKind::StartNode) {
            let _ = i;
            let after = |list: &[(usize, &Step)]| {
                list.iter()
                    .any(|(j, _)| self.has_ancestor(*j, |x| x.id == start.id))
            };
            if !after(&waits) {
                bad.push((Some(start), "starts a node of a strong-consistency cluster, and no wait_partitions_available follows it".into()));
            }
            let launched = self
                .plan
                .steps
                .iter()
                .any(|x| x.kind() == StepKind::ProvisionInstance && x.node == start.node);
            // Its id as the config the plan writes sets it, checked against the roster the
            // nodes report (when they report one).
            let written: Option<Vec<String>> =
                self.plan.steps.iter().find_map(|x| match &x.params {
                    Params::WriteConfig(c) if x.node == start.node => {
                        Some(asdr_specs::config_node_ids(&c.content))
                    }
                    _ => None,
                });
            // A node whose SMD comes back from a set joins that set's roster.
            let smd_set = self.plan.steps.iter().find_map(|x| match &x.params {
                Params::RestoreSmd(r) if x.node == start.node => Some(r.set.as_str()),
                _ => None,
            });
            let set_roster: Option<std::collections::BTreeSet<&String>> = smd_set
                .and_then(|set| by_set.get(set))
                .map(|ids| ids.values().collect())
                .filter(|ids: &std::collections::BTreeSet<&String>| !ids.is_empty());
            let outside = match written.as_deref() {
                Some([id]) => match &set_roster {
                    Some(r) => !r.contains(id),
                    None => roster.as_ref().is_some_and(|r| !r.contains(id)),
                },
                _ => true,
            };
            if launched && outside && !after(&rosters) {
                bad.push((Some(start), "starts a new instance that joins outside the roster (its config sets no `node-id`, or one the roster does not hold), and no set_roster follows it".into()));
            }
        }
        for (s, m) in bad {
            self.bad("R19", s, m);
        }
    }
}

/// R19 over a whole plan that acts in another region (a restore there, or a drill of one).
pub(super) fn whole_plan(policy: &Policy, home: &World, plan: &Plan) -> Vec<Violation> {
    let label = plan.operation.as_str();
    let restore = label
        .strip_prefix("restore:")
        .and_then(|n| policy.restore(n))
        .or_else(|| {
            label
                .strip_prefix("drill:")
                .and_then(|n| policy.drill(n))
                .and_then(|d| policy.restore(&d.restore))
        });
    let Some(r) = restore else {
        return Vec::new();
    };
    let mut v = Verifier::new(policy, home, plan, policy.backup.retain);
    // A graph that does not hold is refused by the region's own checks.
    if v.check_graph() {
        v.check_r19(r);
    }
    v.out
}

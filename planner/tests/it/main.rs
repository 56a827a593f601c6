//! The planner's integration tests, one binary: acceptance per rule, the safety regressions with
//! the verifier catching each, the asbackup method, and the generated-cluster properties.

mod asbackup;
mod asbackup_lock;
mod backup_account;
mod consistency;
mod devices;
mod enterprise;
mod held;
mod locks;
mod locks_stores;
mod manifests;
mod node_ids;
mod planner;
mod properties;
mod racks;
mod recovery_points;
mod recovery_review;
mod regions;
mod rto;
mod safety;
mod verifier_fuzz;
mod zone;

use asdr_planner::plan::Step;
use serde_json::Value;

/// A step's parameters as the plan file holds them.
pub fn params(s: &Step) -> Value {
    serde_json::to_value(s).expect("a step serialises")["params"].clone()
}

/// Edits a step's parameters as a tampered plan file would, and reads the step back.
pub fn edit(s: &mut Step, f: impl FnOnce(&mut Value)) {
    let mut v = serde_json::to_value(&*s).expect("a step serialises");
    f(&mut v["params"]);
    *s = serde_json::from_value(v).expect("the edited step is still a step");
}

/// A step read from its plan-file form.
pub fn step_from_json(v: Value) -> Step {
    serde_json::from_value(v).expect("a step")
}

/// The worlds the node-identity and strong-consistency tests share: three sets, some nodes
/// failed, with or without set manifests (which record the nodes' ids).
pub mod identity_worlds {
    use asdr_planner::testkit::{Failure, WorldSpec, with_manifests, world_for};
    use asdr_planner::world::World;
    use asdr_planner::{Operation, Plan, plan};
    use asdr_specs::Policy;
    use time::OffsetDateTime;
    use time::macros::datetime;

    pub const NOW: OffsetDateTime = datetime!(2026-11-21 09:00:00 UTC);

    pub fn world(policy: &Policy, manifests: bool, failures: &[(&str, Failure)]) -> World {
        let mut spec = WorldSpec::new(NOW);
        spec.sets = 3;
        spec.failures = failures.iter().map(|(n, f)| (n.to_string(), *f)).collect();
        let mut w = world_for(policy, &spec);
        if manifests {
            with_manifests(policy, &mut w);
        }
        w
    }

    /// The plan of restore `name`; a refusal fails the test.
    pub fn restore(policy: &Policy, w: &World, name: &str) -> Plan {
        plan(policy, w, NOW, &Operation::Restore(name.into())).unwrap_or_else(|e| panic!("{e}"))
    }
}

//! The planner's integration tests, one binary: acceptance per rule, the safety regressions with
//! the verifier catching each, the asbackup method, and the generated-cluster properties.

mod asbackup;
mod consistency;
mod enterprise;
mod manifests;
mod node_ids;
mod planner;
mod properties;
mod racks;
mod recovery_points;
mod recovery_review;
mod regions;
mod safety;
mod verifier_fuzz;

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

//! The planner's integration tests, one binary: acceptance per rule, the safety regressions with
//! the verifier catching each, the asbackup method, and the generated-cluster properties.

mod asbackup;
mod planner;
mod properties;
mod safety;
mod verifier_fuzz;

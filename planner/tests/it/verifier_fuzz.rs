//! The property the verifier exists for: every plan the planner emits, for generated policies and
//! worlds of every shape (see `testkit::fuzz`), passes the independent safety verifier, is
//! acyclic and listed in order, and is the same when planned again. 1,000 cases here; the
//! `verify_fuzz` benchmark runs 100,000 and more.

use asdr_planner::testkit::fuzz::{Outcome, case, check};

#[test]
fn every_plan_of_a_thousand_generated_clusters_passes_the_verifier() {
    let mut planned = 0;
    let mut refused = 0;
    let mut invalid = 0;
    let mut steps = 0;
    let mut failures = Vec::new();
    for seed in 0..1_000 {
        match check(&case(seed)) {
            Ok(Outcome::Planned(n)) => {
                planned += 1;
                steps += n;
            }
            Ok(Outcome::Refused) => refused += 1,
            Ok(Outcome::Invalid) => invalid += 1,
            Err(e) => failures.push(e),
        }
    }
    assert!(
        failures.is_empty(),
        "{} failures, first: {:#?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    eprintln!("planned {planned} ({steps} steps), refused {refused}, invalid {invalid}");
    // The generator must exercise plans, not only refusals.
    assert!(
        planned >= 500,
        "only {planned} of 1000 cases produced a plan"
    );
    assert!(steps >= 10_000, "only {steps} steps were verified");
    assert!(
        invalid <= 100,
        "{invalid} generated policies did not validate"
    );
}

//! The verifier under load: `cargo bench -p asdr-planner --features testkit --bench verify_fuzz`
//! plans and verifies ASDR_FUZZ_CASES generated cases (default 100,000; see `testkit::fuzz`),
//! then times plan() — which runs the verifier — on the 256 nodes × 4 devices × 60 sets world.
//! Figures go to docs/benchmarks.md.

use std::time::Instant;

use asdr_planner::testkit::fuzz::{Outcome, case, check};
use asdr_planner::testkit::{CONFIG_TEMPLATE, WorldSpec, policy_yaml, world_for};
use asdr_planner::{Operation, plan, verify};
use time::macros::datetime;

fn main() {
    let cases: u64 = std::env::var("ASDR_FUZZ_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    let started = Instant::now();
    let (mut planned, mut refused, mut invalid, mut steps) = (0u64, 0u64, 0u64, 0u64);
    for seed in 0..cases {
        match check(&case(seed)) {
            Ok(Outcome::Planned(n)) => {
                planned += 1;
                steps += n as u64;
            }
            Ok(Outcome::Refused) => refused += 1,
            Ok(Outcome::Invalid) => invalid += 1,
            Err(e) => panic!("{e}"),
        }
    }
    let took = started.elapsed();
    println!(
        "fuzz: {cases} cases in {:.1} s: {planned} plans ({steps} steps) verified, {refused} refused by a rule, {invalid} invalid policies, 0 violations",
        took.as_secs_f64()
    );

    // The planner benchmark's world: 256 nodes × 4 devices × 60 sets (61,440 snapshots),
    // retain.count 60, as in `cargo bench -p asdr --bench plan`.
    let dir = std::env::temp_dir().join(format!("asdr-verify-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    let policy = asdr_specs::parse(
        "gen.yaml",
        &policy_yaml(256, 4, "multi-volume", "enterprise", 60),
        &dir,
    )
    .unwrap();
    let now = datetime!(2026-11-21 09:00:00 UTC);
    let mut spec = WorldSpec::new(now);
    spec.sets = 60;
    spec.newest_set_age = time::Duration::hours(30);
    let world = world_for(&policy, &spec);
    for (label, op) in [
        ("backup", Operation::Backup),
        (
            "full-cluster restore",
            Operation::Restore("full-cluster".into()),
        ),
    ] {
        let mut best_plan = f64::MAX;
        let mut best_verify = f64::MAX;
        let mut n = 0;
        for _ in 0..5 {
            let t = Instant::now();
            let p = plan(&policy, &world, now, &op).unwrap();
            best_plan = best_plan.min(t.elapsed().as_secs_f64());
            let t = Instant::now();
            assert!(verify(&policy, &world, &p).is_empty());
            best_verify = best_verify.min(t.elapsed().as_secs_f64());
            n = p.steps.len();
        }
        println!(
            "256x4x60 {label}: {n} steps; plan() with the verifier {:.0} ms, of which verify() {:.0} ms",
            best_plan * 1000.0,
            best_verify * 1000.0
        );
    }
}

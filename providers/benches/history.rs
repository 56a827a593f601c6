//! The history property at scale: 20,000 generated histories (EBS snapshots with copies, and
//! clusters switching between EBS snapshots and asbackup over a shared store), every apply carried
//! out by the world-file simulation and every property checked after it. The first broken
//! property fails the run with its seed. `ASDR_HISTORIES` sets how many.
//!
//! `cargo bench -p asdr-providers --features testkit --bench history`

use std::time::Instant;

fn main() {
    let n: u64 = std::env::var("ASDR_HISTORIES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let t = Instant::now();
    match asdr_providers::testkit_history::run(0..n) {
        Ok(tally) => {
            let secs = t.elapsed().as_secs_f64();
            println!(
                "{} histories: {} edit-and-apply steps, {} applies, {} plans refused, 0 properties broken, {secs:.1} s ({:.2} ms per history)",
                tally.histories,
                tally.steps,
                tally.applies,
                tally.refused,
                secs * 1000.0 / tally.histories.max(1) as f64
            );
        }
        Err(e) => {
            eprintln!("property broken: {e}");
            std::process::exit(1);
        }
    }
}

//! The property test grows a history: sequences of applies with edits between them (see
//! `asdr_providers::testkit_history` for the edits and the properties checked after every
//! apply). 1,000 histories here; the benchmark runs 20,000 (docs/benchmarks.md).

#[test]
fn a_thousand_histories_of_edits_and_applies_keep_retention_ownership_and_status_true() {
    let tally = asdr_providers::testkit_history::run(0..1000).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tally:?}");
    assert_eq!(tally.histories, 1000);
    assert!(tally.applies >= 3000, "only {} applies ran", tally.applies);
}

/// The seeds past the first 1,000 that the 20,000-history benchmark found defects with (1,357:
/// a runner's clock behind, `rr08_…`; 13,102: `before:` in a copy region; 15,529: a new set's
/// region mark beside failed copies' deletes) stay fixed. `ASDR_HISTORY_SEED=N cargo test …
/// one_history -- --nocapture` runs seed N instead, to look into one a run reports
/// (`ASDR_HISTORY_DEBUG=1` prints each edit, deletion and refusal).
#[test]
fn one_history() {
    let seeds: Vec<u64> = match std::env::var("ASDR_HISTORY_SEED") {
        Ok(s) => vec![s.parse().expect("ASDR_HISTORY_SEED is a number")],
        Err(_) => vec![1_357, 13_102, 15_529],
    };
    for seed in seeds {
        let tally =
            asdr_providers::testkit_history::run(seed..seed + 1).unwrap_or_else(|e| panic!("{e}"));
        eprintln!("seed {seed}: {tally:?}");
        assert_eq!(tally.histories, 1);
    }
}

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

/// One history, to look into a seed a run reports: `ASDR_HISTORY_SEED=N cargo test … one_history
/// -- --ignored --nocapture`. Ignored for good, not pending: it needs a seed to be named, and the
/// seeds the suite runs are the 1,000-history test's; a seed it reports becomes a named
/// regression test of its own (as seed 1,357 became `rr08_…`).
#[test]
#[ignore = "a debugging aid: runs the seed ASDR_HISTORY_SEED names"]
fn one_history() {
    let seed: u64 = std::env::var("ASDR_HISTORY_SEED")
        .expect("ASDR_HISTORY_SEED")
        .parse()
        .expect("a number");
    let tally =
        asdr_providers::testkit_history::run(seed..seed + 1).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{tally:?}");
}

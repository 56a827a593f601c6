//! A restore into another region that failed after Fast Snapshot Restore was turned off by its
//! cleanup, resumed: the enable runs and is waited for again before the volumes it has yet to
//! make (they would otherwise load lazily).

use crate::apply::{Scratch, simulation};

#[test]
fn review2_a_resumed_region_restore_turns_fsr_on_again_before_its_remaining_volumes() {
    let s = Scratch::of("prod-east-dr");
    s.edit(
        "asdr.yaml",
        "    region: us-west-2\n",
        "    region: us-west-2\n    volume: {fast_snapshot_restore: true}\n",
    );
    let backup = s.asdr("world-with-copies.yaml", &["apply", "--yes"], &[]);
    assert!(
        backup.status.success(),
        "{}",
        String::from_utf8_lossy(&backup.stdout)
    );
    let env = simulation(
        &s,
        "faults:\n  - {step: \"create_volume:b1@dr-west:/dev/sdg\", code: InvalidParameterValue, times: 1}\n",
    );
    let first = s.asdr(
        "world-with-copies.yaml",
        &["apply", "--restore", "dr-west", "--yes"],
        &env,
    );
    assert_eq!(
        first.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&first.stdout)
    );
    let second = s.asdr(
        "world-with-copies.yaml",
        &["apply", "--restore", "dr-west", "--yes"],
        &env,
    );
    let text = String::from_utf8_lossy(&second.stdout).to_string();
    assert!(
        second.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&second.stderr)
    );
    // The second apply's run (after the journal's last `begin`): the enable ran again, before
    // the volume left to make.
    // The restore's own journal (the backup's is beside it).
    let journal: Vec<serde_json::Value> = std::fs::read_dir(s.path(".asdr/journal"))
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .find(|t| t.contains("fast_snapshot_restore:enable:dr-west"))
        .expect("the restore's journal")
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let last = journal
        .iter()
        .rposition(|e| e["event"] == "begin")
        .expect("a begin");
    let last_run: Vec<(String, String)> = journal[last..]
        .iter()
        .filter_map(|e| {
            Some((
                e["event"].as_str()?.to_string(),
                e["step"].as_str()?.to_string(),
            ))
        })
        .collect();
    assert!(text.contains("Resum") || last > 0, "{text}");
    let at = |event: &str, step: &str| {
        last_run
            .iter()
            .position(|(e, st)| e == event && st == step)
            .unwrap_or_else(|| panic!("no {event} {step} in {last_run:?}"))
    };
    let enabled = at("done", "fast_snapshot_restore:enable:dr-west");
    assert!(at("start", "create_volume:b1@dr-west:/dev/sdg") > enabled);
}

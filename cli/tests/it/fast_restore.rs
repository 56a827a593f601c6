//! Fast Snapshot Restore through `apply` on a world file (moto has no FSR; the world-file
//! simulation moves each pair `enabling` → `optimizing` → `enabled`): the restore's volumes are
//! made once it is enabled, and it is turned off again, also when the restore fails.

use crate::apply::{Scratch, simulation};

fn fsr(s: &Scratch) {
    s.edit(
        "asdr.yaml",
        "    volume: {type: gp3, iops: 16000, throughput: 1000, initialization_rate: 300}\n",
        "    volume: {type: gp3, iops: 16000, throughput: 1000, fast_snapshot_restore: true}\n",
    );
}

/// Every pair left on in the world file: (snapshot, zone, state).
fn pairs_on(s: &Scratch, world: &str) -> Vec<(String, String, String)> {
    let w = asdr_providers::world_file::load(&s.path(world)).unwrap();
    w.snapshots
        .iter()
        .flat_map(|x| {
            x.fast_restore
                .iter()
                .map(|(z, st)| (x.id.clone(), z.clone(), st.clone()))
                .collect::<Vec<_>>()
        })
        .collect()
}

fn events(s: &Scratch) -> Vec<(String, String)> {
    s.journal()
        .iter()
        .filter_map(|e| {
            Some((
                e["event"].as_str()?.to_string(),
                e["step"].as_str()?.to_string(),
            ))
        })
        .collect()
}

#[test]
fn a_restore_with_fsr_makes_its_volumes_once_enabled_and_turns_it_off_after() {
    let s = Scratch::of("prod-east");
    fsr(&s);
    let out = s.asdr(
        "world-failed-node.yaml",
        &["apply", "--restore", "a1-from-backup", "--yes"],
        &[],
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let ev = events(&s);
    let at = |event: &str, step: &str| {
        ev.iter()
            .position(|(e, s)| e == event && s == step)
            .unwrap_or_else(|| panic!("no {event} {step} in {ev:?}"))
    };
    let enabled = at("done", "fast_snapshot_restore:enable:a1-from-backup");
    for dev in ["/dev/sdf", "/dev/sdg", "/dev/sdh"] {
        assert!(at("start", &format!("create_volume:a1:{dev}")) > enabled);
    }
    assert!(at("done", "fast_snapshot_restore:disable:a1-from-backup") > enabled);
    assert_eq!(pairs_on(&s, "world-failed-node.yaml"), vec![]);
}

#[test]
fn review_a_restore_that_fails_after_enabling_fsr_turns_it_off_before_it_ends() {
    let s = Scratch::of("prod-east");
    fsr(&s);
    let env = simulation(
        &s,
        "faults:\n  - {step: \"create_volume:a1:/dev/sdg\", code: InvalidParameterValue}\n",
    );
    let out = s.asdr(
        "world-failed-node.yaml",
        &["apply", "--restore", "a1-from-backup", "--yes"],
        &env,
    );
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(
        text.contains("failed   create_volume:a1:/dev/sdg"),
        "{text}"
    );
    // The cleanup ran: nothing left on to bill.
    assert!(
        events(&s)
            .iter()
            .any(|(e, st)| e == "done" && st == "fast_snapshot_restore:disable:a1-from-backup"),
        "{text}"
    );
    assert_eq!(pairs_on(&s, "world-failed-node.yaml"), vec![]);
}

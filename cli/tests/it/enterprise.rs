//! Aerospike as production runs it, end to end through the binary against moto and the in-test
//! nodes answering as Enterprise Edition does (an emulator: no Enterprise server runs here).

use crate::ec2::{env, tag};
use std::collections::BTreeMap;

/// R17 against the Enterprise emulator, which restarts warm (its old index reattached, the
/// devices unread) unless the start is a cold start: a1 restored in place from the set — the
/// same instance, its volumes swapped for ones made from the set's snapshots — comes back cold,
/// so the restored volumes are what it serves; the plan says so beside the step.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r17_an_in_place_restore_on_the_enterprise_emulator_restarts_the_node_cold() {
    let env = env(66, &[]).await;
    env.ok(&["apply", "--yes"]);
    let set: BTreeMap<String, String> = env
        .snapshots()
        .await
        .iter()
        .filter(|s| tag(s, "asdr:node") == Some("a1"))
        .map(|s| {
            (
                tag(s, "asdr:device").unwrap().to_string(),
                s.snapshot_id().unwrap().to_string(),
            )
        })
        .collect();
    let before = env.live_instances("a1").await;
    assert_eq!(before.len(), 1);
    let instance = before[0].instance_id().unwrap().to_string();

    let plan = env.ok(&["plan", "--restore", "a1-from-backup"]);
    let line = plan
        .lines()
        .find(|l| l.contains("start_node:a1"))
        .unwrap_or_else(|| panic!("{plan}"));
    assert!(line.contains("[cold start: `touch "), "{line}");
    env.ok(&["apply", "--yes", "--restore", "a1-from-backup"]);

    let after = env.live_instances("a1").await;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].instance_id(), Some(instance.as_str()), "in place");
    let attached = env.volumes_of(&instance).await;
    for (dev, snap) in &set {
        assert_eq!(attached[dev].snapshot_id(), Some(snap.as_str()), "{dev}");
    }
    assert_eq!(
        env.nodes.starts("a1"),
        ["cold"],
        "a warm start would have served the old index over the restored volumes"
    );
    for n in ["b1", "a2"] {
        assert!(env.nodes.starts(n).is_empty(), "{n} was not restarted");
    }
}

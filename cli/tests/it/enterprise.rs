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

/// R18 against moto and the in-test nodes (which take their id from `node-id` in the config they
/// start with, as asd does): a backup's manifest records each node's id; a1's instance is lost
/// and the new one would derive another id from its MAC (the emulator is given one); the
/// replacement's config carries the recorded id, so a1 rejoins as the node it was — under strong
/// consistency, as a member of the roster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_a_replacement_rejoins_with_the_node_id_its_last_set_recorded() {
    let env = env(110, &[]).await;
    let before = env.nodes.node_id("a1");
    env.ok(&["apply", "--yes"]);
    let manifests = env.dir.path().join("store/prod-east/manifests");
    let manifest: serde_json::Value = serde_json::from_slice(
        &std::fs::read(
            std::fs::read_dir(&manifests)
                .unwrap()
                .map(|e| e.unwrap().path())
                .find(|p| p.extension().is_some_and(|e| e == "json"))
                .expect("the set's manifest"),
        )
        .unwrap(),
    )
    .unwrap();
    assert_eq!(
        manifest["manifest"]["node_ids"]["a1"].as_str(),
        Some(before.as_str()),
        "{manifest}"
    );

    env.terminate("a1").await;
    env.nodes.set_node_id("a1", "FEED0000000001");
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(
        plan.contains(&format!("rejoins as node id {before}")),
        "{plan}"
    );
    assert!(!plan.contains("[R18]"), "no identity warning: {plan}");
    env.ok(&["apply", "--yes", "--restore", "replace-a1"]);
    let conf = std::fs::read_to_string(env.dir.path().join("nodes/a1/aerospike.conf")).unwrap();
    assert!(conf.contains(&format!("node-id {before}")), "{conf}");
    assert!(env.nodes.is_up("a1"));
    assert_eq!(env.nodes.node_id("a1"), before, "a1 rejoined as itself");
}

/// R18: with no set yet and a1 gone, nothing knows a1's id: the plan says the replacement joins
/// with an id asdr derives, and a template without `node-id` is warned that the node rejoins as
/// a new one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r18_a_replacement_whose_id_is_unknown_or_unrendered_is_said_to_join_as_another_node() {
    let env = env(112, &[]).await;
    env.terminate("a1").await;
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(
        plan.contains("[R18]") && plan.contains("no id of a1 is known"),
        "{plan}"
    );
    let template = env.dir.path().join("templates/aerospike.conf.j2");
    let text = std::fs::read_to_string(&template).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("node-id") && !l.contains("node's id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&template, without).unwrap();
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(
        plan.contains("[R18]") && plan.contains("sets no `node-id`: it rejoins as a new node"),
        "{plan}"
    );
}

const USERS: &str = "    - name: users\n      replication_factor: 2\n";

/// R19 end to end against moto and the in-test nodes answering as Enterprise strong consistency
/// does (`roster:`, `roster-set:`, per-namespace partitions: an emulator). With `node-id` in the
/// template the replacement rejoins as the rostered node: no re-roster, and the restore ends once
/// no partition is unavailable. Without it, the plan re-rosters in a step of its own and the
/// roster then holds the replacement's new id, not the lost one.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r19_a_replacement_on_the_enterprise_emulator_keeps_the_roster_whole() {
    let env = env(
        114,
        &[(
            USERS,
            "    - name: users\n      replication_factor: 2\n      strong_consistency: true\n",
        )],
    )
    .await;
    let ids: Vec<String> = ["a1", "b1", "a2"]
        .iter()
        .map(|n| env.nodes.node_id(n))
        .collect();
    env.nodes.set_strong_consistency("users", &ids);
    env.ok(&["apply", "--yes"]);
    env.terminate("a1").await;
    env.nodes.set_node_id("a1", "FEED0000000002");
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(plan.contains("wait_partitions_available:a1"), "{plan}");
    assert!(
        !plan.contains("set_roster"),
        "a1 keeps its rostered id: {plan}"
    );
    env.ok(&["apply", "--yes", "--restore", "replace-a1"]);
    assert_eq!(env.nodes.node_id("a1"), ids[0]);
    assert_eq!(env.nodes.roster("users"), ids);

    // The same loss with a template that sets no node-id: a1 comes back as a new node.
    let template = env.dir.path().join("templates/aerospike.conf.j2");
    let text = std::fs::read_to_string(&template).unwrap();
    let without: String = text
        .lines()
        .filter(|l| !l.contains("node-id") && !l.contains("node's id"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&template, without).unwrap();
    let replacement = env.live_instances("a1").await[0]
        .instance_id()
        .unwrap()
        .to_string();
    env.ec2
        .terminate_instances()
        .instance_ids(&replacement)
        .send()
        .await
        .unwrap();
    std::fs::write(env.dir.path().join("control/a1.down"), "").unwrap();
    env.nodes.set_node_id("a1", "FEED0000000003");
    let plan = env.ok(&["plan", "--restore", "replace-a1"]);
    assert!(
        plan.contains("set_roster:a1") && plan.contains("[R19]"),
        "{plan}"
    );
    env.ok(&["apply", "--yes", "--restore", "replace-a1"]);
    let roster = env.nodes.roster("users");
    assert!(roster.contains(&"FEED0000000003".to_string()), "{roster:?}");
    assert!(
        !roster.contains(&ids[0]),
        "the lost id left the roster: {roster:?}"
    );
    assert_eq!(roster.len(), 3);
}

/// R8 with `max_nodes_at_once: rack`, end to end against moto and the Enterprise emulator (which
/// quiesces, as only Enterprise does): rack 1 (us-east-1a: a1, a2) is quiesced together, and
/// rack 2 (b1) only once both are back; every node's snapshots still wait for its drain.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r8_a_quiesce_backup_on_the_enterprise_emulator_rolls_one_whole_rack_at_a_time() {
    let instance = "  instance:                       # defaults for replacement instances (R4)\n";
    let env = env(
        116,
        &[
            ("consistency: multi-volume", "consistency: quiesce"),
            ("max_nodes_at_once: 1 ", "max_nodes_at_once: rack "),
            (
                instance,
                "  racks: {us-east-1a: 1, us-east-1b: 2}\n  instance:                       # defaults for replacement instances (R4)\n",
            ),
        ],
    )
    .await;
    env.nodes.clear_log();
    env.ok(&["apply", "--yes"]);
    let log = env.nodes.log();
    let at = |node: &str, cmd: &str| {
        log.iter()
            .position(|(n, c)| n == node && c == cmd)
            .unwrap_or_else(|| panic!("{node} never got {cmd}: {log:?}"))
    };
    let (a1_in, a2_in, b1_in) = (
        at("a1", "quiesce:"),
        at("a2", "quiesce:"),
        at("b1", "quiesce:"),
    );
    let (a1_out, a2_out) = (at("a1", "quiesce-undo:"), at("a2", "quiesce-undo:"));
    assert!(a2_in < a1_out && a1_in < a2_out, "rack 1 out together");
    assert!(
        b1_in > a1_out && b1_in > a2_out,
        "rack 2 after rack 1 is back"
    );
    assert_eq!(
        env.snapshots().await.len(),
        9,
        "every device of every node in the set"
    );
}

/// Zone loss (R4) end to end against moto and the Enterprise emulator: us-east-1a (rack 1: a1,
/// a2) stops answering while its instances still run. `lose-1a` rebuilds both nodes in
/// us-east-1c at the addresses it declares, from the last set: each keeps its rack and the node
/// id the set recorded, its config names the new peers, and it answers there. The old instances
/// are asked to stop and keep their volumes; nothing there is detached or terminated. Planned
/// again, the move stands and is not made twice; `status` says where the nodes went until the
/// policy places them there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn r4_a_lost_zones_rack_is_rebuilt_in_another_zone_on_the_enterprise_emulator() {
    let instance = "  instance:                       # defaults for replacement instances (R4)\n";
    let restore = "  - name: lose-1a\n    scope: node\n    nodes: [a1, a2]\n    source: latest-backup\n    accept_zombie_records: true\n    zone: {to: us-east-1c, private_ips: {a1: 127.0.3.118, a2: 127.0.3.119}}\n";
    let mut env = env(
        118,
        &[
            (
                instance,
                &format!("  racks: {{us-east-1a: 1, us-east-1b: 2}}\n{instance}"),
            ),
            ("restores:\n", &format!("restores:\n{restore}")),
        ],
    )
    .await;
    let subnet_c = env.add_subnet("us-east-1c", "127.0.3.0/24").await;
    let b = env.subnet("us-east-1b").to_string();
    env.edit_policy(
        &format!("us-east-1b: {b}}}"),
        &format!("us-east-1b: {b}, us-east-1c: {subnet_c}}}"),
    );
    let ids: BTreeMap<&str, String> = ["a1", "a2"]
        .into_iter()
        .map(|n| (n, env.nodes.node_id(n)))
        .collect();
    env.ok(&["apply", "--yes"]);
    let old: BTreeMap<&str, String> = ["a1", "a2"]
        .into_iter()
        .map(|n| (n, env.layout_instance(n)))
        .collect();

    // The zone is lost: its nodes stop answering, their instances still "run".
    for (n, ip) in [("a1", "127.0.3.118"), ("a2", "127.0.3.119")] {
        std::fs::write(env.dir.path().join(format!("control/{n}.down")), "").unwrap();
        env.nodes.move_to(n, ip).await.unwrap();
        // A new instance would derive another id from its MAC.
        env.nodes.set_node_id(n, "FEED00000000AA");
    }
    let plan = env.ok(&["plan", "--restore", "lose-1a"]);
    assert!(
        plan.contains("asked to stop (not waited for)") && plan.contains("keeping rack 1"),
        "{plan}"
    );
    assert!(
        !plan.contains("detach_volume") && !plan.contains("terminate_instance"),
        "{plan}"
    );
    env.ok(&["apply", "--yes", "--restore", "lose-1a"]);

    for (n, ip) in [("a1", "127.0.3.118"), ("a2", "127.0.3.119")] {
        let live = env.live_instances(n).await;
        assert_eq!(live.len(), 1, "{n}: only the replacement runs");
        let new = &live[0];
        assert_eq!(new.private_ip_address(), Some(ip));
        assert_eq!(
            new.placement().and_then(|p| p.availability_zone()),
            Some("us-east-1c")
        );
        let tags: BTreeMap<&str, &str> = new
            .tags()
            .iter()
            .filter_map(|t| Some((t.key()?, t.value()?)))
            .collect();
        assert_eq!(tags.get("asdr:restore"), Some(&"lose-1a"));
        assert!(tags.contains_key("asdr:restore-complete"), "{tags:?}");
        // Its volumes were made from the set, in the new zone.
        let volumes = env.volumes_of(new.instance_id().unwrap()).await;
        for dev in ["/dev/sdf", "/dev/sdg", "/dev/sdh"] {
            let v = &volumes[dev];
            assert!(v.snapshot_id().is_some_and(|s| !s.is_empty()));
            assert_eq!(v.availability_zone(), Some("us-east-1c"));
        }
        // The old instance was stopped, not terminated, and keeps its volumes.
        let was = env
            .ec2
            .describe_instances()
            .instance_ids(&old[n])
            .send()
            .await
            .unwrap();
        let was = &was.reservations()[0].instances()[0];
        assert_eq!(
            was.state().and_then(|s| s.name()).map(|s| s.as_str()),
            Some("stopped")
        );
        let kept = env.volumes_of(&old[n]).await;
        for dev in ["/dev/sdf", "/dev/sdg", "/dev/sdh"] {
            assert!(kept.contains_key(dev), "{n}'s old {dev} kept: {kept:?}");
        }
        let conf =
            std::fs::read_to_string(env.dir.path().join(format!("nodes/{n}/aerospike.conf")))
                .unwrap();
        assert!(conf.contains(&format!("node-id {}", ids[n])), "{conf}");
        assert!(
            conf.contains("rack-id 1") && !conf.contains("rack-id 2"),
            "{conf}"
        );
        assert!(conf.contains(&format!("address {ip}")), "{conf}");
        assert!(env.nodes.is_up(n));
        assert_eq!(env.nodes.node_id(n), ids[n], "{n} rejoined as itself");
    }

    let again = env.ok(&["plan", "--restore", "lose-1a"]);
    assert!(
        again.contains("moved a1, a2 and they stand") && again.contains("0 steps"),
        "{again}"
    );
    let out = env.asdr(&["status"]);
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{text}");
    assert!(text.contains("since restore `lose-1a` moved it"), "{text}");
    // The policy updated as the plan said: the cluster is whole where it runs now.
    let root_ip = |n: &str| env.layout_ip(n);
    for (n, ip) in [("a1", "127.0.3.118"), ("a2", "127.0.3.119")] {
        env.edit_policy(
            &format!(
                "private_ip: {}\n      availability_zone: us-east-1a\n",
                root_ip(n)
            ),
            &format!("private_ip: {ip}\n      availability_zone: us-east-1c\n      rack: 1\n"),
        );
    }
    let status = env.ok(&["status"]);
    assert!(status.contains("3 of 3 up"), "{status}");
}

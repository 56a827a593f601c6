//! `asdr status` on the example's world files: the RPO as an exit code, the restores' bounds, the
//! lock and the last apply, and the OpenMetrics output read back by a Prometheus text parser.

use std::collections::BTreeMap;

use crate::apply::Scratch;

fn stdout(o: &std::process::Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The samples of an OpenMetrics text, by metric name and labels, as Prometheus reads them.
fn metrics(text: &str) -> BTreeMap<(String, BTreeMap<String, String>), f64> {
    let lines = text.lines().map(|l| Ok(l.to_string()));
    let scrape = prometheus_parse::Scrape::parse(lines).expect("Prometheus parses it");
    scrape
        .samples
        .into_iter()
        .map(|s| {
            let value = match s.value {
                prometheus_parse::Value::Gauge(v) => v,
                other => panic!("{}: not a gauge: {other:?}", s.metric),
            };
            let labels = s
                .labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect();
            ((s.metric, labels), value)
        })
        .collect()
}

fn cluster() -> BTreeMap<String, String> {
    BTreeMap::from([("cluster".to_string(), "prod-east".to_string())])
}

#[test]
fn status_exits_0_within_the_rpo_and_2_when_the_newest_complete_set_is_older() {
    let s = Scratch::of("prod-east");
    // Backups in order, but a node's instance terminated: not fine, and it says which restore
    // brings the node back.
    let down = s.asdr("world-failed-node.yaml", &["status"], &[]);
    assert_eq!(down.status.code(), Some(2), "{}", stdout(&down));
    let text = stdout(&down);
    assert!(
        text.contains("newest complete set bs-20261121T030000Z taken 6h 0m ago")
            && text.contains("within the RPO"),
        "{text}"
    );
    assert!(
        text.contains("  nodes:      2 of 3 up; a1 gone (terminated or missing)\n")
            && text.contains("    - node a1 is gone (terminated or missing): the cluster is not whole (restores `replace-a1`, `a1-refill`, `a1-from-backup` bring it back)\n"),
        "{text}"
    );
    // The restore it names rebuilds the node: then status is fine.
    crate::support::ok(&s.asdr(
        "world-failed-node.yaml",
        &["apply", "--restore", "replace-a1", "--yes"],
        &[],
    ));
    let within = s.asdr("world-failed-node.yaml", &["status"], &[]);
    assert_eq!(within.status.code(), Some(0), "{}", stdout(&within));
    assert!(
        stdout(&within).contains("  nodes:      3 of 3 up\n"),
        "{}",
        stdout(&within)
    );
    let due = s.asdr("world-backup-due.yaml", &["status"], &[]);
    assert_eq!(due.status.code(), Some(2), "{}", stdout(&due));
    assert!(stdout(&due).contains("OVERDUE"), "{}", stdout(&due));
    let json: serde_json::Value = serde_json::from_str(&stdout(&s.asdr(
        "world-backup-due.yaml",
        &["status", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["overdue"], true);
    assert_eq!(json["newest_complete"]["age_seconds"], 31 * 3600);
    assert_eq!(json["complete_sets"].as_array().unwrap().len(), 7);
    // a1-from-backup declares 300 MiB/s: its 500 GiB volumes take at least 1,707 s to load.
    let restore = json["restores"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["name"] == "a1-from-backup")
        .unwrap();
    assert_eq!(restore["estimate_seconds"], 1707);
    assert_eq!(restore["set"], "bs-20261120T020000Z");
}

#[test]
fn status_in_openmetrics_parses_as_prometheus_gauges_with_the_backup_age_rpo_and_restore_bounds() {
    let s = Scratch::of("prod-east");
    let out = s.asdr(
        "world-failed-node.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    // A node is down (its instance terminated): not fine.
    assert_eq!(out.status.code(), Some(2));
    let text = stdout(&out);
    assert!(text.ends_with("# EOF\n"), "OpenMetrics ends with # EOF");
    let m = metrics(&text);
    let get = |name: &str, labels: BTreeMap<String, String>| {
        *m.get(&(name.to_string(), labels))
            .unwrap_or_else(|| panic!("no {name} in\n{text}"))
    };
    assert_eq!(get("asdr_backup_age_seconds", cluster()), 21_600.0);
    assert_eq!(get("asdr_backup_rpo_seconds", cluster()), 86_400.0);
    assert_eq!(get("asdr_backup_sets", cluster()), 7.0);
    assert_eq!(get("asdr_backup_overdue", cluster()), 0.0);
    assert_eq!(
        get("asdr_backup_last_complete_timestamp_seconds", cluster()),
        // 2026-11-21T03:00:00Z
        1_795_230_000.0
    );
    let mut restore = cluster();
    restore.insert("restore".into(), "a1-from-backup".into());
    assert_eq!(get("asdr_restore_estimate_seconds", restore), 1707.0);
    assert_eq!(get("asdr_lock_held", cluster()), 0.0);
    for (node, up) in [("a1", 0.0), ("b1", 1.0), ("a2", 1.0)] {
        let mut labels = cluster();
        labels.insert("node".into(), node.into());
        assert_eq!(get("asdr_node_up", labels), up, "{node}");
    }
    for r in ["replace-a1", "a1-refill", "a1-from-backup", "full-cluster"] {
        let mut labels = cluster();
        labels.insert("restore".into(), r.into());
        assert_eq!(get("asdr_restore_ready", labels), 1.0, "{r}");
    }
    assert_eq!(get("asdr_recovery_problems", cluster()), 1.0);
    assert!(
        !m.keys()
            .any(|(n, _)| n == "asdr_apply_last_success_timestamp_seconds"),
        "no apply has run here"
    );
}

#[test]
fn status_names_the_lock_holder_and_the_last_apply_and_when_it_succeeded() {
    let s = Scratch::of("prod-east");
    let applied = s.asdr("world-backup-due.yaml", &["apply", "--yes", "-q"], &[]);
    assert!(
        applied.status.success(),
        "{}",
        String::from_utf8_lossy(&applied.stderr)
    );
    let holder = asdr_executor::lock::Holder {
        pid: 4242,
        host: "ops-box".into(),
        plan_id: "p-held".into(),
        since: "2026-11-22T03:00:00Z".into(),
    };
    let lock =
        asdr_executor::lock::acquire(&s.path(".asdr/locks/prod-east.lock"), &holder).unwrap();
    let out = s.asdr("world-backup-due.yaml", &["status"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "the backup just ran:\n{text}");
    assert!(text.contains("apply lock: pid 4242 on ops-box"), "{text}");
    assert!(
        text.contains("last apply: backup p-") && text.contains(" succeeded at "),
        "{text}"
    );
    // To the second, and said to be this machine's clock beside a world file's "as of".
    let line = text
        .lines()
        .find(|l| l.contains("last apply:"))
        .unwrap()
        .to_string();
    let at = line
        .split(" succeeded at ")
        .nth(1)
        .unwrap()
        .split(' ')
        .next()
        .unwrap();
    assert!(
        at.len() == "2026-12-07T11:40:13Z".len() && at.ends_with('Z') && !at.contains('.'),
        "{line}"
    );
    assert!(
        line.ends_with("(this machine's clock; the world file's time is above)"),
        "{line}"
    );
    let m = metrics(&stdout(&s.asdr(
        "world-backup-due.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    )));
    assert_eq!(m[&("asdr_lock_held".to_string(), cluster())], 1.0);
    assert!(
        m[&(
            "asdr_apply_last_success_timestamp_seconds".to_string(),
            cluster()
        )] > 1.7e9
    );
    drop(lock);
    let text = stdout(&s.asdr("world-backup-due.yaml", &["status"], &[]));
    assert!(text.contains("apply lock: free"), "{text}");
}

/// `status` on a world that holds nothing of the cluster (another cluster's file, the wrong
/// region or account) refuses as `plan` does, rather than report every node gone.
#[test]
fn status_on_a_world_holding_nothing_of_the_cluster_refuses_as_plan_does() {
    let s = Scratch::of("prod-east");
    std::fs::write(s.path("empty.yaml"), "now: \"2026-11-21T09:00:00Z\"\n").unwrap();
    let out = s.asdr("empty.yaml", &["status"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("the world holds nothing of cluster `prod-east`"),
        "{err}"
    );
    assert!(stdout(&out).is_empty(), "{}", stdout(&out));
}

/// Review finding: a node that answers is not therefore fine — one that sees a cluster of its
/// own (split off), or reports partitions it cannot serve, made `status` say fine (exit 0).
#[test]
fn status_is_not_fine_while_a_node_answers_split_off_or_with_partitions_it_cannot_serve() {
    let s = Scratch::of("prod-east");
    let w = "world-backup-due.yaml";
    crate::support::ok(&s.asdr(w, &["apply", "--yes"], &[]));
    let fine = s.asdr(w, &["status"], &[]);
    assert_eq!(fine.status.code(), Some(0), "{}", stdout(&fine));
    s.edit(w, "  cluster_size: 3\n", "  cluster_size: 1\n");
    let split = s.asdr(w, &["status"], &[]);
    assert_eq!(split.status.code(), Some(2), "{}", stdout(&split));
    assert!(
        stdout(&split).contains("node a1 sees a cluster of 1 nodes, but 3 answer"),
        "{}",
        stdout(&split)
    );
    s.edit(w, "  cluster_size: 1\n", "  cluster_size: 3\n");
    s.edit(
        w,
        "  unavailable_partitions: 0\n",
        "  unavailable_partitions: 4096\n",
    );
    let lost = s.asdr(w, &["status"], &[]);
    assert_eq!(lost.status.code(), Some(2), "{}", stdout(&lost));
    assert!(
        stdout(&lost).contains("node a1 reports 0 dead and 4096 unavailable partitions"),
        "{}",
        stdout(&lost)
    );
}

/// A world with a fourth node, `n9`, running and tagged for the cluster, which the policy does not
/// name: every node counts four members.
fn world_with_undeclared_n9(s: &Scratch) {
    let path = s.path("world-failed-node.yaml");
    let text = std::fs::read_to_string(s.path("world-backup-due.yaml")).unwrap();
    let n9 = "- id: i-0n9\n  state: running\n  type: i4i.2xlarge\n  private_ip: \"10.0.1.19\"\n  \
              availability_zone: us-east-1a\n  subnet_id: subnet-0aaa\n  instance_store_drives: 2\n  \
              tags:\n    \"asdr:cluster\": prod-east\n    \"asdr:node\": n9\n";
    assert!(text.contains("instances:\n") && text.contains("cluster_size: 3"));
    let text = text
        .replacen("instances:\n", &format!("instances:\n{n9}"), 1)
        .replace("cluster_size: 3", "cluster_size: 4");
    std::fs::write(path, text).unwrap();
}

#[test]
fn a_node_the_policy_does_not_name_is_drift_in_plan_and_status_and_not_fine() {
    let s = Scratch::of("prod-east");
    world_with_undeclared_n9(&s);
    let out = s.asdr("world-failed-node.yaml", &["status"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(2), "{text}");
    assert!(
        text.contains(
            "    - drift: instance i-0n9 (10.0.1.19, running) is tagged asdr:cluster=prod-east and asdr:node=n9, but the policy declares no node `n9`: its volumes are in no backup set; declare it in cluster.nodes, or remove its asdr tags if it is not this cluster's\n"
        ),
        "{text}"
    );
    assert!(
        text.contains("    - drift: node a1 sees a cluster of 4 nodes, but the policy declares 3: 1 member(s) the policy does not name are in no backup set; declare every node in cluster.nodes\n"),
        "{text}"
    );
    // Four members is not a split: the policy is behind, not the cluster.
    assert!(!text.contains("the cluster is split"), "{text}");
    let om = stdout(&s.asdr(
        "world-failed-node.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    ));
    let m = metrics(&om);
    assert_eq!(m[&("asdr_drift".to_string(), cluster())], 2.0, "{om}");
    // The backup that is due is refused (a set without n9 would miss its data), and the refusal
    // says why: the node the policy does not name, not a policy node's fault.
    let plan = s.asdr("world-failed-node.yaml", &["plan"], &[]);
    assert_eq!(plan.status.code(), Some(1));
    let err = String::from_utf8_lossy(&plan.stderr);
    assert!(
        err.contains("help: the cluster has a member the policy does not name (instance i-0n9 (10.0.1.19, running) is tagged asdr:cluster=prod-east and asdr:node=n9, but the policy declares no node `n9`"),
        "{err}"
    );
    // A restore's plan goes on, and carries the drift as a warning.
    let restore = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "a1-refill"],
        &[],
    );
    let text = stdout(&restore);
    assert!(
        text.contains("[drift] instance i-0n9 (10.0.1.19, running) is tagged asdr:cluster=prod-east and asdr:node=n9"),
        "{text}{}",
        String::from_utf8_lossy(&restore.stderr)
    );
}

#[test]
fn a_stopped_leftover_of_a_removed_node_is_drift_but_not_a_problem() {
    let s = Scratch::of("prod-east");
    let text = std::fs::read_to_string(s.path("world-failed-node.yaml")).unwrap();
    let old = "- id: i-0old\n  state: stopped\n  type: i4i.2xlarge\n  private_ip: \"10.0.1.30\"\n  \
               availability_zone: us-east-1a\n  instance_store_drives: 2\n  tags:\n    \
               \"asdr:cluster\": prod-east\n    \"asdr:node\": a3\n";
    std::fs::write(
        s.path("world-failed-node.yaml"),
        text.replacen("instances:\n", &format!("instances:\n{old}"), 1),
    )
    .unwrap();
    // The failed node's restore brings the cluster back whole; the leftover stays drift.
    crate::support::ok(&s.asdr(
        "world-failed-node.yaml",
        &["apply", "--restore", "replace-a1", "--yes"],
        &[],
    ));
    let out = s.asdr("world-failed-node.yaml", &["status"], &[]);
    let text = stdout(&out);
    assert_eq!(out.status.code(), Some(0), "{text}");
    assert!(
        text.contains("  drift:      found in the world, not declared in the policy:\n    - instance i-0old (10.0.1.30, stopped) is tagged asdr:cluster=prod-east and asdr:node=a3, but the policy declares no node `a3`: declare it in cluster.nodes if it comes back, or remove its asdr tags\n"),
        "{text}"
    );
}

#[test]
fn a_restore_without_a_usable_set_is_not_ready_and_status_is_not_fine() {
    let s = Scratch::of("prod-east");
    // Every snapshot gone: the restores from a backup have nothing to restore from.
    let mut world: serde_json::Value = serde_json::to_value(
        asdr_providers::world_file::load(&s.path("world-failed-node.yaml")).unwrap(),
    )
    .unwrap();
    world["snapshots"] = serde_json::json!([]);
    std::fs::write(
        s.path("world-failed-node.yaml"),
        serde_json::to_string(&world).unwrap(),
    )
    .unwrap();
    let out = s.asdr(
        "world-failed-node.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    assert_eq!(out.status.code(), Some(2));
    let m = metrics(&stdout(&out));
    for (r, ready) in [
        ("replace-a1", 1.0),
        ("a1-refill", 1.0),
        ("a1-from-backup", 0.0),
        ("full-cluster", 0.0),
    ] {
        let mut labels = cluster();
        labels.insert("restore".into(), r.into());
        assert_eq!(m[&("asdr_restore_ready".to_string(), labels)], ready, "{r}");
    }
}

#[test]
fn a_restores_time_objective_is_stated_by_plan_status_and_openmetrics_and_unmet_is_not_fine() {
    let s = Scratch::of("prod-east");
    // a1-from-backup: 500 GiB at 300 MiB/s (1,707 s) after a 2-minute launch, a 1-minute join.
    s.edit(
        "asdr.yaml",
        "    volume: {type: gp3, iops: 16000, throughput: 1000, initialization_rate: 300}\n",
        "    volume: {type: gp3, iops: 16000, throughput: 1000, initialization_rate: 300}\n    rto: 15m\n",
    );
    let plan = s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "a1-from-backup"],
        &[],
    );
    let text = stdout(&plan);
    assert!(
        text.contains(
            "Restore time: 31m 27s (launch 2m, volumes 30s, cold-start 28m 27s, cluster 1m), objective 15m"
        ),
        "{text}"
    );
    assert!(
        text.contains(
            "[RTO] restore `a1-from-backup`: estimated 31m 27s exceeds the objective 15m"
        ),
        "{text}"
    );
    let json: serde_json::Value = serde_json::from_str(&stdout(&s.asdr(
        "world-failed-node.yaml",
        &["plan", "--restore", "a1-from-backup", "--json"],
        &[],
    )))
    .unwrap();
    assert_eq!(json["rto"]["total_seconds"], 120 + 1707 + 60);
    assert_eq!(json["rto"]["objective_seconds"], 900);
    assert_eq!(json["rto"]["phases"][2]["phase"], "cold-start");
    // status: the restore's time, and the objective it cannot meet is a problem (exit 2).
    let status = s.asdr("world-backup-due.yaml", &["status"], &[]);
    let text = stdout(&status);
    assert_eq!(status.status.code(), Some(2), "{text}");
    assert!(
        text.contains("restore `a1-from-backup`: estimated 31m 27s exceeds the objective 15m"),
        "{text}"
    );
    let out = s.asdr(
        "world-backup-due.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    let m = metrics(&stdout(&out));
    let mut restore = cluster();
    restore.insert("restore".into(), "a1-from-backup".into());
    assert_eq!(
        m[&(
            "asdr_restore_rto_estimate_seconds".to_string(),
            restore.clone()
        )],
        1887.0
    );
    assert_eq!(
        m[&("asdr_restore_rto_objective_seconds".to_string(), restore)],
        900.0
    );
    // A restore whose volumes load lazily has no total: no estimate gauge, and no objective.
    let mut full = cluster();
    full.insert("restore".into(), "full-cluster".into());
    assert!(!m.contains_key(&(
        "asdr_restore_rto_estimate_seconds".to_string(),
        full.clone()
    )));
    assert!(!m.contains_key(&("asdr_restore_rto_objective_seconds".to_string(), full)));
    // Applied, the restore says how long each phase took against its estimate.
    let applied = s.asdr(
        "world-failed-node.yaml",
        &["apply", "--restore", "a1-from-backup", "--yes"],
        &[],
    );
    let text = stdout(&applied);
    assert!(applied.status.success(), "{text}");
    assert!(
        text.contains("Restore time: ")
            && text.contains(" measured (launch ")
            && text.contains("(estimated 2m 0s)")
            && text.contains(", estimated 31m 27s"),
        "{text}"
    );
}

#[test]
fn a_drill_records_its_measured_phases_and_status_gives_its_last_success_and_restore_time() {
    let s = Scratch::of("prod-east-dr");
    // The cluster's instances carry its id once a backup has run; the drill's stand-ins do too.
    let backup = s.asdr("world-with-copies.yaml", &["apply", "--yes"], &[]);
    assert!(backup.status.success(), "{}", stdout(&backup));
    let before = s.asdr(
        "world-with-copies.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    assert!(!stdout(&before).contains("asdr_drill_last_success_timestamp_seconds{"));
    let drill = s.asdr(
        "world-with-copies.yaml",
        &["drill", "failover", "--yes"],
        &[],
    );
    assert!(drill.status.success(), "{}", stdout(&drill));
    let dir = s.path(".asdr/drills");
    let report = std::fs::read_dir(&dir)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.extension().is_some_and(|x| x == "json"))
        .expect("a JSON report");
    let v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&report).unwrap()).unwrap();
    let measured = &v["restore_time"]["measured"];
    let phases: Vec<&str> = measured["phases"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["phase"].as_str().unwrap())
        .collect();
    assert_eq!(
        phases,
        ["launch", "volumes", "cold-start+cluster"],
        "{measured}"
    );
    // Each phase is compared with its estimate; the drill's restore loads lazily, so the total
    // has none.
    assert_eq!(measured["phases"][0]["estimate_seconds"], 120);
    assert!(measured["total_seconds"].as_f64().unwrap() > 0.0);
    assert!(v["restore_time"]["estimate"]["phases"].is_array());
    let md = std::fs::read_to_string(report.with_extension("md")).unwrap();
    assert!(md.contains("Restore time: **"), "{md}");
    let out = s.asdr(
        "world-with-copies.yaml",
        &["status", "--format", "openmetrics"],
        &[],
    );
    let m = metrics(&stdout(&out));
    let mut labels = cluster();
    labels.insert("drill".into(), "failover".into());
    let finished = time::OffsetDateTime::parse(
        v["finished"].as_str().unwrap(),
        &time::format_description::well_known::Rfc3339,
    )
    .unwrap();
    assert_eq!(
        m[&(
            "asdr_drill_last_success_timestamp_seconds".to_string(),
            labels.clone()
        )],
        finished.unix_timestamp() as f64
    );
    let rto = m[&("asdr_drill_rto_seconds".to_string(), labels)];
    assert!(
        (rto - measured["total_seconds"].as_f64().unwrap()).abs() < 0.01,
        "{rto}"
    );
    let text = stdout(&s.asdr("world-with-copies.yaml", &["status"], &[]));
    assert!(text.contains("  drill failover: last passed "), "{text}");
}

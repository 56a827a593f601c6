//! `cargo bench -p asdr --bench apply`: the executor against the world-file provider with 50 ms of
//! simulated latency on every provider call.
//!
//! 1. 64 nodes × 4 devices, multi-volume backup: apply wall time against the plan's critical-path
//!    time (the longest dependency chain, each step weighted by its measured duration: what an
//!    executor with unlimited parallelism and no overhead would take). Target: ≤ 1.3×.
//! 2. The same cluster with `consistency: quiesce` and `max_nodes_at_once: 1`: each node's
//!    write-stop window (quiesce started → unquiesce done).

use std::collections::HashMap;
use std::path::Path;
use std::process::{Command, Stdio};

use asdr_planner::Plan;
use asdr_planner::testkit::{CONFIG_TEMPLATE, WorldSpec, policy_yaml, world_for};
use time::macros::datetime;

const NODES: usize = 64;
const DEVICES: usize = 4;
const SIMULATION: &str =
    "latency_ms: 50\nsnapshot_polls: 3\npoll_interval_ms: 50\nmigration_polls: 1\n";

fn setup(dir: &Path, consistency: &str) {
    std::fs::create_dir_all(dir).unwrap();
    let _ = std::fs::remove_dir_all(dir.join(".asdr"));
    std::fs::write(
        dir.join("asdr.yaml"),
        policy_yaml(NODES, DEVICES, consistency, "enterprise", 7),
    )
    .unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    std::fs::write(dir.join("sim.yaml"), SIMULATION).unwrap();
    let policy = asdr_specs::load(&dir.join("asdr.yaml")).unwrap();
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.sets = 1;
    spec.newest_set_age = time::Duration::hours(30);
    let world = world_for(&policy, &spec);
    std::fs::write(
        dir.join("world.json"),
        serde_json::to_string(&world).unwrap(),
    )
    .unwrap();
}

fn asdr(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_asdr"))
        .current_dir(dir)
        .env("ASDR_SIMULATION", dir.join("sim.yaml"))
        .args(["-f", "asdr.yaml", "--world", "world.json"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

struct Run {
    plan: Plan,
    took: HashMap<String, f64>,
    wall: f64,
    write_stop: Vec<(String, f64)>,
}

fn apply(dir: &Path, consistency: &str, parallelism: &str) -> Run {
    setup(dir, consistency);
    let plan: Plan = serde_json::from_str(&asdr(dir, &["plan", "--json"])).unwrap();
    let out = asdr(
        dir,
        &["apply", "--yes", "--json", "--parallelism", parallelism],
    );
    let mut took = HashMap::new();
    let mut wall = 0.0;
    let mut write_stop = Vec::new();
    for line in out.lines() {
        let v: serde_json::Value = serde_json::from_str(line).unwrap();
        match v["event"].as_str() {
            Some("finished") => {
                took.insert(
                    v["step"].as_str().unwrap().to_string(),
                    v["seconds"].as_f64().unwrap_or(0.0),
                );
            }
            Some("summary") => {
                assert_eq!(v["failed"], 0);
                wall = v["wall_seconds"].as_f64().unwrap();
                for (n, s) in v["write_stop_seconds"].as_object().unwrap() {
                    write_stop.push((n.clone(), s.as_f64().unwrap()));
                }
            }
            _ => {}
        }
    }
    Run {
        plan,
        took,
        wall,
        write_stop,
    }
}

/// The longest chain of dependent steps, each weighted by its measured duration. Steps are listed
/// in execution order, so one pass suffices.
fn critical_path_seconds(run: &Run) -> (f64, usize) {
    let mut finish: HashMap<&str, (f64, usize)> = HashMap::new();
    for s in &run.plan.steps {
        let (start, n) = s
            .depends_on
            .iter()
            .map(|d| finish[d.as_str()])
            .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a });
        finish.insert(
            &s.id,
            (start + run.took.get(&s.id).copied().unwrap_or(0.0), n + 1),
        );
    }
    finish
        .values()
        .copied()
        .fold((0.0, 0), |a, b| if b.0 > a.0 { b } else { a })
}

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-apply");
    println!(
        "{NODES} nodes × {DEVICES} devices, 50 ms latency per provider call, snapshots pending for 3 polls 50 ms apart"
    );
    for parallelism in ["256", "64", "10"] {
        let run = apply(&dir, "multi-volume", parallelism);
        let (cp, len) = critical_path_seconds(&run);
        println!(
            "multi-volume backup, --parallelism {parallelism:>3}: {} steps, apply wall {:.3} s, critical path {:.3} s ({len} steps), ratio {:.2}",
            run.plan.steps.len(),
            run.wall,
            cp,
            run.wall / cp
        );
    }
    let run = apply(&dir, "quiesce", "256");
    let (cp, len) = critical_path_seconds(&run);
    let mut windows: Vec<f64> = run.write_stop.iter().map(|(_, s)| *s).collect();
    windows.sort_by(f64::total_cmp);
    println!(
        "quiesce backup, max_nodes_at_once 1: {} steps, apply wall {:.3} s, critical path {:.3} s ({len} steps), ratio {:.2}",
        run.plan.steps.len(),
        run.wall,
        cp,
        run.wall / cp
    );
    println!(
        "write-stop window per node ({} nodes): min {:.3} s, median {:.3} s, max {:.3} s",
        windows.len(),
        windows[0],
        windows[windows.len() / 2],
        windows[windows.len() - 1]
    );
    let shown: Vec<String> = run
        .write_stop
        .iter()
        .take(8)
        .map(|(n, s)| format!("{n} {s:.3}"))
        .collect();
    println!("  first nodes: {} …", shown.join(", "));
}

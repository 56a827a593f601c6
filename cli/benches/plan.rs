//! `cargo bench -p asdr --bench plan`: the planner at scale.
//!
//! Generates a cluster of 256 nodes × 4 EBS devices with 60 retained daily sets (61,440
//! snapshots; a backup is due, so retention also expires a set), then measures
//! 1. `asdr plan --world` as a whole process (parse, observe, plan, render), wall time and
//!    peak RSS, for the JSON and the YAML world file;
//! 2. `plan()` alone (policy and world already in memory), over repeated runs.
//!
//! Targets: process ≤ 1.0 s and ≤ 300 MB; planner ≤ 100 ms. Figures go in docs/benchmarks.md.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use asdr_planner::testkit::{CONFIG_TEMPLATE, WorldSpec, policy_yaml, world_for};
use asdr_planner::{Operation, plan};
use time::macros::datetime;

const NODES: usize = 256;
const DEVICES: usize = 4;
const SETS: usize = 60;

fn main() {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-plan");
    // Linux carries a forked child's pre-exec RSS high-water mark into its ru_maxrss, so the
    // process that spawns `asdr` must stay small: the world is generated in a child process, and
    // loaded here only after the process figures are taken.
    if std::env::var_os("ASDR_BENCH_GENERATE").is_some() {
        generate(&dir);
        return;
    }
    let status = Command::new(std::env::current_exe().unwrap())
        .env("ASDR_BENCH_GENERATE", "1")
        .status()
        .unwrap();
    assert!(status.success(), "world generation failed");
    let json_path = dir.join("world.json");
    let yaml_path = dir.join("world.yaml");
    let manifests_path = dir.join("world-manifests.json");

    // 1. The whole process.
    let exe = env!("CARGO_BIN_EXE_asdr");
    for (label, world_path, extra) in [
        ("asdr plan --world world.json", &json_path, None),
        (
            "asdr plan --world world.json --json",
            &json_path,
            Some("--json"),
        ),
        (
            "asdr plan --world world.json --restore full-cluster",
            &json_path,
            Some("--restore=full-cluster"),
        ),
        ("asdr plan --world world.yaml", &yaml_path, None),
        // Every retained set with its manifest (each checksum verified on every plan).
        (
            "asdr plan --world world-manifests.json",
            &manifests_path,
            None,
        ),
        (
            "… world-manifests.json --restore full-cluster",
            &manifests_path,
            Some("--restore=full-cluster"),
        ),
    ] {
        let mut walls = Vec::new();
        let mut peak_kb = 0;
        for _ in 0..7 {
            let mut cmd = Command::new(exe);
            cmd.arg("-f")
                .arg(dir.join("asdr.yaml"))
                .arg("--world")
                .arg(world_path)
                .arg("plan");
            if let Some(e) = extra {
                cmd.arg(e);
            }
            cmd.stdout(Stdio::null()).stderr(Stdio::inherit());
            let t = Instant::now();
            // Reaped by wait4 below, which also reads the child's peak RSS.
            #[allow(clippy::zombie_processes)]
            let child = cmd.spawn().unwrap();
            let (status, rss_kb) = wait_with_rusage(child.id() as libc::pid_t);
            walls.push(t.elapsed());
            assert!(status == 0, "asdr exited {status}");
            peak_kb = peak_kb.max(rss_kb);
        }
        walls.sort();
        println!(
            "{label:<52} wall min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms  peak RSS {:>6.1} MB",
            ms(walls[0]),
            ms(walls[walls.len() / 2]),
            ms(walls[walls.len() - 1]),
            peak_kb as f64 / 1024.0
        );
    }

    // 2. The planner function alone (policy and world already in memory), and the digest in it.
    let policy = asdr_specs::load(&dir.join("asdr.yaml")).expect("generated policy is valid");
    let world = asdr_providers::world_file::load(&json_path).unwrap();
    let now = world.now.unwrap();
    let mut times = Vec::new();
    for _ in 0..15 {
        let t = Instant::now();
        std::hint::black_box(asdr_planner::world_digest(&world));
        times.push(t.elapsed());
    }
    report("world_digest() (part of plan())", &mut times, 0);
    for (label, op) in [
        ("plan() backup (due + retention)", Operation::Backup),
        (
            "plan() full-cluster restore",
            Operation::Restore("full-cluster".into()),
        ),
    ] {
        let mut times = Vec::new();
        let mut steps = 0;
        for _ in 0..15 {
            let t = Instant::now();
            let p = plan(&policy, &world, now, &op).unwrap();
            times.push(t.elapsed());
            steps = p.steps.len();
            std::hint::black_box(p);
        }
        report(label, &mut times, steps);
    }
}

fn generate(dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    let policy_text = policy_yaml(NODES, DEVICES, "multi-volume", "enterprise", SETS as u32);
    std::fs::write(dir.join("asdr.yaml"), &policy_text).unwrap();
    std::fs::write(dir.join("aerospike.conf.j2"), CONFIG_TEMPLATE).unwrap();
    let policy = asdr_specs::load(&dir.join("asdr.yaml")).expect("generated policy is valid");
    let mut spec = WorldSpec::new(datetime!(2026-11-21 09:00:00 UTC));
    spec.sets = SETS;
    spec.newest_set_age = time::Duration::hours(30);
    let world = world_for(&policy, &spec);
    let json_path = dir.join("world.json");
    let yaml_path = dir.join("world.yaml");
    std::fs::write(&json_path, serde_json::to_string(&world).unwrap()).unwrap();
    let mut with = world.clone();
    asdr_planner::testkit::with_manifests(&policy, &mut with);
    std::fs::write(
        dir.join("world-manifests.json"),
        serde_json::to_string(&with).unwrap(),
    )
    .unwrap();
    std::fs::write(
        &yaml_path,
        asdr_providers::world_file::to_string(&world, asdr_providers::world_file::Format::Yaml)
            .unwrap(),
    )
    .unwrap();
    let size = |p: &Path| std::fs::metadata(p).unwrap().len() as f64 / 1e6;
    println!(
        "world: {NODES} nodes × {DEVICES} devices × {SETS} sets = {} snapshots, {} volumes; world.json {:.1} MB, world.yaml {:.1} MB",
        world.snapshots.len(),
        world.volumes.len(),
        size(&json_path),
        size(&yaml_path)
    );
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn report(label: &str, times: &mut [Duration], steps: usize) {
    times.sort();
    println!(
        "{label:<40} min {:>7.1} ms  median {:>7.1} ms  max {:>7.1} ms  ({steps} steps)",
        ms(times[0]),
        ms(times[times.len() / 2]),
        ms(times[times.len() - 1])
    );
}

/// Waits for one child and returns its exit status and its own peak RSS (KiB), from wait4.
#[allow(unsafe_code)] // wait4 is the only way to read one child's own peak RSS
fn wait_with_rusage(pid: libc::pid_t) -> (i32, i64) {
    let mut status = 0;
    // SAFETY: rusage is plain data that wait4 fills in; pid is a child we spawned and did not reap.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    let r = unsafe { libc::wait4(pid, &mut status, 0, &mut usage) };
    assert_eq!(r, pid, "wait4 failed");
    let code = if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        -1
    };
    (code, usage.ru_maxrss)
}

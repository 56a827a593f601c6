//! `asdr apply` on world files, end to end through the real binary: convergence, crash safety
//! (kill -9 at step boundaries and inside steps), faults, locks, stale plans, the rolling limit.

use std::collections::BTreeMap;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use asdr_planner::World;
use assert_cmd::cargo::CommandCargoExt;

fn examples() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples")
}

/// A scratch copy of an example directory: its policy, templates and worlds.
pub(crate) struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    pub(crate) fn of(example: &str) -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        copy_dir(&examples().join(example), dir.path());
        Scratch { dir }
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    pub(crate) fn asdr(&self, world: &str, args: &[&str], env: &[(&str, String)]) -> Output {
        let mut c = Command::cargo_bin("asdr").unwrap();
        c.current_dir(self.dir.path())
            .env("NO_COLOR", "1")
            .env_remove("AWS_ENDPOINT_URL")
            .stdin(Stdio::null());
        c.args(["-f", "asdr.yaml", "--world", world]).args(args);
        for (k, v) in env {
            c.env(k, v);
        }
        c.output().unwrap()
    }

    fn world(&self, name: &str) -> World {
        asdr_providers::world_file::load(&self.path(name)).unwrap()
    }

    pub(crate) fn edit(&self, name: &str, from: &str, to: &str) {
        let p = self.path(name);
        let text = std::fs::read_to_string(&p).unwrap();
        assert!(text.contains(from), "{from} not in {name}");
        std::fs::write(&p, text.replacen(from, to, 1)).unwrap();
    }

    pub(crate) fn journal(&self) -> Vec<serde_json::Value> {
        let dir = self.path(".asdr/journal");
        let mut out = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "jsonl"))
            .collect();
        files.sort();
        for f in files {
            for line in std::fs::read_to_string(f).unwrap().lines() {
                out.push(serde_json::from_str(line).unwrap());
            }
        }
        out
    }
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        if e.file_name() == ".asdr" {
            continue;
        }
        let target = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &target);
        } else {
            std::fs::copy(e.path(), target).unwrap();
        }
    }
}

fn ok(out: &Output) {
    assert!(
        out.status.success(),
        "exit {:?}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

fn restore_args(restore: Option<&str>) -> Vec<&str> {
    restore.map_or_else(Vec::new, |r| vec!["--restore", r])
}

/// (example dir, world file, restore) for the backup and every restore of the examples.
const SCENARIOS: [(&str, &str, Option<&str>); 8] = [
    ("prod-east", "world-backup-due.yaml", None),
    ("prod-east", "world-failed-node.yaml", Some("replace-a1")),
    (
        "prod-east",
        "world-unreachable-node.yaml",
        Some("replace-a1"),
    ),
    ("prod-east", "world-failed-node.yaml", Some("a1-refill")),
    (
        "prod-east",
        "world-failed-node.yaml",
        Some("a1-from-backup"),
    ),
    ("prod-east", "world-backup-due.yaml", Some("full-cluster")),
    ("community", "world-backup-due.yaml", None),
    // Community Edition: the restarted nodes stay Community, so the plan after converges.
    ("community", "world-backup-due.yaml", Some("full-cluster")),
];

/// The cluster is whole again: every node answers, nothing quiesced, one live instance per node.
fn assert_healthy(world: &World) {
    for n in &world.nodes {
        assert!(n.reachable, "node {} left stopped", n.name);
        assert!(!n.quiesced, "node {} left quiesced", n.name);
        assert_eq!(n.migrations_remaining, 0);
    }
    let mut live: BTreeMap<&str, usize> = BTreeMap::new();
    for i in world
        .instances
        .iter()
        .filter(|i| i.state != asdr_planner::world::InstanceState::Terminated)
    {
        *live
            .entry(i.tags.get("asdr:node").map(String::as_str).unwrap_or("?"))
            .or_default() += 1;
    }
    assert!(
        live.values().all(|&c| c == 1),
        "one live instance per node: {live:?}"
    );
}

#[test]
fn apply_then_plan_again_has_no_changes_for_the_backup_and_every_restore() {
    for (example, world, restore) in SCENARIOS {
        let s = Scratch::of(example);
        let mut args = vec!["apply", "--yes"];
        args.extend(restore_args(restore));
        ok(&s.asdr(world, &args, &[]));
        let mut plan = vec!["plan", "--detailed-exitcode"];
        plan.extend(restore_args(restore));
        let again = s.asdr(world, &plan, &[]);
        assert_eq!(
            again.status.code(),
            Some(0),
            "{example} {world} {restore:?}: plan after apply has changes:\n{}",
            String::from_utf8_lossy(&again.stdout)
        );
        assert_healthy(&s.world(world));
        // And the backup policy is satisfied or plannable on the restored cluster.
        let backup = s.asdr(world, &["plan"], &[]);
        assert!(
            backup.status.success(),
            "{example} {restore:?}: backup plan after apply refused: {}",
            String::from_utf8_lossy(&backup.stderr)
        );
    }
}

/// Runs one scenario to the end, uninterrupted; returns the final world text and the crash points.
fn reference(example: &str, world: &str, restore: Option<&str>) -> (String, Vec<String>) {
    let s = Scratch::of(example);
    let points = s.path("points.txt");
    let mut args = vec!["apply", "--yes", "-q"];
    args.extend(restore_args(restore));
    ok(&s.asdr(
        world,
        &args,
        &[("ASDR_TEST_POINTS", points.display().to_string())],
    ));
    let labels = std::fs::read_to_string(points)
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    (std::fs::read_to_string(s.path(world)).unwrap(), labels)
}

#[test]
fn crash_safety_kill_9_anywhere_then_apply_again_converges_to_the_same_world() {
    let mut crashes = 0;
    for (example, world, restore) in [SCENARIOS[0], SCENARIOS[2], SCENARIOS[4], SCENARIOS[5]] {
        let (expected, points) = reference(example, world, restore);
        let expected_world: World = asdr_providers::world_file::parse(
            "ref",
            &expected,
            asdr_providers::world_file::Format::Yaml,
        )
        .unwrap();
        assert_healthy(&expected_world);
        // Every step boundary and every point inside a step (after its effect, before it is
        // recorded), thinned to keep the run short but never fewer than 12 per scenario.
        let stride = (points.len() / 16).max(1);
        let chosen: Vec<usize> = (1..=points.len())
            .filter(|k| k % stride == 0 || points[k - 1].starts_with("after-act:"))
            .collect();
        for k in chosen {
            let s = Scratch::of(example);
            let mut args = vec!["apply", "--yes", "-q"];
            args.extend(restore_args(restore));
            let killed = s.asdr(world, &args, &[("ASDR_TEST_KILL_AT", k.to_string())]);
            assert_eq!(
                killed.status.signal(),
                Some(9),
                "{example} {restore:?}: point {k} ({}) did not kill: {:?}",
                points[k - 1],
                killed.status
            );
            // The kernel released the killed apply's lock: the next apply runs at once, no
            // `--break-lock`.
            ok(&s.asdr(world, &args, &[]));
            let got = std::fs::read_to_string(s.path(world)).unwrap();
            assert!(
                got == expected,
                "{example} {restore:?}: killed at point {k} ({}), the resumed apply ended in a different world",
                points[k - 1]
            );
            crashes += 1;
        }
    }
    eprintln!("{crashes} crash points killed and resumed");
    assert!(crashes >= 50, "only {crashes} crash points");
}

fn quiesce_policy(s: &Scratch) {
    s.edit(
        "asdr.yaml",
        "consistency: multi-volume",
        "consistency: quiesce",
    );
}

pub(crate) fn simulation(s: &Scratch, yaml: &str) -> Vec<(&'static str, String)> {
    let p = s.path("sim.yaml");
    std::fs::write(&p, yaml).unwrap();
    vec![("ASDR_SIMULATION", p.display().to_string())]
}

#[test]
fn a_transient_fault_is_retried_and_the_apply_succeeds() {
    let s = Scratch::of("prod-east");
    let env = simulation(
        &s,
        "faults:\n  - {step: \"snapshot_instance:b1:*\", times: 2, transient: true, code: RequestLimitExceeded}\n",
    );
    let out = s.asdr("world-backup-due.yaml", &["apply", "--yes"], &env);
    ok(&out);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr.matches("retry    snapshot_instance:b1").count(),
        2,
        "{stderr}"
    );
    let done = s
        .journal()
        .into_iter()
        .find(|e| {
            e["event"] == "done"
                && e["step"]
                    .as_str()
                    .unwrap()
                    .starts_with("snapshot_instance:b1")
        })
        .unwrap();
    assert_eq!(done["attempt"], 3);
}

#[test]
fn a_permanent_fault_skips_only_dependents_runs_cleanups_and_a_later_apply_finishes() {
    let s = Scratch::of("prod-east");
    quiesce_policy(&s);
    let env = simulation(
        &s,
        "faults:\n  - {step: \"snapshot:b1:/dev/sdg:*\", code: IncorrectState}\n",
    );
    let out = s.asdr("world-backup-due.yaml", &["apply", "--yes"], &env);
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed   snapshot:b1:/dev/sdg:") && stdout.contains("unquiesce:b1"),
        "{stdout}"
    );
    let journal = s.journal();
    let outcome = |prefix: &str| {
        journal
            .iter()
            .filter(|e| e["step"].as_str().is_some_and(|s| s.starts_with(prefix)))
            .map(|e| e["event"].as_str().unwrap().to_string())
            .collect::<Vec<_>>()
    };
    assert!(
        outcome("unquiesce:b1").contains(&"done".to_string()),
        "the quiesced node is unquiesced: {:?}",
        outcome("unquiesce:b1")
    );
    assert!(outcome("mark_set_complete").contains(&"skipped".to_string()));
    assert!(
        outcome("snapshot:a2:").iter().all(|e| e != "skipped"),
        "independent nodes go on"
    );
    assert!(outcome("quiesce:a2").contains(&"done".to_string()));
    let world = s.world("world-backup-due.yaml");
    assert!(world.nodes.iter().all(|n| !n.quiesced && n.reachable));
    // Fixed: the next apply finishes the set.
    std::fs::write(s.path("sim.yaml"), "faults: []\n").unwrap();
    ok(&s.asdr("world-backup-due.yaml", &["apply", "--yes"], &env));
    assert_eq!(
        s.asdr(
            "world-backup-due.yaml",
            &["plan", "--detailed-exitcode"],
            &env
        )
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn r8_the_rolling_limit_holds_and_r11_writes_resume_before_snapshots_complete() {
    let s = Scratch::of("prod-east");
    quiesce_policy(&s);
    let env = simulation(&s, "snapshot_polls: 5\npoll_interval_ms: 5\n");
    ok(&s.asdr(
        "world-backup-due.yaml",
        &["apply", "--yes", "--parallelism", "20"],
        &env,
    ));
    let journal = s.journal();
    let mut out: BTreeMap<String, bool> = BTreeMap::new();
    let mut max_out = 0;
    for e in &journal {
        let step = e["step"].as_str().unwrap_or("");
        let node = step.split(':').nth(1).unwrap_or("").to_string();
        match (
            e["event"].as_str().unwrap(),
            step.split(':').next().unwrap(),
        ) {
            ("start", "quiesce") => {
                out.insert(node, true);
            }
            ("done" | "adopted", "unquiesce") => {
                out.remove(&node);
            }
            _ => {}
        }
        max_out = max_out.max(out.len());
    }
    assert_eq!(max_out, 1, "max_nodes_at_once: 1");
    for node in ["a1", "b1", "a2"] {
        let pos = |event: &str, prefix: &str| {
            journal
                .iter()
                .position(|e| {
                    e["event"] == event && e["step"].as_str().is_some_and(|s| s.starts_with(prefix))
                })
                .unwrap()
        };
        let unquiesce = pos("start", &format!("unquiesce:{node}"));
        let last_wait = journal
            .iter()
            .rposition(|e| {
                e["event"] == "done"
                    && e["step"]
                        .as_str()
                        .is_some_and(|s| s.starts_with(&format!("wait_snapshot:{node}:")))
            })
            .unwrap();
        assert!(
            unquiesce < last_wait,
            "{node}: unquiesce must start right after the snapshot calls, not after completion (R11)"
        );
        assert!(pos("done", &format!("snapshot:{node}:")) < unquiesce);
    }
}

#[test]
fn a_second_apply_is_refused_naming_the_holder() {
    let s = Scratch::of("prod-east");
    let env = simulation(&s, "latency_ms: 300\n");
    let mut first = Command::cargo_bin("asdr").unwrap();
    first
        .current_dir(s.dir.path())
        .args([
            "-f",
            "asdr.yaml",
            "--world",
            "world-backup-due.yaml",
            "apply",
            "--yes",
            "-q",
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    for (k, v) in &env {
        first.env(k, v);
    }
    let mut child = first.spawn().unwrap();
    let lock = s.path(".asdr/locks/prod-east.lock");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    while !lock.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "the first apply never took the lock"
        );
        std::thread::sleep(std::time::Duration::from_millis(10));
    }
    let second = s.asdr("world-backup-due.yaml", &["apply", "--yes"], &env);
    let stderr = String::from_utf8_lossy(&second.stderr);
    assert_eq!(second.status.code(), Some(1));
    assert!(
        stderr.contains("another apply holds the lock")
            && stderr.contains(&format!("pid {}", child.id())),
        "{stderr}"
    );
    let broke = s.asdr("world-backup-due.yaml", &["apply", "--break-lock"], &env);
    assert_eq!(
        broke.status.code(),
        Some(1),
        "a live holder's lock is not broken"
    );
    assert!(child.wait().unwrap().success());
    assert!(!lock.exists(), "released at the end");
}

#[test]
fn a_stale_plan_file_is_refused_saying_what_changed() {
    let s = Scratch::of("prod-east");
    ok(&s.asdr(
        "world-backup-due.yaml",
        &["plan", "--out", "plan.json", "-q"],
        &[],
    ));
    let before = std::fs::read(s.path("world-backup-due.yaml")).unwrap();
    s.edit(
        "world-backup-due.yaml",
        "migrations_remaining: 0",
        "migrations_remaining: 3",
    );
    let out = s.asdr(
        "world-backup-due.yaml",
        &["apply", "plan.json", "--yes"],
        &[],
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&out.stderr)
            .contains("is stale: the world changed since it was made"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    std::fs::write(s.path("world-backup-due.yaml"), &before).unwrap();
    s.edit("asdr.yaml", "every: 24h", "every: 12h");
    let out = s.asdr(
        "world-backup-due.yaml",
        &["apply", "plan.json", "--yes"],
        &[],
    );
    assert!(
        String::from_utf8_lossy(&out.stderr).contains("the policy changed since it was made"),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        std::fs::read(s.path("world-backup-due.yaml")).unwrap(),
        before,
        "nothing was applied"
    );
    // The unchanged plan applies.
    s.edit("asdr.yaml", "every: 12h", "every: 24h");
    ok(&s.asdr(
        "world-backup-due.yaml",
        &["apply", "plan.json", "--yes"],
        &[],
    ));
}

#[test]
fn apply_without_a_terminal_and_without_yes_does_nothing() {
    let s = Scratch::of("prod-east");
    let before = std::fs::read(s.path("world-backup-due.yaml")).unwrap();
    let out = s.asdr("world-backup-due.yaml", &["apply"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("stdin is not a terminal"));
    assert_eq!(
        std::fs::read(s.path("world-backup-due.yaml")).unwrap(),
        before
    );
    assert!(
        !s.path(".asdr/journal").exists(),
        "no journal: nothing started"
    );
}

#[test]
fn apply_json_emits_one_event_per_line_and_a_summary() {
    let s = Scratch::of("prod-east");
    let out = s.asdr(
        "world-failed-node.yaml",
        &["apply", "--yes", "--json", "--restore", "replace-a1"],
        &[],
    );
    ok(&out);
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    let summary = lines.last().unwrap();
    assert_eq!(summary["event"], "summary");
    assert_eq!(summary["failed"], 0);
    assert!(lines.iter().any(|l| {
        l["event"] == "finished"
            && l["step"] == "provision_instance:a1"
            && l["resources"]["instance_id"]
                .as_str()
                .is_some_and(|i| i.starts_with("i-"))
    }));
}

#[test]
fn a_step_past_its_deadline_fails_and_nothing_hangs() {
    let s = Scratch::of("prod-east");
    let mut env = simulation(&s, "latency_ms: 300\n");
    env.push(("ASDR_STEP_TIMEOUT_MS", "100".into()));
    let started = std::time::Instant::now();
    let out = s.asdr("world-backup-due.yaml", &["apply", "--yes"], &env);
    assert_eq!(out.status.code(), Some(1));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        stdout.contains("failed   check_cluster_stable after")
            && stdout.contains("timed out after 0.1s"),
        "{stdout}"
    );
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).to_string()
}

#[test]
fn defect_09_an_interrupted_apply_resumes_only_for_its_own_operation() {
    let s = Scratch::of("prod-east");
    let w = "world-failed-node.yaml";
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q", "--restore", "a1-from-backup"],
        &[("ASDR_TEST_KILL_AT", "6".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    let before = std::fs::read(s.path(w)).unwrap();
    let other = s.asdr(w, &["apply", "--yes", "--restore", "replace-a1"], &[]);
    assert_eq!(other.status.code(), Some(1));
    let err = stderr(&other);
    assert!(
        err.contains("(restore:a1-from-backup) was interrupted")
            && err.contains("asdr apply --restore a1-from-backup")
            && err.contains("asdr apply --discard p-"),
        "{err}"
    );
    assert_eq!(
        std::fs::read(s.path(w)).unwrap(),
        before,
        "nothing was applied"
    );
    // The same operation resumes and finishes.
    ok(&s.asdr(w, &["apply", "--yes", "--restore", "a1-from-backup"], &[]));
    assert_eq!(
        s.asdr(
            w,
            &["plan", "--detailed-exitcode", "--restore", "a1-from-backup"],
            &[]
        )
        .status
        .code(),
        Some(0)
    );
}

#[test]
fn defect_09_an_interrupted_apply_can_be_discarded_explicitly() {
    let s = Scratch::of("prod-east");
    let w = "world-failed-node.yaml";
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q", "--restore", "replace-a1"],
        &[("ASDR_TEST_KILL_AT", "3".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    let refused = s.asdr(w, &["apply", "--yes"], &[]);
    assert_eq!(refused.status.code(), Some(1));
    let plan_id = stderr(&refused)
        .split("--discard ")
        .nth(1)
        .unwrap()
        .split(|c: char| c.is_whitespace() || c == '`')
        .next()
        .unwrap()
        .to_string();
    let out = s.asdr(w, &["apply", "--discard", &plan_id], &[]);
    ok(&out);
    assert!(String::from_utf8_lossy(&out.stdout).contains("Discarded"));
    // The journal is kept, and says it was discarded.
    assert!(
        s.journal()
            .iter()
            .any(|e| e["error"].as_str().is_some_and(|m| m.contains("discarded")))
    );
}

#[test]
fn defect_15_an_edited_plan_file_is_refused_and_nothing_is_applied() {
    let s = Scratch::of("prod-east");
    let w = "world-backup-due.yaml";
    ok(&s.asdr(w, &["plan", "--out", "plan.json", "-q"], &[]));
    let world = s.world(w);
    // Append a delete of a snapshot of the newest complete set.
    let newest = world
        .snapshots
        .iter()
        .filter_map(|x| x.tags.get("asdr:set").cloned())
        .max()
        .unwrap();
    let victim = world
        .snapshots
        .iter()
        .find(|x| x.tags.get("asdr:set") == Some(&newest))
        .unwrap()
        .id
        .clone();
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(s.path("plan.json")).unwrap()).unwrap();
    plan["steps"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": format!("delete_snapshot:{victim}"), "kind": "delete_snapshot", "node": null,
            "depends_on": [], "cleanup": false, "params": {"snapshot_id": victim, "set": newest}
        }));
    std::fs::write(s.path("plan.json"), plan.to_string()).unwrap();
    let before = std::fs::read(s.path(w)).unwrap();
    let out = s.asdr(w, &["apply", "plan.json", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("was edited after it was made")
            && stderr(&out).contains(&format!("delete_snapshot:{victim}")),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(s.path(w)).unwrap(),
        before,
        "nothing was applied"
    );
    // The verifier alone also refuses that plan: it deletes the newest complete set.
    let policy = asdr_specs::load(&s.path("asdr.yaml")).unwrap();
    let edited: asdr_planner::Plan = serde_json::from_value(plan).unwrap();
    let v = asdr_planner::verify(&policy, &world, &edited);
    assert!(v.iter().any(|x| x.rule == "R13"), "{v:?}");
}

#[test]
fn defect_16_a_journal_whose_effects_are_gone_is_not_trusted() {
    let s = Scratch::of("prod-east");
    let w = "world-backup-due.yaml";
    let original = std::fs::read(s.path(w)).unwrap();
    ok(&s.asdr(w, &["apply", "--yes"], &[]));
    let backed_up = std::fs::read(s.path(w)).unwrap();
    // The world is put back as it was: the backup's snapshots are gone.
    std::fs::write(s.path(w), &original).unwrap();
    let out = s.asdr(w, &["apply", "--yes"], &[]);
    ok(&out);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(stdout.contains("26 done, 0 adopted, 0 resumed"), "{stdout}");
    assert!(stderr(&out).contains("result is gone"), "{}", stderr(&out));
    assert_eq!(
        std::fs::read(s.path(w)).unwrap(),
        backed_up,
        "the backup was made again, exactly as the first time"
    );
    assert_eq!(
        s.asdr(w, &["plan", "--detailed-exitcode"], &[])
            .status
            .code(),
        Some(0)
    );
}

#[test]
fn defect_17_a_community_full_cluster_restore_converges_on_a_world_file() {
    let s = Scratch::of("community");
    let w = "world-backup-due.yaml";
    ok(&s.asdr(w, &["apply", "--yes", "--restore", "full-cluster"], &[]));
    let world = s.world(w);
    for n in &world.nodes {
        assert_eq!(
            n.edition.as_deref(),
            Some("Aerospike Community Edition"),
            "{} restarted as the edition it is",
            n.name
        );
    }
    let again = s.asdr(
        w,
        &["plan", "--detailed-exitcode", "--restore", "full-cluster"],
        &[],
    );
    assert_eq!(again.status.code(), Some(0), "{}", stderr(&again));
    // And the backup policy is plannable again (R9 does not refuse it).
    ok(&s.asdr(w, &["plan"], &[]));
}

#[test]
fn a_tampered_interrupted_plan_is_not_resumed() {
    let s = Scratch::of("prod-east");
    let w = "world-backup-due.yaml";
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q"],
        &[("ASDR_TEST_KILL_AT", "4".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    // Someone edits the interrupted plan beside its journal: one more delete nobody reviewed.
    let dir = s.path(".asdr/journal");
    let file = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.to_string_lossy().ends_with(".plan.json"))
        .unwrap();
    let mut plan: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    let victim = s.world(w).snapshots[0].id.clone();
    plan["steps"]
        .as_array_mut()
        .unwrap()
        .push(serde_json::json!({
            "id": format!("delete_snapshot:{victim}"), "kind": "delete_snapshot", "node": null,
            "depends_on": [], "cleanup": false, "params": {"snapshot_id": victim}
        }));
    std::fs::write(&file, plan.to_string()).unwrap();
    let before = std::fs::read(s.path(w)).unwrap();
    let out = s.asdr(w, &["apply", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("cannot be resumed") && stderr(&out).contains("was edited"),
        "{}",
        stderr(&out)
    );
    assert_eq!(
        std::fs::read(s.path(w)).unwrap(),
        before,
        "nothing was applied"
    );
    assert!(s.world(w).snapshots.iter().any(|x| x.id == victim));
}

/// An interrupted plan whose recorded world is gone (deleted, or never written by whoever put
/// the plan there) is not resumed: nothing shows it is what the policy gives, and its commands
/// would run as root on the nodes. A world planted as a link is not read. The state directory
/// is owner-only. Discarded, the operation is planned afresh.
#[test]
fn an_interrupted_plan_without_its_recorded_world_is_never_resumed_unchecked() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::of("prod-east");
    let w = "world-backup-due.yaml";
    let killed = s.asdr(
        w,
        &["apply", "--yes", "-q"],
        &[("ASDR_TEST_KILL_AT", "4".to_string())],
    );
    assert_eq!(killed.status.signal(), Some(9));
    let dir = s.path(".asdr/journal");
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&dir), 0o700, "the journal directory is owner-only");
    let files: Vec<std::path::PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    for f in &files {
        assert_eq!(mode(f), 0o600, "{} is owner-only", f.display());
    }
    let world_file = files
        .iter()
        .find(|p| p.to_string_lossy().ends_with(".world.json"))
        .unwrap()
        .clone();
    let plan_id = world_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .trim_end_matches(".world.json")
        .to_string();
    let before = std::fs::read(s.path(w)).unwrap();
    // Planted as a link to a world someone else wrote: not read.
    let elsewhere = s.path("elsewhere.world.json");
    std::fs::rename(&world_file, &elsewhere).unwrap();
    std::os::unix::fs::symlink(&elsewhere, &world_file).unwrap();
    let out = s.asdr(w, &["apply", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let name = world_file
        .file_name()
        .unwrap()
        .to_string_lossy()
        .to_string();
    assert!(
        stderr(&out).contains(&name) && stderr(&out).contains("a symbolic link"),
        "{}",
        stderr(&out)
    );
    // Gone: refused, saying why and what to do.
    std::fs::remove_file(&world_file).unwrap();
    let out = s.asdr(w, &["apply", "--yes"], &[]);
    assert_eq!(out.status.code(), Some(1));
    let said = stderr(&out);
    assert!(
        said.contains(&format!(
            "the interrupted apply of plan {plan_id} cannot be resumed"
        )) && said.contains("is not there")
            && said.contains(&format!("asdr apply --discard {plan_id}")),
        "{said}"
    );
    assert_eq!(std::fs::read(s.path(w)).unwrap(), before, "nothing ran");
    ok(&s.asdr(w, &["apply", "--discard", &plan_id], &[]));
    ok(&s.asdr(w, &["apply", "--yes", "-q"], &[]));
}

/// Applying to a commented world file says that the rewritten file lost its comments.
#[test]
fn apply_to_a_commented_world_file_says_its_comments_were_not_kept() {
    let s = Scratch::of("prod-east");
    let text = std::fs::read_to_string(s.path("world-backup-due.yaml")).unwrap();
    assert!(
        text.lines().any(|l| l.starts_with('#')),
        "the example is commented"
    );
    let out = s.asdr("world-backup-due.yaml", &["apply", "--yes", "-q"], &[]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{stderr}");
    assert!(
        stderr.contains("world-backup-due.yaml now records this apply's changes; the comments it held were not kept"),
        "{stderr}"
    );
    let after = std::fs::read_to_string(s.path("world-backup-due.yaml")).unwrap();
    assert!(
        !after.lines().any(|l| l.starts_with('#')),
        "as the note says"
    );
    // Applied again, the file has no comments left to lose: no note.
    let again = s.asdr("world-backup-due.yaml", &["apply", "--yes", "-q"], &[]);
    assert!(!String::from_utf8_lossy(&again.stderr).contains("note:"));
}

#[test]
fn crash_safety_of_a_backup_with_copies_kill_9_anywhere_then_apply_again_converges() {
    // Copies to us-west-2 in two lanes, the older sets caught up beside the new one.
    let with_copies = |s: &Scratch| {
        s.edit(
            "asdr.yaml",
            "  max_nodes_at_once: 1 ",
            "  copies:\n    - {region: us-west-2, smd_to: s3://acme-dr-west/asdr/prod-east, retain: {count: 2}, max_in_flight: 2}\n  max_nodes_at_once: 1 ",
        )
    };
    let world = "world-backup-due.yaml";
    let r = Scratch::of("prod-east");
    with_copies(&r);
    let points = r.path("points.txt");
    ok(&r.asdr(
        world,
        &["apply", "--yes", "-q"],
        &[("ASDR_TEST_POINTS", points.display().to_string())],
    ));
    let expected = std::fs::read_to_string(r.path(world)).unwrap();
    let copied = r
        .world(world)
        .snapshots
        .iter()
        .filter(|s| s.region.as_deref() == Some("us-west-2"))
        .count();
    assert_eq!(copied, 18, "two sets of 9 copies in us-west-2");
    let labels: Vec<String> = std::fs::read_to_string(points)
        .unwrap()
        .lines()
        .map(|l| l.split_once(' ').unwrap().1.to_string())
        .collect();
    // Inside the copy steps above all (their effect made, not yet recorded), and a spread of the rest.
    let stride = (labels.len() / 12).max(1);
    let chosen: Vec<usize> = (1..=labels.len())
        .filter(|k| {
            k % stride == 0
                || (labels[k - 1].starts_with("after-act:")
                    && (labels[k - 1].contains("copy_") || labels[k - 1].contains(":us-west-2:")))
        })
        .collect();
    assert!(chosen.len() >= 12, "{} points", chosen.len());
    for k in chosen {
        let s = Scratch::of("prod-east");
        with_copies(&s);
        let killed = s.asdr(
            world,
            &["apply", "--yes", "-q"],
            &[("ASDR_TEST_KILL_AT", k.to_string())],
        );
        assert_eq!(
            killed.status.signal(),
            Some(9),
            "point {k} ({})",
            labels[k - 1]
        );
        ok(&s.asdr(world, &["apply", "--yes", "-q"], &[]));
        assert!(
            std::fs::read_to_string(s.path(world)).unwrap() == expected,
            "killed at point {k} ({}), the resumed apply ended in a different world",
            labels[k - 1]
        );
    }
}

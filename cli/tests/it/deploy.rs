//! The scheduled set-ups under `deploy/` and the `Dockerfile`: the manifests parse, refer to each
//! other consistently, and run asdr with arguments the binary accepts. The image itself is built
//! only where a container builder is present and asked for (`ASDR_TEST_DOCKER_BUILD=1`).

use std::path::{Path, PathBuf};
use std::process::Command;

use assert_cmd::cargo::CommandCargoExt;
use serde_json::Value;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn manifest(name: &str) -> Value {
    let path = root().join("deploy/kubernetes").join(name);
    let text = std::fs::read_to_string(&path).unwrap();
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The binary accepts these arguments (`--help` after them: clap refuses unknown ones first).
fn accepted(args: &[&str]) {
    let out = Command::cargo_bin("asdr")
        .unwrap()
        .args(args)
        .arg("--help")
        .env_remove("AWS_ENDPOINT_URL")
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "asdr {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_kubernetes_cronjob_runs_a_valid_apply_with_the_policy_state_and_role_it_names() {
    let cron = manifest("cronjob.yaml");
    let config = manifest("configmap.yaml");
    let account = manifest("serviceaccount.yaml");
    let pvc = manifest("pvc.yaml");
    assert_eq!(cron["kind"], "CronJob");
    assert_eq!(cron["spec"]["concurrencyPolicy"], "Forbid");
    let pod = &cron["spec"]["jobTemplate"]["spec"]["template"]["spec"];
    assert_eq!(pod["serviceAccountName"], account["metadata"]["name"]);
    assert!(
        pod["terminationGracePeriodSeconds"].as_u64().unwrap() > 30,
        "more than asdr's grace period"
    );
    assert_eq!(pod["securityContext"]["runAsNonRoot"], true);
    let container = &pod["containers"][0];
    let image = container["image"].as_str().unwrap();
    assert!(
        image.ends_with(&format!(":{}", env!("CARGO_PKG_VERSION"))),
        "{image}: this version's image"
    );
    let args: Vec<&str> = container["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"apply") && args.contains(&"--yes"),
        "{args:?}"
    );
    accepted(&args);
    // Every file mounted from the ConfigMap is in it; the state volume is the claim.
    for m in container["volumeMounts"].as_array().unwrap() {
        if let Some(key) = m["subPath"].as_str() {
            assert!(
                config["data"][key].is_string(),
                "{key} not in the ConfigMap"
            );
        }
    }
    let volumes = pod["volumes"].as_array().unwrap();
    assert!(
        volumes
            .iter()
            .any(|v| v["configMap"]["name"] == config["metadata"]["name"])
    );
    assert!(
        volumes
            .iter()
            .any(|v| v["persistentVolumeClaim"]["claimName"] == pvc["metadata"]["name"])
    );
    let state = container["volumeMounts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|m| m["name"] == "state")
        .unwrap();
    assert_eq!(
        state["mountPath"], "/work/.asdr",
        "journals beside the policy"
    );
}

#[test]
fn the_systemd_units_run_a_valid_apply_and_status_and_the_timer_starts_it() {
    let service =
        std::fs::read_to_string(root().join("deploy/systemd/asdr-apply@.service")).unwrap();
    let value = |key: &str| {
        service
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{key}=")))
            .unwrap_or_else(|| panic!("no {key}= in the service"))
            .replace("%i", "prod-east")
    };
    let start = value("ExecStart");
    let words: Vec<&str> = start.split_whitespace().collect();
    assert_eq!(words[0], "/usr/local/bin/asdr");
    assert!(words.contains(&"apply") && words.contains(&"--yes"));
    accepted(&words[1..]);
    let post = value("ExecStopPost");
    let status: Vec<&str> = post
        .split("/usr/local/bin/asdr ")
        .nth(1)
        .unwrap()
        .split('>')
        .next()
        .unwrap()
        .split_whitespace()
        .collect();
    assert!(status.contains(&"status"), "{post}");
    accepted(&status);
    assert_eq!(value("KillSignal"), "SIGTERM");
    assert!(value("TimeoutStopSec").parse::<u64>().unwrap() > 30);
    let timer = std::fs::read_to_string(root().join("deploy/systemd/asdr-apply@.timer")).unwrap();
    assert!(timer.contains("OnCalendar=") && timer.contains("WantedBy=timers.target"));
}

#[test]
fn the_dockerfile_builds_this_binary_on_a_supported_rust_and_runs_it_as_a_non_root_entrypoint() {
    let docker = std::fs::read_to_string(root().join("Dockerfile")).unwrap();
    let workspace = std::fs::read_to_string(root().join("Cargo.toml")).unwrap();
    let msrv = workspace
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .unwrap()
        .trim_end_matches('"');
    let minor = |v: &str| -> (u32, u32) {
        let mut p = v.split('.').map(|x| x.parse::<u32>().unwrap());
        (p.next().unwrap(), p.next().unwrap())
    };
    let rust = docker
        .lines()
        .find_map(|l| l.strip_prefix("FROM rust:"))
        .unwrap()
        .split('-')
        .next()
        .unwrap();
    assert!(
        minor(rust) >= minor(msrv),
        "rust:{rust} is older than {msrv}"
    );
    assert!(docker.contains("cargo build --release --locked -p asdr"));
    assert!(docker.contains("ENTRYPOINT [\"asdr\"]"));
    let user = docker
        .lines()
        .filter_map(|l| l.strip_prefix("USER "))
        .next_back()
        .unwrap();
    assert_ne!(user.trim(), "root");
    assert_ne!(user.trim(), "0");
    let builder = ["docker", "podman"].into_iter().find(|b| {
        Command::new(b)
            .arg("--version")
            .output()
            .is_ok_and(|o| o.status.success())
    });
    match (builder, std::env::var("ASDR_TEST_DOCKER_BUILD").as_deref()) {
        (Some(b), Ok("1")) => {
            let built = Command::new(b)
                .args(["build", "-t", "asdr:test", "."])
                .current_dir(root())
                .status()
                .unwrap();
            assert!(built.success(), "{b} build");
            let help = Command::new(b)
                .args(["run", "--rm", "asdr:test", "--version"])
                .output()
                .unwrap();
            assert!(String::from_utf8_lossy(&help.stdout).contains(env!("CARGO_PKG_VERSION")));
        }
        (Some(b), _) => {
            eprintln!("skipped: building the image with {b} (set ASDR_TEST_DOCKER_BUILD=1)")
        }
        (None, _) => eprintln!("skipped: no container builder (docker, podman) on this machine"),
    }
}

#[test]
fn the_pull_request_workflow_plans_in_markdown_and_applies_on_merge_with_valid_arguments() {
    let path = root().join("deploy/github/asdr.yml");
    let flow: Value = serde_saphyr::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let runs: Vec<String> = ["plan", "apply"]
        .iter()
        .flat_map(|job| flow["jobs"][job]["steps"].as_array().unwrap().clone())
        .filter_map(|s| s["run"].as_str().map(str::to_string))
        .filter(|r| r.starts_with("asdr "))
        .collect();
    assert_eq!(runs.len(), 2, "{runs:?}");
    assert!(runs[0].contains("--format markdown") && runs[1].contains("apply --yes"));
    for run in &runs {
        let args: Vec<&str> = run
            .trim_start_matches("asdr ")
            .split('>')
            .next()
            .unwrap()
            .split_whitespace()
            .collect();
        accepted(&args);
    }
}

/// The unit's metrics step, run as systemd runs it (`$$` is `$`, `%i` the cluster) against world
/// files: a node down (status exits 2) replaces the file with metrics saying so; a world status
/// cannot read (exit 1) removes it, so an old "fine" never stays on.
#[test]
fn the_systemd_metrics_step_writes_the_file_when_status_is_not_fine_and_removes_it_on_error() {
    let service =
        std::fs::read_to_string(root().join("deploy/systemd/asdr-apply@.service")).unwrap();
    let post = service
        .lines()
        .find_map(|l| l.strip_prefix("ExecStopPost=/bin/sh -c '"))
        .unwrap()
        .trim_end_matches('\'')
        .to_string();
    let scratch = crate::apply::Scratch::of("prod-east");
    let textfile = tempfile::tempdir().unwrap();
    let asdr = assert_cmd::cargo::cargo_bin("asdr");
    let run = |world: &str| {
        let script = post
            .replace("$$", "$")
            .replace("%i", "prod-east")
            .replace(
                "/var/lib/node_exporter/textfile",
                &textfile.path().display().to_string(),
            )
            .replace(
                "/usr/local/bin/asdr -f /var/lib/asdr/prod-east/asdr.yaml",
                &format!(
                    "{} -f {} --world {}",
                    asdr.display(),
                    scratch.path("asdr.yaml").display(),
                    scratch.path(world).display()
                ),
            );
        assert!(!script.contains("/var/lib"), "{script}");
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(&script)
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .env_remove("AWS_ENDPOINT_URL")
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    };
    let prom = textfile.path().join("asdr-prod-east.prom");
    // A node down: status exits 2, and the file says so.
    run("world-failed-node.yaml");
    let text = std::fs::read_to_string(&prom).expect("the metrics are written");
    assert!(
        text.contains("asdr_node_up{cluster=\"prod-east\",node=\"a1\"} 0\n")
            && text.contains("asdr_recovery_problems{cluster=\"prod-east\"} 1\n"),
        "{text}"
    );
    // A world holding nothing of the cluster: status cannot tell, and no metrics remain.
    std::fs::write(
        scratch.path("empty.yaml"),
        "now: \"2026-11-21T09:00:00Z\"\ninstances: []\n",
    )
    .unwrap();
    run("empty.yaml");
    assert!(
        !prom.exists(),
        "an old file must not outlive a status that failed"
    );
    assert!(!textfile.path().join("asdr-prod-east.prom.tmp").exists());
}

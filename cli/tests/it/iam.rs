//! The generated IAM policies evaluated, not just printed: every EC2 call a backup and the
//! restores make against moto (recorded by the strict layer with what AWS authorizes for it:
//! each resource, its tags, the request's tags) must be allowed by `asdr iam-policy` for that
//! operation, under the AWS authorization model (asdr_providers::testkit_iam, reading the Service
//! Authorization Reference).

use crate::ec2::{Env, drill_env, env};
use asdr_providers::testkit_iam::{Reference, denied};

/// `iam-policy` for `args`, with the cluster id the plan shows (as an operator passes it, or
/// states it as `cluster.id`): without it the claim of the id is not granted.
fn policy_for(env: &Env, args: &[&str]) -> serde_json::Value {
    let plan: serde_json::Value =
        serde_json::from_str(&env.ok(&["plan", "--json"])).expect("plan --json");
    let id = plan["cluster_id"]
        .as_str()
        .expect("the plan names the cluster id");
    let mut all = vec!["iam-policy", "--cluster-id", id];
    all.extend_from_slice(args);
    serde_json::from_str(&env.ok(&all)).expect("iam-policy prints JSON")
}

/// Every call recorded since the last clear that `policy` does not allow.
fn denials(env: &Env, policy: &serde_json::Value) -> Vec<String> {
    let reference = Reference::load();
    env.moto
        .calls()
        .iter()
        .filter_map(|c| denied(policy, c, &reference))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_call_of_a_backup_and_of_each_restore_is_allowed_by_its_generated_policy() {
    let env = env(126, &[]).await;
    let backup = policy_for(&env, &[]);
    env.moto.clear_calls();
    env.ok(&["apply", "--yes"]);
    let mut bad = denials(&env, &backup);

    env.terminate("a1").await;
    for restore in ["replace-a1", "a1-from-backup"] {
        let policy = policy_for(&env, &["--restore", restore]);
        env.moto.clear_calls();
        env.ok(&["apply", "--yes", "--restore", restore]);
        bad.extend(
            denials(&env, &policy)
                .into_iter()
                .map(|d| format!("{restore}: {d}")),
        );
    }
    assert!(bad.is_empty(), "denied on real AWS:\n{}", bad.join("\n"));
}

/// The resource type in an ARN pattern (`volume` in `arn:*:ec2:*:*:volume/*`).
fn resource_type(arn: &str) -> String {
    arn.split(':')
        .nth(5)
        .unwrap_or("")
        .split('/')
        .next()
        .unwrap_or("")
        .to_string()
}

/// `parliament` (the IAM linter) on every policy `iam-policy` generates for the examples: no
/// finding, but one kind it reads per statement: RESOURCE_MISMATCH, which asks each statement to
/// name every resource type of its actions. asdr splits an action's resource types across
/// statements on purpose (what is created by its request tag, what is read by its resource tag or
/// ARN: AWS authorizes each resource apart), so such a finding is accepted only when another
/// statement of the same policy allows that action on that resource type.
#[test]
fn parliament_finds_nothing_in_any_generated_policy() {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    let parliament = root.join(".venv/bin/parliament");
    assert!(
        parliament.exists(),
        "{} is missing: scripts/test-all installs it",
        parliament.display()
    );
    let mut cases: Vec<(&str, Vec<String>)> = Vec::new();
    for example in ["prod-east", "community", "prod-east-dr"] {
        let policy = asdr_specs::load(&root.join("examples").join(example).join("asdr.yaml"))
            .expect("the examples are valid");
        cases.push((example, vec![]));
        for r in &policy.restores {
            cases.push((example, vec!["--restore".into(), r.name.clone()]));
        }
        for d in &policy.drills {
            cases.push((example, vec!["--drill".into(), d.name.clone()]));
        }
    }
    let mut bad = Vec::new();
    for (example, args) in &cases {
        let dir = root.join("examples").join(example);
        let out = assert_cmd::Command::cargo_bin("asdr")
            .unwrap()
            .current_dir(&dir)
            .env("NO_COLOR", "1")
            .args(["-f", "asdr.yaml", "iam-policy"])
            .args(args)
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{example} {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let policy: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let linted = std::process::Command::new(&parliament)
            .arg("--json")
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .and_then(|mut child| {
                use std::io::Write;
                child.stdin.take().unwrap().write_all(&out.stdout)?;
                child.wait_with_output()
            })
            .unwrap();
        for line in String::from_utf8_lossy(&linted.stdout).lines() {
            let finding: serde_json::Value = serde_json::from_str(line).unwrap();
            let covered = finding["issue"] == "RESOURCE_MISMATCH"
                && finding["detail"].as_array().unwrap().iter().all(|d| {
                    let action = d["action"].as_str().unwrap();
                    let want = resource_type(d["required_format"].as_str().unwrap());
                    policy["Statement"].as_array().unwrap().iter().any(|s| {
                        let acts = s["Action"].as_array().cloned().unwrap_or_default();
                        let res: Vec<String> = match &s["Resource"] {
                            serde_json::Value::String(r) => vec![r.clone()],
                            v => v
                                .as_array()
                                .unwrap()
                                .iter()
                                .map(|r| r.as_str().unwrap().to_string())
                                .collect(),
                        };
                        acts.iter().any(|a| a == action)
                            && res.iter().any(|r| r == "*" || resource_type(r) == want)
                    })
                });
            if !covered {
                bad.push(format!("{example} {args:?}: {line}"));
            }
        }
    }
    assert!(bad.is_empty(), "parliament:\n{}", bad.join("\n"));
}

/// `drill --check` asks EC2 with DryRun exactly what apply would send (tags, groups, profile,
/// key, encryption): every question it asks must be allowed by the drill's own policy, or the
/// check answers for other requests than the drill's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn drill_check_asks_what_apply_sends_and_the_drills_policy_allows_it() {
    let (env, _stand_ins) = drill_env(128, 100).await;
    env.ok(&["apply", "--yes"]);
    let drill = policy_for(&env, &["--drill", "q1"]);
    env.moto.clear_calls();
    env.ok(&["drill", "q1", "--check"]);
    let calls = env.moto.calls();
    let launch = calls
        .iter()
        .find(|c| c["action"] == "ec2:RunInstances")
        .expect("the check asks RunInstances");
    assert!(
        launch.to_string().contains("asdr:cluster"),
        "asked with the tags apply sends: {launch}"
    );
    let bad = denials(&env, &drill);
    assert!(bad.is_empty(), "denied on real AWS:\n{}", bad.join("\n"));
}

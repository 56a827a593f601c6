//! The generated IAM policies evaluated, not just printed: every EC2 call a backup and the
//! restores make against moto (recorded by the strict layer with what AWS authorizes for it:
//! each resource, its tags, the request's tags) must be allowed by `asdr iam-policy` for that
//! operation, under the AWS authorization model (asdr_providers::testkit_iam, reading the Service
//! Authorization Reference).

use crate::ec2::{Env, env};
use asdr_providers::testkit_iam::{Reference, denied};

fn policy_for(env: &Env, args: &[&str]) -> serde_json::Value {
    let mut all = vec!["iam-policy"];
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

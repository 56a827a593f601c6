//! The providers' integration tests, one binary: the info protocol against recorded frames, the
//! transports against a real sshd, the nodes against the in-test cluster, S3 and SSM, and what moto
//! cannot model with aws-smithy-mocks.

mod asbackup_store;
mod aws;
mod backup_account;
mod ec2_locks;
mod ec2_mocks;
mod ec2_moto;
mod history;
mod info_fuzz;
mod info_vectors;
mod lock;
mod nodes;
mod object_lock;
mod recycle_bin;
mod restore_speed;
mod scp;
mod ssm;
mod store_files;
mod strict_aws;
mod transports;

use asdr_planner::StepKind;
use asdr_planner::params::Params;
use serde_json::{Value, json};

/// A step's parameters: the test's `given` values over those a plan carries that the test does
/// not care about (an empty tag map, no extra tool arguments…). Read as a plan file is.
pub fn params_of(kind: StepKind, given: Value) -> Params {
    let mut p = match kind {
        StepKind::Quiesce | StepKind::Unquiesce | StepKind::StopNode | StepKind::StartNode => {
            json!({"address": ""})
        }
        StepKind::CheckClusterStable | StepKind::WaitClusterStable => {
            json!({"ignore_migrations": false})
        }
        StepKind::Snapshot => json!({"description": "", "tags": {}}),
        StepKind::RestoreSmd => json!({"replace": true}),
        StepKind::Asbackup | StepKind::Asrestore => json!({
            "args": [], "compress": null, "encrypt": null, "run_on": "node", "s3_region": "us-east-1",
            "kind": "full", "incremental_of": null, "modified_after": null,
        }),
        StepKind::TerminateInstance => json!({"reason": "", "wait_until": "terminated"}),
        StepKind::StopInstance => json!({"force": true, "wait_until": "stopped"}),
        StepKind::ProvisionInstance => json!({
            "client_token": "", "security_groups": [], "instance_store_volumes": 0, "tags": {},
        }),
        StepKind::CreateVolume => {
            json!({"client_token": "", "encrypted": false, "tags": {}, "type": "gp3"})
        }
        StepKind::WriteConfig => json!({"keep_previous": ".asdr-prev"}),
        StepKind::DetachVolume => json!({"delete_on_termination": false, "supersede": false}),
        StepKind::MarkSetComplete => json!({"snapshots": 0, "tag": {"asdr:complete": "true"}}),
        StepKind::DeleteBackup => json!({"cluster": "prod-east", "tag": "asdr:cluster"}),
        _ => json!({}),
    };
    for (k, v) in given.as_object().expect("parameters are an object") {
        p[k] = v.clone();
    }
    // restore_smd keeps the directory it replaces beside it, as the planner says.
    if kind == StepKind::RestoreSmd && p.get("keep_previous").is_none() {
        let to = p["to"].as_str().unwrap_or_default().trim_end_matches('/');
        p["keep_previous"] = json!(format!("{to}.asdr-prev"));
    }
    // Asbackup carries no `directories`, asrestore no `kind`: the kind decides.
    if kind == StepKind::Asrestore {
        for k in ["kind", "incremental_of", "modified_after"] {
            p.as_object_mut().expect("an object").remove(k);
        }
    }
    Params::from_json(kind, p).unwrap_or_else(|e| panic!("{kind} parameters: {e}"))
}

/// A step of plan "p" on `node`, with no dependencies.
pub fn step_on(id: &str, kind: StepKind, node: &str, given: Value) -> asdr_planner::Step {
    asdr_planner::Step {
        region: None,
        id: id.into(),
        params: params_of(kind, given),
        node: Some(node.into()),
        depends_on: vec![],
        cleanup: false,
    }
}

/// Carries `step` out once, as the executor would in plan "p" with nothing learned before.
pub async fn act<P: asdr_planner::ports::Provider>(
    provider: &P,
    step: &asdr_planner::Step,
) -> Result<asdr_planner::ports::Progress, asdr_planner::ports::StepError> {
    let learned = std::collections::BTreeMap::new();
    provider
        .act(asdr_planner::ports::StepInput {
            plan_id: "p",
            step,
            learned: &learned,
        })
        .await
}

/// Carries `step` out and expects it done; returns what it learned.
pub async fn done<P: asdr_planner::ports::Provider>(
    provider: &P,
    step: &asdr_planner::Step,
) -> asdr_planner::params::Learned {
    match act(provider, step).await {
        Ok(asdr_planner::ports::Progress::Done(learned)) => learned,
        other => panic!("{}: {other:?}", step.id),
    }
}

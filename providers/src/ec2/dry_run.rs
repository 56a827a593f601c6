//! `asdr drill NAME --check`: every EC2 mutation of a plan sent with `DryRun=true`. EC2 answers
//! `DryRunOperation` when the caller may do it and `UnauthorizedOperation` when not, and creates
//! nothing either way.

use asdr_planner::Plan;
use asdr_planner::params::Params;
use aws_sdk_ec2::error::ProvideErrorMetadata;
use serde::Serialize;

use super::Ec2Provider;

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    Allowed,
    Denied,
    /// Neither answer: the message says why.
    Error,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Check {
    pub step: String,
    pub action: String,
    pub verdict: Verdict,
    pub message: String,
}

fn verdict<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    result: Result<impl std::fmt::Debug, aws_sdk_ec2::error::SdkError<E, R>>,
) -> (Verdict, String) {
    match result {
        Ok(_) => (
            Verdict::Error,
            "the call went through: DryRun was not honoured".into(),
        ),
        Err(e) => match e.code() {
            Some("DryRunOperation") => (Verdict::Allowed, "DryRunOperation".into()),
            Some("UnauthorizedOperation") => (
                Verdict::Denied,
                e.message().unwrap_or("UnauthorizedOperation").to_string(),
            ),
            Some(other) => (
                Verdict::Error,
                format!("{other}: {}", e.message().unwrap_or_default()),
            ),
            None => (Verdict::Error, format!("{e:?}")),
        },
    }
}

/// A placeholder for a snapshot the plan has not copied yet: permission is checked before the
/// resource is.
const SOME_SNAPSHOT: &str = "snap-00000000000000000";

impl Ec2Provider {
    /// Checks each EC2 mutation of `plan` with DryRun, in plan order.
    pub async fn dry_run(&self, plan: &Plan) -> Vec<Check> {
        let mut out = Vec::new();
        let learned = std::collections::BTreeMap::new();
        for step in &plan.steps {
            let input = asdr_planner::ports::StepInput {
                plan_id: &plan.plan_id,
                step,
                learned: &learned,
            };
            // Asked in the region the step acts in (a copy, a restore elsewhere).
            let this = match self.for_region(step.region.as_deref()) {
                Ok(p) => p,
                Err(e) => {
                    out.push(Check {
                        step: step.id.clone(),
                        action: step.kind().to_string(),
                        verdict: Verdict::Error,
                        message: e.message,
                    });
                    continue;
                }
            };
            let (action, result) = match &step.params {
                Params::CopySnapshot(p) => {
                    let source = p.source.known().unwrap_or(SOME_SNAPSHOT);
                    let r = this
                        .client
                        .copy_snapshot()
                        .dry_run(true)
                        .source_region(&p.source_region)
                        .source_snapshot_id(source)
                        .set_encrypted(p.encrypted.then_some(true))
                        .set_kms_key_id(p.kms_key_id.clone())
                        .tag_specifications(super::act::tag_spec(
                            aws_sdk_ec2::types::ResourceType::Snapshot,
                            super::act::step_tags(
                                &input,
                                &[(asdr_planner::tags::SOURCE_SNAPSHOT, source)],
                            ),
                        ))
                        .send()
                        .await;
                    ("ec2:CopySnapshot", verdict(r))
                }
                // Exactly the requests apply sends (tags, groups, profile, key, encryption and
                // key), so the answer is the one apply would get.
                Params::ProvisionInstance(p) => {
                    let r = this
                        .run_request(
                            &input,
                            p,
                            p.subnet_id.as_deref().unwrap_or_default(),
                            &step.id,
                        )
                        .dry_run(true)
                        .send()
                        .await;
                    ("ec2:RunInstances", verdict(r))
                }
                Params::CreateVolume(p) => {
                    let r = this
                        .volume_request(&input, p, &step.id)
                        .dry_run(true)
                        .send()
                        .await;
                    ("ec2:CreateVolume", verdict(r))
                }
                Params::AttachVolume(p) => {
                    // A volume or instance the plan has yet to make cannot be asked about: the
                    // policy allows attaching by the tags it will carry, which no stand-in id
                    // has (EC2 would answer UnauthorizedOperation for a question apply never
                    // asks). Its creation is checked instead.
                    let (Some(vol), Some(inst)) = (
                        p.volume_id.known(),
                        p.instance_id.as_ref().and_then(|i| i.known()),
                    ) else {
                        continue;
                    };
                    let r = this
                        .client
                        .attach_volume()
                        .dry_run(true)
                        .volume_id(vol)
                        .instance_id(inst)
                        .device(&p.device)
                        .send()
                        .await;
                    ("ec2:AttachVolume", verdict(r))
                }
                Params::DetachVolume(p) => (
                    "ec2:DetachVolume",
                    verdict(
                        this.client
                            .detach_volume()
                            .dry_run(true)
                            .volume_id(&p.volume_id)
                            .send()
                            .await,
                    ),
                ),
                Params::TerminateInstance(p) => (
                    "ec2:TerminateInstances",
                    verdict(
                        this.client
                            .terminate_instances()
                            .dry_run(true)
                            .instance_ids(&p.instance_id)
                            .send()
                            .await,
                    ),
                ),
                Params::DeleteVolume(p) => (
                    "ec2:DeleteVolume",
                    verdict(
                        this.client
                            .delete_volume()
                            .dry_run(true)
                            .volume_id(&p.volume_id)
                            .send()
                            .await,
                    ),
                ),
                Params::DeleteSnapshot(p) => (
                    "ec2:DeleteSnapshot",
                    verdict(
                        this.client
                            .delete_snapshot()
                            .dry_run(true)
                            .snapshot_id(&p.snapshot_id)
                            .send()
                            .await,
                    ),
                ),
                Params::Snapshot(p) => (
                    "ec2:CreateSnapshot",
                    verdict(
                        this.client
                            .create_snapshot()
                            .dry_run(true)
                            .volume_id(&p.volume_id)
                            .send()
                            .await,
                    ),
                ),
                Params::SnapshotInstance(p) => {
                    let spec = aws_sdk_ec2::types::InstanceSpecification::builder()
                        .instance_id(&p.instance_id)
                        .build();
                    (
                        "ec2:CreateSnapshots",
                        verdict(
                            this.client
                                .create_snapshots()
                                .dry_run(true)
                                .instance_specification(spec)
                                .send()
                                .await,
                        ),
                    )
                }
                // Asked for every zone's snapshots at once would enable pairs apply never asks
                // for; one zone's answer says whether the role may.
                Params::FastSnapshotRestore(p) => {
                    let Some((zone, ids)) = p.snapshots.iter().next() else {
                        continue;
                    };
                    if p.enable {
                        let r = this
                            .client
                            .enable_fast_snapshot_restores()
                            .dry_run(true)
                            .availability_zones(zone)
                            .set_source_snapshot_ids(Some(ids.clone()))
                            .send()
                            .await;
                        ("ec2:EnableFastSnapshotRestores", verdict(r))
                    } else {
                        let r = this
                            .client
                            .disable_fast_snapshot_restores()
                            .dry_run(true)
                            .availability_zones(zone)
                            .set_source_snapshot_ids(Some(ids.clone()))
                            .send()
                            .await;
                        ("ec2:DisableFastSnapshotRestores", verdict(r))
                    }
                }
                _ => continue,
            };
            let (verdict, message) = result;
            out.push(Check {
                step: step.id.clone(),
                action: action.into(),
                verdict,
                message,
            });
        }
        out
    }
}

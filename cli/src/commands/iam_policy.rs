use crate::args::{Global, IamPolicyArgs};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;

/// `asdr iam-policy`: the IAM policy document for exactly what a plan does.
pub fn cmd_iam_policy(g: &Global, a: &IamPolicyArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let plan = inputs::plan(g, a.restore.as_deref())?;
    let ssm = policy.cluster.access.transport == asdr_specs::Transport::Ssm;
    print(&json(&asdr_providers::ec2::iam::policy_for(
        &plan,
        ssm,
        &policy.backup.smd_to,
    ))?)?;
    Ok(0)
}

use crate::args::{Global, IamPolicyArgs};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;

/// `asdr iam-policy`: the IAM policy document for exactly what a plan does.
pub fn cmd_iam_policy(g: &Global, a: &IamPolicyArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let ssm = policy.cluster.access.transport == asdr_specs::Transport::Ssm;
    let plan = match &a.drill {
        // A drill restores, then tears down: both plans' actions.
        Some(name) => {
            let mut plan = inputs::plan_op(g, &asdr_planner::Operation::Drill(name.clone()))?;
            plan.steps
                .extend(crate::commands::drill::teardown_kinds(name));
            plan
        }
        None => inputs::plan(g, a.restore.as_deref())?,
    };
    print(&json(&asdr_providers::ec2::iam::policy_for(
        &plan,
        ssm,
        &policy.backup.smd_to,
    ))?)?;
    Ok(0)
}

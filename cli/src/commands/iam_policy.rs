use crate::args::{Global, IamPolicyArgs};
use crate::commands::{json, print};
use crate::error::CommandError;
use crate::inputs;

/// `asdr iam-policy`: the IAM policy document for exactly what a plan does.
pub fn cmd_iam_policy(g: &Global, a: &IamPolicyArgs) -> Result<i32, CommandError> {
    let policy = inputs::policy(g)?;
    let ssm = policy.cluster.access.transport == asdr_specs::Transport::Ssm;
    let (plan, extra) = match &a.drill {
        // A drill restores, then tears down: both plans' actions.
        Some(name) => (
            inputs::plan_op(g, &asdr_planner::Operation::Drill(name.clone()))?,
            asdr_planner::drill::TEARDOWN_KINDS.to_vec(),
        ),
        // A restore's role is prepared in advance: everything it can need, not only what the
        // world calls for today.
        None => {
            let mut extra = match a.restore.as_deref().and_then(|r| policy.restore(r)) {
                Some(r) => asdr_planner::restore::step_kinds(&policy, r),
                // The backup role: copies to other regions whenever the policy has them.
                None if !policy.backup.copies.is_empty() => {
                    asdr_providers::ec2::iam::COPY_KINDS.to_vec()
                }
                None => Vec::new(),
            };
            // Backups and restores at home claim the cluster id on an instance that lacks it
            // (a node replaced by hand later), whatever today's plan holds.
            if !restores_elsewhere(&policy, a) {
                extra.push(asdr_planner::StepKind::ClaimCluster);
            }
            (inputs::plan(g, a.restore.as_deref())?, extra)
        }
    };
    let mut document = asdr_providers::ec2::iam::policy_for_kinds(
        &plan.cluster,
        plan.cluster_id.as_deref(),
        plan.steps.iter().map(|s| s.kind()).chain(extra),
        ssm,
        &policy.backup.smd_to,
        &asdr_providers::ec2::iam::Regions {
            home: policy.cluster.region.clone(),
            copies: policy.backup.copies.clone(),
            restores_elsewhere: restores_elsewhere(&policy, a),
        },
    );
    asdr_providers::ec2::iam::add_lock(&mut document, policy.lock.as_deref());
    print(&json(&document)?)?;
    Ok(0)
}

/// Whether the plan asked for builds in another region (a restore there, or a drill of one).
fn restores_elsewhere(policy: &asdr_specs::Policy, a: &IamPolicyArgs) -> bool {
    let restore = match &a.drill {
        Some(d) => policy.drill(d).and_then(|d| policy.restore(&d.restore)),
        None => a.restore.as_deref().and_then(|r| policy.restore(r)),
    };
    restore.is_some_and(|r| r.region.is_some())
}

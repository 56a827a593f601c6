//! The rules for applying a saved plan file: it runs only against the policy and the world it was
//! made from (digests), and only if planning again from those inputs, at its own time, for its own
//! operation, gives it byte for byte — so an edited plan file never runs, and every plan that runs
//! has passed the verifier.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

use crate::{Operation, Plan, PlanError, World, plan, spec_digest, world_digest};
use asdr_specs::Policy;

/// Why a saved plan may not run.
#[derive(Debug, thiserror::Error)]
pub enum SavedPlanError {
    #[error("plan {plan_id} is stale: {}. Make a new plan with `asdr plan`.", .changed.join("; "))]
    Stale {
        plan_id: String,
        changed: Vec<String>,
    },
    #[error("plan {plan_id} was edited after it was made: planning again from the same policy and world gives a different plan{}; nothing was applied. Make a new plan with `asdr plan --out`.", if .steps.is_empty() { String::new() } else { format!(" (steps that differ: {})", .steps.join(", ")) })]
    Edited { plan_id: String, steps: Vec<String> },
    #[error("plan {plan_id} cannot be made again from its inputs: {why}")]
    Unplannable { plan_id: String, why: String },
}

/// Checks that `saved` may be applied to `world` under `policy`.
pub fn check_saved(policy: &Policy, world: &World, saved: &Plan) -> Result<(), SavedPlanError> {
    let short = |d: &str| d[..d.len().min(19)].to_string();
    let mut changed = Vec::new();
    if saved.cluster != policy.cluster.name {
        changed.push(format!(
            "it is for cluster {}, the policy is for {}",
            saved.cluster, policy.cluster.name
        ));
    }
    let spec = spec_digest(policy);
    if spec != saved.spec_digest {
        changed.push(format!(
            "the policy changed since it was made ({} → {})",
            short(&saved.spec_digest),
            short(&spec)
        ));
    }
    let observed = world_digest(world);
    if observed != saved.world_digest {
        changed.push(format!(
            "the world changed since it was made ({} → {})",
            short(&saved.world_digest),
            short(&observed)
        ));
    }
    if !changed.is_empty() {
        return Err(SavedPlanError::Stale {
            plan_id: saved.plan_id.clone(),
            changed,
        });
    }
    let unplannable = |why: String| SavedPlanError::Unplannable {
        plan_id: saved.plan_id.clone(),
        why,
    };
    let now = OffsetDateTime::parse(&saved.now, &Rfc3339)
        .map_err(|e| unplannable(format!("bad `now`: {e}")))?;
    let op = Operation::from_label(&saved.operation)
        .ok_or_else(|| unplannable(format!("unknown operation `{}`", saved.operation)))?;
    let again = plan(policy, world, now, &op).map_err(|e: PlanError| unplannable(e.to_string()))?;
    if serde_json::to_value(&again).ok() == serde_json::to_value(saved).ok() {
        return Ok(());
    }
    let steps = saved
        .steps
        .iter()
        .filter(|s| again.step(&s.id) != Some(*s))
        .map(|s| s.id.clone())
        .chain(
            again
                .steps
                .iter()
                .filter(|s| saved.step(&s.id).is_none())
                .map(|s| format!("(missing) {}", s.id)),
        )
        .take(5)
        .collect();
    Err(SavedPlanError::Edited {
        plan_id: saved.plan_id.clone(),
        steps,
    })
}

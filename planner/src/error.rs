//! Why a plan was refused. Every refusal points at the policy line it concerns.

use asdr_specs::{Diagnostic, suggest};

use crate::graph::GraphError;

#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The world or the request breaks a rule: the plan is refused (exit 1).
    #[error("{}", .0.headline())]
    Refused(Diagnostic),
    #[error("no restore named `{name}` in the policy{} (declared: {})", suggest::did_you_mean(name, .known.iter().map(String::as_str)), suggest::listing(.known.iter().map(String::as_str)))]
    UnknownRestore { name: String, known: Vec<String> },
    #[error("no drill named `{name}` in the policy{} (declared: {})", suggest::did_you_mean(name, .known.iter().map(String::as_str)), suggest::listing(.known.iter().map(String::as_str)))]
    UnknownDrill { name: String, known: Vec<String> },
    /// A bug: the plan breaks a safety invariant the verifier checks. Never shown as a plan.
    #[error("internal error, the plan breaks the safety rules and is refused: {}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Unsafe(Vec<crate::verify::Violation>),
    /// A bug: the planner built a graph that is not a DAG.
    #[error("internal error, the plan's step graph is invalid: {0}")]
    Graph(#[from] GraphError),
}

pub(crate) fn refuse(diag: Diagnostic) -> PlanError {
    PlanError::Refused(diag)
}

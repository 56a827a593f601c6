//! asdr's application layer. A [`Session`] is one policy and where its world comes from (a world
//! file, or AWS and the nodes): it observes the world once, makes plans, takes the cluster's lock,
//! and executes plans with the providers that source calls for, journalled and resumable.
//! [`apply`] and [`drill`] are the two ways plans are carried out; the command line parses,
//! calls them, and renders what they return.

pub mod apply;
pub mod drill;
mod lock;
mod session;
pub mod status;

pub use lock::{ClusterLock, HeldLock, release_s3};
pub use session::{Executed, Knobs, Session, Source, observe, runtime};

/// Why an engine operation did not happen.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The planner refused, or could not make, the plan.
    #[error(transparent)]
    Plan(#[from] asdr_planner::PlanError),
    /// The world could not be observed or read.
    #[error("{0}")]
    World(String),
    /// The lock is held, or could not be taken or released.
    #[error("{0}")]
    Lock(String),
    /// The journal, a saved plan, or a resume was refused.
    #[error("{0}")]
    Journal(String),
    /// Anything else the operator must fix (a drill that does not exist, a report not written).
    #[error("{0}")]
    Other(String),
}

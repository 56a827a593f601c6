//! The provider ports: what the executor calls to carry out a step. Providers (EC2, the nodes, a
//! world file) implement them; the planner only defines them, so it stays free of I/O.
//!
//! Every step is idempotent: `observe` looks for evidence that the step's effect already exists
//! (a tag carrying the plan and step id, a client token, a node's state) and the executor adopts
//! it; only then is `act` called. `act` may answer `Pending` (a wait that is not over, an instance
//! still shutting down); the executor calls it again after the poll interval, so `act` must be
//! safe to repeat.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use crate::params::{Learned, Ref};
use crate::plan::Step;

/// Resource ids a step learned, by kind (see [`Learned`]).
pub type Resources = Learned;

#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    pub plan_id: &'a str,
    pub step: &'a Step,
    /// What earlier steps of this plan learned, by step id.
    pub learned: &'a BTreeMap<String, Resources>,
}

impl StepInput<'_> {
    /// A resource id: known in the plan, or what the step it names learned (`pick` chooses which
    /// of that step's resources). `None` when that step has not learned it (yet).
    pub fn resolve(&self, r: &Ref, pick: impl Fn(&Learned) -> Option<&String>) -> Option<String> {
        match r {
            Ref::Known(id) => Some(id.clone()),
            Ref::Learned { from_step } => self.learned.get(from_step).and_then(pick).cloned(),
        }
    }

    /// The tags a resource this step creates carries: the planner's (`asdr:*` and the policy's
    /// `tags`), `asdr:plan` and `asdr:step` (how the step finds it again), and `extra`.
    pub fn created_tags(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut t = self.step.params.tags().cloned().unwrap_or_default();
        t.insert(crate::tags::PLAN.into(), self.plan_id.into());
        t.insert(crate::tags::STEP.into(), self.step.id.clone());
        for (k, v) in extra {
            t.insert((*k).into(), (*v).into());
        }
        t
    }
}

// One value per poll of a step: the size of `Learned` does not matter, boxing it would.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Progress {
    Done(Resources),
    /// Not there yet; `percent` when the provider knows it (snapshot progress).
    Pending {
        percent: Option<u8>,
        note: String,
    },
}

impl Progress {
    /// Done, having learned these resources.
    pub fn done(learned: Learned) -> Result<Progress, StepError> {
        Ok(Progress::Done(learned))
    }

    /// Done, having learned nothing new.
    pub fn finished() -> Result<Progress, StepError> {
        Ok(Progress::Done(Learned::default()))
    }

    /// Not there yet.
    pub fn pending(note: impl Into<String>, percent: Option<u8>) -> Result<Progress, StepError> {
        Ok(Progress::Pending {
            percent,
            note: note.into(),
        })
    }
}

/// Whether trying again can help (R15: the provider decides, per error code).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Retry {
    Transient { after: Duration },
    Permanent,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct StepError {
    pub retry: Retry,
    /// The provider's error code (`InvalidIPAddress.InUse`, `ERROR:7`…).
    pub code: String,
    pub message: String,
}

impl StepError {
    pub fn permanent(code: impl Into<String>, message: impl Into<String>) -> Self {
        StepError {
            retry: Retry::Permanent,
            code: code.into(),
            message: message.into(),
        }
    }

    pub fn transient(code: impl Into<String>, message: impl Into<String>, after: Duration) -> Self {
        StepError {
            retry: Retry::Transient { after },
            code: code.into(),
            message: message.into(),
        }
    }
}

pub trait Provider: Send + Sync + 'static {
    /// Evidence that the step already took effect: its resources, to adopt instead of acting.
    fn observe(
        &self,
        input: StepInput<'_>,
    ) -> impl Future<Output = Result<Option<Resources>, StepError>> + Send;
    /// Carry the step out, or report how far a wait has come.
    fn act(&self, input: StepInput<'_>)
    -> impl Future<Output = Result<Progress, StepError>> + Send;
    /// Before a plan's steps run: what they will look up, so that a provider can ask for it
    /// together (one describe for every address a plan's launches check, not one per wave of
    /// launches). Nothing is called or changed here.
    fn expect(&self, _plan_id: &str, _steps: &[Step]) {}
}

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

use crate::plan::Step;

/// Resource ids a step learned (`instance_id`, `volume_id`, `snapshot_ids`…), kept in the journal
/// and handed to later steps whose params say `{"from_step": "<id>"}`.
pub type Resources = BTreeMap<String, serde_json::Value>;

#[derive(Debug, Clone, Copy)]
pub struct StepInput<'a> {
    pub plan_id: &'a str,
    pub step: &'a Step,
    /// What earlier steps of this plan learned, by step id.
    pub learned: &'a BTreeMap<String, Resources>,
}

impl StepInput<'_> {
    /// A parameter, with `{"from_step": id}` resolved to the resource `key` that step learned.
    pub fn param(&self, name: &str, key: &str) -> Option<serde_json::Value> {
        let v = self.step.params.get(name)?;
        match v.get("from_step").and_then(|s| s.as_str()) {
            Some(step) => self.learned.get(step)?.get(key).cloned(),
            None => Some(v.clone()),
        }
    }

    pub fn param_str(&self, name: &str, key: &str) -> Option<String> {
        self.param(name, key)
            .and_then(|v| v.as_str().map(str::to_string))
    }

    /// The tags a resource this step creates carries: the planner's (`asdr:*` and the policy's
    /// `tags`), `asdr:plan` and `asdr:step` (how the step finds it again), and `extra`.
    pub fn created_tags(&self, extra: &[(&str, &str)]) -> BTreeMap<String, String> {
        let mut t: BTreeMap<String, String> = self
            .step
            .params
            .get("tags")
            .and_then(serde_json::Value::as_object)
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k.clone(), v.to_string())))
                    .collect()
            })
            .unwrap_or_default();
        t.insert(crate::tags::PLAN.into(), self.plan_id.into());
        t.insert(crate::tags::STEP.into(), self.step.id.clone());
        for (k, v) in extra {
            t.insert((*k).into(), (*v).into());
        }
        t
    }
}

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
    pub fn done(pairs: &[(&str, serde_json::Value)]) -> Result<Progress, StepError> {
        Ok(Progress::Done(
            pairs
                .iter()
                .map(|(k, v)| ((*k).to_string(), v.clone()))
                .collect(),
        ))
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
}

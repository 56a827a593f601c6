//! Accumulates steps, changes and warnings while a plan is built.

use serde_json::Value;

use crate::params::{Params, Stable};
use crate::plan::{Action, Change, Step, Warning};

#[derive(Debug, Default)]
pub(crate) struct Builder {
    pub steps: Vec<Step>,
    pub changes: Vec<Change>,
    pub warnings: Vec<Warning>,
    /// The region the steps added now act in (none: the cluster's own).
    pub region: Option<String>,
}

impl Builder {
    /// Adds a step and returns its id, for the steps that depend on it.
    pub fn step(
        &mut self,
        id: String,
        node: Option<&str>,
        depends_on: Vec<String>,
        params: Params,
    ) -> String {
        self.push(id, node, depends_on, params, false)
    }

    /// A step that runs even when something before it failed: it brings a node back.
    pub fn cleanup_step(
        &mut self,
        id: String,
        node: Option<&str>,
        depends_on: Vec<String>,
        params: Params,
    ) -> String {
        self.push(id, node, depends_on, params, true)
    }

    fn push(
        &mut self,
        id: String,
        node: Option<&str>,
        mut depends_on: Vec<String>,
        params: Params,
        cleanup: bool,
    ) -> String {
        depends_on.sort();
        depends_on.dedup();
        self.steps.push(Step {
            id: id.clone(),
            params,
            node: node.map(str::to_string),
            region: self.region.clone(),
            depends_on,
            cleanup,
        });
        id
    }

    /// The first step of every plan that disturbs nodes (R14): every node in `nodes` agrees on
    /// `cluster-stable:size=<nodes>`.
    pub fn check_cluster_stable(&mut self, nodes: Vec<String>) -> String {
        let params = Params::CheckClusterStable(Stable {
            size: nodes.len(),
            nodes,
            ignore_migrations: false,
        });
        self.step("check_cluster_stable".into(), None, vec![], params)
    }

    pub fn change(
        &mut self,
        address: String,
        action: Action,
        reason: impl Into<String>,
        before: Option<Value>,
        after: Option<Value>,
    ) -> &mut Change {
        self.changes.push(Change {
            address,
            action,
            reason: reason.into(),
            before,
            after,
            diff: None,
        });
        self.changes.last_mut().expect("just pushed")
    }

    pub fn warn(&mut self, rule: &str, message: impl Into<String>) {
        let w = Warning {
            rule: rule.to_string(),
            message: message.into(),
        };
        if !self.warnings.contains(&w) {
            self.warnings.push(w);
        }
    }
}

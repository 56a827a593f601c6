//! The step graph: checks (every dependency names a step, no cycles), a deterministic execution
//! order, and the critical path. petgraph's neighbour order is not stable, so ordering is done
//! here with an explicit tie-break on insertion order.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use petgraph::algo::toposort;
use petgraph::graph::{DiGraph, NodeIndex};

use crate::plan::Step;

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum GraphError {
    #[error("step `{step}` depends on `{missing}`, which is not in the plan")]
    UnknownDependency { step: String, missing: String },
    #[error("step id `{0}` is used twice")]
    DuplicateId(String),
    #[error("the steps form a cycle through `{0}`")]
    Cycle(String),
}

/// The step graph with edges dependency → dependent.
pub struct StepGraph<'a> {
    steps: &'a [Step],
    graph: DiGraph<usize, ()>,
}

impl std::fmt::Debug for StepGraph<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("StepGraph")
            .field("steps", &self.steps.len())
            .finish()
    }
}

impl<'a> StepGraph<'a> {
    pub fn new(steps: &'a [Step]) -> Result<Self, GraphError> {
        let mut index = HashMap::with_capacity(steps.len());
        let mut graph = DiGraph::with_capacity(steps.len(), steps.len() * 2);
        for (i, s) in steps.iter().enumerate() {
            let n = graph.add_node(i);
            if index.insert(s.id.as_str(), n).is_some() {
                return Err(GraphError::DuplicateId(s.id.clone()));
            }
        }
        for (i, s) in steps.iter().enumerate() {
            for d in &s.depends_on {
                let from = *index
                    .get(d.as_str())
                    .ok_or_else(|| GraphError::UnknownDependency {
                        step: s.id.clone(),
                        missing: d.clone(),
                    })?;
                graph.add_edge(from, NodeIndex::new(i), ());
            }
        }
        toposort(&graph, None)
            .map_err(|c| GraphError::Cycle(steps[graph[c.node_id()]].id.clone()))?;
        Ok(StepGraph { steps, graph })
    }

    /// Kahn's algorithm, always taking the ready step that was added first: the order a reader
    /// expects (check, then per node in policy order) and the same for the same plan.
    pub fn order(&self) -> Vec<usize> {
        let n = self.steps.len();
        let mut indegree: Vec<usize> = (0..n)
            .map(|i| {
                self.graph
                    .neighbors_directed(NodeIndex::new(i), petgraph::Incoming)
                    .count()
            })
            .collect();
        let mut ready: BinaryHeap<Reverse<usize>> =
            (0..n).filter(|&i| indegree[i] == 0).map(Reverse).collect();
        let mut out = Vec::with_capacity(n);
        while let Some(Reverse(i)) = ready.pop() {
            out.push(i);
            for next in self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Outgoing)
            {
                let j = next.index();
                indegree[j] -= 1;
                if indegree[j] == 0 {
                    ready.push(Reverse(j));
                }
            }
        }
        out
    }

    /// The longest chain of dependent steps, counted in steps, and its members in order.
    pub fn critical_path(&self) -> Vec<usize> {
        let order = self.order();
        let n = self.steps.len();
        let mut depth = vec![0usize; n];
        let mut prev: Vec<Option<usize>> = vec![None; n];
        for &i in &order {
            let mut best: Option<usize> = None;
            for p in self
                .graph
                .neighbors_directed(NodeIndex::new(i), petgraph::Incoming)
            {
                let p = p.index();
                if best.is_none_or(|b| depth[p] > depth[b] || (depth[p] == depth[b] && p < b)) {
                    best = Some(p);
                }
            }
            depth[i] = best.map_or(1, |b| depth[b] + 1);
            prev[i] = best;
        }
        let Some(mut end) = (0..n).max_by_key(|&i| (depth[i], Reverse(i))) else {
            return Vec::new();
        };
        let mut path = vec![end];
        while let Some(p) = prev[end] {
            path.push(p);
            end = p;
        }
        path.reverse();
        path
    }
}

//! Aerospike nodes: the info protocol, what the planner observes of a node, and the node
//! operations steps are made of (quiesce with its verified sequence, cluster stability).

pub mod info;
pub mod node;
pub mod observe;
#[cfg(feature = "testkit")]
pub mod testnode;

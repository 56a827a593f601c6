//! Parameters of the strong-consistency steps (R19).

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// set_roster: each strong-consistency namespace's roster set to the nodes it observes, once all
/// `size` of them are there (`roster-set:namespace=NS;nodes=…` on every node, then
/// `recluster:`). Planned only where a restored node joins with an id the roster does not hold.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct SetRoster {
    pub namespaces: Vec<String>,
    pub size: usize,
}

/// wait_partitions_available: until no node reports an unavailable or dead partition in these
/// strong-consistency namespaces. A dead partition fails the step naming its namespace, unless
/// the restore declared `accept_dead_partitions` (`revive`): then `revive:namespace=NS` on every
/// node and `recluster:`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, JsonSchema)]
pub struct WaitPartitionsAvailable {
    pub namespaces: Vec<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub revive: bool,
}

//! Adapters between asdr and the world. For now the world-file provider: a recorded observation
//! (YAML or JSON) that plans can be reviewed and rehearsed against offline.

pub mod aerospike;
pub mod asbackup;
pub mod aws_error;
pub mod drill;
pub mod ec2;
pub mod exec;
pub mod live;
pub mod node_provider;
pub mod recycle_bin;
pub mod store;
#[cfg(feature = "testkit")]
pub mod testkit_history;
#[cfg(feature = "testkit")]
pub mod testkit_iam;
#[cfg(feature = "testkit")]
pub mod testkit_moto;
#[cfg(feature = "testkit")]
pub mod testkit_nitro;
pub mod world_file;
pub mod world_provider;
pub mod world_sim;

//! The binary's integration tests, one binary: the commands and their output, apply on world
//! files (crash safety included), EC2 against moto, and live nodes.

mod apply;
mod backup_account;
mod big;
mod cli;
mod consistency;
mod deploy;
mod devices;
mod ec2;
mod enterprise;
mod fast_restore;
mod fast_restore_resume;
mod first_hour;
mod first_hour_review;
mod iam;
mod identity;
mod identity_review;
mod live;
mod locks;
mod manifests;
mod quotas;
mod regions;
mod s3_lock;
mod status;
mod strict_aws;
mod support;
mod zone;

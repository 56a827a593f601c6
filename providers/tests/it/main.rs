//! The providers' integration tests, one binary: the info protocol against recorded frames, the
//! transports against a real sshd, the nodes against the in-test cluster, S3 and SSM, and what moto
//! cannot model with aws-smithy-mocks.

mod aws;
mod ec2_mocks;
mod info_vectors;
mod nodes;
mod transports;

//! Running commands and moving files on a node, behind one trait: `local` (the node is this
//! machine), `ssh` (the system OpenSSH client). File transfer is built on commands (`cat`), so
//! every transport moves files the same way and binary-safe.

pub mod local;
pub mod ssh;
pub mod ssm;

use std::future::Future;
use std::time::Duration;

/// A finished command.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub status: i32,
    pub stdout: Vec<u8>,
    pub stderr: String,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TransportError {
    #[error("node {node} ({host}): {message}")]
    Unreachable {
        node: String,
        host: String,
        message: String,
    },
    #[error("node {node} ({host}): `{command}` did not finish within {after:?}")]
    Timeout {
        node: String,
        host: String,
        command: String,
        after: Duration,
    },
    #[error("node {node} ({host}): `{command}` exited {status}: {stderr}")]
    Failed {
        node: String,
        host: String,
        command: String,
        status: i32,
        stderr: String,
    },
}

/// Where a command goes: the policy's node name (for messages) and its address.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub node: String,
    pub host: String,
}

pub trait Transport: Send + Sync + 'static {
    /// Runs `command` with `sh -c` on the node, feeding `stdin`.
    fn run(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> impl Future<Output = Result<Output, TransportError>> + Send;

    /// Whether binary data of any size can travel through stdin and stdout. When not (SSM), SMD
    /// archives go between the node and the store directly.
    fn streams_binary(&self) -> bool {
        true
    }

    /// A node this apply launched: its instance, and the region it is in (none: the cluster's).
    /// Transports that address instances (SSM) reach it there from now on.
    fn launched(&self, _node: &str, _instance: &str, _region: Option<&str>) {}
}

/// `'…'` quoting for sh.
pub fn quote(s: &str) -> String {
    format!("'{}'", s.replace('\'', r"'\''"))
}

/// Runs a command and turns a non-zero exit into an error naming the node.
pub async fn run_ok<T: Transport>(
    t: &T,
    target: &Target,
    command: &str,
    stdin: Option<Vec<u8>>,
) -> Result<Vec<u8>, TransportError> {
    let out = t.run(target, command, stdin).await?;
    if out.status == 0 {
        Ok(out.stdout)
    } else {
        Err(TransportError::Failed {
            node: target.node.clone(),
            host: target.host.clone(),
            command: command.into(),
            status: out.status,
            stderr: out.stderr.trim().to_string(),
        })
    }
}

/// The bytes of a file on the node.
pub async fn read_file<T: Transport>(
    t: &T,
    target: &Target,
    path: &str,
) -> Result<Vec<u8>, TransportError> {
    run_ok(t, target, &format!("cat -- {}", quote(path)), None).await
}

/// Writes a file on the node whole or not at all (temp file + rename). With `keep_previous`, the
/// file it replaces is kept as `<path><suffix>`.
pub async fn write_file<T: Transport>(
    t: &T,
    target: &Target,
    path: &str,
    bytes: Vec<u8>,
    keep_previous: Option<&str>,
) -> Result<(), TransportError> {
    let (p, tmp) = (quote(path), quote(&format!("{path}.asdr-tmp")));
    let keep = keep_previous
        .map(|s| {
            format!(
                "if [ -e {p} ]; then cp -p -- {p} {}; fi && ",
                quote(&format!("{path}{s}"))
            )
        })
        .unwrap_or_default();
    let dir = quote(
        std::path::Path::new(path)
            .parent()
            .and_then(|d| d.to_str())
            .unwrap_or("/"),
    );
    run_ok(
        t,
        target,
        &format!("mkdir -p -- {dir} && {keep}cat > {tmp} && mv -f -- {tmp} {p}"),
        Some(bytes),
    )
    .await
    .map(|_| ())
}

/// The transport a policy's `cluster.access` names.
#[derive(Debug, Clone)]
pub enum AnyTransport {
    Local(local::Local),
    Ssh(ssh::Ssh),
    Ssm(ssm::Ssm),
}

impl Transport for AnyTransport {
    async fn run(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        match self {
            AnyTransport::Local(t) => t.run(target, command, stdin).await,
            AnyTransport::Ssh(t) => t.run(target, command, stdin).await,
            AnyTransport::Ssm(t) => t.run(target, command, stdin).await,
        }
    }

    fn streams_binary(&self) -> bool {
        !matches!(self, AnyTransport::Ssm(_))
    }

    fn launched(&self, node: &str, instance: &str, region: Option<&str>) {
        if let AnyTransport::Ssm(t) = self {
            t.launched(node, instance, region);
        }
    }
}

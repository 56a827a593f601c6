//! The node is this machine (development, single-host tests, or asdr running on the node).

use std::process::Stdio;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::process::Command;

use super::{Output, Target, Transport, TransportError};

#[derive(Debug, Clone)]
pub struct Local {
    pub timeout: Duration,
    /// Extra environment for every command (e.g. a PATH with the Aerospike tools).
    pub env: Vec<(String, String)>,
}

impl Default for Local {
    fn default() -> Self {
        Local {
            timeout: Duration::from_secs(300),
            env: Vec::new(),
        }
    }
}

/// Runs a prepared command, feeding stdin, within `timeout`; the child is killed on timeout.
pub(crate) async fn run_command(
    mut cmd: Command,
    target: &Target,
    shown: &str,
    stdin: Option<Vec<u8>>,
    timeout: Duration,
) -> Result<Output, TransportError> {
    cmd.stdin(if stdin.is_some() {
        Stdio::piped()
    } else {
        Stdio::null()
    })
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .kill_on_drop(true);
    let mut child = cmd.spawn().map_err(|e| TransportError::Unreachable {
        node: target.node.clone(),
        host: target.host.clone(),
        message: format!("cannot start `{shown}`: {e}"),
    })?;
    if let (Some(bytes), Some(mut pipe)) = (stdin, child.stdin.take()) {
        // Feed stdin concurrently with reading output, so a large file cannot deadlock the pipes.
        tokio::spawn(async move {
            let _ = pipe.write_all(&bytes).await;
        });
    }
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(TransportError::Timeout {
            node: target.node.clone(),
            host: target.host.clone(),
            command: shown.to_string(),
            after: timeout,
        }),
        Ok(Err(e)) => Err(TransportError::Unreachable {
            node: target.node.clone(),
            host: target.host.clone(),
            message: e.to_string(),
        }),
        Ok(Ok(out)) => Ok(Output {
            status: out.status.code().unwrap_or(-1),
            stdout: out.stdout,
            stderr: String::from_utf8_lossy(&out.stderr).to_string(),
        }),
    }
}

impl Transport for Local {
    async fn run(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        let mut cmd = Command::new("sh");
        cmd.arg("-c")
            .arg(command)
            .envs(self.env.iter().map(|(k, v)| (k, v)));
        run_command(cmd, target, command, stdin, self.timeout).await
    }
}

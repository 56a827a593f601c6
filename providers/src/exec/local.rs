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

/// The most a node's command may print: an SMD archive travels through stdout, and SMD is
/// megabytes at most (the store reads no more either).
pub(crate) const MAX_STDOUT: u64 = crate::store::MAX_OBJECT;
/// Kept of a command's stderr (the rest discarded unread).
const MAX_STDERR: u64 = 1 << 20;

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
    let (mut out, mut err) = (child.stdout.take(), child.stderr.take());
    let collect = async move {
        use tokio::io::AsyncReadExt;
        // Bounded: what a node prints is an SMD archive at most; a node (or a command) that
        // prints without end would otherwise fill asdr's memory.
        let (mut stdout, mut stderr) = (Vec::new(), Vec::new());
        // Past its bound, a stream is drained unkept (never left full: the command would block
        // writing it, and the other stream never end); the timeout ends one that never stops.
        let read_out = async {
            if let Some(o) = out.as_mut() {
                (&mut *o)
                    .take(MAX_STDOUT + 1)
                    .read_to_end(&mut stdout)
                    .await?;
                tokio::io::copy(o, &mut tokio::io::sink()).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let read_err = async {
            if let Some(e) = err.as_mut() {
                (&mut *e).take(MAX_STDERR).read_to_end(&mut stderr).await?;
                tokio::io::copy(e, &mut tokio::io::sink()).await?;
            }
            Ok::<_, std::io::Error>(())
        };
        let (a, b) = tokio::join!(read_out, read_err);
        a?;
        b?;
        if stdout.len() as u64 > MAX_STDOUT {
            return Err(std::io::Error::other(format!(
                "printed more than {MAX_STDOUT} bytes: nothing of it used"
            )));
        }
        let status = child.wait().await?;
        Ok(std::process::Output {
            status,
            stdout,
            stderr,
        })
    };
    match tokio::time::timeout(timeout, collect).await {
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

//! The system OpenSSH client. asdr runs `ssh` itself rather than linking an SSH library: the
//! operator's ssh configuration, agent, known hosts and jump hosts keep working, and OpenSSH is
//! the implementation every fleet already trusts (see docs/dependencies.md).

use std::path::PathBuf;
use std::time::Duration;

use tokio::process::Command;

use super::local::run_command;
use super::{Output, Target, Transport, TransportError};

#[derive(Debug, Clone)]
pub struct Ssh {
    pub user: String,
    pub port: u16,
    pub identity_file: Option<PathBuf>,
    /// A known-hosts file of asdr's own; first contact records the host key (accept-new), a
    /// changed key is refused by ssh.
    pub known_hosts: Option<PathBuf>,
    /// `known_hosts` is pinned (the policy's `access.ssh.known_hosts`): only its keys are
    /// trusted, none on first contact (`StrictHostKeyChecking=yes`), and nothing is added to it.
    pub pinned: bool,
    pub connect_timeout: Duration,
    pub timeout: Duration,
}

impl Ssh {
    pub fn new(user: &str, port: u16) -> Self {
        Ssh {
            user: user.into(),
            port,
            identity_file: None,
            known_hosts: None,
            pinned: false,
            connect_timeout: Duration::from_secs(10),
            timeout: Duration::from_secs(300),
        }
    }

    fn command(&self, target: &Target, remote: &str) -> Command {
        let mut c = Command::new("ssh");
        c.args([
            "-o",
            "BatchMode=yes",
            "-o",
            if self.pinned {
                "StrictHostKeyChecking=yes"
            } else {
                "StrictHostKeyChecking=accept-new"
            },
            "-o",
            "LogLevel=ERROR",
        ]);
        if self.pinned {
            // Only the pinned file: the operator's own known hosts and the system's play no part.
            c.args(["-o", "GlobalKnownHostsFile=/dev/null"]);
        }
        c.arg("-o").arg(format!(
            "ConnectTimeout={}",
            self.connect_timeout.as_secs().max(1)
        ));
        if let Some(k) = &self.known_hosts {
            c.arg("-o")
                .arg(format!("UserKnownHostsFile={}", k.display()));
        }
        if let Some(id) = &self.identity_file {
            c.arg("-i").arg(id).args(["-o", "IdentitiesOnly=yes"]);
        }
        c.arg("-p")
            .arg(self.port.to_string())
            .arg(format!("{}@{}", self.user, target.host))
            .arg("--")
            .arg(remote);
        c
    }
}

impl Transport for Ssh {
    async fn run(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        let out = run_command(
            self.command(target, command),
            target,
            command,
            stdin,
            self.timeout,
        )
        .await?;
        // ssh itself exits 255 when it cannot reach or log in to the host.
        if out.status == 255 {
            return Err(TransportError::Unreachable {
                node: target.node.clone(),
                host: format!("{}:{}", target.host, self.port),
                message: format!("ssh: {}", out.stderr.trim()),
            });
        }
        Ok(out)
    }
}

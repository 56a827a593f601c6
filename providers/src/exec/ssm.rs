//! AWS Systems Manager Run Command: `AWS-RunShellScript` through SendCommand, then
//! GetCommandInvocation until the command ends. SSM keeps at most 24,000 characters of output, so
//! nothing binary or large travels through stdout: SMD archives go through the store. Standard
//! input is sent inside the command, base64-encoded, and is limited accordingly.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use aws_sdk_ssm::Client;
use aws_sdk_ssm::types::{CommandInvocationStatus, CommandStatus};
use base64::Engine;

use super::{Output, Target, Transport, TransportError};

/// What SSM keeps of a command's standard output.
pub const OUTPUT_LIMIT: usize = 24_000;
/// Standard input travels inside the command parameter, which SSM bounds.
pub const STDIN_LIMIT: usize = 32 * 1024;
/// `executionTimeout` of every command: the longest a step's command may run on a node (an
/// asbackup of a large namespace: 3 h, as plan-format.md says). AWS-RunShellScript's default,
/// 3,600 s, would kill a long asbackup half way.
pub const EXECUTION_TIMEOUT: Duration = Duration::from_secs(3 * 3600);
/// How long a new instance's agent may take to register (SendCommand answers InvalidInstanceId
/// until it has): minutes after launch. Within the 10-minute deadline of a node step.
pub const REGISTRATION_WAIT: Duration = Duration::from_secs(9 * 60);

/// Instances launched by this apply, by node: (instance id, region).
type Launched = std::sync::Arc<std::sync::Mutex<BTreeMap<String, (String, Option<String>)>>>;

#[derive(Debug, Clone)]
pub struct Ssm {
    client: Client,
    /// Clients of the other regions the policy acts in (a restore there runs its commands there).
    pub regional: BTreeMap<String, Client>,
    /// Node name → instance id: SSM addresses instances, not hosts.
    pub instances: BTreeMap<String, String>,
    /// Instances this apply launched (a replacement, a drill's or a restore's new nodes): they
    /// are not in the world observed before it.
    launched: Launched,
    pub poll: Duration,
    /// How long `run` waits for one command: past the command's own execution timeout, so SSM
    /// has stopped it by then. A command still running when `run` gives up is never sent again:
    /// the next `run` of it finds it by its comment and waits for that one.
    pub timeout: Duration,
    pub execution_timeout: Duration,
    pub registration_wait: Duration,
}

impl Ssm {
    pub fn new(client: Client, instances: BTreeMap<String, String>) -> Self {
        Ssm {
            client,
            regional: BTreeMap::new(),
            instances,
            launched: Launched::default(),
            poll: Duration::from_secs(1),
            timeout: EXECUTION_TIMEOUT + Duration::from_secs(300),
            execution_timeout: EXECUTION_TIMEOUT,
            registration_wait: REGISTRATION_WAIT,
        }
    }

    /// The instance a node's commands go to, and the client of its region.
    fn route(&self, node: &str) -> Result<(String, &Client), String> {
        let launched = self
            .launched
            .lock()
            .expect("not poisoned")
            .get(node)
            .cloned();
        let (instance, region) = match launched {
            Some(found) => found,
            None => match self.instances.get(node) {
                Some(i) => (i.clone(), None),
                None => {
                    return Err(format!(
                        "no instance id known for node {node} (SSM addresses instances)"
                    ));
                }
            },
        };
        let client = match region {
            None => &self.client,
            Some(r) => self
                .regional
                .get(&r)
                .ok_or_else(|| format!("no SSM client for region {r}, where node {node} runs"))?,
        };
        Ok((instance, client))
    }
}

/// The shell script SSM runs: stdin, if any, decoded and piped into the command.
pub fn script(command: &str, stdin: Option<&[u8]>) -> String {
    match stdin {
        None => command.to_string(),
        Some(bytes) => format!(
            "printf '%s' '{}' | base64 -d | {{ {command}\n}}",
            base64::engine::general_purpose::STANDARD.encode(bytes)
        ),
    }
}

/// The comment a command is sent with: the node, and a digest of the instance and the script, so
/// a command still running is found again instead of being sent twice (SSM caps comments at
/// 100 characters).
pub fn comment(node: &str, instance: &str, script: &str) -> String {
    let digest = crate::store::sha256_hex(format!("{instance}\n{script}").as_bytes());
    let node: String = node.chars().take(60).collect();
    format!("asdr {node} {}", &digest[..24])
}

impl Ssm {
    /// The command sent with `comment` to `instance` that is still pending or running, if any
    /// (sent by an earlier `run` that gave up waiting, or by an apply that was killed). Every page
    /// of the commands sent within the execution timeout is read; a list that fails is an error,
    /// never "none" (the command would be sent twice).
    async fn in_flight(
        &self,
        client: &Client,
        instance: &str,
        comment: &str,
    ) -> Result<Option<String>, String> {
        let since = std::time::SystemTime::now()
            .checked_sub(self.execution_timeout + Duration::from_secs(3600))
            .unwrap_or(std::time::UNIX_EPOCH);
        let since = aws_sdk_ssm::primitives::DateTime::from(since)
            .fmt(aws_sdk_ssm::primitives::DateTimeFormat::DateTime)
            .map_err(|e| e.to_string())?;
        let mut token = None;
        loop {
            let page = client
                .list_commands()
                .instance_id(instance)
                .filters(
                    aws_sdk_ssm::types::CommandFilter::builder()
                        .key(aws_sdk_ssm::types::CommandFilterKey::InvokedAfter)
                        .value(&since)
                        .build()
                        .map_err(|e| e.to_string())?,
                )
                .set_next_token(token)
                .send()
                .await
                .map_err(|e| crate::aws_error::one_line("ListCommands", &e, None))?;
            let found = page
                .commands()
                .iter()
                .filter(|c| c.comment() == Some(comment))
                .find(|c| {
                    matches!(
                        c.status(),
                        Some(
                            CommandStatus::Pending
                                | CommandStatus::InProgress
                                | CommandStatus::Cancelling
                        )
                    )
                })
                .and_then(|c| c.command_id())
                .map(str::to_string);
            if found.is_some() {
                return Ok(found);
            }
            match page.next_token() {
                Some(t) if !t.is_empty() => token = Some(t.to_string()),
                _ => return Ok(None),
            }
        }
    }

    /// SendCommand; a new instance whose agent has not registered yet (InvalidInstanceId) is
    /// waited for, up to `registration_wait`.
    async fn send(
        &self,
        client: &Client,
        instance: &str,
        script: &str,
        comment: &str,
    ) -> Result<String, String> {
        let started = Instant::now();
        loop {
            let sent = client
                .send_command()
                .document_name("AWS-RunShellScript")
                .instance_ids(instance)
                .parameters("commands", vec![script.to_string()])
                .parameters(
                    "executionTimeout",
                    vec![self.execution_timeout.as_secs().to_string()],
                )
                .comment(comment)
                .send()
                .await;
            match sent {
                Ok(sent) => {
                    return sent
                        .command()
                        .and_then(|c| c.command_id())
                        .map(str::to_string)
                        .ok_or_else(|| "SendCommand returned no command id".into());
                }
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_invalid_instance_id())
                        && started.elapsed() < self.registration_wait =>
                {
                    // Not registered with SSM yet (or not running): a new instance's agent
                    // takes minutes.
                    tokio::time::sleep(self.poll.max(Duration::from_millis(1))).await;
                }
                Err(e) => {
                    let mut why = crate::aws_error::one_line("SendCommand", &e, None);
                    let waited = started.elapsed();
                    if waited >= self.registration_wait {
                        why.push_str(&format!(
                            " (instance {instance} not registered with SSM after {}s: is its agent running, and may its instance profile use SSM?)",
                            waited.as_secs()
                        ));
                    }
                    return Err(why);
                }
            }
        }
    }
}

impl Transport for Ssm {
    fn streams_binary(&self) -> bool {
        false
    }

    fn launched(&self, node: &str, instance: &str, region: Option<&str>) {
        self.launched.lock().expect("not poisoned").insert(
            node.to_string(),
            (instance.to_string(), region.map(str::to_string)),
        );
    }

    async fn run(
        &self,
        target: &Target,
        command: &str,
        stdin: Option<Vec<u8>>,
    ) -> Result<Output, TransportError> {
        let unreachable = |message: String| TransportError::Unreachable {
            node: target.node.clone(),
            host: target.host.clone(),
            message,
        };
        let (instance, client) = self.route(&target.node).map_err(unreachable)?;
        let instance = &instance;
        if stdin.as_ref().is_some_and(|b| b.len() > STDIN_LIMIT) {
            return Err(unreachable(format!(
                "{} bytes of input is over what an SSM command can carry ({STDIN_LIMIT}); move files through the SMD store",
                stdin.map_or(0, |b| b.len())
            )));
        }
        let script = script(command, stdin.as_deref());
        let comment = comment(&target.node, instance, &script);
        let command_id = match self
            .in_flight(client, instance, &comment)
            .await
            .map_err(unreachable)?
        {
            Some(id) => id,
            None => self
                .send(client, instance, &script, &comment)
                .await
                .map_err(unreachable)?,
        };
        let started = Instant::now();
        loop {
            if started.elapsed() > self.timeout {
                return Err(TransportError::Timeout {
                    node: target.node.clone(),
                    host: instance.clone(),
                    command: command.into(),
                    after: self.timeout,
                });
            }
            match client
                .get_command_invocation()
                .command_id(&command_id)
                .instance_id(instance)
                .send()
                .await
            {
                Ok(inv) => match inv.status() {
                    // Cancelling: the command may still run; only its end is an answer.
                    Some(
                        CommandInvocationStatus::Pending
                        | CommandInvocationStatus::InProgress
                        | CommandInvocationStatus::Delayed
                        | CommandInvocationStatus::Cancelling,
                    )
                    | None => {}
                    Some(status) => {
                        let stdout = inv
                            .standard_output_content()
                            .unwrap_or_default()
                            .as_bytes()
                            .to_vec();
                        if stdout.len() >= OUTPUT_LIMIT {
                            return Err(unreachable(format!(
                                "`{command}` printed {OUTPUT_LIMIT} characters or more, which SSM truncates; asdr does not read large output over SSM"
                            )));
                        }
                        let code = inv.response_code();
                        let status_code = if matches!(status, CommandInvocationStatus::Success) {
                            0
                        } else if code != 0 {
                            code
                        } else {
                            -1
                        };
                        return Ok(Output {
                            status: status_code,
                            stdout,
                            stderr: inv.standard_error_content().unwrap_or_default().to_string(),
                        });
                    }
                },
                // Right after SendCommand the invocation may not exist yet.
                Err(e)
                    if e.as_service_error()
                        .is_some_and(|s| s.is_invocation_does_not_exist()) => {}
                Err(e) => {
                    return Err(unreachable(crate::aws_error::one_line(
                        "GetCommandInvocation",
                        &e,
                        None,
                    )));
                }
            }
            tokio::time::sleep(self.poll).await;
        }
    }
}

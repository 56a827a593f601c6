//! SSM Run Command as AWS behaves where moto does not (moto's SSM runs nothing, registers every
//! instance at once and never times a command out): aws-smithy-mocks answer as the SSM API
//! reference documents.

use std::collections::BTreeMap;
use std::time::Duration;

use asdr_providers::exec::ssm::{EXECUTION_TIMEOUT, Ssm, comment, script};
use asdr_providers::exec::{Target, Transport, TransportError};
use aws_sdk_ssm::operation::get_command_invocation::GetCommandInvocationOutput;
use aws_sdk_ssm::operation::list_commands::ListCommandsOutput;
use aws_sdk_ssm::operation::send_command::{SendCommandError, SendCommandOutput};
use aws_sdk_ssm::types::{Command, CommandInvocationStatus, CommandStatus};
use aws_smithy_mocks::{Rule, RuleMode, mock, mock_client};

/// ListCommands finding nothing pending or running.
pub(crate) fn none_in_flight() -> Rule {
    mock!(aws_sdk_ssm::Client::list_commands).then_output(|| ListCommandsOutput::builder().build())
}

fn target() -> Target {
    Target {
        node: "a1".into(),
        host: "10.0.1.11".into(),
    }
}

fn ssm(client: aws_sdk_ssm::Client) -> Ssm {
    let mut ssm = Ssm::new(
        client,
        BTreeMap::from([("a1".to_string(), "i-0a1".to_string())]),
    );
    ssm.poll = Duration::from_millis(1);
    ssm
}

fn sent(id: &'static str) -> impl Fn() -> SendCommandOutput + Send + Sync + 'static {
    move || {
        SendCommandOutput::builder()
            .command(Command::builder().command_id(id).build())
            .build()
    }
}

/// A long command (an asbackup of a big namespace) outlives asdr's wait: the wait gives up, but
/// the command still runs on the node. Run again (the step's retry, or the next apply after a
/// kill), it is found by its comment and waited for — never sent a second time, which would run
/// two asbackups into one directory. It is sent with an execution timeout of 3 h, not
/// AWS-RunShellScript's default hour, which would kill it half way.
#[tokio::test]
async fn ssm_never_sends_again_a_command_still_running_on_the_node() {
    let command = "asbackup --namespace users --directory /backup/bs-1/users";
    let ours = comment("a1", "i-0a1", &script(command, None));
    let send = mock!(aws_sdk_ssm::Client::send_command)
        .match_requests(|r| {
            r.parameters()
                .and_then(|p| p.get("executionTimeout"))
                .is_some_and(|t| t == &vec![EXECUTION_TIMEOUT.as_secs().to_string()])
                && EXECUTION_TIMEOUT >= Duration::from_secs(3 * 3600)
        })
        .then_output(sent("cmd-long"));
    let listed = ours.clone();
    let list = mock!(aws_sdk_ssm::Client::list_commands)
        .match_requests(|r| r.instance_id() == Some("i-0a1"))
        .sequence()
        .output(|| ListCommandsOutput::builder().build())
        .output(move || {
            ListCommandsOutput::builder()
                // Another command of asdr's, finished; one of someone else's, running.
                .commands(
                    Command::builder()
                        .command_id("cmd-old")
                        .comment(listed.clone())
                        .status(CommandStatus::Success)
                        .build(),
                )
                .commands(
                    Command::builder()
                        .command_id("cmd-other")
                        .comment("patching")
                        .status(CommandStatus::InProgress)
                        .build(),
                )
                .commands(
                    Command::builder()
                        .command_id("cmd-long")
                        .comment(listed.clone())
                        .status(CommandStatus::InProgress)
                        .build(),
                )
                .build()
        })
        .build();
    let get = mock!(aws_sdk_ssm::Client::get_command_invocation)
        .match_requests(|r| r.command_id() == Some("cmd-long"))
        .sequence()
        .output(|| {
            GetCommandInvocationOutput::builder()
                .status(CommandInvocationStatus::InProgress)
                .build()
        })
        .times(3)
        .output(|| {
            GetCommandInvocationOutput::builder()
                .status(CommandInvocationStatus::Success)
                .standard_output_content("backed up\n")
                .build()
        })
        .build();
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&send, &list, &get]);
    let mut ssm = ssm(client);
    ssm.timeout = Duration::from_millis(0);
    let first = ssm.run(&target(), command, None).await.unwrap_err();
    assert!(matches!(first, TransportError::Timeout { .. }), "{first}");
    ssm.timeout = Duration::from_secs(30);
    let out = ssm.run(&target(), command, None).await.unwrap();
    assert_eq!(out.stdout, b"backed up\n");
    assert_eq!(send.num_calls(), 1, "sent once, waited for twice");
    assert!(ours.len() <= 100, "SSM caps comments at 100 characters");
}

/// A replacement's agent registers minutes after launch; until then SendCommand answers
/// InvalidInstanceId. The command waits for it instead of failing the step after a few retries.
#[tokio::test]
async fn ssm_waits_for_a_new_instances_agent_to_register() {
    let send = mock!(aws_sdk_ssm::Client::send_command)
        .sequence()
        .error(|| {
            SendCommandError::InvalidInstanceId(
                aws_sdk_ssm::types::error::InvalidInstanceId::builder()
                    .message("Instances [[i-0a1]] not in a valid state for account")
                    .build(),
            )
        })
        .times(40)
        .output(sent("cmd-new"))
        .build();
    let get = mock!(aws_sdk_ssm::Client::get_command_invocation).then_output(|| {
        GetCommandInvocationOutput::builder()
            .status(CommandInvocationStatus::Success)
            .standard_output_content("ok\n")
            .build()
    });
    let client = mock_client!(
        aws_sdk_ssm,
        RuleMode::MatchAny,
        &[&send, &get, &none_in_flight()]
    );
    let out = ssm(client).run(&target(), "true", None).await.unwrap();
    assert_eq!(out.stdout, b"ok\n");
    assert_eq!(send.num_calls(), 41);
}

/// An instance that never registers (no agent, or an instance profile without SSM) fails once
/// the registration wait is over, saying so.
#[tokio::test]
async fn ssm_an_instance_that_never_registers_fails_saying_why() {
    let send = mock!(aws_sdk_ssm::Client::send_command).then_error(|| {
        SendCommandError::InvalidInstanceId(
            aws_sdk_ssm::types::error::InvalidInstanceId::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&send, &none_in_flight()]);
    let mut ssm = ssm(client);
    ssm.registration_wait = Duration::from_millis(50);
    let err = ssm.run(&target(), "true", None).await.unwrap_err();
    assert!(err.to_string().contains("not registered with SSM"), "{err}");
    assert!(send.num_calls() > 1, "it was waited for");
}

/// ListCommands failing (throttled, denied) is not "nothing in flight": the command is not sent,
/// the run fails (and is retried), so a command still running is never sent a second time.
#[tokio::test]
async fn ssm_a_list_that_fails_sends_nothing() {
    let send = mock!(aws_sdk_ssm::Client::send_command).then_output(sent("cmd-x"));
    let list = mock!(aws_sdk_ssm::Client::list_commands).then_error(|| {
        aws_sdk_ssm::operation::list_commands::ListCommandsError::InternalServerError(
            aws_sdk_ssm::types::error::InternalServerError::builder().build(),
        )
    });
    let client = mock_client!(aws_sdk_ssm, RuleMode::MatchAny, &[&send, &list]);
    let err = ssm(client).run(&target(), "true", None).await.unwrap_err();
    assert!(err.to_string().contains("ListCommands"), "{err}");
    assert_eq!(send.num_calls(), 0);
}

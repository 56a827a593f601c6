//! `asdr man`: one manual page for the whole tool. clap_mangen renders the top of it; every
//! subcommand gets its own subsection here (a page that lists `asdr-plan(1)` and ships no such page
//! sends the reader nowhere), then EXIT STATUS, ENVIRONMENT and FILES.

use clap::{Arg, Command};

/// The page, in roff.
pub fn render(cmd: Command) -> std::io::Result<Vec<u8>> {
    let mut cmd = cmd;
    cmd.build();
    let man = clap_mangen::Man::new(cmd.clone());
    let mut out = Vec::new();
    man.render_title(&mut out)?;
    man.render_name_section(&mut out)?;
    man.render_synopsis_section(&mut out)?;
    man.render_description_section(&mut out)?;
    out.extend_from_slice(b".SH \"GLOBAL OPTIONS\"\n");
    for a in cmd.get_arguments().filter(|a| shown(a)) {
        option(&mut out, a);
    }
    out.extend_from_slice(b".SH COMMANDS\n");
    for sub in cmd.get_subcommands().filter(|s| s.get_name() != "help") {
        subcommand(&mut out, sub);
    }
    out.extend_from_slice(EXTRA.as_bytes());
    man.render_version_section(&mut out)?;
    Ok(out)
}

fn subcommand(out: &mut Vec<u8>, sub: &Command) {
    let mut usage = format!("asdr {}", sub.get_name());
    for a in sub
        .get_arguments()
        .filter(|a| shown(a) && !a.is_global_set())
    {
        usage.push(' ');
        usage.push_str(&synopsis(a));
    }
    push(out, &format!(".SS \"{}\"\n", escape(&usage)));
    let about = sub
        .get_long_about()
        .or(sub.get_about())
        .map(ToString::to_string)
        .unwrap_or_default();
    for para in about.split("\n\n") {
        push(out, &format!(".PP\n{}\n", escape(para.trim())));
    }
    for a in sub
        .get_arguments()
        .filter(|a| shown(a) && !a.is_global_set())
    {
        option(out, a);
    }
}

/// Help and version are said once, not under every command.
fn shown(a: &Arg) -> bool {
    !a.is_hide_set() && !matches!(a.get_id().as_str(), "help" | "version")
}

fn synopsis(a: &Arg) -> String {
    let name = flag(a);
    if a.is_required_set() {
        name
    } else {
        format!("[{name}]")
    }
}

fn flag(a: &Arg) -> String {
    let value = a
        .get_value_names()
        .map(|v| v.iter().map(ToString::to_string).collect::<Vec<_>>())
        .unwrap_or_else(|| vec![a.get_id().as_str().to_uppercase()]);
    let takes = a.get_num_args().is_some_and(|n| n.takes_values());
    match (a.get_short(), a.get_long()) {
        (_, Some(long)) if takes => format!("--{long} <{}>", value.join(" ")),
        (_, Some(long)) => format!("--{long}"),
        (Some(s), None) => format!("-{s}"),
        // A positional argument.
        (None, None) => format!("<{}>", value.join(" ")),
    }
}

fn option(out: &mut Vec<u8>, a: &Arg) {
    let mut head = flag(a);
    if let (Some(s), Some(_)) = (a.get_short(), a.get_long()) {
        head = format!("-{s}, {head}");
    }
    let help = a
        .get_long_help()
        .or(a.get_help())
        .map(ToString::to_string)
        .unwrap_or_default();
    let mut text = help.trim_end().to_string();
    if !text.is_empty() && !text.ends_with(['.', '!', '?']) {
        text.push('.');
    }
    let values: Vec<String> = a
        .get_possible_values()
        .iter()
        .filter(|v| !v.is_hide_set())
        .map(|v| v.get_name().to_string())
        .collect();
    if !values.is_empty() {
        text.push_str(&format!(" One of: {}.", values.join(", ")));
    }
    let takes = a.get_num_args().is_some_and(|n| n.takes_values());
    if let Some(d) = a.get_default_values().first().filter(|_| takes) {
        text.push_str(&format!(" [default: {}]", d.to_string_lossy()));
    }
    if let Some(env) = a.get_env() {
        text.push_str(&format!(" Environment: {}.", env.to_string_lossy()));
    }
    push(
        out,
        &format!(".TP\n\\fB{}\\fR\n{}\n", escape(&head), escape(text.trim())),
    );
}

const EXTRA: &str = r#".SH "EXIT STATUS"
.TP
.B 0
Success. With \fBplan --detailed-exitcode\fR: success and nothing to do. With \fBstatus\fR: every
declared recovery path has a usable set within its objective and every node is up.
.TP
.B 1
An error: an invalid policy, an unreadable or invalid world file, an unknown restore or drill, a
refused plan, a stale plan file, an apply not confirmed, the lock held, a failed or partial apply.
With \fBfmt --check\fR: the file is not laid out as \fBfmt\fR lays it out (the diff is printed).
.TP
.B 2
With \fBplan --detailed-exitcode\fR: success, and the plan has changes. With \fBstatus\fR: not
fine (the backup overdue, a recovery path without a usable set, a node not up or left quiesced,
an undeclared node in the cluster), each listed under \fIrecovery: NOT FINE\fR.
.TP
.B 130
An apply or drill stopped by SIGINT or SIGTERM: the step in flight was given its grace, the
cleanups ran (unquiesce, start), the journal was closed and the lock released.
.SH EXAMPLES
.nf
asdr init \-\-name prod\-east \-\-node a1=10.0.1.11@us\-east\-1a \-\-node b1=10.0.2.11@us\-east\-1b
asdr \-f asdr.yaml validate
asdr \-f asdr.yaml \-\-world world.yaml plan
asdr \-f asdr.yaml plan \-\-restore a1\-refill \-\-out plan.json && asdr show plan.json
asdr \-f asdr.yaml apply plan.json
asdr \-f asdr.yaml status \-\-format openmetrics
asdr \-f asdr.yaml sets \-\-json
.fi
.SH ENVIRONMENT
.TP
.B AWS_ENDPOINT_URL
The AWS endpoint, as \fB--endpoint-url\fR.
.TP
.B AWS_REGION\fR, \fBAWS_PROFILE\fR, \fBAWS_ACCESS_KEY_ID\fR, \fBAWS_SECRET_ACCESS_KEY\fR, \fBAWS_SESSION_TOKEN
Credentials and region as the AWS SDK reads them (environment, profile, web identity, instance
role). The region defaults to the policy's \fIcluster.region\fR.
.TP
.B AWS_EC2_METADATA_DISABLED
\fBtrue\fR: never ask the instance-metadata service for credentials (off EC2).
.TP
.B NO_COLOR
Set: no colours, as \fB--no-color\fR.
.TP
.B ASDR_GRACE_MS
How long a step in flight may finish after SIGINT or SIGTERM before the cleanups run (default
30000).
.TP
.B ASDR_STEP_TIMEOUT_MS
Overrides every step's deadline.
.TP
.B ASDR_POLL_INTERVAL_MS
Between polls of a pending step on AWS (default 5000).
.TP
.B ASDR_LOCK_RENEW_MS
How often the holder of an S3 lock renews its lease (default 60000; a lock not renewed for five
of these is stale).
.TP
.B ASDR_SIMULATION
With \fB--world\fR: a simulation file that tunes how the world file behaves under apply (latency,
failures), for rehearsals.
.SH FILES
.TP
.B asdr.yaml
The policy file (\fB-f\fR).
.TP
.B .asdr/
Beside the policy file: the journals of applies and drills (\fB.asdr/journal\fR,
\fB.asdr/drills\fR), the local lock (\fB.asdr/locks\fR), drill reports. Owner-only; asdr refuses a
state directory that others can write.
.SH "SEE ALSO"
The documentation in the source tree's \fBdocs/\fR: policy.md (every key of the policy file),
plan-format.md (the plan, the plan file, step kinds), safety-rules.md, operations.md.
"#;

fn push(out: &mut Vec<u8>, s: &str) {
    out.extend_from_slice(s.as_bytes());
}

/// Text for roff: backslashes doubled, a leading dot or quote protected, dashes kept literal,
/// `code` in bold (the help is written in Markdown's backticks).
fn escape(s: &str) -> String {
    s.lines()
        .map(|l| {
            let mut l = l.replace('\\', "\\e").replace('-', "\\-");
            while let Some(open) = l.find('`') {
                let Some(close) = l[open + 1..].find('`').map(|c| open + 1 + c) else {
                    break;
                };
                l = format!(
                    "{}\\fB{}\\fR{}",
                    &l[..open],
                    &l[open + 1..close],
                    &l[close + 1..]
                );
            }
            if l.starts_with('.') || l.starts_with('\'') {
                format!("\\&{l}")
            } else {
                l
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

//! One module per verb, each with a `cmd_<verb>` function.

mod apply;
mod drill;
mod fmt;
mod graph;
mod iam_policy;
mod init;
mod inventory;
mod plan;
mod recycle_bin;
mod schema;
mod sets;
mod show;
mod status;
mod validate;

use std::io::Write;

use crate::args::{Cli, Command};
use crate::error::CommandError;

pub fn run(cli: &Cli) -> Result<i32, CommandError> {
    let g = &cli.global;
    match &cli.command {
        Command::Validate => validate::cmd_validate(g),
        Command::Plan(a) => plan::cmd_plan(g, a),
        Command::Apply(a) => apply::cmd_apply(g, a),
        Command::Show(a) => show::cmd_show(g, a),
        Command::Graph(a) => graph::cmd_graph(g, a),
        Command::Inventory => inventory::cmd_inventory(g),
        Command::Schema(a) => schema::cmd_schema(a),
        Command::IamPolicy(a) => iam_policy::cmd_iam_policy(g, a),
        Command::RecycleBinRule(a) => recycle_bin::cmd_recycle_bin_rule(g, a),
        Command::Drill(a) => drill::cmd_drill(g, a),
        Command::Status(a) => status::cmd_status(g, a),
        Command::Sets => sets::cmd_sets(g),
        Command::Fmt(a) => fmt::cmd_fmt(g, a),
        Command::Init(a) => init::cmd_init(g, a),
        Command::Completions(a) => {
            let mut cmd = <crate::args::Cli as clap::CommandFactory>::command();
            let mut script = Vec::new();
            clap_complete::generate(a.shell, &mut cmd, "asdr", &mut script);
            write_raw(&script)?;
            Ok(0)
        }
        Command::Man => {
            let cmd = <crate::args::Cli as clap::CommandFactory>::command();
            let page = crate::manpage::render(cmd)
                .map_err(|e| CommandError::User(format!("cannot render the manual page: {e}")))?;
            write_raw(&page)?;
            Ok(0)
        }
    }
}

/// Writes to stdout through anstream, which drops colours off a terminal and under NO_COLOR.
pub(crate) fn print(text: &str) -> Result<(), CommandError> {
    let mut out = anstream::stdout();
    quiet_pipe(out.write_all(text.as_bytes()))
}

/// A reader that stopped reading (`asdr plan | head`) is not an error worth a message: the
/// command still exits with its own code.
fn quiet_pipe(r: std::io::Result<()>) -> Result<(), CommandError> {
    match r {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        r => r.map_err(|e| CommandError::User(format!("cannot write to stdout: {e}"))),
    }
}

/// Bytes to stdout as they are (a closed pipe ends the output quietly, never a panic).
fn write_raw(bytes: &[u8]) -> Result<(), CommandError> {
    quiet_pipe(std::io::stdout().write_all(bytes))
}

/// A duration as `status` and `sets` print it: the two largest units.
pub(crate) fn age(seconds: u64) -> String {
    match seconds {
        s if s >= 2 * 86_400 => format!("{}d {}h", s / 86_400, s % 86_400 / 3600),
        s if s >= 3600 => format!("{}h {}m", s / 3600, s % 3600 / 60),
        s if s >= 60 => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

pub(crate) fn json(value: &impl serde::Serialize) -> Result<String, CommandError> {
    serde_json::to_string_pretty(value)
        .map(|s| s + "\n")
        .map_err(|e| CommandError::User(e.to_string()))
}

//! asdr: declarative backup and disaster recovery for Aerospike on AWS.
//! The binary is glue: parse arguments, call the library crates, render, map errors to exit codes.

mod args;
mod commands;
mod error;
mod inputs;
mod manpage;
mod markdown;
mod progress;
mod render;
mod summary;

use clap::Parser;

fn main() {
    let cli = args::Cli::parse();
    if cli.global.no_color {
        anstream::ColorChoice::Never.write_global();
    }
    let code = match commands::run(&cli) {
        Ok(code) => code,
        Err(e) => e.report(),
    };
    std::process::exit(code);
}

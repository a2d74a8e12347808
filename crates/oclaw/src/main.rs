//! The `oclaw` command: CLI wiring only; the work happens in the library crates.

mod cli;
mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    let cli = cli::Cli::parse();
    commands::run(cli)
}

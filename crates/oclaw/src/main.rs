//! The `oclaw` command: clap definitions (`cli`) and each command's wiring and output
//! (`commands`); the work happens in the library crates.

mod cli;
mod commands;

use clap::Parser;

fn main() -> std::process::ExitCode {
    // One TLS crypto provider for every client the process builds (HTTP skills, the cluster
    // drivers' probes and API clients, OTLP export).
    let _ = rustls::crypto::ring::default_provider().install_default();
    let cli = cli::Cli::parse();
    if cli.command.prints_and_exits() {
        // `oclaw task list | head -1`: a reader that quits early ends the command quietly, as
        // it ends any Unix tool. Servers keep SIGPIPE ignored: a closed socket or child pipe
        // is an error they report and survive.
        sigpipe::reset();
    }
    commands::run(cli)
}

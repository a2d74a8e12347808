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
    commands::run(cli)
}

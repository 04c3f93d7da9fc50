//! The `stele` binary: parses the command line and hands over to `stele_server::cli`.

use std::process::ExitCode;

use clap::Parser;

#[tokio::main]
async fn main() -> ExitCode {
    stele_server::cli::run(stele_server::config::Cli::parse()).await
}

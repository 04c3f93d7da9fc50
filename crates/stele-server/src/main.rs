//! The `stele` binary: parses the command line and hands over to `stele_server::cli`.

use std::process::ExitCode;

#[tokio::main]
async fn main() -> ExitCode {
    match stele_server::config::Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => stele_server::cli::run(cli).await,
        Err(error) => error.exit(),
    }
}

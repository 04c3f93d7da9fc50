//! The `stele` binary: parses the command line and hands over to `stele_server::cli`.

use std::process::ExitCode;

/// mimalloc instead of the system allocator: the request path allocates and frees many
/// small objects on every worker thread, where glibc's arenas spent a large share of the
/// CPU (measured in BENCHMARKS.md, "The request path, the idempotency read and
/// PostgreSQL's key claims").
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

#[tokio::main]
async fn main() -> ExitCode {
    // Before anything can open an SQLite connection: SQLite takes its page cache only then.
    stele_store::sqlite::install_page_cache();
    match stele_server::config::Cli::try_parse_args(std::env::args_os()) {
        Ok(cli) => stele_server::cli::run(cli).await,
        Err(error) => error.exit(),
    }
}

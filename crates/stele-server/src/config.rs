//! Command-line and environment configuration: one clap struct per command, with `env` on
//! every field so containers and scripts configure Stele without flags.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};
use stele_store::postgres::PostgresOptions;
use stele_store::sqlite::SyncMode;

#[derive(Debug, Parser)]
#[command(
    name = "stele",
    version,
    about = "Self-hosted, WorkOS-compatible audit log service"
)]
pub struct Cli {
    #[command(flatten)]
    pub global: GlobalArgs,
    /// The `serve` flags, accepted without the subcommand since serving is the default
    /// (`stele --listen 127.0.0.1:9000`).
    #[command(flatten)]
    pub serve: ServeConfig,
    /// What to do; `serve` when omitted.
    #[command(subcommand)]
    pub command: Option<Command>,
}

impl Cli {
    /// Parses the command line, refusing `serve` flags given before a subcommand
    /// (`stele --listen ADDR verify`, or `stele --listen ADDR serve`, where `serve`'s own
    /// defaults would win), which would otherwise be silently ignored.
    pub fn try_parse_args<I, T>(args: I) -> Result<Self, clap::Error>
    where
        I: IntoIterator<Item = T>,
        T: Into<std::ffi::OsString> + Clone,
    {
        use clap::{CommandFactory, FromArgMatches};
        let mut command = Self::command();
        let matches = command.try_get_matches_from_mut(args)?;
        if let Some((name, _)) = matches.subcommand() {
            let serve = ServeConfig::command();
            let serve_flag = serve.get_arguments().find(|arg| {
                matches.value_source(arg.get_id().as_str())
                    == Some(clap::parser::ValueSource::CommandLine)
            });
            if let Some(arg) = serve_flag {
                let flag = arg.get_long().unwrap_or_else(|| arg.get_id().as_str());
                let message = if name == "serve" {
                    format!("--{flag} is given before `serve`; put it after `serve`, or leave `serve` out")
                } else {
                    format!("--{flag} is a `serve` flag; `{name}` does not take it")
                };
                return Err(command.error(clap::error::ErrorKind::ArgumentConflict, message));
            }
        }
        Self::from_arg_matches(&matches).map_err(|error| error.format(&mut command))
    }
}

#[derive(Debug, Clone, Args)]
pub struct GlobalArgs {
    /// Database to use: `sqlite://PATH` (or a plain file path) for the embedded database,
    /// where `?synchronous=normal` trades power-loss durability for write speed (see
    /// README); `postgres://USER@HOST:PORT/DATABASE` for PostgreSQL, which several
    /// replicas can share.
    #[arg(
        long,
        env = "STELE_DATABASE_URL",
        global = true,
        default_value = "sqlite://./stele-data/stele.db"
    )]
    pub database_url: String,
    #[command(flatten)]
    pub database: DatabaseOptions,
    /// Log output format.
    #[arg(long, env = "STELE_LOG_FORMAT", global = true, value_enum, default_value_t = LogFormat::Pretty)]
    pub log_format: LogFormat,
}

/// How a PostgreSQL-backed process uses its database (ignored for SQLite).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Args)]
pub struct DatabaseOptions {
    /// Most PostgreSQL connections this process opens. Every replica opens its own pool,
    /// so replicas × pool size must stay below the server's `max_connections`.
    #[arg(long, env = "STELE_DATABASE_POOL_SIZE", global = true, default_value_t = 16,
          value_parser = clap::value_parser!(u32).range(2..=1000))]
    pub database_pool_size: u32,
    /// Longest one PostgreSQL statement may run, in milliseconds, before the server
    /// cancels it (0 disables the limit).
    #[arg(
        long,
        env = "STELE_DATABASE_STATEMENT_TIMEOUT_MS",
        global = true,
        default_value_t = 30_000
    )]
    pub database_statement_timeout_ms: u64,
    /// Longest to wait for a PostgreSQL connection, in seconds (also how long a request
    /// waits for a free connection from the pool).
    #[arg(long, env = "STELE_DATABASE_CONNECT_TIMEOUT_SECS", global = true, default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=600))]
    pub database_connect_timeout_secs: u64,
}

impl Default for DatabaseOptions {
    fn default() -> Self {
        Self {
            database_pool_size: 16,
            database_statement_timeout_ms: 30_000,
            database_connect_timeout_secs: 10,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    Pretty,
    Json,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeConfig),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-check every stored hash chain, Merkle tree and signed checkpoint; exits non-zero
    /// naming the organization and the first bad sequence.
    Verify {
        /// Only verify this organization.
        #[arg(long)]
        organization: Option<String>,
        /// Trust only these checkpoint keys (verifier key `<name>+<id>+<key>`, or a file
        /// holding one per line); by default every key recorded in the database.
        #[arg(long = "public-key")]
        public_keys: Vec<String>,
    },
    /// Check a proven JSONL export or proof bundle offline: no database, only public keys.
    VerifyExport {
        /// The downloaded file.
        file: std::path::PathBuf,
        /// Verifier key `<name>+<id>+<key>` (from GET /audit_logs/signing_keys), or a file
        /// holding one per line. Repeat for several keys.
        #[arg(long = "public-key", required = true)]
        public_keys: Vec<String>,
    },
    /// Copy organizations (with their ids), every schema version of every action and
    /// each organization's retention from a server speaking the WorkOS API into this
    /// database. Refuses, before writing anything, a database whose history conflicts.
    Import {
        /// Base URL of the source (`https://api.workos.com`, or another Stele).
        #[arg(long = "from")]
        from: String,
        /// API key of the source.
        #[arg(long, env = "STELE_IMPORT_API_KEY", hide_env_values = true)]
        api_key: String,
    },
    /// Load a WorkOS CSV export as events of one organization, keeping `occurred_at`;
    /// every row is validated before any is stored, and each event is marked imported.
    ImportEvents {
        /// The organization the events belong to (`org_...`).
        #[arg(long)]
        organization: String,
        /// The CSV file.
        file: PathBuf,
    },
    /// Manage API keys.
    #[command(subcommand)]
    ApiKeys(ApiKeysCommand),
    /// Manage dashboard users.
    #[command(subcommand)]
    Users(UsersCommand),
}

#[derive(Debug, Subcommand)]
pub enum UsersCommand {
    /// Create a dashboard user. Without --password a password is generated and printed once.
    Create {
        #[arg(long)]
        username: String,
        /// The password (at least 8 characters); prefer the environment variable over the
        /// flag, which other local users can see in the process list.
        #[arg(long, env = "STELE_USER_PASSWORD", hide_env_values = true)]
        password: Option<String>,
    },
    /// Set a new password for a dashboard user (for a lost one) and sign that user out
    /// everywhere. Reads STELE_NEW_PASSWORD, or asks twice on a terminal.
    SetPassword {
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
pub enum ApiKeysCommand {
    /// Create a key and print its secret (shown only this once).
    Create {
        #[arg(long)]
        name: String,
    },
    /// List keys (never their secrets).
    List,
    /// Revoke a key by id (`key_...`).
    Revoke { id: String },
}

#[derive(Debug, Clone, Parser)]
#[command(next_help_heading = "Server options (`serve`, the default command)")]
pub struct ServeConfig {
    /// Address to listen on.
    #[arg(long, env = "STELE_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: SocketAddr,
    /// API key to create on first start instead of a generated one (also registered later if missing).
    #[arg(long, env = "STELE_API_KEY", hide_env_values = true)]
    pub api_key: Option<String>,
    /// Password for the dashboard user `admin` on first start instead of a generated one.
    #[arg(long, env = "STELE_ADMIN_PASSWORD", hide_env_values = true)]
    pub admin_password: Option<String>,
    /// Largest accepted request body, in bytes.
    #[arg(long, env = "STELE_BODY_LIMIT_BYTES", default_value_t = 1024 * 1024)]
    pub body_limit_bytes: usize,
    /// Largest accepted body of `POST /audit_logs/events/batch`, in bytes (at least the
    /// general limit above): a batch holds up to 1,000 events.
    #[arg(
        long,
        env = "STELE_BATCH_BODY_LIMIT_BYTES",
        default_value_t = 16 * 1024 * 1024
    )]
    pub batch_body_limit_bytes: usize,
    /// Seconds between sweeps that delete expired idempotency records.
    #[arg(
        long,
        env = "STELE_IDEMPOTENCY_CLEANUP_INTERVAL_SECS",
        default_value_t = 600
    )]
    pub idempotency_cleanup_interval_secs: u64,
    /// Seconds between retention passes that purge events older than each organization's
    /// retention period.
    #[arg(long, env = "STELE_RETENTION_INTERVAL_SECS", default_value_t = 3600)]
    pub retention_interval_secs: u64,
    /// Public base URL of this deployment (e.g. https://audit.example.com), used in export
    /// download links; when unset, links use the request's Host header.
    #[arg(long, env = "STELE_PUBLIC_URL")]
    pub public_url: Option<String>,
    /// How long a dashboard sign-in lasts, in hours.
    #[arg(long, env = "STELE_SESSION_TTL_HOURS", default_value_t = 12)]
    pub session_ttl_hours: u64,
    /// PKCS#8 PEM Ed25519 key that signs checkpoints; generated (mode 0600) when missing.
    /// Defaults to `signing-key.pem` beside the SQLite file (`./stele-data/` otherwise).
    /// Replicas should share one key file; each key that ever signed stays published.
    #[arg(long, env = "STELE_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// Names this deployment in checkpoints (origin `<this>/<organization id>`) and names
    /// the signing key.
    #[arg(long, env = "STELE_LOG_ORIGIN", default_value = "stele")]
    pub log_origin: String,
    /// Seconds between passes that sign checkpoints of logs with new events.
    #[arg(long, env = "STELE_CHECKPOINT_INTERVAL_SECS", default_value_t = 5)]
    pub checkpoint_interval_secs: u64,
    /// Create an unknown organization when an event names a well-formed `org_` id (named
    /// after its id) instead of answering 404; for migrations where organizations live in
    /// WorkOS and events arrive before anyone creates them here.
    #[arg(long, env = "STELE_AUTO_CREATE_ORGANIZATIONS", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub auto_create_organizations: bool,
    /// Log one line per request at info level (method, path, status, latency, request id).
    #[arg(long, env = "STELE_REQUEST_LOG", default_value_t = true, action = clap::ArgAction::Set)]
    pub request_log: bool,
    /// Apply pending migrations when the server starts.
    #[arg(long, env = "STELE_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
}

/// The route whose body limit is `--batch-body-limit-bytes`.
pub const BATCH_INGEST_PATH: &str = "/audit_logs/events/batch";

impl ServeConfig {
    /// The largest body accepted on `path`.
    pub fn body_limit_for(&self, path: &str) -> usize {
        if path == BATCH_INGEST_PATH {
            self.batch_body_limit_bytes.max(self.body_limit_bytes)
        } else {
            self.body_limit_bytes
        }
    }
}

/// Where the data lives, parsed from `--database-url`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DatabaseLocation {
    Sqlite { path: PathBuf, sync: SyncMode },
    Postgres(PostgresOptions),
}

impl DatabaseLocation {
    /// Parses a database URL with the default PostgreSQL options.
    pub fn parse(url: &str) -> Result<Self, String> {
        Self::parse_with(url, &DatabaseOptions::default())
    }

    pub fn parse_with(url: &str, options: &DatabaseOptions) -> Result<Self, String> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            // Checked here so a typo fails before any connection attempt, with the reason.
            PostgresOptions::check_url(url)?;
            return Ok(DatabaseLocation::Postgres(PostgresOptions {
                url: url.to_owned(),
                pool_size: options.database_pool_size as usize,
                statement_timeout: std::time::Duration::from_millis(
                    options.database_statement_timeout_ms,
                ),
                connect_timeout: std::time::Duration::from_secs(
                    options.database_connect_timeout_secs,
                ),
            }));
        }
        let rest = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"))
            .unwrap_or(url);
        let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
        if path.is_empty() {
            return Err("the database URL names no file".into());
        }
        let mut sync = SyncMode::Full;
        for pair in query.split('&').filter(|pair| !pair.is_empty()) {
            sync = match pair {
                "synchronous=full" => SyncMode::Full,
                "synchronous=normal" => SyncMode::Normal,
                other => {
                    return Err(format!(
                        "unknown database URL option '{other}'; expected synchronous=full|normal"
                    ))
                }
            };
        }
        Ok(DatabaseLocation::Sqlite {
            path: PathBuf::from(path),
            sync,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn database_urls_name_a_sqlite_file() {
        let sqlite = |path: &str, sync| {
            Ok(DatabaseLocation::Sqlite {
                path: path.into(),
                sync,
            })
        };
        assert_eq!(
            DatabaseLocation::parse("sqlite://./a/b.db"),
            sqlite("./a/b.db", SyncMode::Full)
        );
        assert_eq!(
            DatabaseLocation::parse("sqlite:///tmp/x.db"),
            sqlite("/tmp/x.db", SyncMode::Full)
        );
        assert_eq!(
            DatabaseLocation::parse("data.db"),
            sqlite("data.db", SyncMode::Full)
        );
        assert_eq!(
            DatabaseLocation::parse("sqlite://x.db?synchronous=normal"),
            sqlite("x.db", SyncMode::Normal)
        );
        assert!(DatabaseLocation::parse("sqlite://x.db?synchronous=off").is_err());
    }

    #[test]
    fn postgres_urls_carry_the_pool_and_timeout_options() {
        let options = DatabaseOptions {
            database_pool_size: 4,
            database_statement_timeout_ms: 1500,
            database_connect_timeout_secs: 3,
        };
        let Ok(DatabaseLocation::Postgres(parsed)) =
            DatabaseLocation::parse_with("postgresql://stele@db:5432/audit", &options)
        else {
            panic!("a postgresql:// URL selects PostgreSQL");
        };
        assert_eq!(parsed.url, "postgresql://stele@db:5432/audit");
        assert_eq!(parsed.pool_size, 4);
        assert_eq!(parsed.statement_timeout.as_millis(), 1500);
        assert_eq!(parsed.connect_timeout.as_secs(), 3);
        let error = DatabaseLocation::parse("postgres://db:notaport/x").expect_err("bad port");
        assert!(error.contains("invalid PostgreSQL URL"), "{error}");
        let error = DatabaseLocation::parse("postgres://db/x?sslmode=require").expect_err("TLS");
        assert!(error.contains("without TLS"), "{error}");
        assert!(DatabaseLocation::parse("postgres://db/x?sslmode=disable").is_ok());
    }

    #[test]
    fn serve_flags_work_without_the_serve_subcommand() {
        let cli = Cli::try_parse_from(["stele", "--listen", "127.0.0.1:9000"])
            .expect("serve flags at the top level");
        assert!(cli.command.is_none());
        assert_eq!(cli.serve.listen, "127.0.0.1:9000".parse().expect("address"));
        let Some(Command::Serve(config)) =
            Cli::try_parse_from(["stele", "serve", "--listen", "127.0.0.1:9001"])
                .expect("serve flags after the subcommand")
                .command
        else {
            panic!("`serve` parses as the serve command");
        };
        assert_eq!(config.listen, "127.0.0.1:9001".parse().expect("address"));
        // A serve flag given to another command is an error, not silently ignored.
        let error = Cli::try_parse_args(["stele", "--listen", "127.0.0.1:9000", "verify"])
            .expect_err("a serve flag before verify");
        assert!(
            error.to_string().contains("--listen is a `serve` flag"),
            "{error}"
        );
        assert!(Cli::try_parse_args(["stele", "--listen", "127.0.0.1:9000"]).is_ok());
        // Before `serve` too: serve's own default would otherwise win.
        let error = Cli::try_parse_args(["stele", "--listen", "127.0.0.1:9000", "serve"])
            .expect_err("a serve flag before serve");
        assert!(
            error.to_string().contains("put it after `serve`"),
            "{error}"
        );
        assert!(Cli::try_parse_args(["stele", "serve", "--listen", "127.0.0.1:9000"]).is_ok());
    }

    #[test]
    fn database_flags_are_global_and_validated() {
        let cli = Cli::try_parse_from([
            "stele",
            "migrate",
            "--database-url",
            "postgres://localhost/x",
            "--database-pool-size",
            "8",
        ])
        .expect("valid flags");
        assert_eq!(cli.global.database.database_pool_size, 8);
        assert!(Cli::try_parse_from(["stele", "--database-pool-size", "1"]).is_err());
        let global_first =
            Cli::try_parse_from(["stele", "--database-url", "x.db", "api-keys", "list"])
                .expect("global flags before a subcommand");
        assert_eq!(global_first.global.database_url, "x.db");
        assert!(Cli::try_parse_from(["stele", "--database-connect-timeout-secs", "0"]).is_err());
    }
}

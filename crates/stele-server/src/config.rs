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

// Parsed once at start and moved out at once, so the size of `Serve` costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the HTTP server (the default).
    Serve(ServeConfig),
    /// Apply pending database migrations and exit.
    Migrate,
    /// Re-check every stored hash chain, Merkle tree and signed checkpoint; exits non-zero
    /// naming the organization and the first bad sequence.
    Verify {
        /// Only verify this organization (a deleted one's id checks the tree hashes and
        /// signed checkpoints it left).
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
    /// every row is validated before any is stored, each event is marked imported, and
    /// rows imported before (by an earlier run or an overlapping file) are skipped.
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
        /// The password (at least 12 characters, 5 of them different); prefer the environment variable over the
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
        /// A scope the key gets (repeatable): events:write, events:read, schemas:write,
        /// organizations:write or admin. Without any, the key gets admin (everything).
        #[arg(long = "scope", value_name = "SCOPE")]
        scopes: Vec<String>,
        /// An organization the key is restricted to (repeatable); without any, the key may
        /// use every organization.
        #[arg(long = "organization", value_name = "ORG_ID")]
        organizations: Vec<String>,
    },
    /// List keys with their scopes and organizations (never their secrets).
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
    /// Also serve `GET /metrics` (Prometheus) on this address, without authentication, for
    /// a scraper on a private network; unset by default. The main address serves
    /// `/metrics` to API keys either way.
    #[arg(long, env = "STELE_METRICS_LISTEN")]
    pub metrics_listen: Option<SocketAddr>,
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
    /// File holding the key (hex) that signs export download links, kept out of the
    /// database so a backup does not carry it. With SQLite it defaults to
    /// `link-signing-key` beside the database file and is created (0600) when missing;
    /// with PostgreSQL, give every replica the same file (create it once with
    /// `openssl rand -hex 32`). A key still stored in the database is moved into the file.
    /// Without this flag on PostgreSQL the key stays in the database, shared by replicas.
    #[arg(long, env = "STELE_LINK_SIGNING_KEY_FILE")]
    pub link_signing_key_file: Option<PathBuf>,
    /// Whether a missing link signing key file may be generated (one process: SQLite).
    #[arg(skip)]
    pub link_key_may_generate: bool,
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
    /// How long an Admin Portal session lasts after its link is redeemed, in minutes.
    #[arg(long, env = "STELE_PORTAL_SESSION_TTL_MINUTES", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=1440))]
    pub portal_session_ttl_minutes: u64,
    /// The vendor's product name shown at the top of every Admin Portal page.
    #[arg(long, env = "STELE_PORTAL_PRODUCT_NAME", value_parser = parse_portal_product_name)]
    pub portal_product_name: Option<String>,
    /// An `https://` (or `http://`) URL of the logo shown beside the product name in the
    /// Admin Portal.
    #[arg(long, env = "STELE_PORTAL_LOGO_URL", value_parser = parse_portal_logo_url)]
    pub portal_logo_url: Option<String>,
    /// The Admin Portal's accent colour (links, primary buttons), as `#rrggbb`.
    #[arg(long, env = "STELE_PORTAL_ACCENT_COLOR", value_parser = parse_portal_accent_color)]
    pub portal_accent_color: Option<String>,
    /// Lets the Admin Portal be shown in a frame on these origins: the CSP
    /// `frame-ancestors` sources, space-separated (e.g. `https://app.example.com`). When
    /// unset the portal refuses to be framed. With an `https://` `--public-url`, portal
    /// cookies become `Secure; SameSite=None` so they work inside the frame.
    #[arg(long, env = "STELE_PORTAL_FRAME_ANCESTORS", value_parser = parse_portal_frame_ancestors)]
    pub portal_frame_ancestors: Option<String>,
    /// Allow log stream destinations on loopback, private and link-local addresses, and
    /// plain http:// endpoints (local receivers, tests). Off: such destinations are
    /// refused at creation and every address is checked again at each delivery.
    #[arg(long, env = "STELE_ALLOW_PRIVATE_STREAM_DESTINATIONS", default_value_t = false, action = clap::ArgAction::Set,
          num_args = 0..=1, default_missing_value = "true")]
    pub allow_private_stream_destinations: bool,
    /// File holding the key that encrypts log stream secrets (tokens, API keys, HMAC
    /// secrets) at rest: 32 random bytes in base64 (`openssl rand -base64 32`) or hex.
    /// Replicas must share it. Without a key, streams with secrets cannot be created.
    #[arg(long, env = "STELE_STREAM_SECRETS_KEY_FILE")]
    pub stream_secrets_key_file: Option<PathBuf>,
    /// The stream secrets key itself (base64 or hex of 32 bytes), instead of a file.
    #[arg(
        long,
        env = "STELE_STREAM_SECRETS_KEY",
        hide_env_values = true,
        conflicts_with = "stream_secrets_key_file"
    )]
    pub stream_secrets_key: Option<String>,
    /// Milliseconds between passes that look for log streams with events to deliver.
    #[arg(long, env = "STELE_LOG_STREAM_POLL_INTERVAL_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(10..=600_000))]
    pub log_stream_poll_interval_ms: u64,
    /// Longest a partial log stream batch waits for more events before it is sent, in
    /// milliseconds (full batches of 1,000 events are sent at once).
    #[arg(long, env = "STELE_LOG_STREAM_BATCH_WAIT_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(0..=600_000))]
    pub log_stream_batch_wait_ms: u64,
    /// Seconds a replica's lease on a log stream lasts without renewal: a killed
    /// replica's streams are taken over by another after this long.
    #[arg(long, env = "STELE_LOG_STREAM_LEASE_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(2..=3600))]
    pub log_stream_lease_secs: u64,
    /// Backoff before the first retry of a failed delivery, in milliseconds; doubled per
    /// failure (with jitter) up to --log-stream-retry-max-secs.
    #[arg(long, env = "STELE_LOG_STREAM_RETRY_BASE_MS", default_value_t = 1000,
          value_parser = clap::value_parser!(u64).range(1..=3_600_000))]
    pub log_stream_retry_base_ms: u64,
    /// Longest backoff between delivery attempts, in seconds (also caps `Retry-After`).
    #[arg(long, env = "STELE_LOG_STREAM_RETRY_MAX_SECS", default_value_t = 300,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub log_stream_retry_max_secs: u64,
    /// Requests each API key may make per minute, counted across every replica on the
    /// database (WorkOS's documented limit); beyond it the API answers 429 with
    /// `Retry-After`. 0 disables the limit.
    #[arg(long, env = "STELE_RATE_LIMIT_PER_MINUTE", default_value_t = 6_000)]
    pub rate_limit_per_minute: u32,
    /// Seconds a connection may stay open with no request in progress and no byte of a new
    /// one (keep-alive idle time, and the wait for a first request).
    #[arg(long, env = "STELE_HTTP_IDLE_TIMEOUT_SECS", default_value_t = 60,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http_idle_timeout_secs: u64,
    /// Seconds a request head (request line and headers) may take from its first byte;
    /// a client that has not finished sending it by then is disconnected.
    #[arg(long, env = "STELE_HTTP_HEADER_READ_TIMEOUT_SECS", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3_600))]
    pub http_header_read_timeout_secs: u64,
    /// Seconds a request body may take to arrive once its head is in; slower bodies get
    /// 408 `request_timeout`.
    #[arg(long, env = "STELE_HTTP_BODY_TIMEOUT_SECS", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=86_400))]
    pub http_body_timeout_secs: u64,
    /// Most client connections served at once; further ones wait to be accepted until one
    /// ends. Keep it below the process's open-file limit (`ulimit -n`), which also has to
    /// cover database connections and files.
    #[arg(long, env = "STELE_MAX_CONNECTIONS", default_value_t = 1024,
          value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub max_connections: u32,
    /// Days a quarantined event (one refused by its schema and kept) is kept before it
    /// expires; 0 expires entries at the next purge.
    #[arg(long, env = "STELE_QUARANTINE_RETENTION_DAYS", default_value_t = stele_core::quarantine::DEFAULT_RETENTION_DAYS)]
    pub quarantine_retention_days: u64,
    /// Seconds between passes that delete expired quarantined events.
    #[arg(
        long,
        env = "STELE_QUARANTINE_PURGE_INTERVAL_SECS",
        default_value_t = 3600
    )]
    pub quarantine_purge_interval_secs: u64,
    /// Apply pending migrations when the server starts.
    #[arg(long, env = "STELE_MIGRATE_ON_START", default_value_t = true, action = clap::ArgAction::Set)]
    pub migrate_on_start: bool,
}

/// A product name: one line of at most 100 characters.
fn parse_portal_product_name(text: &str) -> Result<String, String> {
    let name = text.trim();
    if name.is_empty() || name.chars().count() > 100 || name.chars().any(char::is_control) {
        return Err("the product name must be 1 to 100 characters on one line".into());
    }
    Ok(name.to_owned())
}

/// An absolute `http(s)://` URL of at most 2,048 bytes, with nothing that could leave a
/// CSP source or an HTML attribute.
fn parse_portal_logo_url(text: &str) -> Result<String, String> {
    let url = text.trim();
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"))
        .ok_or("the logo URL must start with https:// (or http://)")?;
    let host = rest.split(['/', '?', '#']).next().unwrap_or("");
    let unsafe_character =
        |c: char| c.is_whitespace() || c.is_control() || "\"'<>;,`\\".contains(c);
    if host.is_empty() || url.len() > 2048 || url.chars().any(unsafe_character) {
        return Err("the logo URL must be an absolute URL with a host, at most 2,048 bytes, without spaces, quotes, <, >, ; or ,".into());
    }
    Ok(url.to_owned())
}

/// `#rrggbb`, kept lower-case.
fn parse_portal_accent_color(text: &str) -> Result<String, String> {
    let colour = text.trim();
    let hex = colour.strip_prefix('#').unwrap_or("");
    if hex.len() != 6 || !hex.chars().all(|c| c.is_ascii_hexdigit()) {
        return Err("the accent colour must be #rrggbb (e.g. #0a7d5a)".into());
    }
    Ok(colour.to_ascii_lowercase())
}

/// CSP `frame-ancestors` sources: space-separated, none of them able to end the directive.
fn parse_portal_frame_ancestors(text: &str) -> Result<String, String> {
    let sources: Vec<&str> = text.split_whitespace().collect();
    let unsafe_character = |c: char| c.is_control() || ";,\"<>\\".contains(c);
    if sources.is_empty()
        || sources
            .iter()
            .any(|source| source.chars().any(unsafe_character))
    {
        return Err("frame ancestors are CSP sources separated by spaces (e.g. https://app.example.com), without ; or ,".into());
    }
    Ok(sources.join(" "))
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
        assert!(DatabaseLocation::parse("postgres://db/x?sslmode=require").is_ok());
        assert!(DatabaseLocation::parse("postgres://db/x?sslmode=disable").is_ok());
        // Refused before any connection attempt, with the way out.
        let error =
            DatabaseLocation::parse("postgres://db/x?sslmode=verify-full").expect_err("no CA");
        assert!(error.contains("needs sslrootcert"), "{error}");
        let error = DatabaseLocation::parse(
            "postgres://db/x?sslmode=verify-full&sslrootcert=/nonexistent/ca.pem",
        )
        .expect_err("unreadable CA");
        assert!(
            error.contains("cannot read sslrootcert /nonexistent/ca.pem"),
            "{error}"
        );
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
    fn metrics_listen_is_an_optional_serve_address() {
        let cli = Cli::try_parse_args(["stele", "serve", "--metrics-listen", "127.0.0.1:9464"])
            .expect("a metrics address");
        let Some(Command::Serve(config)) = cli.command else {
            panic!("serve");
        };
        assert_eq!(
            config.metrics_listen,
            Some("127.0.0.1:9464".parse().expect("address"))
        );
        assert!(Cli::try_parse_args(["stele", "serve", "--metrics-listen", "nope"]).is_err());
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

//! The PostgreSQL store, for running several stateless `stele` replicas on one database.
//!
//! Everything shared between replicas lives in the database and is decided there: the next
//! sequence of an organization (its `chain_heads` row, locked by the appender, see
//! [`appender`]), idempotency keys (the primary key of `idempotency_keys`, claimed in the
//! same transaction as the write), the latest schema version of an action (its `actions`
//! row, locked while deciding), and which replica runs a background job
//! ([`Store::claim_job_run`]). Commits are synchronous (`synchronous_commit` as configured
//! on the server, `on` by default), so an acknowledged write is on the primary's disk.

mod appender;
mod merkle;
mod migrations;

use std::collections::HashMap;
use std::time::Duration;

use async_trait::async_trait;
use deadpool_postgres::{GenericClient, Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use stele_core::chain::{ChainHash, ChainVerifier, StoredLink, GENESIS};
use stele_core::idempotency::REPLAY_WINDOW_MS;
use stele_core::merkle::Hash;
use stele_core::pagination::{Page, PageRequest};
use stele_core::schema::SchemaDefinition;
use stele_core::timestamp::UnixMillis;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use tokio_postgres::{NoTls, Row};

use self::appender::Appender;
use crate::stored::{json_text, parse_definition, parse_export_format, StoredExportFilters};
use crate::{Store, StoreError, StoreResult};
use stele_core::model::*;

/// How to reach the database and how much of it one process may use.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostgresOptions {
    /// A `postgres://` (or `postgresql://`) URL, as libpq accepts it.
    pub url: String,
    /// Most connections this process opens (appends use one at a time).
    pub pool_size: usize,
    /// Longest a single statement may run before the server cancels it; zero disables.
    pub statement_timeout: Duration,
    /// Longest to wait for a new connection, or for a free one from the pool.
    pub connect_timeout: Duration,
}

impl PostgresOptions {
    /// Whether `url` is a connection URL PostgreSQL's client accepts, with the reason if not.
    pub fn check_url(url: &str) -> Result<(), String> {
        let config = url
            .parse::<tokio_postgres::Config>()
            .map_err(|error| format!("invalid PostgreSQL URL: {error}"))?;
        // Refused up front rather than at the first connection attempt, and with the way out.
        if config.get_ssl_mode() == tokio_postgres::config::SslMode::Require {
            return Err(
                "sslmode=require cannot be honoured: Stele connects to PostgreSQL \
                        without TLS; reach the database over a private network or through a \
                        TLS-terminating proxy, and drop sslmode or set sslmode=disable"
                    .into(),
            );
        }
        Ok(())
    }

    pub fn new(url: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            pool_size: 16,
            statement_timeout: Duration::from_secs(30),
            connect_timeout: Duration::from_secs(10),
        }
    }
}

pub(crate) fn describe(error: &tokio_postgres::Error) -> String {
    match error.as_db_error() {
        Some(db) => format!(
            "{} ({}){}",
            db.message(),
            db.code().code(),
            db.detail().map(|d| format!(": {d}")).unwrap_or_default()
        ),
        None => match std::error::Error::source(error) {
            Some(source) => format!("{error}: {source}"),
            None => error.to_string(),
        },
    }
}

pub(crate) fn database_error(error: tokio_postgres::Error) -> StoreError {
    StoreError::Database(describe(&error))
}

pub(crate) fn pool_error(error: deadpool_postgres::PoolError) -> StoreError {
    match error {
        deadpool_postgres::PoolError::Backend(error) => database_error(error),
        deadpool_postgres::PoolError::Closed => StoreError::Unavailable,
        other => StoreError::Database(format!("cannot get a database connection: {other}")),
    }
}

fn is_unique_violation(error: &tokio_postgres::Error, constraint: &str) -> bool {
    error.as_db_error().is_some_and(|db| {
        *db.code() == SqlState::UNIQUE_VIOLATION && db.constraint() == Some(constraint)
    })
}

/// A 32-byte hash column, or [`StoreError::Corrupt`] naming `what`.
pub(crate) fn hash_from(bytes: Vec<u8>, what: impl FnOnce() -> String) -> StoreResult<ChainHash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{} has a malformed hash", what())))
}

pub struct PostgresStore {
    pool: Pool,
    appender: Appender,
}

fn connection_config(options: &PostgresOptions) -> StoreResult<tokio_postgres::Config> {
    let mut config: tokio_postgres::Config = options
        .url
        .parse()
        .map_err(|error| StoreError::Database(format!("invalid PostgreSQL URL: {error}")))?;
    config.connect_timeout(options.connect_timeout);
    config.application_name("stele");
    // Appended to whatever options the URL carries; later settings win.
    let existing = config.get_options().unwrap_or_default().to_owned();
    config.options(format!(
        "{existing} -c statement_timeout={} -c idle_in_transaction_session_timeout=60000",
        options.statement_timeout.as_millis()
    ));
    Ok(config)
}

async fn connect(options: &PostgresOptions) -> StoreResult<tokio_postgres::Client> {
    let (client, connection) =
        connection_config(options)?
            .connect(NoTls)
            .await
            .map_err(|error| {
                StoreError::Database(format!(
                    "cannot connect to PostgreSQL: {}",
                    describe(&error)
                ))
            })?;
    tokio::spawn(async move {
        if let Err(error) = connection.await {
            tracing::debug!(error = %describe(&error), "PostgreSQL connection closed");
        }
    });
    Ok(client)
}

impl PostgresStore {
    /// Connects, applying pending migrations first when `migrate` is set; without it, a
    /// database whose schema is not current is refused.
    pub async fn open(options: &PostgresOptions, migrate: bool) -> StoreResult<Self> {
        let mut client = connect(options).await?;
        if migrate {
            let applied = migrations::migrate(&mut client).await?;
            if applied > 0 {
                tracing::info!(applied, "applied PostgreSQL migrations");
            }
        } else if !migrations::is_current(&client).await? {
            return Err(StoreError::Database(
                "the PostgreSQL schema is not up to date; run `stele migrate` or start with --migrate-on-start true".into(),
            ));
        }
        drop(client);
        let manager = Manager::from_config(
            connection_config(options)?,
            NoTls,
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|error| StoreError::Database(format!("cannot build the pool: {error}")))?;
        Ok(Self {
            appender: Appender::start(pool.clone()),
            pool,
        })
    }

    /// Applies pending migrations and returns how many ran (for `stele migrate`).
    pub async fn migrate(options: &PostgresOptions) -> StoreResult<usize> {
        let mut client = connect(options).await?;
        migrations::migrate(&mut client).await
    }

    async fn client(&self) -> StoreResult<deadpool_postgres::Object> {
        self.pool.get().await.map_err(pool_error)
    }

    /// Runs one query on a pooled connection with a cached prepared statement.
    async fn query(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<Vec<Row>> {
        query_in(&self.client().await?, sql, params).await
    }

    async fn query_opt(
        &self,
        sql: &str,
        params: &[&(dyn ToSql + Sync)],
    ) -> StoreResult<Option<Row>> {
        Ok(self.query(sql, params).await?.into_iter().next())
    }

    /// Whether walking the sequence index from where the page starts (the cursor, or the
    /// newest or oldest event) reaches the time range within [`SHORT_SEQUENCE_WALK`] rows.
    /// Where the range's near edge lies in sequence order is read from one entry of the
    /// time index; since events arrive roughly in time order, that is where the walk
    /// starts finding matches.
    async fn sequence_walk_is_short(
        &self,
        query: &EventQuery,
        scan: &stele_core::pagination::Scan<'_, i64>,
    ) -> StoreResult<bool> {
        let (edge_sql, edge_time) = if scan.descending {
            (
                "SELECT sequence FROM events WHERE organization_id = $1 AND occurred_at <= $2
                 ORDER BY occurred_at DESC, sequence DESC LIMIT 1",
                query.occurred_to,
            )
        } else {
            (
                "SELECT sequence FROM events WHERE organization_id = $1 AND occurred_at >= $2
                 ORDER BY occurred_at, sequence LIMIT 1",
                query.occurred_from,
            )
        };
        // A range open on the side the walk starts from is entered at once.
        let Some(edge_time) = edge_time else {
            return Ok(true);
        };
        let Some(edge) = self
            .query_opt(edge_sql, &[&query.organization_id, &edge_time])
            .await?
            .map(|row| row.get::<_, i64>(0))
        else {
            return Ok(false);
        };
        let start = match (scan.bound, scan.descending) {
            (Some((bound, _)), _) => *bound,
            (None, false) => 0,
            (None, true) => self
                .query_opt(
                    "SELECT sequence FROM chain_heads WHERE organization_id = $1",
                    &[&query.organization_id],
                )
                .await?
                .map_or(0, |row| row.get::<_, i64>(0)),
        };
        Ok((start - edge).abs() <= SHORT_SEQUENCE_WALK)
    }

    async fn execute(&self, sql: &str, params: &[&(dyn ToSql + Sync)]) -> StoreResult<u64> {
        execute_in(&self.client().await?, sql, params).await
    }
}

// --- shared helpers ------------------------------------------------------------------------

async fn query_in(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<Vec<Row>> {
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .query(&statement, params)
        .await
        .map_err(database_error)
}

async fn execute_in(
    client: &impl GenericClient,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> StoreResult<u64> {
    let statement = client.prepare_cached(sql).await.map_err(database_error)?;
    client
        .execute(&statement, params)
        .await
        .map_err(database_error)
}

/// Claims `(scope, key)` for `record` unless an unexpired record holds it; returns the
/// holder in that case. A concurrent claim of the same key by another transaction (another
/// replica) waits for that transaction and then sees its record.
pub(crate) async fn claim_idempotency_key(
    client: &impl GenericClient,
    record: &IdempotencyRecord,
) -> Result<Option<IdempotencyRecord>, tokio_postgres::Error> {
    let claim = client
        .prepare_cached(
            "INSERT INTO idempotency_keys (scope, key, fingerprint, status, body, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope, key) DO UPDATE SET
                 fingerprint = excluded.fingerprint, status = excluded.status,
                 body = excluded.body, created_at = excluded.created_at
             WHERE idempotency_keys.created_at <= $7",
        )
        .await?;
    let claimed = client
        .execute(
            &claim,
            &[
                &record.scope,
                &record.key,
                &record.fingerprint.as_slice(),
                &i32::from(record.status),
                &record.body,
                &record.created_at,
                &(record.created_at - REPLAY_WINDOW_MS),
            ],
        )
        .await?;
    if claimed == 1 {
        return Ok(None);
    }
    find_idempotency(client, &record.scope, &record.key, record.created_at).await
}

async fn find_idempotency(
    client: &impl GenericClient,
    scope: &str,
    key: &str,
    now: UnixMillis,
) -> Result<Option<IdempotencyRecord>, tokio_postgres::Error> {
    let find = client
        .prepare_cached(
            "SELECT fingerprint, status, body, created_at FROM idempotency_keys
             WHERE scope = $1 AND key = $2 AND created_at > $3",
        )
        .await?;
    let row = client
        .query_opt(&find, &[&scope, &key, &(now - REPLAY_WINDOW_MS)])
        .await?;
    Ok(row.map(|row| {
        let fingerprint: Vec<u8> = row.get(0);
        IdempotencyRecord {
            scope: scope.to_owned(),
            key: key.to_owned(),
            fingerprint: fingerprint.try_into().unwrap_or([0; 32]),
            status: u16::try_from(row.get::<_, i32>(1)).unwrap_or(500),
            body: row.get(2),
            created_at: row.get(3),
        }
    }))
}

const ORGANIZATION_COLUMNS: &str =
    "id, name, external_id, metadata, domains, created_at, updated_at, retention_period_in_days";

fn organization_from_row(row: &Row) -> StoreResult<Organization> {
    let id: String = row.get(0);
    let metadata: String = row.get(3);
    let domains: String = row.get(4);
    Ok(Organization {
        metadata: serde_json::from_str(&metadata)
            .map_err(|error| StoreError::Corrupt(format!("organization {id} metadata: {error}")))?,
        domains: serde_json::from_str(&domains)
            .map_err(|error| StoreError::Corrupt(format!("organization {id} domains: {error}")))?,
        name: row.get(1),
        external_id: row.get(2),
        created_at: row.get(5),
        updated_at: row.get(6),
        retention_period_in_days: row.get(7),
        id: id.into(),
    })
}

const STORED_EVENT_COLUMNS: &str =
    "e.id, e.organization_id, e.sequence, e.version, e.received_at, e.canonical";

fn stored_event_from_row(row: &Row) -> StoredEvent {
    StoredEvent {
        id: row.get(0),
        organization_id: row.get(1),
        sequence: row.get(2),
        version: row.get(3),
        received_at: row.get(4),
        canonical: row.get(5),
    }
}

fn schema_version_from_row(action: &str, row: &Row, offset: usize) -> StoreResult<SchemaVersion> {
    let version: i64 = row.get(offset);
    let definition: String = row.get(offset + 1);
    Ok(SchemaVersion {
        action: action.to_owned(),
        version,
        definition: parse_definition(action, version, &definition)?,
        created_by: row.get(offset + 2),
        created_at: row.get(offset + 3),
    })
}

async fn load_schema_version(
    client: &impl GenericClient,
    action: &str,
    version: Option<i64>,
) -> StoreResult<Option<SchemaVersion>> {
    let rows = query_in(
        client,
        "SELECT v.version, v.definition, v.created_by, v.created_at
         FROM schema_versions v JOIN actions a ON a.id = v.action_id
         WHERE a.name = $1 AND ($2::int8 IS NULL OR v.version = $2)
         ORDER BY v.version DESC LIMIT 1",
        &[&action, &version],
    )
    .await?;
    rows.first()
        .map(|row| schema_version_from_row(action, row, 0))
        .transpose()
}

/// The first retained sequence of an organization after retention purged its oldest events.
async fn retained_from(client: &impl GenericClient, organization_id: &str) -> StoreResult<i64> {
    let rows = query_in(
        client,
        "SELECT first_sequence FROM chain_anchors WHERE organization_id = $1",
        &[&organization_id],
    )
    .await?;
    Ok(rows.first().map_or(1, |row| row.get(0)))
}

/// A text or integer bound to one placeholder of a generated query.
enum Param {
    Text(String),
    TextList(Vec<String>),
    Integer(i64),
}

impl Param {
    fn as_sql(&self) -> &(dyn ToSql + Sync) {
        match self {
            Param::Text(value) => value,
            Param::TextList(values) => values,
            Param::Integer(value) => value,
        }
    }
}

/// The search SQL for `query` and its parameters, in order. Only the filters in use
/// appear; lists are bound as arrays (`= ANY($n)`), which the planner matches against the
/// `(organization_id, column, sequence)` indexes like an `IN` list.
fn search_sql(
    query: &EventQuery,
    scan: &stele_core::pagination::Scan<'_, i64>,
    sort_time_range: bool,
) -> (String, Vec<Param>) {
    let mut values = vec![Param::Text(query.organization_id.to_string())];
    let mut conditions = vec!["e.organization_id = $1".to_owned()];
    let one_of = |column: &str, items: &[String], values: &mut Vec<Param>| {
        values.push(Param::TextList(items.to_vec()));
        format!("{column} = ANY(${})", values.len())
    };
    for (column, items) in [
        ("e.action", &query.actions),
        ("e.actor_id", &query.actor_ids),
        ("e.actor_name", &query.actor_names),
    ] {
        if !items.is_empty() {
            let condition = one_of(column, items, &mut values);
            conditions.push(condition);
        }
    }
    if !query.target_ids.is_empty() {
        let condition = one_of("t.target_id", &query.target_ids, &mut values);
        conditions.push(format!(
            "e.sequence IN (SELECT t.sequence FROM event_targets t WHERE t.organization_id = $1 AND {condition})"
        ));
    }
    if !query.target_types.is_empty() {
        let condition = one_of("t.target_type", &query.target_types, &mut values);
        conditions.push(format!(
            "EXISTS (SELECT 1 FROM event_targets t
                     WHERE t.organization_id = e.organization_id AND {condition} AND t.sequence = e.sequence)"
        ));
    }
    for (condition, bound) in [
        ("e.occurred_at >=", query.occurred_from),
        ("e.occurred_at <=", query.occurred_to),
        ("e.sequence <=", query.up_to_sequence),
        (
            "e.sequence >",
            scan.bound
                .filter(|(_, greater)| *greater)
                .map(|(key, _)| *key),
        ),
        (
            "e.sequence <",
            scan.bound
                .filter(|(_, greater)| !*greater)
                .map(|(key, _)| *key),
        ),
    ] {
        if let Some(bound) = bound {
            values.push(Param::Integer(bound));
            conditions.push(format!("{condition} ${}", values.len()));
        }
    }
    values.push(Param::Integer(i64::from(scan.fetch)));
    let direction = if scan.descending { "DESC" } else { "ASC" };
    let sql = if sort_time_range {
        // `+ 0` is an order no index provides: the planner reads the range's sequences
        // through the time index (from the index alone when only time and sequence
        // bounds apply), keeps the page's worth, and only those rows are then fetched.
        format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events e
             WHERE e.organization_id = $1 AND e.sequence IN (
                 SELECT e.sequence FROM events e WHERE {} ORDER BY e.sequence + 0 {direction} LIMIT ${})
             ORDER BY e.sequence {direction}",
            conditions.join(" AND "),
            values.len()
        )
    } else {
        format!(
            "SELECT {STORED_EVENT_COLUMNS} FROM events e WHERE {} ORDER BY e.sequence {direction} LIMIT ${}",
            conditions.join(" AND "),
            values.len()
        )
    };
    (sql, values)
}

/// How far the sequence index may be walked before a time-filtered page is chosen from
/// the time index instead (walking 10,000 rows takes a few milliseconds).
const SHORT_SEQUENCE_WALK: i64 = 10_000;

/// `WHERE`-clause fragment and `ORDER BY` direction for a keyset scan over `column`,
/// whose bound (if any) is parameter `$n`.
fn keyset<K>(
    column: &str,
    scan: &stele_core::pagination::Scan<'_, K>,
    n: usize,
) -> (String, &'static str) {
    let condition = match scan.bound {
        None => "TRUE".to_owned(),
        Some((_, true)) => format!("{column} > ${n}"),
        Some((_, false)) => format!("{column} < ${n}"),
    };
    (condition, if scan.descending { "DESC" } else { "ASC" })
}

/// Maps a unique violation on `organizations.external_id` to the organization holding it.
async fn external_id_taken(client: &impl GenericClient, external_id: Option<&str>) -> StoreError {
    let existing = query_in(
        client,
        "SELECT id FROM organizations WHERE external_id = $1",
        &[&external_id],
    )
    .await
    .ok()
    .and_then(|rows| rows.first().map(|row| row.get(0)))
    .unwrap_or_default();
    StoreError::ExternalIdTaken { existing }
}

const VERIFY_FETCH: i32 = 1000;

/// The advisory lock key held while initialising an empty database ("stele in").
const INITIALIZE_LOCK: i64 = 0x7374_656c_6520_696e;

#[async_trait]
impl Store for PostgresStore {
    async fn is_uninitialized(&self) -> StoreResult<bool> {
        let rows = self
            .query(
                "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
                &[],
            )
            .await?;
        Ok(rows.first().is_some_and(|row| row.get(0)))
    }

    async fn initialize(&self, key: NewApiKey, user: NewUser) -> StoreResult<bool> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // Replicas starting together on an empty database queue here; the first stores
        // its key and user, the others then see a database that is no longer empty.
        execute_in(
            &transaction,
            "SELECT pg_advisory_xact_lock($1)",
            &[&INITIALIZE_LOCK],
        )
        .await?;
        let empty: bool = query_in(
            &transaction,
            "SELECT NOT EXISTS (SELECT 1 FROM api_keys) AND NOT EXISTS (SELECT 1 FROM users)",
            &[],
        )
        .await?
        .first()
        .is_some_and(|row| row.get(0));
        if !empty {
            return Ok(false);
        }
        execute_in(
            &transaction,
            "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[
                &key.id,
                &key.name,
                &key.secret_hash.as_slice(),
                &key.created_at,
            ],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[
                &user.id,
                &user.username,
                &user.password_hash,
                &user.created_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(true)
    }

    async fn create_api_key(&self, key: NewApiKey) -> StoreResult<ApiKey> {
        self.execute(
            "INSERT INTO api_keys (id, name, secret_hash, created_at) VALUES ($1, $2, $3, $4)",
            &[
                &key.id,
                &key.name,
                &key.secret_hash.as_slice(),
                &key.created_at,
            ],
        )
        .await?;
        Ok(ApiKey {
            id: key.id,
            name: key.name,
            created_at: key.created_at,
            revoked_at: None,
        })
    }

    async fn find_api_key(&self, secret_hash: [u8; 32]) -> StoreResult<Option<ApiKey>> {
        let row = self
            .query_opt(
                "SELECT id, name, created_at, revoked_at FROM api_keys WHERE secret_hash = $1",
                &[&secret_hash.as_slice()],
            )
            .await?;
        Ok(row.map(|row| ApiKey {
            id: row.get(0),
            name: row.get(1),
            created_at: row.get(2),
            revoked_at: row.get(3),
        }))
    }

    async fn list_api_keys(&self) -> StoreResult<Vec<ApiKey>> {
        let rows = self
            .query(
                "SELECT id, name, created_at, revoked_at FROM api_keys ORDER BY id COLLATE \"C\"",
                &[],
            )
            .await?;
        Ok(rows
            .iter()
            .map(|row| ApiKey {
                id: row.get(0),
                name: row.get(1),
                created_at: row.get(2),
                revoked_at: row.get(3),
            })
            .collect())
    }

    async fn revoke_api_key(&self, id: &str, at: UnixMillis) -> StoreResult<bool> {
        let changed = self
            .execute(
                "UPDATE api_keys SET revoked_at = $2 WHERE id = $1 AND revoked_at IS NULL",
                &[&id, &at],
            )
            .await?;
        Ok(changed == 1)
    }

    async fn create_user(&self, user: NewUser) -> StoreResult<()> {
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "INSERT INTO users (id, username, password_hash, created_at) VALUES ($1, $2, $3, $4)",
            )
            .await
            .map_err(database_error)?;
        match client
            .execute(
                &statement,
                &[
                    &user.id,
                    &user.username,
                    &user.password_hash,
                    &user.created_at,
                ],
            )
            .await
        {
            Ok(_) => Ok(()),
            Err(error) if is_unique_violation(&error, "users_username_key") => {
                Err(StoreError::UsernameTaken)
            }
            Err(error) => Err(database_error(error)),
        }
    }

    async fn find_user_by_username(&self, username: &str) -> StoreResult<Option<User>> {
        let row = self
            .query_opt(
                "SELECT id, username, password_hash, created_at FROM users WHERE username = $1",
                &[&username],
            )
            .await?;
        Ok(row.map(|row| User {
            id: row.get(0),
            username: row.get(1),
            password_hash: row.get(2),
            created_at: row.get(3),
        }))
    }

    async fn create_session(&self, session: NewSession) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        execute_in(
            &transaction,
            "DELETE FROM sessions WHERE expires_at <= $1",
            &[&session.created_at],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO sessions (token_hash, user_id, created_at, expires_at) VALUES ($1, $2, $3, $4)",
            &[
                &session.token_hash.as_slice(),
                &session.user_id,
                &session.created_at,
                &session.expires_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)
    }

    async fn find_session(
        &self,
        token_hash: [u8; 32],
        now: UnixMillis,
    ) -> StoreResult<Option<Session>> {
        let row = self
            .query_opt(
                "SELECT s.user_id, u.username, s.created_at, s.expires_at
                 FROM sessions s JOIN users u ON u.id = s.user_id
                 WHERE s.token_hash = $1 AND s.expires_at > $2",
                &[&token_hash.as_slice(), &now],
            )
            .await?;
        Ok(row.map(|row| Session {
            user_id: row.get(0),
            username: row.get(1),
            created_at: row.get(2),
            expires_at: row.get(3),
        }))
    }

    async fn delete_session(&self, token_hash: [u8; 32]) -> StoreResult<()> {
        self.execute(
            "DELETE FROM sessions WHERE token_hash = $1",
            &[&token_hash.as_slice()],
        )
        .await
        .map(|_| ())
    }

    async fn create_organization(
        &self,
        organization: Organization,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Organization>> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        if let Some(record) = &idempotency {
            if let Some(existing) = claim_idempotency_key(&transaction, record)
                .await
                .map_err(database_error)?
            {
                return Ok(Idempotent::AlreadyDone(existing));
            }
        }
        let statement = transaction
            .prepare_cached(
                "INSERT INTO organizations (id, name, external_id, metadata, domains, created_at, updated_at)
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
            )
            .await
            .map_err(database_error)?;
        let inserted = transaction
            .execute(
                &statement,
                &[
                    &organization.id,
                    &organization.name,
                    &organization.external_id,
                    &metadata,
                    &domains,
                    &organization.created_at,
                    &organization.updated_at,
                ],
            )
            .await;
        match inserted {
            Ok(_) => {}
            Err(error) if is_unique_violation(&error, "organizations_external_id_key") => {
                drop(transaction);
                return Err(external_id_taken(&client, organization.external_id.as_deref()).await);
            }
            Err(error) => return Err(database_error(error)),
        }
        execute_in(
            &transaction,
            "INSERT INTO chain_heads (organization_id, sequence, hash) VALUES ($1, 0, $2)",
            &[&organization.id, &GENESIS.as_slice()],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(Idempotent::Done(organization))
    }

    async fn get_organization(&self, id: &str) -> StoreResult<Option<Organization>> {
        self.query_opt(
            &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE id = $1"),
            &[&id],
        )
        .await?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn get_organization_by_external_id(
        &self,
        external_id: &str,
    ) -> StoreResult<Option<Organization>> {
        self.query_opt(
            &format!("SELECT {ORGANIZATION_COLUMNS} FROM organizations WHERE external_id = $1"),
            &[&external_id],
        )
        .await?
        .as_ref()
        .map(organization_from_row)
        .transpose()
    }

    async fn list_organizations(
        &self,
        filter: OrganizationFilter,
        page: PageRequest<String>,
    ) -> StoreResult<Page<Organization>> {
        let scan = page.scan();
        let (condition, direction) = keyset("id", &scan, 4);
        let sql = format!(
            "SELECT {ORGANIZATION_COLUMNS} FROM organizations
             WHERE ($1::text IS NULL OR name ILIKE $1 ESCAPE '\\')
               AND (cardinality($2::text[]) = 0 OR EXISTS (
                    SELECT 1 FROM jsonb_array_elements(domains::jsonb) AS owned
                    WHERE owned ->> 'domain' = ANY($2)))
               AND {condition}
             ORDER BY id {direction} LIMIT $3"
        );
        let pattern = filter.name_contains.map(|text| {
            let escaped = text
                .replace('\\', "\\\\")
                .replace('%', "\\%")
                .replace('_', "\\_");
            format!("%{escaped}%")
        });
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map(|(key, _)| key.clone()).unwrap_or_default();
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&pattern, &filter.domains, &fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let rows = self.query(&sql, &params).await?;
        let organizations = rows
            .iter()
            .map(organization_from_row)
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page.assemble(organizations, |organization| organization.id.to_string()))
    }

    async fn update_organization(&self, organization: Organization) -> StoreResult<Organization> {
        let metadata = json_text(&organization.metadata)?;
        let domains = json_text(&organization.domains)?;
        let client = self.client().await?;
        let statement = client
            .prepare_cached(
                "UPDATE organizations SET name = $2, external_id = $3, metadata = $4, domains = $5, updated_at = $6
                 WHERE id = $1",
            )
            .await
            .map_err(database_error)?;
        let updated = client
            .execute(
                &statement,
                &[
                    &organization.id,
                    &organization.name,
                    &organization.external_id,
                    &metadata,
                    &domains,
                    &organization.updated_at,
                ],
            )
            .await;
        match updated {
            Ok(0) => Err(StoreError::OrganizationNotFound),
            Ok(_) => Ok(organization),
            Err(error) if is_unique_violation(&error, "organizations_external_id_key") => {
                Err(external_id_taken(&client, organization.external_id.as_deref()).await)
            }
            Err(error) => Err(database_error(error)),
        }
    }

    async fn delete_organization(&self, id: &str) -> StoreResult<()> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // Locking the head keeps an append from slipping in between the count and the delete.
        let head = query_in(
            &transaction,
            "SELECT sequence FROM chain_heads WHERE organization_id = $1 FOR UPDATE",
            &[&id],
        )
        .await?;
        if head.is_empty() {
            return Err(StoreError::OrganizationNotFound);
        }
        let count: i64 = query_in(
            &transaction,
            "SELECT COUNT(*) FROM events WHERE organization_id = $1",
            &[&id],
        )
        .await?
        .first()
        .map_or(0, |row| row.get(0));
        if count > 0 {
            return Err(StoreError::OrganizationHasEvents { count });
        }
        for table in ["chain_anchors", "exports", "chain_heads"] {
            execute_in(
                &transaction,
                &format!("DELETE FROM {table} WHERE organization_id = $1"),
                &[&id],
            )
            .await?;
        }
        execute_in(
            &transaction,
            "DELETE FROM organizations WHERE id = $1",
            &[&id],
        )
        .await?;
        transaction.commit().await.map_err(database_error)
    }

    async fn create_schema_version(
        &self,
        action: &str,
        definition: SchemaDefinition,
        created_by: &str,
        at: UnixMillis,
        idempotency: Option<IdempotentWrite<(SchemaVersion, bool)>>,
    ) -> StoreResult<Idempotent<(SchemaVersion, bool)>> {
        let canonical = String::from_utf8(definition.canonical_bytes())
            .map_err(|error| StoreError::Database(error.to_string()))?;
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        if let Some(write) = &idempotency {
            if let Some(existing) = claim_idempotency_key(&transaction, &write.claim)
                .await
                .map_err(database_error)?
            {
                return Ok(Idempotent::AlreadyDone(existing));
            }
        }
        // The action's row, locked, makes "same as the latest version?" and the insert one
        // decision across replicas: a concurrent identical submission waits here, then
        // sees the version this one created.
        execute_in(
            &transaction,
            "INSERT INTO actions (name, created_at, updated_at) VALUES ($1, $2, $2)
             ON CONFLICT (name) DO NOTHING",
            &[&action, &at],
        )
        .await?;
        let action_id: i64 = query_in(
            &transaction,
            "SELECT id FROM actions WHERE name = $1 FOR UPDATE",
            &[&action],
        )
        .await?
        .first()
        .map(|row| row.get(0))
        .ok_or_else(|| StoreError::Database(format!("action {action} vanished")))?;
        let latest = load_schema_version(&transaction, action, None).await?;
        let outcome = match latest {
            Some(latest) if latest.definition.canonical_bytes() == canonical.as_bytes() => {
                (latest, false)
            }
            latest => {
                let version = latest.map_or(1, |latest| latest.version + 1);
                execute_in(
                    &transaction,
                    "INSERT INTO schema_versions (action_id, version, definition, created_by, created_at)
                     VALUES ($1, $2, $3, $4, $5)",
                    &[&action_id, &version, &canonical, &created_by, &at],
                )
                .await?;
                execute_in(
                    &transaction,
                    "UPDATE actions SET updated_at = $2 WHERE id = $1",
                    &[&action_id, &at],
                )
                .await?;
                (
                    SchemaVersion {
                        action: action.to_owned(),
                        version,
                        definition,
                        created_by: created_by.to_owned(),
                        created_at: at,
                    },
                    true,
                )
            }
        };
        if let Some(write) = idempotency {
            let (status, body) = (write.respond)(&outcome);
            execute_in(
                &transaction,
                "UPDATE idempotency_keys SET status = $3, body = $4 WHERE scope = $1 AND key = $2",
                &[
                    &write.claim.scope,
                    &write.claim.key,
                    &i32::from(status),
                    &body,
                ],
            )
            .await?;
        }
        transaction.commit().await.map_err(database_error)?;
        Ok(Idempotent::Done(outcome))
    }

    async fn get_schema_version(
        &self,
        action: &str,
        version: i64,
    ) -> StoreResult<Option<SchemaVersion>> {
        let client = self.client().await?;
        load_schema_version(&client, action, Some(version)).await
    }

    async fn schema_version_numbers(&self, action: &str) -> StoreResult<Vec<i64>> {
        let rows = self
            .query(
                "SELECT v.version FROM schema_versions v JOIN actions a ON a.id = v.action_id
                 WHERE a.name = $1 ORDER BY v.version",
                &[&action],
            )
            .await?;
        Ok(rows.iter().map(|row| row.get(0)).collect())
    }

    async fn list_schema_versions(
        &self,
        action: &str,
        page: PageRequest<i64>,
    ) -> StoreResult<Option<Page<SchemaVersion>>> {
        let Some(action_row) = self
            .query_opt("SELECT id FROM actions WHERE name = $1", &[&action])
            .await?
        else {
            return Ok(None);
        };
        let action_id: i64 = action_row.get(0);
        let scan = page.scan();
        let (condition, direction) = keyset("version", &scan, 3);
        let sql = format!(
            "SELECT version, definition, created_by, created_at FROM schema_versions
             WHERE action_id = $1 AND {condition} ORDER BY version {direction} LIMIT $2"
        );
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map_or(0, |(key, _)| *key);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&action_id, &fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let versions = self
            .query(&sql, &params)
            .await?
            .iter()
            .map(|row| schema_version_from_row(action, row, 0))
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(Some(
            page.assemble(versions, |version| version.version.to_string()),
        ))
    }

    async fn list_actions(&self, page: PageRequest<i64>) -> StoreResult<Page<ActionSummary>> {
        let scan = page.scan();
        let (condition, direction) = keyset("a.id", &scan, 2);
        let sql = format!(
            "SELECT a.id, a.name, a.created_at, a.updated_at, v.version, v.definition, v.created_by, v.created_at
             FROM actions a JOIN schema_versions v ON v.action_id = a.id
              AND v.version = (SELECT MAX(version) FROM schema_versions WHERE action_id = a.id)
             WHERE {condition} ORDER BY a.id {direction} LIMIT $1"
        );
        let fetch = i64::from(scan.fetch);
        let bound = scan.bound.map_or(0, |(key, _)| *key);
        let mut params: Vec<&(dyn ToSql + Sync)> = vec![&fetch];
        if scan.bound.is_some() {
            params.push(&bound);
        }
        let actions = self
            .query(&sql, &params)
            .await?
            .iter()
            .map(|row| {
                let name: String = row.get(1);
                Ok(ActionSummary {
                    latest: schema_version_from_row(&name, row, 4)?,
                    position: row.get(0),
                    created_at: row.get(2),
                    updated_at: row.get(3),
                    name,
                })
            })
            .collect::<StoreResult<Vec<_>>>()?;
        Ok(page.assemble(actions, |action| action.position.to_string()))
    }

    async fn append_event(
        &self,
        event: NewEvent,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<AppendedEvent>> {
        self.appender.append(event, idempotency).await
    }

    async fn search_events(
        &self,
        query: EventQuery,
        page: PageRequest<i64>,
    ) -> StoreResult<Page<StoredEvent>> {
        let scan = page.scan();
        // Events arrive roughly in time order, so `occurred_at` and `sequence` go together,
        // which the planner cannot know: for "newest 10 in this time range" it walks the
        // sequence index from the newest event expecting matches soon, and reads most of
        // the organization when the range lies far back. For a page filtered by time and
        // not by actor or target id (which have selective indexes of their own), one entry
        // of the time index tells how far that walk would go; if far, the page's sequences
        // are chosen from the range's entries in the time index instead. Exports keep the
        // sequence walk, which reads each row once across all their pages.
        let time_only = (query.occurred_from.is_some() || query.occurred_to.is_some())
            && query.actor_ids.is_empty()
            && query.target_ids.is_empty()
            && query.up_to_sequence.is_none();
        let sort_time_range = time_only && !self.sequence_walk_is_short(&query, &scan).await?;
        let (sql, values) = search_sql(&query, &scan, sort_time_range);
        let params: Vec<&(dyn ToSql + Sync)> = values.iter().map(Param::as_sql).collect();
        let rows = self.query(&sql, &params).await?;
        let events = rows.iter().map(stored_event_from_row).collect();
        Ok(page.assemble(events, |event| event.sequence.to_string()))
    }

    async fn get_event(&self, organization_id: &str, id: &str) -> StoreResult<Option<HashedEvent>> {
        // Matching the organization too keeps one organization's link from reaching
        // another's event.
        let row = self
            .query_opt(
                &format!(
                    "SELECT {STORED_EVENT_COLUMNS}, e.hash FROM events e
                     WHERE e.organization_id = $1 AND e.id = $2"
                ),
                &[&organization_id, &id],
            )
            .await?;
        row.map(|row| {
            let hash = hash_from(row.get(6), || format!("event {id}"))?;
            Ok(HashedEvent {
                event: stored_event_from_row(&row),
                hash,
            })
        })
        .transpose()
    }

    async fn recent_events_of_action(
        &self,
        action: &str,
        limit: u32,
    ) -> StoreResult<Vec<StoredEvent>> {
        let rows = self
            .query(
                &format!(
                    "SELECT {STORED_EVENT_COLUMNS} FROM events e
                     WHERE e.action = $1 ORDER BY e.received_at DESC, e.id DESC LIMIT $2"
                ),
                &[&action, &i64::from(limit)],
            )
            .await?;
        Ok(rows.iter().map(stored_event_from_row).collect())
    }

    async fn verify_log(
        &self,
        organization_id: Option<String>,
        mut progress: Box<dyn FnMut(u64) + Send>,
    ) -> StoreResult<VerifyReport> {
        let mut client = self.client().await?;
        // One snapshot for the anchors and the whole log, so a purge committing meanwhile
        // cannot pair an old anchor with a newer log; the rows stream through a portal
        // (a server-side cursor) VERIFY_FETCH at a time, in bounded memory.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(database_error)?;
        let mut anchors: HashMap<String, (i64, ChainHash)> = HashMap::new();
        for row in query_in(
            &transaction,
            "SELECT organization_id, first_sequence, previous_hash FROM chain_anchors",
            &[],
        )
        .await?
        {
            let organization: String = row.get(0);
            let hash = hash_from(row.get(2), || format!("chain anchor of {organization}"))?;
            anchors.insert(organization, (row.get(1), hash));
        }
        let portal = transaction
            .bind(
                "SELECT organization_id, sequence, canonical, hash FROM events
                 WHERE ($1::text IS NULL OR organization_id = $1)
                 ORDER BY organization_id, sequence",
                &[&organization_id],
            )
            .await
            .map_err(database_error)?;
        let mut report = VerifyReport {
            organizations: 0,
            events: 0,
            first_break: None,
        };
        let mut current: Option<(String, ChainVerifier)> = None;
        loop {
            let rows = transaction
                .query_portal(&portal, VERIFY_FETCH)
                .await
                .map_err(database_error)?;
            if rows.is_empty() {
                break;
            }
            for row in &rows {
                let organization: &str = row.get(0);
                let sequence: i64 = row.get(1);
                let canonical: &[u8] = row.get(2);
                let hash: &[u8] = row.get(3);
                if current.as_ref().is_none_or(|(id, _)| id != organization) {
                    report.organizations += 1;
                    let verifier = match anchors.get(organization) {
                        Some((first_sequence, previous_hash)) => {
                            ChainVerifier::new(*first_sequence, *previous_hash)
                        }
                        None => ChainVerifier::from_genesis(),
                    };
                    current = Some((organization.to_owned(), verifier));
                }
                if let Some((_, verifier)) = current.as_mut() {
                    if let Err(chain_break) = verifier.push(&StoredLink {
                        sequence,
                        canonical_bytes: canonical,
                        hash,
                    }) {
                        report.first_break = Some((organization.into(), chain_break));
                        return Ok(report);
                    }
                }
                report.events += 1;
                if report.events.is_multiple_of(10_000) {
                    progress(report.events);
                }
            }
        }
        progress(report.events);
        Ok(report)
    }

    async fn create_export(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> StoreResult<Idempotent<Export>> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        if let Some(record) = &idempotency {
            if let Some(existing) = claim_idempotency_key(&transaction, record)
                .await
                .map_err(database_error)?
            {
                return Ok(Idempotent::AlreadyDone(existing));
            }
        }
        let organization_id = export.query.organization_id.clone();
        // The head holds the newest committed sequence: the snapshot is exactly the events
        // acknowledged before the export was created (an append in flight is not yet).
        let Some(head) = query_in(
            &transaction,
            "SELECT sequence FROM chain_heads WHERE organization_id = $1",
            &[&organization_id],
        )
        .await?
        .into_iter()
        .next() else {
            return Err(StoreError::OrganizationNotFound);
        };
        let head: i64 = head.get(0);
        // Where the retained chain starts now: a later purge past it makes the export
        // incomplete (see `get_export`).
        let retained_from = retained_from(&transaction, &organization_id).await?;
        let filters = json_text(&StoredExportFilters {
            query: export.query.clone(),
            retained_from,
        })?;
        execute_in(
            &transaction,
            "INSERT INTO exports (id, organization_id, filters, format, up_to_sequence, created_at)
             VALUES ($1, $2, $3, $4, $5, $6)",
            &[
                &export.id,
                &organization_id,
                &filters,
                &export.format.name(),
                &head,
                &export.created_at,
            ],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        let mut query = export.query;
        query.up_to_sequence = Some(head);
        Ok(Idempotent::Done(Export { query, ..export }))
    }

    async fn get_export(&self, id: &str) -> StoreResult<Option<Export>> {
        let Some(row) = self
            .query_opt(
                "SELECT x.organization_id, x.filters, x.format, x.up_to_sequence, x.created_at,
                        COALESCE(a.first_sequence, 1)
                 FROM exports x LEFT JOIN chain_anchors a ON a.organization_id = x.organization_id
                 WHERE x.id = $1",
                &[&id],
            )
            .await?
        else {
            return Ok(None);
        };
        let filters: String = row.get(1);
        let stored: StoredExportFilters = serde_json::from_str(&filters)
            .map_err(|error| StoreError::Corrupt(format!("export {id} filters: {error}")))?;
        let retained_now: i64 = row.get(5);
        let mut query = stored.query;
        query.organization_id = row.get(0);
        query.up_to_sequence = Some(row.get(3));
        Ok(Some(Export {
            id: id.into(),
            query,
            format: parse_export_format(id, row.get(2))?,
            created_at: row.get(4),
            complete: retained_now <= stored.retained_from,
        }))
    }

    async fn set_retention(&self, organization_id: &str, days: Option<i64>) -> StoreResult<()> {
        let changed = self
            .execute(
                "UPDATE organizations SET retention_period_in_days = $2 WHERE id = $1",
                &[&organization_id, &days],
            )
            .await?;
        if changed == 0 {
            return Err(StoreError::OrganizationNotFound);
        }
        Ok(())
    }

    async fn organizations_with_retention(&self) -> StoreResult<Vec<(String, i64)>> {
        let rows = self
            .query(
                "SELECT id, retention_period_in_days FROM organizations
                 WHERE retention_period_in_days IS NOT NULL ORDER BY id",
                &[],
            )
            .await?;
        Ok(rows.iter().map(|row| (row.get(0), row.get(1))).collect())
    }

    async fn purge_events(
        &self,
        organization_id: &str,
        cutoff: UnixMillis,
        batch: u32,
    ) -> StoreResult<PurgeOutcome> {
        let mut client = self.client().await?;
        let transaction = client.transaction().await.map_err(database_error)?;
        // The oldest events in sequence order, up to the first one received at or after
        // the cutoff: a purge only ever removes a prefix of the chain.
        let prefix = query_in(
            &transaction,
            "SELECT sequence, received_at, hash, canonical FROM events
             WHERE organization_id = $1 ORDER BY sequence LIMIT $2",
            &[&organization_id, &i64::from(batch)],
        )
        .await?;
        let expired = prefix
            .iter()
            .take_while(|row| row.get::<_, i64>(1) < cutoff)
            .count();
        let Some(last) = expired.checked_sub(1).map(|index| &prefix[index]) else {
            return Ok(PurgeOutcome::default());
        };
        let last_sequence: i64 = last.get(0);
        let last_hash: Vec<u8> = last.get(2);
        let purged_leaves: Vec<(i64, &[u8])> = prefix[..expired]
            .iter()
            .map(|row| (row.get(0), row.get(3)))
            .collect();
        merkle::keep_purged_leaf_hashes(&transaction, organization_id, &purged_leaves).await?;
        // Target rows are keyed by target id; the ids come from the stored events.
        let (mut target_ids, mut target_sequences) = (Vec::new(), Vec::new());
        for row in &prefix[..expired] {
            let sequence: i64 = row.get(0);
            let stored: serde_json::Value =
                serde_json::from_slice(row.get(3)).map_err(|error| {
                    StoreError::Corrupt(format!("event {sequence} of {organization_id}: {error}"))
                })?;
            for target in stored["targets"].as_array().into_iter().flatten() {
                target_ids.push(target["id"].as_str().unwrap_or_default().to_owned());
                target_sequences.push(sequence);
            }
        }
        execute_in(
            &transaction,
            "DELETE FROM event_targets t
             USING UNNEST($2::text[], $3::int8[]) AS u(target_id, sequence)
             WHERE t.organization_id = $1 AND t.target_id = u.target_id AND t.sequence = u.sequence",
            &[&organization_id, &target_ids, &target_sequences],
        )
        .await?;
        let purged = execute_in(
            &transaction,
            "DELETE FROM events WHERE organization_id = $1 AND sequence <= $2",
            &[&organization_id, &last_sequence],
        )
        .await?;
        execute_in(
            &transaction,
            "INSERT INTO chain_anchors (organization_id, first_sequence, previous_hash) VALUES ($1, $2, $3)
             ON CONFLICT (organization_id) DO UPDATE SET
                 first_sequence = excluded.first_sequence, previous_hash = excluded.previous_hash",
            &[&organization_id, &(last_sequence + 1), &last_hash],
        )
        .await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(PurgeOutcome {
            purged,
            more: expired == batch as usize,
        })
    }

    async fn shared_secret(&self, name: &str, generate: Vec<u8>) -> StoreResult<Vec<u8>> {
        // Two replicas asking at once both insert-or-ignore, then read the one that won.
        self.execute(
            "INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING",
            &[&name, &generate],
        )
        .await?;
        self.query_opt("SELECT value FROM settings WHERE name = $1", &[&name])
            .await?
            .map(|row| row.get(0))
            .ok_or_else(|| StoreError::Database(format!("setting {name} vanished")))
    }

    async fn tree_size(&self, organization_id: &str) -> StoreResult<u64> {
        merkle::tree_size(&self.client().await?, organization_id).await
    }

    async fn leaf_hashes(
        &self,
        organization_id: &str,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<Hash>> {
        let mut client = self.client().await?;
        // One snapshot: a purge committing between the two reads inside must not hide a
        // leaf from both.
        let transaction = client
            .build_transaction()
            .isolation_level(tokio_postgres::IsolationLevel::RepeatableRead)
            .read_only(true)
            .start()
            .await
            .map_err(database_error)?;
        let hashes = merkle::leaf_hashes(&transaction, organization_id, start, end).await?;
        transaction.commit().await.map_err(database_error)?;
        Ok(hashes)
    }

    async fn tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        start: u64,
        end: u64,
    ) -> StoreResult<Vec<(u64, Hash)>> {
        merkle::tree_nodes(&self.client().await?, organization_id, level, start, end).await
    }

    async fn tree_node_count(&self, organization_id: &str, level: u8) -> StoreResult<u64> {
        merkle::tree_node_count(&self.client().await?, organization_id, level).await
    }

    async fn store_tree_nodes(
        &self,
        organization_id: &str,
        level: u8,
        nodes: Vec<(u64, Hash)>,
    ) -> StoreResult<()> {
        merkle::store_tree_nodes(&self.client().await?, organization_id, level, &nodes).await
    }

    async fn save_checkpoint(&self, checkpoint: Checkpoint) -> StoreResult<Checkpoint> {
        merkle::save_checkpoint(&self.client().await?, &checkpoint).await
    }

    async fn latest_checkpoint(&self, organization_id: &str) -> StoreResult<Option<Checkpoint>> {
        Ok(merkle::query_checkpoints(
            &self.client().await?,
            "organization_id = $1 ORDER BY tree_size DESC LIMIT 1",
            &[&organization_id],
        )
        .await?
        .pop())
    }

    async fn checkpoint_covering(
        &self,
        organization_id: &str,
        min_size: u64,
    ) -> StoreResult<Option<Checkpoint>> {
        Ok(merkle::query_checkpoints(
            &self.client().await?,
            "organization_id = $1 AND tree_size >= $2 ORDER BY tree_size LIMIT 1",
            &[&organization_id, &(min_size as i64)],
        )
        .await?
        .pop())
    }

    async fn list_checkpoints(
        &self,
        organization_id: &str,
        after_size: u64,
        limit: u32,
    ) -> StoreResult<Vec<Checkpoint>> {
        merkle::query_checkpoints(
            &self.client().await?,
            "organization_id = $1 AND tree_size > $2 ORDER BY tree_size LIMIT $3",
            &[&organization_id, &(after_size as i64), &i64::from(limit)],
        )
        .await
    }

    async fn thin_checkpoints(
        &self,
        older_than: UnixMillis,
        keep_one_per_ms: i64,
    ) -> StoreResult<u64> {
        merkle::thin_checkpoints(&self.client().await?, older_than, keep_one_per_ms).await
    }

    async fn uncheckpointed_logs(&self) -> StoreResult<Vec<UncheckpointedLog>> {
        merkle::uncheckpointed_logs(&self.client().await?).await
    }

    async fn register_signing_key(&self, key: SigningKeyRecord) -> StoreResult<()> {
        merkle::register_signing_key(&self.client().await?, &key).await
    }

    async fn list_signing_keys(&self) -> StoreResult<Vec<SigningKeyRecord>> {
        merkle::list_signing_keys(&self.client().await?).await
    }

    async fn event_bytes(
        &self,
        organization_id: &str,
        after_sequence: i64,
        limit: u32,
    ) -> StoreResult<Vec<(i64, Vec<u8>)>> {
        merkle::event_bytes(
            &self.client().await?,
            organization_id,
            after_sequence,
            limit,
        )
        .await
    }

    async fn organization_ids(&self) -> StoreResult<Vec<String>> {
        Ok(self
            .query("SELECT id FROM organizations ORDER BY id", &[])
            .await?
            .iter()
            .map(|row| row.get(0))
            .collect())
    }

    async fn find_idempotency_record(
        &self,
        scope: &str,
        key: &str,
        now: UnixMillis,
    ) -> StoreResult<Option<IdempotencyRecord>> {
        let client = self.client().await?;
        find_idempotency(&client, scope, key, now)
            .await
            .map_err(database_error)
    }

    async fn save_idempotency_record(
        &self,
        record: IdempotencyRecord,
    ) -> StoreResult<IdempotencyRecord> {
        let client = self.client().await?;
        Ok(claim_idempotency_key(&client, &record)
            .await
            .map_err(database_error)?
            .unwrap_or(record))
    }

    async fn purge_idempotency_records(&self, cutoff: UnixMillis) -> StoreResult<u64> {
        self.execute(
            "DELETE FROM idempotency_keys WHERE created_at <= $1",
            &[&cutoff],
        )
        .await
    }

    async fn claim_job_run(
        &self,
        job: &str,
        now: UnixMillis,
        interval_ms: i64,
    ) -> StoreResult<bool> {
        // The row lock makes this one decision across replicas: the first replica to ask
        // once the interval has passed moves `last_started_at` and runs the job; the others
        // see the moved value and skip it.
        let claimed = self
            .execute(
                "INSERT INTO job_runs (name, last_started_at) VALUES ($1, $2)
                 ON CONFLICT (name) DO UPDATE SET last_started_at = excluded.last_started_at
                 WHERE job_runs.last_started_at <= $2 - $3",
                &[&job, &now, &interval_ms],
            )
            .await?;
        Ok(claimed == 1)
    }
}

#[cfg(test)]
mod tests;

//! The storage ceiling: how fast the rows Stele stores for an event can be inserted into
//! SQLite directly, in large durable transactions, with Stele's own schema and indexes,
//! no HTTP, no validation and no group-commit queue. Rows are prepared before timing.

use std::time::Instant;

use clap::Parser;
use rusqlite::{params, Connection};
use stele_bench::synthetic_event;
use stele_core::chain::{link, GENESIS};
use stele_core::ids::IdKind;
use stele_core::timestamp::now_millis;
use stele_store::sqlite::SqliteStore;

#[derive(Parser)]
struct Args {
    #[arg(long)]
    database: std::path::PathBuf,
    #[arg(long, default_value_t = 200_000)]
    events: u64,
    #[arg(long, default_value_t = 1000)]
    transaction_size: usize,
}

struct Row {
    id: String,
    sequence: i64,
    action: String,
    actor_id: String,
    actor_name: Option<String>,
    occurred_at: i64,
    canonical: Vec<u8>,
    hash: [u8; 32],
    targets: Vec<(String, String)>,
}

fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    // Create the schema exactly as Stele does, then write to it directly.
    drop(SqliteStore::open(&args.database, true)?);
    let mut connection = Connection::open(&args.database)?;
    connection.execute_batch("PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL;")?;
    // The search rows go to the search index file, as Stele keeps them.
    let mut index = args.database.as_os_str().to_owned();
    index.push("-search");
    connection.execute(
        "ATTACH DATABASE ?1 AS search",
        [index.to_string_lossy().as_ref()],
    )?;
    connection
        .execute_batch("PRAGMA search.journal_mode = WAL; PRAGMA search.synchronous = NORMAL;")?;
    let organization = IdKind::Organization.generate();
    connection.execute(
        "INSERT INTO organizations (id, name, metadata, domains, created_at, updated_at) VALUES (?1, 'ceiling', '{}', '[]', 0, 0)",
        [&organization],
    )?;
    let received_at = now_millis();
    let mut previous = GENESIS;
    let rows: Vec<Row> = (0..args.events)
        .map(|index| {
            let event = synthetic_event(&organization, index);
            let id = IdKind::Event.generate();
            let sequence = index as i64 + 1;
            let canonical = event
                .canonical_record(&id, &organization, sequence, received_at)
                .unwrap_or_default();
            previous = link(&previous, &canonical);
            Row {
                id,
                sequence,
                action: event.action.clone(),
                actor_id: event.actor.id.clone(),
                actor_name: event.actor.name.clone(),
                occurred_at: event.occurred_at,
                canonical,
                hash: previous,
                targets: event
                    .targets
                    .iter()
                    .map(|t| (t.id.clone(), t.kind.clone()))
                    .collect(),
            }
        })
        .collect();
    let started = Instant::now();
    for chunk in rows.chunks(args.transaction_size) {
        let transaction = connection.transaction()?;
        {
            let mut insert_event = transaction.prepare_cached(
                "INSERT INTO events (organization_id, sequence, id, action, version, actor_id, actor_name,
                                     occurred_at, received_at, canonical, hash)
                 VALUES (?1, ?2, ?3, ?4, 1, ?5, ?6, ?7, ?8, ?9, ?10)",
            )?;
            let mut insert_search = transaction.prepare_cached(
                "INSERT INTO event_search (organization_id, sequence, action, actor_id, actor_name, occurred_at)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            )?;
            let mut insert_target = transaction.prepare_cached(
                "INSERT INTO event_targets (organization_id, target_id, sequence, position, target_type)
                 VALUES (?1, ?2, ?3, ?4, ?5)",
            )?;
            for row in chunk {
                insert_event.execute(params![
                    organization,
                    row.sequence,
                    row.id,
                    row.action,
                    row.actor_id,
                    row.actor_name,
                    row.occurred_at,
                    received_at,
                    row.canonical,
                    row.hash.as_slice()
                ])?;
                insert_search.execute(params![
                    organization,
                    row.sequence,
                    row.action,
                    row.actor_id,
                    row.actor_name,
                    row.occurred_at
                ])?;
                for (position, (target_id, target_type)) in row.targets.iter().enumerate() {
                    insert_target.execute(params![
                        organization,
                        target_id,
                        row.sequence,
                        position as i64,
                        target_type
                    ])?;
                }
            }
        }
        transaction.commit()?;
    }
    let seconds = started.elapsed().as_secs_f64();
    println!("{:.0}", args.events as f64 / seconds);
    eprintln!(
        "inserted {} events in {seconds:.2}s ({:.0} rows/s) in {}-row transactions",
        args.events,
        args.events as f64 / seconds,
        args.transaction_size
    );
    Ok(())
}

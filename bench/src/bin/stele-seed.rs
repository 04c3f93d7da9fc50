//! Fills a Stele database with synthetic events through the store's own append path
//! (group commit included), for the search, export and start-up benchmarks.
//!
//! Prints the organization ids, one per line, on stdout.

use std::sync::Arc;
use std::time::Instant;

use clap::Parser;
use futures_util::stream::{self, StreamExt};
use stele_bench::{bench_schema, synthetic_event, ACTIONS};
use stele_core::model::{EventId, NewEvent, Organization, OrganizationId};
use stele_core::schema::parse_schema_definition;
use stele_core::timestamp::now_millis;
use stele_store::postgres::{PostgresOptions, PostgresStore};
use stele_store::prelude::*;
use stele_store::sqlite::SqliteStore;

#[derive(Parser)]
struct Args {
    /// SQLite file to create or extend, or a postgres:// URL of a database to extend.
    #[arg(long)]
    database: String,
    #[arg(long, default_value_t = 1)]
    organizations: u64,
    /// Events appended to each organization.
    #[arg(long, default_value_t = 1000)]
    events_per_organization: u64,
    /// Appends in flight at once (they share commits).
    #[arg(long, default_value_t = 1024)]
    concurrency: usize,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let sqlite = if args.database.starts_with("postgres://") {
        None
    } else {
        Some(Arc::new(SqliteStore::open(
            std::path::Path::new(&args.database),
            true,
        )?))
    };
    let store: Arc<dyn Store> = match &sqlite {
        Some(sqlite) => sqlite.clone(),
        None => Arc::new(PostgresStore::open(&PostgresOptions::new(&args.database), true).await?),
    };
    let definition =
        parse_schema_definition(&bench_schema()).map_err(|errors| anyhow::anyhow!("{errors:?}"))?;
    for action in ACTIONS {
        store
            .create_schema_version(action, definition.clone(), "bench", now_millis(), None)
            .await?;
    }
    let mut organizations = Vec::new();
    for index in 0..args.organizations {
        let now = now_millis();
        let organization = Organization {
            id: OrganizationId::generate(),
            name: format!("Bench organization {index}"),
            external_id: None,
            metadata: Default::default(),
            domains: Vec::new(),
            retention_period_in_days: None,
            stripe_customer_id: None,
            created_at: now,
            updated_at: now,
        };
        store
            .create_organization(organization.clone(), None)
            .await?;
        println!("{}", organization.id);
        organizations.push(organization.id);
    }
    let total = args.organizations * args.events_per_organization;
    let started = Instant::now();
    let appends = (0..total).map(|index| {
        let store = Arc::clone(&store);
        // Interleave organizations, as concurrent tenants would.
        let organization_id = organizations[(index % args.organizations) as usize].clone();
        let event = synthetic_event(&organization_id, index / args.organizations);
        async move {
            store
                .append_event(
                    NewEvent {
                        id: EventId::generate(),
                        organization_id,
                        event,
                    },
                    None,
                )
                .await
        }
    });
    let mut done = 0u64;
    let mut results = stream::iter(appends).buffer_unordered(args.concurrency);
    while let Some(result) = results.next().await {
        result?;
        done += 1;
        if done.is_multiple_of(500_000) {
            eprintln!(
                "seeded {done}/{total} events ({:.0}/s)",
                done as f64 / started.elapsed().as_secs_f64()
            );
        }
    }
    eprintln!(
        "seeded {total} events in {:.1}s ({:.0} events/s)",
        started.elapsed().as_secs_f64(),
        total as f64 / started.elapsed().as_secs_f64()
    );
    // A seeded SQLite database is handed over fully indexed, so that searches measured on
    // it do not read a long unindexed tail (or race the indexer) at first.
    if let Some(sqlite) = &sqlite {
        while sqlite.unindexed_events().await? > 0 {
            tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        }
        eprintln!(
            "indexed every event for search after {:.1}s",
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

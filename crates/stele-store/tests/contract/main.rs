//! The store contract: every behaviour of the `Store` trait, run against both backends —
//! SQLite in a temporary file and PostgreSQL in a scratch database (at
//! `STELE_TEST_POSTGRES_URL`, default the local server; the suite fails when it cannot be
//! reached). Each test body is written once and runs as `<name>_on_sqlite` and
//! `<name>_on_postgres`.

mod support;

mod credentials;
mod events;
mod exports;
mod idempotency;
mod jobs;
mod limits;
mod log_streams;
mod organizations;
mod portal;
mod quarantine;
mod retention;
mod schemas;
mod search;
mod status;
mod tree;

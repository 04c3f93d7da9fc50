//! Integration tests: the real server, bound to port 0 on a fresh database (SQLite, or
//! PostgreSQL when `STELE_TEST_POSTGRES_URL` is set), driven over HTTP. One test binary keeps link times down; each module covers one area of the contract.

mod support;

mod access;
mod batch;
mod cli;
mod connections;
mod dashboard;
mod dashboard_editor;
mod dashboard_events;
mod durability;
mod events;
mod exports;
mod hardening;
mod http_contract;
mod idempotency;
mod import;
mod limits;
mod log_streams;
mod metrics;
mod organizations;
mod portal;
mod quarantine;
mod replicas;
mod retention;
mod robustness;
mod schema_check;
mod schemas;
mod search;
mod secrets;
mod transparency;
mod verify;

//! Integration tests: the real server, bound to port 0 on a fresh database (SQLite, or
//! PostgreSQL when `STELE_TEST_POSTGRES_URL` is set), driven over HTTP. One test binary keeps link times down; each module covers one area of the contract.

mod support;

mod batch;
mod cli;
mod dashboard;
mod dashboard_editor;
mod dashboard_events;
mod durability;
mod events;
mod exports;
mod http_contract;
mod idempotency;
mod import;
mod organizations;
mod replicas;
mod retention;
mod robustness;
mod schema_check;
mod schemas;
mod search;
mod transparency;
mod verify;

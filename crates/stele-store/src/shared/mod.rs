//! Logic both backends share, written once: what stored values mean, and the decisions
//! (chain verification, leaf assembly, purges, schema writes, export completeness, search
//! plans) whose SQL differs per backend but whose rules must not.

pub(crate) mod chain;
pub(crate) mod encoding;
pub(crate) mod exports;
pub(crate) mod log_streams;
pub(crate) mod migrations;
pub(crate) mod purge;
pub(crate) mod quarantine;
pub(crate) mod schemas;
pub(crate) mod search;
pub(crate) mod tree;

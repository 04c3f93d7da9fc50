//! Compatibility tests for the official `workos` Rust crate against a running Stele; see `tests/compat.rs`.

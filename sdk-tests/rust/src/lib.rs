//! Placeholder until the Rust SDK suite lands.

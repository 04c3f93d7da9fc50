//! Background-job coordination in SQLite: nothing to coordinate.

use super::SqliteStore;
use crate::prelude::*;

/// Only one process opens a SQLite database, so every job may run whenever it is due: the
/// port's default (always claim) is right.
impl JobStore for SqliteStore {}

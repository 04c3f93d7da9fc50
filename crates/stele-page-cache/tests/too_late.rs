//! Installing after SQLite is in use changes nothing, and says so. Its own test binary, so
//! that the connection below is this process's first.

use rusqlite::Connection;
use stele_page_cache::{install, Installation};

#[test]
fn installing_after_the_first_connection_keeps_the_default_cache() {
    let connection = Connection::open_in_memory().expect("open");
    assert_eq!(
        install(),
        Installation::TooLate(rusqlite::ffi::SQLITE_MISUSE)
    );
    // SQLite still works with its default cache.
    let one: i64 = connection
        .query_row("SELECT 1", [], |row| row.get(0))
        .expect("query");
    assert_eq!(one, 1);
}

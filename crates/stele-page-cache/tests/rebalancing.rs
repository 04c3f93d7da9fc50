//! The wrapped cache under the load it exists for: random keys that split and rebalance
//! B-tree pages in a WAL database under 1 GiB, with a cache large enough to hold it all.
//! Its own test binary, so that nothing opens SQLite before `install` in this process.

use rusqlite::{params, Connection};
use stele_page_cache::{install, pages_parked, Installation};

#[test]
fn rebalancing_parks_pages_and_keeps_every_row_intact() {
    assert_eq!(install(), Installation::Installed);
    // A second call reports the first outcome instead of configuring SQLite again.
    assert_eq!(install(), Installation::Installed);
    let dir = tempfile::tempdir().expect("temporary directory");
    let path = dir.path().join("rebalance.db");
    let writer = Connection::open(&path).expect("open");
    writer
        .execute_batch(
            "PRAGMA journal_mode = WAL;
             PRAGMA cache_size = -65536;
             CREATE TABLE rows (id INTEGER PRIMARY KEY, key BLOB NOT NULL, value INTEGER NOT NULL);
             CREATE UNIQUE INDEX rows_by_key ON rows (key);",
        )
        .expect("schema");
    // Keys from a fixed pseudo-random sequence land all over the index, so its pages split
    // and rebalance; values let the read-back check every row.
    let mut state: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut expected_sum: i64 = 0;
    let rows = 60_000;
    for batch in 0..(rows / 200) {
        writer.execute_batch("BEGIN").expect("begin");
        for row in 0..200 {
            let id = i64::from(batch * 200 + row);
            let key = [next().to_le_bytes(), next().to_le_bytes()].concat();
            writer
                .execute(
                    "INSERT INTO rows (id, key, value) VALUES (?1, ?2, ?3)",
                    params![id, key, id * 7],
                )
                .expect("insert");
            expected_sum += id * 7;
        }
        writer.execute_batch("COMMIT").expect("commit");
        // Some transactions roll back, which drops their pages from the cache again.
        if batch % 25 == 0 {
            writer.execute_batch("BEGIN").expect("begin");
            for _ in 0..200 {
                let key = [next().to_le_bytes(), next().to_le_bytes()].concat();
                writer
                    .execute(
                        "INSERT INTO rows (key, value) VALUES (?1, 1000000)",
                        params![key],
                    )
                    .expect("insert");
            }
            writer.execute_batch("ROLLBACK").expect("rollback");
        }
    }
    assert!(
        pages_parked() > 0,
        "60,000 random keys rebalance the index, and each swap parks a page"
    );
    for connection in [&writer, &Connection::open(&path).expect("reader")] {
        let (count, sum): (i64, i64) = connection
            .query_row("SELECT count(*), sum(value) FROM rows", [], |row| {
                Ok((row.get(0)?, row.get(1)?))
            })
            .expect("count");
        assert_eq!((count, sum), (i64::from(rows), expected_sum));
        // Every key is found through the index, and the index matches the table.
        let indexed: i64 = connection
            .query_row(
                "SELECT count(*) FROM rows INDEXED BY rows_by_key WHERE key >= x''",
                [],
                |row| row.get(0),
            )
            .expect("indexed count");
        assert_eq!(indexed, i64::from(rows));
        let check: String = connection
            .query_row("PRAGMA integrity_check", [], |row| row.get(0))
            .expect("integrity check");
        assert_eq!(check, "ok");
    }
}

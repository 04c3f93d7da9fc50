//! SQLite's own page cache, wrapped so that one temporary page number stays out of its key
//! range.
//!
//! **Why.** When SQLite splits or merges B-tree pages (`balance_nonroot`) it renumbers the
//! new pages into ascending order, swapping two of them through a temporary number: the
//! page that holds the file-locking byte at 1 GiB (`PENDING_BYTE / page size + 1`, 262,145
//! with 4 KiB pages), which never holds data. The default cache (`pcache1`) keeps the
//! largest key it has held since it last dropped pages, and at the end of every transaction
//! SQLite asks it to drop the pages past the end of the database. While the database is
//! smaller than 1 GiB, after a swap that largest key lies further past the end than the
//! cache has hash buckets, so the drop walks every page the cache holds instead of the few
//! past the end: once per transaction that swapped pages. On the writer's
//! 128 MiB cache that walk (`pcache1TruncateUnsafe`) was the largest single cost of a
//! commit: a fifth of the writer's time under single-event ingest, and most of it for
//! commits that store idempotency records (bench/NOTES.md). Databases past 1 GiB never pay
//! it, since the temporary number is then inside the file.
//!
//! **What.** This crate installs a page cache that forwards every call to SQLite's default
//! one, except that the temporary page number is handed to it as key 0. Page numbers start
//! at 1, so no page is ever cached under 0 otherwise; the temporary number is only held
//! between the first and last of a swap's three renames, so nothing else sees the
//! difference. Key 0 never raises the largest key, and the end-of-transaction drop stays
//! proportional to what lies past the end.
//!
//! **Scope.** The page cache is process-wide configuration that SQLite accepts only before
//! it is initialised, that is, before the first connection opens, and configuring it is not
//! safe while another thread initialises SQLite. [`install`] must therefore run before any
//! thread may open a connection: every way the process opens SQLite calls it first, and
//! calls from other threads wait for the first one to finish. If SQLite is already in use,
//! it changes nothing and says so.

use std::ffi::{c_int, c_uint, c_void};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::OnceLock;

use rusqlite::ffi;

/// SQLite's default `PENDING_BYTE` (`sqliteInt.h`), which only SQLite's own tests move.
const PENDING_BYTE: c_uint = 0x4000_0000;
/// The key the temporary page is cached under. No database page is numbered 0.
const PARKED_KEY: c_uint = 0;

/// What [`install`] found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installation {
    /// Every connection opened from now on uses the wrapped cache.
    Installed,
    /// SQLite was initialised before [`install`] ran (a connection was opened first), so it
    /// keeps its default cache; the SQLite result code of the refused configuration.
    TooLate(c_int),
}

/// SQLite's default cache methods, read once before ours replace them.
struct DefaultMethods(ffi::sqlite3_pcache_methods2);

// SAFETY: the struct holds function pointers and SQLite's `pArg`, which is null for the
// default cache; SQLite calls these methods from any thread and guards the cache's state with
// its own mutexes, so sharing the table itself between threads is sound.
unsafe impl Send for DefaultMethods {}
// SAFETY: as above; the table is never written after `install` reads it.
unsafe impl Sync for DefaultMethods {}

static DEFAULT: OnceLock<DefaultMethods> = OnceLock::new();
static INSTALLATION: OnceLock<Installation> = OnceLock::new();
static PARKED: AtomicU64 = AtomicU64::new(0);

/// Installs the wrapped page cache, once per process; calls made while the first runs wait
/// for it, and later calls return its outcome. Must run before any thread of the process
/// may open an SQLite connection (see the crate's docs).
pub fn install() -> Installation {
    *INSTALLATION.get_or_init(|| {
        let mut default = ffi::sqlite3_pcache_methods2 {
            iVersion: 0,
            pArg: std::ptr::null_mut(),
            xInit: None,
            xShutdown: None,
            xCreate: None,
            xCachesize: None,
            xPagecount: None,
            xFetch: None,
            xUnpin: None,
            xRekey: None,
            xTruncate: None,
            xDestroy: None,
            xShrink: None,
        };
        // SAFETY: GETPCACHE2 takes a pointer to a methods struct and writes SQLite's current
        // (default) methods into it; `default` outlives the call.
        let read = unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_GETPCACHE2,
                &mut default as *mut ffi::sqlite3_pcache_methods2,
            )
        };
        if read != ffi::SQLITE_OK {
            return Installation::TooLate(read);
        }
        let default_version = default.iVersion;
        if DEFAULT.set(DefaultMethods(default)).is_err() {
            // Unreachable: this closure runs once. Keep the default cache rather than guess.
            return Installation::TooLate(ffi::SQLITE_MISUSE);
        }
        let wrapped = ffi::sqlite3_pcache_methods2 {
            // The version of the methods it forwards to: this table adds none of its own.
            iVersion: default_version,
            pArg: std::ptr::null_mut(),
            xInit: Some(init),
            xShutdown: Some(shutdown),
            xCreate: Some(create),
            xCachesize: Some(cachesize),
            xPagecount: Some(pagecount),
            xFetch: Some(fetch),
            xUnpin: Some(unpin),
            xRekey: Some(rekey),
            xTruncate: Some(truncate),
            xDestroy: Some(destroy),
            xShrink: Some(shrink),
        };
        // SAFETY: PCACHE2 copies the struct it is given (`sqlite3GlobalConfig.pcache2 =
        // *p`); SQLite refuses it (SQLITE_MISUSE) once initialised, which is reported.
        match unsafe {
            ffi::sqlite3_config(
                ffi::SQLITE_CONFIG_PCACHE2,
                &wrapped as *const ffi::sqlite3_pcache_methods2,
            )
        } {
            ffi::SQLITE_OK => Installation::Installed,
            refused => Installation::TooLate(refused),
        }
    })
}

/// How many times a page was parked under key 0 instead of the temporary page number: one
/// per page swap while rebalancing a B-tree. While the database is under 1 GiB, a
/// transaction with any such swap would otherwise end with a walk of the whole cache.
pub fn pages_parked() -> u64 {
    PARKED.load(Ordering::Relaxed)
}

/// One cache, as SQLite sees it: the default cache it wraps, and the temporary page number
/// for its page size.
struct Cache {
    inner: *mut ffi::sqlite3_pcache,
    temporary_page: c_uint,
}

impl Cache {
    /// The key the default cache holds `page` under.
    fn key(&self, page: c_uint) -> c_uint {
        if page == self.temporary_page {
            PARKED_KEY
        } else {
            page
        }
    }
}

fn default_methods() -> &'static ffi::sqlite3_pcache_methods2 {
    // SQLite calls the methods below only after `install` configured them, which it does
    // only after storing the default ones.
    &DEFAULT
        .get()
        .expect("the default page cache is read before the wrapper is installed")
        .0
}

/// The wrapper behind a cache pointer SQLite hands back.
///
/// # Safety
/// `cache` must be a pointer `create` returned and `destroy` has not freed.
unsafe fn wrapper<'a>(cache: *mut ffi::sqlite3_pcache) -> &'a Cache {
    // SAFETY: per the function's contract, `cache` is a live `Box<Cache>` from `create`.
    unsafe { &*(cache as *const Cache) }
}

unsafe extern "C" fn init(_arg: *mut c_void) -> c_int {
    let methods = default_methods();
    match methods.xInit {
        // SAFETY: the default cache's own initialiser, given its own argument.
        Some(init) => unsafe { init(methods.pArg) },
        None => ffi::SQLITE_OK,
    }
}

unsafe extern "C" fn shutdown(_arg: *mut c_void) {
    let methods = default_methods();
    if let Some(shutdown) = methods.xShutdown {
        // SAFETY: the default cache's own shutdown, given its own argument.
        unsafe { shutdown(methods.pArg) }
    }
}

unsafe extern "C" fn create(
    page_size: c_int,
    extra_size: c_int,
    purgeable: c_int,
) -> *mut ffi::sqlite3_pcache {
    let Some(create) = default_methods().xCreate else {
        return std::ptr::null_mut();
    };
    // SAFETY: forwards SQLite's own arguments to the default cache.
    let inner = unsafe { create(page_size, extra_size, purgeable) };
    if inner.is_null() {
        return inner;
    }
    // SQLite's temporary page for this page size (`btree.c`, `balance_nonroot`). A page
    // size SQLite would never use leaves it 0, which then maps to itself.
    let temporary_page = match c_uint::try_from(page_size) {
        Ok(size) if size > 0 => PENDING_BYTE / size + 1,
        _ => PARKED_KEY,
    };
    Box::into_raw(Box::new(Cache {
        inner,
        temporary_page,
    }))
    .cast()
}

unsafe extern "C" fn cachesize(cache: *mut ffi::sqlite3_pcache, pages: c_int) {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    if let Some(cachesize) = default_methods().xCachesize {
        // SAFETY: the default cache's method on the default cache it created.
        unsafe { cachesize(cache.inner, pages) }
    }
}

unsafe extern "C" fn pagecount(cache: *mut ffi::sqlite3_pcache) -> c_int {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    match default_methods().xPagecount {
        // SAFETY: the default cache's method on the default cache it created.
        Some(pagecount) => unsafe { pagecount(cache.inner) },
        None => 0,
    }
}

unsafe extern "C" fn fetch(
    cache: *mut ffi::sqlite3_pcache,
    page: c_uint,
    create: c_int,
) -> *mut ffi::sqlite3_pcache_page {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    match default_methods().xFetch {
        // SAFETY: the default cache's method on the default cache it created.
        Some(fetch) => unsafe { fetch(cache.inner, cache.key(page), create) },
        None => std::ptr::null_mut(),
    }
}

unsafe extern "C" fn unpin(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    discard: c_int,
) {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    if let Some(unpin) = default_methods().xUnpin {
        // SAFETY: the default cache's method, on a page it handed out.
        unsafe { unpin(cache.inner, page, discard) }
    }
}

unsafe extern "C" fn rekey(
    cache: *mut ffi::sqlite3_pcache,
    page: *mut ffi::sqlite3_pcache_page,
    old: c_uint,
    new: c_uint,
) {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    if new == cache.temporary_page {
        PARKED.fetch_add(1, Ordering::Relaxed);
    }
    if let Some(rekey) = default_methods().xRekey {
        // SAFETY: the default cache's method, on a page it handed out, with keys mapped
        // the same way `fetch` maps them.
        unsafe { rekey(cache.inner, page, cache.key(old), cache.key(new)) }
    }
}

unsafe extern "C" fn truncate(cache: *mut ffi::sqlite3_pcache, limit: c_uint) {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    let methods = default_methods();
    // The temporary page is dropped with the pages past `limit`, as the default cache
    // would drop it under its own number. SQLite never truncates in the middle of a swap,
    // so this finds nothing in practice; it keeps the mapping exact all the same.
    if limit > PARKED_KEY && limit <= cache.temporary_page {
        if let (Some(fetch), Some(unpin)) = (methods.xFetch, methods.xUnpin) {
            // SAFETY: the default cache's methods on the default cache it created: a lookup
            // that creates nothing, then discarding the page it returned.
            unsafe {
                let parked = fetch(cache.inner, PARKED_KEY, 0);
                if !parked.is_null() {
                    unpin(cache.inner, parked, 1);
                }
            }
        }
    }
    if let Some(truncate) = methods.xTruncate {
        // SAFETY: the default cache's method on the default cache it created.
        unsafe { truncate(cache.inner, limit) }
    }
}

unsafe extern "C" fn destroy(cache: *mut ffi::sqlite3_pcache) {
    // SAFETY: SQLite destroys each cache once, after its last use: the box `create` made is
    // taken back here and freed when this function returns.
    let cache = unsafe { Box::from_raw(cache as *mut Cache) };
    if let Some(destroy) = default_methods().xDestroy {
        // SAFETY: the default cache's method on the default cache it created.
        unsafe { destroy(cache.inner) }
    }
}

unsafe extern "C" fn shrink(cache: *mut ffi::sqlite3_pcache) {
    // SAFETY: SQLite passes back a cache `create` returned.
    let cache = unsafe { wrapper(cache) };
    if let Some(shrink) = default_methods().xShrink {
        // SAFETY: the default cache's method on the default cache it created.
        unsafe { shrink(cache.inner) }
    }
}

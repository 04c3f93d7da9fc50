//! Exports: snapshots of one organization's matching events, downloaded through signed,
//! short-lived URLs that any server process can check and serve.
//!
//! Creating an export fixes its snapshot (the newest committed sequence) and nothing else;
//! the file is produced while it is downloaded, streaming page by page, so memory stays
//! bounded however large it is and no copy of the events is stored. Retention always
//! wins over an export: once a purge removes events an export covered, the export is no
//! longer served (410), rather than served with different content.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use hmac::{Hmac, Mac};
use rand::RngCore;
use sha2::Sha256;
use stele_core::export::{write_event, write_header, ExportFormat};
use stele_core::merkle::inclusion_proof_ranges;
use stele_core::model::ExportId;
use stele_core::model::StoredEvent;
use stele_core::model::{EventQuery, Export, IdempotencyRecord, Idempotent};
use stele_core::pagination::{Cursor, Page, PageRequest, SortOrder};
use stele_core::timestamp::{now_millis, UnixMillis};
use stele_store::{Store, StoreError};
use tokio::sync::OnceCell;

use crate::error_code::ErrorCode;
use crate::private_file::{create_private_file, read_private_file};
use crate::services::transparency::{ProvenJsonlWriter, TransparencyService, TreeReader};
use crate::services::ServiceError;

/// How long a download link works after it is issued.
pub const URL_LIFETIME_MS: i64 = 10 * 60 * 1000;
/// How long an export can be downloaded at all.
pub const DOWNLOAD_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Events read per page while streaming a download.
const PAGE_SIZE: u32 = 2000;

/// The name of the database row that held the link key before it moved to a file.
const LINK_KEY_SECRET: &str = "export_url_signing_key";
/// Bytes of a generated link key.
const LINK_KEY_BYTES: usize = 32;

/// Where the deployment-wide key that signs download links lives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LinkKeySource {
    /// A row of the database, which every replica shares (PostgreSQL without
    /// `--link-signing-key-file`); anyone holding a backup holds the key.
    Database,
    /// A file holding the key in hex, outside the database. A key still found in the
    /// database is moved into the file (so links already issued keep working) and deleted
    /// from the database. When the file is missing and there is nothing to move, a new key
    /// is generated only if `may_generate` (one process: SQLite); replicas must be given
    /// the same file instead of each inventing its own.
    File { path: PathBuf, may_generate: bool },
}

/// The deployment-wide key that signs download links, loaded once per process.
pub struct UrlSigner {
    store: Arc<dyn Store>,
    source: LinkKeySource,
    key: OnceCell<Vec<u8>>,
}

impl UrlSigner {
    pub fn new(store: Arc<dyn Store>, source: LinkKeySource) -> Self {
        Self {
            store,
            source,
            key: OnceCell::new(),
        }
    }

    /// Loads the key now, so a missing or unreadable key file stops the server at start
    /// rather than failing the first export.
    pub async fn load(&self) -> Result<(), StoreError> {
        self.key().await.map(|_| ())
    }

    async fn key(&self) -> Result<&[u8], StoreError> {
        self.key
            .get_or_try_init(|| async {
                match &self.source {
                    LinkKeySource::Database => {
                        let mut fresh = vec![0u8; LINK_KEY_BYTES];
                        rand::rng().fill_bytes(&mut fresh);
                        self.store.shared_secret(LINK_KEY_SECRET, fresh).await
                    }
                    LinkKeySource::File { path, may_generate } => {
                        load_link_key_file(&*self.store, path, *may_generate).await
                    }
                }
            })
            .await
            .map(Vec::as_slice)
    }

    fn mac(key: &[u8], export_id: &str, expires: i64) -> Hmac<Sha256> {
        // HMAC accepts keys of any length, so this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(key).unwrap_or_else(|_| unreachable!());
        mac.update(export_id.as_bytes());
        mac.update(b"\n");
        mac.update(expires.to_string().as_bytes());
        mac
    }

    /// `(expires, signature)` for a link to `export_id` valid for [`URL_LIFETIME_MS`].
    pub async fn sign(&self, export_id: &str) -> Result<(i64, String), StoreError> {
        let expires = now_millis() + URL_LIFETIME_MS;
        let key = self.key().await?;
        Ok((
            expires,
            hex::encode(Self::mac(key, export_id, expires).finalize().into_bytes()),
        ))
    }

    /// Whether a link's signature is genuine and it has not expired.
    pub async fn verify(
        &self,
        export_id: &str,
        expires: i64,
        signature: &str,
    ) -> Result<bool, StoreError> {
        if expires < now_millis() {
            return Ok(false);
        }
        let Ok(signature) = hex::decode(signature) else {
            return Ok(false);
        };
        let key = self.key().await?;
        Ok(Self::mac(key, export_id, expires)
            .verify_slice(&signature)
            .is_ok())
    }
}

fn file_error(path: &Path, what: &str, source: std::io::Error) -> StoreError {
    StoreError::Io {
        context: format!("{what} the link signing key file {}", path.display()),
        source: Arc::new(source),
    }
}

/// Reads the link key from `path`; see [`LinkKeySource::File`] for what happens when the
/// file is missing.
async fn load_link_key_file(
    store: &dyn Store,
    path: &Path,
    may_generate: bool,
) -> Result<Vec<u8>, StoreError> {
    if let Some(key) = read_link_key_file(path)? {
        // The file is the key now; a copy left in the database would only leak it.
        store.delete_secret(LINK_KEY_SECRET).await?;
        return Ok(key);
    }
    let key = match store.find_secret(LINK_KEY_SECRET).await? {
        Some(key) => key,
        None if may_generate => {
            let mut fresh = vec![0u8; LINK_KEY_BYTES];
            rand::rng().fill_bytes(&mut fresh);
            fresh
        }
        None => {
            return Err(StoreError::Incompatible(format!(
                "the link signing key file {} does not exist; create it once \
                 (`openssl rand -hex 32 > {}`, mode 0600) and give every replica the same file",
                path.display(),
                path.display()
            )))
        }
    };
    let key = keep_link_key_in_file(path, key)?;
    store.delete_secret(LINK_KEY_SECRET).await?;
    Ok(key)
}

/// Writes `key` to the file at `path`, and returns the key the file then holds: `key`, or
/// the key of a replica started at the same time that wrote the file first.
fn keep_link_key_in_file(path: &Path, key: Vec<u8>) -> Result<Vec<u8>, StoreError> {
    let created = create_private_file(path, format!("{}\n", hex::encode(&key)).as_bytes())
        .map_err(|error| file_error(path, "creating", error))?;
    if created {
        tracing::info!(path = %path.display(), "the export link signing key is kept in this file");
        return Ok(key);
    }
    read_link_key_file(path)?
        .ok_or_else(|| file_error(path, "reading", std::io::ErrorKind::NotFound.into()))
}

/// The link key held in hex at `path`, or `None` when there is no such file.
fn read_link_key_file(path: &Path) -> Result<Option<Vec<u8>>, StoreError> {
    let Some(text) = read_private_file(path).map_err(|error| file_error(path, "reading", error))?
    else {
        return Ok(None);
    };
    hex::decode(text.trim())
        .ok()
        .filter(|key| key.len() >= LINK_KEY_BYTES)
        .map(Some)
        .ok_or_else(|| {
            StoreError::Incompatible(format!(
                "{} must hold at least {LINK_KEY_BYTES} bytes in hex (e.g. from `openssl rand -hex 32`)",
                path.display()
            ))
        })
}

/// An export's range must not end before it starts (WorkOS answers 400
/// `invalid_audit_log_export_range_date`).
pub fn check_range(from: Option<UnixMillis>, to: Option<UnixMillis>) -> Result<(), ServiceError> {
    match (from, to) {
        (Some(from), Some(to)) if from > to => Err(ServiceError::Rejected {
            code: ErrorCode::InvalidAuditLogExportRangeDate,
            message: "range_start must not be after range_end.".into(),
        }),
        _ => Ok(()),
    }
}

/// Creating exports, signing their download links and producing their files.
#[derive(Clone)]
pub struct ExportService {
    store: Arc<dyn Store>,
    url_signer: Arc<UrlSigner>,
    transparency: TransparencyService,
}

impl ExportService {
    pub fn new(
        store: Arc<dyn Store>,
        url_signer: Arc<UrlSigner>,
        transparency: TransparencyService,
    ) -> Self {
        Self {
            store,
            url_signer,
            transparency,
        }
    }

    /// Loads the link signing key (see [`UrlSigner::load`]).
    pub async fn load_link_key(&self) -> Result<(), ServiceError> {
        Ok(self.url_signer.load().await?)
    }

    /// Whether a download link's signature is genuine and it has not expired.
    pub async fn link_is_genuine(
        &self,
        export_id: &str,
        expires: i64,
        signature: &str,
    ) -> Result<bool, ServiceError> {
        Ok(self
            .url_signer
            .verify(export_id, expires, signature)
            .await?)
    }

    /// A freshly signed download link to `export_id`, relative to this server's root (valid
    /// for [`URL_LIFETIME_MS`]).
    pub async fn download_path(&self, export_id: &str) -> Result<String, ServiceError> {
        let (expires, signature) = self.url_signer.sign(export_id).await?;
        Ok(format!(
            "/audit_logs/exports/{export_id}/download?expires={expires}&signature={signature}"
        ))
    }

    /// Stores a prepared export, fixing its snapshot.
    pub async fn create(
        &self,
        export: Export,
        idempotency: Option<IdempotencyRecord>,
    ) -> Result<Idempotent<Export>, ServiceError> {
        let organization_id = export.query.organization_id.clone();
        self.store
            .create_export(export, idempotency)
            .await
            .map_err(|error| ServiceError::on_organization(error, &organization_id))
    }

    pub async fn get(&self, id: &str) -> Result<Option<Export>, ServiceError> {
        Ok(self.store.get_export(id).await?)
    }

    /// Picks the checkpoint a proven export is proven against: the smallest one covering its
    /// snapshot, so repeated downloads of one export are the same file (unless checkpoint
    /// thinning has since removed that checkpoint; another covering one is then used).
    async fn start_proven(
        &self,
        export: &Export,
        out: &mut Vec<u8>,
    ) -> Result<ProvenState, std::io::Error> {
        let organization_id = &export.query.organization_id;
        let snapshot = export.query.up_to_sequence.unwrap_or(0).max(1) as u64;
        let covering = self
            .transparency
            .checkpoint_covering(organization_id, snapshot)
            .await
            .map_err(std::io::Error::other)?;
        let checkpoint = match covering {
            Some(checkpoint) => checkpoint,
            None => self
                .transparency
                .checkpoint_now(organization_id)
                .await
                .map_err(std::io::Error::other)?
                .ok_or_else(|| std::io::Error::other("the organization has no events to prove"))?,
        };
        let tree = self
            .transparency
            .tree_reader(organization_id, checkpoint.tree_size);
        let writer = ProvenJsonlWriter::start(checkpoint, export.id.clone().into(), out);
        Ok(ProvenState { writer, tree })
    }

    /// The export's file as a stream of chunks, read page by page in sequence order.
    pub fn stream(
        &self,
        export: Export,
    ) -> impl futures_util::Stream<Item = Result<Bytes, std::io::Error>> + Send + 'static {
        let format = export.format;
        let initial = DownloadProgress {
            next: Some(None),
            read_ahead: None,
            first: true,
            proven: None,
            started: std::time::Instant::now(),
            events: 0,
        };
        let this = self.clone();
        futures_util::stream::unfold(initial, move |mut progress| {
            let (service, export) = (this.clone(), export.clone());
            async move {
                let after = progress.next?;
                let mut chunk = Vec::with_capacity(256 * 1024);
                if progress.first {
                    progress.started = std::time::Instant::now();
                }
                let result = async {
                    if progress.first {
                        if format == ExportFormat::ProvenJsonl {
                            progress.proven =
                                Some(service.start_proven(&export, &mut chunk).await?);
                        } else {
                            write_header(format, &mut chunk).map_err(std::io::Error::other)?;
                        }
                    }
                    let page = match progress.read_ahead.take() {
                        Some(read_ahead) => read_ahead.page().await,
                        None => read_page(service.store.clone(), export.query.clone(), after).await,
                    }
                    .map_err(std::io::Error::other)?;
                    // The next page is read while this one is encoded: reading (a store
                    // query) and encoding (this task) then run on both cores instead of
                    // taking turns. At most one page is read ahead, so memory stays flat.
                    if page.after.is_some() {
                        if let Some(last) = page.data.last() {
                            progress.read_ahead = Some(ReadAhead::start(
                                service.store.clone(),
                                export.query.clone(),
                                last.sequence,
                            ));
                        }
                    }
                    for event in &page.data {
                        match progress.proven.as_mut() {
                            Some(proven) => {
                                let leaf = event.sequence as u64 - 1;
                                let ranges =
                                    inclusion_proof_ranges(leaf, proven.writer.tree_size());
                                let proof = proven
                                    .tree
                                    .ranges(&ranges)
                                    .await
                                    .map_err(std::io::Error::other)?;
                                proven
                                    .writer
                                    .event(leaf, &event.canonical, &proof, &mut chunk);
                            }
                            None => write_event(format, &event.canonical, &mut chunk)
                                .map_err(std::io::Error::other)?,
                        }
                    }
                    progress.events += page.data.len() as u64;
                    let next = page
                        .after
                        .is_some()
                        .then(|| page.data.last().map(|event| event.sequence))
                        .flatten();
                    if next.is_none() {
                        if let Some(proven) = progress.proven.take() {
                            proven
                                .writer
                                .finish(service.transparency.signer(), &mut chunk);
                        }
                    }
                    Ok::<_, std::io::Error>(next)
                }
                .await;
                progress.first = false;
                match result {
                    Ok(next) => {
                        if next.is_none() {
                            crate::metrics::record_export(
                                format.name(),
                                true,
                                progress.started.elapsed(),
                                progress.events,
                            );
                        }
                        progress.next = next.map(Some);
                        Some((Ok(Bytes::from(chunk)), progress))
                    }
                    Err(error) => {
                        tracing::error!(%error, "export download failed midway");
                        crate::metrics::record_export(
                            format.name(),
                            false,
                            progress.started.elapsed(),
                            progress.events,
                        );
                        progress.next = None;
                        Some((Err(error), progress))
                    }
                }
            }
        })
    }
}

/// Whether an export can still be downloaded.
pub fn is_downloadable(export: &Export) -> bool {
    export.complete && now_millis() - export.created_at < DOWNLOAD_WINDOW_MS
}

/// A new export of `query` (not yet stored): callers render its response first, so that
/// the idempotency record can be stored in the same transaction as the export.
pub fn prepare(query: EventQuery, format: ExportFormat) -> Export {
    Export {
        id: ExportId::generate(),
        query,
        format,
        created_at: now_millis(),
        complete: true,
    }
}

/// A proven JSONL download in progress: the writer (checkpoint, running digest) and the
/// tree reader that keeps the hashes shared by consecutive proofs.
struct ProvenState {
    writer: ProvenJsonlWriter,
    tree: TreeReader,
}

/// Reads one page of an export in sequence order, after `after`.
async fn read_page(
    store: Arc<dyn Store>,
    query: EventQuery,
    after: Option<i64>,
) -> Result<Page<StoredEvent>, StoreError> {
    let page = PageRequest {
        limit: PAGE_SIZE,
        order: SortOrder::Asc,
        cursor: after.map(Cursor::After),
    };
    store.search_events(query, page).await
}

/// The next page of a download, being read by a task of its own while the current page is
/// encoded. Dropping it (the download ended or was abandoned) stops that task.
struct ReadAhead(tokio::task::JoinHandle<Result<Page<StoredEvent>, StoreError>>);

impl ReadAhead {
    fn start(store: Arc<dyn Store>, query: EventQuery, after: i64) -> Self {
        Self(tokio::spawn(read_page(store, query, Some(after))))
    }

    async fn page(mut self) -> Result<Page<StoredEvent>, StoreError> {
        (&mut self.0)
            .await
            .unwrap_or_else(|error| Err(StoreError::Internal(format!("export page read: {error}"))))
    }
}

impl Drop for ReadAhead {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Where a download stream is: the cursor of the next page (`None` once finished).
struct DownloadProgress {
    next: Option<Option<i64>>,
    /// The next page, already being read.
    read_ahead: Option<ReadAhead>,
    first: bool,
    proven: Option<ProvenState>,
    /// For the export metrics: when the first chunk was asked for, events written so far.
    started: std::time::Instant,
    events: u64,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_replica_that_loses_the_race_to_write_the_link_key_uses_the_winners() {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("link-signing-key");
        let winner = vec![7u8; LINK_KEY_BYTES];
        assert_eq!(
            keep_link_key_in_file(&path, winner.clone()).expect("the first write"),
            winner
        );
        // The loser found no file, then made a key of its own after the winner wrote one:
        // it must come back with the winner's key and leave the file as it was.
        let written = std::fs::read(&path).expect("read the key file");
        let loser = vec![9u8; LINK_KEY_BYTES];
        assert_eq!(
            keep_link_key_in_file(&path, loser).expect("the losing write"),
            winner
        );
        assert_eq!(std::fs::read(&path).expect("read again"), written);
    }
}

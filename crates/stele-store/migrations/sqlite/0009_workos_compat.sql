-- WorkOS compatibility: deleting organizations that have events, `stripe_customer_id`,
-- and re-runnable CSV imports.

-- Every organization deleted with DELETE /organizations/{id}. Its events are purged, but
-- the chain anchor, Merkle tree hashes and signed checkpoints it leaves stay, and
-- `stele verify` keeps checking them; the id is never given to another organization.
CREATE TABLE deleted_organizations (
    id         TEXT PRIMARY KEY,
    tree_size  INTEGER NOT NULL,        -- events it had ever stored, purged ones included
    purged     INTEGER NOT NULL,        -- events the deletion purged
    deleted_at INTEGER NOT NULL
);

-- WorkOS's optional billing reference, stored and returned as given.
ALTER TABLE organizations ADD COLUMN stripe_customer_id TEXT;

-- Rows `stele import-events` has stored, by a key derived from the row's content (see
-- docs/migrating-from-workos.md), so importing a file again skips them.
CREATE TABLE imported_event_keys (
    organization_id TEXT NOT NULL,
    import_key      BLOB NOT NULL,
    event_id        TEXT NOT NULL,
    PRIMARY KEY (organization_id, import_key)
) WITHOUT ROWID;

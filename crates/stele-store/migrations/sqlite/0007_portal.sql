-- Admin Portal: links generated for a customer's IT admin, and the portal sessions
-- redeemed from them. Only SHA-256 hashes of the secrets are kept, so a copy of the
-- database hands out neither links nor sessions. Both go with their organization.

-- A link works once: redeeming it deletes its row. Expired rows are swept when new links
-- are generated.
CREATE TABLE portal_links (
    token_hash       BLOB PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    intent           TEXT NOT NULL,
    external_user_id TEXT,
    return_url       TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX portal_links_by_user ON portal_links (organization_id, external_user_id);
CREATE INDEX portal_links_by_expiry ON portal_links (expires_at);

CREATE TABLE portal_sessions (
    token_hash       BLOB PRIMARY KEY,
    organization_id  TEXT NOT NULL REFERENCES organizations(id) ON DELETE CASCADE,
    intent           TEXT NOT NULL,
    external_user_id TEXT,
    return_url       TEXT,
    created_at       INTEGER NOT NULL,
    expires_at       INTEGER NOT NULL
) WITHOUT ROWID;

CREATE INDEX portal_sessions_by_user ON portal_sessions (organization_id, external_user_id);
CREATE INDEX portal_sessions_by_expiry ON portal_sessions (expires_at);

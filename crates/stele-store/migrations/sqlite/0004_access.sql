-- Scoped API keys and Stele's own activity log.

-- Space-separated scopes (`events:write events:read`); keys made before scopes existed
-- keep `admin`, which is everything.
ALTER TABLE api_keys ADD COLUMN scopes TEXT NOT NULL DEFAULT 'admin';
-- Space-separated organization ids the key is restricted to; empty: every organization.
ALTER TABLE api_keys ADD COLUMN organization_ids TEXT NOT NULL DEFAULT '';

-- The reserved organization that holds the activity log (every operator action), so its
-- events are chained, checkpointed and proven by the same machinery as a customer's. The
-- API never lists, changes, deletes or reuses it.
INSERT INTO organizations (id, name, external_id, metadata, domains, retention_period_in_days, created_at, updated_at)
VALUES ('org_00000000000000000000000000', 'Stele activity log', NULL, '{}', '[]', NULL,
        CAST(strftime('%s', 'now') AS INTEGER) * 1000, CAST(strftime('%s', 'now') AS INTEGER) * 1000)
ON CONFLICT (id) DO NOTHING;

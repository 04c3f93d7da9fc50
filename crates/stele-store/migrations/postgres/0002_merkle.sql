-- Per-organization Merkle trees (RFC 9162) and their signed checkpoints, as in SQLite's
-- migration 0003.

-- Hashes of perfect subtrees: level 8, 16, 24, … nodes of every complete subtree (written
-- by the checkpoint job), and level-0 leaf hashes of purged events whose 256-leaf block
-- has no level-8 node yet. Proofs read these instead of bodies that retention removed.
CREATE TABLE merkle_nodes (
    organization_id TEXT COLLATE "C" NOT NULL,
    level           INTEGER NOT NULL,
    node_index      BIGINT NOT NULL,
    hash            BYTEA NOT NULL,
    PRIMARY KEY (organization_id, level, node_index)
);

CREATE TABLE checkpoints (
    organization_id TEXT COLLATE "C" NOT NULL,
    tree_size       BIGINT NOT NULL,
    root_hash       BYTEA NOT NULL,
    note            TEXT NOT NULL,      -- the C2SP signed note, exactly as signed
    key_id          TEXT NOT NULL,      -- hex key id of the signer
    created_at      BIGINT NOT NULL,
    PRIMARY KEY (organization_id, tree_size)
);

-- Every key that has signed checkpoints; never deleted, so rotation keeps old
-- checkpoints verifiable.
CREATE TABLE signing_keys (
    key_id       TEXT PRIMARY KEY,
    verifier_key TEXT NOT NULL,         -- <name>+<key id>+<base64 key>
    created_at   BIGINT NOT NULL
);

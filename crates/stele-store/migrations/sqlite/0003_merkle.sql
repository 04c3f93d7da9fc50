-- Per-organization Merkle trees (RFC 9162) and their signed checkpoints.

-- Hashes of perfect subtrees: level 8, 16, 24, … nodes of every complete subtree (written
-- by the checkpoint job), and level-0 leaf hashes of purged events whose 256-leaf block
-- has no level-8 node yet. Proofs read these instead of bodies that retention removed.
CREATE TABLE merkle_nodes (
    organization_id TEXT NOT NULL,
    level           INTEGER NOT NULL,
    node_index      INTEGER NOT NULL,
    hash            BLOB NOT NULL,
    PRIMARY KEY (organization_id, level, node_index)
) WITHOUT ROWID;

CREATE TABLE checkpoints (
    organization_id TEXT NOT NULL,
    tree_size       INTEGER NOT NULL,
    root_hash       BLOB NOT NULL,
    note            TEXT NOT NULL,      -- the C2SP signed note, exactly as signed
    key_id          TEXT NOT NULL,      -- hex key id of the signer
    created_at      INTEGER NOT NULL,
    PRIMARY KEY (organization_id, tree_size)
) WITHOUT ROWID;

-- Every key that has signed checkpoints; never deleted, so rotation keeps old
-- checkpoints verifiable.
CREATE TABLE signing_keys (
    key_id       TEXT PRIMARY KEY,
    verifier_key TEXT NOT NULL,         -- <name>+<key id>+<base64 key>
    created_at   INTEGER NOT NULL
);

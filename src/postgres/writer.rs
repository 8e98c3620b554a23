//! The schema, the writer lock and the fencing epoch, as SQL.
//!
//! Every key of every node lives in one table, `lightfilter_kv`, keyed by node, namespaces
//! and key. `lightfilter_writer` holds one row per node: its network, its fencing epoch, and
//! who became its writer and when.
//!
//! A process becomes a node's writer by taking the session-level advisory lock named for the
//! node ([`lock_key`]) and then raising the node's epoch by one in a committed transaction. Each
//! write is a single statement that locks the node's row (`FOR SHARE`) and writes only where
//! the epoch is still the one this process raised it to: a process that lost its session, and
//! with it the lock, cannot commit once another process has taken over, whatever connection it
//! writes on (the new writer's raise waits for writes in flight and fails every later one).

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::PublicKey;

/// Creates the tables (under a transaction-level advisory lock, so that two processes creating
/// them at once do not collide).
pub(super) const SCHEMA: &str = "
BEGIN;
SELECT pg_advisory_xact_lock(7310309178440744960);
CREATE TABLE IF NOT EXISTS lightfilter_kv (
    node_id text NOT NULL,
    primary_namespace text NOT NULL,
    secondary_namespace text NOT NULL,
    key text NOT NULL,
    value bytea NOT NULL,
    PRIMARY KEY (node_id, primary_namespace, secondary_namespace, key)
);
CREATE TABLE IF NOT EXISTS lightfilter_writer (
    node_id text PRIMARY KEY,
    network text NOT NULL,
    epoch bigint NOT NULL,
    holder text NOT NULL,
    since timestamptz NOT NULL
);
COMMIT;";

/// Takes the node's writer lock if it is free: `(locked)`.
pub(super) const TRY_LOCK: &str = "SELECT pg_try_advisory_lock($1)";

/// Who holds the node's writer lock: the holder on record, since when, and the address its
/// session comes from (`$1` node id, `$2` lock key).
pub(super) const HOLDER: &str = "
SELECT w.holder, to_char(w.since AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || ' UTC',
       (SELECT host(a.client_addr) FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid::bigint = (($2::bigint >> 32) & 4294967295)
           AND l.objid::bigint = ($2::bigint & 4294967295)
         LIMIT 1)
FROM (SELECT 1) AS one LEFT JOIN lightfilter_writer w ON w.node_id = $1";

/// Raises the node's epoch (creating its row with epoch 1): `(epoch, network)`. Run while
/// holding the lock.
pub(super) const RAISE_EPOCH: &str = "
INSERT INTO lightfilter_writer (node_id, network, epoch, holder, since)
VALUES ($1, $2, 1, $3, now())
ON CONFLICT (node_id) DO UPDATE
    SET epoch = lightfilter_writer.epoch + 1, holder = EXCLUDED.holder, since = now()
RETURNING epoch, network";

/// The node's current epoch (`$1` node id).
pub(super) const EPOCH: &str = "SELECT epoch FROM lightfilter_writer WHERE node_id = $1";

/// Writes a key if the epoch is still `$2`: one row affected, or none when fenced.
pub(super) const WRITE: &str = "
WITH fence AS (
    SELECT 1 FROM lightfilter_writer WHERE node_id = $1 AND epoch = $2 FOR SHARE
)
INSERT INTO lightfilter_kv (node_id, primary_namespace, secondary_namespace, key, value)
SELECT $1, $3, $4, $5, $6 FROM fence
ON CONFLICT (node_id, primary_namespace, secondary_namespace, key)
    DO UPDATE SET value = EXCLUDED.value";

/// Removes a key if the epoch is still `$2`: `(fenced_ok)`, true unless fenced.
pub(super) const REMOVE: &str = "
WITH fence AS (
    SELECT 1 FROM lightfilter_writer WHERE node_id = $1 AND epoch = $2 FOR SHARE
), removed AS (
    DELETE FROM lightfilter_kv
    WHERE EXISTS (SELECT 1 FROM fence) AND node_id = $1 AND primary_namespace = $3
      AND secondary_namespace = $4 AND key = $5
)
SELECT EXISTS (SELECT 1 FROM fence)";

/// A key's value.
pub(super) const READ: &str = "
SELECT value FROM lightfilter_kv
WHERE node_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3 AND key = $4";

/// The keys of a namespace.
pub(super) const LIST: &str = "
SELECT key FROM lightfilter_kv
WHERE node_id = $1 AND primary_namespace = $2 AND secondary_namespace = $3";

/// Every key of the node.
pub(super) const LIST_ALL: &str = "
SELECT primary_namespace, secondary_namespace, key FROM lightfilter_kv WHERE node_id = $1";

/// The advisory lock named for `node_id`: the first 8 bytes of
/// SHA-256(`lightfilter writer <node id>`).
pub fn lock_key(node_id: &PublicKey) -> i64 {
    let hash = sha256::Hash::hash(format!("lightfilter writer {node_id}").as_bytes());
    let mut first = [0u8; 8];
    first.copy_from_slice(&hash.to_byte_array()[..8]);
    i64::from_be_bytes(first)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    #[test]
    fn each_node_has_its_own_lock() {
        let node = |byte| {
            PublicKey::from_secret_key(
                &Secp256k1::new(),
                &SecretKey::from_slice(&[byte; 32]).unwrap(),
            )
        };
        assert_eq!(lock_key(&node(1)), lock_key(&node(1)));
        assert_ne!(lock_key(&node(1)), lock_key(&node(2)));
    }
}

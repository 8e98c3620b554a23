//! The chain database: one SQLite file holding what the chain source learns from the network
//! (headers, filters, pending broadcasts, banned peers), opened once and shared by the stores that read and
//! write its tables.
//!
//! Writes of one batch of engine events go through a single transaction, committed with
//! `synchronous=FULL` in WAL mode: a header is durable before any listener can be told about
//! its block, so a crash never leaves a listener pointing at a block the store forgot.

use std::path::Path;
use std::sync::{Mutex, MutexGuard};

use bitcoin::Network;
use rusqlite::{Connection, OptionalExtension, Transaction};

use super::error::StoreError;

/// `cache_size` of the reading connection; SQLite reads a negative value as KiB: 512 KiB.
const READER_CACHE_SIZE: i64 = -512;

/// Schema version written to `meta`; bumped whenever the schema changes (a table added or
/// reshaped): a database already at this version is opened without running the schema.
/// Version 3 added `broadcast_settlements`, version 4 `banned_peers`.
const SCHEMA_VERSION: i64 = 4;

/// Moves headers from the version 1 layout (all headers by hash, active chain as hashes by
/// height) into the active-chain and stale-header tables, in the same transaction that
/// creates them.
const MIGRATE_FROM_V1: &str = "
INSERT OR IGNORE INTO chain (height, hash, header, chainwork)
    SELECT a.height, a.hash, h.header, h.chainwork
    FROM active_chain a JOIN headers h ON h.hash = a.hash;
INSERT OR IGNORE INTO stale_headers (hash, height, header, chainwork)
    SELECT hash, height, header, chainwork FROM headers
    WHERE hash NOT IN (SELECT hash FROM active_chain);
DROP TABLE active_chain;
DROP TABLE headers;
";

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS chain (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    header BLOB NOT NULL,
    chainwork BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS chain_hash ON chain(hash);
CREATE TABLE IF NOT EXISTS stale_headers (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    header BLOB NOT NULL,
    chainwork BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS stale_headers_height ON stale_headers(height);
CREATE TABLE IF NOT EXISTS filters (
    height INTEGER PRIMARY KEY,
    hash BLOB NOT NULL,
    filter BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS pending_broadcasts (
    txid BLOB PRIMARY KEY,
    tx BLOB NOT NULL,
    added_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS broadcast_settlements (
    txid BLOB NOT NULL,
    block BLOB NOT NULL,
    height INTEGER NOT NULL,
    PRIMARY KEY (txid, block)
);
CREATE TABLE IF NOT EXISTS banned_peers (
    address TEXT PRIMARY KEY,
    until INTEGER NOT NULL,
    reason TEXT NOT NULL
);
";

/// The chain database, shared by the stores: one connection writes, another reads. In WAL
/// mode a reader sees the last committed state and never waits for a write in progress, so
/// listeners reading headers and filters do not queue behind the batch being stored.
#[derive(Debug)]
pub struct ChainDb {
    writer: Mutex<Connection>,
    reader: Mutex<Connection>,
}

impl ChainDb {
    /// Opens (creating if needed) the chain database at `path` for `network`. A database made
    /// for another network is refused without being modified.
    pub fn open(path: &Path, network: Network) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        let has_meta: bool = conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'meta')",
            [],
            |row| row.get(0),
        )?;
        let meta_text = |key: &str| -> Result<Option<String>, StoreError> {
            if !has_meta {
                return Ok(None);
            }
            Ok(conn
                .query_row(
                    "SELECT CAST(value AS TEXT) FROM meta WHERE key = ?1",
                    [key],
                    |row| row.get(0),
                )
                .optional()?)
        };
        let stored_network = meta_text("network")?;
        if let Some(stored) = &stored_network {
            if stored != network.to_core_arg() {
                return Err(StoreError::WrongNetwork {
                    path: path.to_path_buf(),
                    stored: stored.clone(),
                    expected: network.to_core_arg().to_string(),
                });
            }
        }
        let stored_version = meta_text("schema_version")?;
        // A database that is already current is not written to on opening: a start that is
        // refused later leaves it exactly as it was.
        let current = stored_network.is_some()
            && stored_version.as_deref() == Some(SCHEMA_VERSION.to_string().as_str());
        let mut conn = conn;
        if !current {
            Self::create_or_migrate(&mut conn, network)?;
        }
        let reader = Connection::open(path)?;
        reader.busy_timeout(std::time::Duration::from_secs(5))?;
        // The reader's page cache starts over after every commit by the writer, so a large one
        // would only hold memory.
        reader.pragma_update(None, "cache_size", READER_CACHE_SIZE)?;
        Ok(Self {
            writer: Mutex::new(conn),
            reader: Mutex::new(reader),
        })
    }

    /// Creates the tables of a new database, or brings an older one to the current schema.
    fn create_or_migrate(conn: &mut Connection, network: Network) -> Result<(), StoreError> {
        let tx = conn.transaction()?;
        let has_v1_headers: bool = tx.query_row(
            "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'active_chain')",
            [],
            |row| row.get(0),
        )?;
        tx.execute_batch(SCHEMA)?;
        if has_v1_headers {
            tx.execute_batch(MIGRATE_FROM_V1)?;
        }
        tx.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('network', ?1)",
            [network.to_core_arg()],
        )?;
        tx.execute(
            "INSERT OR REPLACE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Sets how long a write waits for another process's lock before failing (tests make
    /// writes fail fast with it).
    #[cfg(test)]
    pub(crate) fn set_busy_timeout(&self, timeout: std::time::Duration) -> Result<(), StoreError> {
        self.writer
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .busy_timeout(timeout)?;
        Ok(())
    }

    /// Locks the connection for reads. Each statement sees the last committed state; reads
    /// that must agree with each other are one statement.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.reader
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` inside one transaction and commits it durably.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.writer.lock().unwrap_or_else(|p| p.into_inner());
        let tx = conn.transaction()?;
        let value = write(&tx)?;
        tx.commit()?;
        Ok(value)
    }
}

/// Reads a value from the `meta` table.
pub(crate) fn meta_get(conn: &Connection, key: &str) -> Result<Option<Vec<u8>>, StoreError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |row| {
            row.get(0)
        })
        .optional()?)
}

/// Writes a value to the `meta` table.
pub(crate) fn meta_set(conn: &Connection, key: &str, value: &[u8]) -> Result<(), StoreError> {
    conn.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)",
        rusqlite::params![key, value],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::header_store::HeaderStore;
    use bitcoin::consensus::serialize;
    use bitcoin::hashes::Hash;
    use std::sync::Arc;

    #[test]
    fn headers_stored_in_the_first_layout_survive_the_upgrade() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chain.sqlite");
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).header;
        let mut stale = genesis;
        stale.nonce += 1;
        {
            let conn = Connection::open(&path).expect("open");
            conn.execute_batch(
                "CREATE TABLE meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
                 INSERT INTO meta VALUES ('network', 'regtest'), ('schema_version', 1);
                 CREATE TABLE headers (hash BLOB PRIMARY KEY, height INTEGER NOT NULL,
                     header BLOB NOT NULL, chainwork BLOB NOT NULL);
                 CREATE TABLE active_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);",
            )
            .expect("first layout");
            for header in [genesis, stale] {
                conn.execute(
                    "INSERT INTO headers VALUES (?1, 0, ?2, ?3)",
                    rusqlite::params![
                        header.block_hash().to_byte_array().as_slice(),
                        serialize(&header),
                        header.work().to_be_bytes().as_slice()
                    ],
                )
                .expect("header");
            }
            conn.execute(
                "INSERT INTO active_chain VALUES (0, ?1)",
                [genesis.block_hash().to_byte_array().as_slice()],
            )
            .expect("active");
        }
        let db = Arc::new(ChainDb::open(&path, Network::Regtest).expect("upgraded"));
        let headers = HeaderStore::new(db.clone());
        assert_eq!(headers.tip().unwrap().map(|h| h.header), Some(genesis));
        assert!(headers.is_active(&genesis.block_hash()).unwrap());
        let old = headers
            .get(&stale.block_hash())
            .unwrap()
            .expect("stale kept");
        assert_eq!((old.header, old.height), (stale, 0));
        assert!(!headers.is_active(&stale.block_hash()).unwrap());
        let version: i64 = db
            .conn()
            .query_row(
                "SELECT value FROM meta WHERE key = 'schema_version'",
                [],
                |row| row.get(0),
            )
            .unwrap();
        assert_eq!(version, SCHEMA_VERSION);
        drop(headers);
        drop(db);
        // Opening again is a no-op.
        let db = Arc::new(ChainDb::open(&path, Network::Regtest).expect("reopened"));
        assert_eq!(HeaderStore::new(db).len().unwrap(), 2);
    }
}

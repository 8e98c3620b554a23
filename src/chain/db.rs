//! The chain database: one SQLite file holding what the chain source learns from the network
//! (headers, filters, pending broadcasts), opened once and shared by the stores that read and
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

/// Schema version written to `meta`; bumped when the tables change shape.
const SCHEMA_VERSION: i64 = 1;

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS headers (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    header BLOB NOT NULL,
    chainwork BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS headers_height ON headers(height);
CREATE TABLE IF NOT EXISTS active_chain (height INTEGER PRIMARY KEY, hash BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS filters (
    hash BLOB PRIMARY KEY,
    height INTEGER NOT NULL,
    filter BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS filters_height ON filters(height);
CREATE TABLE IF NOT EXISTS pending_broadcasts (
    txid BLOB PRIMARY KEY,
    tx BLOB NOT NULL,
    added_at INTEGER NOT NULL
);
";

/// The shared connection to the chain database.
#[derive(Debug)]
pub struct ChainDb {
    conn: Mutex<Connection>,
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
        let stored_network: Option<String> = if has_meta {
            conn.query_row(
                "SELECT CAST(value AS TEXT) FROM meta WHERE key = 'network'",
                [],
                |row| row.get(0),
            )
            .optional()?
        } else {
            None
        };
        if let Some(stored) = stored_network {
            if stored != network.to_core_arg() {
                return Err(StoreError::WrongNetwork {
                    path: path.to_path_buf(),
                    stored,
                    expected: network.to_core_arg().to_string(),
                });
            }
        }
        conn.execute_batch(SCHEMA)?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('network', ?1)",
            [network.to_core_arg()],
        )?;
        conn.execute(
            "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?1)",
            [SCHEMA_VERSION],
        )?;
        Ok(Self {
            conn: Mutex::new(conn),
        })
    }

    /// Locks the connection for reads.
    pub(crate) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Runs `write` inside one transaction and commits it durably.
    pub(crate) fn write<T>(
        &self,
        write: impl FnOnce(&Transaction<'_>) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let mut conn = self.conn();
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

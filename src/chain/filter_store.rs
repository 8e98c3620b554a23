//! FilterStore: verified BIP 158 basic filters of the blocks the listeners have not consumed
//! yet, and of the most recent consumed ones (kept for re-checks when the watch set grows).
//!
//! Filters are only written after the compact-filter engine checked them against the
//! filter-header chain agreed by its peers, and only for blocks of the active chain: one row
//! per height (a reorg replaces the row), so a filter is one b-tree insert. The store is
//! bounded from below: filters more than [`FILTERS_KEPT_BELOW_CONSUMED`] blocks under what
//! every listener consumed are pruned.

use std::sync::Arc;

use bitcoin::bip158::BlockFilter;
use bitcoin::hashes::Hash;
use bitcoin::BlockHash;
use rusqlite::{params, Connection, OptionalExtension};

use super::db::{meta_get, meta_set, ChainDb};
use super::error::StoreError;
use super::header_store::decode_hash;

/// Filters are kept this many blocks below the listeners' consumed height.
pub const FILTERS_KEPT_BELOW_CONSUMED: u32 = 144;

/// Persistent filter storage over the chain database.
#[derive(Debug, Clone)]
pub struct FilterStore {
    db: Arc<ChainDb>,
}

impl FilterStore {
    /// A filter store over `db`.
    pub fn new(db: Arc<ChainDb>) -> Self {
        Self { db }
    }

    /// The stored filter of block `hash` at `height`.
    pub fn get(&self, height: u32, hash: &BlockHash) -> Result<Option<BlockFilter>, StoreError> {
        let content: Option<Vec<u8>> = self
            .db
            .conn()
            .prepare_cached("SELECT filter FROM filters WHERE height = ?1 AND hash = ?2")?
            .query_row(params![height, hash.to_byte_array().as_slice()], |row| {
                row.get(0)
            })
            .optional()?;
        Ok(content.map(|content| BlockFilter::new(&content)))
    }

    /// The stored filters with heights in `from..=to`, in height order, with their blocks'
    /// hashes.
    pub fn range(&self, from: u32, to: u32) -> Result<Vec<(BlockHash, Vec<u8>)>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT hash, filter FROM filters WHERE height BETWEEN ?1 AND ?2 ORDER BY height",
        )?;
        let rows = stmt.query_map(params![from, to], |row| {
            Ok((row.get::<_, Vec<u8>>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut filters = Vec::new();
        for row in rows {
            let (hash, filter) = row?;
            filters.push((decode_hash(&hash)?, filter));
        }
        Ok(filters)
    }

    /// Whether the filter of block `hash` at `height` is stored.
    pub fn contains(&self, height: u32, hash: &BlockHash) -> Result<bool, StoreError> {
        contains(&self.db.conn(), height, hash)
    }

    /// Number of stored filters.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT COUNT(*) FROM filters", [], |row| row.get(0))?)
    }

    /// Whether no filter is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// The verified tip recorded by the last write: the highest active block such that every
    /// active block from the listeners' starting point up to it has a stored, verified filter.
    pub fn verified_tip(&self) -> Result<Option<(u32, BlockHash)>, StoreError> {
        verified_tip(&self.db.conn())
    }
}

/// Stores verified filters inside an open transaction, with its statements prepared once for
/// the whole batch: a first sync stores the filter of every block through it.
///
/// Whether a block is active is read first and the filter inserted by a second, single-row
/// statement: SQLite runs an `INSERT ... SELECT` under a statement journal, which cost as much
/// as the insert itself.
pub(crate) struct FilterWriter<'c> {
    active_hash: rusqlite::CachedStatement<'c>,
    insert: rusqlite::CachedStatement<'c>,
}

impl<'c> FilterWriter<'c> {
    /// A writer over `conn`, which must be inside a transaction.
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            active_hash: conn.prepare_cached("SELECT hash FROM chain WHERE height = ?1")?,
            insert: conn.prepare_cached(
                "INSERT OR REPLACE INTO filters (height, hash, filter) VALUES (?1, ?2, ?3)",
            )?,
        })
    }

    /// Stores the verified filter of block `hash` if it is the active-chain block at
    /// `height`, replacing whatever was stored at that height. Returns whether it was stored.
    pub(crate) fn put_if_active(
        &mut self,
        hash: &BlockHash,
        height: u32,
        content: &[u8],
    ) -> Result<bool, StoreError> {
        let hash_bytes = hash.to_byte_array();
        let active = self
            .active_hash
            .query_row([height], |row| {
                Ok(row.get_ref(0)?.as_blob()? == hash_bytes.as_slice())
            })
            .optional()?
            .unwrap_or(false);
        if active {
            self.insert
                .execute(params![height, hash_bytes.as_slice(), content])?;
        }
        Ok(active)
    }
}

/// Deletes filters of blocks below `height` inside an open transaction.
pub(crate) fn prune_below(conn: &Connection, height: u32) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM filters WHERE height < ?1", [height])?)
}

/// The lowest height in `from..=to` whose active block has no stored filter, inside an open
/// transaction.
pub(crate) fn first_missing(
    conn: &Connection,
    from: u32,
    to: u32,
) -> Result<Option<u32>, StoreError> {
    Ok(conn
        .prepare_cached(
            "SELECT chain.height FROM chain LEFT JOIN filters \
             ON filters.height = chain.height AND filters.hash = chain.hash \
             WHERE chain.height BETWEEN ?1 AND ?2 AND filters.height IS NULL \
             ORDER BY chain.height LIMIT 1",
        )?
        .query_row(params![from, to], |row| row.get(0))
        .optional()?)
}

pub(crate) fn contains(
    conn: &Connection,
    height: u32,
    hash: &BlockHash,
) -> Result<bool, StoreError> {
    Ok(conn
        .prepare_cached("SELECT EXISTS (SELECT 1 FROM filters WHERE height = ?1 AND hash = ?2)")?
        .query_row(params![height, hash.to_byte_array().as_slice()], |row| {
            row.get(0)
        })?)
}

pub(crate) fn verified_tip(conn: &Connection) -> Result<Option<(u32, BlockHash)>, StoreError> {
    match meta_get(conn, "verified_tip")? {
        Some(bytes) if bytes.len() == 36 => {
            let height = u32::from_be_bytes(bytes[..4].try_into().expect("4 bytes"));
            Ok(Some((height, decode_hash(&bytes[4..])?)))
        }
        Some(_) => Err(StoreError::Corrupt("verified tip record".into())),
        None => Ok(None),
    }
}

pub(crate) fn set_verified_tip(
    conn: &Connection,
    height: u32,
    hash: &BlockHash,
) -> Result<(), StoreError> {
    let mut bytes = height.to_be_bytes().to_vec();
    bytes.extend_from_slice(hash.as_byte_array());
    meta_set(conn, "verified_tip", &bytes)
}

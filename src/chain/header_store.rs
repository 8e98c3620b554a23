//! HeaderStore: every header the chain source has accepted, by hash, with its height and
//! chainwork, plus the active chain by height.
//!
//! Headers that leave the active chain in a reorg stay resolvable by hash (they are only pruned
//! far below the tip), so `synchronize_listeners` can walk back from a listener's stale block to
//! the fork point, also after a restart.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Work};
use rusqlite::{params, Connection, OptionalExtension};

use super::db::ChainDb;
use super::error::StoreError;

/// Stale headers are kept at least this many blocks below the tip.
pub const STALE_HEADERS_KEPT: u32 = 1_008;

/// A header with its position and accumulated work.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredHeader {
    /// The block header.
    pub header: Header,
    /// Height of the block.
    pub height: u32,
    /// Total work of the chain ending in this block, as counted from the first stored header.
    pub chainwork: Work,
}

impl StoredHeader {
    /// The block's hash.
    pub fn block_hash(&self) -> BlockHash {
        self.header.block_hash()
    }
}

/// A change to the header chain, as reported by the compact-filter engine.
#[derive(Debug, Clone)]
pub enum HeaderChange {
    /// A header extended the active chain.
    Connected {
        /// Height of the new block.
        height: u32,
        /// Its header.
        header: Header,
    },
    /// A header extended a fork that does not (yet) have the most work.
    Fork {
        /// Height of the fork block.
        height: u32,
        /// Its header.
        header: Header,
    },
    /// The active chain switched branches.
    Reorganized {
        /// Blocks of the new active branch, in height order.
        accepted: Vec<(u32, Header)>,
        /// Blocks that left the active chain.
        disconnected: Vec<(u32, Header)>,
    },
}

/// Persistent header storage over the chain database.
#[derive(Debug, Clone)]
pub struct HeaderStore {
    db: Arc<ChainDb>,
}

impl HeaderStore {
    /// A header store over `db`.
    pub fn new(db: Arc<ChainDb>) -> Self {
        Self { db }
    }

    /// The header with `hash`, active or stale.
    pub fn get(&self, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
        get(&self.db.conn(), hash)
    }

    /// The hash of the active-chain block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        hash_at(&self.db.conn(), height)
    }

    /// The header of the active-chain block at `height`.
    pub fn active_at(&self, height: u32) -> Result<Option<StoredHeader>, StoreError> {
        let conn = self.db.conn();
        match hash_at(&conn, height)? {
            Some(hash) => get(&conn, &hash),
            None => Ok(None),
        }
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        let conn = self.db.conn();
        Ok(match get(&conn, hash)? {
            Some(stored) => hash_at(&conn, stored.height)? == Some(*hash),
            None => false,
        })
    }

    /// The tip of the active chain, if any header is stored.
    pub fn tip(&self) -> Result<Option<StoredHeader>, StoreError> {
        let conn = self.db.conn();
        let hash: Option<Vec<u8>> = conn
            .query_row(
                "SELECT hash FROM active_chain ORDER BY height DESC LIMIT 1",
                [],
                |row| row.get(0),
            )
            .optional()?;
        match hash {
            Some(bytes) => get(&conn, &decode_hash(&bytes)?),
            None => Ok(None),
        }
    }

    /// The lowest height of the active chain that is stored.
    pub fn lowest_active_height(&self) -> Result<Option<u32>, StoreError> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT MIN(height) FROM active_chain", [], |row| {
                row.get::<_, Option<u32>>(0)
            })?)
    }

    /// Active-chain headers with heights in `from..=to`, in height order.
    pub fn active_range(&self, from: u32, to: u32) -> Result<Vec<(u32, Header)>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT a.height, h.header FROM active_chain a JOIN headers h ON h.hash = a.hash
             WHERE a.height BETWEEN ?1 AND ?2 ORDER BY a.height",
        )?;
        let rows = stmt.query_map(params![from, to], |row| {
            Ok((row.get::<_, u32>(0)?, row.get::<_, Vec<u8>>(1)?))
        })?;
        let mut headers = Vec::new();
        for row in rows {
            let (height, bytes) = row?;
            headers.push((height, decode_header(&bytes)?));
        }
        Ok(headers)
    }

    /// Number of stored headers, active and stale.
    pub fn len(&self) -> Result<u64, StoreError> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT COUNT(*) FROM headers", [], |row| row.get(0))?)
    }

    /// Whether no header is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Applies `change` inside an open transaction.
/// Returns the headers it stored (with their chainwork), for callers that cache them.
pub(crate) fn apply(
    conn: &Connection,
    change: &HeaderChange,
) -> Result<Vec<StoredHeader>, StoreError> {
    let mut stored = Vec::new();
    match change {
        HeaderChange::Connected { height, header } => {
            stored.extend(insert(conn, *height, header)?);
            set_active(conn, *height, &header.block_hash())?;
        }
        HeaderChange::Fork { height, header } => {
            stored.extend(insert(conn, *height, header)?);
        }
        HeaderChange::Reorganized {
            accepted,
            disconnected,
        } => {
            let lowest = accepted
                .iter()
                .chain(disconnected.iter())
                .map(|(height, _)| *height)
                .min();
            if let Some(lowest) = lowest {
                conn.execute("DELETE FROM active_chain WHERE height >= ?1", [lowest])?;
            }
            for (height, header) in disconnected {
                stored.extend(insert(conn, *height, header)?);
            }
            let mut accepted = accepted.clone();
            accepted.sort_by_key(|(height, _)| *height);
            for (height, header) in &accepted {
                stored.extend(insert(conn, *height, header)?);
                set_active(conn, *height, &header.block_hash())?;
            }
        }
    }
    Ok(stored)
}

/// Deletes stale headers below `height`; active-chain headers are kept.
pub(crate) fn prune_stale_below(conn: &Connection, height: u32) -> Result<usize, StoreError> {
    Ok(conn.execute(
        "DELETE FROM headers WHERE height < ?1
         AND hash NOT IN (SELECT hash FROM active_chain WHERE height < ?1)",
        [height],
    )?)
}

fn insert(
    conn: &Connection,
    height: u32,
    header: &Header,
) -> Result<Option<StoredHeader>, StoreError> {
    let hash = header.block_hash();
    if get(conn, &hash)?.is_some() {
        return Ok(None);
    }
    let chainwork = match get(conn, &header.prev_blockhash)? {
        Some(parent) if parent.height + 1 == height => parent.chainwork + header.work(),
        Some(_) | None => {
            let any_stored: bool =
                conn.query_row("SELECT EXISTS (SELECT 1 FROM headers)", [], |row| {
                    row.get(0)
                })?;
            if any_stored {
                return Err(StoreError::Disconnected { hash, height });
            }
            // The first header after a checkpoint: its ancestors' work is unknown, and only
            // differences in chainwork between our own headers are ever compared.
            header.work()
        }
    };
    conn.prepare_cached(
        "INSERT INTO headers (hash, height, header, chainwork) VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hash.to_byte_array().as_slice(),
        height,
        serialize(header),
        chainwork.to_be_bytes().as_slice()
    ])?;
    Ok(Some(StoredHeader {
        header: *header,
        height,
        chainwork,
    }))
}

fn set_active(conn: &Connection, height: u32, hash: &BlockHash) -> Result<(), StoreError> {
    conn.prepare_cached("INSERT OR REPLACE INTO active_chain (height, hash) VALUES (?1, ?2)")?
        .execute(params![height, hash.to_byte_array().as_slice()])?;
    Ok(())
}

pub(crate) fn get(conn: &Connection, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
    let row = conn
        .prepare_cached("SELECT height, header, chainwork FROM headers WHERE hash = ?1")?
        .query_row([hash.to_byte_array().as_slice()], |row| {
            Ok((
                row.get::<_, u32>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    match row {
        Some((height, header, chainwork)) => {
            let work: [u8; 32] = chainwork
                .try_into()
                .map_err(|_| StoreError::Corrupt(format!("chainwork of block {hash}")))?;
            Ok(Some(StoredHeader {
                header: decode_header(&header)?,
                height,
                chainwork: Work::from_be_bytes(work),
            }))
        }
        None => Ok(None),
    }
}

pub(crate) fn hash_at(conn: &Connection, height: u32) -> Result<Option<BlockHash>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM active_chain WHERE height = ?1")?
        .query_row([height], |row| row.get(0))
        .optional()?;
    bytes.map(|bytes| decode_hash(&bytes)).transpose()
}

pub(crate) fn decode_hash(bytes: &[u8]) -> Result<BlockHash, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("block hash of wrong length".into()))?;
    Ok(BlockHash::from_byte_array(array))
}

fn decode_header(bytes: &[u8]) -> Result<Header, StoreError> {
    deserialize(bytes).map_err(|err| StoreError::Corrupt(format!("header: {err}")))
}

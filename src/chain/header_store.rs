//! HeaderStore: every header the chain source has accepted, with its height and chainwork.
//!
//! The active chain is one table keyed by height (a block is one row appended, and a look-up
//! with the height LDK hints at is one seek), indexed by hash. Headers that leave the active
//! chain in a reorg, and forks that never had the most work, move to a table of stale headers
//! and stay resolvable by hash (they are only pruned far below the tip), so
//! `synchronize_listeners` can walk back from a listener's stale block to the fork point, also
//! after a restart.

use std::sync::Arc;

use bitcoin::block::Header;
use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{BlockHash, Work};
use rusqlite::{params, Connection, OptionalExtension};

use super::checkpoints::Checkpoint;
use super::db::{meta_get, meta_set, ChainDb};
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

    /// The header with `hash`, looked up first at `height` on the active chain (one seek when
    /// the hint is right), then by hash.
    pub fn get_near(
        &self,
        hash: &BlockHash,
        height: Option<u32>,
    ) -> Result<Option<StoredHeader>, StoreError> {
        let conn = self.db.conn();
        if let Some(height) = height {
            if let Some((active, header)) = active_header_at(&conn, height)? {
                if active == *hash {
                    return Ok(Some(header));
                }
            }
        }
        get(&conn, hash)
    }

    /// The hash of the active-chain block at `height`.
    pub fn hash_at(&self, height: u32) -> Result<Option<BlockHash>, StoreError> {
        hash_at(&self.db.conn(), height)
    }

    /// The header of the active-chain block at `height`.
    pub fn active_at(&self, height: u32) -> Result<Option<StoredHeader>, StoreError> {
        Ok(active_header_at(&self.db.conn(), height)?.map(|(_, header)| header))
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> Result<bool, StoreError> {
        Ok(active_by_hash(&self.db.conn(), hash)?.is_some())
    }

    /// The tip of the active chain, if any header is stored.
    pub fn tip(&self) -> Result<Option<StoredHeader>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT height, hash, header, chainwork FROM chain ORDER BY height DESC LIMIT 1",
        )?;
        let mut rows = stmt.query([])?;
        match rows.next()? {
            Some(row) => Ok(Some(decode_row(row)?.1)),
            None => Ok(None),
        }
    }

    /// The lowest height of the active chain that is stored.
    pub fn lowest_active_height(&self) -> Result<Option<u32>, StoreError> {
        Ok(self
            .db
            .conn()
            .query_row("SELECT MIN(height) FROM chain", [], |row| {
                row.get::<_, Option<u32>>(0)
            })?)
    }

    /// Active-chain blocks with heights in `from..=to`, in height order, with their hashes and
    /// chainwork.
    pub fn active_stored_range(
        &self,
        from: u32,
        to: u32,
    ) -> Result<Vec<(BlockHash, StoredHeader)>, StoreError> {
        active_stored_range(&self.db.conn(), from, to)
    }

    /// Active-chain headers with heights in `from..=to`, in height order.
    pub fn active_range(&self, from: u32, to: u32) -> Result<Vec<(u32, Header)>, StoreError> {
        let conn = self.db.conn();
        let mut stmt = conn.prepare_cached(
            "SELECT height, header FROM chain WHERE height BETWEEN ?1 AND ?2 ORDER BY height",
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
        Ok(self.db.conn().query_row(
            "SELECT (SELECT COUNT(*) FROM chain) + (SELECT COUNT(*) FROM stale_headers)",
            [],
            |row| row.get(0),
        )?)
    }

    /// Whether no header is stored.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }
}

/// Writes header changes inside an open transaction, with the statement that appends a block
/// to the active chain prepared once for the whole batch: a first sync appends every header of
/// the chain through it.
pub(crate) struct HeaderWriter<'c> {
    conn: &'c Connection,
    append: rusqlite::CachedStatement<'c>,
}

impl<'c> HeaderWriter<'c> {
    /// A writer over `conn`, which must be inside a transaction.
    pub(crate) fn new(conn: &'c Connection) -> Result<Self, StoreError> {
        Ok(Self {
            conn,
            append: conn.prepare_cached(
                "INSERT INTO chain (height, hash, header, chainwork) VALUES (?1, ?2, ?3, ?4)
                 ON CONFLICT (height) DO NOTHING",
            )?,
        })
    }

    /// Applies `change`; see [`apply`].
    pub(crate) fn apply(
        &mut self,
        change: &HeaderChange,
        known: &dyn Fn(&BlockHash) -> Option<StoredHeader>,
    ) -> Result<Vec<(BlockHash, StoredHeader)>, StoreError> {
        apply(self.conn, &mut self.append, change, known)
    }
}

/// Applies `change` inside an open transaction, appending to the active chain with `append`
/// (see [`HeaderWriter::new`]).
///
/// `known` answers for headers already stored (in this transaction or before) without a
/// database read; it may miss, and the store is read then. During a sync nearly every parent
/// is the header stored just before, so extending the chain costs one statement.
/// Returns the headers it stored or made active (with their chainwork), for callers that
/// cache them.
fn apply(
    conn: &Connection,
    append: &mut rusqlite::Statement<'_>,
    change: &HeaderChange,
    known: &dyn Fn(&BlockHash) -> Option<StoredHeader>,
) -> Result<Vec<(BlockHash, StoredHeader)>, StoreError> {
    let mut stored: Vec<(BlockHash, StoredHeader)> = Vec::new();
    match change {
        HeaderChange::Connected { height, header } => {
            let parent = known(&header.prev_blockhash);
            stored.extend(connect(conn, append, *height, header, parent)?);
        }
        HeaderChange::Fork { height, header } => {
            let parent = known(&header.prev_blockhash);
            stored.extend(add_stale(conn, *height, header, parent)?);
        }
        HeaderChange::Reorganized {
            accepted,
            disconnected,
        } => {
            // The old branch leaves before the new one is placed: a new branch that does not
            // connect undoes the whole change.
            conn.execute_batch("SAVEPOINT reorganisation")?;
            match reorganize(conn, append, accepted, disconnected, known, &mut stored) {
                Ok(()) => conn.execute_batch("RELEASE reorganisation")?,
                Err(err) => {
                    conn.execute_batch("ROLLBACK TO reorganisation; RELEASE reorganisation")?;
                    return Err(err);
                }
            }
        }
    }
    Ok(stored)
}

/// Moves the active chain from the lowest height of `accepted` and `disconnected` up to the
/// stale headers and connects `accepted` in its place.
fn reorganize(
    conn: &Connection,
    append: &mut rusqlite::Statement<'_>,
    accepted: &[(u32, Header)],
    disconnected: &[(u32, Header)],
    known: &dyn Fn(&BlockHash) -> Option<StoredHeader>,
    stored: &mut Vec<(BlockHash, StoredHeader)>,
) -> Result<(), StoreError> {
    // Parents stored earlier in this same change are found here first.
    let lookup = |stored: &[(BlockHash, StoredHeader)], hash: &BlockHash| {
        stored
            .iter()
            .rev()
            .find(|(h, _)| h == hash)
            .map(|(_, header)| *header)
            .or_else(|| known(hash))
    };
    let lowest = accepted
        .iter()
        .chain(disconnected.iter())
        .map(|(height, _)| *height)
        .min();
    if let Some(lowest) = lowest {
        conn.execute(
            "INSERT OR IGNORE INTO stale_headers (hash, height, header, chainwork)
             SELECT hash, height, header, chainwork FROM chain WHERE height >= ?1",
            [lowest],
        )?;
        conn.execute("DELETE FROM chain WHERE height >= ?1", [lowest])?;
    }
    for (height, header) in disconnected {
        let parent = lookup(stored, &header.prev_blockhash);
        stored.extend(add_stale(conn, *height, header, parent)?);
    }
    let mut accepted = accepted.to_vec();
    accepted.sort_by_key(|(height, _)| *height);
    for (height, header) in &accepted {
        let parent = lookup(stored, &header.prev_blockhash);
        stored.extend(connect(conn, append, *height, header, parent)?);
    }
    Ok(())
}

/// Deletes stale headers below `height`; the active chain is kept whole.
pub(crate) fn prune_stale_below(conn: &Connection, height: u32) -> Result<usize, StoreError> {
    Ok(conn.execute("DELETE FROM stale_headers WHERE height < ?1", [height])?)
}

/// Makes `header` the active block at `height`. A different block stored there moves to the
/// stale headers. Returns the header unless it was the active block at `height` already.
fn connect(
    conn: &Connection,
    append: &mut rusqlite::Statement<'_>,
    height: u32,
    header: &Header,
    parent: Option<StoredHeader>,
) -> Result<Option<(BlockHash, StoredHeader)>, StoreError> {
    let hash = header.block_hash();
    let stored = match parent.filter(|parent| parent.height + 1 == height) {
        Some(parent) => StoredHeader {
            header: *header,
            height,
            chainwork: parent.chainwork + header.work(),
        },
        None => match get(conn, &hash)? {
            Some(known) => known,
            None => StoredHeader {
                header: *header,
                height,
                chainwork: chainwork_from_store(conn, height, header, hash)?,
            },
        },
    };
    let (hash_bytes, header_bytes, work_bytes) = (
        hash.to_byte_array(),
        header_bytes(header),
        stored.chainwork.to_be_bytes(),
    );
    let row = params![height, &hash_bytes[..], &header_bytes[..], &work_bytes[..]];
    let inserted = append.execute(row)?;
    if inserted == 0 {
        if hash_at(conn, height)? == Some(hash) {
            return Ok(None);
        }
        conn.prepare_cached(
            "INSERT OR IGNORE INTO stale_headers (hash, height, header, chainwork)
             SELECT hash, height, header, chainwork FROM chain WHERE height = ?1",
        )?
        .execute([height])?;
        conn.prepare_cached(
            "UPDATE chain SET hash = ?2, header = ?3, chainwork = ?4 WHERE height = ?1",
        )?
        .execute(row)?;
    }
    Ok(Some((hash, stored)))
}

/// Stores `header` as a stale header unless it is stored already.
fn add_stale(
    conn: &Connection,
    height: u32,
    header: &Header,
    parent: Option<StoredHeader>,
) -> Result<Option<(BlockHash, StoredHeader)>, StoreError> {
    let hash = header.block_hash();
    if get(conn, &hash)?.is_some() {
        return Ok(None);
    }
    let chainwork = match parent.filter(|parent| parent.height + 1 == height) {
        Some(parent) => parent.chainwork + header.work(),
        None => chainwork_from_store(conn, height, header, hash)?,
    };
    conn.prepare_cached(
        "INSERT OR IGNORE INTO stale_headers (hash, height, header, chainwork)
         VALUES (?1, ?2, ?3, ?4)",
    )?
    .execute(params![
        hash.to_byte_array().as_slice(),
        height,
        serialize(header),
        chainwork.to_be_bytes().as_slice()
    ])?;
    Ok(Some((
        hash,
        StoredHeader {
            header: *header,
            height,
            chainwork,
        },
    )))
}

/// `meta` key of the start point a chain was created after.
const CHAIN_START_KEY: &str = "chain_start";

/// The start point the stored chain was created after, if it does not start at genesis.
pub(crate) fn chain_start(conn: &Connection) -> Result<Option<Checkpoint>, StoreError> {
    let Some(bytes) = meta_get(conn, CHAIN_START_KEY)? else {
        return Ok(None);
    };
    if bytes.len() != 36 {
        return Err(StoreError::Corrupt(
            "the stored chain start has the wrong size".into(),
        ));
    }
    let height = u32::from_le_bytes(bytes[..4].try_into().expect("4 bytes"));
    let hash = BlockHash::from_slice(&bytes[4..]).expect("32 bytes");
    Ok(Some(Checkpoint { height, hash }))
}

/// Records that the chain starts after `start`, whose own header is not stored.
pub(crate) fn set_chain_start(conn: &Connection, start: &Checkpoint) -> Result<(), StoreError> {
    let mut bytes = start.height.to_le_bytes().to_vec();
    bytes.extend_from_slice(start.hash.as_byte_array());
    meta_set(conn, CHAIN_START_KEY, &bytes)
}

/// The chainwork of a header not stored yet, from its stored parent.
fn chainwork_from_store(
    conn: &Connection,
    height: u32,
    header: &Header,
    hash: BlockHash,
) -> Result<Work, StoreError> {
    match get(conn, &header.prev_blockhash)? {
        Some(parent) if parent.height + 1 == height => Ok(parent.chainwork + header.work()),
        // A block on the start point the chain was created after: its work counts from 0,
        // as the first header stored after it did.
        None if chain_start(conn)?.is_some_and(|start| {
            start.hash == header.prev_blockhash && start.height + 1 == height
        }) =>
        {
            Ok(header.work())
        }
        Some(_) | None => {
            let any_stored: bool = conn.query_row(
                "SELECT EXISTS (SELECT 1 FROM chain) OR EXISTS (SELECT 1 FROM stale_headers)",
                [],
                |row| row.get(0),
            )?;
            if any_stored {
                return Err(StoreError::Disconnected { hash, height });
            }
            // The first header after a checkpoint: its ancestors' work is unknown, and only
            // differences in chainwork between our own headers are ever compared.
            Ok(header.work())
        }
    }
}

/// The active-chain block at `height`: its hash and stored header.
pub(crate) fn active_header_at(
    conn: &Connection,
    height: u32,
) -> Result<Option<(BlockHash, StoredHeader)>, StoreError> {
    let mut stmt =
        conn.prepare_cached("SELECT height, hash, header, chainwork FROM chain WHERE height = ?1")?;
    let mut rows = stmt.query([height])?;
    rows.next()?.map(decode_row).transpose()
}

fn active_by_hash(conn: &Connection, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
    read_header(
        conn,
        "SELECT height, header, chainwork FROM chain WHERE hash = ?1",
        hash,
    )
}

fn read_header(
    conn: &Connection,
    sql: &str,
    hash: &BlockHash,
) -> Result<Option<StoredHeader>, StoreError> {
    let row = conn
        .prepare_cached(sql)?
        .query_row([hash.to_byte_array().as_slice()], |row| {
            Ok((
                row.get::<_, u32>(0)?,
                row.get::<_, Vec<u8>>(1)?,
                row.get::<_, Vec<u8>>(2)?,
            ))
        })
        .optional()?;
    match row {
        Some((height, header, chainwork)) => Ok(Some(StoredHeader {
            header: decode_header(&header)?,
            height,
            chainwork: decode_chainwork(&chainwork, hash)?,
        })),
        None => Ok(None),
    }
}

/// The header with `hash`, active or stale.
pub(crate) fn get(conn: &Connection, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
    if let Some(active) = active_by_hash(conn, hash)? {
        return Ok(Some(active));
    }
    read_header(
        conn,
        "SELECT height, header, chainwork FROM stale_headers WHERE hash = ?1",
        hash,
    )
}

pub(crate) fn hash_at(conn: &Connection, height: u32) -> Result<Option<BlockHash>, StoreError> {
    let bytes: Option<Vec<u8>> = conn
        .prepare_cached("SELECT hash FROM chain WHERE height = ?1")?
        .query_row([height], |row| row.get(0))
        .optional()?;
    bytes.map(|bytes| decode_hash(&bytes)).transpose()
}

/// Active-chain blocks with heights in `from..=to`, in height order, with their hashes and
/// chainwork.
pub(crate) fn active_stored_range(
    conn: &Connection,
    from: u32,
    to: u32,
) -> Result<Vec<(BlockHash, StoredHeader)>, StoreError> {
    let mut stmt = conn.prepare_cached(
        "SELECT height, hash, header, chainwork FROM chain
         WHERE height BETWEEN ?1 AND ?2 ORDER BY height",
    )?;
    let mut rows = stmt.query(params![from, to])?;
    let mut headers = Vec::with_capacity(to.saturating_sub(from) as usize + 1);
    while let Some(row) = rows.next()? {
        headers.push(decode_row(row)?);
    }
    Ok(headers)
}

/// A row of `height, hash, header, chainwork` from the active chain, decoded in place (a
/// catch-up reads every header of the chain this way).
fn decode_row(row: &rusqlite::Row<'_>) -> Result<(BlockHash, StoredHeader), StoreError> {
    let hash = decode_hash(blob(row, 1)?)?;
    Ok((
        hash,
        StoredHeader {
            header: decode_header(blob(row, 2)?)?,
            height: row.get(0)?,
            chainwork: decode_chainwork(blob(row, 3)?, &hash)?,
        },
    ))
}

/// Column `index` of `row` as a borrowed blob.
fn blob<'r>(row: &'r rusqlite::Row<'_>, index: usize) -> Result<&'r [u8], StoreError> {
    row.get_ref(index)?
        .as_blob()
        .map_err(|err| StoreError::Corrupt(format!("column {index} of a stored header: {err}")))
}

pub(crate) fn decode_hash(bytes: &[u8]) -> Result<BlockHash, StoreError> {
    let array: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt("block hash of wrong length".into()))?;
    Ok(BlockHash::from_byte_array(array))
}

fn decode_chainwork(bytes: &[u8], hash: &BlockHash) -> Result<Work, StoreError> {
    let work: [u8; 32] = bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("chainwork of block {hash}")))?;
    Ok(Work::from_be_bytes(work))
}

/// The 80 bytes of `header` as stored, without a heap allocation.
fn header_bytes(header: &Header) -> [u8; 80] {
    use bitcoin::consensus::Encodable;
    let mut bytes = [0u8; 80];
    header
        .consensus_encode(&mut &mut bytes[..])
        .expect("a header is 80 bytes");
    bytes
}

fn decode_header(bytes: &[u8]) -> Result<Header, StoreError> {
    deserialize(bytes).map_err(|err| StoreError::Corrupt(format!("header: {err}")))
}

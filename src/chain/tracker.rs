//! ChainTracker: applies what the compact-filter engine learns (headers, reorgs, verified
//! filters) to the header and filter stores, and keeps the verified tip: the highest block of
//! the active chain whose filter, and every filter below it down to where the listeners stand,
//! is verified and stored. Listeners are never shown a tip beyond it.
//!
//! It knows nothing of sockets or of the engine's types: it consumes [`EngineEvent`]s, which
//! keeps it deterministic to test.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::bip158::BlockFilter;
use bitcoin::block::Header;
use bitcoin::{BlockHash, Network};
use log::{debug, info, warn};
use rusqlite::Connection;
use tokio::sync::watch;

use super::checkpoints::Checkpoint;
use super::db::ChainDb;
use super::error::StoreError;
use super::filter_start::{self, FilterStart, FiltersFrom};
use super::filter_store::{self, FilterStore, FilterWriter, FILTERS_KEPT_BELOW_CONSUMED};
use super::header_store::{
    self, HeaderChange, HeaderStore, HeaderWriter, StoredHeader, STALE_HEADERS_KEPT,
};
use super::recent_blocks::RecentBlocks;

/// How many blocks below the verified tip an engine restart starts from, so that a reorg that
/// happened while the engine was down (up to this deep) is still found.
pub const RESTART_DEPTH: u32 = 144;

/// Headers of verified blocks kept in memory, so listeners following the verified tip read
/// them without touching the database (about 210 bytes each with the map's own overhead:
/// 0.9 MB). During a first sync filters arrive in batches of thousands, and the listeners
/// trail the last one by about as many blocks; listeners further behind read the store in
/// ranges of [`READ_AHEAD_BLOCKS`].
const CACHED_HEADERS: usize = 4_096;
/// Verified filters kept in memory: those read with the ranges of blocks read for listeners
/// far behind (a listener needs a block's filter only when the check made as it arrived is
/// forgotten or the watch set grew since), at most this many...
const CACHED_FILTERS: usize = 2_016;
/// ...and at most this many bytes, counting [`CACHED_ENTRY_OVERHEAD`] for each.
const CACHED_FILTER_BYTES: usize = 4 * 1024 * 1024;
/// Bytes a cached entry costs beyond its content: key, vector header, map and queue slots.
const CACHED_ENTRY_OVERHEAD: usize = 128;
/// When a listener far behind the verified tip (as during a first sync) asks for a block that
/// is not cached, the headers and filters of this many blocks are read with it in two range
/// scans: the blocks after it when it fetches blocks in chain order, the blocks behind it
/// when LDK walks back from a new tip.
const READ_AHEAD_BLOCKS: u32 = 256;

/// The lowest height among the last [`CACHED_HEADERS`] of `filters`: a batch's lower blocks
/// would be evicted by its higher ones as soon as cached.
fn lowest_cached_height<V>(filters: &std::collections::BTreeMap<u32, V>) -> u32 {
    filters
        .keys()
        .nth_back(CACHED_HEADERS - 1)
        .or_else(|| filters.keys().next())
        .copied()
        .unwrap_or(0)
}

/// A verified filter a batch of events stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StoredFilter<'e> {
    /// Height of its block.
    pub height: u32,
    /// Hash of its block.
    pub hash: BlockHash,
    /// The serialized filter.
    pub content: &'e [u8],
}

/// Progress is logged at most this often during long syncs.
const PROGRESS_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// Something the compact-filter engine learned.
#[derive(Debug, Clone)]
pub enum EngineEvent {
    /// The header chain changed.
    Header(HeaderChange),
    /// A filter was checked against the filter-header chain.
    Filter {
        /// Height of the block.
        height: u32,
        /// The block's hash.
        hash: BlockHash,
        /// The BIP 158 basic filter.
        content: Vec<u8>,
    },
    /// Filters are synced up to the engine's header tip.
    Synced {
        /// Height of the tip.
        height: u32,
        /// Hash of the tip.
        hash: BlockHash,
    },
}

/// Where the engine starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartPoint {
    /// Strictly after this block, whose header is not needed.
    Checkpoint {
        /// Height of the checkpoint block.
        height: u32,
        /// Its hash.
        hash: BlockHash,
    },
    /// From stored headers: the first is the anchor, the rest extend it.
    Snapshot(Vec<(u32, Header)>),
}

/// Heights the tracker reports.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct TrackedHeights {
    /// Tip of the stored header chain.
    pub header_tip: Option<(u32, BlockHash)>,
    /// Highest block whose filter and all filters below it are verified and stored.
    pub verified_tip: Option<(u32, BlockHash)>,
    /// Whether the engine reported filters synced to its tip since it last started.
    pub engine_synced: bool,
    /// The height from which filters are checked; `None` during the header phase of a new
    /// chain (see [`super::filter_start`]).
    pub filters_from: Option<u32>,
}

#[derive(Debug)]
struct Progress {
    last_log: Instant,
}

/// Applies engine events to the stores and tracks the verified tip.
#[derive(Debug)]
pub struct ChainTracker {
    db: Arc<ChainDb>,
    headers: HeaderStore,
    filters: FilterStore,
    heights: watch::Sender<TrackedHeights>,
    progress: Mutex<Progress>,
    recent_headers: Mutex<RecentBlocks<StoredHeader>>,
    recent_filters: Mutex<RecentBlocks<Vec<u8>>>,
    /// The header stored last: during a sync, the parent of the next one.
    tail: Mutex<Option<(BlockHash, StoredHeader)>>,
    /// Where the listeners stand, as last told ([`ChainTracker::note_listeners_at`]);
    /// `u32::MAX` until then, which keeps every new block cached.
    listeners_at: AtomicU32,
    /// The start point a chain that does not start at genesis was created after.
    anchor: Option<Checkpoint>,
    /// The anchor, or genesis.
    chain_start: Checkpoint,
    /// Where filters are checked from (see [`super::filter_start`]).
    filters_from: Mutex<FiltersFrom>,
}

impl ChainTracker {
    /// A tracker over `db`. A store with no headers starts at the genesis block of `network`.
    pub fn new(db: Arc<ChainDb>, network: Network) -> Result<Self, StoreError> {
        Self::starting_at(db, network, None, FilterStart::ChainStart)
    }

    /// A tracker over `db`. A new store starts after `start` (its header chain, filters and
    /// verified tip begin there; nothing at or below it is fetched), or at the genesis block
    /// of `network` without one, and checks filters from where `filters` says. A store that
    /// has a chain keeps where it started and where it checks filters from: see
    /// [`ChainTracker::chain_start`] and [`ChainTracker::filters_from`].
    pub fn starting_at(
        db: Arc<ChainDb>,
        network: Network,
        start: Option<Checkpoint>,
        filters: FilterStart,
    ) -> Result<Self, StoreError> {
        let headers = HeaderStore::new(db.clone());
        let filters_store = FilterStore::new(db.clone());
        let mut anchor = header_store::chain_start(&db.conn())?;
        let header_phase = match filters {
            FilterStart::ChainStart => None,
            plan => Some(FiltersFrom::HeaderPhase(plan)),
        };
        if anchor.is_none() && headers.is_empty()? {
            match start {
                Some(start) => {
                    db.write(|tx| {
                        header_store::set_chain_start(tx, &start)?;
                        if let Some(phase) = header_phase {
                            filter_start::store(tx, phase)?;
                        }
                        filter_store::set_verified_tip(tx, start.height, &start.hash)
                    })?;
                    info!(
                        "starting the header chain after block {} ({}): nothing below it is \
                         downloaded",
                        start.height, start.hash
                    );
                    anchor = Some(start);
                }
                None => {
                    let genesis = bitcoin::constants::genesis_block(network).header;
                    let hash = genesis.block_hash();
                    db.write(|tx| {
                        HeaderWriter::new(tx)?.apply(
                            &HeaderChange::Connected {
                                height: 0,
                                header: genesis,
                            },
                            &|_| None,
                        )?;
                        if let Some(phase) = header_phase {
                            filter_start::store(tx, phase)?;
                        }
                        filter_store::set_verified_tip(tx, 0, &hash)
                    })?;
                }
            }
            if let Some(FiltersFrom::HeaderPhase(plan)) = header_phase {
                info!("new chain: {plan}");
            }
        }
        let genesis = Checkpoint {
            height: 0,
            hash: bitcoin::constants::genesis_block(network).block_hash(),
        };
        let chain_start = anchor.unwrap_or(genesis);
        let filters_from = filter_start::stored(&db.conn())?
            .unwrap_or(FiltersFrom::Height(chain_start.height + 1));
        let heights = TrackedHeights {
            header_tip: headers.tip()?.map(|tip| (tip.height, tip.block_hash())),
            verified_tip: filters_store.verified_tip()?,
            engine_synced: false,
            filters_from: filters_from.height(),
        };
        Ok(Self {
            db,
            headers,
            filters: filters_store,
            heights: watch::channel(heights).0,
            progress: Mutex::new(Progress {
                last_log: Instant::now(),
            }),
            recent_headers: Mutex::new(RecentBlocks::new(CACHED_HEADERS, usize::MAX)),
            recent_filters: Mutex::new(RecentBlocks::new(CACHED_FILTERS, CACHED_FILTER_BYTES)),
            tail: Mutex::new(None),
            listeners_at: AtomicU32::new(u32::MAX),
            anchor,
            chain_start,
            filters_from: Mutex::new(filters_from),
        })
    }

    /// Where filters are checked from: a height, or the header phase of a new chain.
    pub fn filters_from(&self) -> FiltersFrom {
        *self.filters_from.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Whether the chain is in its header phase: the engine syncs headers only.
    pub fn in_header_phase(&self) -> bool {
        self.filters_from().height().is_none()
    }

    /// Admits wallet or channel state about to be created on block `height` (a new wallet,
    /// channel manager or output sweeper): it will need the filters of every block above it,
    /// so filters are checked from `height + 1` on at the latest before it exists. Refused
    /// during the header phase, when where filters start is not known yet; a height below
    /// where they start moves that start down (durably, before the state is created), and
    /// the engine then fetches the filters between when the state is synchronised.
    pub fn admit_new_state(&self, height: u32) -> Result<(), StoreError> {
        match self.filters_from() {
            FiltersFrom::HeaderPhase(_) => Err(StoreError::HeaderPhase),
            FiltersFrom::Height(from) if height + 1 >= from => Ok(()),
            FiltersFrom::Height(from) => {
                self.db
                    .write(|tx| filter_start::store(tx, FiltersFrom::Height(height + 1)))?;
                self.set_filters_from(height + 1);
                info!(
                    "state created on block {height} needs the filters from block {} on; this \
                     chain checked them from block {from}: checking those between too",
                    height + 1
                );
                Ok(())
            }
        }
    }

    fn set_filters_from(&self, height: u32) {
        *self.filters_from.lock().unwrap_or_else(|p| p.into_inner()) = FiltersFrom::Height(height);
        self.heights
            .send_modify(|heights| heights.filters_from = Some(height));
    }

    /// The block the stored chain starts from: genesis, or the start point it was created
    /// after (whose own header is not stored).
    pub fn chain_start(&self) -> Checkpoint {
        self.chain_start
    }

    /// The hash of the active block at `height`, including the start point's.
    fn active_hash_at(
        &self,
        tx: &Connection,
        height: u32,
    ) -> Result<Option<BlockHash>, StoreError> {
        match self.anchor {
            Some(anchor) if anchor.height == height => Ok(Some(anchor.hash)),
            _ => header_store::hash_at(tx, height),
        }
    }

    /// Records the height the listeners stand at, which decides whether new blocks are worth
    /// caching for them.
    pub fn note_listeners_at(&self, height: u32) {
        self.listeners_at.store(height, Ordering::Relaxed);
    }

    /// The header store.
    pub fn headers(&self) -> &HeaderStore {
        &self.headers
    }

    /// The filter store.
    pub fn filters(&self) -> &FilterStore {
        &self.filters
    }

    /// Current heights.
    pub fn heights(&self) -> TrackedHeights {
        *self.heights.borrow()
    }

    /// A receiver that changes whenever the heights do.
    pub fn subscribe(&self) -> watch::Receiver<TrackedHeights> {
        self.heights.subscribe()
    }

    /// Where a (re)started engine should begin: a snapshot of the stored active chain from
    /// [`RESTART_DEPTH`] below the verified tip, so the engine can see reorgs that happened
    /// while it was down, or from `listeners_at` if the listeners stand lower: the engine
    /// fetches only blocks of the chain it holds, and they still need those. During the header
    /// phase, [`RESTART_DEPTH`] below the header tip. The engine syncs headers only from there;
    /// filters are then fetched from above the verified tip alone (see `Host`).
    pub fn start_point(&self, listeners_at: Option<u32>) -> Result<StartPoint, StoreError> {
        self.start_point_at_depth(listeners_at, RESTART_DEPTH)
    }

    /// Like [`ChainTracker::start_point`], from `depth` blocks below the verified tip (deeper
    /// when a peer's chain forked below the last start point).
    pub fn start_point_at_depth(
        &self,
        listeners_at: Option<u32>,
        depth: u32,
    ) -> Result<StartPoint, StoreError> {
        let Some(tip) = self.headers.tip()? else {
            // A chain created after a start point, before its first header arrived.
            return match self.anchor {
                Some(anchor) => Ok(StartPoint::Checkpoint {
                    height: anchor.height,
                    hash: anchor.hash,
                }),
                None => Err(StoreError::Corrupt("header store is empty".into())),
            };
        };
        let lowest = self.headers.lowest_active_height()?.unwrap_or(0);
        let from = match self.filters_from() {
            FiltersFrom::HeaderPhase(_) => tip.height.saturating_sub(depth),
            FiltersFrom::Height(_) => {
                let verified = self.heights().verified_tip.map_or(lowest, |(h, _)| h);
                verified
                    .saturating_sub(depth)
                    .min(listeners_at.unwrap_or(u32::MAX))
            }
        };
        // Down to the start point the engine starts from it, and fetches everything above.
        if let Some(anchor) = self.anchor.filter(|anchor| from <= anchor.height + 1) {
            return Ok(StartPoint::Checkpoint {
                height: anchor.height,
                hash: anchor.hash,
            });
        }
        let from = from.max(lowest);
        if from >= tip.height {
            return Ok(StartPoint::Checkpoint {
                height: tip.height,
                hash: tip.block_hash(),
            });
        }
        Ok(StartPoint::Snapshot(
            self.headers.active_range(from, tip.height)?,
        ))
    }

    /// Applies a batch of events in one durable transaction, then publishes the new heights.
    /// The filters the batch stored (in height order, those of blocks still active at its
    /// end) go to `on_stored` before the heights are published: no listener learns of those
    /// blocks before `on_stored` has run.
    ///
    /// The headers of the blocks whose filters the batch verified are kept in memory for the
    /// listeners: they are what a listener reads next.
    pub fn apply(
        &self,
        events: &[EngineEvent],
        on_stored: impl FnOnce(&[StoredFilter<'_>]),
    ) -> Result<(), StoreError> {
        let mut heights = self.heights();
        let mut synced = None;
        let mut tail = *self.tail.lock().unwrap_or_else(|p| p.into_inner());
        let mut headers_changed = false;
        // Active blocks whose filters were stored in this batch, by height.
        let mut new_filters: std::collections::BTreeMap<u32, (BlockHash, &[u8])> =
            std::collections::BTreeMap::new();
        let mut verified_headers = Vec::new();
        let mut stored = Vec::new();
        let mut filters_from = self.filters_from();
        self.db.write(|tx| {
            let mut header_writer = HeaderWriter::new(tx)?;
            let mut filter_writer = FilterWriter::new(tx)?;
            for event in events {
                match event {
                    EngineEvent::Header(change) => {
                        let known = |hash: &BlockHash| {
                            tail.filter(|(tail_hash, _)| tail_hash == hash)
                                .map(|(_, header)| header)
                                .or_else(|| self.cached_header(hash))
                        };
                        match header_writer.apply(change, &known) {
                            Ok(stored) => {
                                headers_changed = true;
                                if let Some(last) = stored.last() {
                                    tail = Some(*last);
                                }
                            }
                            Err(err @ StoreError::Disconnected { .. }) => {
                                warn!("ignoring header from the engine: {err}");
                                continue;
                            }
                            Err(other) => return Err(other),
                        }
                        if let HeaderChange::Reorganized { accepted, disconnected } = change {
                            let fork = accepted
                                .iter()
                                .chain(disconnected.iter())
                                .map(|(h, _)| *h)
                                .min()
                                .map(|h| h.saturating_sub(1));
                            if let Some(fork) = fork {
                                // Filters stored earlier in the batch above the fork belong to
                                // the branch that just left the active chain.
                                new_filters.retain(|height, _| *height <= fork);
                            }
                            if let (Some(fork), FiltersFrom::Height(from)) = (fork, filters_from) {
                                // The new branch's blocks from the fork point on may hold what
                                // the old branch's above the first checked filter held.
                                if fork + 1 < from {
                                    filters_from = FiltersFrom::Height(fork + 1);
                                    filter_start::store(tx, filters_from)?;
                                }
                            }
                            if let (Some(fork), Some((verified, _))) = (fork, heights.verified_tip)
                            {
                                if verified > fork {
                                    let hash = self.active_hash_at(tx, fork)?.ok_or_else(|| {
                                        StoreError::Corrupt(format!("no active block at {fork}"))
                                    })?;
                                    heights.verified_tip = Some((fork, hash));
                                }
                            }
                            info!(
                                "chain reorganisation: {} block(s) disconnected, {} connected, fork point at height {}",
                                disconnected.len(),
                                accepted.len(),
                                fork.unwrap_or(0)
                            );
                        }
                    }
                    EngineEvent::Filter {
                        height,
                        hash,
                        content,
                    } => {
                        if filter_writer.put_if_active(hash, *height, content)? {
                            new_filters.insert(*height, (*hash, content));
                        } else {
                            debug!(
                                "dropping filter of block {hash} at {height}: not on the active chain"
                            );
                        }
                    }
                    EngineEvent::Synced { height, hash } => {
                        synced = Some((*height, *hash));
                        if let FiltersFrom::HeaderPhase(plan) = filters_from {
                            // Headers reached the tip: filters start after it, or at the
                            // birthday below it.
                            let from = FiltersFrom::after_headers_synced(plan, *height)
                                .max(self.chain_start.height + 1);
                            match self.active_hash_at(tx, from - 1)? {
                                Some(below) if self.active_hash_at(tx, *height)? == Some(*hash) => {
                                    filters_from = FiltersFrom::Height(from);
                                    filter_start::store(tx, filters_from)?;
                                    filter_store::set_verified_tip(tx, from - 1, &below)?;
                                    heights.verified_tip = Some((from - 1, below));
                                    info!(
                                        "headers synced to height {height} ({hash}); compact \
                                         filters are checked from block {from} on"
                                    );
                                }
                                _ => warn!(
                                    "the compact-filter engine reports headers synced to block \
                                     {hash} at {height}, which is not on the stored chain; \
                                     still syncing headers"
                                ),
                            }
                        }
                    }
                }
            }
            // Advance the verified tip over every contiguous stored filter: those of this
            // batch are known active, older ones are looked up.
            if let Some((mut height, mut hash)) = heights.verified_tip {
                loop {
                    let next = match new_filters.get(&(height + 1)) {
                        Some((next, _)) => *next,
                        None => match header_store::hash_at(tx, height + 1)? {
                            Some(next) if filter_store::contains(tx, height + 1, &next)? => {
                                next
                            }
                            _ => break,
                        },
                    };
                    height += 1;
                    hash = next;
                }
                filter_store::set_verified_tip(tx, height, &hash)?;
                heights.verified_tip = Some((height, hash));
            }
            stored = new_filters
                .iter()
                .map(|(&height, &(hash, content))| StoredFilter {
                    height,
                    hash,
                    content,
                })
                .collect();
            // Only the highest blocks of a batch stay cached, so only theirs are read, and
            // none while the listeners are so far behind that later batches would evict them
            // first (they read ranges from the store then).
            let cached_from = lowest_cached_height(&new_filters);
            let listeners_at = self.listeners_at.load(Ordering::Relaxed);
            let near_listeners = cached_from.saturating_sub(listeners_at) <= CACHED_HEADERS as u32;
            if let Some((&highest, _)) = new_filters.last_key_value().filter(|_| near_listeners) {
                verified_headers = header_store::active_stored_range(tx, cached_from, highest)?;
                verified_headers.retain(|(hash, header)| {
                    new_filters
                        .get(&header.height)
                        .is_some_and(|(stored, _)| stored == hash)
                });
            }
            Ok(())
        })?;
        self.cache(verified_headers, []);
        *self.tail.lock().unwrap_or_else(|p| p.into_inner()) = tail;
        *self.filters_from.lock().unwrap_or_else(|p| p.into_inner()) = filters_from;
        heights.filters_from = filters_from.height();
        if headers_changed || heights.header_tip.is_none() {
            heights.header_tip = self
                .headers
                .tip()?
                .map(|tip| (tip.height, tip.block_hash()));
        }
        if let Some((height, hash)) = synced {
            heights.engine_synced = heights.verified_tip == Some((height, hash));
            if heights.engine_synced {
                info!("compact filters synced to height {height} ({hash})");
            } else {
                debug!(
                    "the compact-filter engine is at height {height} ({hash}); filters above \
                     height {} are still to be fetched",
                    heights.verified_tip.map_or(0, |(verified, _)| verified)
                );
            }
        } else if events.iter().any(|e| matches!(e, EngineEvent::Header(_))) {
            heights.engine_synced = false;
        }
        on_stored(&stored);
        self.log_progress(&heights);
        self.heights.send_replace(heights);
        Ok(())
    }

    /// Makes the verified tip true again for listeners standing at `height`: if an active
    /// block between it and the verified tip has no stored filter (pruned while a listener's
    /// saved position lagged behind, before a crash), the verified tip goes down to the block
    /// below the first such gap, and stays there until the engine stored the missing filters.
    /// Returns whether there was a gap.
    pub fn lower_verified_tip_to_stored_filters_from(
        &self,
        height: u32,
    ) -> Result<bool, StoreError> {
        if let FiltersFrom::Height(from) = self.filters_from() {
            if height + 1 < from {
                self.db
                    .write(|tx| filter_start::store(tx, FiltersFrom::Height(height + 1)))?;
                self.set_filters_from(height + 1);
                info!(
                    "wallet or channel state stands on block {height}, below the first block \
                     whose filter this chain checked ({from}): checking the filters from block \
                     {} on, where that state may need them",
                    height + 1
                );
            }
        }
        let Some((verified, _)) = self.heights().verified_tip else {
            return Ok(false);
        };
        if verified <= height {
            return Ok(false);
        }
        let lowered = self.db.write(|tx| {
            let Some(missing) = filter_store::first_missing(tx, height + 1, verified)? else {
                return Ok(None);
            };
            let below = missing - 1;
            let hash = self
                .active_hash_at(tx, below)?
                .ok_or_else(|| StoreError::Corrupt(format!("no active block at {below}")))?;
            filter_store::set_verified_tip(tx, below, &hash)?;
            Ok(Some((below, hash, missing)))
        })?;
        let Some((below, hash, missing)) = lowered else {
            return Ok(false);
        };
        warn!(
            "the filter of block {missing} is no longer stored though listeners need it; \
             fetching filters again from there (verified tip lowered from {verified} to {below})"
        );
        self.heights
            .send_modify(|heights| heights.verified_tip = Some((below, hash)));
        Ok(true)
    }

    /// The height of `hash` if it is on the active chain, or else of its closest ancestor
    /// that is (the fork point of a stale block); `None` if the block or one of its
    /// ancestors down to the active chain is not stored.
    pub fn active_ancestor_height(&self, hash: &BlockHash) -> Result<Option<u32>, StoreError> {
        let mut hash = *hash;
        loop {
            let Some(header) = self.header(&hash)? else {
                return Ok(None);
            };
            if self.headers.hash_at(header.height)? == Some(hash) {
                return Ok(Some(header.height));
            }
            if header.height == 0 {
                return Ok(None);
            }
            hash = header.header.prev_blockhash;
        }
    }

    /// Marks the engine as restarting: it is not synced until it says so again.
    pub fn engine_restarting(&self) {
        self.heights.send_modify(|h| h.engine_synced = false);
    }

    /// Prunes what the listeners no longer need, given the height every listener consumed.
    pub fn prune(&self, consumed_height: u32) -> Result<(), StoreError> {
        let tip = self.heights().header_tip.map_or(0, |(h, _)| h);
        let (filters, stale) = self.db.write(|tx| {
            Ok((
                filter_store::prune_below(
                    tx,
                    consumed_height.saturating_sub(FILTERS_KEPT_BELOW_CONSUMED),
                )?,
                header_store::prune_stale_below(tx, tip.saturating_sub(STALE_HEADERS_KEPT))?,
            ))
        })?;
        if filters + stale > 0 {
            debug!("pruned {filters} consumed filter(s) and {stale} stale header(s)");
        }
        Ok(())
    }

    /// The stored header of `hash`.
    pub fn header(&self, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
        self.header_near(hash, None)
    }

    /// The stored header of `hash`, which is probably the active block at `height`. A miss
    /// reads a range of blocks into the caches: with a height (LDK walking back from a new
    /// tip, one parent at a time) the blocks behind it, without one (a block fetch, in chain
    /// order) the blocks after it.
    pub fn header_near(
        &self,
        hash: &BlockHash,
        height: Option<u32>,
    ) -> Result<Option<StoredHeader>, StoreError> {
        if let Some(header) = self.cached_header(hash) {
            return Ok(Some(header));
        }
        if let Some(height) = height {
            self.read_range(height.saturating_sub(READ_AHEAD_BLOCKS - 1), height)?;
            if let Some(header) = self.cached_header(hash) {
                return Ok(Some(header));
            }
            return self.headers.get_near(hash, Some(height));
        }
        let header = self.headers.get_near(hash, None)?;
        if let Some(stored) = header {
            // Only active blocks are read; for a stale one the range is merely of no use.
            let last = stored.height.saturating_add(READ_AHEAD_BLOCKS - 1);
            self.read_range(stored.height, last)?;
        }
        Ok(header)
    }

    /// Caches the headers and filters of the active blocks from `first` to `last`.
    fn read_range(&self, first: u32, last: u32) -> Result<(), StoreError> {
        let headers = self.headers.active_stored_range(first, last)?;
        let filters = self.filters.range(first, last)?;
        self.cache(headers, filters);
        Ok(())
    }

    /// Keeps `headers` and `filters` (of verified blocks) in memory for the listeners.
    fn cache(
        &self,
        headers: impl IntoIterator<Item = (BlockHash, StoredHeader)>,
        filters: impl IntoIterator<Item = (BlockHash, Vec<u8>)>,
    ) {
        {
            let mut cache = self
                .recent_headers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (hash, header) in headers {
                cache.insert(hash, header, 1);
            }
        }
        let mut cache = self
            .recent_filters
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        for (hash, content) in filters {
            let size = content.len() + CACHED_ENTRY_OVERHEAD;
            cache.insert(hash, content, size);
        }
    }

    fn cached_header(&self, hash: &BlockHash) -> Option<StoredHeader> {
        self.recent_headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
    }

    /// The stored, verified filter of block `hash`.
    pub fn filter(&self, hash: &BlockHash) -> Result<Option<BlockFilter>, StoreError> {
        if let Some(content) = self
            .recent_filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Ok(Some(BlockFilter::new(&content)));
        }
        let Some(header) = self.header(hash)? else {
            return Ok(None);
        };
        // Reading the header may have read this filter with it.
        if let Some(content) = self
            .recent_filters
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Ok(Some(BlockFilter::new(&content)));
        }
        self.filters.get(header.height, hash)
    }

    fn log_progress(&self, heights: &TrackedHeights) {
        let mut progress = self.progress.lock().unwrap_or_else(|p| p.into_inner());
        if progress.last_log.elapsed() < PROGRESS_LOG_INTERVAL {
            return;
        }
        progress.last_log = Instant::now();
        let headers = heights.header_tip.map_or(0, |(h, _)| h);
        let filters = heights.verified_tip.map_or(0, |(h, _)| h);
        if filters < headers {
            info!("syncing: headers at height {headers}, verified filters at height {filters}");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;
    use bitcoin::{CompactTarget, TxMerkleNode};

    fn child(parent: &Header, salt: u32) -> Header {
        Header {
            version: bitcoin::block::Version::TWO,
            prev_blockhash: parent.block_hash(),
            merkle_root: TxMerkleNode::from_byte_array([salt as u8; 32]),
            time: parent.time + 1,
            bits: CompactTarget::from_consensus(0x207fffff),
            nonce: salt,
        }
    }

    fn connect(tracker: &ChainTracker, chain: &mut Vec<Header>, up_to: u32) {
        let mut events = Vec::new();
        while (chain.len() as u32) <= up_to {
            let header = child(chain.last().expect("genesis"), 0);
            let height = chain.len() as u32;
            events.push(EngineEvent::Header(HeaderChange::Connected {
                height,
                header,
            }));
            events.push(EngineEvent::Filter {
                height,
                hash: header.block_hash(),
                content: vec![0],
            });
            chain.push(header);
        }
        tracker.apply(&events, |_| {}).expect("events applied");
    }

    fn fork_at(tracker: &ChainTracker, chain: &[Header], height: u32) -> BlockHash {
        let header = child(&chain[height as usize - 1], 7);
        tracker
            .apply(
                &[EngineEvent::Header(HeaderChange::Fork { height, header })],
                |_| {},
            )
            .expect("fork applied");
        header.block_hash()
    }

    fn tracker() -> (tempfile::TempDir, ChainTracker) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ChainDb::open(&dir.path().join("chain.sqlite"), Network::Regtest).expect("db");
        let tracker = ChainTracker::new(Arc::new(db), Network::Regtest).expect("tracker");
        (dir, tracker)
    }

    #[test]
    fn a_chain_started_after_a_checkpoint_starts_there_and_reorgs_down_to_it() {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = Arc::new(
            ChainDb::open(&dir.path().join("chain.sqlite"), Network::Regtest).expect("db"),
        );
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        while chain.len() <= 50 {
            let header = child(chain.last().expect("genesis"), 0);
            chain.push(header);
        }
        let anchor = Checkpoint {
            height: 50,
            hash: chain[50].block_hash(),
        };
        let tracker = ChainTracker::starting_at(
            db.clone(),
            Network::Regtest,
            Some(anchor),
            FilterStart::ChainStart,
        )
        .expect("tracker");
        assert_eq!(tracker.chain_start(), anchor);
        assert_eq!(tracker.heights().verified_tip, Some((50, anchor.hash)));
        assert_eq!(
            tracker.heights().header_tip,
            None,
            "no header below it is stored"
        );
        let checkpoint = StartPoint::Checkpoint {
            height: 50,
            hash: anchor.hash,
        };
        assert_eq!(tracker.start_point(None).expect("start"), checkpoint);

        connect(&tracker, &mut chain, 60);
        assert_eq!(
            tracker.heights().verified_tip,
            Some((60, chain[60].block_hash()))
        );
        assert_eq!(tracker.headers().lowest_active_height().unwrap(), Some(51));
        // Listeners near the start point need the engine to start at it.
        assert_eq!(tracker.start_point(Some(51)).expect("start"), checkpoint);

        // A branch forking at the start point replaces the whole stored chain.
        let mut branch = vec![child(&chain[50], 9)];
        while branch.len() < 11 {
            let header = child(branch.last().expect("a block"), 9);
            branch.push(header);
        }
        let accepted: Vec<(u32, Header)> = (51..).zip(branch.iter().copied()).collect();
        let disconnected: Vec<(u32, Header)> = (51..).zip(chain[51..].iter().copied()).collect();
        tracker
            .apply(
                &[EngineEvent::Header(HeaderChange::Reorganized {
                    accepted: accepted.clone(),
                    disconnected,
                })],
                |_| {},
            )
            .expect("a reorganisation down to the start point is applied");
        assert_eq!(tracker.heights().verified_tip, Some((50, anchor.hash)));
        let filters: Vec<EngineEvent> = accepted
            .iter()
            .map(|(height, header)| EngineEvent::Filter {
                height: *height,
                hash: header.block_hash(),
                content: vec![0],
            })
            .collect();
        tracker.apply(&filters, |_| {}).expect("filters applied");
        assert_eq!(
            tracker.heights().verified_tip,
            Some((61, branch[10].block_hash()))
        );

        // Opened again, the chain keeps its start point whatever is asked.
        drop(tracker);
        let reopened = ChainTracker::starting_at(db, Network::Regtest, None, FilterStart::Tip)
            .expect("tracker");
        assert_eq!(reopened.filters_from(), FiltersFrom::Height(51));
        assert_eq!(reopened.chain_start(), anchor);
    }

    #[test]
    fn a_reorganisation_that_does_not_connect_leaves_the_chain_as_it_was() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 10);
        let before = tracker.heights();
        // A branch from a block nobody has: its first block cannot be placed.
        let mut orphan_parent = child(&chain[4], 3);
        orphan_parent.nonce = 99;
        let mut branch = vec![child(&orphan_parent, 5)];
        while branch.len() < 7 {
            let header = child(branch.last().expect("a block"), 5);
            branch.push(header);
        }
        tracker
            .apply(
                &[EngineEvent::Header(HeaderChange::Reorganized {
                    accepted: (6..).zip(branch.iter().copied()).collect(),
                    disconnected: (6..).zip(chain[6..].iter().copied()).collect(),
                })],
                |_| {},
            )
            .expect("the batch is applied without the change");
        for (height, header) in chain.iter().enumerate() {
            assert_eq!(
                tracker.headers().hash_at(height as u32).unwrap(),
                Some(header.block_hash()),
                "active block at {height}"
            );
        }
        assert_eq!(tracker.heights(), before);
    }

    #[test]
    fn stale_headers_and_consumed_filters_are_pruned_only_far_below() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 1_200);
        let deep_fork = fork_at(&tracker, &chain, 10);
        let recent_fork = fork_at(&tracker, &chain, 1_150);
        assert_eq!(
            tracker.heights().verified_tip,
            Some((1_200, chain[1_200].block_hash()))
        );

        tracker.prune(1_200).expect("pruned");
        let headers = tracker.headers();
        assert!(
            headers.get(&deep_fork).unwrap().is_none(),
            "deep stale header kept"
        );
        assert!(
            headers.get(&recent_fork).unwrap().is_some(),
            "recent stale header pruned"
        );
        assert!(
            headers.get(&chain[10].block_hash()).unwrap().is_some(),
            "active header pruned"
        );
        let below = 1_200 - FILTERS_KEPT_BELOW_CONSUMED;
        let filters = tracker.filters();
        assert!(!filters
            .contains(below - 1, &chain[below as usize - 1].block_hash())
            .unwrap());
        assert!(filters
            .contains(below, &chain[below as usize].block_hash())
            .unwrap());

        // A stale header arriving later above the pruned range is pruned by a later round.
        let later_fork = fork_at(&tracker, &chain, 300);
        connect(&tracker, &mut chain, 1_400);
        tracker.prune(1_400).expect("pruned again");
        assert!(
            headers.get(&later_fork).unwrap().is_none(),
            "later stale header kept"
        );
        assert!(headers.get(&recent_fork).unwrap().is_some());
    }

    #[test]
    fn a_gap_in_the_filters_above_a_listener_lowers_the_verified_tip_below_it() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 600);
        tracker.prune(500).expect("pruned");
        let kept_from = 500 - FILTERS_KEPT_BELOW_CONSUMED;

        // Listeners at or above the pruned range need nothing that is gone.
        assert!(!tracker
            .lower_verified_tip_to_stored_filters_from(kept_from - 1)
            .unwrap());
        assert_eq!(
            tracker.heights().verified_tip,
            Some((600, chain[600].block_hash()))
        );

        // A listener saved lower needs filters that were pruned.
        assert!(tracker
            .lower_verified_tip_to_stored_filters_from(100)
            .unwrap());
        assert_eq!(
            tracker.heights().verified_tip,
            Some((100, chain[100].block_hash()))
        );
        assert_eq!(
            tracker.filters().verified_tip().unwrap(),
            Some((100, chain[100].block_hash())),
            "the lowered tip is stored"
        );

        // The filters arriving again raise it over the ones still stored.
        let refetched: Vec<EngineEvent> = (101..kept_from)
            .map(|height| EngineEvent::Filter {
                height,
                hash: chain[height as usize].block_hash(),
                content: vec![0],
            })
            .collect();
        tracker.apply(&refetched, |_| {}).expect("filters applied");
        assert_eq!(
            tracker.heights().verified_tip,
            Some((600, chain[600].block_hash()))
        );
    }

    #[test]
    fn a_stale_block_stands_at_its_fork_point_with_the_active_chain() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 20);
        let stale = fork_at(&tracker, &chain, 15);
        assert_eq!(
            tracker
                .active_ancestor_height(&chain[12].block_hash())
                .unwrap(),
            Some(12)
        );
        assert_eq!(tracker.active_ancestor_height(&stale).unwrap(), Some(14));
        assert_eq!(
            tracker
                .active_ancestor_height(&BlockHash::all_zeros())
                .unwrap(),
            None
        );
    }

    #[test]
    fn a_miss_caches_the_blocks_behind_when_walking_back_and_ahead_when_fetching() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        let tip = CACHED_HEADERS as u32 + 1_000;
        connect(&tracker, &mut chain, tip);
        let hash = |height: u32| chain[height as usize].block_hash();
        assert!(
            tracker.cached_header(&hash(500)).is_none(),
            "evicted long ago"
        );

        // LDK walking back from a new tip asks with a height: the blocks behind are read.
        let found = tracker.header_near(&hash(500), Some(500)).unwrap().unwrap();
        assert_eq!(found.height, 500);
        let first_behind = 500 - (READ_AHEAD_BLOCKS - 1);
        for height in [first_behind, 499] {
            assert!(tracker.cached_header(&hash(height)).is_some(), "{height}");
            assert!(tracker
                .recent_filters
                .lock()
                .unwrap()
                .get(&hash(height))
                .is_some());
        }
        assert!(tracker.cached_header(&hash(first_behind - 1)).is_none());
        assert!(tracker.cached_header(&hash(501)).is_none());

        // A block fetch asks without one: the blocks after it are read.
        let found = tracker.header(&hash(900)).unwrap().unwrap();
        assert_eq!(found.height, 900);
        assert!(tracker
            .cached_header(&hash(900 + READ_AHEAD_BLOCKS - 1))
            .is_some());
        assert!(tracker.cached_header(&hash(899)).is_none());
    }

    /// Headers only, as an engine in its header phase sends them, up to `up_to`.
    fn connect_headers(tracker: &ChainTracker, chain: &mut Vec<Header>, up_to: u32) {
        let mut events = Vec::new();
        while (chain.len() as u32) <= up_to {
            let header = child(chain.last().expect("genesis"), 0);
            events.push(EngineEvent::Header(HeaderChange::Connected {
                height: chain.len() as u32,
                header,
            }));
            chain.push(header);
        }
        tracker.apply(&events, |_| {}).expect("headers applied");
    }

    fn synced_at(tracker: &ChainTracker, chain: &[Header]) {
        let height = chain.len() as u32 - 1;
        tracker
            .apply(
                &[EngineEvent::Synced {
                    height,
                    hash: chain[height as usize].block_hash(),
                }],
                |_| {},
            )
            .expect("synced applied");
    }

    fn tracker_with(filters: FilterStart) -> (tempfile::TempDir, ChainTracker) {
        let dir = tempfile::tempdir().expect("temp dir");
        let db = ChainDb::open(&dir.path().join("chain.sqlite"), Network::Regtest).expect("db");
        let tracker = ChainTracker::starting_at(Arc::new(db), Network::Regtest, None, filters)
            .expect("tracker");
        (dir, tracker)
    }

    #[test]
    fn a_header_phase_ends_at_the_tip_with_its_filters_starting_after_it_and_survives_a_restart() {
        let (dir, tracker) = tracker_with(FilterStart::Tip);
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        assert!(tracker.in_header_phase());
        assert!(matches!(
            tracker.admit_new_state(0),
            Err(StoreError::HeaderPhase)
        ));
        connect_headers(&tracker, &mut chain, 1_000);
        assert_eq!(tracker.heights().verified_tip.map(|(h, _)| h), Some(0));
        assert_eq!(tracker.heights().filters_from, None);
        // A restart in the header phase resumes near the header tip, not at the start.
        match tracker.start_point(None).expect("start") {
            StartPoint::Snapshot(headers) => {
                assert_eq!(
                    headers.first().map(|(h, _)| *h),
                    Some(1_000 - RESTART_DEPTH)
                )
            }
            other => panic!("a snapshot near the header tip, not {other:?}"),
        }

        synced_at(&tracker, &chain);
        let heights = tracker.heights();
        assert_eq!(heights.filters_from, Some(1_001));
        assert_eq!(
            heights.verified_tip,
            Some((1_000, chain[1_000].block_hash()))
        );
        assert!(heights.engine_synced, "nothing is left to check at the tip");
        tracker.admit_new_state(1_000).expect("state at the tip");
        connect(&tracker, &mut chain, 1_010);
        assert_eq!(
            tracker.heights().verified_tip,
            Some((1_010, chain[1_010].block_hash()))
        );

        drop(tracker);
        let db = ChainDb::open(&dir.path().join("chain.sqlite"), Network::Regtest).expect("db");
        let reopened =
            ChainTracker::starting_at(Arc::new(db), Network::Regtest, None, FilterStart::Tip)
                .expect("tracker");
        assert_eq!(reopened.filters_from(), FiltersFrom::Height(1_001));
        assert_eq!(reopened.heights().filters_from, Some(1_001));
    }

    #[test]
    fn a_birthday_below_the_tip_ends_the_header_phase_with_filters_from_the_birthday() {
        let (_dir, tracker) = tracker_with(FilterStart::Height(600));
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect_headers(&tracker, &mut chain, 1_000);
        synced_at(&tracker, &chain);
        let heights = tracker.heights();
        assert_eq!(heights.filters_from, Some(600));
        assert_eq!(heights.verified_tip, Some((599, chain[599].block_hash())));
        assert!(
            !heights.engine_synced,
            "the filters from the birthday are missing"
        );
        // The engine starts its usual depth below the verified tip: its headers only.
        match tracker.start_point(None).expect("start") {
            StartPoint::Snapshot(headers) => {
                assert_eq!(headers.first().map(|(h, _)| *h), Some(599 - RESTART_DEPTH))
            }
            other => panic!("a snapshot below the verified tip, not {other:?}"),
        }

        // State created below the birthday moves the first checked filter down first.
        tracker.admit_new_state(599).expect("admitted");
        assert_eq!(tracker.filters_from(), FiltersFrom::Height(600));
        tracker.admit_new_state(499).expect("admitted");
        assert_eq!(tracker.filters_from(), FiltersFrom::Height(500));
    }

    #[test]
    fn a_reorganisation_below_the_first_checked_filter_moves_it_down_to_the_fork() {
        let (_dir, tracker) = tracker_with(FilterStart::Tip);
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect_headers(&tracker, &mut chain, 100);
        synced_at(&tracker, &chain);
        assert_eq!(tracker.filters_from(), FiltersFrom::Height(101));
        let branch: Vec<Header> = {
            let mut branch = vec![child(&chain[97], 9)];
            while branch.len() < 5 {
                let header = child(branch.last().expect("a block"), 9);
                branch.push(header);
            }
            branch
        };
        tracker
            .apply(
                &[EngineEvent::Header(HeaderChange::Reorganized {
                    accepted: (98..).zip(branch.iter().copied()).collect(),
                    disconnected: (98..).zip(chain[98..].iter().copied()).collect(),
                })],
                |_| {},
            )
            .expect("reorganisation applied");
        assert_eq!(tracker.filters_from(), FiltersFrom::Height(98));
        assert_eq!(tracker.heights().filters_from, Some(98));
        assert_eq!(
            tracker.heights().verified_tip,
            Some((97, chain[97].block_hash()))
        );
    }

    #[test]
    fn listeners_below_the_first_checked_filter_move_it_down_to_them() {
        let (_dir, tracker) = tracker_with(FilterStart::Tip);
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect_headers(&tracker, &mut chain, 300);
        synced_at(&tracker, &chain);
        connect(&tracker, &mut chain, 320);
        assert!(tracker
            .lower_verified_tip_to_stored_filters_from(200)
            .expect("lowered"));
        assert_eq!(tracker.filters_from(), FiltersFrom::Height(201));
        assert_eq!(
            tracker.heights().verified_tip,
            Some((200, chain[200].block_hash()))
        );
    }

    #[test]
    fn an_engine_restart_starts_below_the_tip_and_below_lagging_listeners() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 400);
        let first_height = |start: StartPoint| match start {
            StartPoint::Snapshot(headers) => headers.first().map(|(height, _)| *height),
            StartPoint::Checkpoint { .. } => None,
        };
        let near_tip = 400 - RESTART_DEPTH;
        assert_eq!(
            first_height(tracker.start_point(None).unwrap()),
            Some(near_tip)
        );
        assert_eq!(
            first_height(tracker.start_point(Some(399)).unwrap()),
            Some(near_tip)
        );
        assert_eq!(
            first_height(tracker.start_point(Some(100)).unwrap()),
            Some(100)
        );
    }

    #[test]
    fn chainwork_follows_the_chain_across_batches_and_restarts() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("chain.sqlite");
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        {
            let db = ChainDb::open(&path, Network::Regtest).expect("db");
            let tracker = ChainTracker::new(Arc::new(db), Network::Regtest).expect("tracker");
            connect(&tracker, &mut chain, 50);
            connect(&tracker, &mut chain, 100);
        }
        let db = ChainDb::open(&path, Network::Regtest).expect("db");
        let tracker = ChainTracker::new(Arc::new(db), Network::Regtest).expect("tracker");
        connect(&tracker, &mut chain, 150);
        for height in [1u32, 50, 51, 100, 101, 150] {
            let stored = tracker
                .headers()
                .get(&chain[height as usize].block_hash())
                .unwrap()
                .expect("stored");
            assert_eq!(stored.height, height);
            let expected = chain[1..=height as usize]
                .iter()
                .fold(chain[0].work(), |work, header| work + header.work());
            assert_eq!(stored.chainwork, expected, "chainwork at {height}");
        }
    }

    #[test]
    fn filters_of_a_branch_reorganised_away_in_the_same_batch_do_not_advance_the_tip() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        connect(&tracker, &mut chain, 20);
        let old = child(&chain[20], 0);
        let new = child(&chain[20], 9);
        tracker
            .apply(
                &[
                    EngineEvent::Header(HeaderChange::Connected {
                        height: 21,
                        header: old,
                    }),
                    EngineEvent::Filter {
                        height: 21,
                        hash: old.block_hash(),
                        content: vec![0],
                    },
                    EngineEvent::Header(HeaderChange::Reorganized {
                        accepted: vec![(21, new)],
                        disconnected: vec![(21, old)],
                    }),
                ],
                |_| {},
            )
            .expect("applied");
        assert_eq!(
            tracker.heights().verified_tip,
            Some((20, chain[20].block_hash()))
        );
        let headers = tracker.headers();
        assert!(headers.is_active(&new.block_hash()).unwrap());
        assert!(!headers.is_active(&old.block_hash()).unwrap());
        let left = headers
            .get(&old.block_hash())
            .unwrap()
            .expect("old branch resolvable");
        assert_eq!(left.height, 21);
        tracker
            .apply(
                &[EngineEvent::Filter {
                    height: 21,
                    hash: new.block_hash(),
                    content: vec![0],
                }],
                |_| {},
            )
            .expect("applied");
        assert_eq!(tracker.heights().verified_tip, Some((21, new.block_hash())));
    }

    #[test]
    fn blocks_far_above_the_listeners_are_not_cached_but_stay_readable() {
        let (_dir, tracker) = tracker();
        let mut chain = vec![bitcoin::constants::genesis_block(Network::Regtest).header];
        let far = 3 * CACHED_HEADERS as u32;
        tracker.note_listeners_at(0);
        connect(&tracker, &mut chain, far);
        let hash = |height: u32| chain[height as usize].block_hash();
        assert!(tracker.cached_header(&hash(far)).is_none());
        assert_eq!(tracker.header(&hash(far)).unwrap().unwrap().height, far);

        tracker.note_listeners_at(far);
        connect(&tracker, &mut chain, far + 10);
        let hash = |height: u32| chain[height as usize].block_hash();
        assert!(tracker.cached_header(&hash(far + 10)).is_some());
        // Filters are checked as they arrive: only a listener far behind reads them again.
        assert!(tracker
            .recent_filters
            .lock()
            .unwrap()
            .get(&hash(far + 10))
            .is_none());
        assert!(tracker.filter(&hash(far + 10)).unwrap().is_some());
    }
}

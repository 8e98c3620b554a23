//! ChainTracker: applies what the compact-filter engine learns (headers, reorgs, verified
//! filters) to the header and filter stores, and keeps the verified tip: the highest block of
//! the active chain whose filter, and every filter below it down to where the listeners stand,
//! is verified and stored. Listeners are never shown a tip beyond it.
//!
//! It knows nothing of sockets or of the engine's types: it consumes [`EngineEvent`]s, which
//! keeps it deterministic to test.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bitcoin::bip158::BlockFilter;
use bitcoin::block::Header;
use bitcoin::{BlockHash, Network};
use log::{debug, info, warn};
use tokio::sync::watch;

use super::db::ChainDb;
use super::error::StoreError;
use super::filter_store::{self, FilterStore, FILTERS_KEPT_BELOW_CONSUMED};
use super::header_store::{self, HeaderChange, HeaderStore, StoredHeader, STALE_HEADERS_KEPT};

/// How many blocks below the verified tip an engine restart starts from, so that a reorg that
/// happened while the engine was down (up to this deep) is still found.
pub const RESTART_DEPTH: u32 = 144;

/// Headers kept in memory after they are stored, so listeners catching up read them without
/// touching the database (about 150 bytes each).
const CACHED_HEADERS: usize = 10_000;
/// Bytes of verified filters kept in memory for the same reason.
const CACHED_FILTER_BYTES: usize = 8 * 1024 * 1024;

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
}

#[derive(Debug)]
struct Progress {
    last_log: Instant,
}

/// Recently stored entries, evicted oldest first once over a count or byte budget. Entries
/// are immutable (keyed by block hash), so a cached entry is never stale.
#[derive(Debug)]
struct Recent<V> {
    entries: std::collections::HashMap<BlockHash, (V, usize)>,
    order: std::collections::VecDeque<BlockHash>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V: Clone> Recent<V> {
    fn new(max_entries: usize, max_bytes: usize) -> Self {
        Self {
            entries: std::collections::HashMap::new(),
            order: std::collections::VecDeque::new(),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    fn get(&self, hash: &BlockHash) -> Option<V> {
        self.entries.get(hash).map(|(value, _)| value.clone())
    }

    fn insert(&mut self, hash: BlockHash, value: V, size: usize) {
        if let Some((_, old)) = self.entries.insert(hash, (value, size)) {
            self.bytes -= old;
        } else {
            self.order.push_back(hash);
        }
        self.bytes += size;
        while self.order.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, size)) = self.entries.remove(&oldest) {
                self.bytes -= size;
            }
        }
    }
}

/// Applies engine events to the stores and tracks the verified tip.
#[derive(Debug)]
pub struct ChainTracker {
    db: Arc<ChainDb>,
    headers: HeaderStore,
    filters: FilterStore,
    heights: watch::Sender<TrackedHeights>,
    progress: Mutex<Progress>,
    recent_headers: Mutex<Recent<StoredHeader>>,
    recent_filters: Mutex<Recent<Vec<u8>>>,
}

impl ChainTracker {
    /// A tracker over `db`. A store with no headers is seeded with the genesis block of
    /// `network` when starting from genesis.
    pub fn new(db: Arc<ChainDb>, network: Network) -> Result<Self, StoreError> {
        let headers = HeaderStore::new(db.clone());
        let filters = FilterStore::new(db.clone());
        if headers.is_empty()? {
            let genesis = bitcoin::constants::genesis_block(network).header;
            let hash = genesis.block_hash();
            db.write(|tx| {
                header_store::apply(
                    tx,
                    &HeaderChange::Connected {
                        height: 0,
                        header: genesis,
                    },
                )?;
                filter_store::set_verified_tip(tx, 0, &hash)
            })?;
        }
        let heights = TrackedHeights {
            header_tip: headers.tip()?.map(|tip| (tip.height, tip.block_hash())),
            verified_tip: filters.verified_tip()?,
            engine_synced: false,
        };
        Ok(Self {
            db,
            headers,
            filters,
            heights: watch::channel(heights).0,
            progress: Mutex::new(Progress {
                last_log: Instant::now(),
            }),
            recent_headers: Mutex::new(Recent::new(CACHED_HEADERS, usize::MAX)),
            recent_filters: Mutex::new(Recent::new(usize::MAX, CACHED_FILTER_BYTES)),
        })
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
    /// [`RESTART_DEPTH`] below the verified tip, so the engine re-verifies recent filters and can
    /// see reorgs that happened while it was down.
    pub fn start_point(&self) -> Result<StartPoint, StoreError> {
        let Some(tip) = self.headers.tip()? else {
            return Err(StoreError::Corrupt("header store is empty".into()));
        };
        let lowest = self.headers.lowest_active_height()?.unwrap_or(0);
        let verified = self.heights().verified_tip.map_or(lowest, |(h, _)| h);
        let from = verified.saturating_sub(RESTART_DEPTH).max(lowest);
        if from == tip.height {
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
    pub fn apply(&self, events: &[EngineEvent]) -> Result<(), StoreError> {
        let mut heights = self.heights();
        let mut synced = None;
        let mut new_headers = Vec::new();
        let mut new_filters = Vec::new();
        self.db.write(|tx| {
            for event in events {
                match event {
                    EngineEvent::Header(change) => {
                        match header_store::apply(tx, change) {
                            Ok(stored) => new_headers.extend(stored),
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
                            if let (Some(fork), Some((verified, _))) = (fork, heights.verified_tip)
                            {
                                if verified > fork {
                                    let hash = header_store::hash_at(tx, fork)?.ok_or_else(|| {
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
                        if header_store::hash_at(tx, *height)? == Some(*hash) {
                            filter_store::put(tx, hash, *height, content)?;
                            new_filters.push((*hash, content.clone()));
                        } else {
                            debug!("dropping filter of block {hash} at {height}: not on the active chain");
                        }
                    }
                    EngineEvent::Synced { height, hash } => synced = Some((*height, *hash)),
                }
            }
            // Advance the verified tip over every contiguous stored filter.
            if let Some((mut height, mut hash)) = heights.verified_tip {
                while let Some(next) = header_store::hash_at(tx, height + 1)? {
                    if !filter_store::contains(tx, &next)? {
                        break;
                    }
                    height += 1;
                    hash = next;
                }
                filter_store::set_verified_tip(tx, height, &hash)?;
                heights.verified_tip = Some((height, hash));
            }
            Ok(())
        })?;
        {
            let mut cache = self
                .recent_headers
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for header in new_headers {
                cache.insert(header.block_hash(), header, 1);
            }
        }
        {
            let mut cache = self
                .recent_filters
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            for (hash, content) in new_filters {
                let size = content.len();
                cache.insert(hash, content, size);
            }
        }
        heights.header_tip = self
            .headers
            .tip()?
            .map(|tip| (tip.height, tip.block_hash()));
        if let Some((height, hash)) = synced {
            heights.engine_synced = heights.verified_tip == Some((height, hash));
            info!("compact filters synced to height {height} ({hash})");
        } else if events.iter().any(|e| matches!(e, EngineEvent::Header(_))) {
            heights.engine_synced = false;
        }
        self.log_progress(&heights);
        self.heights.send_replace(heights);
        Ok(())
    }

    /// Marks the engine as restarting: it is not synced until it says so again.
    pub fn engine_restarting(&self) {
        self.heights.send_modify(|h| h.engine_synced = false);
    }

    /// Prunes what the listeners no longer need, given the height every listener consumed.
    pub fn prune(&self, consumed_height: u32) -> Result<(), StoreError> {
        let filters = self
            .filters
            .prune_below(consumed_height.saturating_sub(FILTERS_KEPT_BELOW_CONSUMED))?;
        let tip = self.heights().header_tip.map_or(0, |(h, _)| h);
        let stale = self.db.write(|tx| {
            header_store::prune_stale_below(tx, tip.saturating_sub(STALE_HEADERS_KEPT))
        })?;
        if filters + stale > 0 {
            debug!("pruned {filters} consumed filter(s) and {stale} stale header(s)");
        }
        Ok(())
    }

    /// The stored header of `hash`.
    pub fn header(&self, hash: &BlockHash) -> Result<Option<StoredHeader>, StoreError> {
        if let Some(header) = self
            .recent_headers
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(hash)
        {
            return Ok(Some(header));
        }
        self.headers.get(hash)
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
        self.filters.get(hash)
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

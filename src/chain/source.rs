//! ChainSource: the compact-filter chain backend as LDK sees it.
//!
//! It owns the supervised engine and the stores, and implements
//! [`lightning_block_sync::BlockSource`]: the best block is the verified tip (never a block
//! whose filter is not verified and stored), headers come from the header store (stale forks
//! included), and a block is delivered in full only when its filter matches the watch set;
//! every other block is delivered header-only. Full blocks pass the merkle-root and
//! witness-commitment checks; a stripped or altered block is fetched again.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{Block, BlockHash, Network};
use lightning_block_sync::{
    AsyncBlockSourceResult, BlockData, BlockHeaderData, BlockSource, BlockSourceError,
};
use log::{debug, error, warn};
use tokio::sync::broadcast;

use super::broadcaster::Broadcaster;
use super::checkpoints::Checkpoint;
use super::db::ChainDb;
use super::engine::{Engine, EngineConfig, EngineHost, PeerAddress};
use super::error::{FetchError, StoreError};
use super::fees::{self, FeeEstimates, FeeOverrides};
use super::filter_checks::{FilterCheck, FilterChecks};
use super::header_store::HeaderChange;
use super::listener::ChainListener;
use super::prefetch::{self, Prefetcher};
use super::tracker::{
    ChainTracker, EngineEvent, StartPoint, StoredFilter, TrackedHeights, RESTART_DEPTH,
};
use super::watch_set::WatchSet;
use crate::tasks::Supervisor;

/// How many times a block is requested before giving up for this poll round.
const FETCH_ATTEMPTS: u32 = 4;
/// Listeners far behind the verified tip are moved at most this many blocks per poll.
pub const MAX_BLOCKS_PER_POLL: u32 = 1_000;
/// Capacity of the notification channel.
const NOTIFICATION_CAPACITY: usize = 1_024;

/// Configuration of the chain source.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// The Bitcoin network.
    pub network: Network,
    /// Directory holding `chain.sqlite`.
    pub data_dir: PathBuf,
    /// Peers to connect to.
    pub peers: Vec<PeerAddress>,
    /// Connect only to `peers`.
    pub only_peers: bool,
    /// Number of peers that must agree on filter headers; `None` for the network's default
    /// (1 on regtest, 2 elsewhere).
    pub required_peers: Option<u8>,
    /// How long a block download waits while no peer is connected before it is given up
    /// (a download in progress has no limit of its own: see `response_timeout`).
    pub block_timeout: Duration,
    /// How long a peer may take to answer one request, a whole block included, before it is
    /// dropped and another peer asked: long enough for the largest block over a slow link
    /// (a 4 MB block at 300 kbit/s takes about 110 s).
    pub response_timeout: Duration,
    /// Fixed fee estimates that replace computed ones.
    pub fee_overrides: FeeOverrides,
    /// Blocks between fee samples of the tip while the node is idle; `None` for the
    /// network's default ([`fees::default_idle_interval`]).
    pub fee_sample_interval: Option<u32>,
    /// Once the engine synced this many headers past where it started, it is restarted from
    /// the stored chain so the headers it holds in memory are released.
    pub compact_after_headers: u32,
    /// Where a new header chain starts (nothing at or below it is downloaded); genesis when
    /// `None`. A database that has a chain keeps where it started.
    pub start: Option<Checkpoint>,
}

impl ChainConfig {
    /// Defaults for `network` with data in `data_dir`.
    pub fn new(network: Network, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            network,
            data_dir: data_dir.into(),
            peers: Vec::new(),
            only_peers: false,
            required_peers: None,
            block_timeout: if network == Network::Regtest {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(30)
            },
            response_timeout: if network == Network::Regtest {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(120)
            },
            fee_overrides: FeeOverrides::new(),
            fee_sample_interval: None,
            compact_after_headers: super::engine::COMPACT_AFTER_HEADERS,
            start: None,
        }
    }

    /// The filter-header quorum in effect.
    pub fn quorum(&self) -> u8 {
        self.required_peers.unwrap_or(match self.network {
            Network::Regtest => 1,
            _ => 2,
        })
    }
}

/// Something the chain source observed, for the broadcaster and the fee estimator.
#[derive(Debug, Clone)]
pub enum ChainNotification {
    /// A peer completed its handshake.
    PeerConnected,
    /// A verified block was downloaded (for the listeners or for fee sampling).
    BlockFetched {
        /// The block.
        block: Arc<Block>,
        /// Its height.
        height: u32,
    },
    /// The verified tip moved.
    NewTip {
        /// Height of the tip.
        height: u32,
        /// Hash of the tip.
        hash: BlockHash,
    },
}

/// Why a block is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPurpose {
    /// Its filter matched the watch set.
    Listeners,
    /// A sample for fee estimation.
    FeeSample,
}

/// Bytes and blocks downloaded, by purpose.
#[derive(Debug, Default)]
pub struct DownloadStats {
    blocks_for_listeners: AtomicU64,
    bytes_for_listeners: AtomicU64,
    blocks_for_fees: AtomicU64,
    bytes_for_fees: AtomicU64,
    refetches: AtomicU64,
    /// Payload bytes of headers, filter headers, filters and blocks received from peers.
    received: AtomicU64,
    recent: Mutex<VecDeque<(BlockHash, FetchPurpose)>>,
}

/// Payload bytes of one header in a `headers` message (80 and a transaction count).
const HEADER_BYTES: u64 = 81;
/// Payload bytes that come with each filter besides its content: its filter header in
/// `cfheaders`, and the filter type and block hash in `cfilter`.
const FILTER_OVERHEAD_BYTES: u64 = 32 + 1 + 32;

/// Payload bytes the engine received from peers to report `events`.
fn bytes_of(events: &[EngineEvent]) -> u64 {
    events
        .iter()
        .map(|event| match event {
            EngineEvent::Header(HeaderChange::Connected { .. } | HeaderChange::Fork { .. }) => {
                HEADER_BYTES
            }
            EngineEvent::Header(HeaderChange::Reorganized { accepted, .. }) => {
                HEADER_BYTES * accepted.len() as u64
            }
            EngineEvent::Filter { content, .. } => content.len() as u64 + FILTER_OVERHEAD_BYTES,
            EngineEvent::Synced { .. } => 0,
        })
        .sum()
}

/// A copy of [`DownloadStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadCounts {
    /// Blocks downloaded because their filter matched.
    pub blocks_for_listeners: u64,
    /// Their serialized size.
    pub bytes_for_listeners: u64,
    /// Blocks downloaded as fee samples.
    pub blocks_for_fees: u64,
    /// Their serialized size.
    pub bytes_for_fees: u64,
    /// Blocks requested again after failing verification or timing out.
    pub refetches: u64,
    /// Payload bytes of the headers, filter headers, filters and blocks received from
    /// Bitcoin peers since the chain source started (counted from the messages, so a little
    /// below what the sockets carried: message framing and other messages are left out).
    pub bytes_received: u64,
}

/// Sync status for the control API.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SyncStatus {
    /// Tip of the header chain.
    pub header_height: u32,
    /// Highest block with a verified filter.
    pub filter_height: u32,
    /// The verified tip's hash.
    pub filter_tip: Option<BlockHash>,
    /// Height the listeners have been brought to, once they have been.
    pub listeners_height: Option<u32>,
    /// Connected Bitcoin peers.
    pub peers: usize,
    /// Headers, filters and listeners all at the same tip and the engine reports itself synced.
    pub synced: bool,
    /// How often the engine was restarted.
    pub engine_restarts: u64,
    /// Height of the block the stored chain starts from (genesis or a start point).
    pub start_height: u32,
    /// See [`DownloadCounts::bytes_received`].
    pub bytes_received: u64,
}

/// The compact-filter chain source.
pub struct ChainSource {
    config: ChainConfig,
    tracker: Arc<ChainTracker>,
    engine: Arc<Engine>,
    watch: Arc<WatchSet>,
    listener: Arc<ChainListener>,
    checks: Arc<Mutex<FilterChecks>>,
    prefetcher: Arc<Prefetcher>,
    stats: Arc<DownloadStats>,
    notifications: broadcast::Sender<ChainNotification>,
    broadcaster: Arc<Broadcaster>,
    fees: Arc<FeeEstimates>,
    host: Arc<Host>,
    supervisor: Arc<Supervisor>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
}

impl std::fmt::Debug for ChainSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ChainSource")
            .field("network", &self.config.network)
            .field("heights", &self.tracker.heights())
            .finish()
    }
}

impl SyncStatus {
    /// How much of the sync is done, from 0.0 to 1.0 (only when synced): the blocks the
    /// filters and the listeners both reached, of those from the chain's start to the header
    /// tip. Headers come first, so while they are fetched this stays near 0.
    pub fn progress(&self) -> f64 {
        if self.synced {
            return 1.0;
        }
        let reached = self
            .listeners_height
            .map_or(self.filter_height, |listeners| {
                listeners.min(self.filter_height)
            });
        let total = self.header_height.saturating_sub(self.start_height);
        if total == 0 {
            return 0.0;
        }
        let done = reached.saturating_sub(self.start_height);
        (f64::from(done) / f64::from(total)).min(0.999)
    }
}

impl ChainSource {
    /// Opens the chain database in `config.data_dir` and starts the engine, the broadcaster
    /// and the fee sampler on the current tokio runtime.
    pub fn start(
        config: ChainConfig,
        watch: Arc<WatchSet>,
        listener: Arc<ChainListener>,
    ) -> Result<Arc<Self>, StoreError> {
        let source = Self::open(config, watch, listener)?;
        source.start_engine();
        Ok(source)
    }

    /// Opens the chain database in `config.data_dir` and starts the broadcaster and the fee
    /// sampler, but not the engine: nothing is asked of a peer until [`Self::start_engine`] or
    /// [`Self::cover_listeners_from`], so that the engine's first start point can take the
    /// listeners' saved positions into account.
    pub fn open(
        config: ChainConfig,
        watch: Arc<WatchSet>,
        listener: Arc<ChainListener>,
    ) -> Result<Arc<Self>, StoreError> {
        let db = Arc::new(ChainDb::open(
            &config.data_dir.join("chain.sqlite"),
            config.network,
        )?);
        let tracker = Arc::new(ChainTracker::starting_at(
            db.clone(),
            config.network,
            config.start,
        )?);
        let (notifications, _) = broadcast::channel(NOTIFICATION_CAPACITY);
        let checks = Arc::new(Mutex::new(FilterChecks::default()));
        let (prefetcher, fetch_requests) = Prefetcher::new();
        let prefetcher = Arc::new(prefetcher);
        let engine = Engine::new();
        let stats = Arc::new(DownloadStats::default());
        let host = Arc::new(Host {
            stats: stats.clone(),
            tracker: tracker.clone(),
            notifications: notifications.clone(),
            listener: listener.clone(),
            watch: watch.clone(),
            checks: checks.clone(),
            prefetcher: prefetcher.clone(),
            listeners_floor: AtomicU32::new(NO_FLOOR),
            restart_depth: AtomicU32::new(RESTART_DEPTH),
            gap_restart_at: Mutex::new(None),
            engine: engine.clone(),
        });
        let supervisor = Supervisor::new();
        let broadcaster = Arc::new(Broadcaster::new(engine.clone(), db)?);
        let fees = FeeEstimates::new(config.network, config.fee_overrides.clone());
        let fees = Arc::new(match config.fee_sample_interval {
            Some(blocks) => fees.with_idle_interval(blocks),
            None => fees,
        });
        let source = Arc::new(Self {
            config,
            tracker,
            engine,
            watch,
            listener,
            checks,
            prefetcher,
            stats: stats.clone(),
            broadcaster: broadcaster.clone(),
            fees: fees.clone(),
            notifications,
            host,
            supervisor: supervisor.clone(),
            tasks: Mutex::new(Vec::new()),
        });
        let broadcasting = supervisor.spawn("broadcaster", broadcaster.run(source.subscribe()));
        let sampling = supervisor.spawn("fee sampler", fees::run_sampler(source.clone(), fees));
        let prefetching = supervisor.spawn(
            "block prefetcher",
            prefetch::run_fetcher(source.clone(), fetch_requests),
        );
        source
            .tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .extend([broadcasting, sampling, prefetching]);
        Ok(source)
    }

    /// Starts the engine, unless it runs already.
    pub fn start_engine(&self) {
        let config = &self.config;
        self.engine.start(
            EngineConfig {
                network: config.network,
                peers: config.peers.clone(),
                only_peers: config.only_peers,
                required_peers: config.quorum(),
                response_timeout: config.response_timeout,
                compact_after_headers: config.compact_after_headers,
            },
            self.host.clone(),
            &self.supervisor,
        );
    }

    /// Prepares the chain source for listeners about to be synchronised from `height` (the
    /// lowest block any of them stands on, or its fork point with the active chain): the
    /// engine's chain must hold every block above it, so the engine is started, or restarted
    /// when it runs from higher up; and every filter from there to the verified tip must be
    /// stored, so a gap (filters pruned while a listener's saved position lagged behind its
    /// position in memory, before a crash) lowers the verified tip to below the gap, and the
    /// engine fetches those filters again.
    pub fn cover_listeners_from(&self, height: u32) -> Result<(), StoreError> {
        self.host.listeners_floor.store(height, Ordering::SeqCst);
        let gap = self
            .tracker
            .lower_verified_tip_to_stored_filters_from(height)?;
        if !self.engine.is_started() {
            self.start_engine();
        } else if gap
            || self
                .engine
                .start_height()
                .is_some_and(|start| start >= height)
        {
            self.engine.restart(format!(
                "listeners need blocks and filters from height {height}"
            ));
        }
        Ok(())
    }

    /// The supervisor of the engine, the broadcaster, the fee sampler and the prefetcher:
    /// one that panics or ends before [`ChainSource::shutdown`] is reported there.
    pub fn supervisor(&self) -> &Arc<Supervisor> {
        &self.supervisor
    }

    /// The broadcaster (LDK's `BroadcasterInterface`).
    pub fn broadcaster(&self) -> &Arc<Broadcaster> {
        &self.broadcaster
    }

    /// The fee estimator (LDK's `FeeEstimator`).
    pub fn fee_estimator(&self) -> &Arc<FeeEstimates> {
        &self.fees
    }

    /// The most recent downloads (up to a thousand), oldest first, with their purpose.
    pub fn recent_downloads(&self) -> Vec<(BlockHash, FetchPurpose)> {
        self.stats
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// The network this source follows.
    pub fn network(&self) -> Network {
        self.config.network
    }

    /// The watch set consulted for every block.
    pub fn watch_set(&self) -> &Arc<WatchSet> {
        &self.watch
    }

    /// The fan-out listener this source drives.
    pub fn listener(&self) -> &Arc<ChainListener> {
        &self.listener
    }

    /// The tracker (stores and heights).
    pub fn tracker(&self) -> &Arc<ChainTracker> {
        &self.tracker
    }

    /// The supervised engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// Subscribes to notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainNotification> {
        self.notifications.subscribe()
    }

    /// Heights of headers and verified filters.
    pub fn heights(&self) -> TrackedHeights {
        self.tracker.heights()
    }

    /// Download counters.
    pub fn download_counts(&self) -> DownloadCounts {
        DownloadCounts {
            blocks_for_listeners: self.stats.blocks_for_listeners.load(Ordering::Relaxed),
            bytes_for_listeners: self.stats.bytes_for_listeners.load(Ordering::Relaxed),
            blocks_for_fees: self.stats.blocks_for_fees.load(Ordering::Relaxed),
            bytes_for_fees: self.stats.bytes_for_fees.load(Ordering::Relaxed),
            refetches: self.stats.refetches.load(Ordering::Relaxed),
            bytes_received: self.stats.received.load(Ordering::Relaxed),
        }
    }

    /// Current sync status.
    pub async fn status(&self) -> SyncStatus {
        let heights = self.tracker.heights();
        let header_height = heights.header_tip.map_or(0, |(h, _)| h);
        let filter_height = heights.verified_tip.map_or(0, |(h, _)| h);
        let listeners_height = self.listener.tip().map(|t| t.height);
        SyncStatus {
            header_height,
            filter_height,
            filter_tip: heights.verified_tip.map(|(_, hash)| hash),
            listeners_height,
            peers: self.engine.peer_count().await,
            synced: heights.engine_synced
                && filter_height == header_height
                && listeners_height.is_none_or(|h| h == filter_height),
            engine_restarts: self.engine.restarts(),
            start_height: self.tracker.chain_start().height,
            bytes_received: self.stats.received.load(Ordering::Relaxed),
        }
    }

    /// Stops the engine; the broadcaster and fee sampler stop with it.
    pub fn shutdown(&self) {
        self.supervisor.stopping();
        self.engine.shutdown();
        let _ = self.notifications.send(ChainNotification::PeerConnected);
    }

    /// Stops the engine, the broadcaster and the fee sampler and waits (a few seconds at
    /// most) until they have finished, so nothing writes to the chain database afterwards.
    pub async fn stop(&self) {
        self.shutdown();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        let all = async {
            self.engine.stopped().await;
            for task in tasks {
                let _ = task.await;
            }
        };
        if tokio::time::timeout(Duration::from_secs(10), all)
            .await
            .is_err()
        {
            warn!("the chain source did not stop within 10 s");
        }
    }

    /// Downloads block `hash` and verifies it (merkle root and witness commitment), asking
    /// again (the engine picks a peer at random) when a peer's copy fails verification or
    /// does not arrive in time.
    pub async fn fetch_verified_block(
        &self,
        hash: BlockHash,
        purpose: FetchPurpose,
    ) -> Result<Block, FetchError> {
        let mut last_failure = String::new();
        for attempt in 1..=FETCH_ATTEMPTS {
            if attempt > 1 {
                self.stats.refetches.fetch_add(1, Ordering::Relaxed);
            }
            match self.engine.get_block(hash, self.config.block_timeout).await {
                Ok(block) => {
                    if let Some(failure) = verification_failure(&block, &hash) {
                        warn!(
                            "block {hash} from a peer failed verification ({failure}); \
                             requesting it again (attempt {attempt} of {FETCH_ATTEMPTS})"
                        );
                        last_failure = failure;
                        continue;
                    }
                    let size = bitcoin::consensus::serialize(&block).len() as u64;
                    let (blocks, bytes) = match purpose {
                        FetchPurpose::Listeners => (
                            &self.stats.blocks_for_listeners,
                            &self.stats.bytes_for_listeners,
                        ),
                        FetchPurpose::FeeSample => {
                            (&self.stats.blocks_for_fees, &self.stats.bytes_for_fees)
                        }
                    };
                    blocks.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(size, Ordering::Relaxed);
                    self.stats.received.fetch_add(size, Ordering::Relaxed);
                    {
                        let mut recent =
                            self.stats.recent.lock().unwrap_or_else(|p| p.into_inner());
                        recent.push_back((hash, purpose));
                        if recent.len() > 1_000 {
                            recent.pop_front();
                        }
                    }
                    if let Ok(Some(stored)) = self.tracker.header(&hash) {
                        let _ = self.notifications.send(ChainNotification::BlockFetched {
                            block: Arc::new(block.clone()),
                            height: stored.height,
                        });
                    }
                    return Ok(block);
                }
                Err(FetchError::Timeout(_)) => {
                    debug!("block {hash} did not arrive in time (attempt {attempt})");
                    last_failure = "no peer answered in time".into();
                }
                Err(other) => return Err(other),
            }
        }
        Err(FetchError::Invalid {
            hash,
            reason: last_failure,
        })
    }

    /// If the watch set grew since the last delivered block's filter was checked and that
    /// block went out header-only, checks its filter against the new scripts and, on a match,
    /// re-delivers it with its transactions. Runs before the next block is fetched and at the
    /// end of every poll round, so no later block reaches the listeners first. The check is
    /// recorded only once the block was re-delivered (or did not match): a failed fetch is
    /// tried again the next time, and blocks the listeners wait meanwhile. A block whose check
    /// was forgotten is checked against every script; one whose filter is gone or cannot be
    /// read is fetched.
    pub async fn recheck_last_delivery(&self) -> Result<(), FetchError> {
        let Some((hash, height)) = self.listener.last_header_only_delivery() else {
            return Ok(());
        };
        let checked_at = self.checks().get(&hash).map(|check| check.generation);
        if checked_at == Some(self.watch.generation()) {
            return Ok(());
        }
        let (matched, generation) = match self.tracker.filter(&hash) {
            Ok(Some(filter)) => self
                .watch
                .filter_matches_since(&filter, &hash, checked_at.unwrap_or(0))
                .unwrap_or_else(|err| {
                    warn!("filter of block {hash} cannot be read ({err}); fetching the block");
                    (true, self.watch.generation())
                }),
            Ok(None) => {
                warn!("filter of block {hash} is no longer stored; fetching the block");
                (true, self.watch.generation())
            }
            Err(err) => return Err(FetchError::Store(err)),
        };
        if matched {
            debug!(
                "block {hash} at {height} matches scripts registered after its filter was \
                 checked; re-delivering it"
            );
            let block = self
                .fetch_verified_block(hash, FetchPurpose::Listeners)
                .await?;
            self.listener.redeliver_with_transactions(&block);
        }
        self.checks().record(
            hash,
            FilterCheck {
                matched,
                generation,
            },
        );
        Ok(())
    }

    fn checks(&self) -> std::sync::MutexGuard<'_, FilterChecks> {
        self.checks.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Checks the filter of block `hash` against the watch set, for the scripts added since
    /// an earlier check if there was one (filters are checked as they arrive).
    fn check_filter(&self, hash: &BlockHash) -> Result<FilterCheck, BlockSourceError> {
        let earlier = self.checks().get(hash);
        if let Some(check) = earlier {
            if check.matched || check.generation == self.watch.generation() {
                return Ok(check);
            }
        }
        let filter = self
            .tracker
            .filter(hash)
            .map_err(BlockSourceError::transient)?
            .ok_or_else(|| {
                BlockSourceError::transient(format!("filter of block {hash} is not stored yet"))
            })?;
        let since = earlier.map_or(0, |check| check.generation);
        // A filter that verified against the filter headers but cannot be decoded (a lying
        // peer's, agreed by the quorum) tells nothing: the block is fetched and checked itself.
        let (matched, generation) = self
            .watch
            .filter_matches_since(&filter, hash, since)
            .unwrap_or_else(|err| {
                warn!("filter of block {hash} cannot be read ({err}); fetching the block");
                (true, self.watch.generation())
            });
        let check = FilterCheck {
            matched,
            generation,
        };
        self.checks().record(*hash, check);
        Ok(check)
    }

    async fn block_for_listeners(&self, hash: BlockHash) -> Result<BlockData, BlockSourceError> {
        if let Err(err) = self.recheck_last_delivery().await {
            return Err(BlockSourceError::transient(err));
        }
        let stored = self
            .tracker
            .header(&hash)
            .map_err(BlockSourceError::transient)?
            .ok_or_else(|| BlockSourceError::transient(format!("unknown block {hash}")))?;
        let check = self.check_filter(&hash)?;
        if !check.matched {
            return Ok(BlockData::HeaderOnly(stored.header));
        }
        debug!(
            "filter of block {hash} at {} matches a watched script",
            stored.height
        );
        if let Some(block) = self.prefetcher.take(&hash).await {
            return Ok(BlockData::FullBlock(block));
        }
        let block = self
            .fetch_verified_block(hash, FetchPurpose::Listeners)
            .await
            .map_err(|err| {
                warn!("could not fetch matching block {hash}: {err}");
                BlockSourceError::transient(err)
            })?;
        Ok(BlockData::FullBlock(block))
    }
}

/// Why `block` cannot be handed to listeners as block `expected`, if it cannot.
fn verification_failure(block: &Block, expected: &BlockHash) -> Option<String> {
    if block.block_hash() != *expected {
        return Some(format!("got block {} instead", block.block_hash()));
    }
    if !block.check_merkle_root() {
        return Some("merkle root does not match the transactions".into());
    }
    if has_duplicate_transactions(block) {
        return Some(
            "it lists a transaction twice, which leaves the merkle root unchanged \
             (CVE-2012-2459): the block was mutated"
                .into(),
        );
    }
    if is_stripped(block) {
        return Some(
            "its coinbase commits to witness data but carries none: the block was stripped".into(),
        );
    }
    if !block.check_witness_commitment() {
        return Some("witness commitment does not match the witness data".into());
    }
    None
}

/// Whether `block` lists a transaction more than once. A block whose transaction list ends
/// with a repeated run of transactions has the same merkle root as the real one (Core flags
/// it "mutated" when two sibling hashes of the tree are equal, which means repeated
/// transactions); no valid block holds the same transaction twice.
fn has_duplicate_transactions(block: &Block) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(block.txdata.len());
    !block.txdata.iter().all(|tx| seen.insert(tx.compute_txid()))
}

/// Whether `block` commits to witness data in its coinbase but carries no coinbase witness.
/// `check_witness_commitment` alone accepts such a block when every witness was removed, and
/// a block without witnesses hides the HTLC preimages LDK looks for. A commitment is an output
/// of at least 38 bytes starting with the commitment header, as Core counts it.
fn is_stripped(block: &Block) -> bool {
    const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    const COMMITMENT_MIN_LEN: usize = 38;
    let Some(coinbase) = block.txdata.first() else {
        return false;
    };
    let commits = coinbase.output.iter().any(|out| {
        let script = out.script_pubkey.as_bytes();
        script.len() >= COMMITMENT_MIN_LEN && script.starts_with(&COMMITMENT_PREFIX)
    });
    commits
        && coinbase
            .input
            .first()
            .is_none_or(|input| input.witness.is_empty())
}

impl BlockSource for ChainSource {
    fn get_header<'a>(
        &'a self,
        header_hash: &'a BlockHash,
        height_hint: Option<u32>,
    ) -> AsyncBlockSourceResult<'a, BlockHeaderData> {
        Box::pin(async move {
            let stored = self
                .tracker
                .header_near(header_hash, height_hint)
                .map_err(BlockSourceError::transient)?
                .ok_or_else(|| {
                    BlockSourceError::transient(format!("header {header_hash} is not known"))
                })?;
            Ok(BlockHeaderData {
                header: stored.header,
                height: stored.height,
                chainwork: stored.chainwork,
            })
        })
    }

    fn get_block<'a>(
        &'a self,
        header_hash: &'a BlockHash,
    ) -> AsyncBlockSourceResult<'a, BlockData> {
        Box::pin(self.block_for_listeners(*header_hash))
    }

    fn get_best_block(&self) -> AsyncBlockSourceResult<'_, (BlockHash, Option<u32>)> {
        Box::pin(async move {
            let (height, hash) = self
                .tracker
                .heights()
                .verified_tip
                .ok_or_else(|| BlockSourceError::transient("no verified block yet"))?;
            // Far behind, listeners are brought up in steps: LDK holds the whole path from
            // their block to the reported tip in memory while connecting it.
            if let Some(listeners) = self.listener.tip() {
                let step = listeners.height.saturating_add(MAX_BLOCKS_PER_POLL);
                if height > step {
                    if let Some(hash) = self
                        .tracker
                        .headers()
                        .hash_at(step)
                        .map_err(BlockSourceError::transient)?
                    {
                        return Ok((hash, Some(step)));
                    }
                }
            }
            Ok((hash, Some(height)))
        })
    }
}

/// [`Host::listeners_floor`] before any is given.
const NO_FLOOR: u32 = u32::MAX;

/// The engine's view of the rest of the chain source.
struct Host {
    tracker: Arc<ChainTracker>,
    stats: Arc<DownloadStats>,
    notifications: broadcast::Sender<ChainNotification>,
    listener: Arc<ChainListener>,
    watch: Arc<WatchSet>,
    checks: Arc<Mutex<FilterChecks>>,
    prefetcher: Arc<Prefetcher>,
    /// Where the lowest listener stands before the listeners are synchronised
    /// ([`ChainSource::cover_listeners_from`]); [`NO_FLOOR`] if not given.
    listeners_floor: AtomicU32,
    /// How far below the verified tip the engine starts: [`RESTART_DEPTH`], doubled each time
    /// a peer's chain forked below the engine's start, until a sync completes.
    restart_depth: AtomicU32,
    /// The verified tip when the engine was last restarted to fill a gap in the filters of
    /// the active chain: a second restart for the same gap would only repeat the first.
    gap_restart_at: Mutex<Option<Option<(u32, BlockHash)>>>,
    engine: Arc<Engine>,
}

impl Host {
    /// Checks the filters a batch stored for blocks the listeners have yet to reach, and
    /// requests the matching blocks ahead of them. The checks are recorded after all are
    /// made, so listeners asking for blocks meanwhile do not wait for the whole batch.
    fn check_ahead(&self, stored: &[StoredFilter<'_>], listeners_at: Option<u32>) {
        let checked: Vec<(&StoredFilter<'_>, FilterCheck)> = stored
            .iter()
            .filter(|filter| listeners_at.is_none_or(|at| filter.height > at))
            .map(|filter| {
                let content = bitcoin::bip158::BlockFilter::new(filter.content);
                // An unreadable filter tells nothing: its block is fetched.
                let (matched, generation) = self
                    .watch
                    .filter_matches(&content, &filter.hash)
                    .unwrap_or((true, self.watch.generation()));
                (
                    filter,
                    FilterCheck {
                        matched,
                        generation,
                    },
                )
            })
            .collect();
        {
            let mut checks = self.checks.lock().unwrap_or_else(|p| p.into_inner());
            for (filter, check) in &checked {
                checks.record(filter.hash, *check);
            }
        }
        for (filter, _) in checked.iter().filter(|(_, check)| check.matched) {
            self.prefetcher
                .request(filter.hash, filter.height, listeners_at);
        }
    }
}

impl EngineHost for Host {
    fn start_point(&self) -> Result<StartPoint, String> {
        // Once synchronised the listeners move together; before that, the lowest saved
        // position counts. The engine starts one block below it: it cannot fetch the block it
        // starts from, and a re-delivery fetches the listeners' own block again.
        let floor = self.listeners_floor.load(Ordering::SeqCst);
        let listeners_at = self
            .listener
            .tip()
            .map(|tip| tip.height)
            .or((floor != NO_FLOOR).then_some(floor))
            .map(|height| height.saturating_sub(1));
        self.tracker
            .start_point_at_depth(listeners_at, self.restart_depth.load(Ordering::SeqCst))
            .map_err(|err| format!("cannot read the stored chain: {err}"))
    }

    fn may_restart_from_tip(&self) -> bool {
        // The engine serves blocks of its own chain only: a restart near the tip must not
        // leave behind listeners that still need older blocks.
        let verified = self.tracker.heights().verified_tip.map_or(0, |(h, _)| h);
        self.listener
            .tip()
            .is_some_and(|tip| tip.height + RESTART_DEPTH >= verified)
    }

    fn apply(&self, events: Vec<EngineEvent>) {
        self.stats
            .received
            .fetch_add(bytes_of(&events), Ordering::Relaxed);
        let before = self.tracker.heights();
        let listeners_at = self.listener.tip().map(|tip| tip.height);
        if let Some(height) = listeners_at {
            self.tracker.note_listeners_at(height);
        }
        let applied = self
            .tracker
            .apply(&events, |stored| self.check_ahead(stored, listeners_at));
        if let Err(err) = applied {
            // The engine moved on as if the batch were stored; what it sends next would not
            // connect. It starts again from what is stored.
            error!(
                "could not store what the compact-filter engine learned: {err}; restarting it \
                 from the stored chain"
            );
            self.engine
                .restart_after_failure(format!("storing what it learned failed: {err}"));
            return;
        }
        let after = self.tracker.heights();
        if after.engine_synced {
            self.restart_depth.store(RESTART_DEPTH, Ordering::SeqCst);
        }
        self.restart_if_filters_are_missing(&events, &after);
        // A tip is news when it moves, and again when the engine declares itself synced at it
        // (samplers wait for that).
        let became_synced = after.engine_synced && !before.engine_synced;
        if after.verified_tip != before.verified_tip || became_synced {
            if let Some((height, hash)) = after.verified_tip {
                let _ = self
                    .notifications
                    .send(ChainNotification::NewTip { height, hash });
            }
        }
    }

    fn peer_connected(&self) {
        let _ = self.notifications.send(ChainNotification::PeerConnected);
    }

    fn engine_stopped(&self) {
        self.tracker.engine_restarting();
    }

    fn headers_did_not_connect(&self) {
        let depth = self.restart_depth.load(Ordering::SeqCst);
        let deeper = depth.saturating_mul(2);
        self.restart_depth.store(deeper, Ordering::SeqCst);
        self.engine.restart(format!(
            "a peer's chain forks more than {depth} blocks below the verified tip; starting \
             {deeper} blocks below it"
        ));
    }
}

impl Host {
    /// Restarts the engine when it reports its filters synced to the header tip while the
    /// verified tip stays below: filters of active blocks are missing that it will not send
    /// again (a branch that became active again after its filters were replaced by another
    /// branch's). A fresh run fetches every filter above its start point.
    fn restart_if_filters_are_missing(&self, events: &[EngineEvent], after: &TrackedHeights) {
        let synced = events.iter().rev().find_map(|event| match event {
            EngineEvent::Synced { height, hash } => Some((*height, *hash)),
            _ => None,
        });
        let Some(synced) = synced else {
            return;
        };
        if after.verified_tip == Some(synced) || after.header_tip != Some(synced) {
            return;
        }
        let verified = after.verified_tip.map_or(0, |(height, _)| height);
        let mut restarted_at = self
            .gap_restart_at
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if *restarted_at == Some(after.verified_tip) {
            warn!(
                "filters of the active chain above height {verified} are still missing after a \
                 restart of the compact-filter engine"
            );
            return;
        }
        *restarted_at = Some(after.verified_tip);
        self.engine.restart(format!(
            "it reports filters synced to height {} but those above {verified} are missing",
            synced.0
        ));
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version as TxVersion;
    use bitcoin::{
        Amount, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
        TxOut, Witness,
    };

    use super::*;

    fn coinbase_paying(scripts: &[&[u8]]) -> Transaction {
        Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(vec![1, 1]),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: scripts
                .iter()
                .map(|script| TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(script.to_vec()),
                })
                .collect(),
        }
    }

    fn block_of(txdata: Vec<Transaction>) -> Block {
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 0,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("transactions");
        block
    }

    #[test]
    fn only_outputs_of_at_least_38_bytes_count_as_witness_commitments() {
        let header = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        let short = block_of(vec![coinbase_paying(&[&header])]);
        assert!(
            !is_stripped(&short),
            "a 6-byte output is no commitment, so no witness is missing"
        );
        let mut commitment = header.to_vec();
        commitment.extend([0; 32]);
        let committed = block_of(vec![coinbase_paying(&[&commitment])]);
        assert!(
            is_stripped(&committed),
            "a commitment without a coinbase witness"
        );
    }

    #[test]
    fn a_block_repeating_its_last_transaction_is_mutated_though_its_merkle_root_matches() {
        let spend = |n: u8| Transaction {
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
                ..coinbase_paying(&[]).input[0].clone()
            }],
            ..coinbase_paying(&[&[0x51]])
        };
        let honest = block_of(vec![coinbase_paying(&[&[0x51]]), spend(1), spend(2)]);
        let mut mutated = honest.clone();
        mutated.txdata.push(spend(2));
        assert!(
            mutated.check_merkle_root(),
            "the mutation keeps the merkle root"
        );
        assert_eq!(verification_failure(&honest, &honest.block_hash()), None);
        let failure = verification_failure(&mutated, &honest.block_hash()).expect("refused");
        assert!(failure.contains("CVE-2012-2459"), "{failure}");
    }
}

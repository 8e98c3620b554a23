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
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{Block, BlockHash, Network};
use lightning_block_sync::{
    AsyncBlockSourceResult, BlockData, BlockHeaderData, BlockSource, BlockSourceError,
};
use log::{debug, error, warn};
use tokio::sync::broadcast;

use super::broadcaster::Broadcaster;
use super::db::ChainDb;
use super::engine::{Engine, EngineConfig, EngineHost, PeerAddress};
use super::error::{FetchError, StoreError};
use super::fees::{self, FeeEstimates, FeeOverrides};
use super::filter_checks::{FilterCheck, FilterChecks};
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
    /// How long a peer has to deliver a requested block before another one is asked.
    pub block_timeout: Duration,
    /// Fixed fee estimates that replace computed ones.
    pub fee_overrides: FeeOverrides,
    /// Once the engine synced this many headers past where it started, it is restarted from
    /// the stored chain so the headers it holds in memory are released.
    pub compact_after_headers: u32,
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
            fee_overrides: FeeOverrides::new(),
            compact_after_headers: super::engine::COMPACT_AFTER_HEADERS,
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
    recent: Mutex<VecDeque<(BlockHash, FetchPurpose)>>,
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
    stats: DownloadStats,
    notifications: broadcast::Sender<ChainNotification>,
    broadcaster: Arc<Broadcaster>,
    fees: Arc<FeeEstimates>,
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

impl ChainSource {
    /// Opens the chain database in `config.data_dir` and starts the engine, the broadcaster
    /// and the fee sampler on the current tokio runtime.
    pub fn start(
        config: ChainConfig,
        watch: Arc<WatchSet>,
        listener: Arc<ChainListener>,
    ) -> Result<Arc<Self>, StoreError> {
        let db = Arc::new(ChainDb::open(
            &config.data_dir.join("chain.sqlite"),
            config.network,
        )?);
        let tracker = Arc::new(ChainTracker::new(db.clone(), config.network)?);
        let (notifications, _) = broadcast::channel(NOTIFICATION_CAPACITY);
        let checks = Arc::new(Mutex::new(FilterChecks::default()));
        let (prefetcher, fetch_requests) = Prefetcher::new();
        let prefetcher = Arc::new(prefetcher);
        let host = Arc::new(Host {
            tracker: tracker.clone(),
            notifications: notifications.clone(),
            listener: listener.clone(),
            watch: watch.clone(),
            checks: checks.clone(),
            prefetcher: prefetcher.clone(),
        });
        let supervisor = Supervisor::new();
        let engine = Engine::spawn(
            EngineConfig {
                network: config.network,
                peers: config.peers.clone(),
                only_peers: config.only_peers,
                required_peers: config.quorum(),
                response_timeout: config.block_timeout.min(Duration::from_secs(10)),
                compact_after_headers: config.compact_after_headers,
            },
            host,
            &supervisor,
        );
        let broadcaster = Arc::new(Broadcaster::new(engine.clone(), db)?);
        let fees = Arc::new(FeeEstimates::new(
            config.network,
            config.fee_overrides.clone(),
        ));
        let source = Arc::new(Self {
            config,
            tracker,
            engine,
            watch,
            listener,
            checks,
            prefetcher,
            stats: DownloadStats::default(),
            broadcaster: broadcaster.clone(),
            fees: fees.clone(),
            notifications,
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
    /// end of every poll round, so no later block reaches the listeners first.
    pub async fn recheck_last_delivery(&self) -> Result<(), FetchError> {
        let Some((hash, height)) = self.listener.last_header_only_delivery() else {
            return Ok(());
        };
        let Some(FilterCheck {
            generation: checked_at,
            ..
        }) = self.checks().get(&hash)
        else {
            return Ok(());
        };
        if self.watch.generation() == checked_at {
            return Ok(());
        }
        let filter = match self.tracker.filter(&hash) {
            Ok(Some(filter)) => filter,
            Ok(None) => {
                warn!("cannot re-check block {hash}: its filter is no longer stored");
                return Ok(());
            }
            Err(err) => {
                error!("cannot re-check block {hash}: {err}");
                return Ok(());
            }
        };
        let (matched, generation) =
            match self.watch.filter_matches_since(&filter, &hash, checked_at) {
                Ok(result) => result,
                Err(err) => {
                    warn!("filter of block {hash} cannot be read: {err}");
                    return Ok(());
                }
            };
        self.checks().record(
            hash,
            FilterCheck {
                matched,
                generation,
            },
        );
        if matched {
            debug!(
                "block {hash} at {} matches scripts registered after its filter was checked; re-delivering it",
                height
            );
            let block = self
                .fetch_verified_block(hash, FetchPurpose::Listeners)
                .await?;
            self.listener.redeliver_with_transactions(&block);
        }
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
        let (matched, generation) = self
            .watch
            .filter_matches_since(&filter, hash, since)
            .map_err(|err| BlockSourceError::transient(format!("unreadable filter: {err}")))?;
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

/// Whether `block` commits to witness data in its coinbase but carries no coinbase witness.
/// `check_witness_commitment` alone accepts such a block when every witness was removed, and
/// a block without witnesses hides the HTLC preimages LDK looks for.
fn is_stripped(block: &Block) -> bool {
    const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    let Some(coinbase) = block.txdata.first() else {
        return false;
    };
    let commits = coinbase
        .output
        .iter()
        .any(|out| out.script_pubkey.as_bytes().starts_with(&COMMITMENT_PREFIX));
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

/// The engine's view of the rest of the chain source.
struct Host {
    tracker: Arc<ChainTracker>,
    notifications: broadcast::Sender<ChainNotification>,
    listener: Arc<ChainListener>,
    watch: Arc<WatchSet>,
    checks: Arc<Mutex<FilterChecks>>,
    prefetcher: Arc<Prefetcher>,
}

impl Host {
    /// Checks the filters a batch stored for blocks the listeners have yet to reach, and
    /// requests the matching blocks ahead of them. The checks are recorded after all are
    /// made, so listeners asking for blocks meanwhile do not wait for the whole batch.
    fn check_ahead(&self, stored: &[StoredFilter<'_>], listeners_at: Option<u32>) {
        let checked: Vec<(&StoredFilter<'_>, FilterCheck)> = stored
            .iter()
            .filter(|filter| listeners_at.is_none_or(|at| filter.height > at))
            .filter_map(|filter| {
                let content = bitcoin::bip158::BlockFilter::new(filter.content);
                // An unreadable filter is reported when a listener reaches its block.
                let (matched, generation) =
                    self.watch.filter_matches(&content, &filter.hash).ok()?;
                Some((
                    filter,
                    FilterCheck {
                        matched,
                        generation,
                    },
                ))
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
        let listeners_at = self.listener.tip().map(|tip| tip.height);
        self.tracker
            .start_point(listeners_at)
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
        let before = self.tracker.heights();
        let listeners_at = self.listener.tip().map(|tip| tip.height);
        if let Some(height) = listeners_at {
            self.tracker.note_listeners_at(height);
        }
        let applied = self
            .tracker
            .apply(&events, |stored| self.check_ahead(stored, listeners_at));
        if let Err(err) = applied {
            error!("could not store what the compact-filter engine learned: {err}");
            return;
        }
        let after = self.tracker.heights();
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
}

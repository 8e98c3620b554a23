//! ChainSource: the compact-filter chain backend as LDK sees it.
//!
//! It owns the supervised engine, the stores and the loops beside them (broadcaster, fee
//! sampler, block prefetcher), and implements [`lightning_block_sync::BlockSource`]: the best
//! block is the verified tip (never a block whose filter is not verified and stored), headers
//! come from the header store (stale forks included), and a block is delivered in full only
//! when its filter matches the watch set ([`super::filter_checks`]); every other block is
//! delivered header-only. Full blocks come verified from the [`BlockFetcher`].

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{BlockHash, Network};
use lightning_block_sync::{
    AsyncBlockSourceResult, BlockData, BlockHeaderData, BlockSource, BlockSourceError,
};
use log::{debug, warn};
use tokio::sync::broadcast;

use super::ban_list::{Ban, BanList};
use super::broadcaster::Broadcaster;
use super::config::ChainConfig;
use super::db::ChainDb;
use super::engine::{Engine, EngineConfig};
use super::engine_host::Host;
use super::error::{FetchError, StoreError};
use super::fees::{self, FeeEstimates};
use super::fetcher::{BlockFetcher, DownloadCounts, FetchPurpose};
use super::filter_checks::FilterChecks;
use super::links::{LinksConfig, PeerLinks};
use super::listener::ChainListener;
use super::notifications::ChainNotification;
use super::prefetch::{self, Prefetcher};
use super::tracker::{ChainTracker, TrackedHeights};
use super::watch_set::WatchSet;
use crate::tasks::Supervisor;

/// Listeners far behind the verified tip are moved at most this many blocks per poll.
pub const MAX_BLOCKS_PER_POLL: u32 = 1_000;

/// What a sync is doing.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncPhase {
    /// A new chain syncs headers only, until they reach the tip (see
    /// [`super::filter_start`]).
    Headers,
    /// Compact filters are fetched and checked up to the header tip.
    Filters,
    /// The wallet and channel state are brought to the verified tip.
    Listeners,
    /// Headers, filters and listeners are all at the tip.
    Synced,
}

impl SyncPhase {
    /// Its name in the control API.
    pub fn as_str(self) -> &'static str {
        match self {
            SyncPhase::Headers => "headers",
            SyncPhase::Filters => "filters",
            SyncPhase::Listeners => "listeners",
            SyncPhase::Synced => "synced",
        }
    }
}

/// Sync status for the control API.
#[derive(Debug, Clone, PartialEq)]
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
    /// See [`DownloadCounts::decoy_bytes`] (counted in `bytes_received` too).
    pub decoy_bytes: u64,
    /// The height from which filters are checked; `None` during the header phase.
    pub filters_from: Option<u32>,
    /// What the sync is doing.
    pub phase: SyncPhase,
    /// During the header phase, the share of the time between the first stored header and
    /// now that the header tip covers: how far the headers are, as far as their timestamps
    /// tell (the height of the network's tip is not known before they reach it).
    pub headers_covered: Option<f64>,
}

/// The compact-filter chain source.
pub struct ChainSource {
    config: ChainConfig,
    tracker: Arc<ChainTracker>,
    engine: Arc<Engine>,
    fetcher: Arc<BlockFetcher>,
    listener: Arc<ChainListener>,
    checks: Arc<FilterChecks>,
    prefetcher: Arc<Prefetcher>,
    broadcaster: Arc<Broadcaster>,
    fees: Arc<FeeEstimates>,
    host: Arc<Host>,
    supervisor: Arc<Supervisor>,
    tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// Whether the peer links were started (with the engine).
    links_started: AtomicBool,
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
    /// How much of the current phase is done, from 0.0 to 1.0 (only when synced). During the
    /// header phase: the share of the time from the first header to now that the headers
    /// cover. After it: the blocks the filters and the listeners both reached, of those from
    /// the block before the first checked filter (or the chain's start) to the header tip.
    pub fn progress(&self) -> f64 {
        if self.synced {
            return 1.0;
        }
        if self.phase == SyncPhase::Headers {
            return self.headers_covered.unwrap_or(0.0).clamp(0.0, 0.999);
        }
        let reached = self
            .listeners_height
            .map_or(self.filter_height, |listeners| {
                listeners.min(self.filter_height)
            });
        let base = self
            .filters_from
            .map_or(self.start_height, |from| from.saturating_sub(1))
            .max(self.start_height);
        let total = self.header_height.saturating_sub(base);
        if total == 0 {
            return 0.0;
        }
        let done = reached.saturating_sub(base);
        (f64::from(done) / f64::from(total)).min(0.999)
    }
}

/// What the sync is doing, given where headers, filters and listeners stand.
fn phase_of(heights: &TrackedHeights, synced: bool) -> SyncPhase {
    let header = heights.header_tip.map_or(0, |(h, _)| h);
    let filter = heights.verified_tip.map_or(0, |(h, _)| h);
    if heights.filters_from.is_none() {
        SyncPhase::Headers
    } else if synced {
        SyncPhase::Synced
    } else if filter < header || !heights.engine_synced {
        SyncPhase::Filters
    } else {
        SyncPhase::Listeners
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
    /// sampler, but not the engine nor the peer links: nothing is asked of a peer until [`Self::start_engine`] or
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
            config.filters,
        )?);
        let engine = Engine::new();
        let bans = Arc::new(BanList::load(db.clone())?);
        let links = {
            let tracker = tracker.clone();
            Arc::new(PeerLinks::new(
                LinksConfig {
                    network: config.network,
                    peers: config.peers.clone(),
                    only_peers: config.only_peers,
                    response_timeout: config.response_timeout,
                    route: config.route,
                },
                bans,
                engine.clone(),
                move || tracker.heights().header_tip.map_or(0, |(height, _)| height),
            ))
        };
        let fetcher = Arc::new(BlockFetcher::new(
            engine.clone(),
            links.clone(),
            tracker.clone(),
            config.block_timeout,
            config.decoy_blocks,
        ));
        let checks = Arc::new(FilterChecks::new(watch));
        let (prefetcher, fetch_requests) = Prefetcher::new();
        let prefetcher = Arc::new(prefetcher);
        let host = Arc::new(Host::new(
            tracker.clone(),
            fetcher.clone(),
            listener.clone(),
            checks.clone(),
            prefetcher.clone(),
        ));
        let supervisor = Supervisor::new();
        let broadcaster = Arc::new(Broadcaster::new(engine.clone(), db)?);
        broadcaster.set_links(links.clone());
        let fees = FeeEstimates::new(config.network, config.fee_overrides.clone());
        let fees = Arc::new(match config.fee_sample_interval {
            Some(blocks) => fees.with_idle_interval(blocks),
            None => fees,
        });
        let tasks = vec![
            supervisor.spawn(
                "broadcaster",
                broadcaster
                    .clone()
                    .run(fetcher.subscribe(), fetcher.shutdown_signal()),
            ),
            supervisor.spawn(
                "fee sampler",
                fees::run_sampler(fetcher.clone(), fees.clone(), listener.clone()),
            ),
            supervisor.spawn(
                "block prefetcher",
                prefetch::run_fetcher(fetcher.clone(), fetch_requests),
            ),
        ];
        Ok(Arc::new(Self {
            config,
            tracker,
            engine,
            fetcher,
            listener,
            checks,
            prefetcher,
            broadcaster,
            fees,
            host,
            supervisor,
            tasks: Mutex::new(tasks),
            links_started: AtomicBool::new(false),
        }))
    }

    /// Starts the engine and the peer links, unless they run already.
    pub fn start_engine(&self) {
        if !self.links_started.swap(true, Ordering::SeqCst) {
            let links = self.links().clone();
            let task = self
                .supervisor
                .spawn("peer links", links.run(self.fetcher.shutdown_signal()));
            self.tasks
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(task);
        }
        let config = &self.config;
        self.engine.start(
            EngineConfig {
                network: config.network,
                peers: config.peers.clone(),
                only_peers: config.only_peers,
                required_peers: config.quorum(),
                response_timeout: config.response_timeout,
                compact_after_headers: config.compact_after_headers,
                proxy: config.route.proxy(),
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
        self.host.set_listeners_floor(height);
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
        self.fetcher.recent_downloads()
    }

    /// The network this source follows.
    pub fn network(&self) -> Network {
        self.config.network
    }

    /// The watch set consulted for every block.
    pub fn watch_set(&self) -> &Arc<WatchSet> {
        self.checks.watch_set()
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

    /// The block downloads and their counts.
    pub fn fetcher(&self) -> &Arc<BlockFetcher> {
        &self.fetcher
    }

    /// The node's own links to its Bitcoin peers.
    pub fn links(&self) -> &Arc<PeerLinks> {
        self.fetcher.links()
    }

    /// The Bitcoin peers banned now.
    pub fn banned_peers(&self) -> Vec<Ban> {
        self.links().bans().list()
    }

    /// Subscribes to notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainNotification> {
        self.fetcher.subscribe()
    }

    /// Heights of headers and verified filters.
    pub fn heights(&self) -> TrackedHeights {
        self.tracker.heights()
    }

    /// Download counters.
    pub fn download_counts(&self) -> DownloadCounts {
        self.fetcher.download_counts()
    }

    /// Current sync status.
    pub async fn status(&self) -> SyncStatus {
        let heights = self.tracker.heights();
        let header_height = heights.header_tip.map_or(0, |(h, _)| h);
        let filter_height = heights.verified_tip.map_or(0, |(h, _)| h);
        let listeners_height = self.listener.tip().map(|t| t.height);
        let synced = heights.engine_synced
            && filter_height == header_height
            && listeners_height.is_none_or(|h| h == filter_height);
        let phase = phase_of(&heights, synced);
        let headers_covered = if phase == SyncPhase::Headers {
            self.headers_covered().unwrap_or_else(|err| {
                debug!("reading header times: {err}");
                None
            })
        } else {
            None
        };
        SyncStatus {
            header_height,
            filter_height,
            filter_tip: heights.verified_tip.map(|(_, hash)| hash),
            listeners_height,
            peers: self.engine.peer_count().await,
            synced,
            engine_restarts: self.engine.restarts(),
            start_height: self.tracker.chain_start().height,
            bytes_received: self.fetcher.download_counts().bytes_received,
            decoy_bytes: self.fetcher.download_counts().decoy_bytes,
            filters_from: heights.filters_from,
            phase,
            headers_covered,
        }
    }

    /// See [`SyncStatus::headers_covered`].
    fn headers_covered(&self) -> Result<Option<f64>, StoreError> {
        let headers = self.tracker.headers();
        let (Some(lowest), Some(tip)) = (headers.lowest_active_height()?, headers.tip()?) else {
            return Ok(None);
        };
        let Some(first) = headers.active_at(lowest)? else {
            return Ok(None);
        };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |since| since.as_secs());
        let first_time = u64::from(first.header.time);
        let span = now.saturating_sub(first_time);
        if span == 0 {
            return Ok(None);
        }
        let covered = u64::from(tip.header.time).saturating_sub(first_time);
        Ok(Some(covered as f64 / span as f64))
    }

    /// Stops the engine and fires the shutdown signal that ends the broadcaster, the fee
    /// sampler and the prefetcher.
    pub fn shutdown(&self) {
        self.supervisor.stopping();
        self.engine.shutdown();
        self.fetcher.shut_down();
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

    /// If the watch set grew since the last delivered block's filter was checked and that
    /// block went out header-only, checks its filter against the new scripts and, on a match,
    /// re-delivers it with its transactions. Runs before the next block is fetched and at the
    /// end of every poll round, so no later block reaches the listeners first. The check is
    /// recorded only once the block was re-delivered (or did not match): a failed fetch is
    /// tried again the next time, and blocks the listeners wait meanwhile (see
    /// [`FilterChecks::recheck_delivered`]).
    pub async fn recheck_last_delivery(&self) -> Result<(), FetchError> {
        let Some((hash, height)) = self.listener.last_header_only_delivery() else {
            return Ok(());
        };
        let check = self
            .checks
            .recheck_delivered(&hash, || self.tracker.filter(&hash))?;
        let Some(check) = check else {
            return Ok(());
        };
        if check.matched {
            debug!(
                "block {hash} at {height} matches scripts registered after its filter was \
                 checked; re-delivering it"
            );
            let block = self
                .fetcher
                .fetch_verified_block(hash, FetchPurpose::Listeners)
                .await?;
            self.listener.redeliver_with_transactions(&block);
        }
        self.checks.record(hash, check);
        Ok(())
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
        let check = self
            .checks
            .check_for_listeners(&hash, || self.tracker.filter(&hash))
            .map_err(BlockSourceError::transient)?
            .ok_or_else(|| {
                BlockSourceError::transient(format!("filter of block {hash} is not stored yet"))
            })?;
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
            .fetcher
            .fetch_verified_block(hash, FetchPurpose::Listeners)
            .await
            .map_err(|err| {
                warn!("could not fetch matching block {hash}: {err}");
                BlockSourceError::transient(err)
            })?;
        Ok(BlockData::FullBlock(block))
    }
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

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn status(phase: SyncPhase, filters_from: Option<u32>) -> SyncStatus {
        SyncStatus {
            header_height: 1_000,
            filter_height: 900,
            filter_tip: None,
            listeners_height: None,
            peers: 1,
            synced: false,
            engine_restarts: 0,
            start_height: 0,
            bytes_received: 0,
            decoy_bytes: 0,
            filters_from,
            phase,
            headers_covered: Some(0.25),
        }
    }

    #[test]
    fn progress_is_that_of_the_phase() {
        // Headers: the share of the time their timestamps cover.
        assert_eq!(status(SyncPhase::Headers, None).progress(), 0.25);
        // Filters: from the block before the first checked one, not from the chain's start.
        assert_eq!(status(SyncPhase::Filters, Some(801)).progress(), 0.5);
        assert_eq!(status(SyncPhase::Filters, Some(1)).progress(), 0.9);
        let synced = SyncStatus {
            synced: true,
            ..status(SyncPhase::Synced, Some(1))
        };
        assert_eq!(synced.progress(), 1.0);
    }

    #[test]
    fn the_phase_follows_the_heights() {
        let tip = Some((1_000, BlockHash::all_zeros()));
        let heights = TrackedHeights {
            header_tip: tip,
            verified_tip: Some((0, BlockHash::all_zeros())),
            engine_synced: false,
            filters_from: None,
        };
        assert_eq!(phase_of(&heights, false), SyncPhase::Headers);
        let filtering = TrackedHeights {
            filters_from: Some(501),
            verified_tip: Some((700, BlockHash::all_zeros())),
            ..heights
        };
        assert_eq!(phase_of(&filtering, false), SyncPhase::Filters);
        let verified = TrackedHeights {
            verified_tip: tip,
            engine_synced: true,
            ..filtering
        };
        assert_eq!(phase_of(&verified, false), SyncPhase::Listeners);
        assert_eq!(phase_of(&verified, true), SyncPhase::Synced);
    }
}

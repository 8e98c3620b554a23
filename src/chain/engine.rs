//! Engine: the supervised `bip157` node, the P2P compact-filter client underneath the chain
//! source.
//!
//! The engine is (re)built from the stored chain each time it starts, its events are
//! translated into [`EngineEvent`]s for the tracker, and when it stops (its only peer went
//! away, or it gave up on a peer's data) it is restarted with exponential backoff.
//!
//! The `bip157` node keeps every header since its start point in memory (a few hundred bytes
//! each). Once a run has synced far past where it started, the engine is restarted from the
//! stored chain near the tip so that memory goes back to the system: after the first sync
//! of a long chain, the node then holds a few hundred headers instead of all of them. Requests
//! (blocks, broadcasts, peer info) go to whichever instance is running.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use bip157::chain::BlockHeaderChanges;
use bip157::{
    Builder, ChainState, Client, Event, HashCheckpoint, Info, Package, Requester, TrustedPeer,
    Warning,
};
use bitcoin::{Block, BlockHash, Network, Transaction, Wtxid};
use log::{debug, error, info, warn};
use tokio::sync::{mpsc, Notify};

use super::error::FetchError;
use super::header_store::HeaderChange;
use super::peer_address::PeerAddress;
use super::tracker::{EngineEvent, StartPoint};
use crate::tasks::Supervisor;

/// Longest pause between two restarts of a failing engine.
const MAX_BACKOFF: Duration = Duration::from_secs(30);
/// An engine that ran this long before stopping restarts after the shortest pause again.
const HEALTHY_RUN: Duration = Duration::from_secs(60);
/// At most this many events are written to the store in one transaction (during a first
/// sync, headers arrive faster than they are stored, and every commit rewrites the pages of
/// the hash index that its headers touched: fewer, larger batches rewrite fewer)...
const MAX_EVENT_BATCH: usize = 16_000;
/// ...carrying at most about this many bytes of filters (a public-network filter is tens of
/// kilobytes, so a batch of thousands could hold hundreds of megabytes).
const MAX_BATCH_FILTER_BYTES: usize = 8 * 1024 * 1024;
/// A run that synced this many headers past its start point is restarted from the stored
/// chain to release them (two weeks of blocks: about 0.7 MB in the engine).
pub const COMPACT_AFTER_HEADERS: u32 = 2_016;
/// How often a run that may be compacted checks whether the listeners caught up.
const COMPACTION_CHECK_INTERVAL: Duration = Duration::from_secs(2);

/// `peer` as the engine takes it: an onion service by its key, an IP address, or a name the
/// engine (or the proxy) resolves.
fn trusted_peer(peer: &PeerAddress) -> TrustedPeer {
    if let Some(onion) = peer.onion_key() {
        return TrustedPeer::new(
            bip157::AddrV2::TorV3(onion),
            Some(peer.port),
            bip157::ServiceFlags::NONE,
        );
    }
    match peer.socket_addr() {
        Some(addr) => TrustedPeer::from_socket_addr(addr),
        None => TrustedPeer::from_hostname(peer.host.clone(), peer.port),
    }
}

/// How the engine connects.
#[derive(Debug, Clone)]
pub struct EngineConfig {
    /// The Bitcoin network.
    pub network: Network,
    /// Peers to connect to.
    pub peers: Vec<PeerAddress>,
    /// Connect only to `peers` (no DNS seeds, no gossiped addresses).
    pub only_peers: bool,
    /// Number of peers that must agree on filter headers (also the number of connections).
    pub required_peers: u8,
    /// How long a peer has to answer a request.
    pub response_timeout: Duration,
    /// A run that synced this many headers past its start point is restarted from the stored
    /// chain to release them ([`COMPACT_AFTER_HEADERS`] by default).
    pub compact_after_headers: u32,
    /// The SOCKS5 proxy every connection goes through (DNS seeds and host names are then
    /// resolved by the proxy, never here).
    pub proxy: Option<SocketAddr>,
}

/// How one run of the engine ended.
enum RunEnd {
    /// It stopped on its own or failed; the text says why.
    Stopped(String),
    /// It was stopped on purpose to release the headers it held.
    Compacted {
        /// Headers it held past its start point.
        held: u32,
    },
    /// It was stopped on purpose to start again from the stored chain ([`Engine::restart`]).
    Restarted {
        /// Why.
        reason: String,
    },
}

/// What the engine reports to, and asks of, the rest of the chain source.
pub trait EngineHost: Send + Sync + 'static {
    /// Where a starting engine begins. It syncs headers only from there up to the tip, where
    /// it reports itself synced; the host then asks it for the filters it misses with
    /// [`Engine::rescan_from`].
    fn start_point(&self) -> Result<StartPoint, String>;
    /// Applies a batch of events (called from a blocking thread).
    fn apply(&self, events: Vec<EngineEvent>);
    /// Whether every filter up to the tip the engine last reported itself synced to is
    /// verified and stored (an engine that synced headers only is not synced until then).
    fn filters_synced(&self) -> bool;
    /// A peer completed its handshake.
    fn peer_connected(&self);
    /// The engine stopped and will be restarted.
    fn engine_stopped(&self);
    /// A peer's headers did not connect to any header the engine holds: the chain forked
    /// below its start point.
    fn headers_did_not_connect(&self);
    /// Whether a restart from the stored chain near the tip would leave every listener able
    /// to fetch the blocks it still needs.
    fn may_restart_from_tip(&self) -> bool;
    /// Whether the peer at `addr` is banned: the engine does not connect to it.
    fn is_banned(&self, addr: &PeerAddress) -> bool;
    /// Peers disagreed on filter headers (the engine dropped them all and will try again):
    /// find the one that lies.
    fn filter_headers_disagree(&self);
}

/// Handle to the supervised engine.
#[derive(Debug)]
pub struct Engine {
    requester: RwLock<Option<Requester>>,
    started: Notify,
    shutdown: AtomicBool,
    shutdown_notify: Notify,
    restarts: AtomicU64,
    compactions: AtomicU64,
    /// Peers dropped for not answering a request within the response timeout.
    peer_timeouts: AtomicU64,
    /// Set by [`Engine::restart`] and [`Engine::restart_after_failure`]: the running instance
    /// stops, and the next one starts at once (`true`) or after the back-off (`false`).
    restart_reason: std::sync::Mutex<Option<(String, bool)>>,
    /// Height of the block the running instance started after (`u32::MAX` while none runs).
    start_height: AtomicU32,
    started_once: AtomicBool,
    supervisor: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>>,
}

impl Engine {
    /// An engine that is not running yet: requests wait for [`Engine::start`].
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            requester: RwLock::new(None),
            started: Notify::new(),
            shutdown: AtomicBool::new(false),
            shutdown_notify: Notify::new(),
            restarts: AtomicU64::new(0),
            compactions: AtomicU64::new(0),
            peer_timeouts: AtomicU64::new(0),
            restart_reason: std::sync::Mutex::new(None),
            start_height: AtomicU32::new(u32::MAX),
            started_once: AtomicBool::new(false),
            supervisor: std::sync::Mutex::new(None),
        })
    }

    /// Starts the supervised engine on the current tokio runtime, its supervisor loop a task
    /// of `tasks`, unless it was started (or shut down) already.
    pub fn start(
        self: &Arc<Self>,
        config: EngineConfig,
        host: Arc<dyn EngineHost>,
        tasks: &Arc<Supervisor>,
    ) {
        let mut supervisor = self.supervisor.lock().unwrap_or_else(|p| p.into_inner());
        if self.started_once.swap(true, Ordering::SeqCst) || self.is_shut_down() {
            return;
        }
        *supervisor = Some(tasks.spawn("engine supervisor", self.clone().supervise(config, host)));
    }

    /// Starts a new supervised engine on the current tokio runtime.
    pub fn spawn(
        config: EngineConfig,
        host: Arc<dyn EngineHost>,
        tasks: &Arc<Supervisor>,
    ) -> Arc<Self> {
        let engine = Self::new();
        engine.start(config, host, tasks);
        engine
    }

    /// Whether [`Engine::start`] was called.
    pub fn is_started(&self) -> bool {
        self.started_once.load(Ordering::SeqCst)
    }

    /// Height of the block the running instance started after, if one runs: it serves blocks
    /// and filters above it only.
    pub fn start_height(&self) -> Option<u32> {
        match self.start_height.load(Ordering::SeqCst) {
            u32::MAX => None,
            height => Some(height),
        }
    }

    /// Stops the running instance so that the supervisor starts the next one at once, from
    /// the start point the host gives then.
    pub fn restart(&self, reason: impl Into<String>) {
        self.stop_run(reason.into(), true);
    }

    /// Stops the running instance after something failed; the next one starts from the
    /// stored chain after the usual back-off, so a lasting failure does not spin.
    pub fn restart_after_failure(&self, reason: impl Into<String>) {
        self.stop_run(reason.into(), false);
    }

    fn stop_run(&self, reason: String, immediate: bool) {
        *self
            .restart_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some((reason, immediate));
        if let Some(requester) = self.current() {
            let _ = requester.shutdown();
        }
    }

    /// Waits until the supervisor (and the engine it runs) has finished after
    /// [`Engine::shutdown`].
    pub async fn stopped(&self) {
        let supervisor = self
            .supervisor
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(supervisor) = supervisor {
            let _ = supervisor.await;
        }
    }

    /// Whether an engine instance is running now.
    pub fn is_running(&self) -> bool {
        self.current().is_some_and(|r| r.is_running())
    }

    /// Whether [`Engine::shutdown`] was called.
    pub fn is_shut_down(&self) -> bool {
        self.shutdown.load(Ordering::SeqCst)
    }

    /// How many times the engine was restarted after stopping.
    pub fn restarts(&self) -> u64 {
        self.restarts.load(Ordering::Relaxed)
    }

    /// How many peers were dropped for not answering a request in time.
    pub fn peer_timeouts(&self) -> u64 {
        self.peer_timeouts.load(Ordering::SeqCst)
    }

    /// How many times a run was restarted to release the headers it held.
    pub fn compactions(&self) -> u64 {
        self.compactions.load(Ordering::Relaxed)
    }

    /// Stops the engine for good.
    pub fn shutdown(&self) {
        self.shutdown.store(true, Ordering::SeqCst);
        if let Some(requester) = self.current() {
            let _ = requester.shutdown();
        }
        self.shutdown_notify.notify_waiters();
    }

    /// Fetches a block (with witness data) from a peer. There is no limit on the whole
    /// download, which may take minutes on a slow link: it is given up (as
    /// [`FetchError::Timeout`], so the caller can ask again, and the engine another peer) only
    /// when no progress can be seen: a peer was dropped for not answering within the
    /// response timeout (`bip157` drops a peer whose answer, a whole block included, takes
    /// longer), the engine restarted, or no peer was connected for `stall`. A block that
    /// arrives after its request was given up goes nowhere: answers are matched to requests
    /// by block hash, and callers check the hash.
    pub async fn get_block(&self, hash: BlockHash, stall: Duration) -> Result<Block, FetchError> {
        let requester = self.wait_running(stall).await?;
        let timeouts = self.peer_timeouts.load(Ordering::SeqCst);
        let restarts = self.restarts();
        let fetch = requester.get_block(hash);
        tokio::pin!(fetch);
        let mut without_peers = Duration::ZERO;
        loop {
            tokio::select! {
                fetched = &mut fetch => {
                    return match fetched {
                        Ok(indexed) => Ok(indexed.block),
                        Err(err) => Err(FetchError::Refused {
                            hash,
                            reason: err.to_string(),
                        }),
                    };
                }
                _ = tokio::time::sleep(STALL_CHECK_INTERVAL) => {}
            }
            if self.peer_timeouts.load(Ordering::SeqCst) != timeouts
                || self.restarts() != restarts
                || self.shutdown.load(Ordering::SeqCst)
            {
                return Err(FetchError::Timeout(hash));
            }
            if self.peer_count().await == 0 {
                without_peers += STALL_CHECK_INTERVAL;
                if without_peers >= stall {
                    return Err(FetchError::Timeout(hash));
                }
            } else {
                without_peers = Duration::ZERO;
            }
        }
    }

    /// Hands a transaction (or a parent+child pair, parent first) to a peer; returns once a
    /// peer took it.
    pub async fn submit(
        &self,
        txs: &[Transaction],
        timeout: Duration,
    ) -> Result<Wtxid, FetchError> {
        let requester = self.wait_running(timeout).await?;
        let first = txs
            .first()
            .map(Transaction::compute_txid)
            .ok_or_else(|| FetchError::InvalidPackage("no transaction".into()))?;
        let package = Package::from_vec(txs.to_vec())
            .map_err(|err| FetchError::InvalidPackage(err.to_string()))?;
        match tokio::time::timeout(timeout, requester.submit_package(package)).await {
            Ok(Ok(wtxid)) => Ok(wtxid),
            Ok(Err(_)) => Err(FetchError::EngineDown),
            Err(_) => Err(FetchError::BroadcastTimeout(first)),
        }
    }

    /// Has the running instance fetch (again) the filter headers and filters of every block
    /// of its chain above `height`, checked against the filter headers its peers agree on.
    /// Ignored by an instance still syncing headers (it reports itself synced again after).
    pub fn rescan_from(&self, height: u32) {
        if let Some(requester) = self.current() {
            let _ = requester.rescan_from(height);
        }
    }

    /// The IP addresses of the connected peers (the engine does not tell their ports).
    pub async fn peer_ips(&self) -> Vec<IpAddr> {
        let Some(requester) = self.current() else {
            return Vec::new();
        };
        requester
            .peer_info()
            .await
            .unwrap_or_default()
            .into_iter()
            .filter_map(|(addr, _)| match addr {
                bip157::AddrV2::Ipv4(ip) => Some(IpAddr::V4(ip)),
                bip157::AddrV2::Ipv6(ip) => Some(IpAddr::V6(ip)),
                _ => None,
            })
            .collect()
    }

    /// Number of connected peers.
    pub async fn peer_count(&self) -> usize {
        match self.current() {
            Some(requester) => requester.peer_info().await.map(|p| p.len()).unwrap_or(0),
            None => 0,
        }
    }

    fn current(&self) -> Option<Requester> {
        self.requester
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    async fn wait_running(&self, timeout: Duration) -> Result<Requester, FetchError> {
        let deadline = Instant::now() + timeout;
        loop {
            let started = self.started.notified();
            if let Some(requester) = self.current().filter(|r| r.is_running()) {
                return Ok(requester);
            }
            if self.shutdown.load(Ordering::SeqCst) {
                return Err(FetchError::EngineDown);
            }
            let remaining = deadline.saturating_duration_since(Instant::now());
            if remaining.is_zero() || tokio::time::timeout(remaining, started).await.is_err() {
                return Err(FetchError::EngineDown);
            }
        }
    }

    async fn supervise(self: Arc<Self>, config: EngineConfig, host: Arc<dyn EngineHost>) {
        let mut backoff = Duration::from_secs(1);
        loop {
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            let started_at = Instant::now();
            let end = self.run_once(&config, host.clone()).await;
            *self.requester.write().unwrap_or_else(|p| p.into_inner()) = None;
            self.start_height.store(u32::MAX, Ordering::SeqCst);
            if self.shutdown.load(Ordering::SeqCst) {
                break;
            }
            host.engine_stopped();
            let outcome = match end {
                RunEnd::Compacted { held } => {
                    self.compactions.fetch_add(1, Ordering::Relaxed);
                    release_freed_memory();
                    info!(
                        "compact-filter engine synced {held} headers past its start; restarted \
                         from the stored chain to release them"
                    );
                    continue;
                }
                RunEnd::Restarted { reason } => {
                    self.restarts.fetch_add(1, Ordering::Relaxed);
                    info!("compact-filter engine restarted from the stored chain: {reason}");
                    continue;
                }
                RunEnd::Stopped(outcome) => outcome,
            };
            if started_at.elapsed() > HEALTHY_RUN {
                backoff = Duration::from_secs(1);
            }
            warn!(
                "compact-filter engine stopped ({outcome}); restarting from the stored chain in {}s",
                backoff.as_secs()
            );
            tokio::select! {
                _ = tokio::time::sleep(backoff) => {}
                _ = self.shutdown_notify.notified() => {}
            }
            backoff = (backoff * 2).min(MAX_BACKOFF);
            self.restarts.fetch_add(1, Ordering::Relaxed);
        }
        debug!("compact-filter engine supervisor finished");
    }

    async fn run_once(&self, config: &EngineConfig, host: Arc<dyn EngineHost>) -> RunEnd {
        // A restart asked for before the start point is read is served by this run.
        self.restart_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        let start = {
            let host = host.clone();
            match tokio::task::spawn_blocking(move || host.start_point()).await {
                Ok(Ok(start)) => start,
                Ok(Err(err)) => return RunEnd::Stopped(err),
                Err(err) => {
                    return RunEnd::Stopped(format!("could not read the stored chain: {err}"))
                }
            }
        };
        let start_height = match &start {
            StartPoint::Checkpoint { height, .. } => *height,
            StartPoint::Snapshot(headers) => headers.first().map_or(0, |(height, _)| *height),
        };
        let mut compacting = None;
        self.start_height.store(start_height, Ordering::SeqCst);
        let chain_state = match start {
            StartPoint::Checkpoint { height, hash } => {
                ChainState::Checkpoint(HashCheckpoint::new(height, hash))
            }
            StartPoint::Snapshot(headers) => ChainState::Snapshot(
                headers
                    .into_iter()
                    .map(|(height, header)| bip157::chain::IndexedHeader { height, header })
                    .collect(),
            ),
        };
        let peers = unbanned_peers(&config.peers, config.proxy.is_some(), host.as_ref()).await;
        if peers.is_empty() && config.only_peers {
            return RunEnd::Stopped("every configured Bitcoin peer is banned".into());
        }
        let mut builder = Builder::new(config.network)
            .chain_state(chain_state)
            .required_peers(config.required_peers)
            .response_timeout(config.response_timeout)
            .fetch_witness_data()
            // Headers first, taking every block up to the tip as checked: the filters the
            // chain source does not have yet are asked for then (`rescan_from`), and none
            // that it has is fetched again.
            .headers_only_sync()
            .add_peers(peers);
        if config.only_peers {
            builder = builder.whitelist_only();
        }
        if let Some(proxy) = config.proxy {
            builder = builder.socks5_proxy(proxy);
        }
        let (node, client) = builder.build();
        let Client {
            requester,
            mut info_rx,
            mut warn_rx,
            mut event_rx,
        } = client;
        *self.requester.write().unwrap_or_else(|p| p.into_inner()) = Some(requester.clone());
        let restart_asked = self
            .restart_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .is_some();
        if self.shutdown.load(Ordering::SeqCst) || restart_asked {
            let _ = requester.shutdown();
        }
        self.started.notify_waiters();
        let mut run = tokio::spawn(node.run());
        let mut synced_to = None;
        let mut compaction_check = tokio::time::interval(COMPACTION_CHECK_INTERVAL);
        let outcome = loop {
            tokio::select! {
                event = event_rx.recv() => match event {
                    Some(event) => {
                        if let Some(height) = forward_events(event, &mut event_rx, &host).await {
                            synced_to = Some(height);
                        }
                    }
                    None => break join_outcome(&mut run).await,
                },
                _ = compaction_check.tick() => {}
                Some(info) = info_rx.recv() => log_info(&info, &host),
                Some(warning) = warn_rx.recv() => log_warning(&warning, &host, &self.peer_timeouts),
                result = &mut run => {
                    // Deliver what the stopped engine verified before it stopped.
                    while let Ok(event) = event_rx.try_recv() {
                        let _ = forward_events(event, &mut event_rx, &host).await;
                    }
                    break describe(result);
                }
            }
            let held = synced_to.map_or(0, |height: u32| height.saturating_sub(start_height));
            if compacting.is_none()
                && held >= config.compact_after_headers
                && host.may_restart_from_tip()
            {
                compacting = Some(held);
                let _ = requester.shutdown();
            }
        };
        while let Ok(warning) = warn_rx.try_recv() {
            log_warning(&warning, &host, &self.peer_timeouts);
        }
        let restart = self
            .restart_reason
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        match (restart, compacting) {
            (Some((reason, true)), _) => RunEnd::Restarted { reason },
            (Some((reason, false)), _) => RunEnd::Stopped(reason),
            (None, Some(held)) => RunEnd::Compacted { held },
            (None, None) => RunEnd::Stopped(outcome),
        }
    }
}

/// How long a configured host name may take to resolve before a run starts.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// `peers` for the engine, without the banned ones (a peer given by name is banned by that
/// name). Without a proxy, host names are resolved here so a banned address behind one is
/// left out too; one that does not resolve now is left to the engine. Through a proxy, names
/// (onion services included) go to the engine, which has the proxy resolve them: nothing is
/// looked up on this machine.
async fn unbanned_peers(
    peers: &[PeerAddress],
    proxied: bool,
    host: &dyn EngineHost,
) -> Vec<TrustedPeer> {
    let mut trusted = Vec::new();
    for peer in peers {
        if host.is_banned(peer) {
            continue;
        }
        if let Some(addr) = peer.socket_addr() {
            trusted.push(TrustedPeer::from_socket_addr(addr));
            continue;
        }
        if proxied || peer.onion_key().is_some() {
            trusted.push(trusted_peer(peer));
            continue;
        }
        let lookup = tokio::net::lookup_host((peer.host.as_str(), peer.port));
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => trusted.extend(
                addrs
                    .filter(|addr| !host.is_banned(&PeerAddress::from(*addr)))
                    .map(TrustedPeer::from_socket_addr),
            ),
            _ => trusted.push(trusted_peer(peer)),
        }
    }
    trusted
}

/// Applies `first` and whatever else is queued as one batch. Returns the height the engine
/// reported itself synced to, if the batch said so and every filter up to there is stored.
async fn forward_events(
    first: Event,
    event_rx: &mut mpsc::UnboundedReceiver<Event>,
    host: &Arc<dyn EngineHost>,
) -> Option<u32> {
    let mut batch = Vec::new();
    let mut filter_bytes = 0;
    let mut next = Some(first);
    while let Some(event) = next.take() {
        if let Some(event) = translate(event) {
            if let EngineEvent::Filter { content, .. } = &event {
                filter_bytes += content.len();
            }
            batch.push(event);
        }
        if batch.len() < MAX_EVENT_BATCH && filter_bytes < MAX_BATCH_FILTER_BYTES {
            next = event_rx.try_recv().ok();
        }
    }
    let synced = batch
        .iter()
        .filter_map(|event| match event {
            EngineEvent::Synced { height, .. } => Some(*height),
            _ => None,
        })
        .max();
    let applying = host.clone();
    if let Err(err) = tokio::task::spawn_blocking(move || applying.apply(batch)).await {
        error!("applying compact-filter engine events failed: {err}");
        return None;
    }
    synced.filter(|_| host.filters_synced())
}

/// Returns memory the allocator keeps after large frees (such as a stopped engine's header
/// table) to the system. glibc keeps freed heap memory otherwise.
fn release_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks the allocator's own free lists; it takes no pointers.
    unsafe {
        libc::malloc_trim(0);
    }
}

fn translate(event: Event) -> Option<EngineEvent> {
    Some(match event {
        Event::ChainUpdate(BlockHeaderChanges::Connected(indexed)) => {
            EngineEvent::Header(HeaderChange::Connected {
                height: indexed.height,
                header: indexed.header,
            })
        }
        Event::ChainUpdate(BlockHeaderChanges::ForkAdded(indexed)) => {
            EngineEvent::Header(HeaderChange::Fork {
                height: indexed.height,
                header: indexed.header,
            })
        }
        Event::ChainUpdate(BlockHeaderChanges::Reorganized {
            accepted,
            reorganized,
        }) => EngineEvent::Header(HeaderChange::Reorganized {
            accepted: accepted.iter().map(|h| (h.height, h.header)).collect(),
            disconnected: reorganized.iter().map(|h| (h.height, h.header)).collect(),
        }),
        Event::IndexedFilter(filter) => {
            let height = filter.height();
            let hash = filter.block_hash();
            EngineEvent::Filter {
                height,
                hash,
                content: filter.into_contents(),
            }
        }
        Event::FiltersSynced(update) => EngineEvent::Synced {
            height: update.tip().height,
            hash: update.tip().hash,
        },
    })
}

fn log_info(info: &Info, host: &Arc<dyn EngineHost>) {
    match info {
        Info::SuccessfulHandshake => {
            debug!("compact-filter engine: {info}");
            host.peer_connected();
        }
        Info::ConnectionsMet => info!("connected to the required number of Bitcoin peers"),
        _ => log::trace!("compact-filter engine: {info}"),
    }
}

/// How often a block download in progress is checked for a stall.
const STALL_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// How `bip157` describes headers that fork below the first header it holds.
const HEADERS_DO_NOT_CONNECT: &str = "does not connect to any header of ours";
/// How `bip157` describes peers that disagree on filter headers (it names neither).
const FILTER_HEADERS_CONFLICT: &str = "Found a conflict while peers are sending filter headers";

fn log_warning(warning: &Warning, host: &Arc<dyn EngineHost>, peer_timeouts: &AtomicU64) {
    match warning {
        Warning::PeerTimedOut => {
            peer_timeouts.fetch_add(1, Ordering::SeqCst);
            info!("compact-filter engine: {warning}")
        }
        Warning::NeedConnections { .. } | Warning::CouldNotConnect | Warning::ChannelDropped => {
            debug!("compact-filter engine: {warning}")
        }
        Warning::UnexpectedSyncError { warning } if warning.contains(FILTER_HEADERS_CONFLICT) => {
            warn!(
                "Bitcoin peers disagree on filter headers; the compact-filter engine dropped them \
                 and the node checks which one lies"
            );
            host.filter_headers_disagree();
        }
        Warning::UnexpectedSyncError { warning } if warning.contains(HEADERS_DO_NOT_CONNECT) => {
            warn!(
                "a Bitcoin peer's chain forks below where the compact-filter engine started: \
                 {warning}"
            );
            host.headers_did_not_connect();
        }
        // bip157 0.8.1 as released also reported "we could not find the filter hash
        // corresponding to that stop hash" against an honest peer whenever a block arrived
        // while filters were being fetched (it asked for that block's filter before its filter
        // header) and banned it, stopping an engine with one peer. The copy in vendor/bip157
        // is fixed; vendor/bip157/PATCHED.md says what belongs upstream.
        Warning::UnexpectedSyncError { warning } => {
            warn!(
                "a Bitcoin peer sent data that failed verification and was disconnected: {warning}"
            )
        }
        Warning::TransactionRejected { payload } => warn!(
            "a peer rejected transaction {}: {:?}",
            payload.wtxid, payload.reason
        ),
        _ => info!("compact-filter engine: {warning}"),
    }
}

async fn join_outcome(run: &mut tokio::task::JoinHandle<Result<(), bip157::NodeError>>) -> String {
    describe(run.await)
}

fn describe(result: Result<Result<(), bip157::NodeError>, tokio::task::JoinError>) -> String {
    match result {
        Ok(Ok(())) => "shut down".to_string(),
        Ok(Err(err)) => err.to_string(),
        Err(err) => format!("engine task failed: {err}"),
    }
}

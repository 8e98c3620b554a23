//! The engine's view of the chain source ([`Host`]): where the engine starts, and what is
//! done with what it learns. Headers and filters are stored by the tracker; the filters of
//! blocks the listeners have yet to reach are checked as they are stored, before their blocks
//! count as verified, and matching blocks are requested ahead of the listeners; the engine is
//! restarted when what it sends cannot be stored or leaves filters missing. When peers
//! disagree on filter headers, the liar is looked for ([`super::filter_audit`]), and the
//! engine connects to no banned peer.

use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};

use bitcoin::BlockHash;
use log::{debug, error, info, warn};

use super::engine::{Engine, EngineHost};
use super::fetcher::BlockFetcher;
use super::filter_audit::{self, AuditOutcome};
use super::filter_checks::FilterChecks;
use super::header_store::HeaderChange;
use super::listener::ChainListener;
use super::notifications::ChainNotification;
use super::peer_address::PeerAddress;
use super::prefetch::Prefetcher;
use super::tracker::{
    ChainTracker, EngineEvent, StartPoint, StoredFilter, TrackedHeights, RESTART_DEPTH,
};

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

/// Filters missing between a verified tip and the tip an engine reports itself synced to.
type Gap = (Option<(u32, BlockHash)>, (u32, BlockHash));

/// [`Host::listeners_floor`] before any is given.
const NO_FLOOR: u32 = u32::MAX;

/// The engine's view of the rest of the chain source.
pub struct Host {
    tracker: Arc<ChainTracker>,
    fetcher: Arc<BlockFetcher>,
    listener: Arc<ChainListener>,
    checks: Arc<FilterChecks>,
    prefetcher: Arc<Prefetcher>,
    /// Where the lowest listener stands before the listeners are synchronised
    /// (`ChainSource::cover_listeners_from`); [`NO_FLOOR`] if not given.
    listeners_floor: AtomicU32,
    /// How far below the verified tip the engine starts: [`RESTART_DEPTH`], doubled each time
    /// a peer's chain forked below the engine's start, until a sync completes.
    restart_depth: AtomicU32,
    /// The verified tip when the engine was last restarted to fill a gap in the filters of
    /// the active chain: a second restart for the same gap would only repeat the first.
    gap_restart_at: Mutex<Option<Option<(u32, BlockHash)>>>,
    /// The verified tip and the engine's tip when the engine was last asked to fetch the
    /// filters between them (see `Host::fetch_missing_filters`).
    rescan_asked: Mutex<Option<Gap>>,
    /// Whether an audit of disagreeing filter headers is under way.
    auditing: Arc<AtomicBool>,
    engine: Arc<Engine>,
}

impl Host {
    /// The engine's view of a chain source made of these parts.
    pub fn new(
        tracker: Arc<ChainTracker>,
        fetcher: Arc<BlockFetcher>,
        listener: Arc<ChainListener>,
        checks: Arc<FilterChecks>,
        prefetcher: Arc<Prefetcher>,
    ) -> Self {
        Self {
            engine: fetcher.engine().clone(),
            tracker,
            fetcher,
            listener,
            checks,
            prefetcher,
            listeners_floor: AtomicU32::new(NO_FLOOR),
            restart_depth: AtomicU32::new(RESTART_DEPTH),
            gap_restart_at: Mutex::new(None),
            rescan_asked: Mutex::new(None),
            auditing: Arc::new(AtomicBool::new(false)),
        }
    }

    /// Sets where the lowest listener stands before the listeners are synchronised: the
    /// engine starts below it.
    pub fn set_listeners_floor(&self, height: u32) {
        self.listeners_floor.store(height, Ordering::SeqCst);
    }

    /// Checks the filters a batch stored for blocks the listeners have yet to reach, and
    /// requests the matching blocks ahead of them.
    fn check_ahead(&self, stored: &[StoredFilter<'_>], listeners_at: Option<u32>) {
        for filter in self.checks.check_arriving(stored, listeners_at) {
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
        self.fetcher.count_received(bytes_of(&events));
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
        self.fetch_missing_filters(&events, &after);
        // A tip is news when it moves, and again when the engine declares itself synced at it
        // (samplers wait for that).
        let became_synced = after.engine_synced && !before.engine_synced;
        if after.verified_tip != before.verified_tip || became_synced {
            if let Some((height, hash)) = after.verified_tip {
                self.fetcher
                    .notify(ChainNotification::NewTip { height, hash });
            }
        }
    }

    fn filters_synced(&self) -> bool {
        self.tracker.heights().engine_synced
    }

    fn peer_connected(&self) {
        self.fetcher.notify(ChainNotification::PeerConnected);
    }

    fn is_banned(&self, addr: &PeerAddress) -> bool {
        self.fetcher.links().bans().is_banned(addr)
    }

    fn filter_headers_disagree(&self) {
        if self.auditing.swap(true, Ordering::SeqCst) {
            return;
        }
        let links = self.fetcher.links().clone();
        let tracker = self.tracker.clone();
        let engine = self.engine.clone();
        let auditing = self.auditing.clone();
        tokio::spawn(async move {
            let outcome = filter_audit::audit(&links, &tracker).await;
            auditing.store(false, Ordering::SeqCst);
            match outcome {
                AuditOutcome::Conflict { banned, .. } if !banned.is_empty() => {
                    let names: Vec<String> =
                        banned.iter().map(|(addr, _)| addr.to_string()).collect();
                    engine.restart(format!(
                        "Bitcoin peer(s) {} banned for a wrong filter",
                        names.join(", ")
                    ));
                }
                AuditOutcome::Conflict { .. } => {}
                AuditOutcome::NoConflict => {
                    info!("the linked Bitcoin peers agree on every filter header")
                }
                AuditOutcome::Inconclusive(why) => {
                    warn!("could not find which Bitcoin peer sent wrong filter headers: {why}")
                }
            }
        });
    }

    fn engine_stopped(&self) {
        // The next run syncs headers only first and is asked for the filters then.
        *self.rescan_asked.lock().unwrap_or_else(|p| p.into_inner()) = None;
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
    /// Asks the engine for the filters above the verified tip when it reports itself synced
    /// to the header tip while the verified tip stays below. Every run syncs headers only and
    /// takes the blocks up to the tip as checked, so this is how a run is given the filters to
    /// fetch: those above the verified tip, none of those stored below it (after a restore's
    /// header phase, those from the birthday on). A run that reports the same gap again after
    /// being asked misses filters it will not send (a branch that became active again after
    /// its filters were replaced by another branch's): the engine is restarted, once per gap.
    fn fetch_missing_filters(&self, events: &[EngineEvent], after: &TrackedHeights) {
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
        let gap = (after.verified_tip, synced);
        let asked_before = self
            .rescan_asked
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .replace(gap)
            == Some(gap);
        if !asked_before {
            debug!(
                "the compact-filter engine is at the tip with headers; fetching the filters \
                 above block {verified}"
            );
            self.engine.rescan_from(verified);
            return;
        }
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

//! Per-endpoint switches that make the peer lie or go quiet, for adversarial tests. All are off
//! by default and can be flipped at any time; sessions read them on every request. Beside
//! them, [`EndpointCounts`] counts what the endpoint was asked, so a test can tell which of
//! several endpoints a client asked for what.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bitcoin::BlockHash;

/// How deep below the tip a pruned endpoint still serves blocks: Core's
/// `NODE_NETWORK_LIMITED_MIN_BLOCKS` (288) and the two blocks of slack it allows for races.
pub const PRUNED_DEPTH: u32 = 288 + 2;

/// Misbehaviour switches of one endpoint.
#[derive(Debug, Default)]
pub struct Misbehaviour {
    wrong_filters: AtomicBool,
    wrong_filter_for: Mutex<Option<BlockHash>>,
    lying_filter_for: Mutex<Option<BlockHash>>,
    pruned: AtomicBool,
    conflicting_cfheaders: AtomicBool,
    strip_witness: AtomicBool,
    withhold_blocks: AtomicBool,
    withhold_filters: AtomicBool,
    stall: AtomicBool,
    fee_filter: Mutex<Option<i64>>,
    mutate_blocks: AtomicBool,
    undecodable_filters: AtomicBool,
    block_trickle: Mutex<Option<Duration>>,
    link_rate: AtomicU64,
    /// With a paced link: when it is done with what was queued on it.
    link_free_at: Mutex<Option<tokio::time::Instant>>,
    counts: EndpointCounts,
}

impl Misbehaviour {
    /// Serve wrong `cfilter` contents for every block (their hash will not match honest
    /// `cfheaders`). The wrong filter hides every non-coinbase script of the block.
    pub fn set_wrong_filters(&self, on: bool) {
        self.wrong_filters.store(on, Ordering::SeqCst);
    }

    /// Serve a wrong `cfilter` for this one block only (`None` stops it).
    pub fn set_wrong_filter_for(&self, block: Option<BlockHash>) {
        *self
            .wrong_filter_for
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = block;
    }

    /// Lie about the filter of this one block, consistently (`None` stops it): serve a wrong
    /// `cfilter` for it (one that hides every non-coinbase script of the block) and `cfheaders`
    /// (and `cfcheckpt`) whose filter-header chain is built from that wrong filter, so the lie
    /// passes every check a single client can make and shows only as a conflict with an honest
    /// peer's filter headers from that block on. Set it before clients sync past the block.
    pub fn set_lying_filter_for(&self, block: Option<BlockHash>) {
        *self
            .lying_filter_for
            .lock()
            .unwrap_or_else(|e| e.into_inner()) = block;
    }

    /// The block whose filter this endpoint lies about consistently, if any.
    pub fn lying_filter_for(&self) -> Option<BlockHash> {
        *self
            .lying_filter_for
            .lock()
            .unwrap_or_else(|e| e.into_inner())
    }

    /// Act as a pruned Bitcoin Core: announce `NODE_NETWORK_LIMITED` instead of `NODE_NETWORK`
    /// to peers that connect from now on, and disconnect a peer that asks for a block more than
    /// [`PRUNED_DEPTH`] blocks below the tip, as Core does (the request is counted, see
    /// [`deep_block_requests`](Self::deep_block_requests)).
    pub fn set_pruned(&self, on: bool) {
        self.pruned.store(on, Ordering::SeqCst);
    }

    /// What the endpoint was asked and answered so far.
    pub fn counts(&self) -> &EndpointCounts {
        &self.counts
    }

    /// Whether the endpoint acts as a pruned node.
    pub fn pruned(&self) -> bool {
        self.pruned.load(Ordering::SeqCst)
    }

    /// Serve `cfheaders` (and `cfcheckpt`) built from the wrong filters, disagreeing with honest
    /// peers. Together with [`set_wrong_filters`](Self::set_wrong_filters) the lie is
    /// self-consistent.
    pub fn set_conflicting_cfheaders(&self, on: bool) {
        self.conflicting_cfheaders.store(on, Ordering::SeqCst);
    }

    /// Answer witness-block requests with blocks stripped of all witness data.
    pub fn set_strip_witness(&self, on: bool) {
        self.strip_witness.store(on, Ordering::SeqCst);
    }

    /// Answer every block request with `notfound`.
    pub fn set_withhold_blocks(&self, on: bool) {
        self.withhold_blocks.store(on, Ordering::SeqCst);
    }

    /// Ignore `getcfilters`, `getcfheaders` and `getcfcheckpt`.
    pub fn set_withhold_filters(&self, on: bool) {
        self.withhold_filters.store(on, Ordering::SeqCst);
    }

    /// Read everything, answer nothing (no handshake, pongs, data or announcements).
    pub fn set_stall(&self, on: bool) {
        self.stall.store(on, Ordering::SeqCst);
    }

    /// Announce `rate` (sat per 1000 vB, any value a peer could send) in `feefilter` to peers
    /// that connect from now on, instead of the usual minimum, and refuse transactions from
    /// this endpoint's peers that pay less (as Bitcoin Core started with `-minrelaytxfee` does);
    /// `None` goes back to the usual minimum.
    pub fn set_fee_filter(&self, rate: Option<i64>) {
        *self.fee_filter.lock().unwrap_or_else(|e| e.into_inner()) = rate;
    }

    /// The `feefilter` value to announce instead of the usual one, if any.
    pub fn fee_filter(&self) -> Option<i64> {
        *self.fee_filter.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Serve blocks with an odd number of transactions with their last transaction twice: the
    /// merkle root (and the witness commitment) stay the same (CVE-2012-2459).
    pub fn set_mutate_blocks(&self, on: bool) {
        self.mutate_blocks.store(on, Ordering::SeqCst);
    }

    /// Make the wrong filters (see [`set_wrong_filters`](Self::set_wrong_filters) and
    /// [`set_conflicting_cfheaders`](Self::set_conflicting_cfheaders)) bytes that do not decode
    /// as a filter. Set it before any client connects: lying filter headers are cached.
    pub fn set_undecodable_filters(&self, on: bool) {
        self.undecodable_filters.store(on, Ordering::SeqCst);
    }

    /// Whether wrong filters are undecodable.
    pub fn undecodable_filters(&self) -> bool {
        self.undecodable_filters.load(Ordering::SeqCst)
    }

    /// Send each block slowly, spread evenly over `over` (as a peer behind a slow link
    /// would); `None` sends blocks at once again.
    pub fn set_block_trickle(&self, over: Option<Duration>) {
        *self.block_trickle.lock().unwrap_or_else(|e| e.into_inner()) = over;
    }

    /// Send everything at no more than `bytes_per_second`, all sessions of this endpoint
    /// together, as over the one link of a client that all its connections share; `None`
    /// sends as fast as the sockets take it again.
    pub fn set_link_rate(&self, bytes_per_second: Option<u64>) {
        self.link_rate
            .store(bytes_per_second.unwrap_or(0), Ordering::SeqCst);
    }

    /// Whether what this endpoint sends is paced ([`set_link_rate`](Self::set_link_rate)).
    pub fn link_paced(&self) -> bool {
        self.link_rate.load(Ordering::SeqCst) > 0
    }

    /// Queues `bytes` on the paced link, if there is one: returns when the link will have
    /// carried them, after everything queued before.
    pub fn reserve_link(&self, bytes: u64) -> Option<tokio::time::Instant> {
        let rate = Some(self.link_rate.load(Ordering::SeqCst)).filter(|rate| *rate > 0)?;
        let mut free_at = self.link_free_at.lock().unwrap_or_else(|e| e.into_inner());
        let now = tokio::time::Instant::now();
        let start = free_at.map_or(now, |at| at.max(now));
        let done = start + Duration::from_secs_f64(bytes as f64 / rate as f64);
        *free_at = Some(done);
        Some(done)
    }

    /// How long each block takes to send, if blocks trickle.
    pub fn block_trickle(&self) -> Option<Duration> {
        *self.block_trickle.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Whether served blocks are mutated.
    pub fn mutate_blocks(&self) -> bool {
        self.mutate_blocks.load(Ordering::SeqCst)
    }

    /// Whether the filter served for `block` is wrong.
    pub fn filter_is_wrong(&self, block: &BlockHash) -> bool {
        self.wrong_filters.load(Ordering::SeqCst)
            || *self
                .wrong_filter_for
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                == Some(*block)
            || self.lying_filter_for() == Some(*block)
    }

    /// Whether `cfheaders` are conflicting.
    pub fn conflicting_cfheaders(&self) -> bool {
        self.conflicting_cfheaders.load(Ordering::SeqCst)
    }

    /// Whether witnesses are stripped from served blocks.
    pub fn strip_witness(&self) -> bool {
        self.strip_witness.load(Ordering::SeqCst)
    }

    /// Whether blocks are withheld.
    pub fn withhold_blocks(&self) -> bool {
        self.withhold_blocks.load(Ordering::SeqCst)
    }

    /// Whether filter requests are ignored.
    pub fn withhold_filters(&self) -> bool {
        self.withhold_filters.load(Ordering::SeqCst)
    }

    /// Whether the endpoint is stalling.
    pub fn stall(&self) -> bool {
        self.stall.load(Ordering::SeqCst)
    }
}

/// What one endpoint was asked and answered, for tests that check which peer a client asked.
#[derive(Debug, Default)]
pub struct EndpointCounts {
    connections: AtomicU64,
    blocks_served: AtomicU64,
    block_requests: std::sync::Mutex<Vec<Vec<bitcoin::BlockHash>>>,
    blocks_not_found: AtomicU64,
    deep_block_requests: AtomicU64,
}

impl EndpointCounts {
    /// Connections the endpoint accepted.
    pub fn connections(&self) -> u64 {
        self.connections.load(Ordering::SeqCst)
    }

    /// Blocks it sent.
    pub fn blocks_served(&self) -> u64 {
        self.blocks_served.load(Ordering::SeqCst)
    }

    /// The blocks asked for in each `getdata` that asked for blocks, in order.
    pub fn block_requests(&self) -> Vec<Vec<bitcoin::BlockHash>> {
        self.block_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Block requests it answered with `notfound`.
    pub fn blocks_not_found(&self) -> u64 {
        self.blocks_not_found.load(Ordering::SeqCst)
    }

    /// Requests for blocks deeper than a pruned endpoint serves (each one ended the connection).
    pub fn deep_block_requests(&self) -> u64 {
        self.deep_block_requests.load(Ordering::SeqCst)
    }

    pub(crate) fn count_connection(&self) {
        self.connections.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_block_served(&self) {
        self.blocks_served.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_block_request(&self, blocks: Vec<bitcoin::BlockHash>) {
        self.block_requests
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(blocks);
    }

    pub(crate) fn count_block_not_found(&self) {
        self.blocks_not_found.fetch_add(1, Ordering::SeqCst);
    }

    pub(crate) fn count_deep_block_request(&self) {
        self.deep_block_requests.fetch_add(1, Ordering::SeqCst);
    }
}

//! Per-endpoint switches that make the peer lie or go quiet, for adversarial tests. All are off
//! by default and can be flipped at any time; sessions read them on every request.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Mutex;
use std::time::Duration;

use bitcoin::BlockHash;

/// Misbehaviour switches of one endpoint.
#[derive(Debug, Default)]
pub struct Misbehaviour {
    wrong_filters: AtomicBool,
    wrong_filter_for: Mutex<Option<BlockHash>>,
    conflicting_cfheaders: AtomicBool,
    strip_witness: AtomicBool,
    withhold_blocks: AtomicBool,
    withhold_filters: AtomicBool,
    stall: AtomicBool,
    fee_filter: Mutex<Option<i64>>,
    mutate_blocks: AtomicBool,
    undecodable_filters: AtomicBool,
    block_trickle: Mutex<Option<Duration>>,
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
    /// that connect from now on, instead of the usual minimum; `None` goes back to it.
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

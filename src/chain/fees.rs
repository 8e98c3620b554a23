//! Fee estimation without a server.
//!
//! Three sources are combined: the average fee rate of recent blocks, derived from their
//! coinbase (fees = coinbase outputs − subsidy, divided by the weight of the non-coinbase
//! transactions; a block with only its coinbase counts as 0); the lowest BIP 133 `feefilter`
//! among connected peers, below which no peer relays (a transaction paying it is relayed by at
//! least one, so no single peer can raise it above what another takes); and a per-target policy on top of
//! them: with `median` and `highest` over the last [`SAMPLE_WINDOW`] samples, non-anchor
//! channel and output spending use `median`, urgent sweeps `max(highest, 1.5 × median)`,
//! anchor channel and close minimum `median / 2`, the non-anchor remote minimum `median / 4`,
//! the anchor remote minimum the floor, and the maximum `max(4 × highest, 25,000)`. Configured
//! overrides win. Estimates are computed when a sample arrives and cached, so LDK's frequent
//! calls cost a table lookup.
//!
//! **What peers can move.** Every target is at least 253 sat/kw. The targets our own
//! transactions are built with are also raised to the peers' lowest feefilter plus
//! [`PEER_FLOOR_MARGIN_PERCENT`] (below it no peer relays them), but a feefilter counts only up
//! to [`MAX_PEER_FLOOR_SAT_PER_KW`]: any peer can send any value. The commitment fee rates of
//! our channels (`AnchorChannelFee`, `NonAnchorChannelFee`) are raised by it at most to the
//! highest fee rate recent blocks paid (with no block sampled, not above their fallback), so
//! peers cannot push the fees a counterparty is asked to accept above what blocks show. The
//! targets that judge a counterparty (`MinAllowedAnchorChannelRemoteFee`,
//! `MinAllowedNonAnchorChannelRemoteFee`, `ChannelCloseMinimum`) are never raised by a peer's
//! feefilter, so a Bitcoin peer cannot make the node force-close channels or refuse closes. No
//! estimate is ever above [`MAX_FEE_RATE_SAT_PER_KW`].
//!
//! **Bandwidth budget.** Every block downloaded for the listeners is sampled at no extra cost.
//! Beyond that, the sampler downloads a tip block of its own (counted apart from the
//! listeners' in [`super::DownloadCounts`]) only when the estimates are about to be used:
//! - on every new tip while the node has **fee-sensitive work** pending (a channel opening or
//!   closing, outputs being claimed or swept, a transaction of its own unconfirmed: see
//!   [`FeeEstimates::set_fee_sensitive`]), because LDK prices and bumps those transactions
//!   block by block;
//! - before the node builds a transaction of its own, when the newest sample is more than
//!   [`FRESH_SAMPLE_DEPTH`] blocks below the tip ([`FeeEstimates::wait_fresh`]);
//! - when the peers' feefilter (read every minute, for free) has moved by a factor of
//!   [`FEEFILTER_JUMP_FACTOR`] since the last sample: mempools filling up show there first;
//! - otherwise once per [`IDLE_SAMPLE_INTERVAL_PUBLIC`] blocks (about a day) on public
//!   networks, and on every new tip on regtest, where blocks are tiny.
//!
//! A sample due for none of the first three reasons waits while the listeners catch up (more
//! than a block behind the tip): a block they fetch on the way, recent enough, is the sample.
//!
//! An idle node with anchor channels needs no more: the targets that judge a counterparty do
//! not move with samples (see above), and anchor commitments are bumped when they are used.
//! On mainnet-sized blocks this keeps an idle node's sampling to ~1.5–2 MB a day instead of an
//! hourly block (~35 MB a day).
//!
//! **Fallback table** when nothing is known (no sample yet, no peers), in sat/kw:
//! maximum 25,000; urgent on-chain sweep 5,000; non-anchor channel 2,500; output spending
//! 1,250; anchor channel 500; channel close minimum and both "minimum allowed" targets 253.
//! Nothing is ever below 253 sat/kw.

use std::collections::{BTreeMap, HashMap};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use bitcoin::{Amount, Block, FeeRate, Network, Weight};
use lightning::chain::chaininterface::{
    ConfirmationTarget, FeeEstimator, FEERATE_FLOOR_SATS_PER_KW,
};
use log::{debug, info};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{watch, Notify};

use super::fetcher::{BlockFetcher, FetchPurpose};
use super::listener::ChainListener;
use super::notifications::ChainNotification;

/// No estimate is ever above this, in sat/kw (1,000 sat/vB, far above any fee paid on mainnet
/// so far): whatever blocks or peers report, the node does not pay more.
pub const MAX_FEE_RATE_SAT_PER_KW: u32 = 250_000;
/// A peer's feefilter raises the targets of the node's own transactions at most to this, in
/// sat/kw (100 sat/vB: mempools have asked that much in congestion; a peer asking more is
/// ignored above it).
pub const MAX_PEER_FLOOR_SAT_PER_KW: u32 = 25_000;

/// How much above a peer's feefilter the node's own transactions are priced, in percent:
/// Bitcoin Core announces its minimum rounded down to steps of 10 % (and counts whole vbytes),
/// so a transaction paying just the announced rate can still be refused.
pub const PEER_FLOOR_MARGIN_PERCENT: u64 = 11;

/// How many recent block samples the estimates are computed from.
pub const SAMPLE_WINDOW: usize = 12;
/// On public networks an idle node downloads a tip block for sampling once per this many
/// blocks (about a day).
pub const IDLE_SAMPLE_INTERVAL_PUBLIC: u32 = 144;
/// Samples are fresh enough to price the node's own transactions while the newest is at most
/// this many blocks (about an hour) below the tip.
pub const FRESH_SAMPLE_DEPTH: u32 = 6;
/// A move of the peers' feefilter by this factor (either way) since the last sample calls for a
/// new sample.
pub const FEEFILTER_JUMP_FACTOR: u32 = 2;
/// Peers' feefilters are re-read this often.
const FEEFILTER_REFRESH: Duration = Duration::from_secs(60);

/// How often a tip sample held back for catching-up listeners checks whether they caught up.
const LISTENERS_CHECK: Duration = Duration::from_millis(500);

/// Every confirmation target LDK asks about.
pub const ALL_TARGETS: [ConfirmationTarget; 8] = [
    ConfirmationTarget::MaximumFeeEstimate,
    ConfirmationTarget::UrgentOnChainSweep,
    ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
    ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
    ConfirmationTarget::AnchorChannelFee,
    ConfirmationTarget::NonAnchorChannelFee,
    ConfirmationTarget::ChannelCloseMinimum,
    ConfirmationTarget::OutputSpendingFee,
];

/// The fallback estimate for `target` when nothing is known, in sat/kw.
pub fn fallback(target: ConfirmationTarget) -> u32 {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => 25_000,
        ConfirmationTarget::UrgentOnChainSweep => 5_000,
        ConfirmationTarget::NonAnchorChannelFee => 2_500,
        ConfirmationTarget::OutputSpendingFee => 1_250,
        ConfirmationTarget::AnchorChannelFee => 500,
        ConfirmationTarget::ChannelCloseMinimum
        | ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
        | ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => FEERATE_FLOOR_SATS_PER_KW,
    }
}

/// A stable name for `target`, as used in configuration files.
pub fn target_name(target: ConfirmationTarget) -> &'static str {
    match target {
        ConfirmationTarget::MaximumFeeEstimate => "maximum",
        ConfirmationTarget::UrgentOnChainSweep => "urgent_on_chain_sweep",
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => "min_allowed_anchor_channel_remote",
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => {
            "min_allowed_non_anchor_channel_remote"
        }
        ConfirmationTarget::AnchorChannelFee => "anchor_channel",
        ConfirmationTarget::NonAnchorChannelFee => "non_anchor_channel",
        ConfirmationTarget::ChannelCloseMinimum => "channel_close_minimum",
        ConfirmationTarget::OutputSpendingFee => "output_spending",
    }
}

/// Parses a target name as produced by [`target_name`].
pub fn parse_target(name: &str) -> Option<ConfirmationTarget> {
    ALL_TARGETS.into_iter().find(|t| target_name(*t) == name)
}

/// Fixed estimates, in sat/kw, that replace the computed ones for their targets.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FeeOverrides(HashMap<ConfirmationTarget, u32>);

impl FeeOverrides {
    /// No overrides.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets the estimate for `target` (raised to the 253 sat/kw floor).
    pub fn set(&mut self, target: ConfirmationTarget, sat_per_kw: u32) {
        self.0
            .insert(target, sat_per_kw.max(FEERATE_FLOOR_SATS_PER_KW));
    }

    /// The override for `target`.
    pub fn get(&self, target: ConfirmationTarget) -> Option<u32> {
        self.0.get(&target).copied()
    }
}

/// The block subsidy at `height` on `network`.
pub fn block_subsidy(network: Network, height: u32) -> Amount {
    let interval = if network == Network::Regtest {
        150
    } else {
        210_000
    };
    let halvings = height / interval;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// The average fee rate paid by the non-coinbase transactions of `block`, derived from its
/// coinbase; `None` for a block without transactions besides the coinbase.
pub fn block_fee_rate(network: Network, block: &Block, height: u32) -> Option<FeeRate> {
    let coinbase = block.txdata.first()?;
    if block.txdata.len() < 2 {
        return None;
    }
    let claimed: Amount = coinbase.output.iter().map(|out| out.value).sum();
    let fees = claimed
        .checked_sub(block_subsidy(network, height))
        .unwrap_or(Amount::ZERO);
    let weight: Weight = block.txdata[1..].iter().map(|tx| tx.weight()).sum();
    let kwu = weight.to_wu().max(1);
    Some(FeeRate::from_sat_per_kwu(fees.to_sat() * 1_000 / kwu))
}

#[derive(Debug, Default)]
struct Inputs {
    /// Average fee rate by block height (sat/kw); 0 for blocks with only a coinbase.
    samples: BTreeMap<u32, u32>,
    /// The lowest feefilter among the peers, with the margin and capped, sat/kw.
    peers_min: u32,
    /// `peers_min` when the newest sample was taken.
    peers_min_at_sample: u32,
}

impl Inputs {
    /// Height of the newest sampled block.
    fn newest_sample(&self) -> Option<u32> {
        self.samples.last_key_value().map(|(height, _)| *height)
    }

    /// Whether the feefilter moved by [`FEEFILTER_JUMP_FACTOR`] since the newest sample.
    fn feefilter_jumped(&self) -> bool {
        let (now, then) = (
            self.peers_min.max(FEERATE_FLOOR_SATS_PER_KW),
            self.peers_min_at_sample.max(FEERATE_FLOOR_SATS_PER_KW),
        );
        now >= then.saturating_mul(FEEFILTER_JUMP_FACTOR)
            || then >= now.saturating_mul(FEEFILTER_JUMP_FACTOR)
    }
}

/// Whether a tip block at `tip` should be downloaded as a sample, given what was sampled,
/// whether fee-sensitive work is pending and the idle interval in blocks.
fn tip_sample_due(inputs: &Inputs, tip: u32, fee_sensitive: bool, idle_interval: u32) -> bool {
    match inputs.newest_sample() {
        None => true,
        Some(newest) if newest >= tip => false,
        Some(newest) => {
            fee_sensitive || inputs.feefilter_jumped() || tip - newest >= idle_interval.max(1)
        }
    }
}

/// Whether a due tip sample waits for the listeners, standing at `listeners_at`, to catch up
/// with the tip at `tip` first: when it is not urgent (no fee-sensitive work pending, the
/// peers' feefilter has not jumped) and they are more than a block behind (or not started),
/// since the blocks they fetch on the way may include one recent enough to be the sample, at
/// no extra cost.
fn sample_waits_for_listeners(
    inputs: &Inputs,
    fee_sensitive: bool,
    listeners_at: Option<u32>,
    tip: u32,
) -> bool {
    !fee_sensitive
        && !inputs.feefilter_jumped()
        && listeners_at.is_none_or(|at| at.saturating_add(1) < tip)
}

/// Cached fee estimates; implements LDK's [`FeeEstimator`].
#[derive(Debug)]
pub struct FeeEstimates {
    network: Network,
    overrides: FeeOverrides,
    /// Blocks between tip samples while the node is idle.
    idle_interval: u32,
    inputs: Mutex<Inputs>,
    table: RwLock<HashMap<ConfirmationTarget, u32>>,
    /// Whether the node has fee-sensitive work pending.
    fee_sensitive: AtomicBool,
    /// Wakes the sampler to sample the tip now if it is due (or stale, when `fresh_wanted`).
    sample_wanted: Notify,
    /// A caller of [`FeeEstimates::wait_fresh`] waits for a sample of the tip.
    fresh_wanted: AtomicBool,
    /// Ticks on every sample, for [`FeeEstimates::wait_fresh`].
    sampled: watch::Sender<()>,
}

impl FeeEstimates {
    /// Estimates for `network` with `overrides`, starting from the fallback table.
    pub fn new(network: Network, overrides: FeeOverrides) -> Self {
        let estimates = Self {
            network,
            overrides,
            idle_interval: default_idle_interval(network),
            inputs: Mutex::new(Inputs::default()),
            table: RwLock::new(HashMap::new()),
            fee_sensitive: AtomicBool::new(false),
            sample_wanted: Notify::new(),
            fresh_wanted: AtomicBool::new(false),
            sampled: watch::channel(()).0,
        };
        estimates.recompute(&Inputs::default());
        estimates
    }

    /// Samples the tip once per `blocks` while the node is idle, instead of the network's
    /// default (see [`default_idle_interval`]).
    pub fn with_idle_interval(mut self, blocks: u32) -> Self {
        self.idle_interval = blocks.max(1);
        self
    }

    /// Blocks between tip samples while the node is idle.
    pub fn idle_interval(&self) -> u32 {
        self.idle_interval
    }

    /// Tells the sampler whether the node has fee-sensitive work pending (a channel opening
    /// or closing, outputs being claimed or swept, a transaction of its own unconfirmed):
    /// while it has, every new tip is sampled.
    pub fn set_fee_sensitive(&self, pending: bool) {
        let was = self.fee_sensitive.swap(pending, Ordering::Relaxed);
        if pending && !was {
            debug!("fee-sensitive work pending: sampling every new block");
            self.sample_wanted.notify_one();
        } else if was && !pending {
            debug!(
                "no fee-sensitive work pending: sampling once per {} blocks",
                self.idle_interval
            );
        }
    }

    /// Whether the node has fee-sensitive work pending.
    pub fn fee_sensitive(&self) -> bool {
        self.fee_sensitive.load(Ordering::Relaxed)
    }

    /// Whether the newest sample is at most [`FRESH_SAMPLE_DEPTH`] blocks below `tip`.
    pub fn is_fresh(&self, tip: u32) -> bool {
        self.inputs()
            .newest_sample()
            .is_some_and(|newest| newest.saturating_add(FRESH_SAMPLE_DEPTH) >= tip)
    }

    /// Makes the estimates fresh for a transaction of the node's own at chain tip `tip`: asks
    /// the sampler for the tip block when the newest sample is stale, and waits for it at most
    /// `timeout`. Returns whether the estimates are fresh (when not, the caller goes on with
    /// what is known; the sampler keeps trying on the next block).
    pub async fn wait_fresh(&self, tip: u32, timeout: Duration) -> bool {
        if self.is_fresh(tip) {
            return true;
        }
        let mut sampled = self.sampled.subscribe();
        self.fresh_wanted.store(true, Ordering::Relaxed);
        self.sample_wanted.notify_one();
        let fresh = tokio::time::timeout(timeout, async {
            loop {
                if self.is_fresh(tip) {
                    return;
                }
                if sampled.changed().await.is_err() {
                    std::future::pending::<()>().await;
                }
            }
        })
        .await
        .is_ok();
        if !fresh {
            info!("fee estimates could not be refreshed at height {tip}; using the last samples");
        }
        fresh
    }

    /// Whether a due sample of the tip at `tip` waits for the listeners, standing at
    /// `listeners_at`, to catch up first (see [`sample_waits_for_listeners`]).
    fn tip_sample_waits(&self, listeners_at: Option<u32>, tip: u32) -> bool {
        sample_waits_for_listeners(&self.inputs(), self.fee_sensitive(), listeners_at, tip)
    }

    /// Whether the sampler should download the tip at `tip` as a sample now.
    fn tip_sample_due(&self, tip: u32) -> bool {
        tip_sample_due(
            &self.inputs(),
            tip,
            self.fee_sensitive(),
            self.idle_interval,
        )
    }

    /// Whether the sampler, woken up, should download the tip at `tip`: a sample is due, or
    /// one was asked for by [`FeeEstimates::wait_fresh`] and the samples are stale.
    fn wanted_sample_due(&self, tip: u32) -> bool {
        let fresh_wanted = self.fresh_wanted.swap(false, Ordering::Relaxed);
        (fresh_wanted && !self.is_fresh(tip)) || self.tip_sample_due(tip)
    }

    /// Records the average fee rate of a verified block at `height`.
    pub fn add_block_sample(&self, block: &Block, height: u32) {
        let rate = block_fee_rate(self.network, block, height).map_or(0, |r| {
            r.to_sat_per_kwu().min(u64::from(MAX_FEE_RATE_SAT_PER_KW)) as u32
        });
        let mut inputs = self.inputs();
        inputs.samples.insert(height, rate);
        while inputs.samples.len() > SAMPLE_WINDOW {
            inputs.samples.pop_first();
        }
        inputs.peers_min_at_sample = inputs.peers_min;
        debug!("fee sample: block at {height} paid {rate} sat/kw on average");
        self.recompute(&inputs);
        drop(inputs);
        self.sampled.send_replace(());
    }

    /// Records the lowest feefilter among the peers (the least a transaction must pay for one
    /// of them to relay it). The targets of the node's own transactions are raised to it plus
    /// [`PEER_FLOOR_MARGIN_PERCENT`] (when it is above LDK's floor of 253 sat/kw), at most to
    /// [`MAX_PEER_FLOOR_SAT_PER_KW`], and the channel targets no higher than recent blocks paid.
    pub fn set_peers_min_feerate(&self, rate: FeeRate) {
        let mut inputs = self.inputs();
        let kwu = rate.to_sat_per_kwu();
        // The usual 1 sat/vB (250 sat/kw) is already cleared by LDK's 253 sat/kw floor.
        let margin = if kwu > u64::from(FEERATE_FLOOR_SATS_PER_KW) {
            kwu.saturating_mul(PEER_FLOOR_MARGIN_PERCENT) / 100
        } else {
            0
        };
        let sat_per_kw = kwu
            .saturating_add(margin)
            .min(u64::from(MAX_PEER_FLOOR_SAT_PER_KW)) as u32;
        if sat_per_kw == MAX_PEER_FLOOR_SAT_PER_KW && inputs.peers_min != sat_per_kw {
            info!(
                "no Bitcoin peer relays transactions paying less than {} sat/kw; counting \
                 {MAX_PEER_FLOOR_SAT_PER_KW} sat/kw of it",
                rate.to_sat_per_kwu()
            );
        }
        if inputs.peers_min != sat_per_kw {
            inputs.peers_min = sat_per_kw;
            self.recompute(&inputs);
            if inputs.newest_sample().is_some() && inputs.feefilter_jumped() {
                debug!("the peers' feefilter moved to {sat_per_kw} sat/kw: sampling the tip");
                self.sample_wanted.notify_one();
            }
        }
    }

    /// Heights of the blocks currently sampled.
    pub fn sampled_heights(&self) -> Vec<u32> {
        self.inputs().samples.keys().copied().collect()
    }

    fn inputs(&self) -> std::sync::MutexGuard<'_, Inputs> {
        self.inputs.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn recompute(&self, inputs: &Inputs) {
        let table = ALL_TARGETS
            .into_iter()
            .map(|target| (target, policy(target, inputs)))
            .collect();
        *self.table.write().unwrap_or_else(|p| p.into_inner()) = table;
    }
}

/// Blocks between tip samples of an idle node on `network`: every block on regtest, where
/// blocks are tiny, [`IDLE_SAMPLE_INTERVAL_PUBLIC`] elsewhere.
pub fn default_idle_interval(network: Network) -> u32 {
    if network == Network::Regtest {
        1
    } else {
        IDLE_SAMPLE_INTERVAL_PUBLIC
    }
}

/// Where a fee estimate comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EstimateSource {
    /// A configured override (`fee_overrides`).
    Override,
    /// The fees paid in recently sampled blocks.
    RecentBlocks,
    /// The fallback table: no block sampled yet.
    Fallback,
    /// Raised to the Bitcoin peers' minimum (their feefilter plus the margin).
    PeerMinimum,
}

impl EstimateSource {
    /// A stable lowercase name.
    pub fn as_str(self) -> &'static str {
        match self {
            EstimateSource::Override => "override",
            EstimateSource::RecentBlocks => "recent_blocks",
            EstimateSource::Fallback => "fallback",
            EstimateSource::PeerMinimum => "peer_minimum",
        }
    }
}

/// One target's current estimate and where it comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EstimateDetail {
    /// The confirmation target.
    pub target: ConfirmationTarget,
    /// The estimate LDK and the wallet get, in sat/kw.
    pub sat_per_kw: u32,
    /// Where it comes from.
    pub source: EstimateSource,
}

/// The estimator's current state, for people.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeDetails {
    /// Every target's estimate.
    pub estimates: Vec<EstimateDetail>,
    /// Heights of the blocks sampled.
    pub sampled_heights: Vec<u32>,
    /// The floor the peers' lowest feefilter sets for the node's own transactions (with the
    /// margin, capped), in sat/kw; 0 while unknown.
    pub peer_floor_sat_per_kw: u32,
}

impl FeeEstimates {
    /// Every target's estimate with its source, the sampled blocks and the peers' floor.
    pub fn details(&self) -> FeeDetails {
        let inputs = self.inputs();
        let without_peers = Inputs {
            samples: inputs.samples.clone(),
            peers_min: 0,
            peers_min_at_sample: 0,
        };
        let estimates = ALL_TARGETS
            .into_iter()
            .map(|target| {
                let sat_per_kw = self.get_est_sat_per_1000_weight(target);
                let source = if self.overrides.get(target).is_some() {
                    EstimateSource::Override
                } else if policy(target, &inputs) > policy(target, &without_peers) {
                    EstimateSource::PeerMinimum
                } else if inputs.samples.is_empty() {
                    EstimateSource::Fallback
                } else {
                    EstimateSource::RecentBlocks
                };
                EstimateDetail {
                    target,
                    sat_per_kw,
                    source,
                }
            })
            .collect();
        FeeDetails {
            estimates,
            sampled_heights: inputs.samples.keys().copied().collect(),
            peer_floor_sat_per_kw: inputs.peers_min,
        }
    }
}

/// Whether `target` judges what a counterparty proposes (rather than pricing the node's own
/// transactions): a Bitcoin peer's feefilter must not raise it.
fn judges_counterparty(target: ConfirmationTarget) -> bool {
    matches!(
        target,
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee
            | ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee
            | ConfirmationTarget::ChannelCloseMinimum
    )
}

/// Whether `target` prices the commitment transactions of our channels, whose fee rate the
/// counterparty is asked to accept: the peers' minimum may raise it only as far as recent
/// blocks paid.
fn prices_commitments(target: ConfirmationTarget) -> bool {
    matches!(
        target,
        ConfirmationTarget::AnchorChannelFee | ConfirmationTarget::NonAnchorChannelFee
    )
}

/// The highest fee rate recent blocks paid, or `target`'s fallback when none is sampled.
fn what_blocks_paid(target: ConfirmationTarget, inputs: &Inputs) -> u32 {
    inputs
        .samples
        .values()
        .copied()
        .max()
        .unwrap_or_else(|| fallback(target))
}

/// The estimate for `target` from the sampled inputs (before overrides), in sat/kw.
fn policy(target: ConfirmationTarget, inputs: &Inputs) -> u32 {
    let peer_floor = inputs.peers_min.min(MAX_PEER_FLOOR_SAT_PER_KW);
    let floor = if judges_counterparty(target) {
        FEERATE_FLOOR_SATS_PER_KW
    } else if prices_commitments(target) {
        FEERATE_FLOOR_SATS_PER_KW.max(peer_floor.min(what_blocks_paid(target, inputs)))
    } else {
        FEERATE_FLOOR_SATS_PER_KW.max(peer_floor)
    };
    let floor = u64::from(floor);
    let fallback = u64::from(fallback(target));
    let estimate: u64 = if inputs.samples.is_empty() {
        match target {
            ConfirmationTarget::MaximumFeeEstimate => fallback.max(floor * 4),
            _ => fallback,
        }
    } else {
        let mut rates: Vec<u64> = inputs.samples.values().map(|&r| u64::from(r)).collect();
        rates.sort_unstable();
        let median = rates[rates.len() / 2];
        let highest = *rates.last().expect("non-empty");
        match target {
            ConfirmationTarget::MaximumFeeEstimate => (highest * 4).max(fallback),
            ConfirmationTarget::UrgentOnChainSweep => highest.max(median * 3 / 2),
            ConfirmationTarget::NonAnchorChannelFee | ConfirmationTarget::OutputSpendingFee => {
                median
            }
            ConfirmationTarget::AnchorChannelFee | ConfirmationTarget::ChannelCloseMinimum => {
                median / 2
            }
            ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee => median / 4,
            ConfirmationTarget::MinAllowedAnchorChannelRemoteFee => 0,
        }
    };
    // Rates are u32 values widened to u64: these products cannot overflow.
    estimate.max(floor).min(u64::from(MAX_FEE_RATE_SAT_PER_KW)) as u32
}

impl FeeEstimator for FeeEstimates {
    fn get_est_sat_per_1000_weight(&self, target: ConfirmationTarget) -> u32 {
        if let Some(value) = self.overrides.get(target) {
            return value;
        }
        self.table
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .get(&target)
            .copied()
            .unwrap_or_else(|| fallback(target))
            .max(FEERATE_FLOOR_SATS_PER_KW)
    }
}

/// Feeds `estimates` from `chain` until the chain source shuts down: samples every block
/// downloaded for the listeners, downloads the tip when a sample is due (see the module
/// documentation), and refreshes the peers' lowest feefilter. A due sample that is not urgent
/// waits while the listeners catch up (see [`sample_waits_for_listeners`]).
pub async fn run_sampler(
    chain: Arc<BlockFetcher>,
    estimates: Arc<FeeEstimates>,
    listener: Arc<ChainListener>,
) {
    let mut notifications = chain.subscribe();
    let mut shutdown = chain.shutdown_signal();
    let mut refresh = tokio::time::interval(FEEFILTER_REFRESH);
    let listeners_at = || listener.tip().map(|tip| tip.height);
    // A due sample held back until the listeners catch up.
    let mut held = false;
    loop {
        tokio::select! {
            notification = notifications.recv() => match notification {
                Ok(ChainNotification::BlockFetched { block, height }) => {
                    estimates.add_block_sample(&block, height);
                }
                Ok(ChainNotification::NewTip { height, hash }) => {
                    held = consider_tip(&chain, &estimates, listeners_at(), height, hash).await;
                }
                Ok(ChainNotification::PeerConnected) => refresh.reset_immediately(),
                Err(RecvError::Lagged(missed)) => debug!("fee sampler missed {missed} notifications"),
                Err(RecvError::Closed) => break,
            },
            _ = estimates.sample_wanted.notified() => {
                let heights = chain.heights();
                if let Some((height, hash)) = heights.verified_tip {
                    if heights.engine_synced && estimates.wanted_sample_due(height) {
                        sample_tip(&chain, hash).await;
                    }
                }
            }
            _ = tokio::time::sleep(LISTENERS_CHECK), if held => {
                if let Some((height, hash)) = chain.heights().verified_tip {
                    held = consider_tip(&chain, &estimates, listeners_at(), height, hash).await;
                }
            }
            _ = refresh.tick() => {
                if let Some(rate) = chain.links().lowest_fee_filter() {
                    estimates.set_peers_min_feerate(rate);
                }
            }
            () = shutdown.fired() => break,
        }
        if chain.engine().is_shut_down() {
            break;
        }
    }
    info!("fee sampler stopped");
}

/// Samples the tip `hash` at `height` if a sample is due and need not wait for the listeners,
/// standing at `listeners_at`; returns whether a due sample is held back for them.
async fn consider_tip(
    chain: &BlockFetcher,
    estimates: &FeeEstimates,
    listeners_at: Option<u32>,
    height: u32,
    hash: bitcoin::BlockHash,
) -> bool {
    if !chain.heights().engine_synced || !estimates.tip_sample_due(height) {
        return false;
    }
    if estimates.tip_sample_waits(listeners_at, height) {
        return true;
    }
    sample_tip(chain, hash).await;
    false
}

/// Downloads the block `hash` as a fee sample; it is sampled through the `BlockFetched`
/// notification that every verified download sends.
async fn sample_tip(chain: &BlockFetcher, hash: bitcoin::BlockHash) {
    if let Err(err) = chain
        .fetch_verified_block(hash, FetchPurpose::FeeSample)
        .await
    {
        debug!("fee sample of block {hash} failed: {err}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_huge_feefilter_raises_only_our_own_targets_and_only_to_the_cap() {
        let estimates = FeeEstimates::new(Network::Regtest, FeeOverrides::new());
        let before: Vec<u32> = ALL_TARGETS
            .iter()
            .map(|t| estimates.get_est_sat_per_1000_weight(*t))
            .collect();
        // The usual 1 sat/vB adds no margin: 253 sat/kw already clears it.
        estimates.set_peers_min_feerate(FeeRate::from_sat_per_kwu(250));
        assert_eq!(
            estimates.get_est_sat_per_1000_weight(ConfirmationTarget::AnchorChannelFee),
            500
        );
        assert_eq!(
            estimates.get_est_sat_per_1000_weight(ConfirmationTarget::ChannelCloseMinimum),
            253
        );
        // 20 sat/vB, within the cap: our own targets clear it with the margin.
        estimates.set_peers_min_feerate(FeeRate::from_sat_per_kwu(5_000));
        assert_eq!(
            estimates.get_est_sat_per_1000_weight(ConfirmationTarget::OutputSpendingFee),
            5_550
        );
        // 2^62 sat per 1000 vB, as a peer may announce.
        estimates.set_peers_min_feerate(FeeRate::from_sat_per_kwu(1 << 60));
        for (target, before) in ALL_TARGETS.into_iter().zip(before) {
            let after = estimates.get_est_sat_per_1000_weight(target);
            assert!(after <= MAX_FEE_RATE_SAT_PER_KW, "{target:?}: {after}");
            if judges_counterparty(target) || prices_commitments(target) {
                assert_eq!(after, before, "{target:?} moved by a peer");
            } else if target != ConfirmationTarget::MaximumFeeEstimate {
                assert_eq!(after, before.max(MAX_PEER_FLOOR_SAT_PER_KW), "{target:?}");
            }
        }
    }

    #[test]
    fn the_peers_minimum_raises_channel_commitments_only_as_far_as_recent_blocks_paid() {
        let sampled = |peers_min| Inputs {
            // 2 sat/vB in most blocks, 8 sat/vB in the busiest.
            samples: [(1, 500), (2, 500), (3, 2_000)].into_iter().collect(),
            peers_min,
            peers_min_at_sample: 0,
        };
        for target in [
            ConfirmationTarget::AnchorChannelFee,
            ConfirmationTarget::NonAnchorChannelFee,
        ] {
            // Peers asking 100 sat/vB: the commitment rate goes no higher than 8 sat/vB.
            assert_eq!(policy(target, &sampled(25_000)), 2_000, "{target:?}");
            // Peers asking 4 sat/vB: raised to that.
            assert_eq!(policy(target, &sampled(1_000)), 1_000, "{target:?}");
        }
        // Our own transactions still pay what the peers relay.
        assert_eq!(
            policy(ConfirmationTarget::OutputSpendingFee, &sampled(25_000)),
            25_000
        );
        // Nothing sampled: not above the fallback.
        let unsampled = Inputs {
            peers_min: 25_000,
            ..Inputs::default()
        };
        assert_eq!(
            policy(ConfirmationTarget::AnchorChannelFee, &unsampled),
            fallback(ConfirmationTarget::AnchorChannelFee)
        );
    }

    #[test]
    fn extreme_samples_and_feefilters_neither_panic_nor_pass_the_maximum() {
        for peers_min in [0, 253, u32::MAX] {
            for sample in [0, 1, u32::MAX / 2, u32::MAX] {
                let inputs = Inputs {
                    samples: [(1, sample), (2, sample), (3, 0)].into_iter().collect(),
                    peers_min,
                    peers_min_at_sample: 0,
                };
                for target in ALL_TARGETS {
                    let estimate = policy(target, &inputs);
                    assert!(
                        (FEERATE_FLOOR_SATS_PER_KW..=MAX_FEE_RATE_SAT_PER_KW).contains(&estimate),
                        "{target:?} with samples of {sample} and a feefilter of {peers_min}: \
                         {estimate}"
                    );
                    if judges_counterparty(target) {
                        let without_peers = Inputs {
                            peers_min: 0,
                            samples: inputs.samples.clone(),
                            peers_min_at_sample: 0,
                        };
                        assert_eq!(estimate, policy(target, &without_peers), "{target:?}");
                    }
                }
            }
        }
    }

    #[test]
    fn fallback_when_nothing_known() {
        let estimates = FeeEstimates::new(Network::Regtest, FeeOverrides::new());
        for target in ALL_TARGETS {
            assert_eq!(
                estimates.get_est_sat_per_1000_weight(target),
                fallback(target)
            );
            assert!(estimates.get_est_sat_per_1000_weight(target) >= 253);
        }
    }

    #[test]
    fn overrides_win_and_are_floored() {
        let mut overrides = FeeOverrides::new();
        overrides.set(ConfirmationTarget::UrgentOnChainSweep, 9_999);
        overrides.set(ConfirmationTarget::OutputSpendingFee, 1);
        let estimates = FeeEstimates::new(Network::Regtest, overrides);
        assert_eq!(
            estimates.get_est_sat_per_1000_weight(ConfirmationTarget::UrgentOnChainSweep),
            9_999
        );
        assert_eq!(
            estimates.get_est_sat_per_1000_weight(ConfirmationTarget::OutputSpendingFee),
            253
        );
    }

    #[test]
    fn subsidy_halves_every_150_blocks_on_regtest() {
        assert_eq!(
            block_subsidy(Network::Regtest, 149),
            Amount::from_sat(5_000_000_000)
        );
        assert_eq!(
            block_subsidy(Network::Regtest, 150),
            Amount::from_sat(2_500_000_000)
        );
        assert_eq!(
            block_subsidy(Network::Bitcoin, 210_000),
            Amount::from_sat(2_500_000_000)
        );
    }

    fn sampled_at(heights: &[u32], peers_min: u32, peers_min_at_sample: u32) -> Inputs {
        Inputs {
            samples: heights.iter().map(|h| (*h, 1_000)).collect(),
            peers_min,
            peers_min_at_sample,
        }
    }

    #[test]
    fn an_idle_node_on_a_public_network_samples_the_tip_once_a_day() {
        let interval = default_idle_interval(Network::Bitcoin);
        assert_eq!(interval, 144);
        let inputs = sampled_at(&[1_000], 253, 253);
        assert!(!tip_sample_due(&inputs, 1_000, false, interval));
        assert!(!tip_sample_due(&inputs, 1_001, false, interval));
        assert!(!tip_sample_due(&inputs, 1_143, false, interval));
        assert!(tip_sample_due(&inputs, 1_144, false, interval));
        // Nothing sampled yet: the first tip is.
        assert!(tip_sample_due(&Inputs::default(), 1_000, false, interval));
    }

    #[test]
    fn pending_fee_sensitive_work_samples_every_new_tip_but_never_one_twice() {
        let inputs = sampled_at(&[1_000], 253, 253);
        assert!(tip_sample_due(&inputs, 1_001, true, 144));
        assert!(!tip_sample_due(&inputs, 1_000, true, 144));
        assert!(
            !tip_sample_due(&inputs, 999, true, 144),
            "a tip below a sample (reorg)"
        );
    }

    #[test]
    fn a_feefilter_that_doubled_or_halved_since_the_last_sample_calls_for_one() {
        assert!(tip_sample_due(
            &sampled_at(&[1_000], 2_000, 1_000),
            1_001,
            false,
            144
        ));
        assert!(tip_sample_due(
            &sampled_at(&[1_000], 1_000, 2_000),
            1_001,
            false,
            144
        ));
        assert!(!tip_sample_due(
            &sampled_at(&[1_000], 1_500, 1_000),
            1_001,
            false,
            144
        ));
        // Below LDK's floor, moves do not count: 1 sat/vB and nothing are the same.
        assert!(!tip_sample_due(
            &sampled_at(&[1_000], 250, 0),
            1_001,
            false,
            144
        ));
    }

    #[test]
    fn a_sample_waits_only_for_listeners_more_than_a_block_behind() {
        let idle = sampled_at(&[10], 253, 253);
        let waits = |listeners_at| sample_waits_for_listeners(&idle, false, listeners_at, 100);
        assert!(waits(None), "listeners not started");
        assert!(waits(Some(0)), "catching up");
        assert!(waits(Some(98)), "two blocks behind");
        assert!(!waits(Some(99)), "following the tip");
        assert!(!waits(Some(100)), "at the tip");
    }

    #[test]
    fn an_urgent_sample_does_not_wait_for_catching_up_listeners() {
        let idle = sampled_at(&[10], 253, 253);
        assert!(
            !sample_waits_for_listeners(&idle, true, Some(0), 100),
            "fee-sensitive work pending"
        );
        let jumped = sampled_at(&[10], 1_000, 253);
        assert!(
            !sample_waits_for_listeners(&jumped, false, Some(0), 100),
            "the peers' feefilter jumped since the last sample"
        );
    }

    #[test]
    fn regtest_samples_every_new_tip() {
        let interval = default_idle_interval(Network::Regtest);
        assert!(tip_sample_due(
            &sampled_at(&[7], 253, 253),
            8,
            false,
            interval
        ));
    }

    #[tokio::test]
    async fn wait_fresh_asks_the_sampler_and_returns_once_a_recent_block_is_sampled() {
        let estimates = Arc::new(FeeEstimates::new(Network::Bitcoin, FeeOverrides::new()));
        let block = bitcoin::constants::genesis_block(Network::Regtest);
        estimates.add_block_sample(&block, 100);
        assert!(estimates.is_fresh(106));
        assert!(!estimates.is_fresh(107));
        // No sampler: the wait ends at its timeout, not fresh.
        assert!(!estimates.wait_fresh(200, Duration::from_millis(50)).await);
        // A sampler that answers the request with the tip's block.
        let sampler = {
            let estimates = estimates.clone();
            tokio::spawn(async move {
                estimates.sample_wanted.notified().await;
                estimates.add_block_sample(&block, 200);
            })
        };
        assert!(estimates.wait_fresh(200, Duration::from_secs(10)).await);
        sampler.await.expect("sampler");
    }

    #[test]
    fn details_name_each_estimates_source() {
        let mut overrides = FeeOverrides::new();
        overrides.set(ConfirmationTarget::UrgentOnChainSweep, 9_999);
        let estimates = FeeEstimates::new(Network::Regtest, overrides);
        let source = |details: &FeeDetails, target| {
            details
                .estimates
                .iter()
                .find(|detail| detail.target == target)
                .map(|detail| (detail.sat_per_kw, detail.source))
                .unwrap()
        };
        let details = estimates.details();
        assert_eq!(details.estimates.len(), ALL_TARGETS.len());
        assert_eq!(
            source(&details, ConfirmationTarget::UrgentOnChainSweep),
            (9_999, EstimateSource::Override)
        );
        assert_eq!(
            source(&details, ConfirmationTarget::OutputSpendingFee),
            (1_250, EstimateSource::Fallback)
        );
        estimates.set_peers_min_feerate(FeeRate::from_sat_per_kwu(5_000));
        let details = estimates.details();
        assert_eq!(details.peer_floor_sat_per_kw, 5_550);
        assert_eq!(
            source(&details, ConfirmationTarget::OutputSpendingFee),
            (5_550, EstimateSource::PeerMinimum)
        );
        assert_eq!(
            source(&details, ConfirmationTarget::ChannelCloseMinimum).1,
            EstimateSource::Fallback
        );
    }

    #[test]
    fn target_names_round_trip() {
        for target in ALL_TARGETS {
            assert_eq!(parse_target(target_name(target)), Some(target));
        }
    }
}

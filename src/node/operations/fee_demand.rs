//! Tells the fee sampler when the node's estimates are about to matter: while a channel is
//! opening or closing, outputs of a closed channel are being claimed or swept, or a
//! transaction of the node's own is unconfirmed, LDK prices and bumps transactions block by
//! block, so every new block is sampled; an idle node samples rarely (see
//! [`crate::chain::fees`]). Before the node builds a transaction of its own, it makes the
//! estimates fresh.

use std::sync::Arc;
use std::time::Duration;

use lightning::ln::channel_state::ChannelShutdownState;
use log::debug;
use tokio::sync::watch;

use crate::chain::broadcaster::PeerState;
use crate::node::Node;

/// How often pending work is looked for.
const CHECK_INTERVAL: Duration = Duration::from_secs(20);
/// How long building a transaction of the node's own waits for a fresh fee sample.
const FRESH_WAIT: Duration = Duration::from_secs(20);

impl Node {
    /// What fee-sensitive work the node has pending, if any.
    pub(in crate::node) fn fee_sensitive_work(&self) -> Option<&'static str> {
        let channels = self.channel_manager.list_channels();
        if channels.iter().any(|c| !c.is_channel_ready) {
            return Some("a channel is opening");
        }
        if channels.iter().any(|c| {
            c.channel_shutdown_state
                .is_some_and(|state| state != ChannelShutdownState::NotShuttingDown)
        }) {
            return Some("a channel is closing");
        }
        let open: Vec<_> = channels.iter().collect();
        if !self.chain_monitor.get_claimable_balances(&open).is_empty() {
            return Some("a closed channel's outputs are being claimed");
        }
        if self.sweeping_sat() > 0 {
            return Some("outputs are being swept");
        }
        if self
            .chain
            .broadcaster()
            .statuses()
            .iter()
            .any(|status| !matches!(status.state, PeerState::Confirmed { .. }))
        {
            return Some("a transaction of the node's is unconfirmed");
        }
        None
    }

    /// Makes the fee estimates fresh before the node builds a transaction of its own: when
    /// the newest sample is more than a few blocks below the tip, the tip block is sampled
    /// first (waiting at most [`FRESH_WAIT`]; after that the known samples are used).
    pub async fn freshen_fee_estimates(&self) {
        if let Some((tip, _)) = self.chain.heights().verified_tip {
            self.chain.fee_estimator().wait_fresh(tip, FRESH_WAIT).await;
        }
    }
}

/// Keeps the fee sampler told whether `node` has fee-sensitive work pending, until `stop`
/// turns true.
pub(in crate::node) async fn report_fee_sensitive_work(
    node: Arc<Node>,
    mut stop: watch::Receiver<bool>,
) {
    let mut last = None;
    loop {
        let work = node.fee_sensitive_work();
        if work != last {
            match work {
                Some(what) => debug!("fee-sensitive work pending: {what}"),
                None => debug!("no fee-sensitive work pending"),
            }
            last = work;
        }
        node.chain.fee_estimator().set_fee_sensitive(work.is_some());
        tokio::select! {
            _ = tokio::time::sleep(CHECK_INTERVAL) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
    }
}

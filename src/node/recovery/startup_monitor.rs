//! A channel monitor as a chain listener during start-up, before the chain monitor owns it.
//!
//! Blocks are fetched in full only when their filter matches the watch set, and LDK registers
//! a channel's outputs with the watch set only once the chain monitor watches the channel,
//! which happens after start-up synchronisation. Blocks mined while the node was down would
//! then reach the monitor without their transactions: a commitment the peer broadcast, or
//! the HTLC claim revealing a preimage, would go unseen. This listener registers the
//! monitor's outputs before the first block and again after every block that carried
//! transactions, so each block is checked against everything the monitor watches by then
//! (including outputs it learnt of in earlier blocks).

use std::sync::Arc;

use bitcoin::block::Header;
use lightning::chain::channelmonitor::ChannelMonitor;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use lightning::sign::InMemorySigner;

use crate::chain::fees::FeeEstimates;
use crate::chain::{Broadcaster, WatchSet};
use crate::node::ldk::logger::LdkLogger;

/// A channel monitor brought to the chain tip at start-up, keeping the watch set current.
pub struct StartupMonitor {
    monitor: ChannelMonitor<InMemorySigner>,
    broadcaster: Arc<Broadcaster>,
    fee_estimator: Arc<FeeEstimates>,
    logger: Arc<LdkLogger>,
    watch_set: Arc<WatchSet>,
}

impl StartupMonitor {
    /// Wraps `monitor` and registers what it watches with `watch_set` at once.
    pub fn new(
        monitor: ChannelMonitor<InMemorySigner>,
        broadcaster: Arc<Broadcaster>,
        fee_estimator: Arc<FeeEstimates>,
        logger: Arc<LdkLogger>,
        watch_set: Arc<WatchSet>,
    ) -> Self {
        monitor.load_outputs_to_watch(&watch_set, &logger);
        Self {
            monitor,
            broadcaster,
            fee_estimator,
            logger,
            watch_set,
        }
    }

    /// The monitor.
    pub fn monitor(&self) -> &ChannelMonitor<InMemorySigner> {
        &self.monitor
    }

    /// The monitor, for the chain monitor to take over.
    pub fn into_monitor(self) -> ChannelMonitor<InMemorySigner> {
        self.monitor
    }
}

impl Listen for StartupMonitor {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        self.monitor.block_connected(
            header,
            txdata,
            height,
            &*self.broadcaster,
            &*self.fee_estimator,
            &self.logger,
        );
        // Only a block's transactions can give the monitor new outputs to watch; the blocks
        // between (delivered as headers) are most of a long catch-up.
        if !txdata.is_empty() {
            self.monitor
                .load_outputs_to_watch(&self.watch_set, &self.logger);
        }
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.monitor.blocks_disconnected(
            fork_point,
            &*self.broadcaster,
            &*self.fee_estimator,
            &self.logger,
        );
    }
}

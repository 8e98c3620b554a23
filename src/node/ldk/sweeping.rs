//! Sweeping as soon as an output becomes spendable, whatever the chain's rhythm.
//!
//! LDK's output sweeper builds its sweep only when asked, and LDK's background processor asks
//! every 30 s; the outputs reach the sweeper through events the channel monitors emit as a
//! block makes them spendable, which the background processor handles when it next runs.
//! After a burst of blocks an output could be swept many blocks after it became spendable,
//! and one handed to the sweeper waited up to 30 s. Here, as part of every block the sweeper
//! is given (the chain monitor has connected it just before), the monitors' pending events are
//! handled (so outputs that block made spendable reach the sweeper) and the sweeper is asked to
//! sweep; it broadcasts at most once per height by itself. Outputs handed to it otherwise are
//! swept at once too.

use std::sync::{Arc, OnceLock, Weak};

use bitcoin::block::Header;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use lightning::util::sweep::OutputSpendStatus;
use log::{debug, info};

use lightning::events::EventsProvider;

use super::types::Sweeper;
use crate::node::Node;

/// The sweeper as the chain listeners see it: it connects each block, takes the outputs the
/// monitors found spendable in it, then sweeps.
pub struct SweepingListener {
    sweeper: Arc<Sweeper>,
    /// The running node, whose monitors' events are handled; unset while the node starts.
    node: OnceLock<Weak<Node>>,
}

impl SweepingListener {
    /// The listener for `sweeper`.
    pub fn new(sweeper: Arc<Sweeper>) -> Self {
        Self {
            sweeper,
            node: OnceLock::new(),
        }
    }

    /// From now on each block also hands `node`'s monitors' spendable outputs to the sweeper.
    pub fn attach(&self, node: &Arc<Node>) {
        let _ = self.node.set(Arc::downgrade(node));
    }
}

/// Asks `sweeper` to sweep what is spendable at its best block, logging a new sweep.
pub fn sweep_now(sweeper: &Sweeper) {
    let pending_before = pending(sweeper);
    if pending_before == 0 {
        return;
    }
    let height = sweeper.current_best_block().height;
    if sweeper
        .regenerate_and_broadcast_spend_if_necessary()
        .is_err()
    {
        debug!("the output sweeper could not build a sweep at height {height}; it tries again");
        return;
    }
    let broadcast_here = sweeper
        .tracked_spendable_outputs()
        .iter()
        .filter(|output| {
            matches!(
                output.status,
                OutputSpendStatus::PendingFirstConfirmation {
                    latest_broadcast_height,
                    ..
                } if latest_broadcast_height == height
            )
        })
        .count();
    if broadcast_here > 0 {
        info!("sweeping {broadcast_here} spendable output(s) at height {height}");
    }
}

/// Outputs the sweeper tracks that are not confirmed swept yet.
fn pending(sweeper: &Sweeper) -> usize {
    sweeper
        .tracked_spendable_outputs()
        .iter()
        .filter(|output| {
            !matches!(
                output.status,
                OutputSpendStatus::PendingThresholdConfirmations { .. }
            )
        })
        .count()
}

impl Listen for SweepingListener {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        self.sweeper
            .filtered_block_connected(header, txdata, height);
        if let Some(node) = self.node.get().and_then(Weak::upgrade) {
            node.chain_monitor
                .process_pending_events(&|event| node.handle_event(event));
        }
        sweep_now(&self.sweeper);
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        self.sweeper.blocks_disconnected(fork_point);
    }
}

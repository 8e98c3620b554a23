//! Chain input: blocks connected in chain order (full, filtered or header-only) and reorgs.
//!
//! A block is connected on top of its parent; delivering the same block again (for instance
//! with more transactions, after the watched scripts grew) only adds what is new. Blocks without
//! wallet transactions are saved in batches of [`HEADER_ONLY_SAVE_INTERVAL`]: after a crash the
//! wallet reports its saved tip and the chain source replays from there. Blocks with wallet
//! transactions, and reorgs, are saved at once.
//!
//! A block that does not connect to the wallet's last block (its parent is not that block)
//! stops the wallet: it saves its progress up to its last block, takes no more blocks, and
//! answers no request, rather than answer from a chain it no longer follows. The chain source
//! replays the chain from that block when the node starts again.
//!
//! A reorg removes the blocks above the fork point. The wallet's own transactions confirmed only
//! there become unconfirmed again; received ones stop counting until a block confirms them
//! again (the wallet sees no mempool and could not tell if they were dropped).

use bdk_wallet::chain::{ChainPosition, Merge};
use bdk_wallet::{ChangeSet, WalletPersister};
use bitcoin::block::Header;
use bitcoin::{Block, Txid};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};

use super::registry::ScriptRegistry;
use super::spend::unix_now;
use super::state::{Stopped, WalletState, HEADER_ONLY_SAVE_INTERVAL};
use super::Wallet;

impl Listen for Wallet {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        let block = Block {
            header: *header,
            txdata: txdata.iter().map(|&(_, tx)| tx.clone()).collect(),
        };
        self.connect(&block, height);
    }

    fn block_connected(&self, block: &Block, height: u32) {
        self.connect(block, height);
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        let mut state = self.state();
        if state.stopped.is_some() {
            log::debug!(
                "wallet stopped: ignoring a reorg to height {}",
                fork_point.height
            );
            return;
        }
        state.disconnect_above(fork_point);
    }
}

impl Wallet {
    /// Connects `block` and tells the stop hook if it stopped the wallet.
    fn connect(&self, block: &Block, height: u32) {
        let stopped = self
            .state()
            .connect_block(block, height, self.registry.as_ref());
        if let Some(stopped) = stopped {
            self.report_stopped(&stopped.error());
        }
    }
}

impl WalletState {
    /// Connects `block` (possibly holding only some of its transactions) at `height`. A block
    /// that does not connect stops the wallet; that is returned the first time.
    fn connect_block(
        &mut self,
        block: &Block,
        height: u32,
        registry: &dyn ScriptRegistry,
    ) -> Option<Stopped> {
        if self.stopped.is_some() {
            log::debug!(
                "wallet stopped: ignoring block {} at height {height}",
                block.block_hash()
            );
            return None;
        }
        if let Err(e) = self.wallet.apply_block(block, height) {
            let tip = self.wallet.latest_checkpoint();
            let stopped = Stopped {
                block: (block.block_hash(), height),
                last: (tip.hash(), tip.height()),
            };
            log::error!(
                "{} (its parent is {}: {e})",
                stopped.error(),
                block.header.prev_blockhash
            );
            // What was connected up to here is right: keep it, so that the replay after a
            // restart starts from the wallet's last block.
            if let Err(e) = self.save("saving chain progress up to the wallet's last block") {
                log::error!("{e}");
            }
            self.stopped = Some(stopped);
            return Some(stopped);
        }
        self.unsaved_blocks += 1;
        let has_wallet_data = self
            .wallet
            .staged()
            .is_some_and(|c| !c.tx_graph.is_empty() || !c.indexer.is_empty());
        if has_wallet_data {
            log::info!(
                "block {} at height {height} has wallet transactions",
                block.block_hash()
            );
        }
        if has_wallet_data || self.unsaved_blocks >= HEADER_ONLY_SAVE_INTERVAL {
            if let Err(e) = self.save("saving a connected block") {
                log::error!("{e}; will retry with the next block");
            }
        }
        self.register_new_scripts(registry);
        None
    }

    /// Removes every block above `fork_point` from the wallet's chain: transactions confirmed
    /// only there become unconfirmed (the wallet's own) or disappear (received ones).
    fn disconnect_above(&mut self, fork_point: BestBlock) {
        let tip = self.wallet.latest_checkpoint();
        if tip.height() <= fork_point.height {
            if tip.height() == fork_point.height && tip.hash() != fork_point.block_hash {
                log::warn!(
                    "reorg fork point {} at height {} is not the wallet's tip {}",
                    fork_point.block_hash,
                    fork_point.height,
                    tip.hash()
                );
            }
            return;
        }
        // BDK's wallet offers no way to drop blocks in memory; the blocks are removed in the
        // store and the wallet is loaded again.
        if let Err(e) = self.save("saving chain progress before a reorg") {
            log::error!("{e}; the reorg is applied when the next block arrives");
            return;
        }
        let mut changeset = ChangeSet::default();
        for checkpoint in tip.iter().take_while(|cp| cp.height() > fork_point.height) {
            changeset
                .local_chain
                .blocks
                .insert(checkpoint.height(), None);
        }
        let removed = changeset.local_chain.blocks.len();
        if fork_point.height > 0 {
            changeset
                .local_chain
                .blocks
                .insert(fork_point.height, Some(fork_point.block_hash));
        }
        if let Err(e) = WalletPersister::persist(&mut self.conn, &changeset) {
            log::error!(
                "wallet storage failed while undoing a reorg: {e}; the reorg is applied when \
                 the next block arrives"
            );
            return;
        }
        if let Err(e) = self.reload() {
            log::error!("cannot reload the wallet after a reorg: {e}");
            return;
        }
        // Transactions seen only in the removed blocks (received ones; the wallet's own were
        // seen when it made them) no longer count: the wallet sees no mempool, so it could not
        // tell if they were ever dropped. If they confirm again, their block brings them back.
        let orphaned: Vec<Txid> = self
            .wallet
            .transactions()
            .filter(|tx| {
                matches!(
                    tx.chain_position,
                    ChainPosition::Unconfirmed {
                        last_seen: None,
                        ..
                    }
                )
            })
            .map(|tx| tx.tx_node.txid)
            .collect();
        if !orphaned.is_empty() {
            let now = unix_now();
            self.wallet
                .apply_evicted_txs(orphaned.iter().map(|txid| (*txid, now)));
            if let Err(e) = self.save("saving transactions removed by a reorg") {
                log::error!("{e}");
            }
        }
        log::info!(
            "reorg: wallet removed {removed} blocks above {} at height {}; {} received \
             transactions are no longer confirmed",
            fork_point.block_hash,
            fork_point.height,
            orphaned.len()
        );
    }
}

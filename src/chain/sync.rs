//! Listener synchronisation: bringing every listener from wherever it stands (possibly on a
//! stale fork, possibly far behind) to the verified tip at start-up, then following the tip
//! with LDK's `SpvClient` on every new verified block and at least every few seconds.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::BlockHash;
use lightning_block_sync::init::synchronize_listeners;
use lightning_block_sync::poll::{ChainPoller, ValidatedBlockHeader};
use lightning_block_sync::{BlockSourceError, Cache, SpvClient};
use log::{debug, info, warn};
use tokio::sync::watch;

use super::recent_blocks::RecentBlocks;
use super::source::ChainSource;

/// The tip is polled at least this often even without new-block notifications.
pub const POLL_INTERVAL: Duration = Duration::from_secs(5);
/// Headers kept in the listener-side cache; older ones are read from the header store.
const CACHED_HEADERS: usize = 288;
/// Filters and stale headers are pruned after the listeners advanced this far.
const PRUNE_EVERY_BLOCKS: u32 = 144;

/// A bounded header cache for `SpvClient`: recent headers only, so memory stays flat however
/// long the chain; anything older is looked up in the header store.
#[derive(Debug)]
pub struct RecentHeaderCache(RecentBlocks<ValidatedBlockHeader>);

impl Default for RecentHeaderCache {
    fn default() -> Self {
        Self(RecentBlocks::new(CACHED_HEADERS, usize::MAX))
    }
}

impl Cache for RecentHeaderCache {
    fn look_up(&self, block_hash: &BlockHash) -> Option<&ValidatedBlockHeader> {
        self.0.get_ref(block_hash)
    }

    fn block_connected(&mut self, block_hash: BlockHash, block_header: ValidatedBlockHeader) {
        self.0.insert(block_hash, block_header, 0);
    }

    fn block_disconnected(&mut self, block_hash: &BlockHash) -> Option<ValidatedBlockHeader> {
        self.0.remove(block_hash)
    }
}

impl ChainSource {
    /// Brings each registered listener from its best block (`best_blocks[i]` for the listener
    /// registered i-th) to the verified tip: stale blocks are disconnected back to the fork
    /// point, then the missing blocks are connected.
    ///
    /// First the engine is made to cover every block above the lowest listener (see
    /// [`ChainSource::cover_listeners_from`]), and, if the verified tip is below the highest
    /// listener (filters being fetched again after a crash), this waits until it is not: a
    /// listener is never moved back along the chain it is on.
    pub async fn synchronize(
        self: &Arc<Self>,
        best_blocks: &[BlockHash],
    ) -> Result<ValidatedBlockHeader, BlockSourceError> {
        let listener = self.listener().clone();
        if best_blocks.len() != listener.len() {
            return Err(BlockSourceError::persistent(format!(
                "{} best blocks given for {} listeners",
                best_blocks.len(),
                listener.len()
            )));
        }
        let mut positions = self.listener_positions(best_blocks)?;
        if let Some(unknown) = best_blocks
            .iter()
            .zip(&positions)
            .find_map(|(hash, position)| position.is_none().then_some(hash))
        {
            // A chain database newer than the listeners' state (it was deleted, or is being
            // rebuilt): the chain is synced first, then the listeners are found on it.
            info!(
                "a listener stands on block {unknown}, which the chain database does not hold \
                 yet; syncing the chain before the wallet and channel state"
            );
            self.start_engine();
            self.wait_engine_synced().await?;
            positions = self.listener_positions(best_blocks)?;
        }
        let positions = best_blocks
            .iter()
            .zip(positions)
            .map(|(hash, position)| {
                position.ok_or_else(|| {
                    BlockSourceError::persistent(format!(
                        "a listener stands on block {hash}, which this node's chain does not hold"
                    ))
                })
            })
            .collect::<Result<Vec<u32>, _>>()?;
        if let Some(&lowest) = positions.iter().min() {
            self.cover_listeners_from(lowest)
                .map_err(BlockSourceError::transient)?;
        }
        if let Some(&highest) = positions.iter().max() {
            self.wait_verified_to(highest).await?;
        }
        let views: Vec<_> = (0..listener.len()).map(|i| listener.view(i)).collect();
        let pairs = best_blocks
            .iter()
            .copied()
            .zip(views.iter())
            .collect::<Vec<_>>();
        let mut cache = RecentHeaderCache::default();
        let tip = synchronize_listeners(self.clone(), self.network(), &mut cache, pairs).await?;
        listener.synchronized_to(lightning::chain::BestBlock::new(
            tip.header.block_hash(),
            tip.height,
        ));
        self.recheck_last_delivery()
            .await
            .map_err(BlockSourceError::transient)?;
        info!(
            "listeners synchronised to height {} ({})",
            tip.height,
            tip.header.block_hash()
        );
        Ok(tip)
    }

    /// The height of each listener's block on the active chain (its fork point if it stands
    /// on a stale block); `None` for a block the chain does not hold.
    fn listener_positions(
        &self,
        best_blocks: &[BlockHash],
    ) -> Result<Vec<Option<u32>>, BlockSourceError> {
        best_blocks
            .iter()
            .map(|hash| {
                self.tracker()
                    .active_ancestor_height(hash)
                    .map_err(BlockSourceError::transient)
            })
            .collect()
    }

    /// Waits until the engine reports every filter up to its tip verified and stored.
    async fn wait_engine_synced(&self) -> Result<(), BlockSourceError> {
        let mut heights = self.tracker().subscribe();
        while !heights.borrow_and_update().engine_synced {
            if heights.changed().await.is_err() {
                return Err(BlockSourceError::persistent("the chain source stopped"));
            }
        }
        Ok(())
    }

    /// Waits until the verified tip is at or above `height`.
    async fn wait_verified_to(&self, height: u32) -> Result<(), BlockSourceError> {
        let mut heights = self.tracker().subscribe();
        let mut logged = false;
        loop {
            let verified = heights.borrow_and_update().verified_tip.map(|(h, _)| h);
            if verified.is_some_and(|verified| verified >= height) {
                return Ok(());
            }
            if !logged {
                info!(
                    "waiting for verified filters up to height {height} (now at {}) before \
                     synchronising the listeners",
                    verified.unwrap_or(0)
                );
                logged = true;
            }
            if heights.changed().await.is_err() {
                return Err(BlockSourceError::persistent("the chain source stopped"));
            }
        }
    }

    /// Follows the verified tip until `stop` turns true: polls on every new verified tip and
    /// at least every [`POLL_INTERVAL`], re-checks the last block at the end of each round and
    /// prunes stores as listeners advance.
    pub async fn follow_tip(
        self: Arc<Self>,
        tip: ValidatedBlockHeader,
        mut stop: watch::Receiver<bool>,
    ) {
        let mut cache = RecentHeaderCache::default();
        let poller = ChainPoller::new(self.clone(), self.network());
        let listener = self.listener().clone();
        let mut client = SpvClient::new(tip, poller, &mut cache, &*listener);
        let mut heights = self.tracker().subscribe();
        let mut pruned_at = tip.height;
        let mut pruning: Option<tokio::task::JoinHandle<()>> = None;
        loop {
            if *stop.borrow() {
                break;
            }
            let advanced = match client.poll_best_tip().await {
                Ok((tip, connected)) => {
                    if connected {
                        debug!("listeners advanced ({tip:?})");
                    }
                    connected
                }
                Err(err) => {
                    warn!("following the chain tip: {}", err.into_inner());
                    false
                }
            };
            if let Err(err) = self.recheck_last_delivery().await {
                warn!("re-checking the last block: {err}");
            }
            let behind = advanced
                && listener.tip().is_some_and(|tip| {
                    self.heights()
                        .verified_tip
                        .is_some_and(|(verified, _)| verified > tip.height)
                });
            if let Some(tip) = listener.tip() {
                // Pruning runs beside the listeners, one round at a time: a catch-up never
                // waits for it.
                let idle = pruning.as_ref().is_none_or(|round| round.is_finished());
                if idle && tip.height >= pruned_at + PRUNE_EVERY_BLOCKS {
                    let tracker = self.tracker().clone();
                    let height = tip.height;
                    pruning = Some(tokio::task::spawn_blocking(move || {
                        if let Err(err) = tracker.prune(height) {
                            warn!("pruning chain stores: {err}");
                        }
                    }));
                    pruned_at = height;
                }
            }
            if behind {
                // Still catching up in steps, and making progress: poll again at once.
                continue;
            }
            tokio::select! {
                changed = heights.changed() => {
                    if changed.is_err() {
                        break;
                    }
                }
                _ = tokio::time::sleep(POLL_INTERVAL) => {}
                _ = stop.changed() => {}
            }
        }
        if let Some(round) = pruning {
            let _ = round.await;
        }
        debug!("stopped following the chain tip");
    }
}

//! Blocks fetched ahead of the listeners.
//!
//! When a verified filter arrives for a block the listeners have yet to reach and it matches
//! the watch set, the block is requested at once instead of when a listener gets there: a
//! listener connects blocks one at a time, so without this it would wait a round trip to a
//! peer for every matching block, and during a first sync that peer is busy streaming
//! filters. At most [`MAX_BLOCKS_AHEAD`] blocks wait in memory; a block the listeners passed
//! without taking it (its branch was reorganised away) is dropped at the next request.

use std::sync::{Arc, Mutex};

use bitcoin::{Block, BlockHash};
use log::debug;
use tokio::sync::{mpsc, OnceCell};
use tokio::task::JoinSet;

use super::fetcher::{BlockFetcher, FetchPurpose};

/// Most blocks requested ahead and not yet taken by a listener. A mainnet block takes up to
/// a few MB in memory; hiding the wait for the next matching block needs only one or two.
pub const MAX_BLOCKS_AHEAD: usize = 4;

/// Where a block fetched ahead lands: empty while the fetch is in flight, then the verified
/// block, or `None` when it could not be fetched.
type Slot = Arc<OnceCell<Option<Block>>>;

/// A block for the fetcher to download into its slot.
#[derive(Debug)]
pub struct FetchRequest {
    hash: BlockHash,
    slot: Slot,
}

/// A block requested ahead of the listeners.
#[derive(Debug)]
struct Ahead {
    hash: BlockHash,
    height: u32,
    slot: Slot,
}

/// The blocks requested ahead of the listeners, shared by the engine's side (which requests
/// them as filters arrive), the fetcher (which downloads them) and the block source (which
/// hands them to the listeners).
#[derive(Debug)]
pub struct Prefetcher {
    ahead: Mutex<Vec<Ahead>>,
    requests: mpsc::UnboundedSender<FetchRequest>,
}

impl Prefetcher {
    /// An empty prefetcher and the requests its fetcher (see [`run_fetcher`]) serves.
    pub fn new() -> (Self, mpsc::UnboundedReceiver<FetchRequest>) {
        let (requests, received) = mpsc::unbounded_channel();
        let prefetcher = Self {
            ahead: Mutex::new(Vec::new()),
            requests,
        };
        (prefetcher, received)
    }

    /// Requests block `hash` at `height` ahead of listeners at `listeners_at`, after
    /// dropping the blocks they passed. Returns whether a request went out: none does for a
    /// block requested already, or while [`MAX_BLOCKS_AHEAD`] blocks wait.
    pub fn request(&self, hash: BlockHash, height: u32, listeners_at: Option<u32>) -> bool {
        let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(listeners_at) = listeners_at {
            ahead.retain(|block| block.height > listeners_at);
        }
        if ahead.len() >= MAX_BLOCKS_AHEAD || ahead.iter().any(|block| block.hash == hash) {
            return false;
        }
        let slot = Slot::default();
        let request = FetchRequest {
            hash,
            slot: slot.clone(),
        };
        if self.requests.send(request).is_err() {
            return false;
        }
        ahead.push(Ahead { hash, height, slot });
        true
    }

    /// Takes block `hash` if it was requested ahead, waiting for its fetch if that is still
    /// in flight. `None` when it was not requested, or its fetch failed or never started:
    /// the caller fetches the block itself then (a fetch not yet started never will).
    pub async fn take(&self, hash: &BlockHash) -> Option<Block> {
        let slot = {
            let mut ahead = self.ahead.lock().unwrap_or_else(|p| p.into_inner());
            let index = ahead.iter().position(|block| block.hash == *hash)?;
            ahead.swap_remove(index).slot
        };
        slot.get_or_init(|| async { None }).await;
        match Arc::try_unwrap(slot) {
            Ok(cell) => cell.into_inner().flatten(),
            // The fetch task has not let go of the slot yet.
            Err(shared) => shared.get().cloned().flatten(),
        }
    }
}

/// Downloads the blocks requested ahead through `fetcher`, several at once, each verified
/// like any block for the listeners, until the chain source shuts down.
pub async fn run_fetcher(
    fetcher: Arc<BlockFetcher>,
    mut requests: mpsc::UnboundedReceiver<FetchRequest>,
) {
    let mut shutdown = fetcher.shutdown_signal();
    let mut fetches = JoinSet::new();
    loop {
        tokio::select! {
            request = requests.recv() => {
                let Some(FetchRequest { hash, slot }) = request else { break };
                let fetcher = fetcher.clone();
                fetches.spawn(async move {
                    slot.get_or_init(|| async {
                        match fetcher.fetch_verified_block(hash, FetchPurpose::Listeners).await {
                            Ok(block) => Some(block),
                            Err(err) => {
                                debug!("could not fetch block {hash} ahead of the listeners: {err}");
                                None
                            }
                        }
                    })
                    .await;
                });
            }
            Some(_) = fetches.join_next(), if !fetches.is_empty() => {}
            () = shutdown.fired() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::recent_blocks::numbered_hash as hash;
    use bitcoin::Network;

    /// Number of blocks requested ahead and not taken.
    fn waiting(prefetcher: &Prefetcher) -> usize {
        prefetcher.ahead.lock().unwrap().len()
    }

    #[test]
    fn requests_are_bounded_deduplicated_and_dropped_once_passed() {
        let (prefetcher, mut requests) = Prefetcher::new();
        assert!(prefetcher.request(hash(10), 10, Some(0)));
        assert!(
            !prefetcher.request(hash(10), 10, Some(0)),
            "asked for already"
        );
        for i in 1..MAX_BLOCKS_AHEAD as u32 {
            assert!(prefetcher.request(hash(10 + i), 10 + i, Some(0)));
        }
        assert!(
            !prefetcher.request(hash(100), 100, Some(0)),
            "no more than {MAX_BLOCKS_AHEAD} wait"
        );
        assert_eq!(waiting(&prefetcher), MAX_BLOCKS_AHEAD);
        // Listeners past height 10 free its place.
        assert!(prefetcher.request(hash(100), 100, Some(10)));
        assert_eq!(waiting(&prefetcher), MAX_BLOCKS_AHEAD);
        let asked: Vec<BlockHash> = std::iter::from_fn(|| requests.try_recv().ok())
            .map(|request| request.hash)
            .collect();
        let mut expected: Vec<BlockHash> =
            (0..MAX_BLOCKS_AHEAD as u32).map(|i| hash(10 + i)).collect();
        expected.push(hash(100));
        assert_eq!(asked, expected);
    }

    #[tokio::test]
    async fn taking_waits_for_the_fetch_in_flight() {
        let (prefetcher, mut requests) = Prefetcher::new();
        let block = bitcoin::constants::genesis_block(Network::Regtest);
        let hash = block.block_hash();
        assert!(prefetcher.request(hash, 1, None));
        let request = requests.try_recv().expect("a request went out");
        let (started, started_rx) = tokio::sync::oneshot::channel();
        let (finish, finish_rx) = tokio::sync::oneshot::channel::<()>();
        let fetched = block.clone();
        let fetch = tokio::spawn(async move {
            request
                .slot
                .get_or_init(|| async move {
                    let _ = started.send(());
                    let _ = finish_rx.await;
                    Some(fetched)
                })
                .await;
        });
        started_rx.await.expect("fetch started");
        let taking = tokio::spawn(async move { prefetcher.take(&hash).await });
        tokio::task::yield_now().await;
        assert!(!taking.is_finished(), "take waits for the fetch");
        finish.send(()).expect("fetch still waiting");
        assert_eq!(taking.await.expect("take"), Some(block));
        fetch.await.expect("fetch task");
    }

    #[tokio::test]
    async fn a_block_not_requested_or_never_fetched_is_left_to_the_caller() {
        let (prefetcher, mut requests) = Prefetcher::new();
        assert_eq!(prefetcher.take(&hash(1)).await, None, "never requested");
        assert!(prefetcher.request(hash(1), 1, None));
        assert_eq!(prefetcher.take(&hash(1)).await, None, "fetch never started");
        assert_eq!(waiting(&prefetcher), 0);
        // The fetcher finds the slot settled and does not download the block.
        let request = requests.try_recv().expect("a request went out");
        assert!(request.slot.initialized());
    }
}

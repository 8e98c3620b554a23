//! Block download and verification: the one way a block comes from a peer.
//!
//! [`BlockFetcher`] owns the engine handle, the peer links, the download counts and the
//! notification bus. Blocks come over the [`PeerLinks`] from a peer that keeps them (a pruned
//! peer is not asked for a block more than 288 deep, a `notfound` sends the request to the
//! next peer at once); only while no link is up does the engine fetch them. A block the
//! listeners need (its filter matched) is asked for together with a few decoys, blocks from
//! around it, so the serving peer cannot tell which one the wallet wanted. A
//! block it returns passed the merkle-root and witness-commitment checks (a stripped, mutated
//! or altered copy is requested again from another peer), and every block it fetched is announced as
//! [`ChainNotification::BlockFetched`] to the fee sampler and the broadcaster. The block
//! source, the prefetcher and the fee sampler download through it.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::{Block, BlockHash};
use log::{debug, warn};
use tokio::sync::broadcast;

use super::engine::Engine;
use super::error::FetchError;
use super::links::{Decoy, Fetched, LinkedFetchError, PeerLinks};
use super::notifications::{ChainNotification, Notifications, Shutdown};
use super::peer_address::PeerAddress;
use super::tracker::{ChainTracker, TrackedHeights};

/// How many times a block is requested before giving up for this poll round.
const FETCH_ATTEMPTS: u32 = 4;
/// How many recent downloads [`BlockFetcher::recent_downloads`] remembers.
const RECENT_DOWNLOADS: usize = 1_000;
/// Decoys are drawn from the blocks at most this far from the wanted one (a day of blocks),
/// so that they look as recent as it does.
const DECOY_WINDOW: u32 = 144;

/// Why a block is downloaded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FetchPurpose {
    /// Its filter matched the watch set.
    Listeners,
    /// A sample for fee estimation.
    FeeSample,
}

/// Bytes and blocks downloaded, by purpose.
#[derive(Debug, Default)]
struct DownloadStats {
    blocks_for_listeners: AtomicU64,
    bytes_for_listeners: AtomicU64,
    blocks_for_fees: AtomicU64,
    bytes_for_fees: AtomicU64,
    refetches: AtomicU64,
    decoy_blocks: AtomicU64,
    decoy_bytes: AtomicU64,
    /// Payload bytes of headers, filter headers, filters and blocks received from peers.
    received: AtomicU64,
    recent: Mutex<VecDeque<(BlockHash, FetchPurpose)>>,
}

/// The counts of a [`BlockFetcher`]'s downloads, and of the bytes received from peers.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DownloadCounts {
    /// Blocks downloaded because their filter matched.
    pub blocks_for_listeners: u64,
    /// Their serialized size.
    pub bytes_for_listeners: u64,
    /// Blocks downloaded as fee samples.
    pub blocks_for_fees: u64,
    /// Their serialized size.
    pub bytes_for_fees: u64,
    /// Blocks requested again after failing verification or timing out.
    pub refetches: u64,
    /// Decoy blocks downloaded beside the blocks the listeners needed.
    pub decoy_blocks: u64,
    /// Their serialized size.
    pub decoy_bytes: u64,
    /// Payload bytes of the headers, filter headers, filters and blocks received from
    /// Bitcoin peers since the chain source started (counted from the messages, so a little
    /// below what the sockets carried: message framing and other messages are left out).
    pub bytes_received: u64,
}

/// Downloads and verifies blocks; counts them; carries the chain source's notifications.
#[derive(Debug)]
pub struct BlockFetcher {
    engine: Arc<Engine>,
    links: Arc<PeerLinks>,
    tracker: Arc<ChainTracker>,
    block_timeout: Duration,
    decoy_blocks: u32,
    stats: DownloadStats,
    notifications: Notifications,
}

impl BlockFetcher {
    /// A fetcher downloading over `links` (through `engine` while no link is up), giving a
    /// block up after `block_timeout` without a connected peer (see
    /// `ChainConfig::block_timeout`), and finding the heights of the blocks it fetched in
    /// `tracker`. Each block the listeners need is asked for with `decoy_blocks` others.
    pub fn new(
        engine: Arc<Engine>,
        links: Arc<PeerLinks>,
        tracker: Arc<ChainTracker>,
        block_timeout: Duration,
        decoy_blocks: u32,
    ) -> Self {
        Self {
            engine,
            links,
            tracker,
            block_timeout,
            decoy_blocks,
            stats: DownloadStats::default(),
            notifications: Notifications::new(),
        }
    }

    /// The supervised engine.
    pub fn engine(&self) -> &Arc<Engine> {
        &self.engine
    }

    /// The links to the Bitcoin peers.
    pub fn links(&self) -> &Arc<PeerLinks> {
        &self.links
    }

    /// Heights of headers and verified filters.
    pub fn heights(&self) -> TrackedHeights {
        self.tracker.heights()
    }

    /// Subscribes to the chain source's notifications.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainNotification> {
        self.notifications.subscribe()
    }

    /// Tells the subscribers about `notification`.
    pub fn notify(&self, notification: ChainNotification) {
        self.notifications.send(notification);
    }

    /// The signal that fires when the chain source shuts down.
    pub fn shutdown_signal(&self) -> Shutdown {
        self.notifications.shutdown_signal()
    }

    /// Fires the shutdown signal.
    pub fn shut_down(&self) {
        self.notifications.shut_down();
    }

    /// Counts `bytes` of payload received from peers besides blocks (headers, filters).
    pub fn count_received(&self, bytes: u64) {
        self.stats.received.fetch_add(bytes, Ordering::Relaxed);
    }

    /// Download counters.
    pub fn download_counts(&self) -> DownloadCounts {
        let stats = &self.stats;
        DownloadCounts {
            blocks_for_listeners: stats.blocks_for_listeners.load(Ordering::Relaxed),
            bytes_for_listeners: stats.bytes_for_listeners.load(Ordering::Relaxed),
            blocks_for_fees: stats.blocks_for_fees.load(Ordering::Relaxed),
            bytes_for_fees: stats.bytes_for_fees.load(Ordering::Relaxed),
            refetches: stats.refetches.load(Ordering::Relaxed),
            decoy_blocks: stats.decoy_blocks.load(Ordering::Relaxed),
            decoy_bytes: stats.decoy_bytes.load(Ordering::Relaxed),
            bytes_received: stats.received.load(Ordering::Relaxed),
        }
    }

    /// The most recent downloads (up to a thousand), oldest first, with their purpose.
    pub fn recent_downloads(&self) -> Vec<(BlockHash, FetchPurpose)> {
        self.stats
            .recent
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .iter()
            .copied()
            .collect()
    }

    /// Downloads block `hash` and verifies it (merkle root and witness commitment), asking
    /// again (another peer) when a peer's copy fails verification or does not arrive in time.
    pub async fn fetch_verified_block(
        &self,
        hash: BlockHash,
        purpose: FetchPurpose,
    ) -> Result<Block, FetchError> {
        let mut last_failure = String::new();
        // Peers whose copy failed verification: not asked again while others can be.
        let mut avoid = Vec::new();
        for attempt in 1..=FETCH_ATTEMPTS {
            if attempt > 1 {
                self.stats.refetches.fetch_add(1, Ordering::Relaxed);
            }
            match self.download(hash, purpose, &mut avoid).await {
                Ok((block, from)) => {
                    if let Some(failure) = verification_failure(&block, &hash) {
                        let from = from.map_or("a peer".to_string(), |addr| addr.to_string());
                        warn!(
                            "block {hash} from {from} failed verification ({failure}); \
                             requesting it again (attempt {attempt} of {FETCH_ATTEMPTS})"
                        );
                        last_failure = failure;
                        continue;
                    }
                    let size = bitcoin::consensus::serialize(&block).len() as u64;
                    let (blocks, bytes) = match purpose {
                        FetchPurpose::Listeners => (
                            &self.stats.blocks_for_listeners,
                            &self.stats.bytes_for_listeners,
                        ),
                        FetchPurpose::FeeSample => {
                            (&self.stats.blocks_for_fees, &self.stats.bytes_for_fees)
                        }
                    };
                    blocks.fetch_add(1, Ordering::Relaxed);
                    bytes.fetch_add(size, Ordering::Relaxed);
                    self.stats.received.fetch_add(size, Ordering::Relaxed);
                    {
                        let mut recent =
                            self.stats.recent.lock().unwrap_or_else(|p| p.into_inner());
                        recent.push_back((hash, purpose));
                        if recent.len() > RECENT_DOWNLOADS {
                            recent.pop_front();
                        }
                    }
                    if let Ok(Some(stored)) = self.tracker.header(&hash) {
                        self.notifications.send(ChainNotification::BlockFetched {
                            block: Arc::new(block.clone()),
                            height: stored.height,
                        });
                    }
                    return Ok(block);
                }
                Err(FetchError::Timeout(_)) => {
                    debug!("block {hash} did not arrive in time (attempt {attempt})");
                    last_failure = "no peer answered in time".into();
                }
                Err(other) => return Err(other),
            }
        }
        Err(FetchError::Invalid {
            hash,
            reason: last_failure,
        })
    }

    /// Downloads block `hash` once: over the links from a peer that keeps it and is not in
    /// `avoid` (it is added to it when it delivers), or through the engine while no link is
    /// up. Returns the block and the peer it came from, when known.
    async fn download(
        &self,
        hash: BlockHash,
        purpose: FetchPurpose,
        avoid: &mut Vec<PeerAddress>,
    ) -> Result<(Block, Option<PeerAddress>), FetchError> {
        let (height, tip) = match (
            self.tracker.header(&hash),
            self.tracker.heights().header_tip,
        ) {
            (Ok(Some(stored)), Some((tip, _))) => (Some(stored.height), Some(tip)),
            _ => (None, None),
        };
        let depth = height
            .zip(tip)
            .map(|(height, tip)| tip.saturating_sub(height));
        let decoys = match (purpose, height, tip) {
            (FetchPurpose::Listeners, Some(height), Some(tip)) => self.decoys(height, tip),
            _ => Vec::new(),
        };
        let linked = self
            .links
            .get_block_among(hash, depth, &decoys, avoid, self.block_timeout)
            .await;
        match linked {
            Ok(Fetched {
                block,
                from,
                decoys,
            }) => {
                for decoy in &decoys {
                    let size = bitcoin::consensus::serialize(decoy).len() as u64;
                    self.stats.decoy_blocks.fetch_add(1, Ordering::Relaxed);
                    self.stats.decoy_bytes.fetch_add(size, Ordering::Relaxed);
                    self.stats.received.fetch_add(size, Ordering::Relaxed);
                }
                avoid.push(from.clone());
                Ok((block, Some(from)))
            }
            Err(LinkedFetchError::NoLink) => {
                let block = self.engine.get_block(hash, self.block_timeout).await?;
                Ok((block, None))
            }
            Err(err @ LinkedFetchError::NoFullPeer { .. }) => Err(FetchError::Refused {
                hash,
                reason: err.to_string(),
            }),
            Err(LinkedFetchError::NotDelivered { reasons, .. }) => {
                debug!("block {hash} was not delivered: {reasons}");
                // Every peer that delivered a bad copy has been asked; start over.
                avoid.clear();
                Err(FetchError::Timeout(hash))
            }
        }
    }
}

impl BlockFetcher {
    /// Up to `decoy_blocks` blocks of the active chain within [`DECOY_WINDOW`] of `height`
    /// (the wanted block's), above the chain's start and at most `tip`, drawn at random.
    fn decoys(&self, height: u32, tip: u32) -> Vec<Decoy> {
        if self.decoy_blocks == 0 {
            return Vec::new();
        }
        let low = height
            .saturating_sub(DECOY_WINDOW)
            .max(self.tracker.chain_start().height + 1);
        let high = height.saturating_add(DECOY_WINDOW).min(tip);
        let heights: Vec<u32> = (low..=high).filter(|h| *h != height).collect();
        let chosen = {
            use bitcoin::secp256k1::rand::seq::SliceRandom;
            let mut rng = bitcoin::secp256k1::rand::thread_rng();
            heights
                .choose_multiple(&mut rng, self.decoy_blocks as usize)
                .copied()
                .collect::<Vec<u32>>()
        };
        chosen
            .into_iter()
            .filter_map(|at| {
                let hash = self.tracker.headers().hash_at(at).ok().flatten()?;
                Some(Decoy {
                    hash,
                    depth: tip.saturating_sub(at),
                })
            })
            .collect()
    }
}

/// Why `block` cannot be handed to listeners as block `expected`, if it cannot.
pub(crate) fn verification_failure(block: &Block, expected: &BlockHash) -> Option<String> {
    if block.block_hash() != *expected {
        return Some(format!("got block {} instead", block.block_hash()));
    }
    if !block.check_merkle_root() {
        return Some("merkle root does not match the transactions".into());
    }
    if has_duplicate_transactions(block) {
        return Some(
            "it lists a transaction twice, which leaves the merkle root unchanged \
             (CVE-2012-2459): the block was mutated"
                .into(),
        );
    }
    if is_stripped(block) {
        return Some(
            "its coinbase commits to witness data but carries none: the block was stripped".into(),
        );
    }
    if !block.check_witness_commitment() {
        return Some("witness commitment does not match the witness data".into());
    }
    None
}

/// Whether `block` lists a transaction more than once. A block whose transaction list ends
/// with a repeated run of transactions has the same merkle root as the real one (Core flags
/// it "mutated" when two sibling hashes of the tree are equal, which means repeated
/// transactions); no valid block holds the same transaction twice.
fn has_duplicate_transactions(block: &Block) -> bool {
    let mut seen = std::collections::HashSet::with_capacity(block.txdata.len());
    !block.txdata.iter().all(|tx| seen.insert(tx.compute_txid()))
}

/// Whether `block` commits to witness data in its coinbase but carries no coinbase witness.
/// `check_witness_commitment` alone accepts such a block when every witness was removed, and
/// a block without witnesses hides the HTLC preimages LDK looks for. A commitment is an output
/// of at least 38 bytes starting with the commitment header, as Core counts it.
fn is_stripped(block: &Block) -> bool {
    const COMMITMENT_PREFIX: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    const COMMITMENT_MIN_LEN: usize = 38;
    let Some(coinbase) = block.txdata.first() else {
        return false;
    };
    let commits = coinbase.output.iter().any(|out| {
        let script = out.script_pubkey.as_bytes();
        script.len() >= COMMITMENT_MIN_LEN && script.starts_with(&COMMITMENT_PREFIX)
    });
    commits
        && coinbase
            .input
            .first()
            .is_none_or(|input| input.witness.is_empty())
}

#[cfg(test)]
mod tests {
    use bitcoin::absolute::LockTime;
    use bitcoin::block::{Header, Version};
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version as TxVersion;
    use bitcoin::{
        Amount, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxMerkleNode,
        TxOut, Witness,
    };

    use super::*;

    fn coinbase_paying(scripts: &[&[u8]]) -> Transaction {
        Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: OutPoint::null(),
                script_sig: ScriptBuf::from_bytes(vec![1, 1]),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: scripts
                .iter()
                .map(|script| TxOut {
                    value: Amount::ZERO,
                    script_pubkey: ScriptBuf::from_bytes(script.to_vec()),
                })
                .collect(),
        }
    }

    fn block_of(txdata: Vec<Transaction>) -> Block {
        let mut block = Block {
            header: Header {
                version: Version::TWO,
                prev_blockhash: BlockHash::all_zeros(),
                merkle_root: TxMerkleNode::all_zeros(),
                time: 0,
                bits: CompactTarget::from_consensus(0x207fffff),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("transactions");
        block
    }

    #[test]
    fn only_outputs_of_at_least_38_bytes_count_as_witness_commitments() {
        let header = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
        let short = block_of(vec![coinbase_paying(&[&header])]);
        assert!(
            !is_stripped(&short),
            "a 6-byte output is no commitment, so no witness is missing"
        );
        let mut commitment = header.to_vec();
        commitment.extend([0; 32]);
        let committed = block_of(vec![coinbase_paying(&[&commitment])]);
        assert!(
            is_stripped(&committed),
            "a commitment without a coinbase witness"
        );
    }

    #[test]
    fn a_block_repeating_its_last_transaction_is_mutated_though_its_merkle_root_matches() {
        let spend = |n: u8| Transaction {
            input: vec![TxIn {
                previous_output: OutPoint::new(bitcoin::Txid::from_byte_array([n; 32]), 0),
                ..coinbase_paying(&[]).input[0].clone()
            }],
            ..coinbase_paying(&[&[0x51]])
        };
        let honest = block_of(vec![coinbase_paying(&[&[0x51]]), spend(1), spend(2)]);
        let mut mutated = honest.clone();
        mutated.txdata.push(spend(2));
        assert!(
            mutated.check_merkle_root(),
            "the mutation keeps the merkle root"
        );
        assert_eq!(verification_failure(&honest, &honest.block_hash()), None);
        let failure = verification_failure(&mutated, &honest.block_hash()).expect("refused");
        assert!(failure.contains("CVE-2012-2459"), "{failure}");
    }
}

//! A property-based test of what the chain source hands its listeners, against the embedded
//! regtest peer: real P2P on 127.0.0.1, a real bip157 engine, SQLite stores in a temporary
//! directory.
//!
//! Random sequences of what a chain does (blocks mined, some paying a watched script; reorgs
//! of random depth; a replaced branch becoming active again) and of what happens to the node
//! (the chain source restarted from its data directory; the peer dropping the connection) are
//! played against a chain source with one recording listener. Two invariants are checked on
//! what the listener was given:
//!
//! - **never above the verified tip**: each block reaches the listener only while it is at or
//!   below the verified tip of the active chain (or already left the active chain, when a
//!   reorganisation raced the delivery);
//! - **every paying block exactly once per connection**: a block paying a watched script is
//!   given with its transactions before the next block arrives, and not again until it is
//!   disconnected.
//!
//! Once the peer stops, the listener reaches the peer's tip with the peer's blocks and every
//! payment confirmed. The tracker's own model test (`src/chain/tracker_model_tests.rs`)
//! covers the verified tip itself.
//!
//! `cargo test` runs 12 cases;
//! `LIGHTFILTER_PROPTEST_CASES=200 cargo test --test it chain_model::` runs more.

use crate::common;

use common::chain_harness as harness;

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, ScriptBuf, Txid};
use harness::*;
use lightfilter::chain::{ChainSource, WatchSet};
use lightfilter::regtest::RegtestPeer;
use proptest::prelude::*;

const LONG: Duration = Duration::from_secs(120);

/// One thing the chain or the node does.
#[derive(Debug, Clone)]
enum Step {
    /// This many blocks are mined; the last pays a watched script if `pays`.
    Mine { count: u32, pays: bool },
    /// The top `depth` blocks are replaced by a branch `extra` blocks longer, whose last block
    /// pays a watched script if `pays`.
    Reorg { depth: u32, extra: u32, pays: bool },
    /// The branch the last reorg replaced becomes active again and grows past the tip.
    Return,
    /// The chain source is stopped and started again from its data directory.
    Restart,
    /// The peer drops every connection.
    Disconnect,
    /// Nothing happens until the listener reaches the peer's tip.
    Settle,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (1u32..4, any::<bool>()).prop_map(|(count, pays)| Step::Mine { count, pays }),
        3 => (1u32..4, 1u32..3, any::<bool>())
            .prop_map(|(depth, extra, pays)| Step::Reorg { depth, extra, pays }),
        1 => Just(Step::Return),
        1 => Just(Step::Restart),
        1 => Just(Step::Disconnect),
        2 => Just(Step::Settle),
    ]
}

fn cases() -> u32 {
    std::env::var("LIGHTFILTER_PROPTEST_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(12)
}

/// The branch a reorg replaced: the block it forked from and its blocks, lowest first.
struct Replaced {
    fork: (u32, BlockHash),
    blocks: Vec<Block>,
}

/// The peer, the watched scripts and what was paid to them.
struct World {
    peer: RegtestPeer,
    miner: ScriptBuf,
    watched: [ScriptBuf; 2],
    /// Blocks paying a watched script, with the paying transaction (their coinbase).
    paying: BTreeMap<BlockHash, Txid>,
    replaced: Option<Replaced>,
    mined: u32,
}

impl World {
    /// Mines `count` blocks; the last pays a watched script if `pays`.
    fn mine(&mut self, count: u32, pays: bool) {
        let plain = if pays { count - 1 } else { count };
        self.peer.mine(plain, &self.miner);
        if pays {
            self.mined += 1;
            let script = &self.watched[self.mined as usize % self.watched.len()];
            let hash = self.peer.mine(1, script)[0];
            let block = self.peer.block(&hash).expect("mined block");
            self.paying.insert(hash, block.txdata[0].compute_txid());
        }
    }

    fn reorg(&mut self, depth: u32, extra: u32, pays: bool) {
        let (tip, _) = self.peer.tip();
        let depth = depth.min(tip);
        if depth == 0 {
            return;
        }
        let fork = tip - depth;
        let blocks = (fork + 1..=tip)
            .map(|height| self.peer.block_at(height).expect("active block"))
            .collect();
        let fork_hash = self.peer.block_at(fork).expect("fork block").block_hash();
        self.peer.invalidate(depth);
        self.mine(depth + extra, pays);
        self.replaced = Some(Replaced {
            fork: (fork, fork_hash),
            blocks,
        });
    }

    /// Makes the last replaced branch active again, if its fork point still is, and grows it
    /// one block past the current tip.
    fn bring_back(&mut self) {
        let Some(replaced) = self.replaced.take() else {
            return;
        };
        let (fork, fork_hash) = replaced.fork;
        if self.peer.block_at(fork).map(|b| b.block_hash()) != Some(fork_hash) {
            return;
        }
        let (tip, _) = self.peer.tip();
        self.peer.invalidate(tip - fork);
        let returned_tip = fork + replaced.blocks.len() as u32;
        for block in replaced.blocks {
            self.peer
                .reconnect(block)
                .expect("the old branch connects again");
        }
        self.peer.mine(tip + 1 - returned_tip.min(tip), &self.miner);
    }
}

/// What the listener was given that breaks an invariant, as the deliveries happen.
type Violations = Arc<Mutex<Vec<String>>>;

/// A chain source with the recorder following its tip.
struct Running {
    source: Arc<ChainSource>,
    stop: tokio::sync::watch::Sender<bool>,
    follower: tokio::task::JoinHandle<()>,
}

impl Running {
    /// Starts a chain source in `dir` for `recorder`, checking each delivery (from the first,
    /// made while the recorder is synchronised) against the verified tip of the active chain
    /// at that moment.
    async fn start(
        dir: &Path,
        peer: SocketAddr,
        recorder: &Arc<Recorder>,
        watch: Arc<WatchSet>,
        violations: Violations,
    ) -> Running {
        let source = start_source(dir, &[peer], "recorder", recorder.clone(), watch, |_| {});
        let tracker = source.tracker().clone();
        recorder.on_block(move |header, _, height| {
            let hash = header.block_hash();
            let verified = tracker.heights().verified_tip.map_or(0, |(h, _)| h);
            let active = tracker.headers().hash_at(height).ok().flatten() == Some(hash);
            if height > verified && active {
                violations.lock().unwrap().push(format!(
                    "block {hash} at {height} reached the listener above the verified tip \
                     {verified}"
                ));
            }
        });
        let from = recorder.tip();
        wait_for(LONG, || {
            source
                .heights()
                .verified_tip
                .is_some_and(|(h, _)| h >= from.height)
        })
        .await;
        let (stop, follower) = follow_from(&source, from.block_hash).await;
        Running {
            source,
            stop,
            follower,
        }
    }

    async fn wait_for_tip(&self, recorder: &Recorder, hash: BlockHash) {
        wait_for(LONG, || recorder.tip().block_hash == hash).await;
    }

    async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.follower.await;
        self.source.stop().await;
    }
}

/// Checks that each block paying a watched script was given with its paying transaction
/// before the next block, and only once while it stayed connected.
fn check_paying_blocks_once_per_connection(
    seen: &[Seen],
    paying: &BTreeMap<BlockHash, Txid>,
) -> Result<(), String> {
    // Height → (block, given with its paying transaction).
    let mut connected: BTreeMap<u32, (BlockHash, bool)> = BTreeMap::new();
    let unpaid_below = |connected: &BTreeMap<u32, (BlockHash, bool)>, height: u32| {
        connected
            .range(..height)
            .find(|(_, (hash, given))| paying.contains_key(hash) && !given)
            .map(|(h, (hash, _))| {
                format!("paying block {hash} at {h} was given without its transaction")
            })
    };
    for event in seen {
        match event {
            Seen::Disconnected { fork_height, .. } => {
                connected.retain(|height, _| height <= fork_height);
            }
            Seen::Connected {
                height,
                hash,
                txids,
                ..
            } => {
                let gives = paying.get(hash).is_some_and(|txid| txids.contains(txid));
                match connected.get_mut(height) {
                    Some((current, given)) if current == hash => {
                        if gives && *given {
                            return Err(format!(
                                "paying block {hash} at {height} was given twice while connected"
                            ));
                        }
                        *given |= gives;
                    }
                    _ => {
                        if let Some(unpaid) = unpaid_below(&connected, *height) {
                            return Err(format!("{unpaid}, before block {hash} at {height}"));
                        }
                        connected.retain(|h, _| h < height);
                        connected.insert(*height, (*hash, gives));
                    }
                }
            }
        }
    }
    match unpaid_below(&connected, u32::MAX) {
        Some(unpaid) => Err(unpaid),
        None => Ok(()),
    }
}

async fn run(steps: Vec<Step>) -> Result<(), String> {
    let peer = RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("regtest peer starts");
    let mut world = World {
        peer,
        miner: unique_script(900),
        watched: [unique_script(901), unique_script(902)],
        paying: BTreeMap::new(),
        replaced: None,
        mined: 0,
    };
    world.peer.mine(5, &world.miner);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts(world.watched.iter().map(|s| s.as_script()));
    let dir = tempfile::tempdir().unwrap();
    let violations: Violations = Arc::default();
    let recorder = Recorder::new(genesis());
    let addr = world.peer.addr();
    let mut running = Running::start(
        dir.path(),
        addr,
        &recorder,
        watch.clone(),
        violations.clone(),
    )
    .await;

    for step in &steps {
        match *step {
            Step::Mine { count, pays } => world.mine(count, pays),
            Step::Reorg { depth, extra, pays } => world.reorg(depth, extra, pays),
            Step::Return => world.bring_back(),
            Step::Restart => {
                running.stop().await;
                running = Running::start(
                    dir.path(),
                    addr,
                    &recorder,
                    watch.clone(),
                    violations.clone(),
                )
                .await;
            }
            Step::Disconnect => world.peer.disconnect_all(),
            Step::Settle => running.wait_for_tip(&recorder, world.peer.tip().1).await,
        }
        if let Some(violation) = violations.lock().unwrap().first() {
            return Err(violation.clone());
        }
    }
    running.wait_for_tip(&recorder, world.peer.tip().1).await;
    running.stop().await;

    if let Some(violation) = violations.lock().unwrap().first() {
        return Err(violation.clone());
    }
    let (tip, _) = world.peer.tip();
    for height in 1..=tip {
        let expected = world.peer.block_at(height).map(|b| b.block_hash());
        if recorder.hash_at(height) != expected {
            return Err(format!(
                "the listener's block at {height} is not the peer's"
            ));
        }
    }
    let paying = &world.paying;
    let active: BTreeSet<BlockHash> = (1..=tip)
        .filter_map(|h| world.peer.block_at(h).map(|b| b.block_hash()))
        .collect();
    for (hash, txid) in paying {
        if active.contains(hash) && !recorder.is_confirmed(txid) {
            return Err(format!(
                "payment {txid} in active block {hash} is not confirmed"
            ));
        }
    }
    check_paying_blocks_once_per_connection(&recorder.seen(), paying)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: cases(),
        failure_persistence: None,
        max_shrink_iters: 64,
        ..ProptestConfig::default()
    })]

    #[test]
    fn listeners_get_verified_blocks_and_each_payment_once_per_connection(
        steps in prop::collection::vec(step(), 1..14)
    ) {
        let _ = env_logger::builder().is_test(true).try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("runtime");
        let outcome = runtime.block_on(run(steps));
        prop_assert!(outcome.is_ok(), "{}", outcome.unwrap_err());
    }
}

/// The checker itself: a paying block given header-only, or given twice without a
/// disconnection in between, is caught; a block given again after a disconnection is not.
#[test]
fn the_once_per_connection_check_catches_missing_and_repeated_payments() {
    let block = |n: u8| BlockHash::from_byte_array([n; 32]);
    let txid = Txid::from_byte_array([7; 32]);
    let paying = BTreeMap::from([(block(2), txid)]);
    let connected = |height, hash, txids: Vec<Txid>| Seen::Connected {
        height,
        hash,
        txids,
        wtxids: Vec::new(),
    };
    let disconnected = Seen::Disconnected {
        fork_height: 1,
        fork_hash: block(1),
    };
    let ok = [
        connected(1, block(1), vec![]),
        connected(2, block(2), vec![txid]),
        disconnected.clone(),
        connected(2, block(2), vec![txid]),
        connected(3, block(3), vec![]),
    ];
    assert_eq!(
        check_paying_blocks_once_per_connection(&ok, &paying),
        Ok(())
    );
    let missing = [
        connected(1, block(1), vec![]),
        connected(2, block(2), vec![]),
        connected(3, block(3), vec![]),
    ];
    assert!(check_paying_blocks_once_per_connection(&missing, &paying).is_err());
    let redelivered_late = [
        connected(2, block(2), vec![]),
        connected(2, block(2), vec![txid]),
    ];
    assert_eq!(
        check_paying_blocks_once_per_connection(&redelivered_late, &paying),
        Ok(())
    );
    let twice = [
        connected(2, block(2), vec![txid]),
        connected(2, block(2), vec![txid]),
    ];
    assert!(check_paying_blocks_once_per_connection(&twice, &paying).is_err());
}

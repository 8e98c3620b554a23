//! Integration tests of the compact-filter chain source against the embedded regtest peer:
//! real P2P on 127.0.0.1, a real bip157 engine, SQLite stores in temporary directories.

use crate::common;

use common::chain_harness as harness;

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, FeeRate, ScriptBuf, Transaction, Txid};
use harness::*;
use lightfilter::chain::broadcaster::{PeerState, BURIAL_DEPTH};
use lightfilter::chain::fetcher::FetchPurpose;
use lightfilter::chain::{ChainSource, WatchSet};
use lightfilter::regtest::RegtestPeer;
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use lightning_block_sync::BlockSource;

const LOCALHOST: &str = "127.0.0.1:0";
const LONG: Duration = Duration::from_secs(120);

fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

async fn peer() -> RegtestPeer {
    RegtestPeer::start(LOCALHOST.parse::<SocketAddr>().unwrap())
        .await
        .expect("regtest peer starts")
}

fn tip_hash(peer: &RegtestPeer) -> bitcoin::BlockHash {
    peer.tip().1
}

/// The blocks `peer` served, in order, except those `source` fetched as fee samples.
/// Asserts that the listener's blocks from `from` to the peer's tip are the peer's.
fn assert_listener_on_the_peers_chain(recorder: &Recorder, peer: &RegtestPeer, from: u32) {
    for height in from..=peer.tip().0 {
        assert_eq!(
            recorder.hash_at(height),
            peer.block_at(height).map(|b| b.block_hash()),
            "the listener's block at {height}"
        );
    }
}

fn blocks_served_for_listeners(
    peer: &RegtestPeer,
    source: &lightfilter::chain::ChainSource,
) -> Vec<bitcoin::BlockHash> {
    let fee_samples: BTreeSet<_> = source
        .recent_downloads()
        .into_iter()
        .filter(|(_, purpose)| *purpose == FetchPurpose::FeeSample)
        .map(|(hash, _)| hash)
        .collect();
    peer.stats()
        .blocks_served
        .iter()
        .map(|(hash, _)| *hash)
        .filter(|hash| !fee_samples.contains(hash))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fresh_sync_of_2000_blocks_reaches_the_tip_without_reporting_unverified_tips() {
    init_logs();
    let peer = peer().await;
    peer.mine(2_000, &unique_script(1));
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        Arc::new(WatchSet::new()),
    )
    .await;

    // While the sync runs, every best block reported must have its filter stored.
    let source = harness.source.clone();
    let target = tip_hash(&peer);
    let checker = tokio::spawn(async move {
        let mut checks = 0u32;
        loop {
            if let Ok((hash, Some(height))) = source.get_best_block().await {
                if height > 0 {
                    assert!(
                        source.tracker().filters().contains(height, &hash).unwrap(),
                        "best block {hash} at {height} reported before its filter was stored"
                    );
                }
                checks += 1;
                if hash == target {
                    return checks;
                }
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    });
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let checks = tokio::time::timeout(LONG, checker).await.unwrap().unwrap();
    assert!(checks > 1, "the best block was sampled during the sync");

    assert_eq!(
        recorder.connected_heights(),
        (1..=2_000).collect::<Vec<_>>()
    );
    for height in [1, 999, 2_000] {
        assert_eq!(
            recorder.hash_at(height),
            peer.block_at(height).map(|b| b.block_hash())
        );
    }
    assert_eq!(harness.source.download_counts().blocks_for_listeners, 0);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_blocks_paying_watched_scripts_are_downloaded() {
    init_logs();
    let peer = peer().await;
    let other = unique_script(2);
    // Mature the faucet first, then build 500 more blocks where 5 pay watched scripts.
    peer.fund(
        &unique_script(3),
        Amount::from_sat(10_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("faucet");
    peer.mine(1, &other);
    let start = peer.tip().0;
    let watch = Arc::new(WatchSet::new());
    let matching_heights: BTreeSet<u32> = [50, 120, 260, 333, 480]
        .into_iter()
        .map(|h| start + h)
        .collect();
    let mut relevant = Vec::new();
    for height in start + 1..=start + 500 {
        if matching_heights.contains(&height) {
            let script = unique_script(1_000 + height as u64);
            watch.add_scripts([script.as_script()]);
            let tx = peer
                .fund(
                    &script,
                    Amount::from_sat(50_000),
                    FeeRate::from_sat_per_vb(2).unwrap(),
                )
                .expect("faucet pays");
            relevant.push((height, tx.compute_txid()));
        } else if height % 7 == 0 {
            // Unrelated traffic in other blocks.
            peer.fund(
                &unique_script(5_000 + height as u64),
                Amount::from_sat(20_000),
                FeeRate::from_sat_per_vb(2).unwrap(),
            )
            .expect("faucet pays");
        }
        peer.mine(1, &other);
    }
    let expected: BTreeSet<_> = matching_heights
        .iter()
        .map(|h| peer.block_at(*h).unwrap().block_hash())
        .collect();
    peer.reset_stats();

    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    for (height, txid) in &relevant {
        assert!(
            recorder.is_confirmed(txid),
            "transaction {txid} at {height} delivered"
        );
    }
    let served: BTreeSet<_> = blocks_served_for_listeners(&peer, &harness.source)
        .into_iter()
        .collect();
    assert_eq!(
        served, expected,
        "the peer served exactly the matching blocks"
    );
    assert!(
        peer.stats()
            .blocks_served
            .iter()
            .all(|(_, witness)| *witness),
        "blocks are requested with witness data"
    );
    assert_eq!(harness.source.download_counts().blocks_for_listeners, 5);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn matching_blocks_are_fetched_before_a_lagging_listener_reaches_them() {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(62);
    let watched = [unique_script(60), unique_script(61)];
    let mut payments = Vec::new();
    let mut matching = BTreeSet::new();
    for script in &watched {
        let payment = peer
            .fund(
                script,
                Amount::from_sat(40_000),
                FeeRate::from_sat_per_vb(2).unwrap(),
            )
            .expect("faucet pays");
        peer.mine(1, &miner);
        matching.insert(tip_hash(&peer));
        payments.push(payment.compute_txid());
        peer.mine(30, &miner);
    }
    peer.reset_stats();

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts(watched.iter().map(|script| script.as_script()));
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let source = start_source(
        dir.path(),
        &[peer.addr()],
        "recorder",
        recorder.clone(),
        watch,
        |_| {},
    );
    // No listener follows yet: the filters are checked as they arrive and the matching
    // blocks fetched ahead of it.
    let tip = tip_hash(&peer);
    wait_for(LONG, || {
        source
            .heights()
            .verified_tip
            .is_some_and(|(_, hash)| hash == tip)
    })
    .await;
    wait_for(LONG, || source.download_counts().blocks_for_listeners == 2).await;
    assert_eq!(recorder.tip().height, 0, "nothing was delivered yet");

    let (stop, follower) = follow_from(&source, genesis().block_hash).await;
    wait_for(LONG, || recorder.tip().block_hash == tip).await;
    for txid in &payments {
        assert!(recorder.is_confirmed(txid), "payment {txid} delivered");
    }
    assert_eq!(
        source.download_counts().blocks_for_listeners,
        2,
        "the listener was given the blocks fetched ahead, not fresh downloads"
    );
    let mut served = blocks_served_for_listeners(&peer, &source);
    served.sort();
    assert_eq!(
        served,
        matching.into_iter().collect::<Vec<_>>(),
        "the peer served each matching block once"
    );
    let _ = stop.send(true);
    let _ = follower.await;
    source.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dependent_spend_in_the_same_block_is_delivered() {
    init_logs();
    let peer = peer().await;
    let watched = unique_script(10);
    let registered_later = unique_script(11);
    let funding = peer
        .fund(
            &watched,
            Amount::from_sat(100_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    let child = spend_anyone(
        &funding,
        vout_paying(&funding, &watched),
        10,
        registered_later.clone(),
        1_000,
    );
    peer.mine_with(vec![funding.clone(), child.clone()], &unique_script(12))
        .expect("block with parent and child");
    peer.mine(2, &unique_script(12));

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    {
        // Like LDK: seeing the first transaction makes the listener watch its child's output.
        let watch = watch.clone();
        let funding_txid = funding.compute_txid();
        let registered_later = registered_later.clone();
        recorder.on_block(move |_, txs, _| {
            if txs.iter().any(|tx| tx.compute_txid() == funding_txid) {
                watch.add_scripts([registered_later.as_script()]);
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(recorder.is_confirmed(&funding.compute_txid()));
    assert!(
        recorder.is_confirmed(&child.compute_txid()),
        "the dependent spend was delivered"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_matching_scripts_registered_while_it_was_connected_is_redelivered_first() {
    init_logs();
    let peer = peer().await;
    let late = unique_script(20);
    let payment = peer
        .fund(
            &late,
            Amount::from_sat(70_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(1, &unique_script(21));
    let paid_at = peer.tip().0;
    peer.mine(3, &unique_script(21));

    let watch = Arc::new(WatchSet::new());
    let recorder = Recorder::new(genesis());
    {
        // The script becomes watched only while its block is being connected (header-only).
        let watch = watch.clone();
        let late = late.clone();
        recorder.on_block(move |_, _, height| {
            if height == paid_at {
                watch.add_scripts([late.as_script()]);
            }
        });
    }
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    assert_redelivered_before_the_next_block(&recorder, paid_at, payment.compute_txid());
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    harness.stop().await;
}

/// The faucet pays `sats` to `script` at 2 sat/vB; the payment waits in the mempool.
fn faucet_pays(peer: &RegtestPeer, script: &ScriptBuf, sats: u64) -> Transaction {
    peer.fund(
        script,
        Amount::from_sat(sats),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("faucet pays")
}

/// Matures the faucet's coins, mining to `miner`, so that a payment from it adds one block.
fn mature_faucet(peer: &RegtestPeer, miner: &ScriptBuf) {
    faucet_pays(peer, miner, 10_000);
    peer.mine(1, miner);
}

/// Waits until `source` has verified and stored the filters up to block `tip`.
async fn wait_for_verified_tip(source: &ChainSource, tip: bitcoin::BlockHash) {
    wait_for(LONG, || {
        source
            .heights()
            .verified_tip
            .is_some_and(|(_, hash)| hash == tip)
    })
    .await;
}

/// Makes `recorder` add `script` to `watch` while block `height` is connected to it, as LDK
/// registers scripts while it processes a block, and run `also` then too.
fn watch_while_connecting(
    recorder: &Recorder,
    watch: &Arc<WatchSet>,
    script: &ScriptBuf,
    height: u32,
    also: impl Fn() + Send + Sync + 'static,
) {
    let watch = watch.clone();
    let script = script.clone();
    recorder.on_block(move |_, _, connected| {
        if connected == height {
            watch.add_scripts([script.as_script()]);
            also();
        }
    });
}

/// Asserts that block `height` reached `recorder` header-only, then again with `txid`, and
/// only then the next block.
fn assert_redelivered_before_the_next_block(recorder: &Recorder, height: u32, txid: Txid) {
    let around: Vec<Seen> = recorder
        .seen()
        .into_iter()
        .filter(
            |s| matches!(s, Seen::Connected { height: h, .. } if *h == height || *h == height + 1),
        )
        .collect();
    match around.as_slice() {
        [Seen::Connected {
            height: h1,
            txids: first,
            ..
        }, Seen::Connected {
            height: h2,
            txids: second,
            ..
        }, Seen::Connected { height: h3, .. }] => {
            assert_eq!((*h1, *h2, *h3), (height, height, height + 1));
            assert!(first.is_empty(), "first delivered header-only");
            assert!(second.contains(&txid), "re-delivered with the payment");
        }
        other => panic!("unexpected deliveries around the block: {other:?}"),
    }
    assert!(recorder.is_confirmed(&txid));
}

/// A script becomes watched while its paying block is connected header-only, and the peer
/// stops serving blocks at that moment; `mined_meanwhile` more blocks arrive, and the engine
/// restarts. No later block may reach the listener before the paying block is re-delivered,
/// which must happen once blocks are served again.
async fn redelivery_survives_withheld_blocks(tag: u64, mined_meanwhile: u32) {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(tag);
    let late = unique_script(tag + 1);
    mature_faucet(&peer, &miner);
    let watch = Arc::new(WatchSet::new());
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start_with(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        watch.clone(),
        |config| config.block_timeout = Duration::from_secs(3),
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    let paid_at = peer.tip().0 + 1;
    let switches = peer.endpoint().switches;
    let once = std::sync::Once::new();
    watch_while_connecting(&recorder, &watch, &late, paid_at, move || {
        once.call_once(|| switches.set_withhold_blocks(true))
    });
    let payment = faucet_pays(&peer, &late, 70_000);
    peer.mine(4, &miner);
    wait_for(LONG, || recorder.tip().height >= paid_at).await;
    if mined_meanwhile > 0 {
        peer.mine(mined_meanwhile, &miner);
        wait_for_verified_tip(&harness.source, tip_hash(&peer)).await;
    }
    // The engine restarts meanwhile (its only peer drops), from the stored chain.
    let restarts = harness.source.engine().restarts();
    peer.disconnect_all();
    wait_for(LONG, || harness.source.engine().restarts() > restarts).await;
    // Long enough for several re-checks to fail.
    tokio::time::sleep(Duration::from_secs(15)).await;
    assert_eq!(
        recorder.tip().height,
        paid_at,
        "no later block reached the listener while the re-delivery could not be fetched"
    );

    peer.endpoint().switches.set_withhold_blocks(false);
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_redelivered_before_the_next_block(&recorder, paid_at, payment.compute_txid());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_whose_block_could_not_be_fetched_is_made_before_later_blocks() {
    redelivery_survives_withheld_blocks(130, 0).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_redelivery_whose_filter_check_was_forgotten_is_still_made() {
    // More blocks than filter checks are remembered: the block's check is evicted.
    redelivery_survives_withheld_blocks(
        135,
        lightfilter::chain::filter_checks::CHECKS_REMEMBERED as u32 + 100,
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_mutated_copy_of_a_block_never_reaches_the_listeners() {
    init_logs();
    let peer = peer().await;
    let watched = unique_script(24);
    // Three transactions: the coinbase, the payment and one more, so that repeating the last
    // keeps the merkle root.
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(60_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.fund(
        &unique_script(25),
        Amount::from_sat(60_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("faucet pays");
    peer.mine(1, &unique_script(26));
    let paid_at = peer.tip().0;
    assert_eq!(peer.block_at(paid_at).unwrap().txdata.len(), 3);
    peer.mine(2, &unique_script(26));
    let switches = peer.endpoint().switches;
    switches.set_mutate_blocks(true);

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(
        recorder.tip().height < paid_at,
        "a mutated copy of block {paid_at} reached the listener"
    );
    switches.set_mutate_blocks(false);
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    for seen in recorder.seen() {
        if let Seen::Connected { height, txids, .. } = seen {
            let unique: BTreeSet<_> = txids.iter().collect();
            assert_eq!(
                unique.len(),
                txids.len(),
                "block {height} listed a transaction twice"
            );
        }
    }
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_whose_verified_filters_cannot_be_decoded_are_fetched_instead() {
    init_logs();
    let peer = peer().await;
    let watched = unique_script(27);
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(50_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(3, &unique_script(28));
    // The only peer serves filters that do not decode, with filter headers to match them:
    // they pass the filter-header check (a quorum of one) and tell nothing.
    let switches = peer.endpoint().switches;
    switches.set_undecodable_filters(true);
    switches.set_wrong_filters(true);
    switches.set_conflicting_cfheaders(true);

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(
        recorder.is_confirmed(&payment.compute_txid()),
        "the blocks were fetched and the payment found in them"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_online_reorg_disconnects_to_the_fork_point_and_forgets_old_transactions() {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(30);
    let watched = unique_script(31);
    peer.mine(10, &miner);
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(40_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(2, &miner);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    let old_tip = peer.tip().0;

    // Three blocks (including the payment's) leave the chain; the payment is not re-mined.
    peer.invalidate(3);
    peer.clear_mempool();
    peer.mine(4, &unique_script(32));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    let fork = old_tip - 3;
    assert!(
        recorder
            .seen()
            .iter()
            .any(|s| matches!(s, Seen::Disconnected { fork_height, .. } if *fork_height == fork)),
        "listener disconnected to the fork point at {fork}"
    );
    assert!(
        !recorder.is_confirmed(&payment.compute_txid()),
        "the old branch's payment is no longer confirmed"
    );
    assert_listener_on_the_peers_chain(&recorder, &peer, fork);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_that_becomes_active_again_reaches_the_listeners() {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(33);
    peer.mine(10, &miner);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let watch = Arc::new(WatchSet::new());
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let fork = peer.tip().0 - 3;

    // Branch A's top three blocks give way to branch B, four blocks long...
    let branch_a: Vec<_> = (fork + 1..=fork + 3)
        .map(|height| peer.block_at(height).expect("a block of branch A"))
        .collect();
    peer.invalidate(3);
    peer.mine(4, &unique_script(34));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    // ...then B is invalidated, A comes back and grows past it. The filters of A's first
    // blocks were stored once and replaced by B's; the engine does not send them again.
    peer.invalidate(4);
    for block in branch_a {
        peer.reconnect(block).expect("branch A reconnects");
    }
    peer.mine(2, &miner);
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_listener_on_the_peers_chain(&recorder, &peer, fork);
    harness.stop().await;
}

/// Syncs a source to `length` blocks, stops it, reorganises the chain `depth` blocks deep with
/// `depth + 2` new blocks while it is down, restarts it and checks the listener followed the
/// reorganisation from its fork point.
async fn replay_offline_reorg(length: u32, depth: u32, tag: u64) {
    init_logs();
    let peer = peer().await;
    peer.mine(length, &unique_script(tag));
    let dir = tempfile::tempdir().unwrap();
    let peers = [peer.addr()];
    let start = |recorder: Arc<Recorder>| {
        Harness::start(dir.path(), &peers, recorder, Arc::new(WatchSet::new()))
    };
    let harness = start(Recorder::new(genesis())).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let recorder = harness.stop().await;
    let stale_tip = recorder.tip();

    peer.invalidate(depth);
    peer.mine(depth + 2, &unique_script(tag + 1));
    assert_ne!(
        peer.block_at(stale_tip.height).unwrap().block_hash(),
        stale_tip.block_hash
    );

    let harness = start(recorder.clone()).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let fork = stale_tip.height - depth;
    assert!(recorder
        .seen()
        .iter()
        .any(|s| matches!(s, Seen::Disconnected { fork_height, .. } if *fork_height == fork)));
    assert_listener_on_the_peers_chain(&recorder, &peer, 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_reorg_is_replayed_after_restart() {
    replay_offline_reorg(30, 6, 40).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_offline_reorg_deeper_than_the_restart_depth_is_found() {
    // 200 blocks deep: below where the engine starts again (144 blocks under the verified tip).
    replay_offline_reorg(300, 200, 42).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_batch_that_cannot_be_stored_does_not_stop_the_chain_for_good() {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(44);
    peer.mine(20, &miner);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        Arc::new(WatchSet::new()),
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    // Another process holds the database's write lock longer than the store waits for it
    // (5 s), so the batch with the next blocks fails to be stored.
    let blocker = rusqlite::Connection::open(dir.path().join("chain.sqlite")).unwrap();
    blocker.execute_batch("BEGIN IMMEDIATE").unwrap();
    peer.mine(3, &miner);
    tokio::time::sleep(Duration::from_secs(7)).await;
    blocker.execute_batch("ROLLBACK").unwrap();
    drop(blocker);

    // Blocks mined after the failure must reach the listener, and so must the ones whose
    // batch failed.
    peer.mine(2, &miner);
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_listener_on_the_peers_chain(&recorder, &peer, 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripped_blocks_never_reach_the_listeners() {
    init_logs();
    let peer = peer().await;
    let second = peer
        .add_endpoint(LOCALHOST.parse().unwrap())
        .await
        .expect("second endpoint");
    let watched = unique_script(50);
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(60_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    assert!(
        payment.input.iter().all(|i| !i.witness.is_empty()),
        "a segwit spend"
    );
    peer.mine(1, &unique_script(51));
    let paid_at = peer.tip().0;
    // Both peers strip witnesses at first.
    peer.endpoint().switches.set_strip_witness(true);
    second.switches.set_strip_witness(true);

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start_with(
        dir.path(),
        &[peer.addr(), second.addr],
        recorder.clone(),
        watch,
        |config| {
            config.required_peers = Some(2);
            config.block_timeout = Duration::from_secs(3);
        },
    )
    .await;
    // The listener stops short of the block while only stripped copies exist.
    wait_for(LONG, || harness.source.download_counts().refetches >= 2).await;
    assert!(
        recorder.tip().height < paid_at,
        "no stripped block was delivered"
    );

    // One peer turns honest: the block is fetched again and delivered with its witnesses.
    second.switches.set_strip_witness(false);
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let delivered = recorder
        .seen()
        .into_iter()
        .find_map(|s| match s {
            Seen::Connected { height, wtxids, .. } if height == paid_at => Some(wtxids),
            _ => None,
        })
        .expect("block delivered");
    assert!(
        delivered.contains(&payment.compute_wtxid()),
        "delivered with witness data"
    );
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_serving_wrong_filters_does_not_reach_the_listeners() {
    init_logs();
    let peer = peer().await;
    let liar = peer
        .add_endpoint(LOCALHOST.parse().unwrap())
        .await
        .expect("second endpoint");
    liar.switches.set_wrong_filters(true);
    let watched = unique_script(60);
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(60_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(20, &unique_script(61));

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start_with(
        dir.path(),
        &[liar.addr, peer.addr()],
        recorder.clone(),
        watch,
        |config| {
            config.required_peers = Some(2);
        },
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    // Every stored filter is the honest one.
    for height in 1..=peer.tip().0 {
        let hash = peer.block_at(height).unwrap().block_hash();
        if let Some(stored) = harness
            .source
            .tracker()
            .filters()
            .get(height, &hash)
            .unwrap()
        {
            assert_eq!(Some(stored), peer.filter(&hash), "filter of block {height}");
        }
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_package_given_child_first_is_relayed_parent_first_and_mined() {
    init_logs();
    let peer = peer().await;
    let funding = peer
        .fund(
            &unique_script(70),
            Amount::from_sat(200_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(1, &unique_script(79));
    let parent = spend_anyone(
        &funding,
        vout_paying(&funding, &unique_script(70)),
        70,
        unique_script(71),
        2_000,
    );
    let child = spend_anyone(&parent, 0, 71, unique_script(72), 2_000);

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([unique_script(72).as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    harness
        .source
        .broadcaster()
        .broadcast(&[child.clone(), parent.clone()]);
    wait_for(LONG, || {
        peer.in_mempool(&parent.compute_txid()) && peer.in_mempool(&child.compute_txid())
    })
    .await;
    peer.mine(1, &unique_script(79));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_eq!(peer.confirmations(&child.compute_txid()), Some(1));
    wait_for(LONG, || {
        harness.source.broadcaster().unconfirmed().is_empty()
    })
    .await;
    harness.stop().await;
}

/// A spend of a faucet payment to `unique_script(tag)`, paying `unique_script(tag + 1)`, and
/// a chain source following `peer` that watches the spend's output; the spend is not
/// broadcast yet.
async fn start_with_a_spend_to_broadcast(
    peer: &RegtestPeer,
    tag: u64,
    dir: &std::path::Path,
) -> (Harness, bitcoin::Transaction) {
    let funding = peer
        .fund(
            &unique_script(tag),
            Amount::from_sat(200_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(1, &unique_script(tag + 9));
    let tx = spend_anyone(
        &funding,
        vout_paying(&funding, &unique_script(tag)),
        tag,
        unique_script(tag + 1),
        2_000,
    );
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([unique_script(tag + 1).as_script()]);
    let harness = Harness::start(dir, &[peer.addr()], Recorder::new(genesis()), watch).await;
    harness.wait_for_tip(tip_hash(peer), LONG).await;
    (harness, tx)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_dropped_by_a_restarting_peer_is_rebroadcast_and_mined() {
    init_logs();
    let peer = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (harness, tx) = start_with_a_spend_to_broadcast(&peer, 80, dir.path()).await;

    harness
        .source
        .broadcaster()
        .broadcast(std::slice::from_ref(&tx));
    wait_for(LONG, || peer.in_mempool(&tx.compute_txid())).await;
    // The peer "restarts": its mempool is gone and its connections drop.
    peer.clear_mempool();
    peer.disconnect_all();
    assert!(!peer.in_mempool(&tx.compute_txid()));
    wait_for(LONG, || peer.in_mempool(&tx.compute_txid())).await;
    peer.mine(1, &unique_script(89));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(harness.recorder.is_confirmed(&tx.compute_txid()));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_block_is_reorged_out_is_broadcast_again_and_mined() {
    init_logs();
    let peer = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (harness, tx) = start_with_a_spend_to_broadcast(&peer, 130, dir.path()).await;
    let txid = tx.compute_txid();
    let broadcaster = harness.source.broadcaster().clone();
    broadcaster.broadcast(std::slice::from_ref(&tx));
    wait_for(LONG, || peer.in_mempool(&txid)).await;
    peer.mine(1, &unique_script(139));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(harness.recorder.is_confirmed(&txid));
    wait_for(LONG, || broadcaster.unconfirmed().is_empty()).await;
    assert_eq!(
        broadcaster.awaiting_burial(),
        vec![txid],
        "kept until buried"
    );

    // A longer branch without the block replaces it, and the peer forgets the transaction
    // (as a peer restarted without its mempool would).
    peer.invalidate(1);
    peer.clear_mempool();
    peer.mine(2, &unique_script(139));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(!harness.recorder.is_confirmed(&txid));
    wait_for(LONG, || peer.in_mempool(&txid)).await;
    peer.mine(1, &unique_script(139));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_eq!(
        peer.confirmations(&txid),
        Some(1),
        "mined on the new branch"
    );
    assert!(harness.recorder.is_confirmed(&txid));

    // Buried deep enough, it is forgotten.
    wait_for(LONG, || broadcaster.awaiting_burial() == vec![txid]).await;
    peer.mine(BURIAL_DEPTH - 1, &unique_script(139));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    wait_for(LONG, || broadcaster.awaiting_burial().is_empty()).await;
    assert!(broadcaster.unconfirmed().is_empty());
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_confirmed_transaction_is_kept_across_a_restart_and_broadcast_again_after_a_reorg() {
    init_logs();
    let peer = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (harness, tx) = start_with_a_spend_to_broadcast(&peer, 140, dir.path()).await;
    let txid = tx.compute_txid();
    harness
        .source
        .broadcaster()
        .broadcast(std::slice::from_ref(&tx));
    wait_for(LONG, || peer.in_mempool(&txid)).await;
    peer.mine(1, &unique_script(149));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    wait_for(LONG, || {
        harness.source.broadcaster().awaiting_burial() == vec![txid]
    })
    .await;
    let recorder = harness.stop().await;

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([unique_script(141).as_script()]);
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder, watch).await;
    let broadcaster = harness.source.broadcaster().clone();
    assert_eq!(
        broadcaster.awaiting_burial(),
        vec![txid],
        "the block that confirmed it was kept"
    );
    assert!(broadcaster.unconfirmed().is_empty(), "not sent again");

    peer.invalidate(1);
    peer.clear_mempool();
    peer.mine(2, &unique_script(149));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    wait_for(LONG, || peer.in_mempool(&txid)).await;
    peer.mine(1, &unique_script(149));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(harness.recorder.is_confirmed(&txid));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_estimates_sit_at_the_floor_on_empty_chains_and_follow_paid_rates() {
    init_logs();
    let peer = peer().await;
    peer.mine(20, &unique_script(90));
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        Arc::new(WatchSet::new()),
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let fees = harness.source.fee_estimator().clone();
    let tip = peer.tip().0;
    wait_for(LONG, || fees.sampled_heights().contains(&tip)).await;
    for target in lightfilter::chain::fees::ALL_TARGETS {
        if target != ConfirmationTarget::MaximumFeeEstimate {
            assert_eq!(
                fees.get_est_sat_per_1000_weight(target),
                253,
                "{target:?} on an empty chain"
            );
        }
    }

    // Blocks full of transactions paying 10 sat/vB (2,500 sat/kw).
    for round in 0..3u64 {
        for i in 0..4u64 {
            peer.fund(
                &unique_script(100 + round * 10 + i),
                Amount::from_sat(30_000),
                FeeRate::from_sat_per_vb(10).unwrap(),
            )
            .expect("faucet pays");
        }
        peer.mine(1, &unique_script(90));
        let tip = peer.tip().0;
        wait_for(LONG, || fees.sampled_heights().contains(&tip)).await;
    }
    let normal = fees.get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
    assert!(
        (2_300..=2_700).contains(&normal),
        "non-anchor estimate {normal} follows 2,500 sat/kw"
    );
    let urgent = fees.get_est_sat_per_1000_weight(ConfirmationTarget::UrgentOnChainSweep);
    assert!(urgent >= normal);
    assert_eq!(
        fees.get_est_sat_per_1000_weight(ConfirmationTarget::MinAllowedAnchorChannelRemoteFee),
        253
    );
    harness.stop().await;
}

/// A chain whose block at the returned height pays a watched script and has `above` blocks
/// over it, and a chain source with public networks' fee sampling (a block of its own once
/// per `IDLE_SAMPLE_INTERVAL_PUBLIC` while idle) synced to its tip from genesis, in `dir`.
async fn synced_with_a_paying_block_below_the_tip(
    peer: &RegtestPeer,
    above: u32,
    dir: &std::path::Path,
) -> (u32, Harness) {
    let watched = unique_script(300);
    peer.mine(50, &unique_script(301));
    peer.fund(
        &watched,
        Amount::from_sat(40_000),
        FeeRate::from_sat_per_vb(4).unwrap(),
    )
    .expect("faucet pays");
    peer.mine(1, &unique_script(301));
    let paying = peer.tip().0;
    peer.mine(above, &unique_script(301));
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let harness = Harness::start_with(dir, &[peer.addr()], Recorder::new(genesis()), watch, |c| {
        c.fee_sample_interval = Some(lightfilter::chain::fees::IDLE_SAMPLE_INTERVAL_PUBLIC)
    })
    .await;
    harness.wait_for_tip(tip_hash(peer), LONG).await;
    (paying, harness)
}

/// On a public network an idle node samples a block of its own once a day: a block its
/// listeners fetched anyway while catching up, recent enough, is the sample instead.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_fetched_for_catching_up_listeners_is_the_fee_sample_when_recent_enough() {
    init_logs();
    let peer = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (paying, harness) = synced_with_a_paying_block_below_the_tip(&peer, 40, dir.path()).await;
    let fees = harness.source.fee_estimator().clone();
    wait_for(LONG, || fees.sampled_heights().contains(&paying)).await;
    // A block of its own would have been asked for when the filters reached the tip, before
    // the listeners did: give it time to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(
        harness.source.download_counts().blocks_for_fees,
        0,
        "no block fetched for fee samples; sampled {:?}",
        fees.sampled_heights()
    );
    assert_eq!(fees.sampled_heights(), vec![paying]);
    harness.stop().await;
}

/// The listeners' block is too old to be the sample: the sample held back for them is taken
/// once they caught up.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sample_held_for_catching_up_listeners_is_taken_when_their_blocks_are_too_old() {
    init_logs();
    let peer = peer().await;
    let above = lightfilter::chain::fees::IDLE_SAMPLE_INTERVAL_PUBLIC + 10;
    let dir = tempfile::tempdir().unwrap();
    let (paying, harness) =
        synced_with_a_paying_block_below_the_tip(&peer, above, dir.path()).await;
    let fees = harness.source.fee_estimator().clone();
    let tip = peer.tip().0;
    wait_for(LONG, || fees.sampled_heights().contains(&tip)).await;
    assert_eq!(fees.sampled_heights(), vec![paying, tip]);
    assert_eq!(harness.source.download_counts().blocks_for_fees, 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_announcing_a_huge_feefilter_cannot_raise_the_estimates_that_judge_counterparties() {
    init_logs();
    let peer = peer().await;
    peer.mine(20, &unique_script(95));
    // 2^40 sat per 1000 vB: about 1.1e9 sat/vB.
    peer.endpoint().switches.set_fee_filter(Some(1 << 40));
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        Arc::new(WatchSet::new()),
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let fees = harness.source.fee_estimator().clone();
    // The peer's feefilter is read: the node's own transactions are priced above it, within
    // the cap...
    wait_for(LONG, || {
        fees.get_est_sat_per_1000_weight(ConfirmationTarget::OutputSpendingFee) > 1_250
    })
    .await;
    // ...but what judges a counterparty stays where it was, and nothing passes the maximum.
    for target in [
        ConfirmationTarget::MinAllowedAnchorChannelRemoteFee,
        ConfirmationTarget::MinAllowedNonAnchorChannelRemoteFee,
        ConfirmationTarget::ChannelCloseMinimum,
    ] {
        assert_eq!(fees.get_est_sat_per_1000_weight(target), 253, "{target:?}");
    }
    for target in lightfilter::chain::fees::ALL_TARGETS {
        let estimate = fees.get_est_sat_per_1000_weight(target);
        assert!(
            estimate <= lightfilter::chain::fees::MAX_FEE_RATE_SAT_PER_KW,
            "{target:?} at {estimate} sat/kw"
        );
    }
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fee_overrides_win_and_nothing_panics_without_peers() {
    init_logs();
    // Nothing listens on this port: the engine keeps failing to connect and restarting.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mut config = lightfilter::chain::ChainConfig::new(bitcoin::Network::Regtest, dir.path());
    config.peers = vec![closed.into()];
    config.only_peers = true;
    config
        .fee_overrides
        .set(ConfirmationTarget::UrgentOnChainSweep, 12_345);
    let source = lightfilter::chain::ChainSource::start(
        config,
        Arc::new(WatchSet::new()),
        Arc::new(lightfilter::chain::ChainListener::new()),
    )
    .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    let fees = source.fee_estimator();
    assert_eq!(
        fees.get_est_sat_per_1000_weight(ConfirmationTarget::UrgentOnChainSweep),
        12_345
    );
    assert_eq!(
        fees.get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee),
        lightfilter::chain::fees::fallback(ConfirmationTarget::NonAnchorChannelFee)
    );
    let status = source.status().await;
    assert_eq!(status.peers, 0);
    assert!(!status.synced);
    source.shutdown();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_engine_is_restarted_when_its_only_peer_drops() {
    init_logs();
    let peer = peer().await;
    peer.mine(50, &unique_script(110));
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        Arc::new(WatchSet::new()),
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let restarts = harness.source.engine().restarts();

    peer.disconnect_all();
    wait_for(LONG, || harness.source.engine().restarts() > restarts).await;
    peer.mine(5, &unique_script(111));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert_eq!(recorder.tip().height, 55);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_long_sync_the_engine_restarts_near_the_tip_to_release_its_headers() {
    init_logs();
    let peer = peer().await;
    peer.mine(400, &unique_script(120));
    // Mature the faucet's coins now, so paying later adds a single block.
    peer.fund(
        &unique_script(123),
        Amount::from_sat(30_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("faucet pays");
    peer.mine(1, &unique_script(120));
    // The listener stands on block 1, above the engine's first start point (genesis), so
    // the engine serves it without a restart whichever of the two starts first: an engine
    // already anchored at the listener's own block would be restarted one block lower, which
    // would count as a restart when the machine is slow enough for the engine to start first.
    let recorder = Recorder::new(lightning::chain::BestBlock::new(
        peer.block_at(1).unwrap().block_hash(),
        1,
    ));
    let watched = unique_script(121);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start_with(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        watch,
        |config| config.compact_after_headers = 300,
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    let engine = harness.source.engine();
    wait_for(LONG, || engine.compactions() == 1).await;
    assert_eq!(
        engine.restarts(),
        0,
        "a compaction is not a failure restart"
    );

    // The restarted engine (from the stored chain, 144 blocks below the tip) keeps following.
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(30_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
    let synced_height = recorder.tip().height;
    peer.mine(5, &unique_script(122));
    harness.wait_for_tip(tip_hash(&peer), LONG).await;
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    assert_eq!(recorder.tip().height, synced_height + 5);
    assert_eq!(
        engine.compactions(),
        1,
        "a short run is not compacted again"
    );
    harness.stop().await;
}

/// A block that takes 25 s to arrive (a peer behind a slow link) with the response timeout of
/// the public networks: it is delivered from the first request, and the peer is kept.
async fn deliver_trickled_block(response_timeout: Duration) -> (bool, u64, u64) {
    init_logs();
    let peer = peer().await;
    let miner = unique_script(70);
    let watched = unique_script(71);
    peer.mine(5, &miner);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start_with(
        dir.path(),
        &[peer.addr()],
        recorder.clone(),
        watch,
        |config| {
            config.response_timeout = response_timeout;
        },
    )
    .await;
    harness.wait_for_tip(tip_hash(&peer), LONG).await;

    peer.endpoint()
        .switches
        .set_block_trickle(Some(Duration::from_secs(25)));
    let paying = peer.mine(1, &watched)[0];
    let coinbase = peer.block(&paying).expect("block").txdata[0].compute_txid();
    let delivered = tokio::time::timeout(Duration::from_secs(90), async {
        while !recorder.is_confirmed(&coinbase) {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    })
    .await
    .is_ok();
    let timeouts = harness.source.engine().peer_timeouts();
    let refetches = harness.source.download_counts().refetches;
    harness.stop().await;
    (delivered, timeouts, refetches)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_trickled_over_25_seconds_is_delivered_and_the_peer_kept() {
    let public = lightfilter::chain::ChainConfig::new(bitcoin::Network::Bitcoin, "unused");
    let (delivered, timeouts, refetches) = deliver_trickled_block(public.response_timeout).await;
    assert!(delivered, "the slow block reached the listener");
    assert_eq!(timeouts, 0, "no peer was dropped for being slow");
    assert_eq!(refetches, 0, "the block was not requested again");
}

/// A transaction that reached the peer's mempool from elsewhere before the node broadcast it
/// (a channel's counterparty hands a cooperative close to its own Bitcoin node by RPC): the peer
/// never asks the node for it, and it counts as propagated once the peer announces it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_the_peer_had_first_counts_as_announced_by_it() {
    init_logs();
    let peer = peer().await;
    let dir = tempfile::tempdir().unwrap();
    let (harness, tx) = start_with_a_spend_to_broadcast(&peer, 160, dir.path()).await;
    let txid = tx.compute_txid();
    let links = harness.source.links().clone();
    wait_for(LONG, || !links.open_links().is_empty()).await;

    peer.send_tx(&tx).expect("the peer takes the transaction");
    let broadcaster = harness.source.broadcaster().clone();
    broadcaster.broadcast(std::slice::from_ref(&tx));
    let mut seen = None;
    wait_for(LONG, || {
        seen = broadcaster
            .status(&txid)
            .map(|status| status.state)
            .filter(|state| !matches!(state, PeerState::Waiting { .. }));
        seen.is_some()
    })
    .await;
    assert_eq!(
        seen,
        Some(PeerState::Announced {
            by: peer.addr().into()
        }),
        "announced back by the peer, which never asked for it"
    );
    assert_eq!(
        peer.stats().txs_received,
        0,
        "the peer never asked the node for it"
    );
    harness.stop().await;
}

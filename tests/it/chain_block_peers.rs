//! Which peer a block is fetched from: a block more than 288 deep goes to a peer that keeps
//! every block, never to a pruned one (which would drop the connection, as Bitcoin Core does),
//! and a peer answering `notfound` does not hold the download until it times out. In both
//! tests the compact-filter engine's own peer is the unhelpful one (it takes configured peers
//! last first).

use crate::common;

use common::chain_harness::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, FeeRate, Txid};
use lightfilter::chain::WatchSet;
use lightfilter::regtest::RegtestPeer;

const LONG: Duration = Duration::from_secs(120);

/// A peer with a chain where block 102 pays a watched script and `after` blocks follow;
/// returns the peer, the watch set and the payment.
async fn chain_paying_at_102(after: u32) -> (RegtestPeer, Arc<WatchSet>, Txid) {
    common::init_logging();
    let peer = RegtestPeer::start("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .unwrap();
    let miner = unique_script(7_200);
    let watched = unique_script(7_201);
    peer.mine(101, &peer.faucet_script());
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(80_000),
            FeeRate::from_sat_per_vb_u32(2),
        )
        .unwrap();
    peer.mine(1 + after, &miner);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    (peer, watch, payment.compute_txid())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_300_deep_is_fetched_from_a_peer_that_keeps_it_not_from_a_pruned_one() {
    let (peer, watch, payment) = chain_paying_at_102(300).await;
    let pruned = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    pruned.switches.set_pruned(true);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(
        dir.path(),
        &[peer.addr(), pruned.addr],
        recorder.clone(),
        watch,
    )
    .await;
    harness.wait_for_tip(peer.tip().1, LONG).await;
    assert!(recorder.is_confirmed(&payment));
    assert_eq!(
        pruned.switches.counts().deep_block_requests(),
        0,
        "the pruned peer was asked for the old block"
    );
    assert!(peer.endpoint().switches.counts().blocks_served() >= 1);
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_answering_notfound_does_not_hold_the_block_download() {
    let (peer, watch, payment) = chain_paying_at_102(5).await;
    let withholding = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    withholding.switches.set_withhold_blocks(true);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(
        dir.path(),
        &[peer.addr(), withholding.addr],
        recorder.clone(),
        watch,
    )
    .await;
    harness.wait_for_tip(peer.tip().1, LONG).await;
    assert!(recorder.is_confirmed(&payment));
    let engine = harness.source.engine();
    assert_eq!(
        engine.peer_timeouts(),
        0,
        "no peer was dropped for not delivering in time"
    );
    assert_eq!(
        harness.source.download_counts().refetches,
        0,
        "the block was not requested again after a wait"
    );
    harness.stop().await;
}

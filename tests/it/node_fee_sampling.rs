//! How often a node downloads a block of its own to sample fees: rarely while idle, every
//! block while fee-sensitive work (here, a transaction of its own) is pending, and the tip at
//! once before it builds a transaction when its samples are stale.

use crate::common;

use common::node_harness as harness;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::Amount;
use harness::*;
use lightfilter::node::{Node, SendAmount};
use lightfilter::regtest::RegtestPeer;

/// Blocks between samples while idle, as configured for the test.
const IDLE_INTERVAL: u32 = 10;

/// Blocks downloaded as fee samples so far.
fn fee_downloads(node: &Node) -> u64 {
    node.chain().download_counts().blocks_for_fees
}

/// Mines one block (holding the mempool unless `empty`) and waits until `node` processed it
/// and its fee sampler had the chance to look at it.
async fn one_block(peer: &RegtestPeer, node: &Arc<Node>, empty: bool) -> u32 {
    if empty {
        peer.mine_with(Vec::new(), &miner()).expect("empty block");
    } else {
        mine(peer, 1).await;
    }
    synced(peer, node).await;
    // A sample of the tip, when one is due, follows within moments on regtest.
    tokio::time::sleep(Duration::from_millis(300)).await;
    peer.tip().0
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_node_samples_rarely_and_every_block_while_its_own_transaction_is_unconfirmed() {
    init_logs();
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node_configured(
        &peer,
        dir.path(),
        &format!("fee_sample_interval = {IDLE_INTERVAL}\n"),
    )
    .await;
    fund(&peer, &node, 500_000).await;
    synced(&peer, &node).await;
    let fees = node.chain().fee_estimator().clone();
    assert_eq!(fees.idle_interval(), IDLE_INTERVAL);
    assert!(
        !fees.fee_sensitive(),
        "nothing pending after the funding confirmed"
    );

    // Idle: about one sample per interval.
    let before = fee_downloads(&node);
    for _ in 0..3 * IDLE_INTERVAL {
        one_block(&peer, &node, false).await;
    }
    let idle = fee_downloads(&node) - before;
    assert!(
        (2..=4).contains(&idle),
        "{idle} fee samples downloaded over {} idle blocks",
        3 * IDLE_INTERVAL
    );

    // Stale samples are refreshed before a transaction of the node's own is built.
    let mut tip = peer.tip().0;
    for _ in 0..IDLE_INTERVAL {
        if !fees.is_fresh(tip) {
            break;
        }
        tip = one_block(&peer, &node, false).await;
    }
    assert!(!fees.is_fresh(tip), "samples went stale while idle");
    node.freshen_fee_estimates().await;
    assert!(
        fees.is_fresh(tip),
        "the tip was sampled before building a transaction"
    );
    assert!(fees.sampled_heights().contains(&tip));

    // A transaction of its own is unconfirmed: every block is sampled.
    let elsewhere = script_of(&node.new_address().expect("address"));
    let address = bitcoin::Address::from_script(&elsewhere, bitcoin::Network::Regtest)
        .expect("address")
        .to_string();
    let txid = node
        .send_onchain(
            &address,
            SendAmount::Exact(Amount::from_sat(20_000)),
            None,
            None,
            false,
        )
        .expect("send")
        .txid;
    wait_for(LIMIT, || {
        let pending = fees.fee_sensitive();
        async move { pending }
    })
    .await;
    for _ in 0..4 {
        let tip = one_block(&peer, &node, true).await;
        wait_for(LIMIT, || {
            let sampled = fees.sampled_heights().contains(&tip);
            async move { sampled }
        })
        .await;
    }
    assert!(peer.in_mempool(&txid), "the send stayed unconfirmed");

    // Confirmed and idle again: rare samples.
    one_block(&peer, &node, false).await;
    assert!(!peer.in_mempool(&txid));
    wait_for(LIMIT, || {
        let pending = fees.fee_sensitive();
        async move { !pending }
    })
    .await;
    let before = fee_downloads(&node);
    for _ in 0..IDLE_INTERVAL {
        one_block(&peer, &node, false).await;
    }
    let idle = fee_downloads(&node) - before;
    assert!(
        idle <= 2,
        "{idle} fee samples over {IDLE_INTERVAL} idle blocks"
    );
    node.stop().await;
}

//! Whole-node tests of multi-hop payments: a route found from gossip over public channels,
//! an HTLC resolved on chain while the middle node is offline, and a node that asks no peer
//! for gossip.

use crate::common;

use common::node_harness as harness;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::{sha256, Hash};
use harness::*;
use lightfilter::node::{Node, PaymentDirection, PaymentStatus};
use lightfilter::regtest::RegtestPeer;

async fn three_funded_nodes(
    peer: &RegtestPeer,
    dirs: &[tempfile::TempDir; 3],
) -> (Arc<Node>, Arc<Node>, Arc<Node>) {
    let a = start_node(peer, dirs[0].path()).await;
    let b = start_node(peer, dirs[1].path()).await;
    let c = start_node(peer, dirs[2].path()).await;
    fund(peer, &a, 1_000_000).await;
    fund(peer, &b, 1_000_000).await;
    fund(peer, &c, 200_000).await;
    for node in [&a, &b, &c] {
        synced(peer, node).await;
    }
    (a, b, c)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payment_is_routed_over_public_channels_found_in_gossip() {
    init_logs();
    let peer = start_peer().await;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (a, b, c) = three_funded_nodes(&peer, &dirs).await;
    open_channel(&peer, &a, &b, 500_000, 0, true).await;
    open_channel(&peer, &b, &c, 500_000, 0, true).await;
    // A learns the B–C channel only from gossip.
    wait_for(LIMIT, || async { a.info().await.graph_channels >= 2 }).await;

    let invoice = c.create_invoice(Some(30_000_000), "routed", 600).unwrap();
    let paid = a.pay(&invoice.bolt11, None, LIMIT).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    assert!(paid.fee_msat.unwrap_or(0) > 0, "B charged a routing fee");
    wait_for(LIMIT, || async {
        c.balances().unwrap().lightning_msat >= 30_000_000
    })
    .await;
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_middle_node_learns_the_preimage_from_the_chain_and_claims_upstream() {
    init_logs();
    let peer = start_peer().await;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let (a, b, c) = three_funded_nodes(&peer, &dirs).await;
    open_channel(&peer, &a, &b, 500_000, 0, true).await;
    let bc = open_channel(&peer, &b, &c, 500_000, 0, true).await;
    wait_for(LIMIT, || async { a.info().await.graph_channels >= 2 }).await;

    // C holds the incoming HTLC: only the test knows the preimage for now.
    let preimage = [42u8; 32];
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    let invoice = c
        .create_hold_invoice(Some(40_000_000), "held", 600, hash)
        .unwrap();
    let pending = a
        .pay(&invoice.bolt11, None, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(pending.status, PaymentStatus::Pending);
    wait_for(LIMIT, || async {
        c.payments().iter().any(|p| {
            p.direction == PaymentDirection::Inbound
                && p.payment_hash == invoice.payment_hash
                && p.received_msat == Some(40_000_000)
        })
    })
    .await;

    // B goes offline with the HTLC in flight on both of its channels.
    b.stop().await;
    drop(b);
    // C claims (it cannot tell B), then closes the channel and claims the HTLC on chain,
    // revealing the preimage in the witness of its HTLC-success transaction.
    c.claim_held_payment(preimage).unwrap();
    c.close_channel(&bc.channel_id, true).await.unwrap();
    // Mine until C's HTLC-success transaction, with the preimage in its witness, confirms.
    let closed_at = peer.tip().0;
    let mut revealed_at = None;
    for _ in 0..120 {
        mine(&peer, 1).await;
        let height = peer.tip().0;
        let block = peer.block_at(height).unwrap();
        let reveals = block.txdata.iter().any(|tx| {
            tx.input
                .iter()
                .any(|input| input.witness.iter().any(|item| item == preimage))
        });
        if reveals {
            revealed_at = Some(height);
            break;
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    let revealed_at = revealed_at.expect("C claimed the HTLC on chain with the preimage");
    assert!(revealed_at > closed_at);
    assert!(
        a.payments()
            .iter()
            .any(|p| p.payment_hash == invoice.payment_hash && p.status == PaymentStatus::Pending),
        "A's payment is still in flight while B is away"
    );

    // B comes back well before A's HTLC expires, finds the preimage on chain and claims from A.
    let b = start_node(&peer, dirs[1].path()).await;
    let a_record = wait_for_value(LIMIT, || async {
        a.payments().into_iter().find(|p| {
            p.payment_hash == invoice.payment_hash && p.status == PaymentStatus::Succeeded
        })
    })
    .await;
    assert!(
        peer.tip().0 < revealed_at + 20,
        "well before A's HTLC could expire"
    );
    assert_eq!(a_record.preimage.as_deref(), Some(&*"2a".repeat(32)));
    // The A–B channel stayed open: the claim happened off chain.
    assert!(a
        .channels()
        .iter()
        .any(|ch| ch.counterparty_node_id == b.node_id()));
    for node in [a, b, c] {
        node.stop().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_asking_no_peer_for_gossip_holds_only_its_own_channels_and_pays_its_peer() {
    init_logs();
    let peer = start_peer().await;
    let dirs = [(); 3].map(|_| tempfile::tempdir().unwrap());
    let a = start_node(&peer, dirs[0].path()).await;
    let b = start_node(&peer, dirs[1].path()).await;
    let c = start_node_configured(&peer, dirs[2].path(), "gossip_peers = 0\n").await;
    fund(&peer, &a, 1_000_000).await;
    fund(&peer, &c, 1_000_000).await;
    for node in [&a, &b, &c] {
        synced(&peer, node).await;
    }
    open_channel(&peer, &a, &b, 500_000, 0, true).await;
    open_channel(&peer, &c, &b, 500_000, 0, true).await;
    // B forwards gossip to the peers that asked for it: A learns the C–B channel from B.
    wait_for(LIMIT, || async { a.info().await.graph_channels >= 2 }).await;
    wait_for(LIMIT, || async { c.info().await.graph_channels >= 1 }).await;

    let invoice = b.create_invoice(Some(20_000_000), "no graph", 600).unwrap();
    let paid = c.pay(&invoice.bolt11, None, LIMIT).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    // By now B has had every chance to send C the A–B channel, had C asked.
    let info = c.info().await;
    assert_eq!(
        info.graph_channels, 1,
        "C holds its own channel only, having asked no peer for gossip"
    );
    for node in [a, b, c] {
        node.stop().await;
    }
}

//! Reorganizations: a bip157 client sees them as reorgs (short ones announced with headers,
//! deep ones with an inv), invalidated transactions return to the mempool or are evicted when
//! no longer valid, and invalidated blocks are no longer served.

use crate::common;

use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::{Amount, BlockHash, FeeRate, OutPoint};
use common::client::TestClient;
use common::keys::{pay, spend_p2wpkh, TestKey};
use common::raw::RawPeer;
use common::start_peer;
use lightfilter::regtest::RegtestPeer;

fn active_hashes(
    peer: &RegtestPeer,
    heights: std::ops::RangeInclusive<u32>,
) -> Vec<(u32, BlockHash)> {
    heights
        .map(|height| (height, peer.block_at(height).unwrap().block_hash()))
        .collect()
}

async fn reorg_is_seen_as_reorg(depth: u32, new_blocks: u32) {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    let rival = TestKey::new("rival miner").script();
    peer.mine(110, &miner);
    let client = TestClient::start(&[peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;
    let old_branch = active_hashes(&peer, 110 - depth + 1..=110);

    let new_hashes = peer.reorg(depth, new_blocks, &rival);
    assert_eq!(new_hashes.len(), new_blocks as usize);
    let new_tip = peer.tip();
    assert_eq!(new_tip.0, 110 - depth + new_blocks);
    let new_branch = active_hashes(&peer, 110 - depth + 1..=new_tip.0);

    let log = client.wait_synced_to(new_tip).await;
    assert_eq!(log.reorgs.len(), 1, "one reorganization: {:?}", log.reorgs);
    let (mut accepted, mut disconnected) = log.reorgs[0].clone();
    accepted.sort();
    disconnected.sort();
    assert_eq!(disconnected, old_branch);
    // The client switches once the new branch has more work; blocks after that connect.
    let switched_at = 110 - depth + accepted.len() as u32;
    assert_eq!(accepted, new_branch[..accepted.len()].to_vec());
    for (height, hash) in &new_branch[accepted.len()..] {
        assert!(
            log.connected.contains(&(*height, *hash)),
            "{height} connected after {switched_at}"
        );
    }
    for (_, hash) in &new_branch {
        assert_eq!(
            log.filter_of(hash).unwrap().filter.content,
            peer.filter(hash).unwrap().content
        );
    }
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_short_reorg_announced_with_headers_is_seen_as_a_reorg() {
    reorg_is_seen_as_reorg(3, 4).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deep_reorg_announced_with_an_inv_is_seen_as_a_reorg() {
    reorg_is_seen_as_reorg(12, 14).await;
}

#[tokio::test]
async fn invalidated_transactions_return_to_the_mempool_and_are_mined_again() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob").script();
    let funding = peer
        .fund(
            &alice.script(),
            Amount::from_sat(100_000),
            FeeRate::from_sat_per_vb(1).unwrap(),
        )
        .unwrap();
    peer.mine(1, &bob);
    let spend = spend_p2wpkh(
        &alice,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(100_000),
        vec![pay(&bob, 99_000)],
    );
    let txid = peer.send_tx(&spend).unwrap();
    let old_block = peer.mine(1, &bob)[0];
    assert_eq!(peer.confirmations(&txid), Some(1));

    let height = peer.tip().0;
    assert_eq!(peer.invalidate(1), vec![old_block]);
    assert_eq!(peer.tip().0, height - 1);
    assert_eq!(peer.confirmations(&txid), None);
    assert!(peer.in_mempool(&txid));
    assert!(peer.block(&old_block).is_some(), "stale blocks stay known");
    assert!(peer.filter(&old_block).is_some());
    assert!(peer.block_at(height).is_none());
    assert_eq!(peer.utxo(&OutPoint::new(txid, 0)), None);

    let new_blocks = peer.mine(2, &alice.script());
    assert_ne!(new_blocks[0], old_block);
    assert_eq!(peer.confirmations(&txid), Some(2));
    assert!(peer.block(&new_blocks[0]).unwrap().txdata.contains(&spend));
}

#[tokio::test]
async fn transactions_invalid_after_invalidation_are_evicted() {
    let peer = start_peer().await;
    let owner = TestKey::new("coinbase owner");
    let other = TestKey::new("other");
    let coinbase_block = peer.mine(1, &owner.script())[0];
    let coinbase = peer.block(&coinbase_block).unwrap().txdata[0].clone();
    peer.mine(99, &other.script());
    let spend = spend_p2wpkh(
        &owner,
        OutPoint::new(coinbase.compute_txid(), 0),
        coinbase.output[0].value,
        vec![pay(&other.script(), 4_999_000_000)],
    );
    peer.send_tx(&spend).unwrap();
    peer.mine(1, &other.script());
    assert_eq!(peer.confirmations(&spend.compute_txid()), Some(1));
    let child = spend_p2wpkh(
        &other,
        OutPoint::new(spend.compute_txid(), 0),
        Amount::from_sat(4_999_000_000),
        vec![pay(&owner.script(), 4_998_000_000)],
    );
    peer.send_tx(&child).unwrap();

    // Back to height 99: the coinbase from height 1 is immature for block 100 again.
    peer.invalidate(2);
    assert_eq!(peer.tip().0, 99);
    assert!(!peer.in_mempool(&spend.compute_txid()));
    assert!(!peer.in_mempool(&child.compute_txid()));
    assert!(peer.mempool().is_empty());
    assert_eq!(peer.confirmations(&spend.compute_txid()), None);
    assert!(peer
        .utxo(&OutPoint::new(coinbase.compute_txid(), 0))
        .is_some());
}

#[tokio::test]
async fn invalidated_blocks_are_not_served() {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    peer.mine(20, &miner);
    let stale = peer.invalidate(2);
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(
        stale[0],
    )]))
    .await;
    let replies = raw.sync().await;
    assert!(
        replies.contains(&NetworkMessage::NotFound(vec![Inventory::WitnessBlock(
            stale[0]
        )])),
        "{replies:?}"
    );
    // A locator at the stale tip gets nothing: Core's answer when it has no better chain.
    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![stale[0]],
        BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
    )))
    .await;
    let replies = raw.sync().await;
    assert!(
        replies.contains(&NetworkMessage::Headers(vec![])),
        "{replies:?}"
    );
    // Once the new branch is longer, the same locator gets the new branch from the fork.
    let new_branch = peer.mine(3, &miner);
    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![stale[0], peer.block_at(10).unwrap().block_hash()],
        BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
    )))
    .await;
    let headers = raw
        .recv_until(|message| match message {
            NetworkMessage::Headers(headers) if !headers.is_empty() => Some(headers.clone()),
            _ => None,
        })
        .await;
    let hashes: Vec<BlockHash> = headers.iter().map(|header| header.block_hash()).collect();
    assert_eq!(
        hashes.len(),
        11,
        "headers 11 to 21 after the locator's block 10"
    );
    assert_eq!(&hashes[8..], &new_branch[..]);
}

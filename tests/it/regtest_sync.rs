//! A real bip157 client syncs from the embedded regtest peer: headers and filters to the tip,
//! filters that match the scripts a block pays and spends, verified witness blocks, and new
//! blocks as they are mined. Filters and filter headers are also recomputed here from the raw
//! blocks, independently of the peer.

use crate::common;

use std::collections::HashMap;

use bitcoin::bip158::BlockFilter;
use bitcoin::hashes::Hash;
use bitcoin::{Amount, FeeRate, FilterHeader, OutPoint, ScriptBuf};
use common::client::TestClient;
use common::keys::{pay, spend_p2wpkh, unsigned_tx, TestKey};
use common::start_peer;

fn fee_rate(sat_per_vb: u64) -> FeeRate {
    FeeRate::from_sat_per_vb(sat_per_vb).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bip157_client_syncs_headers_and_filters_and_fetches_verified_witness_blocks() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let elsewhere = TestKey::new("elsewhere").script();
    let miner = TestKey::new("miner").script();
    // More than one batch of headers (2000), filter headers (2000) and filters (1000).
    peer.mine(2_040, &peer.faucet_script());
    let funding = peer
        .fund(&watched.script(), Amount::from_sat(100_000), fee_rate(2))
        .unwrap();
    let paying_block = peer.mine(1, &miner)[0];
    peer.mine(5, &miner);
    let spend = spend_p2wpkh(
        &watched,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(100_000),
        vec![pay(&elsewhere, 99_000)],
    );
    peer.send_tx(&spend).unwrap();
    let spending_block = peer.mine(1, &miner)[0];
    peer.mine(10, &miner);
    let tip = peer.tip();
    assert_eq!(tip.0, 2_057);

    let client = TestClient::start(&[peer.addr()], 1);
    let log = client.wait_synced_to(tip).await;

    for height in 1..=tip.0 {
        let hash = peer.block_at(height).unwrap().block_hash();
        let seen = log
            .filter_of(&hash)
            .unwrap_or_else(|| panic!("no verified filter for height {height}"));
        assert_eq!(seen.height, height);
        assert_eq!(seen.filter.content, peer.filter(&hash).unwrap().content);
    }
    let watched_script = watched.script();
    assert!(log
        .filter_of(&paying_block)
        .unwrap()
        .matches(&watched_script));
    assert!(
        log.filter_of(&spending_block)
            .unwrap()
            .matches(&watched_script),
        "a block spending the watched output matches through the spent script"
    );
    let quiet_block = peer.block_at(tip.0).unwrap().block_hash();
    assert!(!log
        .filter_of(&quiet_block)
        .unwrap()
        .matches(&watched_script));

    let fetched = client.requester.get_block(paying_block).await.unwrap();
    assert_eq!(fetched.height, 2_041);
    let block = fetched.block;
    assert!(block.check_merkle_root());
    assert!(block.check_witness_commitment());
    assert_eq!(
        block.txdata[0].input[0].witness.len(),
        1,
        "the coinbase carries its witness reserved value"
    );
    let payment = block
        .txdata
        .iter()
        .find(|tx| tx.compute_txid() == funding.compute_txid())
        .expect("the funding transaction is in the block");
    assert!(!payment.input[0].witness.is_empty());
    assert!(peer.stats().blocks_served.contains(&(paying_block, true)));
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn new_blocks_reach_a_synced_client_whether_announced_by_headers_or_inv() {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    peer.mine(10, &miner);
    let client = TestClient::start(&[peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;

    // One block: announced with a `headers` message.
    let one = peer.mine(1, &miner)[0];
    let log = client.wait_synced_to(peer.tip()).await;
    assert!(log.connected.contains(&(11, one)));
    assert!(log.filter_of(&one).is_some());

    // Twenty blocks: more than Core announces with headers, so an `inv` of the tip.
    let twenty = peer.mine(20, &miner);
    let log = client.wait_synced_to(peer.tip()).await;
    for (offset, hash) in twenty.iter().enumerate() {
        assert!(log.connected.contains(&(12 + offset as u32, *hash)));
        assert!(log.filter_of(hash).is_some());
    }
    assert!(log.reorgs.is_empty());
    client.stop().await;
}

/// Recomputes every filter from the raw blocks with prevout scripts looked up here, and the
/// filter-header chain from those filters, and compares with what the peer stores and serves.
#[tokio::test]
async fn filters_and_filter_headers_follow_bip158_and_bip157() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    let miner = TestKey::new("miner").script();
    let funding = peer
        .fund(&alice.script(), Amount::from_sat(500_000), fee_rate(1))
        .unwrap();
    peer.mine(1, &miner);
    // Same-block chain: alice pays bob, bob pays alice's taproot output and an OP_RETURN.
    let first = spend_p2wpkh(
        &alice,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(500_000),
        vec![pay(&bob.script(), 400_000)],
    );
    let mut second = unsigned_tx(
        &[OutPoint::new(first.compute_txid(), 0)],
        vec![
            pay(&alice.taproot_script(), 300_000),
            pay(&ScriptBuf::new_op_return([1u8, 2, 3]), 0),
        ],
    );
    bob.sign_p2wpkh(&mut second, 0, Amount::from_sat(400_000));
    let taproot_outpoint = OutPoint::new(second.compute_txid(), 0);
    peer.mine_with(vec![first, second], &miner).unwrap();
    let mut third = unsigned_tx(&[taproot_outpoint], vec![pay(&bob.script(), 290_000)]);
    alice.sign_p2tr(&mut third, 0, &[pay(&alice.taproot_script(), 300_000)]);
    peer.mine_with(vec![third], &miner).unwrap();
    peer.mine(3, &miner);

    let mut scripts: HashMap<OutPoint, ScriptBuf> = HashMap::new();
    let mut previous_header = FilterHeader::all_zeros();
    for height in 0..=peer.tip().0 {
        let block = peer.block_at(height).unwrap();
        for tx in &block.txdata {
            for (vout, output) in tx.output.iter().enumerate() {
                scripts.insert(
                    OutPoint::new(tx.compute_txid(), vout as u32),
                    output.script_pubkey.clone(),
                );
            }
        }
        let expected = BlockFilter::new_script_filter(&block, |outpoint| {
            scripts
                .get(outpoint)
                .cloned()
                .ok_or(bitcoin::bip158::Error::UtxoMissing(*outpoint))
        })
        .unwrap();
        let hash = block.block_hash();
        assert_eq!(
            peer.filter(&hash).unwrap().content,
            expected.content,
            "filter of block {height}"
        );
        let header = expected.filter_header(&previous_header);
        assert_eq!(
            peer.filter_header(&hash).unwrap(),
            header,
            "filter header of block {height}"
        );
        previous_header = header;
    }
}

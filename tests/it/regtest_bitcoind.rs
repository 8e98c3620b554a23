//! Bitcoin Core accepts the embedded peer's chain: with `BITCOIND_EXE` set, a
//! `bitcoind -regtest -blockfilterindex=1 -peerblockfilters=1` connected only to the peer syncs
//! blocks holding real transactions, follows a reorg, relays transactions both ways, and its
//! filters and filter headers (`getblockfilter`) equal the peer's. Without it the test says it
//! skipped.

use crate::common;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, FeeRate, OutPoint, ScriptBuf, Transaction};
use common::bitcoind::{base64, bitcoind_exe_or_skip, Bitcoind};
use common::keys::{pay, spend_p2wpkh, unsigned_tx, TestKey};
use common::{start_peer, wait_for};
use lightfilter::regtest::RegtestPeer;
use serde_json::{json, Value};

/// Core may take a while to start, index filters and relay (its relay delays are random).
const CORE_TIMEOUT: Duration = Duration::from_secs(180);

#[test]
fn base64_matches_rfc_4648_vectors() {
    assert_eq!(base64(b""), "");
    assert_eq!(base64(b"f"), "Zg==");
    assert_eq!(base64(b"fo"), "Zm8=");
    assert_eq!(base64(b"foo"), "Zm9v");
    assert_eq!(base64(b"foob"), "Zm9vYg==");
    assert_eq!(base64(b"fooba"), "Zm9vYmE=");
    assert_eq!(base64(b"foobar"), "Zm9vYmFy");
}

fn fee_rate(sat_per_vb: u64) -> FeeRate {
    FeeRate::from_sat_per_vb(sat_per_vb).unwrap()
}

/// A chain with many kinds of transactions: P2WPKH, P2TR key path, P2PKH and OP_RETURN
/// outputs, spends within one block, several transactions per block.
fn build_chain(peer: &RegtestPeer) {
    let miner = TestKey::new("miner").script();
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    peer.mine(101, &peer.faucet_script());
    let mut funded = Vec::new();
    for round in 0..10u64 {
        let to_alice = peer
            .fund(
                &alice.script(),
                Amount::from_sat(1_000_000 + round),
                fee_rate(1 + round),
            )
            .unwrap();
        let to_taproot = peer
            .fund(
                &bob.taproot_script(),
                Amount::from_sat(500_000 + round),
                fee_rate(2),
            )
            .unwrap();
        let legacy = ScriptBuf::new_p2pkh(&bitcoin::PubkeyHash::from_byte_array([round as u8; 20]));
        peer.fund(&legacy, Amount::from_sat(30_000), fee_rate(3))
            .unwrap();
        peer.mine(1, &miner);
        funded.push((to_alice, to_taproot));
    }
    for (round, (to_alice, to_taproot)) in funded.iter().enumerate() {
        let alice_value = Amount::from_sat(1_000_000 + round as u64);
        let first = spend_p2wpkh(
            &alice,
            OutPoint::new(to_alice.compute_txid(), 0),
            alice_value,
            vec![
                pay(&bob.script(), 900_000),
                pay(&ScriptBuf::new_op_return([round as u8; 8]), 0),
            ],
        );
        let second = spend_p2wpkh(
            &bob,
            OutPoint::new(first.compute_txid(), 0),
            Amount::from_sat(900_000),
            vec![pay(&alice.script(), 800_000)],
        );
        let taproot_value = 500_000 + round as u64;
        let mut third = unsigned_tx(
            &[OutPoint::new(to_taproot.compute_txid(), 0)],
            vec![pay(&alice.taproot_script(), taproot_value - 10_000)],
        );
        bob.sign_p2tr(&mut third, 0, &[pay(&bob.taproot_script(), taproot_value)]);
        peer.mine_with(vec![first, second, third], &miner).unwrap();
        peer.mine(1, &miner);
    }
    peer.mine(5, &miner);
}

/// The chain offered to Core is valid for the peer itself (so a Core failure is about Core's
/// view, not a broken setup): every block mined, with several transactions in the spending ones.
#[tokio::test]
async fn the_chain_offered_to_core_holds_varied_transactions() {
    let peer = start_peer().await;
    build_chain(&peer);
    assert_eq!(peer.tip().0, 101 + 10 + 20 + 5);
    let busiest = (0..=peer.tip().0)
        .map(|height| peer.block_at(height).unwrap().txdata.len())
        .max()
        .unwrap();
    assert!(
        busiest >= 4,
        "some blocks hold a coinbase and three transactions"
    );
    assert!(peer.mempool().is_empty());
}

async fn rpc(core: &Arc<Bitcoind>, method: &'static str, params: Value) -> Result<Value, String> {
    let core = Arc::clone(core);
    tokio::task::spawn_blocking(move || core.rpc(method, params))
        .await
        .expect("RPC thread")
}

async fn wait_rpc(
    core: &Arc<Bitcoind>,
    what: &str,
    condition: impl Fn(&Bitcoind) -> bool + Send + Sync + 'static,
) {
    let condition = Arc::new(condition);
    let deadline = tokio::time::Instant::now() + CORE_TIMEOUT;
    loop {
        let core_now = Arc::clone(core);
        let check = Arc::clone(&condition);
        if tokio::task::spawn_blocking(move || check(&core_now))
            .await
            .unwrap()
        {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "timed out waiting for Bitcoin Core: {what}\n--- debug.log ---\n{}",
            core.debug_log_tail()
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

async fn wait_core_tip(core: &Arc<Bitcoind>, peer: &RegtestPeer) {
    let tip = peer.tip().1.to_string();
    wait_rpc(core, &format!("best block {tip}"), move |core| {
        core.rpc("getbestblockhash", json!([])).ok() == Some(json!(tip))
    })
    .await;
}

/// Every active block agrees, filters and filter headers included; nothing is invalid.
async fn check_core_agrees(core: &Arc<Bitcoind>, peer: &RegtestPeer) {
    let (height, _) = peer.tip();
    wait_rpc(core, "the block filter index to catch up", move |core| {
        core.rpc("getindexinfo", json!(["basic block filter index"]))
            .ok()
            .is_some_and(|info| {
                let index = &info["basic block filter index"];
                index["synced"] == json!(true) && index["best_block_height"] == json!(height)
            })
    })
    .await;
    for h in 0..=height {
        let block = peer.block_at(h).unwrap();
        let hash = block.block_hash();
        let core_hash = rpc(core, "getblockhash", json!([h])).await.unwrap();
        assert_eq!(
            core_hash,
            json!(hash.to_string()),
            "block hash at height {h}"
        );
        let filter = rpc(core, "getblockfilter", json!([hash.to_string(), "basic"]))
            .await
            .unwrap();
        assert_eq!(
            filter["header"],
            json!(peer.filter_header(&hash).unwrap().to_string()),
            "filter header at height {h}"
        );
        assert_eq!(
            filter["filter"],
            json!(bitcoin::hex::DisplayHex::to_lower_hex_string(
                &peer.filter(&hash).unwrap().content[..]
            )),
            "filter at height {h}"
        );
    }
    let tips = rpc(core, "getchaintips", json!([])).await.unwrap();
    for tip in tips.as_array().unwrap() {
        assert_ne!(
            tip["status"],
            json!("invalid"),
            "Core rejected a block: {tip}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bitcoin_core_syncs_from_the_peer_and_agrees_on_every_filter_header() {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let peer = start_peer().await;
    build_chain(&peer);
    let core = Arc::new(Bitcoind::start(&exe, peer.addr()));
    wait_rpc(&core, "RPC to come up", |core| {
        core.rpc("getblockchaininfo", json!([])).is_ok()
    })
    .await;
    wait_core_tip(&core, &peer).await;
    check_core_agrees(&core, &peer).await;
    let info = rpc(&core, "getblockchaininfo", json!([])).await.unwrap();
    assert_eq!(info["chain"], json!("regtest"));
    assert_eq!(info["blocks"], json!(peer.tip().0));

    // A reorg: Core follows the longer branch.
    let miner = TestKey::new("miner").script();
    peer.reorg(3, 5, &miner);
    wait_core_tip(&core, &peer).await;
    check_core_agrees(&core, &peer).await;

    // A transaction from the peer's mempool reaches Core's and is then mined.
    let carol = TestKey::new("carol");
    let funding = peer
        .fund(&carol.script(), Amount::from_sat(250_000), fee_rate(2))
        .unwrap();
    let txid = funding.compute_txid().to_string();
    let wanted = txid.clone();
    wait_rpc(&core, "the transaction in Core's mempool", move |core| {
        core.rpc("getrawmempool", json!([]))
            .ok()
            .and_then(|pool| pool.as_array().cloned())
            .is_some_and(|pool| pool.contains(&json!(wanted)))
    })
    .await;
    peer.mine(1, &miner);
    wait_core_tip(&core, &peer).await;

    // A transaction sent to Core reaches the peer's mempool.
    let spend: Transaction = spend_p2wpkh(
        &carol,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(250_000),
        vec![pay(&miner, 249_000)],
    );
    let hex = bitcoin::consensus::encode::serialize_hex(&spend);
    rpc(&core, "sendrawtransaction", json!([hex]))
        .await
        .unwrap();
    assert!(
        wait_for(CORE_TIMEOUT, || peer.in_mempool(&spend.compute_txid())).await,
        "Core relays the transaction to the peer\n{}",
        core.debug_log_tail()
    );
    peer.mine(1, &miner);
    wait_core_tip(&core, &peer).await;
    check_core_agrees(&core, &peer).await;
    let pool = rpc(&core, "getrawmempool", json!([])).await.unwrap();
    assert_eq!(pool, json!([]));
}

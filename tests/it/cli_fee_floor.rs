//! One Bitcoin peer cannot set what the node pays: with two peers, one announcing 1,000 sat/vB
//! in `feefilter` (and refusing cheaper transactions, as Bitcoin Core with
//! `-minrelaytxfee=0.01` does) and one relaying at the usual 1 sat/vB, the estimates follow
//! recent blocks, a `send` without a rate pays an ordinary rate, is not refused, is reported
//! taken by a peer and reaches the other peer's mempool. Both peers are endpoints of the
//! embedded regtest peer.

use crate::common;

use std::str::FromStr;

use bitcoin::{Amount, FeeRate, Txid};
use common::cli::{regtest_script, wait_until, Chain, Daemon};

/// 1,000 sat/vB, in sat per 1000 vB as `feefilter` carries it.
const HIGH_FEEFILTER: i64 = 1_000_000;

#[test]
fn a_peer_announcing_a_high_feefilter_does_not_set_what_a_send_pays() {
    let chain = Chain::start();
    let high = chain.add_endpoint();
    high.switches.set_fee_filter(Some(HIGH_FEEFILTER));
    let alice = Daemon::start_with("alice", &chain, &["--bitcoin-peer", &high.addr.to_string()]);
    alice.wait_synced_to(chain.height());
    for _ in 0..2 {
        let address = alice.new_address();
        chain
            .peer
            .fund(
                &regtest_script(&address),
                Amount::from_sat(300_000),
                // What recent blocks pay: 2 sat/vB.
                FeeRate::from_sat_per_vb_u32(2),
            )
            .expect("the faucet pays");
    }
    chain.mine(1);
    wait_until("alice funded", || alice.confirmed_sat() == 600_000);

    // The estimates the node's own transactions and its channels use follow recent blocks,
    // not the one peer's 1,000 sat/vB.
    let rates = alice.json(&["feerates"]);
    for target in [
        "anchor_channel",
        "non_anchor_channel",
        "output_spending",
        "urgent_on_chain_sweep",
    ] {
        let estimate = rates["estimates"]
            .as_array()
            .unwrap()
            .iter()
            .find(|e| e["target"] == target)
            .unwrap_or_else(|| panic!("{target} in {rates}"));
        assert_ne!(estimate["source"], "peer_minimum", "{rates}");
        assert!(
            estimate["sat_per_kw"].as_u64().unwrap() < 25_000,
            "{target} below 100 sat/vB: {rates}"
        );
    }

    // A send without a rate pays an ordinary rate and reaches the peer that relays it.
    let to = alice.new_address();
    let sent = alice.json(&["send", &to, "100000"]);
    let txid = Txid::from_str(sent["txid"].as_str().expect("a txid")).unwrap();
    assert_eq!(sent["propagated"], true, "{sent}");
    wait_until("the send in the relaying peer's mempool", || {
        chain.peer.in_mempool(&txid)
    });
    let tx = chain
        .peer
        .mempool()
        .into_iter()
        .find(|tx| tx.compute_txid() == txid)
        .expect("in the mempool");
    let spent: u64 = tx
        .input
        .iter()
        .map(|input| {
            let coin = chain
                .peer
                .utxo(&input.previous_output)
                .expect("a confirmed coin");
            coin.value.to_sat()
        })
        .sum();
    let paid: u64 = tx.output.iter().map(|output| output.value.to_sat()).sum();
    let sat_per_vb = (spent - paid) / tx.vsize() as u64;
    assert!(
        (1..100).contains(&sat_per_vb),
        "an ordinary rate, not the high peer's: {sat_per_vb} sat/vB"
    );

    // An explicit rate above the relaying peer's minimum is not refused either.
    let explicit = alice.json(&["send", &to, "100000", "--feerate", "5"]);
    assert_eq!(explicit["propagated"], true, "{explicit}");
}

//! The on-chain reserve for anchor channels: with an anchor channel open, `send … all`,
//! `send` and `bumpfee` leave the coins its closing transactions need for their fees, unless
//! told otherwise with `--force`, and `balance` shows the reserve.

use crate::common;

use bitcoin::{Address, Amount, Network};
use common::cli::*;
use serde_json::Value;

/// What the node keeps on chain per anchor channel.
const RESERVE_SAT: u64 = 25_000;

/// The wallet's transaction ids.
fn txids(node: &Daemon) -> Vec<String> {
    node.json(&["transactions"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|tx| tx["txid"].as_str().expect("a txid").to_string())
        .collect()
}

/// What the mempool transaction `txid` pays to `address`.
fn paid_to(chain: &Chain, txid: &str, address: &str) -> u64 {
    let txid = txid.parse().expect("a txid");
    let script = regtest_script(address);
    chain
        .peer
        .mempool()
        .into_iter()
        .find(|tx| tx.compute_txid() == txid)
        .expect("the transaction is in the mempool")
        .output
        .iter()
        .filter(|output| output.script_pubkey == script)
        .map(|output| output.value.to_sat())
        .sum()
}

#[test]
fn sends_and_fee_bumps_keep_the_anchor_reserve_unless_forced() {
    let chain = Chain::start();
    let alice = Daemon::start("alice", &chain);
    let bob = Daemon::start("bob", &chain);
    alice.fund(&chain, Amount::from_sat(1_000_000));
    // Bob accepts an anchor channel only with coins of his own for its fee bumps.
    bob.fund(&chain, Amount::from_sat(100_000));
    let channel_id = alice.open_usable_channel(&chain, &bob, 600_000);
    assert_eq!(alice.channel(&channel_id).unwrap()["anchors"], true);
    let elsewhere = Address::from_script(&chain.peer.faucet_script(), Network::Regtest)
        .unwrap()
        .to_string();

    // Everything but the reserve.
    let before = alice.confirmed_sat();
    let sent = alice.json(&["send", &elsewhere, "all"]);
    let txid = sent["txid"].as_str().unwrap().to_string();
    chain.wait_in_mempool(&txid);
    let paid = paid_to(&chain, &txid, &elsewhere);
    chain.mine(1);
    wait_until("alice's send confirmed", || {
        alice.json(&["balance"])["onchain_pending_sat"] == 0
    });
    let left = alice.confirmed_sat();
    assert_eq!(
        left, RESERVE_SAT,
        "`send all` left {left} sat of {before}, not the {RESERVE_SAT} sat reserve"
    );
    assert_eq!(sent["reserve_kept_sat"], RESERVE_SAT, "{sent}");
    assert_eq!(sent["amount_sat"], paid, "{sent}");
    assert!(paid > before - RESERVE_SAT - 2_000, "{paid} of {before}");
    let balance = alice.json(&["balance"]);
    assert_eq!(balance["anchor_reserve_sat"], RESERVE_SAT, "{balance}");
    let human = alice.cli(&["balance"]).stdout;
    assert!(
        human.contains("anchor reserve") && human.contains("25000 sat"),
        "{human}"
    );

    // A send that would dip into the reserve is refused, and nothing is stored.
    let history = txids(&alice);
    let (code, message) = alice.json_error(&["send", &elsewhere, "10000"]);
    assert_eq!(code, "reserve_required", "{message}");
    assert!(
        message.contains("25000 sat") && message.contains("--force"),
        "{message}"
    );
    assert_eq!(txids(&alice), history);
    assert_eq!(alice.confirmed_sat(), RESERVE_SAT);

    // Forced, it goes out, with a warning.
    let forced = alice.json(&["send", &elsewhere, "10000", "--force"]);
    let forced_txid = forced["txid"].as_str().unwrap().to_string();
    chain.wait_in_mempool(&forced_txid);
    let warning = forced["warning"].as_str().expect("a warning");
    assert!(
        warning.contains("reserve") && warning.contains("25000 sat"),
        "{warning}"
    );

    // A fee bump would take its extra fee from what is left: refused unless forced.
    let (code, message) = alice.json_error(&["bumpfee", &forced_txid, "--feerate", "10sat/vb"]);
    assert_eq!(code, "reserve_required", "{message}");
    assert!(message.contains("25000 sat"), "{message}");
    let bumped = alice.cli(&["bumpfee", &forced_txid, "--feerate", "10sat/vb", "--force"]);
    assert!(bumped.success, "{} {}", bumped.stdout, bumped.stderr);
    assert!(bumped.stdout.starts_with("replaced "), "{}", bumped.stdout);
    assert!(
        bumped.stderr.starts_with("warning: ") && bumped.stderr.contains("reserve"),
        "{}",
        bumped.stderr
    );
    chain.mine(1);
    wait_until("alice's forced sends confirmed", || {
        let balance: Value = alice.json(&["balance"]);
        balance["onchain_pending_sat"] == 0
            && balance["onchain_confirmed_sat"].as_u64() < Some(RESERVE_SAT - 10_000)
    });
}

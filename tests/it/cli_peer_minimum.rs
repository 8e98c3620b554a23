//! What the node does when its Bitcoin peer accepts only transactions paying more than the
//! node would: `send` and `openchannel` refuse below the peer's minimum (`feefilter`) unless
//! told `--force`, a send without a rate pays the minimum, and `send` says whether the peer
//! took the transaction. The peer is the embedded regtest peer with a raised mempool minimum,
//! which refuses cheaper transactions as Bitcoin Core with `-minrelaytxfee` does.

use crate::common;

use std::str::FromStr;

use bitcoin::{Amount, FeeRate, Txid};
use common::cli::{closed_port, regtest_script, wait_until, Chain, Daemon};

/// Pays each of `amounts` to a new address of `daemon` from the faucet at `sat_per_vb`, mines
/// them and waits until the daemon sees them confirmed.
fn fund_at(chain: &Chain, daemon: &Daemon, amounts: &[u64], sat_per_vb: u32) {
    let before = daemon.confirmed_sat();
    for &sats in amounts {
        let address = daemon.new_address();
        let tx = chain
            .peer
            .fund(
                &regtest_script(&address),
                Amount::from_sat(sats),
                FeeRate::from_sat_per_vb_u32(sat_per_vb),
            )
            .expect("the faucet pays above the peer's minimum");
        chain.wait_in_mempool(&tx.compute_txid().to_string());
    }
    chain.mine(1);
    let total: u64 = amounts.iter().sum();
    wait_until(&format!("{} funded", daemon.name), || {
        daemon.confirmed_sat() >= before + total
    });
}

fn outpoints(daemon: &Daemon) -> Vec<String> {
    let mut outpoints: Vec<String> = daemon
        .json(&["utxos"])
        .as_array()
        .unwrap()
        .iter()
        .map(|utxo| utxo["outpoint"].as_str().unwrap().to_string())
        .collect();
    outpoints.sort();
    outpoints
}

fn txid(value: &serde_json::Value) -> Txid {
    Txid::from_str(value["txid"].as_str().expect("a txid")).expect("a txid")
}

#[test]
fn below_the_peers_minimum_a_send_is_refused_or_pays_it_and_says_whether_a_peer_took_it() {
    let chain = Chain::start();
    let mut alice = Daemon::start("alice", &chain);
    alice.wait_synced_to(chain.height());
    // Recent blocks pay 2 sat/vB: that is what the node would pay without the peer.
    fund_at(&chain, &alice, &[300_000, 300_000, 300_000], 2);
    // As Bitcoin Core with -minrelaytxfee=0.0002: 20 sat/vB, within the 100 sat/vB the node
    // follows. (The restart makes the new minimum the one announced at the handshake.)
    chain.peer.set_min_fee_rate(20_000);
    alice.restart(&chain, &[]);
    alice.wait_synced_to(chain.height());
    let to = alice.new_address();

    // An explicit rate below the minimum: refused, naming both rates; nothing changes.
    let coins = outpoints(&alice);
    let (code, message) = alice.json_error(&["send", &to, "100000", "--feerate", "5"]);
    assert_eq!(code, "fee_below_peer_minimum", "{message}");
    assert!(message.contains("would pay "), "{message}");
    assert!(message.contains("20 sat/vB"), "{message}");
    assert!(message.contains("--force"), "{message}");
    let human = alice.fails(&["send", &to, "100000", "--feerate", "5"]);
    assert!(human.contains("20 sat/vB"), "{human}");
    assert_eq!(outpoints(&alice), coins, "a refused send spends nothing");
    assert!(chain.peer.mempool().is_empty());
    assert_eq!(alice.json(&["balance"])["onchain_pending_sat"], 0);

    // No rate: priced above the peer's minimum, and the peer takes it (`propagated`: the peer
    // asked for it; in its mempool once received and checked).
    let sent = alice.json(&["send", &to, "100000"]);
    assert_eq!(sent["propagated"], true, "{sent}");
    chain.wait_in_mempool(&txid(&sent).to_string());

    // --force below the minimum: sent, but reported as not taken, and the peer has not got it.
    let forced = alice.json(&["send", &to, "100000", "--feerate", "5", "--force"]);
    assert_eq!(forced["propagated"], false, "{forced}");
    let why = forced["propagation"].as_str().unwrap();
    assert!(why.contains("below the 20 sat/vB"), "{why}");
    assert!(!chain.peer.in_mempool(&txid(&forced)));
    assert!(chain.peer.in_mempool(&txid(&sent)));

    // Without --json, a plain sentence says so.
    let run = alice.cli(&["send", &to, "100000", "--feerate", "5", "--force"]);
    assert!(run.success, "{run:?}");
    assert!(run.stdout.contains("NOT propagated yet"), "{}", run.stdout);
    assert!(run.stdout.contains("below the 20 sat/vB"), "{}", run.stdout);
}

#[test]
fn a_peer_minimum_above_what_the_node_pays_refuses_send_and_openchannel_without_a_rate() {
    let chain = Chain::start();
    let mut alice = Daemon::start("alice", &chain);
    alice.wait_synced_to(chain.height());
    alice.fund(&chain, Amount::from_sat(1_000_000));
    // As Bitcoin Core with -minrelaytxfee=0.01: 1,000 sat/vB, far above the 100 sat/vB the
    // node lets a peer raise its estimates to (and above what recent blocks paid).
    chain.peer.set_min_fee_rate(1_000_000);
    alice.restart(&chain, &[]);
    alice.wait_synced_to(chain.height());
    let to = alice.new_address();
    let coins = outpoints(&alice);

    let (code, message) = alice.json_error(&["send", &to, "100000"]);
    assert_eq!(code, "fee_below_peer_minimum", "{message}");
    assert!(message.contains("1000 sat/vB"), "{message}");

    // The funding would be built at the node's estimate: refused before any peer is contacted.
    // A well-formed node id (the curve's generator) at a closed port: nobody to contact.
    let nobody = format!(
        "0279be667ef9dcbbac55a06295ce870b07029bfcdb2dce28d959f2815b16f81798@127.0.0.1:{}",
        closed_port()
    );
    let (code, message) = alice.json_error(&["openchannel", &nobody, "100000"]);
    assert_eq!(code, "fee_below_peer_minimum", "{message}");
    assert_eq!(outpoints(&alice), coins, "refusals spend nothing");
    assert!(chain.peer.mempool().is_empty());

    // Paying the minimum works.
    let sent = alice.json(&["send", &to, "100000", "--feerate", "1010"]);
    assert_eq!(sent["propagated"], true, "{sent}");
    chain.wait_in_mempool(&txid(&sent).to_string());
}

//! The node against Core Lightning on chain (`LIGHTNINGD_EXE` and `BITCOIND_EXE`, else each
//! test says it skipped): cooperative closes started by each side, forced closes by each side,
//! and an HTLC resolved on chain by its preimage and one by its timeout (a hold invoice of the
//! node's that Core Lightning pays, the channel then closed unilaterally). Every test mines
//! until both sides have nothing left to claim and checks that each output came home: each
//! wallet ends with at most what it owned on chain and in its channels, and short of it by no
//! more than the fees (the sum, so neither can have what belongs to the other).

use crate::common;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::DisplayHex;
use common::cli::{wait_for_value, wait_until};
use common::interop::Interop;

/// What a cooperative close may cost both sides together (their closing transactions).
const COOPERATIVE_FEES_SAT: u64 = 5_000;

/// What forced closes may cost both sides together: commitment fees, the anchors, fee bumps
/// and every sweep, at regtest's low rates.
const FORCED_FEES_SAT: u64 = 30_000;

/// Blocks a close may take to settle: the 144-block delay on the closer's outputs, then their
/// sweeps, with room.
const SETTLE_BLOCKS: u32 = 260;

/// What each side owns, in sat: its confirmed wallet and its channel balances.
struct Holdings {
    node: u64,
    cln: u64,
    /// How many channels are counted.
    channels: u64,
}

/// What each side owns now: its confirmed wallet plus its balance in `channels`.
fn holdings(stack: &Interop, channels: &[&str]) -> Holdings {
    let mut node = stack.node.confirmed_sat();
    let mut cln = stack.cln.wallet_sat().0;
    for channel in channels {
        let (ours, theirs) = stack.channel_balances_sat(channel);
        node += ours;
        cln += theirs;
    }
    Holdings {
        node,
        cln,
        channels: channels.len() as u64,
    }
}

/// The two anchor outputs (330 sat each) of an anchor channel's commitment: the node counts
/// them out of the opener's channel balance, and a cooperative close, which has none, gives
/// them back.
const ANCHORS_SAT: u64 = 660;

/// Checks that each side ended with what it owned (up to the anchors of each channel), short
/// of it by no more than `fees` for both together.
fn assert_came_home(before: &Holdings, after: (u64, u64), fees: u64) {
    let (node, cln) = after;
    let slack = ANCHORS_SAT * before.channels;
    assert!(
        node <= before.node + slack && cln <= before.cln + slack,
        "a wallet has more than it owned: node {node} of {}, Core Lightning {cln} of {}",
        before.node,
        before.cln
    );
    let lost = (before.node + before.cln).saturating_sub(node + cln);
    assert!(
        lost <= fees,
        "{lost} sat missing (at most {fees} in fees): node {node} of {}, Core Lightning {cln} \
         of {}",
        before.node,
        before.cln
    );
}

/// Funds both sides and opens a channel each way, each giving the other side part of it, so
/// that every close has an output for each; returns (the node's channel, Core Lightning's
/// channel).
fn two_channels_with_balances(stack: &Interop) -> (String, String) {
    stack.fund(1_000_000, 1_000_000);
    stack.connect();
    let ours = stack.open_from_node(400_000, 150_000);
    let theirs = stack.open_from_cln(400_000, 120_000);
    for channel in [&ours, &theirs] {
        let (node, cln) = stack.channel_balances_sat(channel);
        assert!(
            node > 100_000 && cln > 100_000,
            "{channel}: {node} and {cln}"
        );
    }
    (ours, theirs)
}

#[test]
fn against_core_lightning_cooperative_closes_from_each_side_return_every_output() {
    let Some(stack) = Interop::start("coop-close") else {
        return;
    };
    let (ours, theirs) = two_channels_with_balances(&stack);
    let before = holdings(&stack, &[&ours, &theirs]);

    let closed = stack.node.json(&["closechannel", &ours]);
    assert_eq!(closed["force"], false, "{closed}");
    // Both sides agree on the closing transaction (the node's answer may come before they
    // do: it waits only so long for it).
    let agreed = wait_for_value("Core Lightning to agree on the node's close", || {
        stack
            .cln
            .channel(&ours)
            .and_then(|channel| channel["state"].as_str().map(str::to_string))
            .filter(|state| state != "CHANNELD_NORMAL" && state != "CHANNELD_SHUTTING_DOWN")
    });
    assert_eq!(agreed, "CLOSINGD_COMPLETE", "{closed}");
    let closed = stack.cln.call("close", &[&format!("id={theirs}")]);
    assert_eq!(closed["type"], "mutual", "{closed}");

    let after = stack.mine_until_settled(SETTLE_BLOCKS);
    assert_came_home(&before, after, COOPERATIVE_FEES_SAT);
}

#[test]
fn against_core_lightning_forced_closes_from_each_side_are_swept_to_each_wallet() {
    let Some(stack) = Interop::start("force-close") else {
        return;
    };
    let (ours, theirs) = two_channels_with_balances(&stack);
    let before = holdings(&stack, &[&ours, &theirs]);

    let closed = stack.node.json(&["closechannel", &ours, "--force"]);
    assert_eq!(closed["force"], true, "{closed}");
    // Core Lightning's own command fails one channel unilaterally; it names the peer, so the
    // node's channel must have left the states that talk to the peer first.
    wait_until("Core Lightning to leave the node's closed channel", || {
        stack
            .cln
            .channel(&ours)
            .is_some_and(|channel| channel["state"] != "CHANNELD_NORMAL")
    });
    stack
        .cln
        .call("dev-fail", &[&format!("id={}", stack.node.node_id())]);
    wait_until("Core Lightning to close its channel unilaterally", || {
        stack
            .cln
            .channel(&theirs)
            .is_some_and(|channel| channel["state"] == "AWAITING_UNILATERAL")
    });

    let after = stack.mine_until_settled(SETTLE_BLOCKS);
    assert_came_home(&before, after, FORCED_FEES_SAT);
}

/// A preimage, its hex, and its payment hash's hex.
fn preimage(byte: u8) -> (String, String) {
    let preimage = [byte; 32];
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    (preimage.to_lower_hex_string(), hash.to_lower_hex_string())
}

/// Funds both sides, opens a channel from Core Lightning, and has Core Lightning pay a hold
/// invoice of the node's for `sat`; returns the channel, the payment hash, the running `pay`
/// and what each side owned before the payment.
fn held_payment(
    stack: &Interop,
    byte: u8,
    sat: u64,
) -> (String, String, String, common::cli::KillOnDrop, Holdings) {
    stack.fund(1_000_000, 1_000_000);
    stack.connect();
    let channel = stack.open_from_cln(400_000, 0);
    let before = holdings(stack, &[&channel]);
    let (preimage, hash) = preimage(byte);
    let held = stack
        .node
        .json(&["holdinvoice", &hash, &format!("{sat}sat")]);
    let pay = stack.cln.spawn_call(
        "pay",
        &[&format!("bolt11={}", held["bolt11"].as_str().unwrap())],
    );
    let pending = wait_for_value("the node to hold the payment", || {
        stack
            .node
            .json(&["payments"])
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["payment_hash"] == hash.as_str() && p["received_msat"] == sat * 1000)
            .cloned()
    });
    assert_eq!(pending["status"], "pending", "{pending}");
    (channel, hash, preimage, pay, before)
}

/// The HTLC's amount, in sat.
const HTLC_SAT: u64 = 60_000;

#[test]
fn against_core_lightning_an_htlc_is_claimed_on_chain_with_its_preimage() {
    let Some(stack) = Interop::start("htlc-preimage") else {
        return;
    };
    let (channel, hash, preimage, _pay, before) = held_payment(&stack, 41, HTLC_SAT);

    let closed = stack.node.json(&["closechannel", &channel, "--force"]);
    assert_eq!(closed["force"], true, "{closed}");
    let settled = stack.node.json(&["settleinvoice", &preimage]);
    assert_eq!(settled["payment_hash"], hash.as_str(), "{settled}");

    // Core Lightning learns the preimage from the chain: its payment succeeds.
    let paid = stack.mine_until(
        "Core Lightning's payment to complete",
        SETTLE_BLOCKS,
        || {
            let pays = stack
                .cln
                .call("listsendpays", &[&format!("payment_hash={hash}")]);
            pays["payments"]
                .as_array()
                .and_then(|payments| payments.iter().find(|p| p["status"] != "pending").cloned())
        },
    );
    assert_eq!(paid["status"], "complete", "{paid}");
    assert_eq!(paid["payment_preimage"], preimage.as_str(), "{paid}");

    let after = stack.mine_until_settled(SETTLE_BLOCKS);
    let moved = Holdings {
        node: before.node + HTLC_SAT,
        cln: before.cln - HTLC_SAT,
        channels: before.channels,
    };
    assert_came_home(&moved, after, FORCED_FEES_SAT);
    let received = stack
        .node
        .json(&["payments"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["payment_hash"] == hash.as_str())
        .cloned()
        .unwrap();
    assert_eq!(received["status"], "succeeded", "{received}");
}

#[test]
fn against_core_lightning_an_htlc_never_settled_returns_to_its_payer_on_chain_at_its_timeout() {
    let Some(stack) = Interop::start("htlc-timeout") else {
        return;
    };
    let (_channel, hash, _preimage, _pay, before) = held_payment(&stack, 42, HTLC_SAT);

    // Core Lightning closes unilaterally with the HTLC on its commitment and takes it back
    // once it times out; the node, which never has the preimage claimed, does not get it.
    stack
        .cln
        .call("dev-fail", &[&format!("id={}", stack.node.node_id())]);
    let failed = stack.mine_until("Core Lightning's payment to fail", SETTLE_BLOCKS, || {
        let pays = stack
            .cln
            .call("listsendpays", &[&format!("payment_hash={hash}")]);
        pays["payments"]
            .as_array()
            .and_then(|payments| payments.iter().find(|p| p["status"] != "pending").cloned())
    });
    assert_eq!(failed["status"], "failed", "{failed}");

    let after = stack.mine_until_settled(SETTLE_BLOCKS);
    assert_came_home(&before, after, FORCED_FEES_SAT);
    let lost = before.cln - after.1;
    assert!(
        lost < HTLC_SAT,
        "Core Lightning lost {lost} sat: the HTLC of {HTLC_SAT} did not come back"
    );
    let held = stack
        .node
        .json(&["payments"])
        .as_array()
        .unwrap()
        .iter()
        .find(|p| p["payment_hash"] == hash.as_str())
        .cloned()
        .unwrap();
    assert_ne!(held["status"], "succeeded", "{held}");
}

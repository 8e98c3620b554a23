//! The node against Core Lightning (`LIGHTNINGD_EXE`, on a Bitcoin Core: `BITCOIND_EXE`):
//! channels opened both ways, payments both ways by BOLT11 invoice and BOLT12 offer, keysend
//! from the node (Core Lightning's `xkeysend` asks for too short a final CLTV delta for LDK),
//! and both sides restarted with higher commitment fee rates, each `update_fee` taken by the
//! other side, the channels paying again. Without the two variables each test says it skipped.

use crate::common;

use common::cli::{wait_for_value, Daemon};
use common::interop::Interop;
use serde_json::Value;

/// The node's record of the payment `hash`, if listed.
fn payment(node: &Daemon, hash: &str) -> Option<Value> {
    node.json(&["payments"])
        .as_array()
        .expect("a list of payments")
        .iter()
        .find(|payment| payment["payment_hash"] == hash)
        .cloned()
}

/// Waits until the node has received the payment `hash` and returns its record.
fn received(node: &Daemon, hash: &str) -> Value {
    wait_for_value(&format!("the node to receive {hash}"), || {
        payment(node, hash).filter(|p| p["status"] == "succeeded")
    })
}

/// Core Lightning's invoice with `payment_hash`, once paid.
fn cln_paid_invoice(stack: &Interop, hash: &str) -> Value {
    wait_for_value(&format!("Core Lightning's invoice {hash} paid"), || {
        stack
            .cln
            .call("listinvoices", &[&format!("payment_hash={hash}")])["invoices"]
            .as_array()
            .and_then(|invoices| invoices.first().cloned())
            .filter(|invoice| invoice["status"] == "paid")
    })
}

/// The node pays Core Lightning by invoice, keysend and offer, and Core Lightning pays the
/// node by invoice and offer; each payment is checked on both sides.
fn pay_both_ways(stack: &Interop, round: &str) {
    let node = &stack.node;
    let cln = &stack.cln;

    // BOLT11, node → Core Lightning.
    let invoice = cln.call(
        "invoice",
        &[
            "amount_msat=21000000",
            &format!("label=bolt11-{round}"),
            "description=interop",
        ],
    );
    let paid = node.json(&["pay", invoice["bolt11"].as_str().unwrap()]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["amount_msat"], 21_000_000, "{paid}");
    let hash = invoice["payment_hash"].as_str().unwrap();
    let settled = cln_paid_invoice(stack, hash);
    assert_eq!(settled["amount_received_msat"], 21_000_000, "{settled}");
    assert_eq!(settled["payment_preimage"], paid["preimage"], "{settled}");

    // BOLT11, Core Lightning → node.
    let invoice = node.json(&["invoice", "22000sat", "--description", "interop"]);
    let paid = cln.call(
        "pay",
        &[&format!("bolt11={}", invoice["bolt11"].as_str().unwrap())],
    );
    assert_eq!(paid["status"], "complete", "{paid}");
    let got = received(node, invoice["payment_hash"].as_str().unwrap());
    assert_eq!(got["received_msat"], 22_000_000, "{got}");
    assert_eq!(got["direction"], "inbound", "{got}");

    // Keysend, node → Core Lightning.
    let cln_id = cln.node_id();
    let sent = node.json(&["keysend", &cln_id, "23000sat"]);
    assert_eq!(sent["status"], "succeeded", "{sent}");
    let settled = cln_paid_invoice(stack, sent["payment_hash"].as_str().unwrap());
    assert_eq!(settled["amount_received_msat"], 23_000_000, "{settled}");

    // No keysend from Core Lightning to the node: its `xkeysend` asks for a final CLTV
    // delta of 22 blocks, and LDK refuses any payment to it that expires within 40 blocks
    // (`incorrect_or_unknown_payment_details`).

    // BOLT12, node → Core Lightning's offer.
    let offer = cln.call(
        "offer",
        &["amount=25000sat", &format!("description=offer-{round}")],
    );
    let paid = node.json(&["pay", offer["bolt12"].as_str().unwrap()]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["amount_msat"], 25_000_000, "{paid}");
    let settled = cln_paid_invoice(stack, paid["payment_hash"].as_str().unwrap());
    assert_eq!(settled["amount_received_msat"], 25_000_000, "{settled}");
    assert_eq!(settled["local_offer_id"], offer["offer_id"], "{settled}");

    // BOLT12, Core Lightning → the node's offer.
    let offer = node.json(&["offer", "26000sat", "--description", "interop"]);
    let fetched = cln.call(
        "fetchinvoice",
        &[&format!("offer={}", offer["offer"].as_str().unwrap())],
    );
    let paid = cln.call(
        "pay",
        &[&format!("bolt11={}", fetched["invoice"].as_str().unwrap())],
    );
    assert_eq!(paid["status"], "complete", "{paid}");
    let got = received(node, paid["payment_hash"].as_str().unwrap());
    assert_eq!(got["received_msat"], 26_000_000, "{got}");
}

#[test]
fn against_core_lightning_channels_open_both_ways_and_pay_both_ways_by_invoice_keysend_and_offer() {
    let Some(stack) = Interop::start("open-pay") else {
        return;
    };
    stack.fund(1_000_000, 1_000_000);
    stack.connect();

    let ours = stack.open_from_node(400_000, 0);
    let opened = stack.node.channel(&ours).unwrap();
    assert_eq!(opened["outbound"], true, "{opened}");
    assert_eq!(opened["anchors"], true, "{opened}");
    let seen = stack.cln.channel(&ours).unwrap();
    assert_eq!(seen["opener"], "remote", "{seen}");
    assert_eq!(seen["total_msat"], 400_000_000u64, "{seen}");

    let theirs = stack.open_from_cln(300_000, 0);
    let opened = stack.node.channel(&theirs).unwrap();
    assert_eq!(opened["outbound"], false, "{opened}");
    assert_eq!(opened["capacity_sat"], 300_000, "{opened}");
    assert_eq!(opened["anchors"], true, "{opened}");
    let seen = stack.cln.channel(&theirs).unwrap();
    assert_eq!(seen["opener"], "local", "{seen}");

    pay_both_ways(&stack, "first");
}

#[test]
fn against_core_lightning_both_sides_restart_raise_their_commitment_fee_rate_and_pay_again() {
    let Some(mut stack) = Interop::start("restart-fee") else {
        return;
    };
    stack.fund(1_000_000, 1_000_000);
    stack.connect();
    let ours = stack.open_from_node(400_000, 0);
    let theirs = stack.open_from_cln(400_000, 0);
    let feerate = |stack: &Interop, channel: &str| {
        stack.cln.channel(channel).unwrap()["feerate"]["perkw"]
            .as_u64()
            .expect("a commitment fee rate")
    };
    let ours_before = feerate(&stack, &ours);
    let theirs_before = feerate(&stack, &theirs);

    // The node restarts with a higher commitment fee rate: it reconnects, reestablishes both
    // channels, and sends update_fee on the one it opened, which Core Lightning takes.
    const NODE_RATE: u64 = 1_000;
    assert!(ours_before < NODE_RATE, "already at {ours_before} sat/kw");
    std::fs::write(
        stack.node.data_dir().join("lightfilter.toml"),
        format!("[fee_overrides]\nanchor_channel = {NODE_RATE}\n"),
    )
    .expect("write the configuration");
    let core = stack.core.p2p_addr();
    stack.node.restart_on(core, &[]);
    stack.wait_usable(&ours);
    stack.wait_usable(&theirs);
    let raised = wait_for_value("Core Lightning to take the node's update_fee", || {
        Some(feerate(&stack, &ours)).filter(|rate| *rate != ours_before)
    });
    assert_eq!(raised, NODE_RATE);
    pay_both_ways(&stack, "node-restarted");

    // Core Lightning restarts with higher fee rates: it sends update_fee on the channel it
    // opened, and the node takes it (a node refusing it would fail the channel).
    const CLN_RATE: u64 = 2_000;
    assert!(
        theirs_before < CLN_RATE,
        "already at {theirs_before} sat/kw"
    );
    stack
        .cln
        .restart(&[&format!("--force-feerates={CLN_RATE}")]);
    stack.wait_usable(&ours);
    stack.wait_usable(&theirs);
    let raised = wait_for_value("the node to take Core Lightning's update_fee", || {
        Some(feerate(&stack, &theirs)).filter(|rate| *rate != theirs_before)
    });
    assert!(
        (CLN_RATE..CLN_RATE + 10).contains(&raised),
        "Core Lightning's rate is {raised} sat/kw"
    );
    pay_both_ways(&stack, "cln-restarted");
    for channel in [&ours, &theirs] {
        let listed = stack.node.channel(channel).unwrap();
        assert_eq!(listed["usable"], true, "{listed}");
    }
    assert_eq!(feerate(&stack, &ours), NODE_RATE);
}

//! The operator's commands end to end through the real `lightfilter` binary, with `--json`
//! output parsed back: `feerates`, `transactions`, `bumpfee`, `forwards`, `setchannelfee`,
//! hold invoices (`holdinvoice`, `settleinvoice`, `cancelinvoice`), `closechannel` by short
//! channel id, amounts with units and `completions`; and bad input to each of them refused
//! clearly with nothing changed.

use crate::common;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::DisplayHex;
use bitcoin::Amount;
use common::cli::{lightfilter, wait_for_value, wait_until, Chain, Daemon};
use lightfilter::api::types::{SendAmountSpec, SendOnchain, SendRequest};
use lightfilter::api::{Client, ClientError};
use serde_json::Value;

/// `send` through the control API itself, with the fee rate as text with its unit.
fn api_send(
    daemon: &Daemon,
    address: &str,
    request_rate: (Option<u64>, Option<&str>),
) -> Result<String, ClientError> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let client = Client::from_data_dir(daemon.data_dir())?;
    let request = SendRequest {
        address: address.to_string(),
        amount: SendAmountSpec::Sat(10_000),
        fee_rate_sat_per_kwu: request_rate.0,
        fee_rate: request_rate.1.map(str::to_string),
        force: false,
    };
    runtime
        .block_on(client.call::<SendOnchain>(&request))
        .map(|sent| sent.txid)
}

fn transaction(daemon: &Daemon, txid: &str) -> Option<Value> {
    daemon
        .json(&["transactions"])
        .as_array()
        .expect("a list of transactions")
        .iter()
        .find(|tx| tx["txid"] == txid)
        .cloned()
}

fn payment(daemon: &Daemon, hash: &str) -> Option<Value> {
    daemon
        .json(&["payments"])
        .as_array()
        .expect("a list of payments")
        .iter()
        .find(|payment| payment["payment_hash"] == hash)
        .cloned()
}

fn preimage(byte: u8) -> ([u8; 32], String, String) {
    let preimage = [byte; 32];
    let hash = sha256::Hash::hash(&preimage).to_byte_array();
    (
        preimage,
        preimage.to_lower_hex_string(),
        hash.to_lower_hex_string(),
    )
}

#[test]
fn operator_commands_work_end_to_end() {
    let chain = Chain::start();
    let alice = Daemon::start("alice", &chain);
    let bob = Daemon::start("bob", &chain);
    let carol = Daemon::start("carol", &chain);

    // feerates: every target, with its source, and the peers' minimum.
    let rates = alice.json(&["feerates"]);
    let estimates = rates["estimates"].as_array().unwrap();
    assert_eq!(estimates.len(), 8, "{rates}");
    for estimate in estimates {
        assert!(
            estimate["sat_per_kw"].as_u64().unwrap() >= 253,
            "{estimate}"
        );
        let source = estimate["source"].as_str().unwrap();
        assert!(
            ["recent_blocks", "fallback", "peer_minimum", "override"].contains(&source),
            "{estimate}"
        );
    }
    assert!(estimates.iter().any(|e| e["target"] == "output_spending"));
    assert!(
        rates["peer_minimum_sat_per_kw"]
            .as_u64()
            .is_some_and(|rate| rate >= 250),
        "the embedded peer announces at least 1 sat/vB: {rates}"
    );
    let human = alice.cli(&["feerates"]).stdout;
    assert!(
        human.contains("output_spending") && human.contains("sat/vB") && human.contains("peers"),
        "{human}"
    );

    // transactions: a received payment with its confirmations.
    alice.fund(&chain, Amount::from_sat(1_000_000));
    bob.fund(&chain, Amount::from_sat(600_000));
    carol.fund(&chain, Amount::from_sat(100_000));
    let list = alice.json(&["transactions"]);
    let list = list.as_array().unwrap();
    assert_eq!(list.len(), 1, "{list:?}");
    assert_eq!(list[0]["received_sat"], 1_000_000);
    assert_eq!(list[0]["net_sat"], 1_000_000);
    let confirmations = list[0]["confirmations"].as_u64().unwrap();
    assert!(confirmations >= 1, "{list:?}");

    // An amount with a unit and a fee rate with a unit; then bumpfee replaces the send.
    let to_bob = bob.new_address();
    let sent = alice.json(&["send", &to_bob, "0.001btc", "--feerate", "2sat/vb"]);
    let first = sent["txid"].as_str().unwrap().to_string();
    chain.wait_in_mempool(&first);
    let unconfirmed = transaction(&alice, &first).expect("the send is listed");
    assert_eq!(unconfirmed["confirmations"], 0, "{unconfirmed}");
    assert_eq!(unconfirmed["confirmation_height"], Value::Null);
    let first_fee = unconfirmed["fee_sat"].as_u64().expect("a known fee");
    assert_eq!(
        unconfirmed["net_sat"].as_i64().unwrap(),
        -100_000 - first_fee as i64,
        "{unconfirmed}"
    );
    let human = alice.cli(&["transactions"]).stdout;
    assert!(
        human.contains(&first) && human.contains("unconfirmed") && human.contains(" sat"),
        "{human}"
    );
    let bumped = alice.json(&["bumpfee", &first, "--feerate", "5sat/vb"]);
    let second = bumped["txid"].as_str().unwrap().to_string();
    assert_ne!(second, first);
    assert_eq!(bumped["replaced_txid"], first.as_str());
    assert_eq!(bumped["propagated"], true, "{bumped}");
    // `propagated` says the peer asked for the replacement; it reaches the peer's mempool
    // (replacing the send there) once the peer has received and checked it.
    chain.wait_in_mempool(&second);
    assert!(!chain.peer.in_mempool(&first.parse().unwrap()));
    assert!(
        transaction(&alice, &first).is_none(),
        "the replaced send is gone"
    );
    let replacement = transaction(&alice, &second).expect("the replacement is listed");
    assert!(
        replacement["fee_sat"].as_u64().unwrap() > 2 * first_fee,
        "{replacement} replaced a fee of {first_fee} sat"
    );
    chain.mine(1);
    wait_until("the replacement confirmed", || {
        transaction(&alice, &second).is_some_and(|tx| tx["confirmations"] == 1)
    });
    wait_until("bob paid by the replacement", || {
        bob.json(&["utxos"])
            .as_array()
            .unwrap()
            .iter()
            .any(|utxo| utxo["address"] == to_bob.as_str() && utxo["amount_sat"] == 100_000)
    });
    // The API takes the fee rate as text with its unit too (once the change is confirmed:
    // the wallet spends only confirmed coins).
    let txid = api_send(&alice, &to_bob, (None, Some("1250sat/kw"))).unwrap();
    chain.wait_in_mempool(&txid);
    let by_api = transaction(&alice, &txid).expect("the API's send is listed");
    let vsize_fee = by_api["fee_sat"].as_u64().unwrap();
    assert!((500..2_000).contains(&vsize_fee), "5 sat/vB: {by_api}");
    chain.mine(1);
    wait_until("alice's change confirmed", || {
        alice.json(&["balance"])["onchain_pending_sat"] == 0
    });

    // Channels alice → bob → carol; a payment alice → carol is forwarded by bob.
    // Nodes forward only to public channels: alice learns bob → carol from gossip.
    let alice_bob = alice.open_usable_channel(&chain, &bob, 400_000);
    let opened = bob.json(&["openchannel", &carol.uri(), "0.003btc", "--public"]);
    let bob_carol = opened["channel_id"].as_str().unwrap().to_string();
    chain.wait_in_mempool(opened["funding_txid"].as_str().unwrap());
    chain.mine(6);
    for side in [&bob, &carol] {
        wait_until("bob → carol usable", || {
            side.channel(&bob_carol)
                .is_some_and(|channel| channel["usable"] == true)
        });
    }
    wait_until("alice to learn bob → carol from gossip", || {
        alice.json(&["getinfo"])["graph_channels"]
            .as_u64()
            .is_some_and(|n| n >= 1)
    });
    let invoice = carol.json(&["invoice", "10000sat", "--description", "routed"]);
    let paid = alice.json(&["pay", invoice["bolt11"].as_str().unwrap()]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["amount_msat"], 10_000_000, "{paid}");
    let fee = paid["fee_msat"].as_u64().expect("a routing fee");
    assert!(fee > 0, "{paid}");
    let forwards = wait_for_value("bob to record the forward", || {
        let forwards = bob.json(&["forwards"]).as_array().unwrap().clone();
        (!forwards.is_empty()).then_some(forwards)
    });
    assert_eq!(forwards.len(), 1, "{forwards:?}");
    assert_eq!(forwards[0]["amount_msat"], 10_000_000, "{forwards:?}");
    assert_eq!(forwards[0]["fee_msat"], fee, "{forwards:?}");
    assert_eq!(forwards[0]["prev_channel_id"], alice_bob.as_str());
    assert_eq!(forwards[0]["next_channel_id"], bob_carol.as_str());
    let human = bob.cli(&["forwards"]).stdout;
    assert!(human.contains("1 forward(s)"), "{human}");
    assert!(alice.json(&["forwards"]).as_array().unwrap().is_empty());

    // A hold invoice, settled with its preimage.
    let (_, settle_preimage, settle_hash) = preimage(7);
    let held = carol.json(&["holdinvoice", &settle_hash, "5000sat"]);
    assert_eq!(held["payment_hash"], settle_hash.as_str());
    let pending = alice.json(&["pay", held["bolt11"].as_str().unwrap(), "--timeout", "2"]);
    assert_eq!(pending["status"], "pending", "{pending}");
    let held_payment = wait_for_value("carol to hold the payment", || {
        payment(&carol, &settle_hash).filter(|p| p["received_msat"] == 5_000_000)
    });
    assert_eq!(held_payment["status"], "pending", "{held_payment}");
    let settled = carol.json(&["settleinvoice", &settle_preimage]);
    assert_eq!(settled["payment_hash"], settle_hash.as_str());
    let succeeded = wait_for_value("alice's held payment to succeed", || {
        payment(&alice, &settle_hash).filter(|p| p["status"] == "succeeded")
    });
    assert_eq!(
        succeeded["preimage"],
        settle_preimage.as_str(),
        "{succeeded}"
    );

    // A hold invoice, cancelled.
    let (_, _, cancel_hash) = preimage(8);
    let held = carol.json(&["holdinvoice", &cancel_hash, "any"]);
    let pending = alice.json(&[
        "pay",
        held["bolt11"].as_str().unwrap(),
        "--amount-msat",
        "3000sat",
        "--timeout",
        "2",
    ]);
    assert_eq!(pending["status"], "pending", "{pending}");
    wait_until("carol to hold the second payment", || {
        payment(&carol, &cancel_hash).is_some_and(|p| p["received_msat"] == 3_000_000)
    });
    let cancelled = carol.json(&["cancelinvoice", &cancel_hash]);
    assert_eq!(cancelled["payment_hash"], cancel_hash.as_str());
    wait_until("alice's second held payment to fail", || {
        payment(&alice, &cancel_hash).is_some_and(|p| p["status"] == "failed")
    });
    assert_eq!(payment(&carol, &cancel_hash).unwrap()["status"], "failed");

    // setchannelfee by short channel id (after the payments: alice learns the new policy only
    // from gossip): the policy in force comes back.
    let channel = bob.channel(&bob_carol).unwrap();
    let scid = channel["short_channel_id"]
        .as_str()
        .expect("a short channel id once confirmed")
        .to_string();
    let policy = bob.json(&[
        "setchannelfee",
        &scid,
        "--base-fee",
        "2sat",
        "--fee-ppm",
        "1500",
    ]);
    assert_eq!(policy["channel_id"], bob_carol.as_str());
    assert_eq!(policy["base_fee_msat"], 2_000);
    assert_eq!(policy["fee_ppm"], 1_500);
    let kept_delta = policy["cltv_expiry_delta"].as_u64().unwrap();
    let policy = bob.json(&["setchannelfee", &bob_carol, "--cltv-delta", "80"]);
    assert_eq!(policy["base_fee_msat"], 2_000, "unchanged: {policy}");
    assert_eq!(policy["cltv_expiry_delta"], 80);
    assert_ne!(kept_delta, 80);
    let human = bob
        .cli(&["setchannelfee", &scid, "--fee-ppm", "1000"])
        .stdout;
    assert!(human.contains("2 sat + 1000 ppm"), "{human}");

    // closechannel by short channel id.
    let scid = alice.channel(&alice_bob).unwrap()["short_channel_id"]
        .as_str()
        .unwrap()
        .to_string();
    let closed = alice.json(&["closechannel", &scid]);
    assert_eq!(closed["channel_id"], alice_bob.as_str());
    assert_eq!(closed["propagated"], true, "{closed}");
    wait_until("the close in the mempool", || {
        !chain.peer.mempool().is_empty()
    });
    chain.mine(1);
    wait_until("the closed channel gone", || {
        alice.channel(&alice_bob).is_none()
    });
}

#[test]
fn shell_completions_name_the_commands() {
    for shell in ["bash", "zsh", "fish"] {
        let output = lightfilter()
            .args(["completions", shell])
            .output()
            .expect("run lightfilter");
        assert!(output.status.success(), "{shell}");
        let script = String::from_utf8(output.stdout).unwrap();
        for command in ["bumpfee", "setchannelfee", "holdinvoice", "feerates"] {
            assert!(
                script.contains(command),
                "{shell} completions lack {command}"
            );
        }
    }
    let output = lightfilter()
        .args(["completions", "cmd.exe"])
        .output()
        .expect("run lightfilter");
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("cmd.exe"), "{stderr}");
}

/// Everything bad input must leave alone.
fn snapshot(daemon: &Daemon) -> Vec<Value> {
    vec![
        daemon.json(&["balance"]),
        daemon.json(&["utxos"]),
        daemon.json(&["channels"]),
        daemon.json(&["payments"]),
        daemon.json(&["transactions"]),
        daemon.json(&["forwards"]),
    ]
}

#[test]
fn bad_input_to_the_operator_commands_is_refused_and_changes_nothing() {
    let chain = Chain::start();
    let mut alice = Daemon::start("alice", &chain);
    let mut bob = Daemon::start("bob", &chain);
    alice.fund(&chain, Amount::from_sat(600_000));
    bob.fund(&chain, Amount::from_sat(100_000));
    let channel_id = alice.open_usable_channel(&chain, &bob, 300_000);
    let channel = alice.channel(&channel_id).unwrap();
    let funding = channel["funding_txid"].as_str().unwrap().to_string();
    let scid = channel["short_channel_id"].as_str().unwrap().to_string();
    let to_bob = bob.new_address();
    let sent = alice.json(&["send", &to_bob, "20000", "--feerate", "3sat/vb"]);
    let unconfirmed = sent["txid"].as_str().unwrap().to_string();
    chain.wait_in_mempool(&unconfirmed);
    let (_, unknown_preimage, unknown_hash) = preimage(9);
    let unknown_txid = "ab".repeat(32);

    let alice_before = snapshot(&alice);
    let bob_before = snapshot(&bob);
    let cases: Vec<(Vec<&str>, &str, Vec<&str>)> = vec![
        // bumpfee
        (
            vec!["bumpfee", "xyz", "--feerate", "5sat/vb"],
            "invalid_input",
            vec!["transaction id"],
        ),
        (
            vec!["bumpfee", &unconfirmed, "--feerate", "5furlongs"],
            "invalid_input",
            vec!["fee rate", "5furlongs"],
        ),
        (
            vec!["bumpfee", &unconfirmed, "--feerate", "0sat/vb"],
            "invalid_input",
            vec!["fee rate"],
        ),
        (
            vec!["bumpfee", &unknown_txid, "--feerate", "5sat/vb"],
            "unknown_transaction",
            vec![&unknown_txid],
        ),
        (
            vec!["bumpfee", &funding, "--feerate", "5sat/vb"],
            "cannot_bump",
            vec!["funds a channel"],
        ),
        (
            vec!["bumpfee", &unconfirmed, "--feerate", "2sat/vb"],
            "fee_bump_too_low",
            vec!["sat/vB"],
        ),
        // setchannelfee
        (
            vec!["setchannelfee", "1x1x1", "--fee-ppm", "5"],
            "unknown_channel",
            vec!["1x1x1"],
        ),
        (
            vec!["setchannelfee", "12x", "--fee-ppm", "5"],
            "invalid_input",
            vec!["short channel id"],
        ),
        (
            vec!["setchannelfee", &scid],
            "invalid_input",
            vec!["at least one"],
        ),
        (
            vec!["setchannelfee", &scid, "--cltv-delta", "5"],
            "invalid_input",
            vec!["CLTV"],
        ),
        (
            vec!["setchannelfee", &scid, "--fee-ppm", "2000000"],
            "invalid_input",
            vec!["ppm"],
        ),
        (
            vec!["setchannelfee", &scid, "--base-fee", "5furlongs"],
            "invalid_input",
            vec!["base fee"],
        ),
        (
            vec!["setchannelfee", &scid, "--base-fee", "1btc"],
            "invalid_input",
            vec!["base fee"],
        ),
        // closechannel by short channel id
        (
            vec!["closechannel", "999x1x0"],
            "unknown_channel",
            vec!["999x1x0"],
        ),
        (
            vec!["closechannel", "1x2"],
            "invalid_input",
            vec!["short channel id"],
        ),
        // hold invoices
        (
            vec!["holdinvoice", "zz", "1000"],
            "invalid_input",
            vec!["payment hash"],
        ),
        (
            vec!["holdinvoice", &unknown_hash, "5furlongs"],
            "invalid_input",
            vec!["amount"],
        ),
        (
            vec!["settleinvoice", "zz"],
            "invalid_input",
            vec!["preimage"],
        ),
        (
            vec!["settleinvoice", &unknown_preimage],
            "invalid_input",
            vec!["no held payment"],
        ),
        (
            vec!["cancelinvoice", &unknown_hash],
            "invalid_input",
            vec!["no held payment"],
        ),
        // amounts with units
        (
            vec!["send", &to_bob, "0.5sat"],
            "invalid_input",
            vec!["amount", "0.5sat"],
        ),
        (
            vec!["send", &to_bob, "5furlongs"],
            "invalid_input",
            vec!["not a unit"],
        ),
        (
            vec!["invoice", "0.000000001btc"],
            "invalid_input",
            vec!["amount"],
        ),
    ];
    for (args, code, mentions) in &cases {
        let (got_code, message) = alice.json_error(args);
        assert_eq!(got_code, *code, "{args:?}: {message}");
        for text in mentions {
            assert!(message.contains(text), "{args:?}: {message}");
        }
        let stderr = alice.fails(args);
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
        assert!(
            alice.is_running() && bob.is_running(),
            "{args:?} stopped a daemon"
        );
    }
    // The commands that take no argument refuse one, before reaching the daemon.
    for command in ["feerates", "transactions", "forwards"] {
        let run = alice.cli(&[command, "extra"]);
        assert!(!run.success, "{command} extra");
        assert!(
            run.stderr.contains("unexpected argument 'extra'"),
            "{command}: {}",
            run.stderr
        );
    }
    // The API refuses a fee rate it cannot read, or two of them.
    for rate in [
        (None, Some("3 furlongs")),
        (Some(750), Some("3sat/vb")),
        (None, Some("0sat/kw")),
    ] {
        let err = api_send(&alice, &to_bob, rate).unwrap_err();
        assert_eq!(err.code(), "invalid_input", "{rate:?}: {err}");
        assert!(err.to_string().contains("fee rate"), "{rate:?}: {err}");
    }
    // A fee bump that is refused leaves the send in the mempool as it was.
    assert!(chain.peer.in_mempool(&unconfirmed.parse().unwrap()));
    assert_eq!(snapshot(&alice), alice_before, "alice changed");
    assert_eq!(snapshot(&bob), bob_before, "bob changed");
}

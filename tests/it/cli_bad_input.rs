//! Bad input to every command family, through the real binary against running daemons: each
//! is refused with a clear message (on standard error, or as `{"error": …}` with `--json`) and
//! a non-zero exit, the daemons keep running, and nothing they hold changes.

use crate::common;

use bitcoin::hashes::{sha256, Hash};
use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::{Address, Amount, CompressedPublicKey, Network};
use common::cli::{closed_port, wait_until, Chain, Daemon};
use lightning_invoice::{Currency, InvoiceBuilder, PaymentSecret};
use serde_json::Value;

/// Everything a daemon reports that bad input must leave alone.
fn snapshot(daemon: &Daemon) -> Vec<Value> {
    let info = daemon.json(&["getinfo"]);
    vec![
        daemon.json(&["balance"]),
        daemon.json(&["utxos"]),
        daemon.json(&["channels"]),
        daemon.json(&["payments"]),
        daemon.json(&["peers"]),
        info["block_height"].clone(),
        info["num_channels"].clone(),
    ]
}

fn key(byte: u8) -> (SecretKey, PublicKey) {
    let secret = SecretKey::from_slice(&[byte; 32]).unwrap();
    (secret, secret.public_key(&Secp256k1::new()))
}

/// A valid, signed BOLT11 invoice for mainnet.
fn mainnet_invoice() -> String {
    let (secret, _) = key(0x42);
    let secp = Secp256k1::new();
    InvoiceBuilder::new(Currency::Bitcoin)
        .description("for another network".into())
        .payment_hash(sha256::Hash::hash(b"another network"))
        .payment_secret(PaymentSecret([7; 32]))
        .current_timestamp()
        .min_final_cltv_expiry_delta(144)
        .amount_milli_satoshis(10_000)
        .build_signed(|hash| secp.sign_ecdsa_recoverable(hash, &secret))
        .unwrap()
        .to_string()
}

/// A mainnet address.
fn mainnet_address() -> String {
    let (_, public) = key(0x43);
    Address::p2wpkh(&CompressedPublicKey(public), Network::Bitcoin).to_string()
}

struct Case {
    args: Vec<String>,
    code: &'static str,
    mentions: Vec<String>,
}

fn case(args: &[&str], code: &'static str, mentions: &[&str]) -> Case {
    Case {
        args: args.iter().map(|arg| arg.to_string()).collect(),
        code,
        mentions: mentions.iter().map(|text| text.to_string()).collect(),
    }
}

#[test]
fn bad_input_is_refused_clearly_and_changes_nothing() {
    let chain = Chain::start();
    let mut alice = Daemon::start("alice", &chain);
    let mut bob = Daemon::start("bob", &chain);
    alice.fund(&chain, Amount::from_sat(600_000));
    bob.fund(&chain, Amount::from_sat(100_000));
    let channel_id = alice.open_usable_channel(&chain, &bob, 300_000);
    let idle = alice.channel(&channel_id).unwrap();
    let paid = bob.json(&["invoice", "1000000"]);
    let paid_bolt11 = paid["bolt11"].as_str().unwrap().to_string();
    let paid_hash = paid["payment_hash"].as_str().unwrap().to_string();
    assert_eq!(alice.json(&["pay", &paid_bolt11])["status"], "succeeded");
    let any_amount = bob.json(&["invoice", "any"])["bolt11"]
        .as_str()
        .unwrap()
        .to_string();
    // The snapshots below must be of a settled state: the payment recorded by bob (found by
    // its hash: the invoice for any amount is listed too, in either order when both were made
    // in the same second) and out of both sides' balances, the commitment updates that go on
    // after `pay` returns done.
    let outbound_left = idle["outbound_capacity_msat"].as_u64().unwrap() - 1_000_000;
    wait_until("the payment settled on both sides", || {
        let recorded = bob
            .json(&["payments"])
            .as_array()
            .unwrap()
            .iter()
            .any(|payment| {
                payment["payment_hash"] == paid_hash.as_str() && payment["status"] == "succeeded"
            });
        recorded
            && bob.json(&["balance"])["lightning_msat"] == 1_000_000
            && alice
                .channel(&channel_id)
                .is_some_and(|channel| channel["outbound_capacity_msat"] == outbound_left)
    });

    let alice_before = snapshot(&alice);
    let bob_before = snapshot(&bob);
    let bob_uri = bob.uri();
    let bob_id = bob.node_id();
    let own_address = alice.new_address();
    let unknown_channel = "ab".repeat(32);
    let nobody = format!("{}@127.0.0.1:{}", key(0x44).1, closed_port());
    let nobody_port = nobody.rsplit(':').next().unwrap().to_string();
    let mainnet_invoice = mainnet_invoice();
    let mainnet_address = mainnet_address();

    let cases = [
        // Invoices and offers.
        case(
            &["pay", "lnbcrt1qqqqqqgarbage"],
            "invalid_input",
            &["invoice"],
        ),
        case(&["pay", "lno1qqqqgarbage"], "invalid_input", &["offer"]),
        case(
            &["pay", &mainnet_invoice],
            "wrong_network",
            &["bitcoin", "regtest"],
        ),
        case(&["pay", &paid_bolt11], "duplicate_payment", &["already"]),
        case(&["pay", &any_amount], "invalid_input", &["amount"]),
        case(
            &[
                "pay",
                &any_amount,
                "--amount-msat",
                "99999999999999999999999",
            ],
            "invalid_input",
            &["too large"],
        ),
        case(
            &["invoice", "99999999999999999999999"],
            "invalid_input",
            &["too large"],
        ),
        case(
            &["invoice", "2100000000000000001"],
            "invalid_input",
            &["21 million"],
        ),
        case(
            &["invoice", "12.5"],
            "invalid_input",
            &["whole number of msat"],
        ),
        case(
            &["invoice", "1000", "--expiry", "0"],
            "invalid_input",
            &["expiry"],
        ),
        case(
            &["offer", "lots"],
            "invalid_input",
            &["whole number of msat"],
        ),
        // Channels.
        case(
            &["closechannel", &unknown_channel],
            "unknown_channel",
            &[&unknown_channel],
        ),
        case(
            &["closechannel", "not-a-channel"],
            "invalid_input",
            &["channel id"],
        ),
        case(
            &["openchannel", &bob_uri, "99999999999999999999999"],
            "invalid_input",
            &["too large"],
        ),
        case(
            &[
                "openchannel",
                &bob_uri,
                "100000",
                "--push-msat",
                "100000001",
            ],
            "invalid_input",
            &["push amount"],
        ),
        case(
            &["openchannel", &bob_uri, "0"],
            "invalid_input",
            &["channel amount", "more than zero"],
        ),
        case(
            &["openchannel", &bob_uri, "5000000"],
            "insufficient_funds",
            &[],
        ),
        case(
            &["openchannel", &nobody, "100000"],
            "peer_unreachable",
            &[&nobody_port],
        ),
        // Peers.
        case(&["connect", &nobody], "peer_unreachable", &[&nobody_port]),
        case(
            &["connect", "somebody"],
            "invalid_input",
            &["<pubkey>@<host>:<port>"],
        ),
        case(
            &["connect", &format!("{bob_id}@127.0.0.1")],
            "invalid_input",
            &["host:port"],
        ),
        case(&["disconnect", "zz"], "invalid_input", &["node id"]),
        // Payments to nodes.
        case(
            &["keysend", &bob_id, "18446744073709551616"],
            "invalid_input",
            &["too large"],
        ),
        case(&["keysend", "02abc", "1000"], "invalid_input", &["node id"]),
        case(
            &["keysend", &bob_id, "0"],
            "invalid_input",
            &["amount", "above 0 msat"],
        ),
        // On-chain.
        case(
            &["send", &own_address, "2100000000000001"],
            "invalid_input",
            &["21 million"],
        ),
        case(
            &["send", &own_address, "5000000"],
            "insufficient_funds",
            &[],
        ),
        case(
            &["send", "bcrt1qnotanaddress", "1000"],
            "invalid_address",
            &[],
        ),
        case(&["send", &mainnet_address, "1000"], "wrong_network", &[]),
        case(
            &["send", &own_address, "1000", "--feerate", "cheap"],
            "invalid_input",
            &["fee rate"],
        ),
        case(
            &["send", &own_address, "1000", "--feerate", "0"],
            "invalid_input",
            &["fee rate"],
        ),
        // Messages.
        case(
            &["verifymessage", "hello", "signature", "zz"],
            "invalid_input",
            &["node id"],
        ),
    ];

    for Case {
        args,
        code,
        mentions,
    } in &cases
    {
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        let (got_code, message) = alice.json_error(&args);
        assert_eq!(got_code, *code, "{args:?}: {message}");
        for text in mentions {
            assert!(message.contains(text.as_str()), "{args:?}: {message}");
        }
        let stderr = alice.fails(&args);
        assert!(stderr.contains(&message), "{args:?}: {stderr}");
        assert!(
            alice.is_running() && bob.is_running(),
            "{args:?} stopped a daemon"
        );
    }

    assert_eq!(snapshot(&alice), alice_before, "alice changed");
    assert_eq!(snapshot(&bob), bob_before, "bob changed");
}

//! Every CLI command end to end: the real `lightfilter` binary against two daemons (child
//! processes) on an embedded regtest peer, human output read and `--json` output parsed back.
//!
//! The commands only talk to the control API, whatever chain the daemons follow, so these tests
//! run on the embedded peer; the node's own tests cover Bitcoin Core.

use crate::common;

use bitcoin::Amount;
use common::cli::{wait_for_value, wait_until, Chain, Daemon};
use serde_json::Value;

fn is_hex(text: &str, len: usize) -> bool {
    text.len() == len && text.bytes().all(|byte| byte.is_ascii_hexdigit())
}

fn payment_with_hash(payments: &Value, hash: &str) -> Value {
    payments
        .as_array()
        .expect("a list of payments")
        .iter()
        .find(|payment| payment["payment_hash"] == hash)
        .cloned()
        .unwrap_or_else(|| panic!("no payment {hash} in {payments}"))
}

#[test]
fn every_command_works_end_to_end() {
    let chain = Chain::start();
    let alice = Daemon::start("alice", &chain);
    let bob = Daemon::start("bob", &chain);

    // getinfo: JSON fields, human output, and --wait-synced.
    alice.wait_synced_to(chain.height());
    let info = alice.json(&["getinfo", "--wait-synced"]);
    assert!(is_hex(info["node_id"].as_str().unwrap(), 66), "{info}");
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["block_height"], chain.height());
    assert!(is_hex(info["block_hash"].as_str().unwrap(), 64), "{info}");
    assert_eq!(info["synced"], true);
    assert_eq!(info["num_peers"], 0);
    assert_eq!(info["num_channels"], 0);
    let human = alice.cli(&["getinfo"]);
    assert!(human.success);
    assert!(human.stdout.contains(info["node_id"].as_str().unwrap()));
    assert!(human.stdout.contains("synced"), "{}", human.stdout);

    // newaddress, balance, utxos.
    let address = alice.json(&["newaddress"])["address"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(address.starts_with("bcrt1"), "{address}");
    let human = alice.cli(&["newaddress"]);
    assert!(human.stdout.trim().starts_with("bcrt1"), "{}", human.stdout);
    let funding = chain.fund(&address, Amount::from_sat(1_000_000));
    // A compact-filter client sees incoming payments once they are mined.
    chain.wait_in_mempool(&funding.to_string());
    chain.mine(1);
    let balance = wait_for_value("alice's funds confirmed", || {
        let balance = alice.json(&["balance"]);
        (balance["onchain_confirmed_sat"] == 1_000_000).then_some(balance)
    });
    for field in [
        "onchain_pending_sat",
        "onchain_immature_sat",
        "lightning_sat",
    ] {
        assert_eq!(balance[field], 0, "{field} in {balance}");
    }
    let human = alice.cli(&["balance"]).stdout;
    assert!(human.contains("1000000 sat"), "{human}");
    let utxos = alice.json(&["utxos"]);
    let utxos = utxos.as_array().unwrap();
    assert_eq!(utxos.len(), 1, "{utxos:?}");
    assert_eq!(utxos[0]["amount_sat"], 1_000_000);
    assert_eq!(utxos[0]["outpoint"], format!("{funding}:0"));
    assert_eq!(utxos[0]["address"], address.as_str());
    assert!(alice.cli(&["utxos"]).stdout.contains("1000000 sat"));
    bob.fund(&chain, Amount::from_sat(200_000));

    // connect, peers, disconnect.
    let bob_id = bob.node_id();
    let connected = alice.json(&["connect", &bob.uri()]);
    assert_eq!(connected["node_id"], bob_id.as_str());
    wait_until("bob among alice's connected peers", || {
        alice
            .json(&["peers"])
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| peer["node_id"] == bob_id.as_str() && peer["connected"] == true)
    });
    assert!(alice.cli(&["peers"]).stdout.contains("connected"));
    let disconnected = alice.json(&["disconnect", &bob_id]);
    assert_eq!(disconnected["node_id"], bob_id.as_str());
    wait_until("bob disconnected from alice", || {
        !alice
            .json(&["peers"])
            .as_array()
            .unwrap()
            .iter()
            .any(|peer| peer["node_id"] == bob_id.as_str() && peer["connected"] == true)
    });

    // openchannel (with a push), channels.
    let opened = alice.json(&[
        "openchannel",
        &bob.uri(),
        "400000",
        "--push-msat",
        "1000000",
    ]);
    let channel_id = opened["channel_id"].as_str().unwrap().to_string();
    assert!(is_hex(&channel_id, 64), "{opened}");
    assert_eq!(opened["propagated"], true, "{opened}");
    chain.wait_in_mempool(opened["funding_txid"].as_str().unwrap());
    let pending = alice
        .channel(&channel_id)
        .expect("the new channel is listed");
    assert_eq!(pending["ready"], false);
    chain.mine(6);
    let channel = wait_for_value("the channel usable on both sides", || {
        let usable = |side: &Daemon| {
            side.channel(&channel_id)
                .filter(|channel| channel["usable"] == true)
        };
        usable(&bob).and_then(|_| usable(&alice))
    });
    assert_eq!(channel["counterparty_node_id"], bob_id.as_str());
    assert_eq!(channel["capacity_sat"], 400_000);
    assert_eq!(channel["ready"], true);
    assert_eq!(channel["public"], false);
    let local = channel["local_balance_msat"].as_u64().unwrap();
    assert!(local < 399_000_000 && local > 390_000_000, "{channel}");
    let human = alice.cli(&["channels"]).stdout;
    assert!(
        human.contains(&channel_id) && human.contains("400000 sat") && human.contains("usable"),
        "{human}"
    );
    let info = alice.json(&["getinfo"]);
    assert_eq!(info["num_channels"], 1);
    assert_eq!(info["num_peers"], 1);

    // invoice, pay, payments.
    let invoice = bob.json(&["invoice", "20000000", "--description", "coffee"]);
    let bolt11 = invoice["bolt11"].as_str().unwrap().to_string();
    let hash = invoice["payment_hash"].as_str().unwrap().to_string();
    assert!(bolt11.starts_with("lnbcrt"), "{invoice}");
    assert!(is_hex(&hash, 64), "{invoice}");
    let paid = alice.json(&["pay", &bolt11]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
    assert_eq!(paid["payment_hash"], hash.as_str());
    let sent = payment_with_hash(&alice.json(&["payments"]), &hash);
    assert_eq!(sent["direction"], "outbound");
    assert_eq!(sent["status"], "succeeded");
    assert_eq!(sent["amount_msat"], 20_000_000);
    let received = wait_for_value("bob to record the payment", || {
        Some(payment_with_hash(&bob.json(&["payments"]), &hash))
            .filter(|payment| payment["status"] == "succeeded")
    });
    assert_eq!(received["direction"], "inbound");
    assert_eq!(received["amount_msat"], 20_000_000);
    assert!(alice.cli(&["payments"]).stdout.contains(&hash));
    wait_until("bob's balance to include the payment", || {
        bob.json(&["balance"])["lightning_sat"] == 21_000
    });

    // An any-amount invoice paid with --amount-msat, human output.
    let open_invoice = bob.json(&["invoice", "any"]);
    let run = alice.cli(&[
        "pay",
        open_invoice["bolt11"].as_str().unwrap(),
        "--amount-msat",
        "3000000",
    ]);
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout.starts_with("succeeded outbound 3000 sat"),
        "{}",
        run.stdout
    );

    // keysend.
    let keysent = alice.json(&["keysend", &bob_id, "1000000"]);
    assert_eq!(keysent["status"], "succeeded", "{keysent}");
    wait_until("bob's balance to include the keysend", || {
        bob.json(&["balance"])["lightning_sat"] == 25_000
    });

    // offer (BOLT12), paid.
    let offer = bob.json(&["offer", "2000000", "--description", "tea"])["offer"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(offer.starts_with("lno1"), "{offer}");
    let paid_offer = alice.json(&["pay", &offer]);
    assert_eq!(paid_offer["status"], "succeeded", "{paid_offer}");
    wait_until("bob's balance to include the offer's payment", || {
        bob.json(&["balance"])["lightning_sat"] == 27_000
    });
    let any_offer = bob.json(&["offer"])["offer"].as_str().unwrap().to_string();
    assert!(any_offer.starts_with("lno1"), "{any_offer}");

    // signmessage, verifymessage.
    let alice_id = alice.node_id();
    let signature = alice.json(&["signmessage", "hello bob"])["signature"]
        .as_str()
        .unwrap()
        .to_string();
    let verified = bob.json(&["verifymessage", "hello bob", &signature, &alice_id]);
    assert_eq!(verified["valid"], true);
    let forged = bob.json(&["verifymessage", "hello carol", &signature, &alice_id]);
    assert_eq!(forged["valid"], false);
    let wrong_signer = bob.json(&["verifymessage", "hello bob", &signature, &bob_id]);
    assert_eq!(wrong_signer["valid"], false);
    let human = bob.cli(&["verifymessage", "hello bob", &signature, &alice_id]);
    assert!(human.stdout.starts_with("valid"), "{}", human.stdout);

    // send: an amount with a fee rate, then everything.
    let to_alice = alice.new_address();
    let sent = bob.json(&["send", &to_alice, "50000", "--feerate", "2"]);
    let txid = sent["txid"].as_str().unwrap().to_string();
    assert!(is_hex(&txid, 64), "{sent}");
    assert_eq!(sent["propagated"], true, "{sent}");
    // Taken (the peer asked for it) means in the peer's mempool once the peer has checked it.
    chain.wait_in_mempool(&txid);
    chain.mine(1);
    wait_until("alice to receive 50000 sat on chain", || {
        alice
            .json(&["utxos"])
            .as_array()
            .unwrap()
            .iter()
            .any(|utxo| utxo["amount_sat"] == 50_000 && utxo["address"] == to_alice.as_str())
    });
    wait_until("bob's change confirmed", || {
        let balance = bob.json(&["balance"]);
        balance["onchain_pending_sat"] == 0 && balance["onchain_confirmed_sat"] != 0
    });
    let carol_address = alice.new_address();
    let before = bob.confirmed_sat();
    // Everything but the reserve bob keeps for his anchor channel's fees.
    let swept = bob.json(&["send", &carol_address, "all"]);
    assert_eq!(swept["reserve_kept_sat"], 25_000, "{swept}");
    let swept_sat = swept["amount_sat"].as_u64().unwrap();
    assert!(
        swept_sat < before - 25_000 && swept_sat > before - 25_000 - 2_000,
        "{swept} of {before} sat"
    );
    chain.wait_in_mempool(swept["txid"].as_str().unwrap());
    chain.mine(1);
    wait_until("bob's wallet down to the anchor reserve", || {
        bob.confirmed_sat() == 25_000
    });
    wait_until("alice to receive bob's sweep", || {
        alice
            .json(&["utxos"])
            .as_array()
            .unwrap()
            .iter()
            .any(|utxo| {
                utxo["address"] == carol_address.as_str() && utxo["amount_sat"] == swept_sat
            })
    });

    // closechannel: cooperative, then a second channel by force.
    let closed = alice.json(&["closechannel", &channel_id]);
    assert_eq!(closed["channel_id"], channel_id.as_str());
    assert_eq!(closed["force"], false);
    assert_eq!(closed["propagated"], true, "{closed}");
    assert!(
        is_hex(closed["closing_txid"].as_str().unwrap(), 64),
        "{closed}"
    );
    wait_until("the cooperative close to reach the mempool", || {
        !chain.peer.mempool().is_empty()
    });
    chain.mine(1);
    wait_until("the closed channel to leave both lists", || {
        alice.channel(&channel_id).is_none() && bob.channel(&channel_id).is_none()
    });
    // Closed-channel funds come back once deep enough (and swept, where needed).
    chain.mine_until("bob's channel funds back in his wallet", || {
        bob.confirmed_sat() >= 25_000 + 26_000
    });

    // A second channel, waited for with progress on standard error.
    let opening = alice.spawn_cli(&[
        "openchannel",
        &bob.uri(),
        "100000",
        "--wait-ready",
        "--timeout",
        "300",
    ]);
    let mut funding_txid = String::new();
    wait_until("the second channel's funding transaction", || {
        let found = alice
            .json(&["channels"])
            .as_array()
            .unwrap()
            .iter()
            .find_map(|channel| {
                (channel["capacity_sat"] == 100_000)
                    .then(|| channel["funding_txid"].as_str().map(str::to_string))
                    .flatten()
            });
        found.is_some_and(|txid| {
            funding_txid = txid;
            true
        })
    });
    chain.wait_in_mempool(&funding_txid);
    chain.mine(6);
    let run = common::cli::Run::from(opening.release().wait_with_output().unwrap());
    assert!(run.success, "{run:?}");
    assert!(
        run.stdout.starts_with("opening a 100000 sat channel to"),
        "{}",
        run.stdout
    );
    assert!(
        run.stderr.contains("waiting for the funding transaction")
            && run.stderr.contains("channel ready"),
        "{}",
        run.stderr
    );
    let second = run
        .stdout
        .split("channel id ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .unwrap()
        .to_string();
    assert_eq!(alice.channel(&second).unwrap()["ready"], true);
    wait_until("the second channel usable", || {
        alice
            .channel(&second)
            .is_some_and(|channel| channel["usable"] == true)
    });
    let forced = alice.json(&["closechannel", &second, "--force"]);
    assert_eq!(forced["force"], true);
    assert_eq!(forced["propagated"], true, "{forced}");
    wait_until("the force-closed channel to leave alice's list", || {
        alice.channel(&second).is_none()
    });
    wait_until("alice's balance to show funds on their way back", || {
        alice.json(&["balance"])["claimable_onchain_sat"]
            .as_u64()
            .is_some_and(|sat| sat > 90_000)
    });

    // stop.
    let mut alice = alice;
    let stopping = alice.json(&["stop"]);
    assert_eq!(stopping["stopping"], true);
    assert!(alice.wait_exit(), "alice exits successfully after stop");
    assert!(!alice.data_dir().join("api.addr").exists());
    assert!(!alice.data_dir().join("api.cookie").exists());
    let (code, message) = alice.json_error(&["getinfo"]);
    assert_eq!(code, "daemon_not_running");
    assert!(
        message.contains("no lightfilter daemon is running"),
        "{message}"
    );
    let log = alice.log();
    assert!(log.contains("stop requested"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[test]
fn a_pushed_amount_is_the_receivers_balance() {
    let chain = Chain::start();
    let alice = Daemon::start("alice", &chain);
    let bob = Daemon::start("bob", &chain);
    alice.fund(&chain, Amount::from_sat(500_000));
    bob.fund(&chain, Amount::from_sat(100_000));
    let opened = alice.json(&[
        "openchannel",
        &bob.uri(),
        "400000",
        "--push-msat",
        "1000000",
    ]);
    let channel_id = opened["channel_id"].as_str().unwrap().to_string();
    chain.wait_in_mempool(opened["funding_txid"].as_str().unwrap());
    chain.mine(6);
    let channel = wait_for_value("the channel usable on bob's side", || {
        bob.channel(&channel_id)
            .filter(|channel| channel["usable"] == true)
    });
    // Below the channel reserve (1% of 400000 sat), bob owns exactly what was pushed.
    assert_eq!(channel["local_balance_msat"], 1_000_000, "{channel}");
    let balance = bob.json(&["balance"]);
    assert_eq!(balance["lightning_msat"], 1_000_000, "{balance}");
    assert_eq!(balance["lightning_sat"], 1_000, "{balance}");
}

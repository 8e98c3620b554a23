//! Daemons keeping their channel state and wallet in a real PostgreSQL (`--store`): a node on
//! PostgreSQL paying and being paid across a restart and closing; a standby taking over from
//! a primary killed with SIGKILL while payments flow; a daemon whose PostgreSQL stops in the
//! middle of payments; and `store copy` both ways, byte for byte.

use crate::common;

use std::time::{Duration, Instant};

use common::cli::{funding_outpoint, wait_for_value, wait_until, Chain, Daemon};
use common::postgres::Postgres;
use common::restore::{data_dir_from_words, local_msat, pay, snapshot, wait_usable, words_of};

/// What LDK logs when it reads a channel manager older than a channel's monitor.
const STALE_MANAGER: &str = "A ChannelManager is stale compared to the current ChannelMonitor";

/// What a peer's log shows if it was ever sent a state older than its own.
const STALE_STATE_SIGNS: [&str; 3] = [
    "very old local commitment",
    "garbage channel_reestablish",
    "fallen behind",
];

fn assert_never_saw_a_stale_state(peer: &Daemon) {
    let log = peer.log();
    for sign in STALE_STATE_SIGNS {
        assert!(
            !log.contains(sign),
            "{} saw a stale state: {sign}",
            peer.name
        );
    }
}

/// `payer` pays `payee` `sat` over `channel_id` once it can send that much (the previous
/// payment's state updates may still be settling), and the payment succeeds.
fn pay_over(payer: &Daemon, payee: &Daemon, channel_id: &str, sat: u64) {
    wait_until(&format!("{} able to send {sat} sat", payer.name), || {
        payer.channel(channel_id).is_some_and(|channel| {
            channel["usable"] == true
                && channel["outbound_capacity_msat"].as_u64().unwrap() >= sat * 1_000
        })
    });
    pay(payer, payee, sat);
}

/// The channel's balance on both sides: each side's local balance, which add up to the same
/// total whichever side is asked (the other side's `inbound` plus reserve is our local).
fn balances(a: &Daemon, b: &Daemon, channel_id: &str) -> (u64, u64) {
    (local_msat(a, channel_id), local_msat(b, channel_id))
}

/// Mines a few blocks at a time until `probe` gives a value (an HTLC's expiry may be hundreds
/// of blocks away).
fn mine_for_value<T>(chain: &Chain, what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up mining for {what}");
        chain.mine(6);
        std::thread::sleep(Duration::from_secs(1));
    }
}

#[test]
fn a_node_on_postgres_pays_and_is_paid_across_a_restart_and_closes() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    let chain = Chain::start();
    let store = ["--store", url.as_str()];
    let mut alice = Daemon::start_with("pg-alice", &chain, &store);
    let bob = Daemon::start("pg-bob", &chain);
    let info = alice.json(&["getinfo"]);
    assert_eq!(info["store"]["kind"], "postgresql", "{info}");
    assert_eq!(info["store"]["role"], "writer", "{info}");
    assert!(
        !info["store"]["location"]
            .as_str()
            .unwrap()
            .contains("@127.0.0.1:0"),
        "{info}"
    );

    alice.fund(&chain, bitcoin::Amount::from_sat(1_000_000));
    let channel_id = alice.open_usable_channel(&chain, &bob, 400_000);
    pay_over(&alice, &bob, &channel_id, 20_000);
    pay_over(&bob, &alice, &channel_id, 5_000);
    let before = balances(&alice, &bob, &channel_id);
    // Nothing of the channel or the wallet is in the data directory.
    assert!(!alice.data_dir().join("ldk").exists());
    assert!(!alice.data_dir().join("wallet.sqlite").exists());
    let keys: u64 = server
        .psql("SELECT count(*) FROM lightfilter_kv WHERE primary_namespace = 'monitors'")
        .parse()
        .unwrap();
    assert_eq!(keys, 1, "one channel monitor in PostgreSQL");

    // A clean restart (a crash is the failover test's).
    alice.stop_and_start(&chain, &store);
    wait_usable([&alice, &bob], &channel_id);
    assert_eq!(balances(&alice, &bob, &channel_id), before);
    pay_over(&alice, &bob, &channel_id, 7_000);
    pay_over(&bob, &alice, &channel_id, 2_000);

    let onchain_before = alice.confirmed_sat();
    let closed = alice.json(&["closechannel", &channel_id]);
    assert_eq!(closed["propagated"], true, "{closed}");
    wait_until("the close in the mempool", || {
        !chain.peer.mempool().is_empty()
    });
    chain.mine(1);
    wait_until("the closed channel gone", || {
        alice.channel(&channel_id).is_none()
    });
    let onchain = wait_for_value("the close's funds in alice's wallet", || {
        let confirmed = alice.confirmed_sat();
        (confirmed > onchain_before).then_some(confirmed)
    });
    // 400,000 opened, 27,000 paid out, 7,000 paid in, less the closing fee.
    assert!(
        onchain - onchain_before > 370_000 && onchain - onchain_before <= 380_000,
        "{onchain_before} -> {onchain}"
    );
    assert_never_saw_a_stale_state(&bob);
}

#[test]
fn a_standby_takes_over_from_a_killed_primary_while_payments_flow() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    let chain = Chain::start();
    let store = ["--store", url.as_str()];
    let mut primary = Daemon::start_with("pg-primary", &chain, &store);
    let bob = Daemon::start("pg-peer", &chain);
    let words = words_of(&primary);
    let standby_dir = data_dir_from_words("pg-standby", &words);
    let mut standby = Daemon::spawn_in(
        "pg-standby",
        standby_dir,
        &chain,
        &["--store", url.as_str(), "--standby"],
    );
    standby.wait_api();
    let waiting = wait_for_value("the standby waiting for the primary", || {
        let info = standby.json(&["getinfo"]);
        (info["state"] == "standby").then_some(info)
    });
    let holder = waiting["store"]["waiting_for"]
        .as_str()
        .unwrap()
        .to_string();
    assert!(
        holder.contains(&format!("pid {}", primary.pid())),
        "{waiting}"
    );
    assert_eq!(waiting["node_id"], primary.node_id());

    primary.fund(&chain, bitcoin::Amount::from_sat(1_000_000));
    let channel_id = primary.open_usable_channel(&chain, &bob, 400_000);
    let funding = funding_outpoint(&chain, &primary, &channel_id, 400_000);
    for _ in 0..3 {
        pay_over(&primary, &bob, &channel_id, 10_000);
        pay_over(&bob, &primary, &channel_id, 1_000);
    }
    // Payments flowing from the peer while the primary is killed: invoices made now, paid
    // by a thread of the peer's one after the other; the kill comes once two went through,
    // so the next ones are in flight or meet a node that is gone.
    let invoices: Vec<String> = (0..10)
        .map(|_| {
            primary.json(&["invoice", "2000000"])["bolt11"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let bob_dir = bob.data_dir().to_path_buf();
    let (done_tx, done) = std::sync::mpsc::channel();
    let payer = std::thread::spawn(move || {
        invoices
            .iter()
            .map(|invoice| {
                let paid = common::cli::cli_in(&bob_dir, &["pay", invoice, "--json"])
                    .stdout
                    .contains("\"succeeded\"");
                let _ = done_tx.send(());
                paid
            })
            .collect::<Vec<bool>>()
    });
    for _ in 0..2 {
        done.recv_timeout(Duration::from_secs(60))
            .expect("payments go through before the kill");
    }
    primary.kill_hard();
    let killed = Instant::now();

    wait_until("the standby running", || standby.is_started());
    let running_after = killed.elapsed();
    let info = standby.json(&["getinfo"]);
    assert_eq!(info["store"]["role"], "writer", "{info}");
    wait_usable([&standby, &bob], &channel_id);
    let usable_after = killed.elapsed();
    let paid_during = payer.join().unwrap();
    eprintln!(
        "failover: standby running {:.1} s and the channel usable {:.1} s after SIGKILL; \
         payments during it: {paid_during:?}",
        running_after.as_secs_f64(),
        usable_after.as_secs_f64()
    );
    // The bound: the standby takes the lock within a poll (250 ms) of the kill, then starts
    // like any node (syncs its own chain, reads the state, reconnects).
    assert!(
        usable_after < Duration::from_secs(60),
        "took over in {usable_after:?}"
    );

    // The channel carries payments both ways.
    pay_over(&standby, &bob, &channel_id, 3_000);
    pay_over(&bob, &standby, &channel_id, 4_000);
    // Once no payment of the peer's is pending, the balances add up: the peer's balance is
    // what it received less what it paid, and every payment it saw succeed arrived at the
    // node the standby now runs.
    let payments = wait_for_value("the peer's payments settled", || {
        let payments = bob.json(&["payments"]);
        let list = payments.as_array().unwrap().clone();
        list.iter()
            .all(|p| p["status"] != "pending")
            .then_some(list)
    });
    let sum = |direction: &str, field: &str| -> u64 {
        payments
            .iter()
            .filter(|p| p["direction"] == direction && p["status"] == "succeeded")
            .map(|p| p[field].as_u64().unwrap_or(0))
            .sum()
    };
    let paid_out = sum("outbound", "amount_msat") + sum("outbound", "fee_msat");
    let paid_in = sum("inbound", "received_msat");
    let (ours, theirs) = balances(&standby, &bob, &channel_id);
    assert_eq!(theirs, paid_in - paid_out, "the peer's balance");
    assert!(
        ours + theirs <= 400_000_000 && ours + theirs > 395_000_000,
        "{ours} + {theirs}"
    );
    let node_payments = standby.json(&["payments"]);
    for paid in payments
        .iter()
        .filter(|p| p["direction"] == "outbound" && p["status"] == "succeeded")
    {
        let hash = &paid["payment_hash"];
        assert!(
            node_payments
                .as_array()
                .unwrap()
                .iter()
                .any(|p| &p["payment_hash"] == hash && p["status"] == "succeeded"),
            "payment {hash} succeeded for the peer but the node has no record of it"
        );
    }
    assert!(
        chain.peer.utxo(&funding).is_some(),
        "the channel was closed"
    );
    assert_never_saw_a_stale_state(&bob);
}

#[test]
fn a_daemon_whose_postgres_stops_mid_payments_stops_and_resumes_with_nothing_lost() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    let chain = Chain::start();
    let store = ["--store", url.as_str()];
    let mut alice = Daemon::start_with("pg-stopped", &chain, &store);
    let bob = Daemon::start("pg-stopped-peer", &chain);
    alice.fund(&chain, bitcoin::Amount::from_sat(1_000_000));
    let channel_id = alice.open_usable_channel(&chain, &bob, 400_000);
    let funding = funding_outpoint(&chain, &alice, &channel_id, 400_000);
    pay_over(&alice, &bob, &channel_id, 10_000);

    // Alice pays a run of invoices; PostgreSQL stops after the second went through.
    let invoices: Vec<String> = (0..10)
        .map(|_| {
            bob.json(&["invoice", "3000000"])["bolt11"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    let alice_dir = alice.data_dir().to_path_buf();
    let (done_tx, done) = std::sync::mpsc::channel();
    let payer = std::thread::spawn(move || {
        invoices
            .iter()
            .filter_map(|invoice| {
                let run = common::cli::cli_in(&alice_dir, &["pay", invoice, "--json"]);
                let _ = done_tx.send(());
                let paid: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
                (paid["status"] == "succeeded")
                    .then(|| paid["payment_hash"].as_str().unwrap().to_string())
            })
            .collect::<Vec<String>>()
    });
    for _ in 0..2 {
        done.recv_timeout(Duration::from_secs(60))
            .expect("payments go through before PostgreSQL stops");
    }
    server.stop("fast");
    // The daemon stops by itself: it can no longer write.
    assert!(!alice.wait_exit(), "the daemon exited successfully");
    let acknowledged = payer.join().unwrap();
    let log = alice.log();
    assert!(log.contains("PostgreSQL"), "{}", alice.log_tail());

    server.start_again();
    alice.restart(&chain, &store);
    // PostgreSQL may stop between the write of a channel monitor update and the write of the
    // channel manager that follows it. The manager read back is then one update behind its
    // monitor, and LDK closes the channel (it cannot rebuild the manager's side): the node
    // holds its own commitment (it is not proved current) and the peer closes. Nothing is
    // lost either way; what differs is whether the channel goes on.
    let manager_was_stale = wait_for_value(
        "the channel usable again, or closed for a manager older than its monitor",
        || {
            if alice.log().contains(STALE_MANAGER) {
                return Some(true);
            }
            [&alice, &bob]
                .iter()
                .all(|node| {
                    node.channel(&channel_id)
                        .is_some_and(|channel| channel["usable"] == true)
                })
                .then_some(false)
        },
    );
    // Every payment alice acknowledged is on record as succeeded, and the two sides agree
    // on every payment: what bob received is what alice paid. (Bob's invoices that were never
    // paid stay pending until they expire.)
    let succeeded = |list: &[serde_json::Value], direction: &str| -> Vec<String> {
        let mut hashes: Vec<String> = list
            .iter()
            .filter(|p| p["direction"] == direction && p["status"] == "succeeded")
            .map(|p| p["payment_hash"].as_str().unwrap().to_string())
            .collect();
        hashes.sort();
        hashes
    };
    let payments = |node: &Daemon| node.json(&["payments"]).as_array().unwrap().clone();
    let settled = || {
        let list = payments(&alice);
        list.iter()
            .filter(|p| p["direction"] == "outbound")
            .all(|p| p["status"] != "pending")
            .then_some(list)
    };
    // On chain, a payment in flight settles when its HTLC is claimed or times out.
    let alice_payments = if manager_was_stale {
        mine_for_value(&chain, "alice's payments settled on chain", settled)
    } else {
        wait_for_value("alice's payments settled", settled)
    };
    let paid = succeeded(&alice_payments, "outbound");
    assert!(acknowledged.len() >= 2, "{acknowledged:?}");
    for hash in &acknowledged {
        assert!(
            paid.contains(hash),
            "payment {hash} was acknowledged as succeeded but is not on record after the restart"
        );
    }
    let bob_payments = wait_for_value(
        "bob's received payments to be the ones alice's record shows as paid",
        || {
            let list = payments(&bob);
            (succeeded(&list, "inbound") == paid).then_some(list)
        },
    );
    let received: u64 = bob_payments
        .iter()
        .filter(|p| p["direction"] == "inbound" && p["status"] == "succeeded")
        .map(|p| p["received_msat"].as_u64().unwrap())
        .sum();
    if manager_was_stale {
        eprintln!(
            "PostgreSQL stopped between a monitor update and the manager's write: the channel \
             was closed, and its funds are followed to the wallets"
        );
        // Closed by bob: everything alice did not pay comes back to her wallet, less fees.
        let confirmed = mine_for_value(&chain, "alice's share back in her wallet", || {
            let balance = alice.json(&["balance"]);
            [
                "onchain_pending_sat",
                "claimable_onchain_sat",
                "sweeping_sat",
            ]
            .iter()
            .all(|field| balance[*field] == 0)
            .then(|| balance["onchain_confirmed_sat"].as_u64().unwrap())
        });
        assert!(
            confirmed + 20_000 > 1_000_000 - received / 1_000,
            "alice holds {confirmed} sat after paying {received} msat of 1,000,000 sat"
        );
        assert_never_saw_a_stale_state(&bob);
        return;
    }
    // Bob's balance is what he received, once the last updates settled.
    let (ours, theirs) = wait_for_value("bob's balance to be what he received", || {
        let (ours, theirs) = balances(&alice, &bob, &channel_id);
        (theirs == received).then_some((ours, theirs))
    });
    assert!(ours + theirs > 395_000_000, "{ours} + {theirs}");
    pay_over(&alice, &bob, &channel_id, 1_000);
    assert!(
        chain.peer.utxo(&funding).is_some(),
        "the channel was closed"
    );
    assert_never_saw_a_stale_state(&bob);
}

#[test]
fn store_copy_moves_a_node_to_postgres_and_back_byte_for_byte() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let url = server.url();
    let chain = Chain::start();
    let mut alice = Daemon::start("copy-alice", &chain);
    alice.fund(&chain, bitcoin::Amount::from_sat(250_000));
    let balance = alice.json(&["balance"]);
    let node_id = alice.node_id();
    let words = words_of(&alice);
    let stopped = alice.cli(&["stop"]);
    assert!(stopped.success, "{}", stopped.stderr);
    assert!(alice.wait_exit());
    // Keys of every shape besides the node's own: nested namespaces, binary and empty values.
    let ldk = alice.data_dir().join("ldk");
    std::fs::create_dir_all(ldk.join("extra/sub")).unwrap();
    std::fs::write(ldk.join("extra/sub/binary"), [0u8, 255, 10, 13, 0, 128]).unwrap();
    std::fs::write(ldk.join("extra/sub/empty"), []).unwrap();
    std::fs::write(ldk.join("extra/top"), b"top").unwrap();
    let before = snapshot(&ldk);
    assert!(before.len() >= 5, "{:?}", before.keys());

    // The stopped node's files into PostgreSQL.
    let copied = common::cli::cli_in(alice.data_dir(), &["store", "copy", "--to", &url, "--json"]);
    assert!(copied.success, "{} {}", copied.stdout, copied.stderr);
    let report: serde_json::Value = serde_json::from_str(&copied.stdout).unwrap();
    assert_eq!(report["keys"], before.len(), "{report}");
    assert_eq!(report["wallet"], true, "{report}");
    assert_eq!(report["node_id"], node_id.as_str(), "{report}");
    // A second copy finds the node's state there and changes nothing.
    let again = common::cli::cli_in(alice.data_dir(), &["store", "copy", "--to", &url]);
    assert!(!again.success);
    assert!(again.stderr.contains("copied"), "{}", again.stderr);
    // The files are marked as moved: a daemon refuses to start on them.
    let refused = common::cli::lightfilter_in(alice.data_dir())
        .args(["daemon", "--bitcoin-peer", &chain.addr().to_string()])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr).to_string() + &alice.log_tail();
    assert!(refused.contains("was copied to PostgreSQL"), "{refused}");

    // And back, into a data directory made from the words.
    let back = data_dir_from_words("copy-back", &words);
    let copied = common::cli::cli_in(back.path(), &["store", "copy", "--from", &url, "--json"]);
    assert!(copied.success, "{} {}", copied.stdout, copied.stderr);
    assert_eq!(
        snapshot(&back.path().join("ldk")),
        before,
        "not byte for byte"
    );
    assert!(back.path().join("wallet.sqlite").exists());

    // The node runs from the copy, with its wallet as it was.
    let returned = Daemon::start_in("copy-returned", back, &chain, &[]);
    assert_eq!(returned.node_id(), node_id);
    let now = returned.json(&["balance"]);
    assert_eq!(
        now["onchain_confirmed_sat"],
        balance["onchain_confirmed_sat"]
    );
    // It runs on the files again.
    let info = returned.json(&["getinfo"]);
    assert_eq!(info["store"]["kind"], "files", "{info}");
    // PostgreSQL is marked as moved back: a daemon refuses to start on it.
    let refused = common::cli::lightfilter_in(alice.data_dir())
        .args([
            "daemon",
            "--bitcoin-peer",
            &chain.addr().to_string(),
            "--store",
            &url,
        ])
        .env("RUST_LOG", "warn")
        .output()
        .unwrap();
    assert!(!refused.status.success());
    let refused = String::from_utf8_lossy(&refused.stderr).to_string() + &alice.log_tail();
    assert!(refused.contains("was copied"), "{refused}");
}

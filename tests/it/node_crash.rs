//! Crash safety. A daemon killed with SIGKILL in the middle of a stream of payments loses no
//! payment and no funds: every payment ends exactly once as succeeded or failed, what the
//! payer counts as paid is what the payee received, and the channel's money stays with its
//! owners.
//!
//! The channel itself survives unless the kill fell between a channel-monitor write and the
//! channel-manager write that follows it: LDK writes monitors before acknowledging each
//! update and the manager just after, and a restart that finds the manager older than a
//! monitor has LDK close that channel. The node holds it (that state is not proved current:
//! the manager may have been put back from an older copy) and lets the peer close it with its
//! latest state. Both outcomes are checked; a second test forces the stale-manager case so
//! that its recovery always runs.

use crate::common;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::time::Duration;

use bitcoin::{Amount, OutPoint};
use common::cli::*;
use serde_json::Value;

/// What LDK logs when the manager read at start-up is older than a channel monitor.
const STALE_MANAGER: &str = "ChannelManager is stale compared to the current ChannelMonitor";
/// Invoices in these tests are for 1,000 sat.
const INVOICE_SAT: u64 = 1_000;
/// Allowance for the commitment, anchor and sweep fees of a forced close.
const CLOSE_FEES_SAT: u64 = 20_000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// A `--ln-listen` flag on a free local port.
fn ln_listen_flags() -> Vec<String> {
    vec![
        "--ln-listen".to_string(),
        format!("127.0.0.1:{}", free_port()),
    ]
}

fn as_args(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Alice (funded with 1,000,000 sat) and Bob (100,000 sat), each listening for Lightning
/// peers on a local port, with a usable 600,000-sat channel Alice opened.
struct Pair {
    a: Daemon,
    b: Daemon,
    /// Alice's daemon flags, to restart her listening where she did.
    a_flags: Vec<String>,
    channel_id: String,
    funding: OutPoint,
    /// Alice's confirmed on-chain balance once the channel is open.
    a_wallet_before: u64,
}

impl Pair {
    fn open(chain: &Chain) -> Self {
        let a_flags = ln_listen_flags();
        let a = Daemon::start_with("alice", chain, &as_args(&a_flags));
        let b = Daemon::start_with("bob", chain, &as_args(&ln_listen_flags()));
        a.fund(chain, Amount::from_sat(1_000_000));
        b.fund(chain, Amount::from_sat(100_000));
        let channel_id = a.open_usable_channel(chain, &b, 600_000);
        let funding = funding_outpoint(chain, &a, &channel_id, 600_000);
        let a_wallet_before = a.confirmed_sat();
        Self {
            a,
            b,
            a_flags,
            channel_id,
            funding,
            a_wallet_before,
        }
    }
}

/// Where the node's key-value store keeps LDK's channel manager.
fn manager_file(data_dir: &Path) -> PathBuf {
    data_dir.join("ldk").join("manager")
}

/// `n` invoices of [`INVOICE_SAT`] from `payee`, as (payment hash, bolt11).
fn invoices(payee: &Daemon, n: usize) -> Vec<(String, String)> {
    (0..n)
        .map(|_| {
            let invoice = payee.json(&["invoice", &(INVOICE_SAT * 1_000).to_string()]);
            (
                invoice["payment_hash"].as_str().unwrap().to_string(),
                invoice["bolt11"].as_str().unwrap().to_string(),
            )
        })
        .collect()
}

/// Payment hash → status of the node's payments with `status`.
fn payments_with(node: &Daemon, status: &str) -> BTreeMap<String, String> {
    node.json(&["payments"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == status)
        .map(|p| {
            (
                p["payment_hash"].as_str().unwrap().to_string(),
                status.to_string(),
            )
        })
        .collect()
}

fn none_pending(node: &Daemon) -> bool {
    node.json(&["payments"])
        .as_array()
        .unwrap()
        .iter()
        .all(|p| p["status"] != "pending")
}

/// Mines `n` blocks ten at a time, letting both nodes follow.
fn mine_followed(chain: &Chain, nodes: [&Daemon; 2], n: u32) {
    for _ in 0..n / 10 {
        chain.mine(10);
        for node in nodes {
            node.wait_synced_to(chain.height());
        }
    }
}

/// After `a` force-closed the channel on restart: its commitment confirms, in-flight HTLCs
/// resolve on chain, and once the CSV delay (144 blocks) passed the sweeper brings at least
/// `a_channel_sat`, less fees, back to `a`'s wallet.
fn funds_return_after_forced_close(
    chain: &Chain,
    a: &Daemon,
    b: &Daemon,
    funding: OutPoint,
    a_wallet_before: u64,
    a_channel_sat: u64,
) {
    chain.mine_until("the commitment to spend the funding output", || {
        chain.peer.utxo(&funding).is_none()
    });
    mine_followed(chain, [a, b], 160);
    chain.mine_until("every payment of A to settle on chain", || none_pending(a));
    let expected = a_wallet_before + a_channel_sat - CLOSE_FEES_SAT;
    chain.mine_until("A's channel balance to be swept to its wallet", || {
        a.confirmed_sat() >= expected
    });
}

#[test]
fn a_daemon_killed_during_payments_loses_no_payment_and_no_funds() {
    let chain = Chain::start();
    let Pair {
        mut a,
        b,
        a_flags,
        channel_id,
        funding,
        a_wallet_before,
    } = Pair::open(&chain);

    // Twenty invoices; A pays them one after the other, and is killed while it does.
    let invoices = invoices(&b, 20);
    let payer = {
        let data_dir = a.data_dir().to_path_buf();
        let invoices = invoices.clone();
        std::thread::spawn(move || {
            for (_, bolt11) in &invoices {
                // Once the daemon is gone, these fail at once.
                let _ = cli_in(&data_dir, &["pay", bolt11, "--json"]);
            }
        })
    };
    wait_until("a few payments to arrive", || {
        payments_with(&b, "succeeded").len() >= 4
    });
    a.kill_hard();
    payer.join().unwrap();

    a.restart(&chain, &as_args(&a_flags));
    let forced_close = a.log().contains(STALE_MANAGER);
    if forced_close {
        // The kill fell between a monitor write and the manager write after it. At most one
        // payment was in flight; its HTLC resolves on chain either way.
        println!("the restarted node found its channel manager older than the monitor");
        let in_flight_or_paid = INVOICE_SAT * (payments_with(&b, "succeeded").len() as u64 + 1);
        funds_return_after_forced_close(
            &chain,
            &a,
            &b,
            funding,
            a_wallet_before,
            600_000 - in_flight_or_paid,
        );
    } else {
        wait_until("the channel to be usable again", || {
            a.channel(&channel_id).is_some_and(|c| c["usable"] == true)
        });
        // Nothing was force-closed: the funding output is still unspent on chain.
        assert!(
            chain.peer.utxo(&funding).is_some(),
            "the channel was closed"
        );
        wait_until("every payment to settle", || none_pending(&a));
    }

    // Every payment A started ends as succeeded or failed, once.
    let a_payments = a.json(&["payments"]);
    let mut outcome: BTreeMap<String, String> = BTreeMap::new();
    for payment in a_payments.as_array().unwrap() {
        assert_eq!(payment["direction"], "outbound");
        let hash = payment["payment_hash"].as_str().unwrap().to_string();
        let status = payment["status"].as_str().unwrap().to_string();
        assert!(
            outcome.insert(hash, status).is_none(),
            "one record per payment"
        );
    }
    // What A counts as paid is exactly what B counts as received.
    let paid: BTreeMap<String, String> = outcome
        .iter()
        .filter(|(_, status)| *status == "succeeded")
        .map(|(h, s)| (h.clone(), s.clone()))
        .collect();
    assert_eq!(
        paid,
        payments_with(&b, "succeeded"),
        "A's succeeded payments are B's received ones"
    );
    assert!(paid.len() >= 4);
    println!(
        "{} payment(s) started before the kill: {} succeeded, {} failed",
        outcome.len(),
        paid.len(),
        outcome.len() - paid.len()
    );
    if forced_close {
        return;
    }

    // Balances add up: B holds exactly what it received in the channel.
    let paid_msat = INVOICE_SAT * 1_000 * paid.len() as u64;
    wait_until("B's balance to settle", || {
        b.channel(&channel_id).unwrap()["local_balance_msat"].as_u64() == Some(paid_msat)
    });

    // The invoices never paid (or failed) can still be paid now.
    let (hash, bolt11) = invoices
        .iter()
        .find(|(hash, _)| !paid.contains_key(hash))
        .expect("an unpaid invoice")
        .clone();
    let paid_now = a.json(&["pay", &bolt11]);
    assert_eq!(paid_now["status"], "succeeded", "{paid_now}");
    assert_eq!(paid_now["payment_hash"], hash.as_str());
    std::thread::sleep(Duration::from_millis(100));
}

#[test]
fn a_manager_older_than_its_monitor_after_a_crash_closes_the_channel_without_loss() {
    let chain = Chain::start();
    let Pair {
        mut a,
        b,
        a_flags,
        funding,
        a_wallet_before,
        ..
    } = Pair::open(&chain);
    let b_wallet_before = b.confirmed_sat();

    let pay = |bolt11: &str| {
        let paid: Value = a.json(&["pay", bolt11]);
        assert_eq!(paid["status"], "succeeded", "{paid}");
    };
    let invoices = invoices(&b, 5);
    for (_, bolt11) in &invoices[..2] {
        pay(bolt11);
    }
    // The manager as the kill finds it when it falls just after a monitor write: one
    // written before the last three payments, whose monitor updates are all on disk.
    wait_until("the manager to be written after two payments", || {
        std::fs::metadata(manager_file(a.data_dir())).is_ok()
    });
    std::thread::sleep(Duration::from_millis(500));
    let old_manager = std::fs::read(manager_file(a.data_dir())).unwrap();
    for (_, bolt11) in &invoices[2..] {
        pay(bolt11);
    }
    a.kill_hard();
    std::fs::write(manager_file(a.data_dir()), &old_manager).unwrap();

    a.restart(&chain, &as_args(&a_flags));
    assert!(a.log().contains(STALE_MANAGER), "{}", a.log_tail());
    assert!(
        a.log()
            .contains("is held: its channel manager was older than its monitor"),
        "{}",
        a.log_tail()
    );
    // The peer's latest state, with all five payments, is the one that reached the chain.
    funds_return_after_forced_close(
        &chain,
        &a,
        &b,
        funding,
        a_wallet_before,
        600_000 - 5 * INVOICE_SAT,
    );
    let paid = payments_with(&a, "succeeded");
    assert_eq!(paid.len(), 5, "A still counts its five payments");
    assert_eq!(paid, payments_with(&b, "succeeded"));
    // B's side of the channel (the five payments, less its sweep fee) reaches B's wallet.
    chain.mine_until("B's channel balance to reach its wallet", || {
        b.confirmed_sat() > b_wallet_before
    });
    println!(
        "A's wallet went from {a_wallet_before} to {} sat, B's from {b_wallet_before} to {} sat",
        a.confirmed_sat(),
        b.confirmed_sat()
    );
}

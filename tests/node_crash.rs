//! Crash safety: a daemon killed with SIGKILL in the middle of a stream of payments restarts
//! with its channel open, every payment ends exactly once as succeeded or failed, and the
//! balances add up.

mod cli_support;

use std::collections::BTreeMap;
use std::net::TcpListener;
use std::time::Duration;

use bitcoin::Amount;
use cli_support::*;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[test]
fn a_daemon_killed_during_payments_loses_no_channel_and_no_payment() {
    let chain = Chain::start();
    let a_flags = [
        "--ln-listen".to_string(),
        format!("127.0.0.1:{}", free_port()),
    ];
    let b_flags = [
        "--ln-listen".to_string(),
        format!("127.0.0.1:{}", free_port()),
    ];
    let a_flags: Vec<&str> = a_flags.iter().map(String::as_str).collect();
    let b_flags: Vec<&str> = b_flags.iter().map(String::as_str).collect();
    let mut a = Daemon::start_with("alice", &chain, &a_flags);
    let b = Daemon::start_with("bob", &chain, &b_flags);
    a.fund(&chain, Amount::from_sat(1_000_000));
    b.fund(&chain, Amount::from_sat(100_000));
    let channel_id = a.open_usable_channel(&chain, &b, 600_000);
    let funding_txid = a.channel(&channel_id).unwrap()["funding_txid"]
        .as_str()
        .unwrap()
        .to_string();

    // Twenty invoices of 1,000 sat; A pays them one after the other, and is killed while it
    // does.
    let invoices: Vec<(String, String)> = (0..20)
        .map(|_| {
            let invoice = b.json(&["invoice", "1000000"]);
            (
                invoice["payment_hash"].as_str().unwrap().to_string(),
                invoice["bolt11"].as_str().unwrap().to_string(),
            )
        })
        .collect();
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
        b.json(&["payments"])
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["status"] == "succeeded")
            .count()
            >= 4
    });
    a.kill_hard();
    payer.join().unwrap();

    a.restart(&chain, &a_flags);
    wait_until("the channel to be usable again", || {
        a.channel(&channel_id).is_some_and(|c| c["usable"] == true)
    });
    // Nothing was force-closed: the funding output is still unspent on chain.
    let funding: bitcoin::Txid = funding_txid.parse().unwrap();
    let vout = (0..2)
        .find(|v| {
            chain
                .peer
                .utxo(&bitcoin::OutPoint::new(funding, *v))
                .is_some_and(|o| o.value.to_sat() == 600_000)
        })
        .expect("the funding output is unspent");
    assert!(vout < 2);

    // Every payment A started ends as succeeded or failed, once.
    wait_until("every payment to settle", || {
        a.json(&["payments"])
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["status"] != "pending")
    });
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
    let b_payments = b.json(&["payments"]);
    let received: BTreeMap<String, String> = b_payments
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["status"] == "succeeded")
        .map(|p| {
            (
                p["payment_hash"].as_str().unwrap().to_string(),
                "succeeded".to_string(),
            )
        })
        .collect();
    let paid: BTreeMap<String, String> = outcome
        .iter()
        .filter(|(_, status)| *status == "succeeded")
        .map(|(h, s)| (h.clone(), s.clone()))
        .collect();
    assert_eq!(
        paid, received,
        "A's succeeded payments are B's received ones"
    );
    assert!(paid.len() >= 4);
    println!(
        "{} payment(s) started before the kill: {} succeeded, {} failed",
        outcome.len(),
        paid.len(),
        outcome.len() - paid.len()
    );

    // Balances add up: B holds exactly what it received in the channel.
    let b_local = b.channel(&channel_id).unwrap()["local_balance_msat"]
        .as_u64()
        .unwrap();
    wait_until("B's balance to settle", || {
        b.channel(&channel_id).unwrap()["local_balance_msat"]
            .as_u64()
            .unwrap()
            == 1_000_000 * paid.len() as u64
    });
    assert!(b_local <= 1_000_000 * paid.len() as u64);

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

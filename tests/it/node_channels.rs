//! Whole-node tests: nodes in temporary data directories on the embedded regtest peer, opening
//! channels and paying each other over real TCP on 127.0.0.1.

use crate::common;

use common::node_harness as harness;

use std::time::Duration;

use harness::*;
use lightfilter::node::PaymentStatus;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_channel_pays_and_survives_a_restart_of_both_nodes() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;
    assert_eq!(a.balances().unwrap().onchain_confirmed_sat, 1_000_000);

    let channel = open_channel(&peer, &a, &b, 400_000, 0, false).await;
    assert_eq!(channel.capacity_sat, 400_000);

    let invoice = b.create_invoice(Some(50_000_000), "coffee", 3_600).unwrap();
    let paid = a.pay(&invoice.bolt11, None, LIMIT).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    assert_eq!(paid.payment_hash, invoice.payment_hash);
    wait_for(LIMIT, || async {
        b.payments()
            .iter()
            .any(|p| p.payment_hash == invoice.payment_hash && p.status == PaymentStatus::Succeeded)
    })
    .await;
    // The claim settles once both commitments are updated.
    let b_balance = wait_for_value(LIMIT, || async {
        let msat = b.balances().unwrap().lightning_msat;
        (msat >= 50_000_000).then_some(msat)
    })
    .await;
    assert_eq!(b_balance, 50_000_000, "B holds exactly the payment");
    wait_for(LIMIT, || async {
        a.channels()[0].outbound_capacity_msat < 350_000_000
    })
    .await;
    let a_balance = a.balances().unwrap().lightning_msat;
    assert!(
        a_balance <= 350_000_000 && a_balance > 340_000_000,
        "A paid it plus commitment fees: {a_balance}"
    );

    // Both restart.
    a.stop().await;
    b.stop().await;
    drop((a, b));
    let a = start_node(&peer, dir_a.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    wait_for(LIMIT, || async { a.channels().iter().any(|c| c.usable) }).await;
    assert_eq!(a.balances().unwrap().lightning_msat, a_balance);

    let second = b.create_invoice(Some(20_000_000), "tea", 3_600).unwrap();
    let paid = a.pay(&second.bolt11, None, LIMIT).await.unwrap();
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    wait_for(Duration::from_secs(30), || async {
        b.balances().unwrap().lightning_msat >= b_balance + 20_000_000
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_restored_from_its_seed_and_birthday_finds_its_funds() {
    init_logs();
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&peer, dir.path()).await;
    let birthday = peer.tip().0 + 1;
    mine(&peer, 5).await;
    fund(&peer, &node, 300_000).await;
    mine(&peer, 3).await;
    fund(&peer, &node, 45_000).await;
    synced(&peer, &node).await;
    let balance = node.balances().unwrap().onchain_confirmed_sat;
    assert_eq!(balance, 345_000);
    node.stop().await;
    drop(node);

    // A fresh data directory with only the seed, restored from the birthday.
    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("seed"), restored.path().join("seed")).unwrap();
    let mut config = config(&peer, restored.path());
    config.wallet_birthday = Some(birthday);
    let node = lightfilter::node::Node::start(config).await.unwrap();
    synced(&peer, &node).await;
    wait_for(LIMIT, || async {
        node.balances().unwrap().onchain_confirmed_sat == balance
    })
    .await;
    node.stop().await;
}

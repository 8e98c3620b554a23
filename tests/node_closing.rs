//! Whole-node tests of channel closes: cooperative, forced (with the sweeper returning funds
//! after the CSV delay), on the embedded regtest peer.

#[path = "support/node_harness.rs"]
mod harness;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_close_returns_funds_to_both_wallets() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(&peer, dir_a.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    fund(&peer, &a, 1_000_000).await;
    fund(&peer, &b, 100_000).await;
    synced(&peer, &a).await;
    synced(&peer, &b).await;
    let channel = open_channel(&peer, &a, &b, 300_000, 100_000_000, false).await;
    let a_onchain_before = a.balances().onchain_confirmed_sat;
    let b_onchain_before = b.balances().onchain_confirmed_sat;
    let a_channel = a.balances().lightning_sat;

    a.close_channel(&channel.channel_id, false).await.unwrap();
    wait_for(LIMIT, || async {
        a.channels().is_empty() && b.channels().is_empty()
    })
    .await;
    // The closing transaction is in the mempool; mine it.
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 1).await;
    synced(&peer, &a).await;
    synced(&peer, &b).await;
    wait_for(LIMIT, || async {
        b.balances().onchain_confirmed_sat == b_onchain_before + 100_000
    })
    .await;
    let a_after = a.balances().onchain_confirmed_sat;
    assert!(
        a_after > a_onchain_before + a_channel - 5_000 && a_after <= a_onchain_before + a_channel,
        "A got its channel balance back minus the closing fee: before {a_onchain_before}, channel {a_channel}, after {a_after}"
    );
    assert_eq!(a.balances().lightning_sat, 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_close_is_swept_back_to_the_wallet_after_the_csv_delay() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(&peer, dir_a.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    fund(&peer, &a, 1_000_000).await;
    fund(&peer, &b, 100_000).await;
    synced(&peer, &a).await;
    let channel = open_channel(&peer, &a, &b, 300_000, 0, false).await;
    let a_onchain_before = a.balances().onchain_confirmed_sat;

    a.close_channel(&channel.channel_id, true).await.unwrap();
    // The commitment transaction (and any fee-bumping child) reaches the mempool.
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 1).await;
    synced(&peer, &a).await;
    assert!(
        a.balances().claimable_onchain_sat > 0,
        "A's funds are waiting to be claimed"
    );
    // A's output is locked by the CSV delay (144 blocks); afterwards the sweeper claims it
    // without any action from the user.
    for _ in 0..16 {
        mine(&peer, 10).await;
        synced(&peer, &a).await;
    }
    wait_for(LIMIT, || async {
        if !peer.mempool().is_empty() {
            mine(&peer, 1).await;
        }
        a.balances().onchain_confirmed_sat > a_onchain_before + 280_000
    })
    .await;
    a.stop().await;
    b.stop().await;
}

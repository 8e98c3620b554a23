//! Whole-node tests of channel closes: cooperative, forced (with the sweeper returning funds
//! after the CSV delay), on the embedded regtest peer.

use crate::common;

use common::node_harness as harness;

use std::sync::Arc;

use harness::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_close_returns_funds_to_both_wallets() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;
    let channel = open_channel(&peer, &a, &b, 300_000, 100_000_000, false).await;
    let a_onchain_before = a.balances().unwrap().onchain_confirmed_sat;
    let b_onchain_before = b.balances().unwrap().onchain_confirmed_sat;
    let a_channel = a.balances().unwrap().lightning_sat;

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
        b.balances().unwrap().onchain_confirmed_sat == b_onchain_before + 100_000
    })
    .await;
    let a_after = a.balances().unwrap().onchain_confirmed_sat;
    assert!(
        a_after > a_onchain_before + a_channel - 5_000 && a_after <= a_onchain_before + a_channel,
        "A got its channel balance back minus the closing fee: before {a_onchain_before}, channel {a_channel}, after {a_after}"
    );
    assert_eq!(a.balances().unwrap().lightning_sat, 0);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_close_is_swept_back_to_the_wallet_after_the_csv_delay() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;
    let channel = open_channel(&peer, &a, &b, 300_000, 0, false).await;
    let a_onchain_before = a.balances().unwrap().onchain_confirmed_sat;

    a.close_channel(&channel.channel_id, true).await.unwrap();
    // The commitment transaction (and any fee-bumping child) reaches the mempool.
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 1).await;
    synced(&peer, &a).await;
    assert!(
        a.balances().unwrap().claimable_onchain_sat > 0,
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
        a.balances().unwrap().onchain_confirmed_sat > a_onchain_before + 280_000
    })
    .await;
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_forced_close_is_swept_at_the_block_its_output_matures_when_blocks_come_in_bursts() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;
    let channel = open_channel(&peer, &a, &b, 300_000, 0, false).await;
    let funding = channel.funding_txid.expect("a funded channel");

    // B goes first: LDK answers the error a forced close sends with its own commitment, and
    // whichever reaches the mempool first confirms. A's commitment must be the one, since only
    // it pays A an output behind the CSV delay.
    b.stop().await;
    drop(b);
    a.close_channel(&channel.channel_id, true).await.unwrap();
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 1).await;
    let (closed_at, _) = peer.tip();
    let commitment = peer
        .block_at(closed_at)
        .unwrap()
        .txdata
        .into_iter()
        .find(|tx| tx.input.iter().any(|i| i.previous_output.txid == funding))
        .expect("A's commitment confirmed");
    let commitment_txid = commitment.compute_txid();
    // Blocks arrive twenty at a time, past the CSV delay of A's output (144 blocks).
    while peer.tip().0 < closed_at + 144 + 60 {
        mine(&peer, 20).await;
        synced(&peer, &a).await;
    }
    // The sweep of A's own output: the input waiting out the CSV delay.
    let is_sweep = |tx: &bitcoin::Transaction| {
        tx.input.iter().any(|input| {
            input.previous_output.txid == commitment_txid
                && (17..0xffff).contains(&input.sequence.0)
        })
    };
    let sweep = wait_for_value(LIMIT, || async {
        let tip = peer.tip().0;
        (closed_at..=tip)
            .filter_map(|height| peer.block_at(height))
            .flat_map(|block| block.txdata)
            .chain(peer.mempool())
            .find(|tx| is_sweep(tx))
    })
    .await;
    // LDK builds its sweep with the height it stands on as locktime.
    let built_at = sweep.lock_time.to_consensus_u32();
    let delay = sweep
        .input
        .iter()
        .find(|input| input.previous_output.txid == commitment_txid)
        .unwrap()
        .sequence
        .0;
    eprintln!("closed at {closed_at}, CSV delay {delay}, sweep built at {built_at}");
    let spendable_at = closed_at + delay;
    assert!(
        built_at <= spendable_at + 1,
        "the sweep was built at height {built_at}, the output was spendable at {spendable_at}"
    );
    a.stop().await;
}

/// Syncs the chain store in `dir` to the peer's tip with a bare chain source, as a restarting
/// node's engine does when it connects before its listeners are synchronised.
async fn sync_chain_store(peer: &lightfilter::regtest::RegtestPeer, dir: &std::path::Path) {
    let mut config = lightfilter::chain::ChainConfig::new(bitcoin::Network::Regtest, dir);
    config.peers = vec![peer.addr().into()];
    config.only_peers = true;
    let source = lightfilter::chain::ChainSource::start(
        config,
        Arc::new(lightfilter::chain::WatchSet::new()),
        Arc::new(lightfilter::chain::ChainListener::new()),
    )
    .unwrap();
    let tip = peer.tip().0;
    wait_for(LIMIT, || async {
        source
            .heights()
            .verified_tip
            .is_some_and(|(height, _)| height == tip)
    })
    .await;
    source.shutdown();
    drop(source);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_close_mined_while_the_node_was_down_reaches_its_channel_monitor_at_start_up() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;
    // B holds half the channel, so A's commitment pays B an output of its own.
    let channel = open_channel(&peer, &a, &b, 300_000, 150_000_000, false).await;

    // B goes down; A closes unilaterally, its commitment confirms, and A goes away too, so
    // nothing but the chain can tell B the channel is closed.
    b.stop().await;
    drop(b);
    a.close_channel(&channel.channel_id, true).await.unwrap();
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 3).await;
    a.stop().await;
    drop(a);

    // B's chain store already holds the new blocks when its listeners are synchronised.
    sync_chain_store(&peer, dir_b.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    wait_for(LIMIT, || async {
        b.balances().unwrap().claimable_onchain_sat > 100_000
            && b.channels()
                .iter()
                .all(|c| c.channel_id != channel.channel_id)
    })
    .await;
    b.stop().await;
}

/// Everything `node` counts as its own on chain or on its way there.
fn on_chain_total(node: &lightfilter::node::Node) -> u64 {
    let b = node.balances().unwrap();
    b.onchain_confirmed_sat + b.onchain_pending_sat + b.claimable_onchain_sat + b.sweeping_sat
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cooperative_close_does_not_keep_a_later_forced_close_from_being_swept() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let (a, b) = two_funded_nodes(&peer, dir_a.path(), dir_b.path()).await;

    // A cooperative close pays A's wallet straight from the closing transaction.
    let first = open_channel(&peer, &a, &b, 200_000, 0, false).await;
    a.close_channel(&first.channel_id, false).await.unwrap();
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    mine(&peer, 1).await;
    synced(&peer, &a).await;
    wait_for(LIMIT, || async { a.channels().is_empty() }).await;

    // Then the peer force-closes a second channel: A's balance in it must reach A's wallet.
    let second = open_channel(&peer, &a, &b, 300_000, 0, false).await;
    let a_channel = a.balances().unwrap().lightning_sat;
    let a_onchain_before = a.balances().unwrap().onchain_confirmed_sat;
    let total_before = on_chain_total(&a) + a_channel;
    b.close_channel(&second.channel_id, true).await.unwrap();
    wait_for(LIMIT, || async { !peer.mempool().is_empty() }).await;
    let balance_kept = || {
        let total = on_chain_total(&a) + a.balances().unwrap().lightning_sat;
        assert!(
            total + 10_000 > total_before,
            "A's balance shows funds as gone: {total} sat now, {total_before} sat before the \
             close: {:?}",
            a.balances().unwrap()
        );
    };
    // The commitment confirms and matures (anchor outputs: one block of delay, then LDK's six
    // confirmations before the output is handed to the sweeper).
    for _ in 0..12 {
        mine(&peer, 1).await;
        synced(&peer, &a).await;
        balance_kept();
    }
    // The sweeper tries every 30 s; its transaction is mined as soon as it shows up.
    wait_for(LIMIT, || async {
        if !peer.mempool().is_empty() {
            mine(&peer, 1).await;
            synced(&peer, &a).await;
        }
        balance_kept();
        a.balances().unwrap().onchain_confirmed_sat > a_onchain_before + a_channel - 10_000
    })
    .await;
    a.stop().await;
    b.stop().await;
}

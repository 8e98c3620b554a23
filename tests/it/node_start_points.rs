//! Start points: a fresh node starts its header chain at a checkpoint instead of genesis and
//! downloads only what lies above it; a restore from a birthday below the checkpoint still
//! finds its coins; a `--checkpoint` the stored chain cannot honour is refused. Real nodes in
//! temporary data directories against the embedded regtest peer.

use crate::common;

use common::node_harness;

use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::FeeRate;
use lightfilter::chain::Checkpoint;
use lightfilter::node::{Node, NodeError};
use lightfilter::wallet::SendAmount;
use node_harness::*;

const LONG: Duration = Duration::from_secs(600);

/// The block `depth` below the peer's tip, as a start point.
fn checkpoint_below_tip(peer: &lightfilter::regtest::RegtestPeer, depth: u32) -> Checkpoint {
    let height = peer.tip().0 - depth;
    Checkpoint {
        height,
        hash: peer.block_at(height).expect("block").block_hash(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_started_at_a_checkpoint_downloads_a_twentieth_and_receives_and_spends() {
    init_logs();
    let peer = start_peer().await;
    mine(&peer, 20_000).await;
    let checkpoint = checkpoint_below_tip(&peer, 200);

    let from_checkpoint = tempfile::tempdir().unwrap();
    let mut at_checkpoint = config(&peer, from_checkpoint.path());
    at_checkpoint.checkpoint = Some(checkpoint);
    let node = Node::start(at_checkpoint)
        .await
        .expect("node starts at the checkpoint");
    synced(&peer, &node).await;
    let checkpoint_bytes = node.info().await.sync.bytes_received;

    // A payment after the checkpoint arrives, and the node spends it.
    fund(&peer, &node, 250_000).await;
    wait_for(LONG, || async {
        node.balances().unwrap().onchain_confirmed_sat == 250_000
    })
    .await;
    let spend = node
        .send_onchain(
            &peer_address(),
            SendAmount::Exact(bitcoin::Amount::from_sat(100_000)),
            Some(FeeRate::from_sat_per_vb(2).unwrap()),
            None,
            false,
        )
        .expect("the node spends the payment")
        .txid;
    wait_for(LONG, || async { peer.in_mempool(&spend) }).await;
    mine(&peer, 1).await;
    assert_eq!(peer.confirmations(&spend), Some(1), "the spend is mined");
    node.stop().await;

    let from_genesis = tempfile::tempdir().unwrap();
    let node = Node::start(config(&peer, from_genesis.path()))
        .await
        .expect("node starts at genesis");
    synced(&peer, &node).await;
    let genesis_bytes = node.info().await.sync.bytes_received;
    node.stop().await;

    println!(
        "bytes received: {checkpoint_bytes} from the checkpoint, {genesis_bytes} from genesis \
         ({:.2} %)",
        checkpoint_bytes as f64 * 100.0 / genesis_bytes as f64
    );
    assert!(
        checkpoint_bytes * 20 <= genesis_bytes,
        "from the checkpoint {checkpoint_bytes} B, from genesis {genesis_bytes} B: more than 5 %"
    );
}

/// A P2WSH address nobody in the test owns.
fn peer_address() -> String {
    let script = bitcoin::ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([7; 32]));
    bitcoin::Address::from_script(&script, bitcoin::Network::Regtest)
        .expect("an address")
        .to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_with_a_birthday_below_the_checkpoint_finds_the_payment_between_them() {
    init_logs();
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&peer, dir.path()).await;
    mine(&peer, 50).await;
    let birthday = peer.tip().0 + 1;
    mine(&peer, 20).await;
    fund(&peer, &node, 120_000).await;
    mine(&peer, 300).await;
    synced(&peer, &node).await;
    assert_eq!(node.balances().unwrap().onchain_confirmed_sat, 120_000);
    node.stop().await;
    drop(node);
    let checkpoint = checkpoint_below_tip(&peer, 100);
    assert!(checkpoint.height > birthday + 20);

    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(dir.path().join("seed"), restored.path().join("seed")).unwrap();
    let mut config = config(&peer, restored.path());
    config.wallet_birthday = Some(birthday);
    config.checkpoint = Some(checkpoint);
    let node = Node::start(config).await.expect("the restore starts");
    synced(&peer, &node).await;
    wait_for(LONG, || async {
        node.balances().unwrap().onchain_confirmed_sat == 120_000
    })
    .await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_checkpoint_below_where_the_stored_chain_starts_is_refused_and_changes_nothing() {
    init_logs();
    let peer = start_peer().await;
    mine(&peer, 100).await;
    let high = checkpoint_below_tip(&peer, 20);
    let low = checkpoint_below_tip(&peer, 80);
    let dir = tempfile::tempdir().unwrap();

    let mut first = config(&peer, dir.path());
    first.checkpoint = Some(high);
    let node = Node::start(first).await.expect("node starts");
    synced(&peer, &node).await;
    node.stop().await;
    drop(node);
    let chain_file = dir.path().join("chain.sqlite");
    let before = std::fs::read(&chain_file).unwrap();

    let mut lower = config(&peer, dir.path());
    lower.checkpoint = Some(low);
    let err = Node::start(lower).await.err().expect("refused");
    assert!(
        matches!(
            &err,
            NodeError::InvalidInput {
                what: "checkpoint",
                ..
            }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("chain.sqlite"), "{err}");
    assert_eq!(
        std::fs::read(&chain_file).unwrap(),
        before,
        "the chain is untouched"
    );

    // The same checkpoint, or a higher one, keeps the chain.
    let mut same = config(&peer, dir.path());
    same.checkpoint = Some(high);
    let node = Node::start(same).await.expect("node starts again");
    synced(&peer, &node).await;
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fresh_node_far_below_the_tip_fetches_no_filter_up_to_it_and_receives_a_payment_mined_after(
) {
    init_logs();
    let peer = start_peer().await;
    mine(&peer, 20_000).await;
    peer.reset_stats();

    // No start point on regtest: the header chain starts at genesis, 20,101 blocks below.
    let dir = tempfile::tempdir().unwrap();
    let node = Node::start(config(&peer, dir.path()))
        .await
        .expect("the fresh node starts");
    let info = node.info().await;
    let reached = info.block_height;
    assert!(
        reached >= 20_101,
        "the first sync reached the tip: {info:?}"
    );
    assert_eq!(info.sync.filters_from, Some(reached + 1), "{info:?}");
    let at_start = peer.stats();
    let below: Vec<_> = at_start.cfilters_by_height.range(..=reached).collect();
    assert!(
        below.is_empty(),
        "{} filters of blocks up to the tip at {reached} were fetched (the first: {:?}); \
         {} headers",
        below.len(),
        below.first(),
        at_start.headers_served
    );
    println!("headers served {} for {reached}", at_start.headers_served);
    assert!(at_start.headers_served >= u64::from(reached));

    // A payment mined after the node reached the tip arrives.
    fund(&peer, &node, 150_000).await;
    wait_for(LONG, || async {
        node.balances().unwrap().onchain_confirmed_sat == 150_000
    })
    .await;
    let after = peer.stats();
    assert!(
        after.cfilters_by_height.range(..=reached).next().is_none(),
        "still no filter at or below {reached}"
    );
    assert!(
        after.cfilters_by_height.range(reached + 1..).count() >= 2,
        "the blocks after the tip had their filters checked: {:?}",
        after.cfilters_by_height
    );
    node.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_with_a_birthday_half_way_fetches_no_filter_below_it_and_finds_the_payment_after_it(
) {
    init_logs();
    let peer = start_peer().await;
    let first = tempfile::tempdir().unwrap();
    let node = start_node(&peer, first.path()).await;
    let address = node.new_address().expect("an address");
    node.stop().await;
    drop(node);

    mine(&peer, 2_000).await;
    let birthday = peer.tip().0 + 1;
    mine(&peer, 300).await;
    peer.fund(
        &script_of(&address),
        bitcoin::Amount::from_sat(120_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("the faucet pays");
    mine(&peer, 1_700).await;
    let tip = peer.tip().0;
    assert!(
        birthday * 2 > tip - 200 && birthday * 2 < tip + 200,
        "half-way"
    );
    peer.reset_stats();

    let restored = tempfile::tempdir().unwrap();
    std::fs::copy(first.path().join("seed"), restored.path().join("seed")).unwrap();
    let mut config = config(&peer, restored.path());
    config.wallet_birthday = Some(birthday);
    let node = Node::start(config).await.expect("the restore starts");
    wait_for(LONG, || async {
        node.balances().unwrap().onchain_confirmed_sat == 120_000
    })
    .await;
    let info = node.info().await;
    assert_eq!(info.sync.filters_from, Some(birthday), "{info:?}");
    let stats = peer.stats();
    let below: Vec<_> = stats.cfilters_by_height.range(..birthday).collect();
    assert!(
        below.is_empty(),
        "{} filters below the birthday {birthday} were fetched (the first: {:?})",
        below.len(),
        below.first()
    );
    let from_birthday = stats.cfilters_by_height.range(birthday..=tip).count() as u32;
    assert_eq!(
        from_birthday,
        tip - birthday + 1,
        "every filter from the birthday to the tip was fetched"
    );
    node.stop().await;
}

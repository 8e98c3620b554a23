//! A Bitcoin peer that lies about the filter of a block paying the wallet, consistently (its
//! filter headers are built from the wrong filter, so only another peer's headers show it),
//! is found and banned, not just dropped: with a quorum of two over three peers, the chain
//! source sees the payment, bans the liar for the filter it proved wrong, and keeps it banned
//! across a restart.

use crate::common;

use common::chain_harness::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, FeeRate};
use lightfilter::chain::WatchSet;
use lightfilter::regtest::RegtestPeer;

const LONG: Duration = Duration::from_secs(120);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_peer_lying_about_a_paying_blocks_filter_is_banned_and_the_payment_seen() {
    common::init_logging();
    let peer = RegtestPeer::start("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .unwrap();
    let miner = unique_script(7_100);
    let watched = unique_script(7_101);
    peer.mine(101, &peer.faucet_script());
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(80_000),
            FeeRate::from_sat_per_vb_u32(2),
        )
        .unwrap();
    let paying = peer.mine(1, &miner)[0];
    peer.mine(10, &miner);
    let honest = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let liar = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    liar.switches.set_lying_filter_for(Some(paying));

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    // The engine takes configured peers last first: the liar and one honest peer make its
    // quorum, and disagree.
    let peers = [peer.addr(), honest.addr, liar.addr];
    let quorum_of_two =
        |config: &mut lightfilter::chain::ChainConfig| config.required_peers = Some(2);
    let harness = Harness::start_with(
        dir.path(),
        &peers,
        recorder.clone(),
        watch.clone(),
        quorum_of_two,
    )
    .await;
    harness.wait_for_tip(peer.tip().1, LONG).await;
    assert!(
        recorder.is_confirmed(&payment.compute_txid()),
        "the payment the liar hid reached the listener"
    );
    let banned = harness.source.banned_peers();
    assert_eq!(
        banned
            .iter()
            .map(|ban| ban.addr.clone())
            .collect::<Vec<_>>(),
        vec![liar.addr.into()],
        "only the liar is banned: {banned:?}"
    );
    assert!(
        banned[0]
            .reason
            .contains(&format!("its filter of block {paying}")),
        "the ban names the filter proved wrong: {banned:?}"
    );
    let connections_when_banned = liar.switches.counts().connections();
    harness.stop().await;

    // After a restart the ban holds: the liar is not connected to, and the chain goes on.
    let harness =
        Harness::start_with(dir.path(), &peers, recorder.clone(), watch, quorum_of_two).await;
    assert_eq!(
        harness
            .source
            .banned_peers()
            .iter()
            .map(|ban| ban.addr.clone())
            .collect::<Vec<_>>(),
        vec![liar.addr.into()]
    );
    peer.mine(2, &miner);
    harness.wait_for_tip(peer.tip().1, LONG).await;
    assert_eq!(
        liar.switches.counts().connections(),
        connections_when_banned,
        "nothing connected to the banned peer after the restart"
    );
    harness.stop().await;
}

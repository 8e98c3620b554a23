//! Block fetches that tell no single peer what the wallet watches: each block whose filter
//! matches is asked for in one request with `decoy_blocks` other blocks from around it, and
//! from a peer chosen at random that is not the one that served the previous match while
//! another can, so the matches spread over the peers. The same holds for peers given as
//! onion services, reached through a proxy by name.

use crate::common;

use common::chain_harness::*;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, BlockHash, FeeRate};
use lightfilter::chain::{PeerAddress, WatchSet};
use lightfilter::proxy::{onion_v3_address, Route};
use lightfilter::regtest::{Endpoint, RegtestPeer};

const LONG: Duration = Duration::from_secs(120);
/// Blocks that pay a watched script.
const MATCHES: u32 = 8;
/// Decoys asked for beside each of them.
const DECOYS: u32 = 2;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_matching_block_comes_with_decoys_and_the_matches_spread_over_the_peers() {
    let (peer, second) = peer_with_two_endpoints().await;
    let dir = tempfile::tempdir().unwrap();
    let peers = [peer.addr(), second.addr];
    matches_come_with_decoys_from_both_peers(&peer, &second, dir.path(), &peers, |_| {}).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn onion_peers_reached_through_the_proxy_get_decoys_and_share_the_matches() {
    let (peer, second) = peer_with_two_endpoints().await;
    // The node knows its peers only as onion services; the proxy knows where they listen.
    let proxy = common::socks::SocksProxy::start();
    let onions = [[1u8; 32], [2u8; 32]].map(|key| onion_v3_address(key, 18444));
    proxy.redirect(&onions[0], peer.addr());
    proxy.redirect(&onions[1], second.addr);
    let dir = tempfile::tempdir().unwrap();
    let route = Route::Socks5(proxy.addr());
    let named: Vec<PeerAddress> = onions.iter().map(|o| o.parse().unwrap()).collect();
    matches_come_with_decoys_from_both_peers(&peer, &second, dir.path(), &[], |config| {
        config.peers = named;
        config.route = route;
    })
    .await;
    // Only the proxy could reach them: both were reached through it by name.
    for onion in &onions {
        assert!(
            proxy.connects_to(onion) >= 1,
            "{onion} was reached through the proxy: {:?}",
            proxy.connects()
        );
    }
}

/// A regtest peer listening on two endpoints: two peers serving one chain.
async fn peer_with_two_endpoints() -> (RegtestPeer, Endpoint) {
    common::init_logging();
    let peer = RegtestPeer::start("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .unwrap();
    let second = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (peer, second)
}

/// Pays a watched script in [`MATCHES`] blocks and checks that a chain source on `dir`,
/// connected to `peers` and then `configure`d, asks for each of them in one request with
/// [`DECOYS`] decoys, and that both `peer` and `second` served some.
async fn matches_come_with_decoys_from_both_peers(
    peer: &RegtestPeer,
    second: &Endpoint,
    dir: &std::path::Path,
    peers: &[SocketAddr],
    configure: impl FnOnce(&mut lightfilter::chain::ChainConfig),
) {
    let miner = unique_script(7_300);
    peer.mine(101, &peer.faucet_script());
    let watched = unique_script(7_301);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let harness = Harness::start_with(dir, peers, recorder.clone(), watch, |config| {
        config.decoy_blocks = DECOYS;
        configure(config);
    })
    .await;
    harness.wait_for_tip(peer.tip().1, LONG).await;
    // Both peers linked, so that no match is fetched while only one can serve it.
    let links = harness.source.links().clone();
    wait_for(LONG, || links.open_links().len() == 2).await;

    let mut payments = Vec::new();
    let mut matched = Vec::new();
    for _ in 0..MATCHES {
        let payment = peer
            .fund(
                &watched,
                Amount::from_sat(50_000),
                FeeRate::from_sat_per_vb_u32(2),
            )
            .unwrap();
        payments.push(payment.compute_txid());
        matched.extend(peer.mine(1, &miner));
        peer.mine(2, &miner);
    }
    harness.wait_for_tip(peer.tip().1, LONG).await;
    for payment in &payments {
        assert!(recorder.is_confirmed(payment), "payment {payment} seen");
    }

    // What each peer was asked: a matching block comes in a request of its own with its
    // decoys; a fee sample (the chain source samples fees from tip blocks) comes alone. Each
    // is counted once it arrived: wait until every block asked for was.
    let blocks_asked = |requests: &[Vec<Vec<BlockHash>>]| {
        requests.iter().flatten().map(Vec::len).sum::<usize>() as u64
    };
    let asked = || {
        [
            peer.endpoint().switches.counts().block_requests(),
            second.switches.counts().block_requests(),
        ]
    };
    let mut settled = None;
    wait_for(LONG, || {
        let requests = asked();
        let counts = harness.source.download_counts();
        let done = blocks_asked(&requests)
            == counts.blocks_for_listeners + counts.decoy_blocks + counts.blocks_for_fees;
        settled = Some((requests, counts));
        done
    })
    .await;
    let (requests, counts) = settled.expect("waited");
    assert_eq!(counts.refetches, 0, "no block was asked for twice");
    assert_eq!(
        counts.blocks_for_listeners,
        u64::from(MATCHES),
        "one download per matching block"
    );
    assert_eq!(
        counts.decoy_blocks,
        u64::from(DECOYS * MATCHES),
        "{DECOYS} decoys per matching block"
    );
    assert!(counts.decoy_bytes > 0);
    let hidden: Vec<Vec<Vec<BlockHash>>> = requests
        .iter()
        .map(|asked| {
            asked
                .iter()
                .filter(|blocks| blocks.len() > 1)
                .cloned()
                .collect()
        })
        .collect();
    let sizes: Vec<usize> = hidden.iter().flatten().map(Vec::len).collect();
    assert_eq!(
        sizes,
        vec![1 + DECOYS as usize; MATCHES as usize],
        "one request per matching block, each with {DECOYS} decoys: {requests:?}"
    );
    for block in &matched {
        assert!(
            hidden.iter().flatten().any(|blocks| blocks.contains(block)),
            "matching block {block} was asked for among decoys"
        );
    }
    for (n, asked) in hidden.iter().enumerate() {
        assert!(
            !asked.is_empty(),
            "peer {n} served no matching block: every match went to one peer"
        );
    }
    harness.stop().await;
}

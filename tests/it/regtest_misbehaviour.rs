//! Each misbehaviour switch has its effect on a real bip157 client and on raw P2P: wrong filters
//! are rejected, conflicting filter headers are caught by a two-peer quorum (and fool a single
//! peer client), a consistent lie about one block's filter fools a single peer client and
//! conflicts with honest filter headers from that block on, stripped blocks lack witnesses,
//! withheld blocks get notfound, withheld filters and stalls get no answer, and a pruned
//! endpoint drops a peer asking for an old block, while an honest endpoint on the same chain
//! keeps serving; a paced link sends no faster than its rate.

use crate::common;

use std::time::Duration;

use bitcoin::consensus::encode::serialize;
use bitcoin::p2p::message::{NetworkMessage, RawNetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_filter::{GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{Amount, BlockHash, FeeRate, Network, OutPoint};
use common::client::TestClient;
use common::keys::{pay, spend_p2wpkh, TestKey};
use common::raw::RawPeer;
use common::{start_peer, wait_for, TIMEOUT};
use lightfilter::regtest::RegtestPeer;

const FILTER_MISMATCH: &str =
    "the filter hash from our header chain and this filter hash do not match";

/// A chain of 121 blocks where block 102 pays `watched` and block 104 spends that payment.
fn chain_with_payment(peer: &RegtestPeer, watched: &TestKey) -> (BlockHash, BlockHash) {
    let miner = TestKey::new("miner").script();
    peer.mine(101, &peer.faucet_script());
    let funding = peer
        .fund(
            &watched.script(),
            Amount::from_sat(100_000),
            FeeRate::from_sat_per_vb(1).unwrap(),
        )
        .unwrap();
    let paying = peer.mine(1, &miner)[0];
    peer.mine(1, &miner);
    let spend = spend_p2wpkh(
        watched,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(100_000),
        vec![pay(&miner, 99_000)],
    );
    peer.send_tx(&spend).unwrap();
    let spending = peer.mine(1, &miner)[0];
    peer.mine(17, &miner);
    assert_eq!(peer.tip().0, 121);
    (paying, spending)
}

fn quick_timeouts(builder: bip157::Builder) -> bip157::Builder {
    builder.response_timeout(Duration::from_secs(2))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_filters_are_rejected_while_an_honest_endpoint_serves_the_same_chain() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, _) = chain_with_payment(&peer, &watched);
    let liar = peer.endpoint();
    liar.switches.set_wrong_filters(true);

    // The lie hides the payment: the wrong filter no longer matches the watched script.
    let mut raw = RawPeer::connect(liar.addr).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetCFilters(GetCFilters {
        filter_type: 0,
        start_height: 102,
        stop_hash: paying,
    }))
    .await;
    let NetworkMessage::CFilter(served) = raw.recv().await else {
        panic!("expected a cfilter");
    };
    let honest = peer.filter(&paying).unwrap();
    assert_ne!(served.filter, honest.content);
    let script = watched.script();
    assert!(honest
        .match_any(&paying, std::iter::once(script.as_bytes()))
        .unwrap());
    assert!(!bitcoin::bip158::BlockFilter::new(&served.filter)
        .match_any(&paying, std::iter::once(script.as_bytes()))
        .unwrap());

    let fooled = TestClient::start(&[liar.addr], 1);
    let log = fooled.wait_warning(FILTER_MISMATCH).await;
    assert!(
        log.synced.is_empty(),
        "a client never syncs on wrong filters"
    );
    assert!(log.filter_of(&paying).is_none());
    fooled.stop().await;

    let honest_endpoint = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let client = TestClient::start(&[honest_endpoint.addr], 1);
    let log = client.wait_synced_to(peer.tip()).await;
    assert!(log.filter_of(&paying).unwrap().matches(&script));
    assert!(log
        .warnings
        .iter()
        .all(|warning| !warning.contains(FILTER_MISMATCH)));
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wrong_filter_for_one_block_stops_the_client_at_that_block() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, _) = chain_with_payment(&peer, &watched);
    peer.endpoint().switches.set_wrong_filter_for(Some(paying));
    let client = TestClient::start(&[peer.addr()], 1);
    let log = client.wait_warning(FILTER_MISMATCH).await;
    let before = peer.block_at(101).unwrap().block_hash();
    assert!(
        log.filter_of(&before).is_some(),
        "filters before the lie are delivered"
    );
    assert!(log.filter_of(&paying).is_none());
    assert!(log.synced.is_empty());
    client.stop().await;

    peer.endpoint().switches.set_wrong_filter_for(None);
    let client = TestClient::start(&[peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conflicting_filter_headers_are_caught_by_a_quorum_of_two() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, spending) = chain_with_payment(&peer, &watched);
    let liar = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    liar.switches.set_conflicting_cfheaders(true);

    let quorum = TestClient::start(&[peer.addr(), liar.addr], 2);
    let log = quorum
        .wait_warning("Found a conflict while peers are sending filter headers")
        .await;
    assert!(log.synced.is_empty());
    quorum.stop().await;

    // Alone, the lying headers are believed, and then honest filters do not fit them.
    let alone = TestClient::start(&[liar.addr], 1);
    let log = alone.wait_warning(FILTER_MISMATCH).await;
    assert!(log.synced.is_empty());
    alone.stop().await;

    // A self-consistent lie (headers and filters) fools a single-peer client: it syncs, and
    // the payment and the spend are hidden. This is why the quorum matters.
    liar.switches.set_wrong_filters(true);
    let fooled = TestClient::start(&[liar.addr], 1);
    let log = fooled.wait_synced_to(peer.tip()).await;
    let script = watched.script();
    assert!(!log.filter_of(&paying).unwrap().matches(&script));
    assert!(!log.filter_of(&spending).unwrap().matches(&script));
    fooled.stop().await;

    // The raw checkpoint answer disagrees with the honest one as well.
    let tip = peer.tip().1;
    let mut honest = RawPeer::connect(peer.addr()).await;
    honest.handshake(false).await;
    let mut lying = RawPeer::connect(liar.addr).await;
    lying.handshake(false).await;
    let request = NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 1,
        stop_hash: tip,
    });
    honest.send(request.clone()).await;
    lying.send(request).await;
    let (NetworkMessage::CFHeaders(true_headers), NetworkMessage::CFHeaders(false_headers)) =
        (honest.recv().await, lying.recv().await)
    else {
        panic!("expected cfheaders from both");
    };
    assert_eq!(
        true_headers.previous_filter_header, false_headers.previous_filter_header,
        "both start from the genesis filter header"
    );
    assert_eq!(false_headers.filter_hashes.len(), 121);
    assert!(true_headers
        .filter_hashes
        .iter()
        .zip(&false_headers.filter_hashes)
        .all(|(truth, lie)| truth != lie));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stripped_blocks_lack_witnesses_and_are_served_whole_when_switched_off() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (_, spending) = chain_with_payment(&peer, &watched);
    let client = TestClient::start(&[peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;

    peer.endpoint().switches.set_strip_witness(true);
    let stripped = client.requester.get_block(spending).await.unwrap().block;
    let coinbase = &stripped.txdata[0];
    assert!(
        coinbase.input[0].witness.is_empty(),
        "the witness reserved value is gone"
    );
    assert!(
        coinbase.output.iter().any(|output| output
            .script_pubkey
            .as_bytes()
            .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])),
        "the coinbase still commits to witnesses"
    );
    assert!(stripped.txdata[1].input[0].witness.is_empty());
    assert!(
        stripped.check_merkle_root(),
        "stripping does not change the merkle root"
    );

    peer.endpoint().switches.set_strip_witness(false);
    let whole = client.requester.get_block(spending).await.unwrap().block;
    assert!(!whole.txdata[1].input[0].witness.is_empty());
    assert!(whole.check_witness_commitment());
    assert_eq!(
        peer.stats()
            .blocks_served
            .iter()
            .filter(|(hash, _)| *hash == spending)
            .map(|(_, with_witness)| *with_witness)
            .collect::<Vec<_>>(),
        vec![false, true]
    );
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_paced_link_sends_no_faster_than_its_rate() {
    const RATE: u64 = 40_000;
    let peer = start_peer().await;
    peer.mine(300, &bitcoin::ScriptBuf::new_op_return([7]));
    peer.endpoint().switches.set_link_rate(Some(RATE));
    peer.reset_stats();
    let started = std::time::Instant::now();
    let client = TestClient::start(&[peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;
    let elapsed = started.elapsed();
    let sent = peer.stats().bytes_sent;
    client.stop().await;
    // Bytes are counted when a message is queued; after the sync the client may have asked
    // for something small (a pong, addresses) still on its way.
    const AFTER_SYNC: u64 = 1_000;
    let at_rate = Duration::from_secs_f64(sent.saturating_sub(AFTER_SYNC) as f64 / RATE as f64);
    println!("{sent} bytes in {elapsed:?}; at {RATE} B/s they take {at_rate:?}");
    assert!(
        sent > RATE,
        "the sync sent enough to be paced: {sent} bytes"
    );
    assert!(
        elapsed >= at_rate,
        "{sent} bytes arrived in {elapsed:?}, faster than {RATE} B/s allows ({at_rate:?})"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_blocks_get_notfound_and_the_client_times_out() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, _) = chain_with_payment(&peer, &watched);
    peer.endpoint().switches.set_withhold_blocks(true);

    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetData(vec![
        Inventory::WitnessBlock(paying),
        Inventory::Block(paying),
    ]))
    .await;
    assert_eq!(
        raw.sync().await,
        vec![NetworkMessage::NotFound(vec![
            Inventory::WitnessBlock(paying),
            Inventory::Block(paying)
        ])]
    );

    let client = TestClient::start_with(&[peer.addr()], 1, quick_timeouts);
    client.wait_synced_to(peer.tip()).await;
    let request = client.requester.request_block(paying).unwrap();
    client.wait_warning("timed out").await;
    assert!(peer.stats().blocks_served.is_empty());
    drop(request);
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn withheld_filters_get_no_answer_and_the_client_times_out() {
    let peer = start_peer().await;
    peer.mine(30, &TestKey::new("miner").script());
    let tip = peer.tip().1;
    peer.endpoint().switches.set_withhold_filters(true);

    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetCFilters(GetCFilters {
        filter_type: 0,
        start_height: 1,
        stop_hash: tip,
    }))
    .await;
    raw.send(NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 1,
        stop_hash: tip,
    }))
    .await;
    raw.send(NetworkMessage::GetCFCheckpt(GetCFCheckpt {
        filter_type: 0,
        stop_hash: tip,
    }))
    .await;
    assert_eq!(
        raw.sync().await,
        vec![],
        "requests answered in order: nothing came back"
    );
    assert_eq!(peer.stats().cfilters_served, 0);
    assert_eq!(peer.stats().cfheaders_served, 0);

    let client = TestClient::start_with(&[peer.addr()], 1, quick_timeouts);
    let log = client.wait_warning("timed out").await;
    assert!(log.synced.is_empty());
    assert!(log.filters.is_empty());
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalling_endpoint_reads_everything_and_answers_nothing() {
    let peer = start_peer().await;
    peer.mine(5, &TestKey::new("miner").script());
    let switches = peer.endpoint().switches;

    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    switches.set_stall(true);
    let before = peer.stats().bytes_received;
    let ping = NetworkMessage::Ping(1);
    let getheaders = NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![peer.block_at(0).unwrap().block_hash()],
        BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
    ));
    let size = |message: &NetworkMessage| {
        serialize(&RawNetworkMessage::new(
            Network::Regtest.magic(),
            message.clone(),
        ))
        .len() as u64
    };
    let expected = before + size(&ping) + size(&getheaders);
    raw.send(ping).await;
    raw.send(getheaders).await;
    // Both were read (and, stalling, dropped) once their bytes are counted.
    assert!(wait_for(TIMEOUT, || peer.stats().bytes_received >= expected).await);
    switches.set_stall(false);
    let replies = raw.sync().await;
    assert!(
        !replies.contains(&NetworkMessage::Pong(1)),
        "the ping sent during the stall was never answered: {replies:?}"
    );
    assert!(!replies
        .iter()
        .any(|message| matches!(message, NetworkMessage::Headers(_))));

    switches.set_stall(true);
    let client = TestClient::start_with(&[peer.addr()], 1, quick_timeouts);
    let log = client.wait_warning("timed out").await;
    assert!(log.synced.is_empty());
    client.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_consistent_lie_about_one_filter_fools_a_single_peer_client_and_conflicts_from_that_block(
) {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, spending) = chain_with_payment(&peer, &watched);
    let liar = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    liar.switches.set_lying_filter_for(Some(paying));

    // Alone, the liar is believed: the payment's filter hides it, the spend's does not.
    let fooled = TestClient::start(&[liar.addr], 1);
    let log = fooled.wait_synced_to(peer.tip()).await;
    let script = watched.script();
    assert!(!log.filter_of(&paying).unwrap().matches(&script));
    assert!(log.filter_of(&spending).unwrap().matches(&script));
    fooled.stop().await;

    // Its filter hashes differ from the honest ones at that block only, and its filter
    // headers from that block on.
    let tip = peer.tip().1;
    let mut honest = RawPeer::connect(peer.addr()).await;
    honest.handshake(false).await;
    let mut lying = RawPeer::connect(liar.addr).await;
    lying.handshake(false).await;
    let request = NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 1,
        stop_hash: tip,
    });
    honest.send(request.clone()).await;
    lying.send(request).await;
    let (NetworkMessage::CFHeaders(truth), NetworkMessage::CFHeaders(lie)) =
        (honest.recv().await, lying.recv().await)
    else {
        panic!("expected cfheaders from both");
    };
    let differing: Vec<usize> = truth
        .filter_hashes
        .iter()
        .zip(&lie.filter_hashes)
        .enumerate()
        .filter(|(_, (truth, lie))| truth != lie)
        .map(|(index, _)| index)
        .collect();
    assert_eq!(differing, vec![101], "only block 102's filter hash differs");
    let checkpoint = NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 110,
        stop_hash: tip,
    });
    honest.send(checkpoint.clone()).await;
    lying.send(checkpoint).await;
    let (NetworkMessage::CFHeaders(truth), NetworkMessage::CFHeaders(lie)) =
        (honest.recv().await, lying.recv().await)
    else {
        panic!("expected cfheaders from both");
    };
    assert_eq!(truth.filter_hashes, lie.filter_hashes);
    assert_ne!(
        truth.previous_filter_header, lie.previous_filter_header,
        "the filter-header chains part at the lie"
    );

    // Two clients in a quorum see the conflict.
    let quorum = TestClient::start(&[peer.addr(), liar.addr], 2);
    quorum
        .wait_warning("Found a conflict while peers are sending filter headers")
        .await;
    quorum.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pruned_endpoint_announces_limited_service_and_drops_a_peer_asking_for_an_old_block() {
    let peer = start_peer().await;
    let watched = TestKey::new("watched");
    let (paying, _) = chain_with_payment(&peer, &watched);
    peer.mine(300, &TestKey::new("miner").script());
    let pruned = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    pruned.switches.set_pruned(true);

    let mut raw = RawPeer::connect(pruned.addr).await;
    let handshake = raw.handshake(false).await;
    let services = handshake.version.services;
    assert!(services.has(bitcoin::p2p::ServiceFlags::NETWORK_LIMITED));
    assert!(!services.has(bitcoin::p2p::ServiceFlags::NETWORK));
    // A recent block is served...
    let recent = peer.tip().1;
    raw.send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(
        recent,
    )]))
    .await;
    assert!(
        matches!(raw.recv().await, NetworkMessage::Block(block) if block.block_hash() == recent)
    );
    // ...a block 300 deep ends the connection, as Bitcoin Core does.
    raw.send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(
        paying,
    )]))
    .await;
    assert!(raw.closed_by_peer().await);
    let counts = pruned.switches.counts();
    assert_eq!(counts.deep_block_requests(), 1);
    assert_eq!(counts.blocks_served(), 1);
    assert_eq!(counts.connections(), 1);
    assert_eq!(peer.endpoint().switches.counts().connections(), 0);
}

//! The P2P protocol as Bitcoin Core speaks it, checked on raw connections: handshake, headers,
//! blocks with and without witnesses, notfound, transaction relay both ways, compact filter
//! requests within Core's limits, block announcements; plus endpoints, connection counting,
//! disconnection and shutdown, and transaction relay with real bip157 clients.

use crate::common;

use std::time::Duration;

use bip157::{GossipMonitorRequestBuilder, ServiceFlags};
use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::{CommandString, NetworkMessage};
use bitcoin::p2p::message_blockdata::{GetHeadersMessage, Inventory};
use bitcoin::p2p::message_compact_blocks::SendCmpct;
use bitcoin::p2p::message_filter::{GetCFCheckpt, GetCFHeaders, GetCFilters};
use bitcoin::{Amount, BlockHash, FeeRate, FilterHeader, OutPoint, Txid, Wtxid};
use common::client::TestClient;
use common::keys::{pay, spend_p2wpkh, TestKey};
use common::raw::RawPeer;
use common::{start_peer, wait_for, TIMEOUT};

fn zero_hash() -> BlockHash {
    BlockHash::all_zeros()
}

fn fee_rate(sat_per_vb: u64) -> FeeRate {
    FeeRate::from_sat_per_vb(sat_per_vb).unwrap()
}

#[tokio::test]
async fn the_version_handshake_matches_core() {
    let peer = start_peer().await;
    peer.mine(7, &TestKey::new("miner").script());
    let mut raw = RawPeer::connect(peer.addr()).await;
    let handshake = raw.handshake(true).await;
    let version = handshake.version;
    assert_eq!(version.version, 70016);
    assert!(version.services.has(ServiceFlags::NETWORK));
    assert!(version.services.has(ServiceFlags::WITNESS));
    assert!(version.services.has(ServiceFlags::COMPACT_FILTERS));
    assert_eq!(version.start_height, 7);
    assert!(version.relay);
    assert!(version.user_agent.starts_with("/lightfilter-regtest:"));
    assert_eq!(
        handshake.before_verack,
        vec![NetworkMessage::WtxidRelay, NetworkMessage::SendAddrV2],
        "BIP 339 and BIP 155 negotiation happen before verack"
    );
    // After the handshake: our fee filter (1 sat/vB) and a ping.
    assert!(matches!(
        handshake.after_verack[..],
        [NetworkMessage::FeeFilter(1_000), NetworkMessage::Ping(_)]
    ));
    assert!(wait_for(TIMEOUT, || peer.peer_count() == 1).await);

    // Messages Core tolerates do not disturb the connection.
    raw.send(NetworkMessage::SendHeaders).await;
    raw.send(NetworkMessage::SendCmpct(SendCmpct {
        send_compact: false,
        version: 2,
    }))
    .await;
    raw.send(NetworkMessage::GetAddr).await;
    raw.send(NetworkMessage::Unknown {
        command: CommandString::try_from_static("madeup").unwrap(),
        payload: vec![1, 2, 3],
    })
    .await;
    assert_eq!(raw.sync().await, vec![]);

    // Core drops peers that negotiate wtxid relay after verack.
    let mut late = RawPeer::connect(peer.addr()).await;
    late.handshake(true).await;
    late.send(NetworkMessage::WtxidRelay).await;
    assert!(late.closed_by_peer().await);
}

#[tokio::test]
async fn getheaders_answers_from_the_locator_with_at_most_2000_headers() {
    let peer = start_peer().await;
    peer.mine(2_500, &TestKey::new("miner").script());
    let hash_at = |height| peer.block_at(height).unwrap().block_hash();
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;

    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![hash_at(0)],
        zero_hash(),
    )))
    .await;
    let NetworkMessage::Headers(first) = raw.recv_until(only_headers).await else {
        unreachable!()
    };
    assert_eq!(first.len(), 2_000);
    for (index, header) in first.iter().enumerate() {
        assert_eq!(header.block_hash(), hash_at(index as u32 + 1));
    }

    // The first locator entry on the active chain wins (Core's FindForkInGlobalIndex).
    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![
            BlockHash::from_byte_array([7; 32]),
            hash_at(2_000),
            hash_at(5),
        ],
        zero_hash(),
    )))
    .await;
    let NetworkMessage::Headers(rest) = raw.recv_until(only_headers).await else {
        unreachable!()
    };
    assert_eq!(rest.len(), 500);
    assert_eq!(rest[0].prev_blockhash, hash_at(2_000));

    // The stop hash ends the answer early.
    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![hash_at(1_000)],
        hash_at(1_010),
    )))
    .await;
    let NetworkMessage::Headers(ten) = raw.recv_until(only_headers).await else {
        unreachable!()
    };
    assert_eq!(ten.len(), 10);
    assert_eq!(ten[9].block_hash(), hash_at(1_010));

    // An empty locator asks for the stop block's header only.
    raw.send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
        vec![],
        hash_at(42),
    )))
    .await;
    let NetworkMessage::Headers(one) = raw.recv_until(only_headers).await else {
        unreachable!()
    };
    assert_eq!(one.len(), 1);
    assert_eq!(one[0].block_hash(), hash_at(42));
    assert_eq!(peer.stats().headers_served, 2_511);
}

fn only_headers(message: &NetworkMessage) -> Option<NetworkMessage> {
    matches!(message, NetworkMessage::Headers(_)).then(|| message.clone())
}

#[tokio::test]
async fn getdata_serves_blocks_with_and_without_witnesses_and_notfound() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let funding = peer
        .fund(&alice.script(), Amount::from_sat(100_000), fee_rate(1))
        .unwrap();
    let hash = peer.mine(1, &alice.script())[0];
    let full = peer.block(&hash).unwrap();
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    peer.reset_stats();

    let unknown = BlockHash::from_byte_array([9; 32]);
    raw.send(NetworkMessage::GetData(vec![
        Inventory::WitnessBlock(hash),
        Inventory::Block(hash),
        Inventory::WitnessBlock(unknown),
    ]))
    .await;
    let replies = raw.sync().await;
    let blocks: Vec<_> = replies
        .iter()
        .filter_map(|message| match message {
            NetworkMessage::Block(block) => Some(block.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(blocks.len(), 2);
    assert_eq!(blocks[0], full);
    assert!(blocks[0].check_witness_commitment());
    let stripped = &blocks[1];
    assert_eq!(stripped.block_hash(), hash);
    assert!(stripped
        .txdata
        .iter()
        .all(|tx| tx.input.iter().all(|input| input.witness.is_empty())));
    assert!(serialize(stripped).len() < serialize(&full).len());
    let funding_in_block = stripped
        .txdata
        .iter()
        .find(|tx| tx.compute_txid() == funding.compute_txid());
    assert!(funding_in_block.is_some());
    assert!(
        replies.contains(&NetworkMessage::NotFound(vec![Inventory::WitnessBlock(
            unknown
        )]))
    );
    assert_eq!(
        peer.stats().blocks_served,
        vec![(hash, true), (hash, false)]
    );
}

#[tokio::test]
async fn transactions_relay_both_ways_on_raw_connections() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    peer.mine(101, &peer.faucet_script());
    let mut relaying = RawPeer::connect(peer.addr()).await;
    relaying.handshake(true).await;
    let mut blocks_only = RawPeer::connect(peer.addr()).await;
    blocks_only.handshake(false).await;

    // A transaction from the API is announced by wtxid to peers that want transactions.
    let funding = peer
        .fund(&alice.script(), Amount::from_sat(200_000), fee_rate(2))
        .unwrap();
    let wtxid = funding.compute_wtxid();
    relaying
        .recv_until(|message| {
            (*message == NetworkMessage::Inv(vec![Inventory::WTx(wtxid)])).then_some(())
        })
        .await;
    assert!(!blocks_only
        .sync()
        .await
        .iter()
        .any(|message| matches!(message, NetworkMessage::Inv(_))));

    relaying
        .send(NetworkMessage::GetData(vec![
            Inventory::WTx(wtxid),
            Inventory::Transaction(funding.compute_txid()),
            Inventory::WTx(Wtxid::from_byte_array([3; 32])),
        ]))
        .await;
    let replies = relaying.sync().await;
    let txs: Vec<_> = replies
        .iter()
        .filter_map(|message| match message {
            NetworkMessage::Tx(tx) => Some(tx.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(txs.len(), 2);
    assert_eq!(txs[0], funding);
    assert_eq!(txs[1].compute_txid(), funding.compute_txid());
    assert!(txs[1].input.iter().all(|input| input.witness.is_empty()));
    assert!(
        replies.contains(&NetworkMessage::NotFound(vec![Inventory::WTx(
            Wtxid::from_byte_array([3; 32])
        )]))
    );

    // Transactions sent by a peer enter the mempool; a child before its parent waits for it.
    let parent = spend_p2wpkh(
        &alice,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(200_000),
        vec![pay(&bob.script(), 199_000)],
    );
    let child = spend_p2wpkh(
        &bob,
        OutPoint::new(parent.compute_txid(), 0),
        Amount::from_sat(199_000),
        vec![pay(&alice.script(), 198_000)],
    );
    relaying.send(NetworkMessage::Tx(child.clone())).await;
    relaying.send(NetworkMessage::Tx(parent.clone())).await;
    let replies = relaying.sync().await;
    assert!(peer.in_mempool(&parent.compute_txid()));
    assert!(peer.in_mempool(&child.compute_txid()));
    assert!(
        !replies
            .iter()
            .any(|message| matches!(message, NetworkMessage::Inv(_))),
        "a peer is not told about its own transactions: {replies:?}"
    );
    assert!(
        replies.contains(&NetworkMessage::GetData(vec![
            Inventory::WitnessTransaction(parent.compute_txid())
        ])),
        "like Core, the orphan's parent is requested by txid: {replies:?}"
    );
    assert_eq!(peer.stats().txs_received, 2);

    // One parent, one child: a parent below the relay fee is accepted when its child pays.
    let (free_parent, paying_child) = {
        let coin = peer
            .fund(&alice.script(), Amount::from_sat(50_000), fee_rate(1))
            .unwrap();
        peer.mine(1, &bob.script());
        let free_parent = spend_p2wpkh(
            &alice,
            OutPoint::new(coin.compute_txid(), 0),
            Amount::from_sat(50_000),
            vec![pay(&bob.script(), 50_000)],
        );
        let paying_child = spend_p2wpkh(
            &bob,
            OutPoint::new(free_parent.compute_txid(), 0),
            Amount::from_sat(50_000),
            vec![pay(&alice.script(), 49_000)],
        );
        (free_parent, paying_child)
    };
    assert!(peer.send_tx(&free_parent).is_err(), "alone it pays no fee");
    relaying
        .send(NetworkMessage::Tx(paying_child.clone()))
        .await;
    relaying.send(NetworkMessage::Tx(free_parent.clone())).await;
    relaying.sync().await;
    assert!(peer.in_mempool(&free_parent.compute_txid()));
    assert!(peer.in_mempool(&paying_child.compute_txid()));

    // An invalid transaction is refused; the connection stays up.
    let invalid = spend_p2wpkh(
        &bob,
        OutPoint::new(Txid::from_byte_array([5; 32]), 0),
        Amount::from_sat(1_000),
        vec![pay(&alice.script(), 500)],
    );
    relaying.send(NetworkMessage::Tx(invalid.clone())).await;
    relaying.sync().await;
    assert!(!peer.in_mempool(&invalid.compute_txid()));

    // Announced transactions we lack are requested by the announced id.
    let announced = Wtxid::from_byte_array([8; 32]);
    relaying
        .send(NetworkMessage::Inv(vec![
            Inventory::WTx(announced),
            Inventory::WTx(parent.compute_wtxid()),
        ]))
        .await;
    let replies = relaying.sync().await;
    assert!(replies.contains(&NetworkMessage::GetData(vec![Inventory::WTx(announced)])));
}

#[tokio::test]
async fn compact_filter_requests_are_served_within_cores_limits() {
    let peer = start_peer().await;
    peer.mine(2_100, &TestKey::new("miner").script());
    let hash_at = |height| peer.block_at(height).unwrap().block_hash();
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    peer.reset_stats();

    raw.send(NetworkMessage::GetCFilters(GetCFilters {
        filter_type: 0,
        start_height: 1,
        stop_hash: hash_at(1_000),
    }))
    .await;
    let replies = raw.sync().await;
    assert_eq!(replies.len(), 1_000);
    for (index, message) in replies.iter().enumerate() {
        let NetworkMessage::CFilter(filter) = message else {
            panic!("expected cfilter, got {message:?}");
        };
        let hash = hash_at(index as u32 + 1);
        assert_eq!(filter.block_hash, hash);
        assert_eq!(filter.filter, peer.filter(&hash).unwrap().content);
    }
    assert_eq!(peer.stats().cfilters_served, 1_000);

    raw.send(NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 1,
        stop_hash: hash_at(2_000),
    }))
    .await;
    let NetworkMessage::CFHeaders(batch) = raw.recv().await else {
        panic!("expected cfheaders");
    };
    assert_eq!(batch.stop_hash, hash_at(2_000));
    assert_eq!(
        batch.previous_filter_header,
        peer.filter_header(&hash_at(0)).unwrap()
    );
    assert_eq!(batch.filter_hashes.len(), 2_000);
    let mut header = batch.previous_filter_header;
    for filter_hash in &batch.filter_hashes {
        header = filter_hash.filter_header(&header);
    }
    assert_eq!(header, peer.filter_header(&hash_at(2_000)).unwrap());

    raw.send(NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 0,
        stop_hash: hash_at(3),
    }))
    .await;
    let NetworkMessage::CFHeaders(from_genesis) = raw.recv().await else {
        panic!("expected cfheaders");
    };
    assert_eq!(
        from_genesis.previous_filter_header,
        FilterHeader::all_zeros()
    );
    assert_eq!(from_genesis.filter_hashes.len(), 4);

    raw.send(NetworkMessage::GetCFCheckpt(GetCFCheckpt {
        filter_type: 0,
        stop_hash: hash_at(2_100),
    }))
    .await;
    let NetworkMessage::CFCheckpt(checkpoints) = raw.recv().await else {
        panic!("expected cfcheckpt");
    };
    assert_eq!(
        checkpoints.filter_headers,
        vec![
            peer.filter_header(&hash_at(1_000)).unwrap(),
            peer.filter_header(&hash_at(2_000)).unwrap()
        ]
    );

    // Beyond Core's limits, or for an unknown stop block, Core disconnects.
    raw.send(NetworkMessage::GetCFilters(GetCFilters {
        filter_type: 0,
        start_height: 1,
        stop_hash: hash_at(1_001),
    }))
    .await;
    assert!(raw.closed_by_peer().await);
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetCFHeaders(GetCFHeaders {
        filter_type: 0,
        start_height: 0,
        stop_hash: hash_at(2_000),
    }))
    .await;
    assert!(
        raw.closed_by_peer().await,
        "2001 filter headers is one too many"
    );
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(false).await;
    raw.send(NetworkMessage::GetCFilters(GetCFilters {
        filter_type: 0,
        start_height: 1,
        stop_hash: BlockHash::from_byte_array([1; 32]),
    }))
    .await;
    assert!(raw.closed_by_peer().await);
}

#[tokio::test]
async fn new_blocks_are_announced_with_headers_after_sendheaders_and_inv_otherwise() {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    peer.mine(5, &miner);
    let mut prefers_headers = RawPeer::connect(peer.addr()).await;
    prefers_headers.handshake(false).await;
    prefers_headers.send(NetworkMessage::SendHeaders).await;
    prefers_headers
        .send(NetworkMessage::GetHeaders(GetHeadersMessage::new(
            vec![peer.block_at(0).unwrap().block_hash()],
            zero_hash(),
        )))
        .await;
    prefers_headers.recv_until(only_headers).await;
    let mut prefers_inv = RawPeer::connect(peer.addr()).await;
    prefers_inv.handshake(false).await;
    prefers_inv.sync().await;

    let one = peer.mine(1, &miner)[0];
    let announcement = prefers_headers
        .recv_until(|message| match message {
            NetworkMessage::Headers(headers) => Some(headers.clone()),
            _ => None,
        })
        .await;
    assert_eq!(announcement.len(), 1);
    assert_eq!(announcement[0].block_hash(), one);
    let inv = prefers_inv
        .recv_until(|message| match message {
            NetworkMessage::Inv(items) => Some(items.clone()),
            _ => None,
        })
        .await;
    assert_eq!(inv, vec![Inventory::Block(one)]);

    let two = peer.mine(2, &miner);
    let announcement = prefers_headers
        .recv_until(|message| match message {
            NetworkMessage::Headers(headers) => Some(headers.clone()),
            _ => None,
        })
        .await;
    let announced: Vec<BlockHash> = announcement.iter().map(|h| h.block_hash()).collect();
    assert_eq!(announced, two);

    // More than eight new blocks: Core falls back to an inv of the tip.
    let nine = peer.mine(9, &miner);
    let inv = prefers_headers
        .recv_until(|message| match message {
            NetworkMessage::Inv(items) => Some(items.clone()),
            _ => None,
        })
        .await;
    assert_eq!(inv, vec![Inventory::Block(nine[8])]);
}

#[tokio::test]
async fn endpoints_share_the_chain_have_their_own_switches_and_can_be_dropped() {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    let second = peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    assert_ne!(second.addr, peer.addr());
    let mut first_raw = RawPeer::connect(peer.addr()).await;
    first_raw.handshake(false).await;
    let mut second_raw = RawPeer::connect(second.addr).await;
    second_raw.handshake(false).await;
    assert!(wait_for(TIMEOUT, || peer.peer_count() == 2).await);

    let hash = peer.mine(1, &miner)[0];
    for raw in [&mut first_raw, &mut second_raw] {
        raw.recv_until(|message| {
            (*message == NetworkMessage::Inv(vec![Inventory::Block(hash)])).then_some(())
        })
        .await;
    }
    second.switches.set_withhold_blocks(true);
    first_raw
        .send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]))
        .await;
    assert!(matches!(
        first_raw.sync().await[..],
        [NetworkMessage::Block(_)]
    ));
    second_raw
        .send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]))
        .await;
    assert_eq!(
        second_raw.sync().await,
        vec![NetworkMessage::NotFound(vec![Inventory::WitnessBlock(
            hash
        )])]
    );

    peer.disconnect_all();
    assert!(first_raw.closed_by_peer().await);
    assert!(second_raw.closed_by_peer().await);
    assert!(wait_for(TIMEOUT, || peer.peer_count() == 0).await);
    let mut again = RawPeer::connect(second.addr).await;
    again.handshake(false).await;
    assert!(wait_for(TIMEOUT, || peer.peer_count() == 1).await);

    peer.shutdown();
    assert!(again.closed_by_peer().await);
    let refused = wait_for(TIMEOUT, || {
        std::net::TcpStream::connect_timeout(&peer.addr(), Duration::from_secs(1)).is_err()
            && std::net::TcpStream::connect_timeout(&second.addr, Duration::from_secs(1)).is_err()
    })
    .await;
    assert!(refused, "no endpoint accepts connections after shutdown");
    assert!(peer
        .add_endpoint("127.0.0.1:0".parse().unwrap())
        .await
        .is_err());
    // The chain stays usable.
    peer.mine(1, &miner);
    assert_eq!(peer.tip().0, 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bip157_clients_broadcast_to_and_hear_from_the_mempool() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    peer.mine(101, &peer.faucet_script());
    // The same peer twice: once for the chain, once for transaction gossip.
    let client = TestClient::start(&[peer.addr(), peer.addr()], 1);
    client.wait_synced_to(peer.tip()).await;
    assert!(wait_for(TIMEOUT, || peer.peer_count() == 1).await);
    let mut gossip = client
        .requester
        .subscribe_to_gossip(
            GossipMonitorRequestBuilder::from_expected_output_scripts([alice.script()]).build(),
        )
        .await
        .unwrap()
        .expect("a new gossip subscription");
    assert!(
        wait_for(TIMEOUT, || peer.peer_count() == 2).await,
        "the gossip connection is up before the transaction appears"
    );

    let funding = peer
        .fund(&alice.script(), Amount::from_sat(300_000), fee_rate(2))
        .unwrap();
    let heard = tokio::time::timeout(TIMEOUT, gossip.recv())
        .await
        .expect("the client hears the transaction")
        .unwrap();
    assert_eq!(heard, funding);

    peer.mine(1, &bob.script());
    let parent = spend_p2wpkh(
        &alice,
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(300_000),
        vec![pay(&bob.script(), 299_000)],
    );
    let child = spend_p2wpkh(
        &bob,
        OutPoint::new(parent.compute_txid(), 0),
        Amount::from_sat(299_000),
        vec![pay(&alice.script(), 297_000)],
    );
    let package = bip157::Package::new_one_parent_one_child(parent.clone(), child.clone()).unwrap();
    tokio::time::timeout(TIMEOUT, client.requester.submit_package(package))
        .await
        .expect("the package is sent")
        .unwrap();
    assert!(
        wait_for(TIMEOUT, || peer.in_mempool(&child.compute_txid())).await,
        "the package reached the mempool"
    );
    assert!(peer.in_mempool(&parent.compute_txid()));
    peer.mine(1, &bob.script());
    assert_eq!(peer.confirmations(&child.compute_txid()), Some(1));
    client.stop().await;
}

#[tokio::test]
async fn the_handle_is_shared_across_threads_and_dropping_the_last_clone_stops_the_peer() {
    fn assert_send_sync<T: Send + Sync + Clone>(_: &T) {}
    let peer = start_peer().await;
    assert_send_sync(&peer);
    let clone = peer.clone();
    let miner = TestKey::new("miner").script();
    std::thread::spawn(move || clone.mine(3, &miner))
        .join()
        .unwrap();
    assert_eq!(peer.tip().0, 3, "clones drive the same peer");

    let addr = peer.addr();
    let mut raw = RawPeer::connect(addr).await;
    raw.handshake(false).await;
    drop(peer);
    assert!(raw.closed_by_peer().await);
    let refused = wait_for(TIMEOUT, || {
        std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_err()
    })
    .await;
    assert!(refused, "the listener closes with the last handle");
}

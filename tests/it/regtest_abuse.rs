//! The regtest peer under abuse from whatever connects to it: message headers that declare
//! 4 MB and send nothing more cost it little memory while a node syncs from it, connections
//! beyond its limit are closed at once, connections that do not complete the handshake or go
//! silent are closed after their timeouts, and orphan transactions stay bounded and leave with
//! the connection that sent them.

use crate::common;

use common::proc;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::hashes::Hash;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Txid, Witness};
use common::cli::{Daemon, PeerProcess};
use common::raw::RawPeer;
use common::{init_logging, wait_for};
use lightfilter::regtest::{PeerLimits, RegtestPeer};
use proc::status_kb;

/// A P2P v1 header (regtest magic) announcing a `block` message of `length` bytes.
fn header_declaring(length: u32) -> Vec<u8> {
    let mut header = bitcoin::Network::Regtest.magic().to_bytes().to_vec();
    let mut command = [0u8; 12];
    command[..5].copy_from_slice(b"block");
    header.extend_from_slice(&command);
    header.extend_from_slice(&length.to_le_bytes());
    header.extend_from_slice(&[0u8; 4]);
    header
}

#[test]
fn header_only_messages_cost_the_peer_little_memory_while_a_node_syncs_from_it() {
    const ABUSERS: usize = 200;
    const DECLARED: u32 = 4_000_000;
    const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(30);
    let mut peer = PeerProcess::start(&[
        "--blocks",
        "20",
        "--max-connections",
        "300",
        "--handshake-timeout",
        &HANDSHAKE_TIMEOUT.as_secs().to_string(),
    ]);
    let pid = peer.pid().to_string();
    std::thread::sleep(Duration::from_millis(500));
    let before_kb = status_kb(&pid, "VmRSS:");
    assert!(before_kb > 0, "cannot read the peer's memory from /proc");

    let started = Instant::now();
    let mut abusers: Vec<TcpStream> = (0..ABUSERS)
        .map(|_| {
            let mut stream = TcpStream::connect(peer.addr).expect("connect to the peer");
            stream
                .write_all(&header_declaring(DECLARED))
                .expect("send a header");
            stream
        })
        .collect();

    // A node syncs from the peer while every abuser holds its half-sent message.
    let node = Daemon::start_on("abused", peer.addr, &[]);
    node.wait_synced_to(20);
    std::thread::sleep(Duration::from_secs(1));
    let peak_kb = status_kb(&pid, "VmHWM:");
    let growth_mb = peak_kb.saturating_sub(before_kb) as f64 / 1024.0;
    println!(
        "{ABUSERS} headers declaring {DECLARED} bytes each: peer resident memory {before_kb} kB \
         before, peak {peak_kb} kB, growth {growth_mb:.1} MB"
    );
    assert!(
        growth_mb < 50.0,
        "the peer grew by {growth_mb:.1} MB for {ABUSERS} message headers"
    );
    let synced_after = started.elapsed();
    assert!(
        synced_after < HANDSHAKE_TIMEOUT - Duration::from_secs(2),
        "the node took {synced_after:?} to sync: too slow for this test to see it happen \
         while the abusers were connected"
    );

    // Each abuser is closed once its handshake time is up, not before.
    let deadline = started + HANDSHAKE_TIMEOUT * 2;
    for (index, stream) in abusers.iter_mut().enumerate() {
        let left = deadline.saturating_duration_since(Instant::now());
        stream
            .set_read_timeout(Some(left.max(Duration::from_millis(1))))
            .unwrap();
        let mut byte = [0u8; 1];
        match stream.read(&mut byte) {
            Ok(0) => {}
            Err(error) if error.kind() == std::io::ErrorKind::ConnectionReset => {}
            other => panic!("abuser {index} was not closed by the deadline: {other:?}"),
        }
        let closed_after = started.elapsed();
        assert!(
            closed_after >= HANDSHAKE_TIMEOUT - Duration::from_secs(1),
            "abuser {index} was closed after {closed_after:?}, before the handshake timeout"
        );
    }
    // The node, handshaken, is still served.
    assert!(node.json(&["getinfo"])["num_bitcoin_peers"].as_u64() >= Some(1));
}

fn limits() -> PeerLimits {
    PeerLimits::default()
}

async fn start_peer_with(limits: PeerLimits) -> RegtestPeer {
    init_logging();
    RegtestPeer::start_with_limits("127.0.0.1:0".parse().unwrap(), limits)
        .await
        .expect("start the regtest peer")
}

/// Whether the peer closes `raw` within `limit` (dropping what it sends meanwhile).
async fn closed_within(raw: &mut RawPeer, limit: Duration) -> bool {
    let drain = async { while raw.try_recv().await.is_some() {} };
    tokio::time::timeout(limit, drain).await.is_ok()
}

#[tokio::test]
async fn connections_beyond_the_limit_are_closed_at_once() {
    let peer = start_peer_with(PeerLimits {
        max_connections: 3,
        ..limits()
    })
    .await;
    let mut admitted = Vec::new();
    for _ in 0..3 {
        let mut raw = RawPeer::connect(peer.addr()).await;
        raw.handshake(true).await;
        admitted.push(raw);
    }
    let mut refused = RawPeer::connect(peer.addr()).await;
    assert!(
        closed_within(&mut refused, Duration::from_secs(5)).await,
        "a fourth connection is closed"
    );
    assert_eq!(peer.connection_count(), 3);
    for raw in &mut admitted {
        raw.sync().await;
    }

    // A place freed is taken again.
    drop(admitted.pop());
    assert!(wait_for(Duration::from_secs(10), || peer.connection_count() == 2).await);
    let mut again = RawPeer::connect(peer.addr()).await;
    again.handshake(true).await;
    assert!(wait_for(Duration::from_secs(10), || peer.peer_count() == 3).await);
}

#[tokio::test]
async fn a_connection_is_closed_when_it_does_not_complete_the_handshake_in_time() {
    let timeout = Duration::from_secs(1);
    let peer = start_peer_with(PeerLimits {
        handshake_timeout: timeout,
        ..limits()
    })
    .await;
    let started = Instant::now();
    let mut silent = RawPeer::connect(peer.addr()).await;
    let mut without_verack = RawPeer::connect(peer.addr()).await;
    without_verack
        .send(NetworkMessage::Version(RawPeer::version_message(true)))
        .await;
    let mut handshaken = RawPeer::connect(peer.addr()).await;
    handshaken.handshake(true).await;

    assert!(closed_within(&mut silent, Duration::from_secs(10)).await);
    assert!(
        started.elapsed() >= timeout - Duration::from_millis(100),
        "closed after {:?}, before the timeout",
        started.elapsed()
    );
    assert!(closed_within(&mut without_verack, Duration::from_secs(10)).await);
    tokio::time::sleep(timeout).await;
    handshaken.sync().await;
    assert_eq!(peer.connection_count(), 1);
}

#[tokio::test]
async fn a_peer_that_sends_nothing_is_closed_after_the_idle_timeout() {
    let timeout = Duration::from_secs(2);
    let peer = start_peer_with(PeerLimits {
        idle_timeout: timeout,
        ..limits()
    })
    .await;
    let mut mute = RawPeer::connect(peer.addr()).await;
    mute.handshake(true).await;
    let mut talking = RawPeer::connect(peer.addr()).await;
    talking.handshake(true).await;
    let started = Instant::now();

    // The talking peer answers the pings (sent every second here); the mute one does not.
    let answer_pings = async {
        loop {
            if let NetworkMessage::Ping(nonce) = talking.recv().await {
                talking.send(NetworkMessage::Pong(nonce)).await;
            }
        }
    };
    let closed = tokio::select! {
        closed = closed_within(&mut mute, Duration::from_secs(20)) => closed,
        _ = answer_pings => unreachable!(),
    };
    assert!(closed, "the mute peer is closed");
    assert!(started.elapsed() >= timeout - Duration::from_millis(500));
    let keep_answering = async {
        loop {
            if let NetworkMessage::Ping(nonce) = talking.recv().await {
                talking.send(NetworkMessage::Pong(nonce)).await;
            }
        }
    };
    let _ = tokio::time::timeout(timeout * 2, keep_answering).await;
    talking.sync().await;
    assert_eq!(peer.connection_count(), 1);
}

/// A transaction spending an output of a transaction nobody knows, `weight` weight units
/// heavy (give or take a few).
fn orphan(tag: u8, weight: u64) -> Transaction {
    let mut tx = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(Txid::from_byte_array([tag; 32]), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(10_000),
            script_pubkey: ScriptBuf::new(),
        }],
    };
    let base = tx.weight().to_wu();
    let padding = (weight.saturating_sub(base) / 4).saturating_sub(4) as usize;
    tx.output[0].script_pubkey = ScriptBuf::from_bytes(vec![0x6a; padding]);
    tx
}

#[tokio::test]
async fn orphans_are_bounded_and_leave_with_the_connection_that_sent_them() {
    let peer = start_peer_with(limits()).await;
    let mut raw = RawPeer::connect(peer.addr()).await;
    raw.handshake(true).await;

    // Larger than a standard transaction: not kept.
    raw.send(NetworkMessage::Tx(orphan(1, 420_000))).await;
    raw.sync().await;
    assert_eq!(peer.orphans().0, 0);

    // Twelve of nearly the largest standard size: only ten are kept.
    for tag in 10..22 {
        let tx = orphan(tag, 399_000);
        assert!(tx.weight().to_wu() <= 400_000);
        raw.send(NetworkMessage::Tx(tx)).await;
    }
    raw.sync().await;
    let (count, weight) = peer.orphans();
    assert_eq!(count, 10, "orphans kept");
    assert!(weight <= 4_000_000, "{weight} WU of orphans kept");

    drop(raw);
    assert!(
        wait_for(Duration::from_secs(10), || peer.orphans().0 == 0).await,
        "the orphans of a closed connection are dropped"
    );
}

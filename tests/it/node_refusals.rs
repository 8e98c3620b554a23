//! A node refuses to start on a data directory it must not touch, with a clear message and
//! nothing overwritten: one another node holds, one of another network, one with damaged
//! channel state.

use crate::common;

use common::node_harness as harness;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use harness::*;
use lightfilter::node::{Node, NodeError};

/// Every file under `dir` with its contents.
fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let mut files = BTreeMap::new();
    let mut stack = vec![dir.to_path_buf()];
    while let Some(path) = stack.pop() {
        for entry in std::fs::read_dir(&path).unwrap() {
            let entry = entry.unwrap();
            let path = entry.path();
            if path.is_dir() {
                stack.push(path);
            } else {
                files.insert(path.clone(), std::fs::read(&path).unwrap());
            }
        }
    }
    files
}

/// [`snapshot`] of the directory of a stopped node once its chain database is closed: Lightning
/// connection tasks ending after the stop may hold it (through LDK's broadcaster) a moment
/// longer, and its last close folds the write-ahead log into the database file.
async fn quiet_snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    let wal = dir.join("chain.sqlite-wal");
    wait_for(std::time::Duration::from_secs(30), || {
        let open = wal.exists();
        async move { !open }
    })
    .await;
    snapshot(dir)
}

/// A regtest peer and the data directory of a node that ran against it and stopped.
async fn peer_and_stopped_node() -> (lightfilter::regtest::RegtestPeer, tempfile::TempDir) {
    init_logs();
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let node = start_node(&peer, dir.path()).await;
    node.stop().await;
    drop(node);
    (peer, dir)
}

/// Panics naming the files under `dir` that differ from `before` (`what` says why they must
/// not), without printing their contents.
fn assert_unchanged(dir: &Path, before: &BTreeMap<PathBuf, Vec<u8>>, what: &str) {
    let after = snapshot(dir);
    let changed: Vec<String> = before
        .keys()
        .chain(after.keys())
        .collect::<std::collections::BTreeSet<_>>()
        .into_iter()
        .filter(|path| before.get(*path) != after.get(*path))
        .map(|path| {
            format!(
                "{} ({:?} -> {:?} bytes)",
                path.display(),
                before.get(path).map(Vec::len),
                after.get(path).map(Vec::len)
            )
        })
        .collect();
    assert!(changed.is_empty(), "{what}; changed: {changed:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_node_on_the_same_data_directory_is_refused() {
    init_logs();
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let first = start_node(&peer, dir.path()).await;
    let err = Node::start(config(&peer, dir.path()))
        .await
        .err()
        .expect("second start refused");
    assert!(matches!(err, NodeError::Locked { .. }), "{err}");
    assert!(
        err.to_string()
            .contains("another lightfilter daemon is running"),
        "{err}"
    );
    // The first node is unaffected.
    assert!(first.new_address().is_ok());
    first.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_data_directory_of_another_network_is_refused_untouched() {
    let (peer, dir) = peer_and_stopped_node().await;
    let before = quiet_snapshot(dir.path()).await;
    let mut config = config(&peer, dir.path());
    config.network = bitcoin::Network::Signet;
    let err = Node::start(config).await.err().expect("refused");
    assert_eq!(err.code(), "data_dir");
    assert!(
        err.to_string().contains("belongs to a regtest node"),
        "{err}"
    );
    assert_unchanged(
        dir.path(),
        &before,
        "the refused start changed the directory",
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_truncated_channel_monitor_is_refused_untouched() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(&peer, dir_a.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    fund(&peer, &a, 500_000).await;
    fund(&peer, &b, 100_000).await;
    synced(&peer, &a).await;
    open_channel(&peer, &a, &b, 200_000, 0, false).await;
    a.stop().await;
    drop(a);

    let monitors = dir_a.path().join("ldk").join("monitors");
    let monitor = std::fs::read_dir(&monitors)
        .unwrap()
        .map(|e| e.unwrap().path())
        .find(|p| p.is_file())
        .expect("a monitor file");
    let bytes = std::fs::read(&monitor).unwrap();
    std::fs::write(&monitor, &bytes[..bytes.len() / 2]).unwrap();
    let before = quiet_snapshot(dir_a.path()).await;

    let err = Node::start(config(&peer, dir_a.path()))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("channel monitor") && message.contains("refusing to start"),
        "{message}"
    );
    assert_unchanged(
        dir_a.path(),
        &before,
        "the refused start changed the directory",
    );
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_inbound_anchor_channel_without_a_fee_reserve_is_refused() {
    init_logs();
    let peer = start_peer().await;
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node(&peer, dir_a.path()).await;
    let b = start_node(&peer, dir_b.path()).await;
    fund(&peer, &a, 500_000).await;
    synced(&peer, &a).await;
    synced(&peer, &b).await;
    // B has no on-chain coins to bump fees with when an anchor channel closes: it refuses
    // the anchor channel, and the opener falls back to a channel without anchors, whose fees
    // are fixed up front.
    let fallback = open_channel(&peer, &a, &b, 200_000, 0, false).await;
    assert!(
        !fallback.anchors,
        "B refused an anchor channel it could not bump fees for"
    );
    // Once B holds the reserve, the next channel is an anchor channel.
    fund(&peer, &b, 60_000).await;
    synced(&peer, &b).await;
    let anchored = open_channel(&peer, &a, &b, 150_000, 0, false).await;
    assert!(anchored.anchors);
    a.stop().await;
    b.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_damaged_channel_manager_is_refused_untouched_and_no_peer_is_contacted() {
    let (peer, dir) = peer_and_stopped_node().await;
    let manager = dir.path().join("ldk").join("manager");
    let bytes = std::fs::read(&manager).unwrap();
    std::fs::write(&manager, &bytes[..bytes.len() / 2]).unwrap();
    let before = quiet_snapshot(dir.path()).await;
    peer.reset_stats();

    let err = Node::start(config(&peer, dir.path()))
        .await
        .err()
        .expect("refused");
    let message = err.to_string();
    assert!(
        message.contains("channel manager cannot be read") && message.contains("refusing"),
        "{message}"
    );
    // Give anything the refused start left running a moment to show itself.
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    assert_unchanged(
        dir.path(),
        &before,
        "the refused start changed the directory",
    );
    assert_eq!(
        peer.stats().bytes_received,
        0,
        "the refused start talked to a Bitcoin peer"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_seed_beside_a_wallet_and_channel_state_is_refused_untouched() {
    let (peer, dir) = peer_and_stopped_node().await;
    std::fs::remove_file(dir.path().join("seed")).unwrap();
    let before = quiet_snapshot(dir.path()).await;

    let err = Node::start(config(&peer, dir.path()))
        .await
        .err()
        .expect("refused");
    assert_eq!(err.code(), "data_dir");
    let message = err.to_string();
    assert!(message.contains("seed"), "{message}");
    assert_unchanged(
        dir.path(),
        &before,
        "the refused start created a seed beside the wallet",
    );
}

//! Test support for whole nodes: an embedded regtest peer and nodes started in-process in
//! temporary data directories, talking real TCP on 127.0.0.1.

#![allow(dead_code)]

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Address, Amount, FeeRate, ScriptBuf};
use lightfilter::config::{Config, ConfigArgs};
use lightfilter::node::{ChannelInfo, Node};
use lightfilter::regtest::RegtestPeer;

/// A generous limit for anything that needs a few blocks and a few round trips.
pub const LIMIT: Duration = Duration::from_secs(90);

pub fn init_logs() {
    let _ = env_logger::builder().is_test(true).try_init();
}

/// Starts the embedded regtest peer on an ephemeral port, with a mature faucet.
pub async fn start_peer() -> RegtestPeer {
    let peer = RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("regtest peer starts");
    peer.mine(101, &peer.faucet_script());
    peer
}

/// The configuration of a regtest node in `dir` using `peer`.
pub fn config(peer: &RegtestPeer, dir: &Path) -> Config {
    Config::load(&ConfigArgs {
        network: Some(bitcoin::Network::Regtest),
        data_dir: Some(dir.to_path_buf()),
        bitcoin_peers: vec![peer.addr().to_string()],
        ..ConfigArgs::default()
    })
    .expect("valid configuration")
}

/// Starts a node in `dir`. The first start fixes its Lightning port in the directory's
/// configuration file, so peers can reconnect to it after a restart.
pub async fn start_node(peer: &RegtestPeer, dir: &Path) -> Arc<Node> {
    start_node_configured(peer, dir, "").await
}

/// Like [`start_node`], with `settings` (TOML lines) added to a new configuration file.
pub async fn start_node_configured(peer: &RegtestPeer, dir: &Path, settings: &str) -> Arc<Node> {
    let file = dir.join(lightfilter::config::CONFIG_FILE);
    if !file.exists() {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        std::fs::write(
            &file,
            format!("ln_listen = \"127.0.0.1:{port}\"\n{settings}"),
        )
        .unwrap();
    }
    Node::start(config(peer, dir)).await.expect("node starts")
}

/// Two nodes in `dir_a` and `dir_b`: A funded with 1,000,000 sat and B with 100,000, both
/// synced to the peer's tip.
pub async fn two_funded_nodes(
    peer: &RegtestPeer,
    dir_a: &Path,
    dir_b: &Path,
) -> (Arc<Node>, Arc<Node>) {
    let a = start_node(peer, dir_a).await;
    let b = start_node(peer, dir_b).await;
    fund(peer, &a, 1_000_000).await;
    fund(peer, &b, 100_000).await;
    synced(peer, &a).await;
    synced(peer, &b).await;
    (a, b)
}

/// A mining script that belongs to nobody under test.
pub fn miner() -> ScriptBuf {
    ScriptBuf::new_op_return([0x6c, 0x66])
}

/// The script of `address` (as the node printed it).
pub fn script_of(address: &str) -> ScriptBuf {
    Address::from_str(address)
        .expect("address parses")
        .assume_checked()
        .script_pubkey()
}

/// Pays `sats` to a new address of `node` and mines it with one more block on top.
pub async fn fund(peer: &RegtestPeer, node: &Node, sats: u64) {
    let address = node.new_address().expect("address");
    peer.fund(
        &script_of(&address),
        Amount::from_sat(sats),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .expect("faucet pays");
    mine(peer, 2).await;
}

/// Mines `n` blocks.
pub async fn mine(peer: &RegtestPeer, n: u32) {
    peer.mine(n, &miner());
}

/// Waits until `node` has processed the peer's tip.
pub async fn synced(peer: &RegtestPeer, node: &Node) {
    let target = peer.tip().0;
    wait_for(LIMIT, || async { node.info().await.block_height >= target }).await;
}

/// Polls `condition` every 100 ms until it holds; panics after `limit`.
pub async fn wait_for<F, Fut>(limit: Duration, mut condition: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    wait_for_value(limit, || {
        let holds = condition();
        async move { holds.await.then_some(()) }
    })
    .await
}

/// Polls `probe` every 100 ms until it gives a value, and returns that value: assert on it
/// rather than on a second read, which may already see a later state. Panics after `limit`.
pub async fn wait_for_value<T, F, Fut>(limit: Duration, mut probe: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        if let Some(value) = probe().await {
            return value;
        }
        if tokio::time::Instant::now() > deadline {
            panic!("condition not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// `pubkey@host:port` parts of `node`.
pub fn address_of(node: &Node) -> String {
    node.listen_address().expect("listening").to_string()
}

/// Opens a channel from `from` to `to`, mines it deep enough and waits until both see it
/// usable.
pub async fn open_channel(
    peer: &RegtestPeer,
    from: &Arc<Node>,
    to: &Arc<Node>,
    sats: u64,
    push_msat: u64,
    public: bool,
) -> ChannelInfo {
    let opened = from
        .open_channel(
            to.node_id(),
            &address_of(to),
            sats,
            push_msat,
            public,
            false,
        )
        .await
        .expect("channel opens");
    wait_for(LIMIT, || async { peer.in_mempool(&opened.funding_txid) }).await;
    mine(peer, 6).await;
    let id = opened.channel_id;
    wait_for_value(LIMIT, || {
        let id = id.clone();
        async move {
            let ours = from
                .channels()
                .into_iter()
                .find(|c| c.channel_id == id && c.usable)?;
            let usable_there = to.channels().iter().any(|c| c.channel_id == id && c.usable);
            usable_there.then_some(ours)
        }
    })
    .await
}

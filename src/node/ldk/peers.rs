//! Lightning peers: connecting, and reconnecting to remembered and channel peers with backoff
//! when the connection drops (the addresses are kept by `stores::peer_store`).
//!
//! Directly, host names are resolved with tokio's resolver (on its blocking pool, never on a
//! worker thread) and within a time limit. Through a SOCKS5 proxy (`--proxy`), the proxy is
//! handed the address as it is, `.onion` ones included, and nothing is resolved here. The
//! remembered list is bounded.

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use lightning::chain::channelmonitor::Balance;
use lightning::ln::types::ChannelId;
use log::{debug, info};
use tokio::sync::watch;

use super::types::{ChainMonitor, ChannelManager, PeerManager};
use crate::node::stores::peer_store::PeerStore;
use crate::node::NodeError;
use crate::proxy::Route;

/// How long an outbound connection may take to complete the Lightning handshake.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// How often the reconnection loop looks at channel peers.
const RECONNECT_INTERVAL: Duration = Duration::from_secs(5);
/// Longest wait between two attempts to reach the same peer.
const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(300);
/// Longest wait for a host name to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// The nodes we have a channel with.
pub fn channel_peers(channel_manager: &ChannelManager) -> HashSet<PublicKey> {
    channel_manager
        .list_channels()
        .iter()
        .map(|c| c.counterparty.node_id)
        .collect()
}

/// Resolves `address` (`host:port`) to a socket address without blocking the caller's thread:
/// an IP address is taken as it is, a host name goes to tokio's resolver, which runs the
/// system's on its blocking pool, and is given up after [`RESOLVE_TIMEOUT`].
pub async fn resolve(address: &str) -> Result<SocketAddr, NodeError> {
    let unreachable = |reason: String| NodeError::PeerUnreachable {
        address: address.to_string(),
        reason,
    };
    if let Ok(socket) = address.parse::<SocketAddr>() {
        return Ok(socket);
    }
    tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host(address))
        .await
        .map_err(|_| {
            unreachable(format!(
                "resolving it took longer than {} s",
                RESOLVE_TIMEOUT.as_secs()
            ))
        })?
        .map_err(|err| unreachable(format!("cannot resolve it: {err}")))?
        .next()
        .ok_or_else(|| unreachable("it resolves to no address".into()))
}

/// `host` and `port` of `address` (`host:port`, `[v6]:port`), the host without brackets.
fn split_host_port(address: &str) -> Option<(&str, u16)> {
    let (host, port) = address.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    (!host.is_empty()).then_some(())?;
    Some((host, port.parse().ok()?))
}

/// Whether `node_id` is connected and past the handshake.
pub fn is_connected(peer_manager: &PeerManager, node_id: &PublicKey) -> bool {
    peer_manager.peer_by_node_id(node_id).is_some()
}

/// Connects to `node_id` at `address` (`host:port`) by `route` and waits until the handshake
/// completes.
pub async fn connect(
    peer_manager: &Arc<PeerManager>,
    route: Route,
    node_id: PublicKey,
    address: &str,
) -> Result<(), NodeError> {
    if is_connected(peer_manager, &node_id) {
        return Ok(());
    }
    let unreachable = |reason: &str| NodeError::PeerUnreachable {
        address: address.to_string(),
        reason: reason.to_string(),
    };
    let stream = match route {
        Route::Direct => {
            let socket = resolve(address).await?;
            tokio::time::timeout(CONNECT_TIMEOUT, tokio::net::TcpStream::connect(socket))
                .await
                .map_err(|_| unreachable("the TCP connection timed out"))?
                .map_err(|err| unreachable(&format!("the TCP connection failed: {err}")))?
        }
        Route::Socks5(_) => {
            let (host, port) =
                split_host_port(address).ok_or_else(|| unreachable("expected HOST:PORT"))?;
            tokio::time::timeout(CONNECT_TIMEOUT, route.connect(host, port))
                .await
                .map_err(|_| unreachable("the connection through the proxy timed out"))?
                .map_err(|err| unreachable(&err.to_string()))?
        }
    };
    let stream = stream
        .into_std()
        .map_err(|err| unreachable(&err.to_string()))?;
    let connection = lightning_net_tokio::setup_outbound(peer_manager.clone(), node_id, stream);
    let mut connection = Box::pin(connection);
    let deadline = Instant::now() + CONNECT_TIMEOUT;
    loop {
        tokio::select! {
            _ = &mut connection => {
                return Err(unreachable("the peer closed the connection during the handshake (wrong node id?)"));
            }
            _ = tokio::time::sleep(Duration::from_millis(20)) => {
                if is_connected(peer_manager, &node_id) {
                    // Keep driving the connection in the background.
                    tokio::spawn(connection);
                    return Ok(());
                }
                if Instant::now() > deadline {
                    return Err(unreachable("the Lightning handshake did not complete in time"));
                }
            }
        }
    }
}

/// Keeps peers connected until `stop` turns true: at once and then every few seconds, each
/// remembered peer (given to `connect`, or a channel peer) and each peer we have a channel with
/// (or whose close we wait for, see [`peers_awaiting_close`]) and a remembered address for is
/// reconnected if it is not connected, with exponential backoff per peer.
pub async fn keep_peers_connected(
    peer_manager: Arc<PeerManager>,
    route: Route,
    channel_manager: Arc<ChannelManager>,
    chain_monitor: Arc<ChainMonitor>,
    store: Arc<PeerStore>,
    mut stop: watch::Receiver<bool>,
) {
    let mut backoff: HashMap<PublicKey, (Instant, Duration)> = HashMap::new();
    // The first tick is immediate, so channels are usable right after a restart.
    let mut rounds = tokio::time::interval(RECONNECT_INTERVAL);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rounds.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let channels = channel_manager.list_channels();
        let mut channel_peers: Vec<PublicKey> =
            channels.iter().map(|c| c.counterparty.node_id).collect();
        let open: HashSet<ChannelId> = channels.iter().map(|c| c.channel_id).collect();
        channel_peers.extend(peers_awaiting_close(&chain_monitor, &open));
        channel_peers.extend(store.all().into_iter().map(|(node_id, _)| node_id));
        channel_peers.sort();
        channel_peers.dedup();
        for node_id in channel_peers {
            if is_connected(&peer_manager, &node_id) {
                backoff.remove(&node_id);
                continue;
            }
            let Some(address) = store.get(&node_id) else {
                continue;
            };
            let now = Instant::now();
            if let Some((next, _)) = backoff.get(&node_id) {
                if now < *next {
                    continue;
                }
            }
            debug!("reconnecting to channel peer {node_id} at {address}");
            match connect(&peer_manager, route, node_id, &address).await {
                Ok(()) => {
                    info!("reconnected to channel peer {node_id}");
                    backoff.remove(&node_id);
                }
                Err(err) => {
                    let delay = backoff.get(&node_id).map_or(RECONNECT_INTERVAL, |(_, d)| {
                        (*d * 2).min(MAX_RECONNECT_BACKOFF)
                    });
                    debug!(
                        "channel peer {node_id} unreachable ({err}); next try in {}s",
                        delay.as_secs()
                    );
                    backoff.insert(node_id, (Instant::now() + delay, delay));
                }
            }
        }
    }
}

/// The peers of channels the channel manager no longer has (`open` are the ones it has) whose
/// funding no transaction has spent yet, as their monitors know: channels whose state fell
/// behind the peer's (see `fallen_behind`), which the peer closes once it reconnects.
fn peers_awaiting_close(chain_monitor: &ChainMonitor, open: &HashSet<ChannelId>) -> Vec<PublicKey> {
    chain_monitor
        .list_monitors()
        .into_iter()
        .filter(|channel_id| !open.contains(channel_id))
        .filter_map(|channel_id| chain_monitor.get_monitor(channel_id).ok())
        .filter(|monitor| {
            monitor
                .get_claimable_balances()
                .iter()
                .any(|balance| matches!(balance, Balance::ClaimableOnChannelClose { .. }))
        })
        .map(|monitor| monitor.get_counterparty_node_id())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn addresses_resolve_without_blocking_and_bad_ones_are_named() {
        assert_eq!(
            resolve("127.0.0.1:9735").await.unwrap(),
            "127.0.0.1:9735".parse::<SocketAddr>().unwrap()
        );
        let local = resolve("localhost:9735").await.unwrap();
        assert!(local.ip().is_loopback() && local.port() == 9735, "{local}");
        let error = resolve("no-port-here").await.unwrap_err().to_string();
        assert!(error.contains("no-port-here"), "{error}");
    }

    #[test]
    fn addresses_for_the_proxy_keep_their_names() {
        let onion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion";
        assert_eq!(
            split_host_port(&format!("{onion}:9735")),
            Some((onion, 9735))
        );
        assert_eq!(split_host_port("[::1]:9735"), Some(("::1", 9735)));
        assert_eq!(
            split_host_port("node.example:9735"),
            Some(("node.example", 9735))
        );
        assert_eq!(split_host_port("no-port"), None);
        assert_eq!(split_host_port(":9735"), None);
    }
}

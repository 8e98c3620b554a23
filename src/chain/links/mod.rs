//! Peer links: the node's own connection to each Bitcoin peer, beside the compact-filter
//! engine's.
//!
//! The engine (`bip157` 0.8) syncs headers, filter headers and filters, but it tells the node
//! neither which peer announced which `feefilter` (only the highest) nor which peer asked for a
//! transaction, and it picks the peer for a block at random and waits out a `notfound`. So the
//! node keeps one plain P2P connection ([`Link`]) to every peer it uses, and through it:
//! - learns each peer's `feefilter`: the floor for the node's own transactions is the lowest
//!   one, the least a transaction must pay for some peer to relay it ([`PeerLinks::lowest_fee_filter`]);
//! - hands a transaction only to peers whose minimum it meets, and knows which peer asked for
//!   it ([`PeerLinks::submit`]), or announced it back ([`PeerLinks::announced_by`]);
//! - downloads a block from a peer that keeps it: one more than [`PRUNED_PEER_DEPTH`] blocks
//!   deep only from a peer announcing `NODE_NETWORK`, not from a pruned one
//!   (`NODE_NETWORK_LIMITED`); a peer answering `notfound` is passed over at once
//!   ([`PeerLinks::get_block`]);
//! - asks each peer for its filter headers and filters when peers disagree, to find the one
//!   that lies ([`super::filter_audit`]).
//!
//! The peers linked are the configured ones (and, when the node may find peers itself, those
//! the engine is connected to, on the network's default port), never a banned one
//! ([`super::ban_list`]). A link that drops is made again after a growing pause. A peer given
//! by name (an onion service, or a host name) is linked by that name: through the proxy the
//! name goes to the proxy as it is, without a look-up here; directly, a host name is resolved
//! and linked at its address.

mod link;
mod wire;

pub use link::{Link, LinkError};

use std::collections::{HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bitcoin::{Amount, Block, BlockHash, FeeRate, Network, Transaction, Txid, Weight, Wtxid};
use log::{debug, info};
use tokio::sync::watch;
use tokio::task::JoinSet;

use super::ban_list::BanList;
use super::engine::Engine;
use super::notifications::Shutdown;
use super::peer_address::PeerAddress;
use crate::proxy::Route;

/// How many blocks below the tip a pruned peer (`NODE_NETWORK_LIMITED`) serves (BIP 159).
pub const PRUNED_PEER_DEPTH: u32 = 288;
/// How often links are checked and dropped ones made again.
const MAINTAIN_INTERVAL: Duration = Duration::from_secs(1);
/// How long a link may take to connect and complete the version handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// The first pause before a failed or dropped link is tried again; it doubles up to
/// [`MAX_RETRY_PAUSE`].
const FIRST_RETRY_PAUSE: Duration = Duration::from_secs(1);
/// The longest pause before a failed link is tried again.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(60);
/// How long a host name may take to resolve.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a block download waits for a first link before it goes to the engine instead.
const FIRST_LINK_WAIT: Duration = Duration::from_secs(5);

/// Which peers are linked and how long they have to answer.
#[derive(Debug, Clone)]
pub struct LinksConfig {
    /// The Bitcoin network.
    pub network: Network,
    /// The configured peers.
    pub peers: Vec<PeerAddress>,
    /// Link only the configured peers (otherwise also those the engine is connected to).
    pub only_peers: bool,
    /// How long a peer has to answer one request, a whole block included.
    pub response_timeout: Duration,
    /// How connections leave the machine: directly or through a SOCKS5 proxy.
    pub route: Route,
}

/// Why a block could not be downloaded over the links.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkedFetchError {
    /// No link is up: the caller may ask the engine instead.
    #[error("no Bitcoin peer is linked")]
    NoLink,
    /// The block is deeper than pruned peers serve and no linked peer keeps every block.
    #[error("block {hash} is {depth} blocks deep and no connected peer keeps blocks that old")]
    NoFullPeer {
        /// The block.
        hash: BlockHash,
        /// How deep below the tip it is.
        depth: u32,
    },
    /// Every peer that could serve it was asked; none delivered.
    #[error("no Bitcoin peer delivered block {hash}: {reasons}")]
    NotDelivered {
        /// The block.
        hash: BlockHash,
        /// What each peer answered.
        reasons: String,
    },
}

/// A block asked for beside the wanted one, so that the peer serving them cannot tell which
/// block the node needed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decoy {
    /// The block.
    pub hash: BlockHash,
    /// How many blocks below the tip it is (a pruned peer is not asked for deep ones).
    pub depth: u32,
}

/// A block downloaded over a link, with the decoys that came with it.
#[derive(Debug)]
pub struct Fetched {
    /// The block wanted.
    pub block: Block,
    /// The peer that served it.
    pub from: PeerAddress,
    /// The decoy blocks it served alongside.
    pub decoys: Vec<Block>,
}

/// How handing a transaction to the peers went.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Submitted {
    /// A peer whose minimum the transaction meets asked for it and got it.
    Taken(PeerAddress),
    /// It pays less than every linked peer relays; it was offered to none. `lowest` is the
    /// lowest minimum among them.
    BelowEveryPeer {
        /// The lowest `feefilter` among the linked peers.
        lowest: FeeRate,
    },
    /// It was offered to the peers whose minimum it meets, and none asked for it in time.
    NotAsked,
    /// No peer is linked.
    NoLinks,
}

/// The node's links to its Bitcoin peers.
pub struct PeerLinks {
    config: LinksConfig,
    bans: Arc<BanList>,
    engine: Arc<Engine>,
    /// The height told to peers in the version message.
    height: Box<dyn Fn() -> u32 + Send + Sync>,
    links: Mutex<HashMap<PeerAddress, Arc<Link>>>,
    /// When a peer (by its configured or discovered address) may be tried again, and the
    /// pause after the next failure.
    retry: Mutex<HashMap<String, (Instant, Duration)>>,
    connecting: Mutex<HashSet<String>>,
    /// The address each peer given by a name resolved here was linked at.
    resolved: Mutex<HashMap<String, PeerAddress>>,
    /// Bumped whenever a link comes up.
    linked: watch::Sender<u64>,
    /// The peer that served the last download with decoys.
    last_hidden: Mutex<Option<PeerAddress>>,
}

impl std::fmt::Debug for PeerLinks {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PeerLinks")
            .field("linked", &self.lock_links().keys().collect::<Vec<_>>())
            .finish()
    }
}

impl PeerLinks {
    /// Links for `config`, leaving out peers `bans` holds; `engine` names the peers found by
    /// discovery, and `height` gives the height of our chain.
    pub fn new(
        config: LinksConfig,
        bans: Arc<BanList>,
        engine: Arc<Engine>,
        height: impl Fn() -> u32 + Send + Sync + 'static,
    ) -> Self {
        Self {
            config,
            bans,
            engine,
            height: Box::new(height),
            links: Mutex::new(HashMap::new()),
            retry: Mutex::new(HashMap::new()),
            connecting: Mutex::new(HashSet::new()),
            resolved: Mutex::new(HashMap::new()),
            linked: watch::channel(0).0,
            last_hidden: Mutex::new(None),
        }
    }

    /// The ban list links respect.
    pub fn bans(&self) -> &Arc<BanList> {
        &self.bans
    }

    /// How long a peer has to answer one request.
    pub fn response_timeout(&self) -> Duration {
        self.config.response_timeout
    }

    /// Keeps the links up until `shutdown` fires, then closes them.
    pub async fn run(self: Arc<Self>, mut shutdown: Shutdown) {
        let mut tick = tokio::time::interval(MAINTAIN_INTERVAL);
        loop {
            tokio::select! {
                _ = tick.tick() => self.maintain().await,
                () = shutdown.fired() => break,
            }
        }
        for link in self.lock_links().drain().map(|(_, link)| link) {
            link.close();
        }
        debug!("peer links closed");
    }

    /// The links that are up.
    pub fn open_links(&self) -> Vec<Arc<Link>> {
        self.lock_links()
            .values()
            .filter(|link| !link.is_closed())
            .cloned()
            .collect()
    }

    /// A linked peer that announced `txid` (by its wtxid or txid) to the node: it held the
    /// transaction in its mempool.
    pub fn announced_by(&self, txid: Txid, wtxid: Wtxid) -> Option<PeerAddress> {
        self.open_links()
            .iter()
            .find(|link| link.announced(txid, wtxid))
            .map(|link| link.addr().clone())
    }

    /// The lowest `feefilter` among linked peers that announced one: a transaction paying it
    /// is relayed by at least one peer. `None` while none is known.
    pub fn lowest_fee_filter(&self) -> Option<FeeRate> {
        self.open_links()
            .iter()
            .filter_map(|link| link.fee_filter())
            .min()
    }

    /// Bans the peer at `addr` (see [`BanList::ban`]) and closes its link.
    pub fn ban(&self, addr: &PeerAddress, reason: &str) {
        if let Err(err) = self.bans.ban(addr, reason) {
            log::error!("could not store the ban of Bitcoin peer {addr}: {err}");
        }
        if let Some(link) = self.lock_links().remove(addr) {
            link.close();
        }
    }

    /// Downloads block `hash`, `depth` blocks below the tip (when known), from a linked peer
    /// that keeps it, passing over the peers in `avoid` (which delivered a bad copy). Waits
    /// at most `stall` (and no more than a few seconds) for a first link.
    pub async fn get_block(
        &self,
        hash: BlockHash,
        depth: Option<u32>,
        avoid: &[PeerAddress],
        stall: Duration,
    ) -> Result<(Block, PeerAddress), LinkedFetchError> {
        self.get_block_among(hash, depth, &[], avoid, stall)
            .await
            .map(|fetched| (fetched.block, fetched.from))
    }

    /// Like [`PeerLinks::get_block`], asking the serving peer for `decoys` in the same
    /// `getdata` (those it keeps: a pruned peer is asked only for recent ones), so that it
    /// cannot tell which block the node wanted. The peer is chosen at random among those that
    /// keep the block, and is not the one that served the previous such download while
    /// another can: no single peer sees every block the wallet needs.
    pub async fn get_block_among(
        &self,
        hash: BlockHash,
        depth: Option<u32>,
        decoys: &[Decoy],
        avoid: &[PeerAddress],
        stall: Duration,
    ) -> Result<Fetched, LinkedFetchError> {
        let deadline = Instant::now() + stall.min(FIRST_LINK_WAIT);
        let mut linked = self.linked.subscribe();
        while self.open_links().is_empty() {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(LinkedFetchError::NoLink);
            }
            let _ = tokio::time::timeout(left.min(MAINTAIN_INTERVAL), linked.changed()).await;
        }
        let deep = depth.is_some_and(|depth| depth > PRUNED_PEER_DEPTH);
        let mut candidates: Vec<Arc<Link>> = self
            .open_links()
            .into_iter()
            .filter(|link| !avoid.contains(link.addr()))
            .filter(|link| {
                let services = link.services();
                services.has(bitcoin::p2p::ServiceFlags::NETWORK)
                    || (!deep && services.has(bitcoin::p2p::ServiceFlags::NETWORK_LIMITED))
            })
            .collect();
        if candidates.is_empty() {
            let full_linked = self.open_links().iter().any(|link| link.keeps_all_blocks());
            return Err(if deep && !full_linked {
                LinkedFetchError::NoFullPeer {
                    hash,
                    depth: depth.unwrap_or_default(),
                }
            } else if !avoid.is_empty() {
                LinkedFetchError::NotDelivered {
                    hash,
                    reasons: "every peer that serves it sent a copy that failed verification"
                        .into(),
                }
            } else {
                LinkedFetchError::NoLink
            });
        }
        // Spread downloads over the peers; those that keep every block first, and among them
        // the one that served the last download with decoys last.
        shuffle(&mut candidates);
        let hidden = !decoys.is_empty();
        let last = self
            .last_hidden
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        candidates.sort_by_key(|link| {
            (
                !link.keeps_all_blocks(),
                hidden && last.as_ref() == Some(link.addr()),
            )
        });
        let mut reasons = Vec::new();
        for link in candidates {
            let asked: Vec<BlockHash> = decoys
                .iter()
                .filter(|decoy| link.keeps_all_blocks() || decoy.depth <= PRUNED_PEER_DEPTH)
                .map(|decoy| decoy.hash)
                .collect();
            let (answer, decoy_blocks) = link
                .get_block_among(hash, &asked, self.config.response_timeout)
                .await;
            match answer {
                Ok(block) => {
                    if hidden {
                        *self.last_hidden.lock().unwrap_or_else(|p| p.into_inner()) =
                            Some(link.addr().clone());
                    }
                    return Ok(Fetched {
                        block,
                        from: link.addr().clone(),
                        decoys: decoy_blocks,
                    });
                }
                Err(err @ LinkError::Timeout(_)) => {
                    // A peer that does not deliver within the response time is dropped, as the
                    // engine drops it; the link is made again later.
                    info!(
                        "Bitcoin peer {} did not deliver block {hash} in time",
                        link.addr()
                    );
                    link.close();
                    reasons.push(err.to_string());
                }
                Err(err) => {
                    debug!("block {hash}: {err}; asking another peer");
                    reasons.push(err.to_string());
                }
            }
        }
        Err(LinkedFetchError::NotDelivered {
            hash,
            reasons: reasons.join("; "),
        })
    }

    /// Offers `tx` to every linked peer whose `feefilter` its `fee` meets (all of them when the
    /// fee is unknown) and waits at most `timeout` for one to ask for it.
    pub async fn submit(
        &self,
        tx: &Transaction,
        fee: Option<Amount>,
        timeout: Duration,
    ) -> Submitted {
        let links = self.open_links();
        if links.is_empty() {
            return Submitted::NoLinks;
        }
        let weight = tx.weight();
        let eligible: Vec<Arc<Link>> = links
            .iter()
            .filter(|link| match (fee, link.fee_filter()) {
                (Some(fee), Some(minimum)) => fee >= peer_minimum_fee(minimum, weight),
                _ => true,
            })
            .cloned()
            .collect();
        if eligible.is_empty() {
            let lowest = links
                .iter()
                .filter_map(|link| link.fee_filter())
                .min()
                .unwrap_or(FeeRate::ZERO);
            return Submitted::BelowEveryPeer { lowest };
        }
        let mut offers = JoinSet::new();
        for link in eligible {
            let tx = tx.clone();
            offers.spawn(async move {
                let addr = link.addr().clone();
                link.offer(&tx, timeout).await.map(|()| addr)
            });
        }
        while let Some(offered) = offers.join_next().await {
            if let Ok(Ok(addr)) = offered {
                return Submitted::Taken(addr);
            }
        }
        Submitted::NotAsked
    }

    fn lock_links(&self) -> MutexGuard<'_, HashMap<PeerAddress, Arc<Link>>> {
        self.links.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn resolved_lock(&self) -> MutexGuard<'_, HashMap<String, PeerAddress>> {
        self.resolved.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Drops ended links and starts links to the peers that have none.
    async fn maintain(self: &Arc<Self>) {
        let ended: Vec<PeerAddress> = self
            .lock_links()
            .iter()
            .filter(|(_, link)| link.is_closed())
            .map(|(addr, _)| addr.clone())
            .collect();
        for addr in ended {
            self.lock_links().remove(&addr);
            let names: Vec<String> = self
                .resolved_lock()
                .iter()
                .filter(|(_, at)| **at == addr)
                .map(|(name, _)| name.clone())
                .collect();
            for key in names.into_iter().chain([addr.to_string()]) {
                self.failed(&key);
            }
        }
        let mut targets: Vec<PeerAddress> = self.config.peers.clone();
        if !self.config.only_peers {
            let port = default_port(self.config.network);
            targets.extend(
                self.engine
                    .peer_ips()
                    .await
                    .into_iter()
                    .map(|ip| PeerAddress::from(SocketAddr::new(ip, port))),
            );
        }
        let linked: HashSet<PeerAddress> = self.lock_links().keys().cloned().collect();
        let now = Instant::now();
        for target in targets {
            let key = target.to_string();
            let at = self.resolved_lock().get(&key).cloned();
            let at = at.as_ref().unwrap_or(&target);
            if linked.contains(at) || !self.due(&key, now) || self.bans.is_banned(&target) {
                continue;
            }
            if !self
                .connecting
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(key.clone())
            {
                continue;
            }
            let links = self.clone();
            tokio::spawn(async move {
                links.connect(&target).await;
                links
                    .connecting
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .remove(&target.to_string());
            });
        }
    }

    fn due(&self, key: &str, now: Instant) -> bool {
        self.retry
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key)
            .is_none_or(|(at, _)| *at <= now)
    }

    fn failed(&self, key: &str) {
        let mut retry = self.retry.lock().unwrap_or_else(|p| p.into_inner());
        let pause = retry
            .get(key)
            .map_or(FIRST_RETRY_PAUSE, |(_, pause)| *pause);
        retry.insert(
            key.to_string(),
            (Instant::now() + pause, (pause * 2).min(MAX_RETRY_PAUSE)),
        );
    }

    async fn connect(&self, target: &PeerAddress) {
        let key = target.to_string();
        let addrs = match self.addresses_of(target).await {
            Ok(addrs) => addrs,
            Err(err) => {
                debug!("cannot link to Bitcoin peer {key}: {err}");
                self.failed(&key);
                return;
            }
        };
        for addr in addrs {
            if self.bans.is_banned(&addr) || self.lock_links().contains_key(&addr) {
                continue;
            }
            let height = (self.height)();
            let route = self.config.route;
            let network = self.config.network;
            match Link::connect(addr.clone(), route, network, height, HANDSHAKE_TIMEOUT).await {
                Ok(link) => {
                    if self.bans.is_banned(&addr) {
                        link.close();
                        continue;
                    }
                    self.lock_links().insert(addr.clone(), link);
                    self.resolved_lock().insert(key.clone(), addr);
                    self.retry
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .remove(&key);
                    self.linked.send_modify(|n| *n += 1);
                    return;
                }
                Err(err) => debug!("cannot link to Bitcoin peer {addr}: {err}"),
            }
        }
        self.failed(&key);
    }

    /// Where to link `peer`: through a proxy, by the name it was given (the proxy resolves
    /// it, or reaches the onion service); directly, at each address its name resolves to.
    async fn addresses_of(&self, peer: &PeerAddress) -> Result<Vec<PeerAddress>, String> {
        if peer.socket_addr().is_some() || self.config.route != Route::Direct {
            return Ok(vec![peer.clone()]);
        }
        if peer.onion_key().is_some() {
            return Err("an onion service is reached only through a proxy".into());
        }
        let lookup = tokio::net::lookup_host((peer.host.as_str(), peer.port));
        match tokio::time::timeout(RESOLVE_TIMEOUT, lookup).await {
            Ok(Ok(addrs)) => Ok(addrs.map(PeerAddress::from).collect()),
            Ok(Err(err)) => Err(format!("cannot resolve {}: {err}", peer.host)),
            Err(_) => Err(format!("{} did not resolve in time", peer.host)),
        }
    }
}

/// The least fee peers that accept `minimum` and above take for `weight`: `minimum` per
/// 1000 vB times the virtual size rounded up to whole vbytes, as Bitcoin Core counts it.
pub fn peer_minimum_fee(minimum: FeeRate, weight: Weight) -> Amount {
    let per_kvb = minimum.to_sat_per_kwu().saturating_mul(4);
    Amount::from_sat(weight.to_vbytes_ceil().saturating_mul(per_kvb) / 1_000)
}

/// The usual P2P port of `network`.
pub fn default_port(network: Network) -> u16 {
    match network {
        Network::Bitcoin => 8333,
        Network::Testnet => 18333,
        Network::Testnet4 => 48333,
        Network::Signet => 38333,
        Network::Regtest => 18444,
    }
}

fn shuffle<T>(items: &mut [T]) {
    use bitcoin::secp256k1::rand::seq::SliceRandom;
    items.shuffle(&mut bitcoin::secp256k1::rand::thread_rng());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_peer_minimum_counts_whole_vbytes_as_core_does() {
        let rate = FeeRate::from_sat_per_kwu(5_000); // 20 sat/vB
        assert_eq!(
            peer_minimum_fee(rate, Weight::from_wu(400)),
            Amount::from_sat(2_000)
        );
        // 401 wu is 101 vB.
        assert_eq!(
            peer_minimum_fee(rate, Weight::from_wu(401)),
            Amount::from_sat(2_020)
        );
        assert_eq!(
            peer_minimum_fee(FeeRate::from_sat_per_kwu(u64::MAX), Weight::from_wu(400)),
            Amount::from_sat(u64::MAX / 1_000)
        );
    }
}

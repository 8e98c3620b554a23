//! One link: the node's own P2P v1 connection to one Bitcoin peer, beside the engine's.
//!
//! It completes the version handshake as a light client (no services), answers pings, and
//! keeps what the peer said about itself: its services and its `feefilter`. It asks for
//! transaction relay: the peer then announces (`inv`) each transaction entering its mempool,
//! and the link remembers the last [`MAX_HEARD`] it announced, so a transaction the node
//! broadcasts counts as propagated once a peer announced it, even when the peer had it before
//! the node offered it (and so never asked for it); nothing announced is downloaded. Requests are matched to answers by what they name: a block (or a `notfound`
//! for it) by its hash, filter headers by their stop hash, a filter by its block hash. A
//! transaction is offered with an `inv` and handed over when the peer asks for it, which is
//! how the node knows which peer asked. When the connection ends, every request waiting on it
//! fails at once.

use std::collections::{HashMap, HashSet, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::Inventory;
use bitcoin::p2p::message_filter::{CFHeaders, CFilter, GetCFHeaders, GetCFilters};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::{Magic, ServiceFlags};
use bitcoin::{Block, BlockHash, FeeRate, Network, Transaction, Txid, Wtxid};
use log::debug;
use tokio::io::BufReader;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::sync::{mpsc, oneshot, watch};

use super::wire::{self, WireError};
use crate::chain::peer_address::PeerAddress;
use crate::proxy::Route;

/// The protocol version spoken: wtxid relay (BIP 339).
const PROTOCOL_VERSION: u32 = 70016;
/// A link that heard nothing for this long is closed (Bitcoin Core pings every 2 minutes).
const IDLE_TIMEOUT: Duration = Duration::from_secs(10 * 60);
/// A write that does not complete in this long ends the link.
const WRITE_TIMEOUT: Duration = Duration::from_secs(60);
/// Transactions offered on one link that it can still ask for.
const MAX_OFFERED: usize = 1_000;
/// The transactions the peer announced that a link remembers, the latest: about half an hour
/// of a public network's transactions, about a megabyte.
pub const MAX_HEARD: usize = 10_000;
/// How long after the handshake a link waits for the peer's `feefilter` before it counts as
/// up without one.
const FEE_FILTER_WAIT: Duration = Duration::from_secs(2);

/// Why a request on a link failed.
#[derive(Debug, Clone, thiserror::Error)]
pub enum LinkError {
    /// The peer could not be reached.
    #[error("could not connect to {addr}: {reason}")]
    Connect {
        /// The peer.
        addr: PeerAddress,
        /// What failed.
        reason: String,
    },
    /// The connection ended before the answer came.
    #[error("the connection to {0} ended")]
    Closed(PeerAddress),
    /// No answer came in time.
    #[error("{0} did not answer in time")]
    Timeout(PeerAddress),
    /// The peer answered that it does not have the block.
    #[error("{0} does not have the block")]
    NotFound(PeerAddress),
}

/// What a peer answered to a block request.
enum BlockAnswer {
    Block(Box<Block>),
    NotFound,
}

/// Requests waiting for their answer, and the transactions offered.
#[derive(Default)]
struct Pending {
    blocks: HashMap<BlockHash, Vec<oneshot::Sender<BlockAnswer>>>,
    cfheaders: HashMap<BlockHash, Vec<oneshot::Sender<CFHeaders>>>,
    cfilters: HashMap<BlockHash, Vec<oneshot::Sender<CFilter>>>,
    offered: HashMap<Wtxid, Transaction>,
    offered_txids: HashMap<Txid, Wtxid>,
    offer_order: VecDeque<Wtxid>,
    asked: HashMap<Wtxid, Vec<oneshot::Sender<()>>>,
    /// The transactions the peer announced, by wtxid or txid (as the peer named them).
    heard: HashSet<Inventory>,
    heard_order: VecDeque<Inventory>,
}

impl Pending {
    fn offer(&mut self, tx: &Transaction) -> Wtxid {
        let wtxid = tx.compute_wtxid();
        if self.offered.insert(wtxid, tx.clone()).is_none() {
            self.offered_txids.insert(tx.compute_txid(), wtxid);
            self.offer_order.push_back(wtxid);
        }
        while self.offer_order.len() > MAX_OFFERED {
            if let Some(old) = self.offer_order.pop_front() {
                if let Some(tx) = self.offered.remove(&old) {
                    self.offered_txids.remove(&tx.compute_txid());
                }
                self.asked.remove(&old);
            }
        }
        wtxid
    }

    fn hear(&mut self, item: Inventory) {
        if self.heard.insert(item) {
            self.heard_order.push_back(item);
        }
        while self.heard_order.len() > MAX_HEARD {
            if let Some(old) = self.heard_order.pop_front() {
                self.heard.remove(&old);
            }
        }
    }
}

/// A message to write, and who to tell once it is written.
type Outgoing = (NetworkMessage, Vec<oneshot::Sender<()>>);

/// What the peer told about itself.
#[derive(Debug, Clone, Copy)]
struct Announced {
    services: ServiceFlags,
    wtxid_relay: bool,
    fee_filter: Option<FeeRate>,
}

/// A live connection to one Bitcoin peer.
pub struct Link {
    addr: PeerAddress,
    magic: Magic,
    announced: Mutex<Announced>,
    pending: Mutex<Pending>,
    outbox: mpsc::UnboundedSender<Outgoing>,
    closed: watch::Sender<bool>,
    tasks: Mutex<Vec<tokio::task::AbortHandle>>,
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Link")
            .field("addr", &self.addr)
            .field("announced", &*lock(&self.announced))
            .finish()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

impl Link {
    /// Connects to `addr` on `network` (by `route`: directly or through the proxy, which is
    /// given a name as it is) and completes the version handshake within `timeout`, telling
    /// the peer our chain reaches `start_height`.
    pub async fn connect(
        addr: PeerAddress,
        route: Route,
        network: Network,
        start_height: u32,
        timeout: Duration,
    ) -> Result<Arc<Link>, LinkError> {
        let failed = |reason: String| LinkError::Connect {
            addr: addr.clone(),
            reason,
        };
        let handshake = async {
            let stream = route
                .connect(&addr.host, addr.port)
                .await
                .map_err(|err| failed(err.to_string()))?;
            let _ = stream.set_nodelay(true);
            let (reader, mut writer) = stream.into_split();
            let mut reader = BufReader::new(reader);
            let magic = network.magic();
            let version =
                NetworkMessage::Version(version_message(addr.socket_addr(), start_height));
            wire::write_message(&mut writer, magic, version)
                .await
                .map_err(|err| failed(err.to_string()))?;
            let mut theirs: Option<VersionMessage> = None;
            let mut their_verack = false;
            let mut fee_filter = None;
            let mut replies = Vec::new();
            // Once the handshake is done, a little longer for the peer's minimum: Bitcoin
            // Core announces it at once, and a transaction must not be offered to a peer
            // whose minimum is not known yet.
            let mut fee_filter_deadline = None;
            loop {
                let read = wire::read_message(&mut reader, magic);
                let read = match fee_filter_deadline {
                    Some(deadline) => match tokio::time::timeout_at(deadline, read).await {
                        Ok(read) => read,
                        Err(_) => break,
                    },
                    None => read.await,
                };
                match read {
                    Ok(NetworkMessage::Version(version)) if theirs.is_none() => {
                        if version.version >= PROTOCOL_VERSION {
                            replies.push(NetworkMessage::WtxidRelay);
                        }
                        replies.push(NetworkMessage::Verack);
                        theirs = Some(version);
                    }
                    Ok(NetworkMessage::Verack) => their_verack = true,
                    Ok(NetworkMessage::Ping(nonce)) => replies.push(NetworkMessage::Pong(nonce)),
                    Ok(NetworkMessage::FeeFilter(rate)) => fee_filter = Some(fee_rate_of(rate)),
                    Ok(_) | Err(WireError::Undecodable(_)) => {}
                    Err(err) => return Err(failed(err.to_string())),
                }
                for reply in replies.drain(..) {
                    wire::write_message(&mut writer, magic, reply)
                        .await
                        .map_err(|err| failed(err.to_string()))?;
                }
                if theirs.is_some() && their_verack {
                    if fee_filter.is_some() {
                        break;
                    }
                    fee_filter_deadline
                        .get_or_insert_with(|| tokio::time::Instant::now() + FEE_FILTER_WAIT);
                }
            }
            let theirs = theirs.expect("the loop ends with their version");
            Ok((reader, writer, theirs, fee_filter))
        };
        let (reader, writer, theirs, fee_filter) = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| failed("no version handshake in time".into()))??;
        let (outbox, outgoing) = mpsc::unbounded_channel();
        debug!(
            "linked to Bitcoin peer {addr} ({}, services {})",
            theirs.user_agent, theirs.services
        );
        let link = Arc::new(Link {
            addr,
            magic: network.magic(),
            announced: Mutex::new(Announced {
                services: theirs.services,
                wtxid_relay: theirs.version >= PROTOCOL_VERSION,
                fee_filter,
            }),
            pending: Mutex::new(Pending::default()),
            outbox,
            closed: watch::channel(false).0,
            tasks: Mutex::new(Vec::new()),
        });
        let reading = tokio::spawn(link.clone().read_loop(reader));
        let writing = tokio::spawn(link.clone().write_loop(writer, outgoing));
        lock(&link.tasks).extend([reading.abort_handle(), writing.abort_handle()]);
        if *link.closed.borrow() {
            link.close();
        }
        Ok(link)
    }

    /// The peer's address.
    pub fn addr(&self) -> &PeerAddress {
        &self.addr
    }

    /// The services the peer announced.
    pub fn services(&self) -> ServiceFlags {
        lock(&self.announced).services
    }

    /// Whether the peer keeps every block (`NODE_NETWORK`), not only the last 288.
    pub fn keeps_all_blocks(&self) -> bool {
        self.services().has(ServiceFlags::NETWORK)
    }

    /// The least fee rate the peer relays, once it announced it (`feefilter`).
    pub fn fee_filter(&self) -> Option<FeeRate> {
        lock(&self.announced).fee_filter
    }

    /// Whether the connection has ended.
    pub fn is_closed(&self) -> bool {
        *self.closed.borrow()
    }

    /// Waits until the connection ends.
    pub async fn wait_closed(&self) {
        let mut closed = self.closed.subscribe();
        let _ = closed.wait_for(|closed| *closed).await;
    }

    /// Ends the connection; waiting requests fail.
    pub fn close(&self) {
        self.closed.send_replace(true);
        for task in lock(&self.tasks).drain(..) {
            task.abort();
        }
        *lock(&self.pending) = Pending::default();
    }

    /// Asks for block `hash` with its witnesses and waits at most `timeout` for the whole
    /// answer.
    pub async fn get_block(&self, hash: BlockHash, timeout: Duration) -> Result<Block, LinkError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending).blocks.entry(hash).or_default().push(tx);
        self.send(NetworkMessage::GetData(vec![Inventory::WitnessBlock(hash)]))?;
        match self.answer(rx, timeout).await? {
            BlockAnswer::Block(block) => Ok(*block),
            BlockAnswer::NotFound => Err(LinkError::NotFound(self.addr.clone())),
        }
    }

    /// Asks for block `hash` in one `getdata` together with `decoys`, in random order, so the
    /// peer cannot tell which one was wanted. Returns the answer for `hash` and the decoys
    /// that arrived: the peer serves them in the order asked, and each has `timeout` after
    /// the one before; once one does not come, the rest are not waited for.
    pub async fn get_block_among(
        &self,
        hash: BlockHash,
        decoys: &[BlockHash],
        timeout: Duration,
    ) -> (Result<Block, LinkError>, Vec<Block>) {
        let mut order: Vec<BlockHash> = decoys.iter().copied().filter(|d| *d != hash).collect();
        order.push(hash);
        {
            use bitcoin::secp256k1::rand::seq::SliceRandom;
            order.shuffle(&mut bitcoin::secp256k1::rand::thread_rng());
        }
        let receivers: Vec<(BlockHash, oneshot::Receiver<BlockAnswer>)> = {
            let mut pending = lock(&self.pending);
            order
                .iter()
                .map(|wanted| {
                    let (tx, rx) = oneshot::channel();
                    pending.blocks.entry(*wanted).or_default().push(tx);
                    (*wanted, rx)
                })
                .collect()
        };
        let items = order.iter().map(|h| Inventory::WitnessBlock(*h)).collect();
        if let Err(err) = self.send(NetworkMessage::GetData(items)) {
            return (Err(err), Vec::new());
        }
        let mut wanted = None;
        let mut decoys = Vec::new();
        for (asked, rx) in receivers {
            match self.answer(rx, timeout).await {
                Ok(BlockAnswer::Block(block)) if asked == hash => wanted = Some(Ok(*block)),
                Ok(BlockAnswer::Block(block)) => decoys.push(*block),
                Ok(BlockAnswer::NotFound) if asked == hash => {
                    wanted = Some(Err(LinkError::NotFound(self.addr.clone())))
                }
                Ok(BlockAnswer::NotFound) => {}
                Err(err) => {
                    wanted.get_or_insert(Err(err));
                    break;
                }
            }
        }
        (
            wanted.unwrap_or(Err(LinkError::Timeout(self.addr.clone()))),
            decoys,
        )
    }

    /// Asks for the basic filter headers of the blocks from `start_height` to `stop_hash`.
    pub async fn get_filter_headers(
        &self,
        start_height: u32,
        stop_hash: BlockHash,
        timeout: Duration,
    ) -> Result<CFHeaders, LinkError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending)
            .cfheaders
            .entry(stop_hash)
            .or_default()
            .push(tx);
        self.send(NetworkMessage::GetCFHeaders(GetCFHeaders {
            filter_type: 0,
            start_height,
            stop_hash,
        }))?;
        self.answer(rx, timeout).await
    }

    /// Asks for the basic filter of block `hash` at `height`.
    pub async fn get_filter(
        &self,
        height: u32,
        hash: BlockHash,
        timeout: Duration,
    ) -> Result<CFilter, LinkError> {
        let (tx, rx) = oneshot::channel();
        lock(&self.pending)
            .cfilters
            .entry(hash)
            .or_default()
            .push(tx);
        self.send(NetworkMessage::GetCFilters(GetCFilters {
            filter_type: 0,
            start_height: height,
            stop_hash: hash,
        }))?;
        self.answer(rx, timeout).await
    }

    /// Offers `tx` (announces it) and waits at most `timeout` for the peer to ask for it;
    /// it is handed over when asked.
    pub async fn offer(&self, tx: &Transaction, timeout: Duration) -> Result<(), LinkError> {
        let (asked, rx) = oneshot::channel();
        let wtxid = {
            let mut pending = lock(&self.pending);
            let wtxid = pending.offer(tx);
            pending.asked.entry(wtxid).or_default().push(asked);
            wtxid
        };
        let item = if lock(&self.announced).wtxid_relay {
            Inventory::WTx(wtxid)
        } else {
            Inventory::Transaction(tx.compute_txid())
        };
        self.send(NetworkMessage::Inv(vec![item]))?;
        self.answer(rx, timeout).await
    }

    fn send(&self, message: NetworkMessage) -> Result<(), LinkError> {
        self.send_then(message, Vec::new())
    }

    /// Sends `message` and tells `written` once it is written to the connection.
    fn send_then(
        &self,
        message: NetworkMessage,
        written: Vec<oneshot::Sender<()>>,
    ) -> Result<(), LinkError> {
        if self.is_closed() {
            return Err(LinkError::Closed(self.addr.clone()));
        }
        self.outbox
            .send((message, written))
            .map_err(|_| LinkError::Closed(self.addr.clone()))
    }

    async fn answer<T>(&self, rx: oneshot::Receiver<T>, timeout: Duration) -> Result<T, LinkError> {
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(_)) => Err(LinkError::Closed(self.addr.clone())),
            Err(_) => Err(LinkError::Timeout(self.addr.clone())),
        }
    }

    async fn read_loop(self: Arc<Self>, reader: BufReader<OwnedReadHalf>) {
        let mut reader = reader;
        let reason = loop {
            let read = wire::read_message(&mut reader, self.magic);
            let message = match tokio::time::timeout(IDLE_TIMEOUT, read).await {
                Ok(Ok(message)) => message,
                Ok(Err(WireError::Undecodable(err))) => {
                    debug!("skipped an undecodable message from {}: {err}", self.addr);
                    continue;
                }
                Ok(Err(err)) => break err.to_string(),
                Err(_) => break format!("nothing heard for {} s", IDLE_TIMEOUT.as_secs()),
            };
            self.handle(message);
        };
        debug!("link to Bitcoin peer {} ended: {reason}", self.addr);
        self.close();
    }

    async fn write_loop(
        self: Arc<Self>,
        mut writer: OwnedWriteHalf,
        mut outgoing: mpsc::UnboundedReceiver<Outgoing>,
    ) {
        while let Some((message, written)) = outgoing.recv().await {
            let write = wire::write_message(&mut writer, self.magic, message);
            match tokio::time::timeout(WRITE_TIMEOUT, write).await {
                Ok(Ok(())) => {
                    for waiting in written {
                        let _ = waiting.send(());
                    }
                }
                Ok(Err(err)) => {
                    debug!("writing to Bitcoin peer {} failed: {err}", self.addr);
                    break;
                }
                Err(_) => {
                    debug!("Bitcoin peer {} took nothing for a minute", self.addr);
                    break;
                }
            }
        }
        self.close();
    }

    fn handle(&self, message: NetworkMessage) {
        match message {
            NetworkMessage::Ping(nonce) => {
                let _ = self.send(NetworkMessage::Pong(nonce));
            }
            NetworkMessage::FeeFilter(rate) => {
                lock(&self.announced).fee_filter = Some(fee_rate_of(rate));
            }
            NetworkMessage::Block(block) => {
                let waiting = lock(&self.pending).blocks.remove(&block.block_hash());
                let block = Box::new(block);
                for tx in waiting.into_iter().flatten() {
                    let _ = tx.send(BlockAnswer::Block(block.clone()));
                }
            }
            NetworkMessage::NotFound(items) => {
                let mut pending = lock(&self.pending);
                for item in items {
                    if let Inventory::Block(hash) | Inventory::WitnessBlock(hash) = item {
                        for tx in pending.blocks.remove(&hash).into_iter().flatten() {
                            let _ = tx.send(BlockAnswer::NotFound);
                        }
                    }
                }
            }
            NetworkMessage::CFHeaders(headers) => {
                let waiting = lock(&self.pending).cfheaders.remove(&headers.stop_hash);
                for tx in waiting.into_iter().flatten() {
                    let _ = tx.send(headers.clone());
                }
            }
            NetworkMessage::CFilter(filter) => {
                let waiting = lock(&self.pending).cfilters.remove(&filter.block_hash);
                for tx in waiting.into_iter().flatten() {
                    let _ = tx.send(filter.clone());
                }
            }
            NetworkMessage::GetData(items) => self.serve(items),
            NetworkMessage::Inv(items) => {
                let mut pending = lock(&self.pending);
                for item in items {
                    match item {
                        Inventory::WTx(_) | Inventory::Transaction(_) => pending.hear(item),
                        Inventory::WitnessTransaction(txid) => {
                            pending.hear(Inventory::Transaction(txid))
                        }
                        _ => {}
                    }
                }
            }
            _ => {}
        }
    }

    /// Whether the peer announced `txid` (by its wtxid or txid) among the last [`MAX_HEARD`]
    /// transactions it announced: it held it in its mempool then.
    pub fn announced(&self, txid: Txid, wtxid: Wtxid) -> bool {
        let pending = lock(&self.pending);
        pending.heard.contains(&Inventory::WTx(wtxid))
            || pending.heard.contains(&Inventory::Transaction(txid))
    }

    /// Hands over the offered transactions the peer asks for; whoever waits for a peer to
    /// ask for one hears of it once it is written.
    fn serve(&self, items: Vec<Inventory>) {
        let mut answers = Vec::new();
        let mut not_found = Vec::new();
        {
            let mut pending = lock(&self.pending);
            for item in items {
                let wtxid = match item {
                    Inventory::WTx(wtxid) => Some(wtxid),
                    Inventory::Transaction(txid) | Inventory::WitnessTransaction(txid) => {
                        pending.offered_txids.get(&txid).copied()
                    }
                    _ => None,
                };
                let Some(tx) = wtxid.and_then(|wtxid| pending.offered.get(&wtxid).cloned()) else {
                    not_found.push(item);
                    continue;
                };
                let tx = if matches!(item, Inventory::Transaction(_)) {
                    without_witness(&tx)
                } else {
                    tx
                };
                let asked = wtxid
                    .and_then(|wtxid| pending.asked.remove(&wtxid))
                    .unwrap_or_default();
                answers.push((NetworkMessage::Tx(tx), asked));
            }
        }
        for (answer, asked) in answers {
            let _ = self.send_then(answer, asked);
        }
        if !not_found.is_empty() {
            let _ = self.send(NetworkMessage::NotFound(not_found));
        }
    }
}

/// A `feefilter` value (sat per 1000 vB; a negative one counts as nothing) as a fee rate.
fn fee_rate_of(sat_per_kvb: i64) -> FeeRate {
    FeeRate::from_sat_per_kwu(u64::try_from(sat_per_kvb).unwrap_or(0) / 4)
}

fn without_witness(tx: &Transaction) -> Transaction {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness.clear();
    }
    stripped
}

/// The version message of a light client that offers nothing and asks for transaction
/// announcements; `peer` is the peer's IP address when it is known by one (an onion service or
/// a name reached through the proxy has none to tell).
fn version_message(peer: Option<SocketAddr>, start_height: u32) -> VersionMessage {
    let nowhere = SocketAddr::from(([0, 0, 0, 0], 0));
    let peer = peer.unwrap_or(nowhere);
    let timestamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    VersionMessage {
        version: PROTOCOL_VERSION,
        services: ServiceFlags::NONE,
        timestamp,
        receiver: Address::new(&peer, ServiceFlags::NONE),
        sender: Address::new(&nowhere, ServiceFlags::NONE),
        nonce: rand_nonce(),
        user_agent: concat!("/lightfilter:", env!("CARGO_PKG_VERSION"), "/").to_string(),
        start_height: i32::try_from(start_height).unwrap_or(i32::MAX),
        relay: true,
    }
}

fn rand_nonce() -> u64 {
    use bitcoin::secp256k1::rand::RngCore;
    bitcoin::secp256k1::rand::thread_rng().next_u64()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_feefilter_is_read_per_1000_vbytes_and_a_negative_one_as_nothing() {
        assert_eq!(fee_rate_of(1_000), FeeRate::from_sat_per_kwu(250));
        assert_eq!(fee_rate_of(-5), FeeRate::ZERO);
        assert_eq!(
            fee_rate_of(i64::MAX),
            FeeRate::from_sat_per_kwu(i64::MAX as u64 / 4)
        );
    }

    #[test]
    fn offers_are_bounded_and_found_by_txid_and_wtxid() {
        let mut pending = Pending::default();
        let tx = |n: u32| Transaction {
            version: bitcoin::transaction::Version::TWO,
            lock_time: bitcoin::absolute::LockTime::from_consensus(n),
            input: Vec::new(),
            output: Vec::new(),
        };
        for n in 0..(MAX_OFFERED as u32 + 10) {
            pending.offer(&tx(n));
        }
        assert_eq!(pending.offered.len(), MAX_OFFERED);
        assert_eq!(pending.offered_txids.len(), MAX_OFFERED);
        let newest = tx(MAX_OFFERED as u32 + 9);
        assert_eq!(
            pending.offered_txids.get(&newest.compute_txid()),
            Some(&newest.compute_wtxid())
        );
        assert!(!pending.offered.contains_key(&tx(0).compute_wtxid()));
    }
}

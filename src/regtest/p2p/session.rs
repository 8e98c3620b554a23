//! One P2P connection: the version handshake, answering requests the way Bitcoin Core does,
//! and announcing new blocks and transactions.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::p2p::address::Address;
use bitcoin::p2p::message::NetworkMessage;
use bitcoin::p2p::message_blockdata::{GetBlocksMessage, GetHeadersMessage, Inventory};
use bitcoin::p2p::message_filter::{
    CFCheckpt, CFHeaders, CFilter, GetCFCheckpt, GetCFHeaders, GetCFilters,
};
use bitcoin::p2p::message_network::VersionMessage;
use bitcoin::p2p::ServiceFlags;
use bitcoin::secp256k1::rand;
use bitcoin::{Block, BlockHash, FilterHeader, Transaction, Witness};
use log::{debug, info};
use tokio::io::{AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::{broadcast, mpsc};

use super::wire;
use crate::regtest::chain::Chain;
use crate::regtest::filters;
use crate::regtest::misbehaviour::{Misbehaviour, PRUNED_DEPTH};
use crate::regtest::node::Notice;
use crate::regtest::shared::{lock, Shared};

/// Protocol version spoken (wtxid relay, BIP 339).
pub const PROTOCOL_VERSION: u32 = 70016;
/// Services offered: full blocks, witnesses, compact filters.
pub fn services() -> ServiceFlags {
    ServiceFlags::NETWORK | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS
}

/// Services a pruned endpoint offers: the last 288 blocks, witnesses, compact filters.
fn pruned_services() -> ServiceFlags {
    ServiceFlags::NETWORK_LIMITED | ServiceFlags::WITNESS | ServiceFlags::COMPACT_FILTERS
}
const USER_AGENT: &str = concat!("/lightfilter-regtest:", env!("CARGO_PKG_VERSION"), "/");
/// Most headers per `headers` message.
const MAX_HEADERS: u32 = 2_000;
/// Most blocks per `getcfilters` request.
const MAX_GETCFILTERS: u32 = 1_000;
/// Most blocks per `getcfheaders` request.
const MAX_GETCFHEADERS: u32 = 2_000;
/// Filter header checkpoint interval of `cfcheckpt`.
const CFCHECKPT_INTERVAL: u32 = 1_000;
/// Most blocks announced with `headers`; longer runs fall back to an `inv` of the tip.
const MAX_BLOCKS_TO_ANNOUNCE: u32 = 8;
/// Most hashes in a `getblocks` answer.
const MAX_GETBLOCKS: u32 = 500;
const PING_INTERVAL: Duration = Duration::from_secs(120);
/// Most received messages waiting for the session to handle them.
const MAX_QUEUED_MESSAGES: usize = 64;
/// Most bytes of received messages waiting for the session (Core's `-maxreceivebuffer`): past
/// it the connection is not read until the session catches up, and TCP holds the sender back.
const MAX_QUEUED_BYTES: usize = 5_000_000;

/// Timeouts are taken within these bounds (a zero one would spin, a huge one overflow).
const MIN_TIMEOUT: Duration = Duration::from_millis(200);
const MAX_TIMEOUT: Duration = Duration::from_secs(365 * 24 * 60 * 60);

/// A received message and its place in the connection's queue.
type Queued = (NetworkMessage, OwnedSemaphorePermit);

/// Why a session ended on our side.
enum Outcome {
    Continue,
    Disconnect(String),
}

type SessionResult = std::io::Result<Outcome>;

/// Serves one connection until it closes, misbehaves, or is aborted.
pub async fn run(
    shared: Arc<Shared>,
    switches: Arc<Misbehaviour>,
    stream: TcpStream,
    peer: SocketAddr,
    id: u64,
    handshaken: Arc<AtomicBool>,
) {
    let _registration = Registration {
        shared: Arc::clone(&shared),
        id,
    };
    let local = stream.local_addr().unwrap_or(peer);
    let _ = stream.set_nodelay(true);
    let (reader, writer) = stream.into_split();
    let (messages_tx, mut messages) = mpsc::channel(MAX_QUEUED_MESSAGES);
    let reader_task = tokio::spawn(read_loop(
        reader,
        messages_tx,
        Arc::new(Semaphore::new(MAX_QUEUED_BYTES)),
        Arc::clone(&shared),
        Arc::clone(&switches),
        peer,
    ));
    let _reader_guard = AbortOnDrop(reader_task);
    let mut notices = shared.notices.subscribe();
    let limits = shared.limits;
    let mut session = Session {
        id,
        shared,
        switches,
        writer,
        peer,
        local,
        handshaken,
        version: None,
        verack_received: false,
        relay: false,
        wtxid_relay: false,
        prefers_headers: false,
        fee_filter: 0,
        best_header_sent: None,
        ping_nonce: None,
    };
    // Pinged often enough that a live peer always has something to answer before it counts as
    // idle.
    let idle_timeout = limits.idle_timeout.clamp(MIN_TIMEOUT, MAX_TIMEOUT);
    let mut ping = tokio::time::interval(PING_INTERVAL.min(idle_timeout / 2));
    ping.tick().await;
    let handshake_deadline = tokio::time::sleep(limits.handshake_timeout);
    tokio::pin!(handshake_deadline);
    let mut last_heard = Instant::now();
    let ended = loop {
        let outcome = tokio::select! {
            message = messages.recv() => match message {
                Some((message, _place)) => {
                    last_heard = Instant::now();
                    session.handle(message).await
                }
                None => break "the peer closed the connection".to_string(),
            },
            _ = &mut handshake_deadline, if !session.is_handshaken() => {
                break format!(
                    "no version handshake within {} s",
                    limits.handshake_timeout.as_secs_f64()
                );
            }
            _ = tokio::time::sleep_until(last_heard + idle_timeout) => {
                break format!("no message for {} s", idle_timeout.as_secs_f64());
            }
            notice = notices.recv() => match notice {
                Ok(notice) => session.on_notice(notice).await,
                Err(broadcast::error::RecvError::Lagged(_)) => session.announce_tip().await,
                Err(broadcast::error::RecvError::Closed) => break "the peer is shutting down".to_string(),
            },
            _ = ping.tick() => session.ping().await,
        };
        match outcome {
            Ok(Outcome::Continue) => {}
            Ok(Outcome::Disconnect(reason)) => break reason,
            Err(error) => break format!("write failed: {error}"),
        }
    };
    info!("disconnected {peer}: {ended}");
}

/// Removes the session from the server's table when the task ends or is aborted.
struct Registration {
    shared: Arc<Shared>,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        lock(&self.shared.server).sessions.remove(&self.id);
        lock(&self.shared.node).forget_orphans_from(self.id);
    }
}

struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Reads messages and hands them to the session, holding at most [`MAX_QUEUED_BYTES`] of
/// them unhandled; while stalling, drops them as they arrive (before counting their bytes, so
/// a test that sees them counted knows they were dropped).
async fn read_loop(
    reader: OwnedReadHalf,
    messages: mpsc::Sender<Queued>,
    queued_bytes: Arc<Semaphore>,
    shared: Arc<Shared>,
    switches: Arc<Misbehaviour>,
    peer: SocketAddr,
) {
    let mut reader = BufReader::new(reader);
    loop {
        match wire::read_message(&mut reader).await {
            Ok((decoded, bytes)) => {
                acknowledge_promptly(reader.get_ref().as_ref());
                let stalling = switches.stall();
                shared.record(|stats| stats.bytes_received += bytes as u64);
                match decoded {
                    Ok(message) if stalling => {
                        debug!("stalling: dropped {} from {peer}", message.cmd())
                    }
                    Ok(message) => {
                        let size = bytes.min(MAX_QUEUED_BYTES) as u32;
                        let Ok(place) = Arc::clone(&queued_bytes).acquire_many_owned(size).await
                        else {
                            return;
                        };
                        if messages.send((message, place)).await.is_err() {
                            return;
                        }
                    }
                    Err(error) => debug!("skipped an undecodable message from {peer}: {error}"),
                }
            }
            Err(error) => {
                debug!("stopped reading from {peer}: {error}");
                return;
            }
        }
    }
}

/// Acknowledges what the client sent at once. A client that leaves Nagle's algorithm on (the
/// `bip157` client does) holds a small message back until its previous one is acknowledged,
/// and Linux delays an acknowledgement by up to 40 ms when it has nothing to send back: every
/// message that gets no answer (`sendheaders`, `pong`, ...) followed by a request would stall
/// the client that long. Linux leaves quick acknowledgement mode on its own, so this is
/// renewed after every message read.
#[cfg(target_os = "linux")]
fn acknowledge_promptly(stream: &tokio::net::TcpStream) {
    let _ = socket2::SockRef::from(stream).set_tcp_quickack(true);
}

#[cfg(not(target_os = "linux"))]
fn acknowledge_promptly(_stream: &tokio::net::TcpStream) {}

struct Session {
    id: u64,
    shared: Arc<Shared>,
    switches: Arc<Misbehaviour>,
    writer: OwnedWriteHalf,
    peer: SocketAddr,
    local: SocketAddr,
    handshaken: Arc<AtomicBool>,
    version: Option<VersionMessage>,
    verack_received: bool,
    relay: bool,
    wtxid_relay: bool,
    prefers_headers: bool,
    fee_filter: u64,
    best_header_sent: Option<BlockHash>,
    ping_nonce: Option<u64>,
}

impl Session {
    async fn write(&mut self, bytes: &[u8]) -> std::io::Result<()> {
        if self.switches.stall() || bytes.is_empty() {
            return Ok(());
        }
        self.shared
            .record(|stats| stats.bytes_sent += bytes.len() as u64);
        // A peer that does not take what it is sent holds its connection no longer than one
        // that sends nothing.
        let timeout = self
            .shared
            .limits
            .idle_timeout
            .clamp(MIN_TIMEOUT, MAX_TIMEOUT);
        if !self.switches.link_paced() {
            return self.write_within(bytes, timeout).await;
        }
        // Over a paced link each piece arrives when the link has carried it.
        const PIECE: usize = 16 * 1024;
        for piece in bytes.chunks(PIECE) {
            if let Some(carried) = self.switches.reserve_link(piece.len() as u64) {
                tokio::time::sleep_until(carried).await;
            }
            self.write_within(piece, timeout).await?;
        }
        Ok(())
    }

    /// Writes `bytes`, failing if the client takes none of them for `timeout`.
    async fn write_within(&mut self, bytes: &[u8], timeout: Duration) -> std::io::Result<()> {
        tokio::time::timeout(timeout, self.writer.write_all(bytes))
            .await
            .unwrap_or_else(|_| {
                Err(std::io::Error::new(
                    std::io::ErrorKind::TimedOut,
                    format!("the peer took nothing for {} s", timeout.as_secs_f64()),
                ))
            })
    }

    /// Writes `bytes` in 20 pieces spread evenly over `over`.
    async fn trickle(&mut self, bytes: &[u8], over: Duration) -> std::io::Result<()> {
        const PIECES: u32 = 20;
        let pause = over / PIECES;
        for piece in bytes.chunks(bytes.len().div_ceil(PIECES as usize).max(1)) {
            tokio::time::sleep(pause).await;
            self.write(piece).await?;
            self.writer.flush().await?;
        }
        Ok(())
    }

    async fn send(&mut self, message: NetworkMessage) -> std::io::Result<()> {
        self.write(&wire::encode(message)).await
    }

    fn is_handshaken(&self) -> bool {
        self.handshaken.load(Ordering::SeqCst)
    }

    async fn handle(&mut self, message: NetworkMessage) -> SessionResult {
        if self.switches.stall() {
            debug!("stalling: ignored {} from {}", message.cmd(), self.peer);
            return Ok(Outcome::Continue);
        }
        match message {
            NetworkMessage::Version(version) => return self.on_version(version).await,
            NetworkMessage::Verack => return self.on_verack().await,
            NetworkMessage::WtxidRelay => {
                if self.verack_received {
                    return Ok(Outcome::Disconnect(
                        "wtxidrelay received after verack".into(),
                    ));
                }
                self.wtxid_relay = true;
                return Ok(Outcome::Continue);
            }
            NetworkMessage::SendAddrV2 => return Ok(Outcome::Continue),
            _ => {}
        }
        if !self.is_handshaken() {
            debug!(
                "ignored {} from {} before the handshake",
                message.cmd(),
                self.peer
            );
            return Ok(Outcome::Continue);
        }
        match message {
            NetworkMessage::Ping(nonce) => self.send(NetworkMessage::Pong(nonce)).await?,
            NetworkMessage::Pong(nonce) => {
                if self.ping_nonce == Some(nonce) {
                    self.ping_nonce = None;
                }
            }
            NetworkMessage::SendHeaders => self.prefers_headers = true,
            NetworkMessage::FeeFilter(rate) => self.fee_filter = rate.max(0) as u64,
            NetworkMessage::GetHeaders(request) => self.serve_headers(request).await?,
            NetworkMessage::GetBlocks(request) => self.serve_block_inventory(request).await?,
            NetworkMessage::GetData(items) => return self.serve_data(items).await,
            NetworkMessage::Tx(tx) => self.receive_transaction(tx).await?,
            NetworkMessage::Inv(items) => self.request_transactions(items).await?,
            NetworkMessage::GetCFilters(request) => return self.serve_filters(request).await,
            NetworkMessage::GetCFHeaders(request) => {
                return self.serve_filter_headers(request).await
            }
            NetworkMessage::GetCFCheckpt(request) => return self.serve_checkpoints(request).await,
            other => debug!("ignored {} from {}", other.cmd(), self.peer),
        }
        Ok(Outcome::Continue)
    }

    async fn on_version(&mut self, version: VersionMessage) -> SessionResult {
        if self.version.is_some() {
            debug!("ignored a second version message from {}", self.peer);
            return Ok(Outcome::Continue);
        }
        info!(
            "{} connected: {} protocol {} services {}",
            self.peer, version.user_agent, version.version, version.services
        );
        self.relay = version.relay;
        let their_version = version.version;
        self.version = Some(version);
        let start_height = lock(&self.shared.node).chain().height() as i32;
        let services = if self.switches.pruned() {
            pruned_services()
        } else {
            services()
        };
        let ours = VersionMessage {
            version: PROTOCOL_VERSION,
            services,
            timestamp: crate::regtest::miner::now() as i64,
            receiver: Address::new(&self.peer, ServiceFlags::NONE),
            sender: Address::new(&self.local, services),
            nonce: rand::random(),
            user_agent: USER_AGENT.to_string(),
            start_height,
            relay: true,
        };
        self.send(NetworkMessage::Version(ours)).await?;
        if their_version >= PROTOCOL_VERSION {
            self.send(NetworkMessage::WtxidRelay).await?;
        }
        self.send(NetworkMessage::SendAddrV2).await?;
        self.send(NetworkMessage::Verack).await?;
        Ok(Outcome::Continue)
    }

    async fn on_verack(&mut self) -> SessionResult {
        if self.version.is_none() || self.verack_received {
            debug!("ignored an unexpected verack from {}", self.peer);
            return Ok(Outcome::Continue);
        }
        self.verack_received = true;
        self.handshaken.store(true, Ordering::SeqCst);
        self.announce_fee_filter().await?;
        self.ping().await
    }

    /// Sends `feefilter`: the endpoint's override if set, else the mempool's minimum fee rate.
    async fn announce_fee_filter(&mut self) -> std::io::Result<()> {
        let fee_filter = self.switches.fee_filter().unwrap_or_else(|| {
            let minimum = lock(&self.shared.node).min_fee_rate_sat_per_kvb();
            i64::try_from(minimum).unwrap_or(i64::MAX)
        });
        self.send(NetworkMessage::FeeFilter(fee_filter)).await
    }

    async fn ping(&mut self) -> SessionResult {
        if self.is_handshaken() && self.ping_nonce.is_none() {
            let nonce = rand::random();
            self.ping_nonce = Some(nonce);
            self.send(NetworkMessage::Ping(nonce)).await?;
        }
        Ok(Outcome::Continue)
    }

    async fn on_notice(&mut self, notice: Notice) -> SessionResult {
        if self.switches.stall() {
            return Ok(Outcome::Continue);
        }
        match notice {
            Notice::TipChanged => return self.announce_tip().await,
            Notice::MinFeeRateChanged => {
                if self.is_handshaken() {
                    self.announce_fee_filter().await?;
                }
            }
            Notice::NewTx {
                txid,
                wtxid,
                fee_rate_sat_per_kvb,
                origin,
            } => {
                let wanted = self.is_handshaken()
                    && self.relay
                    && origin != Some(self.id)
                    && fee_rate_sat_per_kvb >= self.fee_filter;
                if wanted {
                    let item = if self.wtxid_relay {
                        Inventory::WTx(wtxid)
                    } else {
                        Inventory::Transaction(txid)
                    };
                    self.send(NetworkMessage::Inv(vec![item])).await?;
                }
            }
        }
        Ok(Outcome::Continue)
    }

    /// Announces the new tip like Core: `headers` for up to eight new blocks connecting to a
    /// header the peer has (when it asked for `sendheaders`), otherwise an `inv` of the tip.
    async fn announce_tip(&mut self) -> SessionResult {
        if !self.is_handshaken() {
            return Ok(Outcome::Continue);
        }
        let (tip_hash, headers) = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            let (tip_height, tip_hash) = chain.tip();
            if self.best_header_sent == Some(tip_hash) {
                return Ok(Outcome::Continue);
            }
            let fork = self
                .best_header_sent
                .and_then(|best| fork_height(chain, &best));
            let headers = match fork {
                Some(fork)
                    if self.prefers_headers
                        && tip_height > fork
                        && tip_height - fork <= MAX_BLOCKS_TO_ANNOUNCE =>
                {
                    Some(chain.headers(fork + 1, tip_height))
                }
                _ => None,
            };
            (tip_hash, headers)
        };
        match headers {
            Some(headers) => {
                let count = headers.len() as u64;
                self.shared.record(|stats| stats.headers_served += count);
                self.send(NetworkMessage::Headers(headers)).await?;
                self.best_header_sent = Some(tip_hash);
            }
            None => {
                self.send(NetworkMessage::Inv(vec![Inventory::Block(tip_hash)]))
                    .await?
            }
        }
        Ok(Outcome::Continue)
    }

    async fn serve_headers(&mut self, request: GetHeadersMessage) -> std::io::Result<()> {
        let headers = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            if request.locator_hashes.is_empty() {
                match chain.record(&request.stop_hash) {
                    Some(record) if !record.invalidated => vec![record.block.header],
                    _ => return Ok(()),
                }
            } else {
                let fork = chain.locate(&request.locator_hashes);
                let mut end = chain.height().min(fork + MAX_HEADERS);
                if let Some(record) = chain.record(&request.stop_hash) {
                    if chain.is_active(&request.stop_hash) && record.height > fork {
                        end = end.min(record.height);
                    }
                }
                chain.headers(fork + 1, end)
            }
        };
        let best = match headers.last() {
            Some(header) => header.block_hash(),
            None => lock(&self.shared.node).chain().tip().1,
        };
        self.best_header_sent = Some(best);
        let count = headers.len() as u64;
        self.shared.record(|stats| stats.headers_served += count);
        self.send(NetworkMessage::Headers(headers)).await?;
        Ok(())
    }

    async fn serve_block_inventory(&mut self, request: GetBlocksMessage) -> std::io::Result<()> {
        let items: Vec<Inventory> = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            let fork = chain.locate(&request.locator_hashes);
            let end = chain.height().min(fork + MAX_GETBLOCKS);
            let mut items = Vec::new();
            for height in fork + 1..=end {
                let hash = chain.hash_at(height).expect("height is within the chain");
                items.push(Inventory::Block(hash));
                if hash == request.stop_hash {
                    break;
                }
            }
            items
        };
        if !items.is_empty() {
            self.send(NetworkMessage::Inv(items)).await?;
        }
        Ok(())
    }

    async fn serve_data(&mut self, items: Vec<Inventory>) -> SessionResult {
        let blocks: Vec<BlockHash> = items
            .iter()
            .filter_map(|item| match item {
                Inventory::Block(hash) | Inventory::WitnessBlock(hash) => Some(*hash),
                _ => None,
            })
            .collect();
        if !blocks.is_empty() {
            self.switches.counts().count_block_request(blocks);
        }
        let mut not_found = Vec::new();
        for item in items {
            match item {
                Inventory::Block(hash) | Inventory::WitnessBlock(hash) => {
                    let (block, depth) = {
                        let node = lock(&self.shared.node);
                        let chain = node.chain();
                        let record = chain.record(&hash).filter(|record| !record.invalidated);
                        let depth =
                            record.map(|record| chain.height().saturating_sub(record.height));
                        (record.map(|record| Arc::clone(&record.block)), depth)
                    };
                    if self.switches.pruned() && depth.is_some_and(|depth| depth > PRUNED_DEPTH) {
                        // As Core: a peer asking a pruned node for an old block is disconnected,
                        // so it does not wait for a block that never comes.
                        self.switches.counts().count_deep_block_request();
                        return Ok(Outcome::Disconnect(format!(
                            "asked for block {hash}, {} blocks deep, below what a pruned node \
                             serves",
                            depth.unwrap_or_default()
                        )));
                    }
                    let block = block.filter(|_| !self.switches.withhold_blocks());
                    let Some(mut block) = block else {
                        self.switches.counts().count_block_not_found();
                        not_found.push(item);
                        continue;
                    };
                    if self.switches.mutate_blocks() && block.txdata.len() % 2 == 1 {
                        let mut mutated = (*block).clone();
                        mutated
                            .txdata
                            .push(mutated.txdata.last().expect("a coinbase").clone());
                        block = Arc::new(mutated);
                    }
                    let with_witness = matches!(item, Inventory::WitnessBlock(_))
                        && !self.switches.strip_witness();
                    let payload = if with_witness {
                        serialize(&*block)
                    } else {
                        serialize(&strip_block(&block))
                    };
                    self.shared
                        .record(|stats| stats.blocks_served.push((hash, with_witness)));
                    self.switches.counts().count_block_served();
                    let message = wire::encode_raw("block", &payload);
                    match self.switches.block_trickle() {
                        Some(over) => self.trickle(&message, over).await?,
                        None => self.write(&message).await?,
                    }
                }
                Inventory::Transaction(_)
                | Inventory::WitnessTransaction(_)
                | Inventory::WTx(_) => {
                    let tx = {
                        let node = lock(&self.shared.node);
                        let mempool = node.mempool();
                        match item {
                            Inventory::WTx(wtxid) => mempool.get_by_wtxid(&wtxid),
                            Inventory::Transaction(txid) | Inventory::WitnessTransaction(txid) => {
                                mempool.get(&txid)
                            }
                            _ => None,
                        }
                        .map(|entry| entry.tx.clone())
                    };
                    match tx {
                        Some(tx) if matches!(item, Inventory::Transaction(_)) => {
                            self.send(NetworkMessage::Tx(strip_transaction(&tx)))
                                .await?
                        }
                        Some(tx) => self.send(NetworkMessage::Tx(tx)).await?,
                        None => not_found.push(item),
                    }
                }
                other => not_found.push(other),
            }
        }
        if !not_found.is_empty() {
            self.send(NetworkMessage::NotFound(not_found)).await?;
        }
        Ok(Outcome::Continue)
    }

    async fn receive_transaction(&mut self, tx: Transaction) -> std::io::Result<()> {
        self.shared.record(|stats| stats.txs_received += 1);
        let missing_parents = {
            let mut node = lock(&self.shared.node);
            let own_minimum = self
                .switches
                .fee_filter()
                .map_or(0, |rate| u64::try_from(rate).unwrap_or(0));
            match node.submit_paying_at_least(tx.clone(), Some(self.id), own_minimum) {
                Ok(txid) => {
                    info!("accepted {txid} from {}", self.peer);
                    Vec::new()
                }
                Err(rejection) => {
                    info!("refused a transaction from {}: {rejection}", self.peer);
                    node.missing_parents(&tx)
                }
            }
        };
        if !missing_parents.is_empty() {
            // Like Core: ask the peer that sent an orphan for its parents, by txid.
            let items = missing_parents
                .into_iter()
                .map(Inventory::WitnessTransaction)
                .collect();
            self.send(NetworkMessage::GetData(items)).await?;
        }
        Ok(())
    }

    async fn request_transactions(&mut self, items: Vec<Inventory>) -> std::io::Result<()> {
        let wanted: Vec<Inventory> = {
            let node = lock(&self.shared.node);
            items
                .into_iter()
                .filter_map(|item| match item {
                    Inventory::WTx(wtxid)
                        if node.mempool().get_by_wtxid(&wtxid).is_none()
                            && !node.chain().has_wtxid(&wtxid) =>
                    {
                        Some(Inventory::WTx(wtxid))
                    }
                    Inventory::Transaction(txid) | Inventory::WitnessTransaction(txid)
                        if !node.mempool().contains(&txid)
                            && node.chain().tx_height(&txid).is_none() =>
                    {
                        Some(Inventory::WitnessTransaction(txid))
                    }
                    _ => None,
                })
                .collect()
        };
        if !wanted.is_empty() {
            self.send(NetworkMessage::GetData(wanted)).await?;
        }
        Ok(())
    }

    /// Core's `PrepareBlockFilterRequest`: the stop block must be known and servable, the
    /// range ordered and not longer than `max`. Returns the stop block's height.
    fn check_filter_request(
        &self,
        chain: &Chain,
        filter_type: u8,
        start_height: u32,
        stop_hash: &BlockHash,
        max: u32,
    ) -> Result<u32, String> {
        if filter_type != 0 {
            return Err(format!("requested unsupported filter type {filter_type}"));
        }
        let record = chain
            .record(stop_hash)
            .filter(|record| !record.invalidated)
            .ok_or_else(|| format!("requested filters up to unknown block {stop_hash}"))?;
        if start_height > record.height {
            return Err(format!(
                "requested filters from height {start_height} past stop height {}",
                record.height
            ));
        }
        if record.height - start_height >= max {
            return Err(format!(
                "requested {} filters at once (at most {max})",
                record.height - start_height + 1
            ));
        }
        Ok(record.height)
    }

    async fn serve_filters(&mut self, request: GetCFilters) -> SessionResult {
        if self.switches.withhold_filters() {
            debug!("withholding filters from {}", self.peer);
            return Ok(Outcome::Continue);
        }
        let messages = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            if let Err(reason) = self.check_filter_request(
                chain,
                request.filter_type,
                request.start_height,
                &request.stop_hash,
                MAX_GETCFILTERS,
            ) {
                return Ok(Outcome::Disconnect(reason));
            }
            let hashes = chain
                .branch(request.start_height, &request.stop_hash)
                .unwrap_or_default();
            let mut bytes = Vec::new();
            let mut heights = Vec::with_capacity(hashes.len());
            for hash in &hashes {
                let record = chain.record(hash).expect("branch blocks are recorded");
                heights.push(record.height);
                let filter = if self.switches.filter_is_wrong(hash) {
                    lying_filter(&self.switches, &record.block).content
                } else {
                    record.filter.content.clone()
                };
                bytes.extend(wire::encode(NetworkMessage::CFilter(CFilter {
                    filter_type: 0,
                    block_hash: *hash,
                    filter,
                })));
            }
            (bytes, heights)
        };
        self.shared.record(|stats| {
            stats.cfilters_served += messages.1.len() as u64;
            for height in &messages.1 {
                *stats.cfilters_by_height.entry(*height).or_default() += 1;
            }
        });
        self.write(&messages.0).await?;
        Ok(Outcome::Continue)
    }

    async fn serve_filter_headers(&mut self, request: GetCFHeaders) -> SessionResult {
        if self.switches.withhold_filters() {
            debug!("withholding filter headers from {}", self.peer);
            return Ok(Outcome::Continue);
        }
        let lying = self.switches.conflicting_cfheaders();
        let response = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            if let Err(reason) = self.check_filter_request(
                chain,
                request.filter_type,
                request.start_height,
                &request.stop_hash,
                MAX_GETCFHEADERS,
            ) {
                return Ok(Outcome::Disconnect(reason));
            }
            let hashes = chain
                .branch(request.start_height, &request.stop_hash)
                .unwrap_or_default();
            let first = chain
                .record(&hashes[0])
                .expect("branch blocks are recorded");
            let lie_about = self.switches.lying_filter_for();
            let previous_filter_header = if request.start_height == 0 {
                FilterHeader::all_zeros()
            } else if lying {
                lying_filter_header(
                    &self.shared,
                    &self.switches,
                    chain,
                    &first.block.header.prev_blockhash,
                )
            } else if let Some(lie) = lie_about {
                filter_header_lying_about(
                    &self.switches,
                    chain,
                    &first.block.header.prev_blockhash,
                    &lie,
                )
            } else {
                chain
                    .record(&first.block.header.prev_blockhash)
                    .expect("parents are recorded")
                    .filter_header
            };
            let filter_hashes = hashes
                .iter()
                .map(|hash| {
                    let record = chain.record(hash).expect("branch blocks are recorded");
                    if (lying && record.height > 0) || lie_about == Some(*hash) {
                        filters::filter_hash(&lying_filter(&self.switches, &record.block))
                    } else {
                        record.filter_hash
                    }
                })
                .collect::<Vec<_>>();
            CFHeaders {
                filter_type: 0,
                stop_hash: request.stop_hash,
                previous_filter_header,
                filter_hashes,
            }
        };
        let count = response.filter_hashes.len() as u64;
        self.shared.record(|stats| stats.cfheaders_served += count);
        self.send(NetworkMessage::CFHeaders(response)).await?;
        Ok(Outcome::Continue)
    }

    async fn serve_checkpoints(&mut self, request: GetCFCheckpt) -> SessionResult {
        if self.switches.withhold_filters() {
            debug!("withholding filter checkpoints from {}", self.peer);
            return Ok(Outcome::Continue);
        }
        let lying = self.switches.conflicting_cfheaders();
        let response = {
            let node = lock(&self.shared.node);
            let chain = node.chain();
            let stop_height = match self.check_filter_request(
                chain,
                request.filter_type,
                0,
                &request.stop_hash,
                u32::MAX,
            ) {
                Ok(height) => height,
                Err(reason) => return Ok(Outcome::Disconnect(reason)),
            };
            let filter_headers = (1..=stop_height / CFCHECKPT_INTERVAL)
                .filter_map(|index| chain.ancestor(&request.stop_hash, index * CFCHECKPT_INTERVAL))
                .map(|hash| {
                    if lying {
                        lying_filter_header(&self.shared, &self.switches, chain, &hash)
                    } else if let Some(lie) = self.switches.lying_filter_for() {
                        filter_header_lying_about(&self.switches, chain, &hash, &lie)
                    } else {
                        chain
                            .record(&hash)
                            .expect("ancestors are recorded")
                            .filter_header
                    }
                })
                .collect();
            CFCheckpt {
                filter_type: 0,
                stop_hash: request.stop_hash,
                filter_headers,
            }
        };
        self.send(NetworkMessage::CFCheckpt(response)).await?;
        Ok(Outcome::Continue)
    }
}

/// Height of the last block shared by `hash`'s branch and the active chain.
fn fork_height(chain: &Chain, hash: &BlockHash) -> Option<u32> {
    let mut current = *hash;
    loop {
        let record = chain.record(&current)?;
        if chain.is_active(&current) {
            return Some(record.height);
        }
        current = record.block.header.prev_blockhash;
    }
}

/// The wrong filter a lying endpoint serves for `block`.
fn lying_filter(switches: &Misbehaviour, block: &bitcoin::Block) -> bitcoin::bip158::BlockFilter {
    if switches.undecodable_filters() {
        filters::undecodable_filter()
    } else {
        filters::wrong_filter(block)
    }
}

/// The filter header of `hash` in the lying filter-header chain (wrong filters from height 1),
/// computed from the nearest cached ancestor and cached.
fn lying_filter_header(
    shared: &Shared,
    switches: &Misbehaviour,
    chain: &Chain,
    hash: &BlockHash,
) -> FilterHeader {
    let mut cache = lock(&shared.lying_filter_headers);
    let mut path = Vec::new();
    let mut current = *hash;
    let mut header = loop {
        if let Some(header) = cache.get(&current) {
            break *header;
        }
        let record = chain.record(&current).expect("branch blocks are recorded");
        if record.height == 0 {
            break record.filter_header;
        }
        path.push(current);
        current = record.block.header.prev_blockhash;
    };
    for hash in path.into_iter().rev() {
        let record = chain.record(&hash).expect("branch blocks are recorded");
        let wrong = filters::filter_hash(&lying_filter(switches, &record.block));
        header = filters::next_filter_header(&wrong, &header);
        cache.insert(hash, header);
    }
    header
}

/// The filter header of `hash` in the chain where only block `lie`'s filter is replaced by the
/// wrong one: the honest header when `lie` is not `hash` or one of its ancestors.
fn filter_header_lying_about(
    switches: &Misbehaviour,
    chain: &Chain,
    hash: &BlockHash,
    lie: &BlockHash,
) -> FilterHeader {
    let mut path = Vec::new();
    let mut current = *hash;
    loop {
        let record = chain.record(&current).expect("branch blocks are recorded");
        if current == *lie {
            break;
        }
        if record.height == 0 {
            return chain.record(hash).expect("recorded").filter_header;
        }
        path.push(current);
        current = record.block.header.prev_blockhash;
    }
    let lied = chain.record(lie).expect("recorded");
    let parent = chain
        .record(&lied.block.header.prev_blockhash)
        .map_or(FilterHeader::all_zeros(), |record| record.filter_header);
    let wrong = filters::filter_hash(&lying_filter(switches, &lied.block));
    let mut header = filters::next_filter_header(&wrong, &parent);
    for hash in path.into_iter().rev() {
        let record = chain.record(&hash).expect("branch blocks are recorded");
        header = filters::next_filter_header(&record.filter_hash, &header);
    }
    header
}

fn strip_transaction(tx: &Transaction) -> Transaction {
    let mut stripped = tx.clone();
    for input in &mut stripped.input {
        input.witness = Witness::new();
    }
    stripped
}

fn strip_block(block: &Block) -> Block {
    Block {
        header: block.header,
        txdata: block.txdata.iter().map(strip_transaction).collect(),
    }
}

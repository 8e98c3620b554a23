//! Gossip on a graph the size of the public Lightning network: what a `lightfilter daemon`
//! downloads to learn the graph and to keep it current for a day, what holding it costs in
//! resident memory, how soon after a restart the node finds a route across it, and what a
//! day of a node, chain and gossip together, costs by default and with each choice a Pi has.
//!
//! The bench runs Lightning peers of its own (LDK peer managers serving a network graph
//! through LDK's gossip sync, on 127.0.0.1 behind proxies that count the bytes each daemon is
//! sent) with the graph of `support/graph.rs` (`LIGHTFILTER_BENCH_GOSSIP_SEED`), whose funding
//! outputs are mined into the embedded regtest peer. Daemons connect to them with `connect`,
//! as to any peer. Byte figures are held against the BIP 158 filters of a day (144 blocks) of
//! blocks of about 1.5 MB, the `day` benchmark's blocks: `LIGHTFILTER_BENCH_GOSSIP_DAY_BLOCKS`
//! of them (default 144) are mined, and their filters scaled to 144 when fewer.
//!
//! A second daemon, whose node key is the graph's gateway node (channels to the three largest
//! hubs), has a channel from the measured daemon, so the measured daemon can route into the
//! graph; a route is found when `keysend` to a far node of the graph gets past route finding
//! (the payment then fails at the gateway, which has no such channels).
//!
//! Last comes a day: its blocks mined one at a time and its channel updates served between
//! them, under fresh daemons that sample fees as on a public network: one with the default
//! settings and two gossip peers, one with `max_graph_channels`
//! (`LIGHTFILTER_BENCH_GOSSIP_BOUND`, default 25,000; with its own channel to the gateway, to
//! look for the far route), one with `gossip_peers = 1` and two peers, one with
//! `gossip_peers = 0` and two peers, and the measured daemon, which by then asks for gossip
//! since its stored graph. Each one's day is its `sync.bytes_received` plus the gossip it was
//! sent.

#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "support/graph.rs"]
mod graph;
#[path = "support/large_blocks.rs"]
mod large_blocks;
#[path = "../tests/common/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bitcoin::secp256k1::PublicKey;
use bitcoin::Amount;
use cli::{init_with_words, Chain, Daemon};
use graph::{BenchGraph, Graph, QuietLogger, Shape, FUNDING_HEIGHT, GATEWAY_SEED};
use large_blocks::LargeBlocks;
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelAnnouncement, ChannelUpdate, Init, LightningError, MessageSendEvent,
    NodeAnnouncement, QueryChannelRange, QueryShortChannelIds, ReplyChannelRange,
    ReplyShortChannelIdsEnd, RoutingMessageHandler,
};
use lightning::ln::peer_handler::{ErroringMessageHandler, IgnoringMessageHandler, PeerManager};
use lightning::routing::gossip::{NodeId, P2PGossipSync};
use lightning::routing::utxo::UtxoLookup;
use lightning::sign::{KeysManager, NodeSigner, Recipient};
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::ser::Writeable;
use lightning_net_tokio::SocketDescriptor;
use proc::status_kb;
use report::{env_number, Row, Table};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Blocks in a day.
const DAY_BLOCKS: u64 = 144;
/// Most a day's gossip may weigh against the day's filters: what the `day` benchmark's goal (a
/// day's traffic within twice the filters) leaves beside its 1.28.
const DAY_GOSSIP_GOAL: f64 = 0.72;
/// Most a day's traffic, chain and gossip, may weigh against the day's filters: the `day`
/// benchmark's goal.
const DAY_GOAL: f64 = 2.0;
/// Fee sampling as on a public network (regtest's default samples at every block).
const PUBLIC_FEE_SAMPLING: &str = "fee_sample_interval = 144\n";
/// Channel updates handed to the peer manager at once while serving a day: LDK drops gossip
/// broadcasts to a peer whose buffer holds more than 128 kB.
const UPDATE_BATCH: usize = 200;
/// Bytes a Lightning message takes on the wire beyond its type and payload: the encrypted
/// length and the two MACs.
const WIRE_OVERHEAD: u64 = 2 + 16 + 16;
/// How long the daemon is left alone before its memory is read.
const IDLE: Duration = Duration::from_secs(5);
/// Longest wait for a full graph sync or a day of updates.
const SYNC_TIMEOUT: Duration = Duration::from_secs(900);

type Gossip = P2PGossipSync<Arc<BenchGraph>, Arc<dyn UtxoLookup + Send + Sync>, Arc<QuietLogger>>;

/// LDK's gossip sync for the bench's graph, plus broadcasts the bench queues (a day's updates).
struct Relay {
    gossip: Gossip,
    queued: Mutex<Vec<MessageSendEvent>>,
}

impl BaseMessageHandler for Relay {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        let mut events = self.gossip.get_and_clear_pending_msg_events();
        events.append(&mut self.queued.lock().unwrap());
        events
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.gossip.peer_disconnected(their_node_id)
    }

    fn provided_node_features(&self) -> NodeFeatures {
        self.gossip.provided_node_features()
    }

    fn provided_init_features(&self, their_node_id: PublicKey) -> InitFeatures {
        self.gossip.provided_init_features(their_node_id)
    }

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        msg: &Init,
        inbound: bool,
    ) -> Result<(), ()> {
        self.gossip.peer_connected(their_node_id, msg, inbound)
    }
}

impl RoutingMessageHandler for Relay {
    fn handle_node_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &NodeAnnouncement,
    ) -> Result<bool, LightningError> {
        self.gossip.handle_node_announcement(their_node_id, msg)
    }

    fn handle_channel_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelAnnouncement,
    ) -> Result<bool, LightningError> {
        self.gossip.handle_channel_announcement(their_node_id, msg)
    }

    fn handle_channel_update(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelUpdate,
    ) -> Result<bool, LightningError> {
        self.gossip.handle_channel_update(their_node_id, msg)
    }

    fn get_next_channel_announcement(
        &self,
        starting_point: u64,
    ) -> Option<(
        ChannelAnnouncement,
        Option<ChannelUpdate>,
        Option<ChannelUpdate>,
    )> {
        self.gossip.get_next_channel_announcement(starting_point)
    }

    fn get_next_node_announcement(
        &self,
        starting_point: Option<&NodeId>,
    ) -> Option<NodeAnnouncement> {
        self.gossip.get_next_node_announcement(starting_point)
    }

    fn handle_reply_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: ReplyChannelRange,
    ) -> Result<(), LightningError> {
        self.gossip.handle_reply_channel_range(their_node_id, msg)
    }

    fn handle_reply_short_channel_ids_end(
        &self,
        their_node_id: PublicKey,
        msg: ReplyShortChannelIdsEnd,
    ) -> Result<(), LightningError> {
        self.gossip
            .handle_reply_short_channel_ids_end(their_node_id, msg)
    }

    fn handle_query_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: QueryChannelRange,
    ) -> Result<(), LightningError> {
        self.gossip.handle_query_channel_range(their_node_id, msg)
    }

    fn handle_query_short_channel_ids(
        &self,
        their_node_id: PublicKey,
        msg: QueryShortChannelIds,
    ) -> Result<(), LightningError> {
        self.gossip
            .handle_query_short_channel_ids(their_node_id, msg)
    }

    fn processing_queue_high(&self) -> bool {
        self.gossip.processing_queue_high()
    }
}

type BenchPeerManager = PeerManager<
    SocketDescriptor,
    ErroringMessageHandler,
    Arc<Relay>,
    IgnoringMessageHandler,
    Arc<QuietLogger>,
    IgnoringMessageHandler,
    Arc<KeysManager>,
    IgnoringMessageHandler,
>;

/// The bench's Lightning peer, serving the graph on 127.0.0.1 behind proxies ("doors") that
/// count what it sends.
struct GossipPeer {
    runtime: tokio::runtime::Runtime,
    manager: Arc<BenchPeerManager>,
    relay: Arc<Relay>,
    node_id: PublicKey,
    /// Where the peer manager itself listens.
    lightning: SocketAddr,
    /// The first door, for [`GossipPeer::uri`]: the measured daemon's.
    first_door: Option<Door>,
    /// Bytes sent through every door.
    sent: Arc<AtomicU64>,
    /// Connections accepted at every door.
    connections: Arc<AtomicU64>,
}

/// A door to a [`GossipPeer`] of one daemon's own: what is sent through it is that daemon's,
/// over every connection it makes there (a restarted daemon reconnects to the same door).
struct Door {
    uri: String,
    sent: Arc<AtomicU64>,
}

impl Door {
    /// Bytes sent through this door so far.
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }
}

/// Copies `from` to `to` until either side closes, adding what it copied to `counts`.
async fn pump(
    mut from: tokio::net::tcp::OwnedReadHalf,
    mut to: tokio::net::tcp::OwnedWriteHalf,
    counts: Vec<Arc<AtomicU64>>,
) {
    let mut buffer = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buffer).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        if to.write_all(&buffer[..n]).await.is_err() {
            break;
        }
        for count in &counts {
            count.fetch_add(n as u64, Ordering::Relaxed);
        }
    }
    let _ = to.shutdown().await;
}

impl GossipPeer {
    /// Serves `graph` under the node key made from `key_seed`.
    fn start(graph: Arc<BenchGraph>, key_seed: u8) -> GossipPeer {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the gossip peer");
        let now = SystemTime::now().duration_since(UNIX_EPOCH).unwrap();
        let keys = Arc::new(KeysManager::new(
            &[key_seed; 32],
            now.as_secs(),
            now.subsec_nanos(),
            true,
        ));
        let node_id = keys.get_node_id(Recipient::Node).expect("a node id");
        let logger = Arc::new(QuietLogger);
        let relay = Arc::new(Relay {
            gossip: P2PGossipSync::new(graph, None, logger.clone()),
            queued: Mutex::new(Vec::new()),
        });
        let manager = Arc::new(BenchPeerManager::new_routing_only(
            relay.clone(),
            now.as_secs() as u32,
            &[key_seed; 32],
            logger,
            keys,
        ));
        let lightning = runtime.block_on(async {
            let lightning = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let lightning_addr = lightning.local_addr().unwrap();
            let served = manager.clone();
            tokio::spawn(async move {
                while let Ok((stream, _)) = lightning.accept().await {
                    let stream = stream.into_std().expect("a std socket");
                    tokio::spawn(lightning_net_tokio::setup_inbound(served.clone(), stream));
                }
            });
            let ticked = manager.clone();
            tokio::spawn(async move {
                let mut ticks = 0u64;
                loop {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    ticked.process_events();
                    ticks += 1;
                    if ticks.is_multiple_of(100) {
                        ticked.timer_tick_occurred();
                    }
                }
            });
            lightning_addr
        });
        let mut peer = GossipPeer {
            runtime,
            manager,
            relay,
            node_id,
            lightning,
            first_door: None,
            sent: Arc::new(AtomicU64::new(0)),
            connections: Arc::new(AtomicU64::new(0)),
        };
        peer.first_door = Some(peer.door());
        peer
    }

    /// The first door, which [`GossipPeer::uri`] names.
    fn first_door(&self) -> &Door {
        self.first_door.as_ref().expect("opened at the start")
    }

    /// A new door: a proxy on 127.0.0.1 with a byte count of its own.
    fn door(&self) -> Door {
        let (sent, addr) = self.open_door();
        Door {
            uri: format!("{}@{addr}", self.node_id),
            sent,
        }
    }

    fn open_door(&self) -> (Arc<AtomicU64>, SocketAddr) {
        let own = Arc::new(AtomicU64::new(0));
        let counts = vec![own.clone(), self.sent.clone()];
        let accepted = self.connections.clone();
        let lightning = self.lightning;
        let addr = self.runtime.block_on(async {
            let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let addr = proxy.local_addr().unwrap();
            tokio::spawn(async move {
                while let Ok((daemon, _)) = proxy.accept().await {
                    accepted.fetch_add(1, Ordering::Relaxed);
                    let Ok(peer) = tokio::net::TcpStream::connect(lightning).await else {
                        continue;
                    };
                    let (daemon_read, daemon_write) = daemon.into_split();
                    let (peer_read, peer_write) = peer.into_split();
                    tokio::spawn(pump(daemon_read, peer_write, Vec::new()));
                    tokio::spawn(pump(peer_read, daemon_write, counts.clone()));
                }
            });
            addr
        });
        (own, addr)
    }

    /// Connections the doors accepted so far.
    fn connections(&self) -> u64 {
        self.connections.load(Ordering::Relaxed)
    }

    /// `<node id>@<first door>`, for `connect`.
    fn uri(&self) -> String {
        self.first_door().uri.clone()
    }

    /// Bytes sent to daemons so far, through every door.
    fn sent(&self) -> u64 {
        self.sent.load(Ordering::Relaxed)
    }

    /// Serves `updates` as gossip heard from elsewhere to the `receivers` daemons that asked
    /// for gossip, a batch at a time, each batch once it has left for all of them; returns
    /// the bytes sent meanwhile.
    fn serve(&self, updates: &[ChannelUpdate], receivers: u64) -> u64 {
        let start = self.sent();
        let mut expected = 0u64;
        for batch in updates.chunks(UPDATE_BATCH) {
            expected += receivers
                * batch
                    .iter()
                    .map(|update| update.serialized_length() as u64 + 2 + WIRE_OVERHEAD)
                    .sum::<u64>();
            self.relay
                .queued
                .lock()
                .unwrap()
                .extend(
                    batch
                        .iter()
                        .map(|update| MessageSendEvent::BroadcastChannelUpdate {
                            msg: update.clone(),
                        }),
                );
            let _guard = self.runtime.enter();
            self.manager.process_events();
            let deadline = Instant::now() + Duration::from_secs(60);
            while self.sent() - start < expected {
                assert!(
                    Instant::now() < deadline,
                    "updates were dropped: {} of {expected} bytes sent",
                    self.sent() - start
                );
                std::thread::sleep(Duration::from_millis(5));
            }
        }
        self.sent() - start
    }
}

/// Waits until the bytes `sent` counts stop growing for two seconds; returns them.
fn wait_quiet(sent: impl Fn() -> u64) -> u64 {
    let mut last = sent();
    loop {
        std::thread::sleep(Duration::from_secs(2));
        let now = sent();
        if now == last {
            return now;
        }
        last = now;
    }
}

/// The daemon's graph size, `(nodes, channels)`.
fn graph_size(daemon: &Daemon) -> (u64, u64) {
    let info = daemon.json(&["getinfo"]);
    (
        info["graph_nodes"].as_u64().expect("graph_nodes"),
        info["graph_channels"].as_u64().expect("graph_channels"),
    )
}

/// Waits (up to [`SYNC_TIMEOUT`]) until `daemon` holds at least `nodes` nodes and `channels`
/// channels; returns what it held then.
fn wait_graph(daemon: &Daemon, nodes: u64, channels: u64) -> (u64, u64) {
    let deadline = Instant::now() + SYNC_TIMEOUT;
    loop {
        let size = graph_size(daemon);
        if size.0 >= nodes && size.1 >= channels {
            return size;
        }
        assert!(
            Instant::now() < deadline,
            "{} holds {size:?} after {} s, expected {nodes} nodes and {channels} channels",
            daemon.name,
            SYNC_TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn idle_rss_kb(daemon: &Daemon) -> u64 {
    std::thread::sleep(IDLE);
    status_kb(&daemon.pid().to_string(), "VmRSS:")
}

/// What a restart of the daemon with its graph on disk took.
struct Restart {
    /// Seconds from the start to the node running.
    running: f64,
    /// Seconds from the start to the first route found across the graph.
    route: f64,
    /// Bytes the gossip peer sent after the restart until it went quiet.
    received: u64,
    /// The graph the daemon held once running, `(nodes, channels)`.
    held: (u64, u64),
}

/// A file named `name` under `dir`.
fn find_file(dir: &Path, name: &str) -> Option<PathBuf> {
    for entry in std::fs::read_dir(dir).ok()?.flatten() {
        let path = entry.path();
        if path.is_dir() {
            if let Some(found) = find_file(&path, name) {
                return Some(found);
            }
        } else if path.file_name().is_some_and(|file| file == name) {
            return Some(path);
        }
    }
    None
}

/// Stops `node`, starts it again on its data directory and measures how soon it finds a
/// route to `far` and what the gossip peer sends it again; `expected` is the graph's size.
///
/// The route search fails at the gateway, which has none of the channels it announces, and
/// LDK then removes the gateway's channels from the graph for good. So the graph the node
/// stored at its first stop is kept in `stored` and put back at each later stop: every
/// restart starts from the same graph on disk.
fn restart_to_route(
    node: &mut Daemon,
    chain: &Chain,
    peer: &GossipPeer,
    far: &str,
    expected: (u64, u64),
    stored: &mut Option<(PathBuf, Vec<u8>)>,
) -> Restart {
    node.json(&["stop"]);
    assert!(node.wait_exit(), "the daemon stopped with a failure");
    match stored {
        Some((path, bytes)) => std::fs::write(path, bytes).expect("put the stored graph back"),
        None => {
            let path = find_file(node.data_dir(), "network_graph").expect("a stored graph");
            let bytes = std::fs::read(&path).expect("the stored graph");
            *stored = Some((path, bytes));
        }
    }
    let before = peer.sent();
    let connections = peer.connections();
    let restarted = Instant::now();
    node.respawn(chain, &[]);
    node.wait_api();
    let mut running = None;
    let mut held = (0, 0);
    let deadline = Instant::now() + SYNC_TIMEOUT;
    let route = loop {
        if running.is_none() && node.is_started() {
            running = Some(restarted.elapsed().as_secs_f64());
            // Read before the first search for a route takes the gateway's channels out.
            held = graph_size(node);
        }
        if running.is_some() && finds_route(node, far) {
            break restarted.elapsed().as_secs_f64();
        }
        assert!(Instant::now() < deadline, "no route after the restart");
        std::thread::sleep(Duration::from_millis(100));
    };
    assert!(
        held.0 >= expected.0 && held.1 >= expected.1,
        "the graph on disk: {held:?}, expected {expected:?}"
    );
    while peer.connections() == connections {
        assert!(Instant::now() < deadline, "the daemon did not reconnect");
        std::thread::sleep(Duration::from_millis(100));
    }
    Restart {
        running: running.expect("running"),
        route,
        received: wait_quiet(|| peer.sent()) - before,
        held,
    }
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as u32
}

/// Whether `keysend` from `daemon` to `destination` gets past route finding: a payment that
/// was sent (still pending, or failed at the gateway) found a route; a send refused for the
/// want of one printed an error instead.
fn finds_route(daemon: &Daemon, destination: &str) -> bool {
    let run = daemon.cli(&[
        "keysend",
        destination,
        "10000sat",
        "--timeout",
        "1",
        "--json",
    ]);
    serde_json::from_str::<serde_json::Value>(&run.stdout)
        .is_ok_and(|payment| payment["status"].is_string())
}

/// Payload bytes of headers, filter headers, filters and blocks `daemon` received from its
/// Bitcoin peer since it started.
fn chain_bytes(daemon: &Daemon) -> u64 {
    daemon.json(&["getinfo"])["sync"]["bytes_received"]
        .as_u64()
        .expect("bytes_received")
}

/// Adds `settings` to the configuration file in `dir`.
fn configure(dir: &Path, settings: &str) {
    use std::io::Write;
    std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(dir.join("lightfilter.toml"))
        .and_then(|mut file| file.write_all(settings.as_bytes()))
        .expect("write the config");
}

/// One daemon's part in the simulated day: its doors to the two gossip peers, and what it had
/// received from the Bitcoin peer and through the doors when the day began.
struct DayShare<'a> {
    label: String,
    daemon: &'a Daemon,
    doors: Vec<&'a Door>,
    chain_before: u64,
    gossip_before: u64,
}

impl<'a> DayShare<'a> {
    fn begin(label: impl Into<String>, daemon: &'a Daemon, doors: Vec<&'a Door>) -> Self {
        DayShare {
            label: label.into(),
            daemon,
            chain_before: chain_bytes(daemon),
            gossip_before: doors.iter().map(|door| door.sent()).sum(),
            doors,
        }
    }

    /// Bytes received since the day began: `(chain, gossip)`.
    fn received(&self) -> (u64, u64) {
        let gossip: u64 = self.doors.iter().map(|door| door.sent()).sum();
        (
            chain_bytes(self.daemon) - self.chain_before,
            gossip - self.gossip_before,
        )
    }
}

fn main() {
    let mut table = Table::new("gossip on a public-network-sized graph");
    let seed = env_number("LIGHTFILTER_BENCH_GOSSIP_SEED", 1);
    let shape = Shape {
        nodes: env_number("LIGHTFILTER_BENCH_GOSSIP_NODES", 15_000) as u32,
        channels: env_number("LIGHTFILTER_BENCH_GOSSIP_CHANNELS", 50_000) as u32,
    };
    let day_blocks = env_number("LIGHTFILTER_BENCH_GOSSIP_DAY_BLOCKS", DAY_BLOCKS).max(1);
    let block_bytes = env_number("LIGHTFILTER_BENCH_BLOCK_BYTES", 1_500_000);
    let bound = env_number("LIGHTFILTER_BENCH_GOSSIP_BOUND", 25_000);

    let made = Instant::now();
    let graph = Graph::load_or_make(seed, shape);
    eprintln!("graph ready in {:.0} s", made.elapsed().as_secs_f64());
    let chain = Chain::start();
    chain.mine(FUNDING_HEIGHT - 2 - chain.height());
    graph.mine_funding(&chain.peer);
    let mut blocks = LargeBlocks::new(&chain.peer, block_bytes);

    // The gateway's daemon, and the measured one with a channel to it. Every daemon samples
    // fees as a public network's node does (a block of its own once a day while idle).
    let gateway_dir = tempfile::Builder::new()
        .prefix("lightfilter-gossip-gateway-")
        .tempdir()
        .expect("a data directory");
    let words = bip39::Mnemonic::from_entropy(&GATEWAY_SEED)
        .expect("words")
        .to_string();
    let init = init_with_words(gateway_dir.path(), &words);
    assert!(init.success, "init the gateway: {}", init.stderr);
    configure(gateway_dir.path(), PUBLIC_FEE_SAMPLING);
    let gateway = Daemon::start_in("gossip-gateway", gateway_dir, &chain, &[]);
    let gateway_id = graph.node_id(shape.nodes);
    assert_eq!(
        gateway.node_id(),
        gateway_id.to_string(),
        "the gateway's node key"
    );
    let mut node = Daemon::start_configured("gossip", &chain, PUBLIC_FEE_SAMPLING);
    node.fund(&chain, Amount::from_sat(1_000_000));
    node.open_usable_channel(&chain, &gateway, 500_000);
    let far = graph.node_id(shape.nodes - 1).to_string();
    assert!(!finds_route(&node, &far), "a route before the graph");
    let rss_without = idle_rss_kb(&node);

    // The first full sync.
    let served = Arc::new(graph.graph);
    let peer = GossipPeer::start(served.clone(), 0x47);
    let (nodes, channels) = (u64::from(shape.nodes) + 1, graph.funding.len() as u64);
    let synced = Instant::now();
    node.json(&["connect", &peer.uri()]);
    let held = wait_graph(&node, nodes, channels);
    let full_sync = wait_quiet(|| peer.sent());
    let sync_secs = synced.elapsed().as_secs_f64();
    eprintln!("graph synced in {sync_secs:.0} s; serving a day of updates");

    // A day of updates, alone.
    let day_bytes = peer.serve(&graph.day, 1);
    eprintln!("a day of updates served; restarting");
    let rss_with = idle_rss_kb(&node);

    // Restarts with the graph on disk: as LDK does, then asking only for newer gossip.
    let newest_age =
        now_secs().saturating_sub(graph.day.last().map_or(0, |u| u.contents.timestamp));
    let mut stored = None;
    let expected = (nodes, channels);
    let whole = restart_to_route(&mut node, &chain, &peer, &far, expected, &mut stored);
    let rss_restarted = idle_rss_kb(&node);
    configure(node.data_dir(), "gossip_since_stored_graph = true\n");
    let since = restart_to_route(&mut node, &chain, &peer, &far, expected, &mut stored);

    // A day with its blocks, under fresh daemons: by default with two gossip peers (a second
    // one serves the same graph), and with each of the Pi's choices: a bounded graph (with
    // its own channel to the gateway, to look for the far route), gossip from one peer of
    // two, gossip from none. The measured daemon, now asking since its stored graph, stays.
    eprintln!("starting a daemon for each choice");
    let second = GossipPeer::start(served.clone(), 0x48);
    // The measured daemon reconnected to the first door after its restarts.
    let node_door = peer.first_door();
    let bounded = Daemon::start_configured(
        "gossip-bounded",
        &chain,
        &format!("{PUBLIC_FEE_SAMPLING}max_graph_channels = {bound}\n"),
    );
    bounded.fund(&chain, Amount::from_sat(1_000_000));
    bounded.open_usable_channel(&chain, &gateway, 500_000);
    let bounded_rss_without = idle_rss_kb(&bounded);
    let two = Daemon::start_configured("gossip-two-peers", &chain, PUBLIC_FEE_SAMPLING);
    let one = Daemon::start_configured(
        "gossip-one-peer",
        &chain,
        &format!("{PUBLIC_FEE_SAMPLING}gossip_peers = 1\n"),
    );
    let none = Daemon::start_configured(
        "gossip-no-peer",
        &chain,
        &format!("{PUBLIC_FEE_SAMPLING}gossip_peers = 0\n"),
    );
    let bounded_door = peer.door();
    let two_doors = [peer.door(), second.door()];
    let one_doors = [peer.door(), second.door()];
    let none_doors = [peer.door(), second.door()];
    bounded.json(&["connect", &bounded_door.uri]);
    for door in &two_doors {
        two.json(&["connect", &door.uri]);
    }
    one.json(&["connect", &one_doors[0].uri]);
    for door in &none_doors {
        none.json(&["connect", &door.uri]);
    }
    wait_graph(&bounded, 1, bound.min(channels));
    wait_graph(&two, nodes, channels);
    wait_graph(&one, nodes, channels);
    // Only now the one-peer daemon's second peer: the first is the one it asked.
    one.json(&["connect", &one_doors[1].uri]);
    wait_quiet(|| peer.sent() + second.sent());
    let bounded_sync = bounded_door.sent();
    let bounded_held = graph_size(&bounded);
    // Read before the day's blocks, which take memory of their own.
    let bounded_rss_synced = idle_rss_kb(&bounded);
    let two_sync = [two_doors[0].sent(), two_doors[1].sent()];
    let one_sync = [one_doors[0].sent(), one_doors[1].sent()];

    // The day: its blocks mined one at a time, its updates served between them by both
    // gossip peers, to every daemon that asked each of them.
    let daemons = [&node, &bounded, &two, &one, &none];
    for daemon in daemons {
        daemon.wait_synced_to(chain.height());
    }
    std::thread::sleep(Duration::from_secs(25));
    eprintln!(
        "serving a day: {day_blocks} blocks and {} updates",
        graph.day.len()
    );
    let shares = [
        DayShare::begin("by default, one gossip peer", &two, vec![&two_doors[0]]),
        DayShare::begin(
            "by default, two gossip peers",
            &two,
            two_doors.iter().collect(),
        ),
        DayShare::begin(
            "gossip_since_stored_graph, one gossip peer",
            &node,
            vec![node_door],
        ),
        DayShare::begin(
            format!("max_graph_channels = {bound}, one gossip peer"),
            &bounded,
            vec![&bounded_door],
        ),
        DayShare::begin(
            "gossip_peers = 1, two peers",
            &one,
            one_doors.iter().collect(),
        ),
        DayShare::begin(
            "gossip_peers = 0, two peers",
            &none,
            none_doors.iter().collect(),
        ),
    ];
    let first = chain.height() + 1;
    let per_block = graph.day.len().div_ceil(day_blocks as usize);
    for n in 0..day_blocks as usize {
        let start = (n * per_block).min(graph.day.len());
        let updates = &graph.day[start..((n + 1) * per_block).min(graph.day.len())];
        // Asking the first peer: the measured, bounded, two-peer and one-peer daemons; the
        // second: the two-peer daemon.
        peer.serve(updates, 4);
        second.serve(updates, 1);
        blocks.mine_one(None);
        let tip = chain.height();
        for daemon in daemons {
            daemon.wait_synced_to(tip);
        }
    }
    // Let fee samples of the last tip land.
    std::thread::sleep(Duration::from_secs(2));
    let day: Vec<(String, u64, u64)> = shares
        .iter()
        .map(|share| {
            // The chain's part scaled to a day when fewer blocks were mined; the gossip is
            // a whole day's.
            let (chain, gossip) = share.received();
            (share.label.clone(), chain * DAY_BLOCKS / day_blocks, gossip)
        })
        .collect();
    let mut day_filters = 0u64;
    for height in first..=chain.height() {
        let block = chain.peer.block_at(height).expect("block");
        day_filters += chain
            .peer
            .filter(&block.block_hash())
            .expect("filter")
            .content
            .len() as u64;
    }
    let day_filters = day_filters * DAY_BLOCKS / day_blocks;
    let bounded_rss = idle_rss_kb(&bounded);
    let none_rss = idle_rss_kb(&none);
    let bounded_route = finds_route(&bounded, &far);
    let one_day = [
        one_doors[0].sent() - one_sync[0],
        one_doors[1].sent() - one_sync[1],
    ];
    node.json(&["stop"]);
    assert!(node.wait_exit(), "the daemon stopped with a failure");

    let mb = |bytes: u64| format!("{:.2} MB", bytes as f64 / 1e6);
    let ratio = |bytes: u64| bytes as f64 / day_filters.max(1) as f64;
    table.push(Row::info(
        "graph: nodes / channels / updates in a day",
        format!("{} / {} / {}", nodes, channels, graph.day.len()),
    ));
    table.push(Row::info(
        format!(
            "BIP 158 filters of {DAY_BLOCKS} blocks of ~{} kB (from {day_blocks} mined)",
            block_bytes / 1000
        ),
        mb(day_filters),
    ));
    table.push(Row::info(
        format!(
            "first graph sync: received in {sync_secs:.0} s (daemon holds {} nodes / {} channels)",
            held.0, held.1
        ),
        mb(full_sync),
    ));
    table.push(Row::info(
        "first graph sync / a day's filters",
        format!("{:.2}", ratio(full_sync)),
    ));
    table.push(Row::info(
        "first graph sync with two gossip peers, by default: received from each / a day's filters",
        format!("{:.2} / {:.2}", ratio(two_sync[0]), ratio(two_sync[1])),
    ));
    table.push(Row::info(
        "first graph sync with gossip_peers = 1: from the peer asked / the other",
        format!("{:.2} / {:.2}", ratio(one_sync[0]), ratio(one_sync[1])),
    ));
    table.push(Row::info(
        "a day of channel updates from one peer: received",
        mb(day_bytes),
    ));
    table.push(Row::goal(
        "a day of channel updates from one peer / a day's filters",
        format!("{:.2}", ratio(day_bytes)),
        format!("≤ {DAY_GOSSIP_GOAL}"),
        ratio(day_bytes) <= DAY_GOSSIP_GOAL,
    ));
    for (label, chain_received, gossip) in &day {
        table.push(Row::goal(
            format!("a day with gossip, {label}: (chain + gossip) / a day's filters"),
            format!(
                "({:.2} + {:.2}) = {:.2}",
                ratio(*chain_received),
                ratio(*gossip),
                ratio(chain_received + gossip)
            ),
            format!("≤ {DAY_GOAL}"),
            ratio(chain_received + gossip) <= DAY_GOAL,
        ));
    }
    let (_, day_chain, day_gossip) = &day[0];
    for (how, restart) in [
        ("by default", &whole),
        ("gossip_since_stored_graph", &since),
    ] {
        let total = day_chain + day_gossip + restart.received;
        table.push(Row::goal(
            format!("a day with gossip and one restart, {how}, one gossip peer / a day's filters"),
            format!("{:.2}", ratio(total)),
            format!("≤ {DAY_GOAL}"),
            ratio(total) <= DAY_GOAL,
        ));
    }
    table.push(Row::info(
        "gossip_peers = 1: the day's gossip from the peer asked / the other",
        format!("{} / {}", mb(one_day[0]), mb(one_day[1])),
    ));
    let mib = |kb: u64| format!("{:.1} MB", kb as f64 / 1024.0);
    table.push(Row::info(
        "resident memory, idle: no graph / full graph / restarted with it",
        format!(
            "{} / {} / {}",
            mib(rss_without),
            mib(rss_with),
            mib(rss_restarted)
        ),
    ));
    let growth = rss_with.saturating_sub(rss_without);
    table.push(Row::goal(
        "resident memory the graph adds",
        format!(
            "{} ({:.2} kB a channel)",
            mib(growth),
            growth as f64 * 1.024 / channels as f64
        ),
        "≤ 100 MB",
        growth <= 100 * 1024,
    ));
    for (how, restart) in [
        ("as LDK does (default)", &whole),
        ("gossip_since_stored_graph", &since),
    ] {
        table.push(Row::info(
            format!(
                "restart, {how}: to running / to the first route (graph on disk: {} nodes / {} channels)",
                restart.held.0, restart.held.1
            ),
            format!("{:.1} s / {:.1} s", restart.running, restart.route),
        ));
        table.push(Row::info(
            format!(
                "restart, {how}: gossip received again (newest stored update {:.1} h old)",
                f64::from(newest_age) / 3600.0
            ),
            format!(
                "{} = {:.2} of a day's filters",
                mb(restart.received),
                ratio(restart.received)
            ),
        ));
    }
    table.push(Row::goal(
        "restart to the first route across the graph (default)",
        format!("{:.1} s", whole.route),
        "≤ 30 s",
        whole.route <= 30.0,
    ));
    table.push(Row::goal(
        "gossip received again after a restart with gossip_since_stored_graph / a day's filters",
        format!("{:.2}", ratio(since.received)),
        "≤ 0.1",
        ratio(since.received) <= 0.1,
    ));
    let bounded_growth = bounded_rss_synced.saturating_sub(bounded_rss_without);
    table.push(Row::info(
        format!("bounded graph (max_graph_channels = {bound}): nodes / channels held"),
        format!("{} / {}", bounded_held.0, bounded_held.1),
    ));
    table.push(Row::info(
        "bounded graph: first sync received / a day's filters",
        format!("{:.2}", ratio(bounded_sync)),
    ));
    table.push(Row::goal(
        "bounded graph: resident memory the graph adds (idle, synced, before the day)",
        format!(
            "{} ({} / {})",
            mib(bounded_growth),
            mib(bounded_rss_without),
            mib(bounded_rss_synced)
        ),
        "≤ 100 MB",
        bounded_growth <= 100 * 1024,
    ));
    table.push(Row::info(
        "resident memory after the day: the bounded graph's daemon / the one with no graph",
        format!("{} / {}", mib(bounded_rss), mib(none_rss)),
    ));
    table.push(Row::info(
        "bounded graph: a route to the node four or five hops away found",
        if bounded_route { "yes" } else { "no" },
    ));
    table.push(Row::info(
        "gossip_peers = 0: network graph held (nodes / channels)",
        format!("{:?}", graph_size(&none)),
    ));
    table.print();
    drop((bounded, two, one, none));
    drop(gateway);
}

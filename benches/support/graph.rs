//! A Lightning graph shaped like the public network, made from a seed: about 15,000 nodes and
//! 50,000 channels (`LIGHTFILTER_BENCH_GOSSIP_NODES`, `LIGHTFILTER_BENCH_GOSSIP_CHANNELS`) with
//! a power-law degree distribution (a few hubs with hundreds or thousands of channels, most
//! nodes with one to three), every message signed with keys derived from the seed, node
//! announcements with addresses, one channel update per direction in the graph and two more
//! per direction for the next day.
//!
//! Each channel's funding output (the P2WSH 2-of-2 of its two bitcoin keys) is mined into the
//! embedded regtest peer by [`Graph::mine_funding`], in large transactions starting at block
//! [`FUNDING_HEIGHT`]; the short channel ids point at those outputs.
//!
//! Signing and checking half a million signatures takes about a minute, so the graph is cached
//! under the target directory (`gossip-graph-<seed>.bin`) and made again when the cache is
//! missing, of another shape, or more than four hours old (its timestamps lead up to the hour
//! it was made).

#![allow(dead_code)]

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::absolute::LockTime;
use bitcoin::constants::ChainHash;
use bitcoin::hashes::{sha256, sha256d, Hash};
use bitcoin::secp256k1::{Message, PublicKey, Secp256k1, SecretKey};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, FeeRate, Network, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};
use lightfilter::regtest::RegtestPeer;
use lightning::ln::chan_utils::make_funding_redeemscript;
use lightning::ln::msgs::{
    ChannelAnnouncement, ChannelUpdate, NodeAnnouncement, SocketAddress,
    UnsignedChannelAnnouncement, UnsignedChannelUpdate, UnsignedNodeAnnouncement,
};
use lightning::routing::gossip::{NetworkGraph, NodeAlias, NodeId};
use lightning::types::features::{ChannelFeatures, NodeFeatures};
use lightning::util::logger::{Logger, Record};
use lightning::util::scid_utils::scid_from_parts;
use lightning::util::ser::{LengthReadable, ReadableArgs, Writeable};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;

/// Height of the first block holding funding outputs. The chain is mined to the block before
/// it (regtest coinbases up to there are enough for every channel's capacity).
pub const FUNDING_HEIGHT: u32 = 300;
/// Funding outputs per funding transaction.
const OUTPUTS_PER_TX: usize = 1_000;
/// Funding transactions per block (each weighs about 175,000 WU).
const TXS_PER_BLOCK: usize = 17;
/// Fee of each funding transaction, in sat (about 4 sat/vB).
const FUNDING_TX_FEE: u64 = 200_000;
/// Exponent of the node weights (the `i`-th node's weight is `(i + 1)^-DEGREE_EXPONENT`).
const DEGREE_EXPONENT: f64 = 0.7;
/// Channels of the gateway node (to the largest hubs).
const GATEWAY_CHANNELS: usize = 3;
/// The cache's format; bump it when the graph changes shape.
const CACHE_VERSION: u32 = 1;
/// A cache older than this is made again: the graph's timestamps lead up to the hour it was
/// made, and a graph much older than the network's present looks to the node like one it
/// stored before a long absence.
const CACHE_MAX_AGE_SECS: u32 = 4 * 60 * 60;
const DAY_SECS: u32 = 24 * 60 * 60;

/// The seed of the gateway node's lightfilter daemon (its data directory's seed): the graph
/// gives that node channels to the largest hubs, so a daemon with a channel to it can route
/// into the whole graph.
pub const GATEWAY_SEED: [u8; 32] = [0x6c; 32];

/// LDK's log output of the bench's own graph: dropped.
pub struct QuietLogger;

impl Logger for QuietLogger {
    fn log(&self, _record: Record) {}
}

/// The bench's network graph.
pub type BenchGraph = NetworkGraph<Arc<QuietLogger>>;

/// The size of the graph to make.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Shape {
    /// Nodes (the gateway not counted).
    pub nodes: u32,
    /// Channels (the gateway's not counted).
    pub channels: u32,
}

/// One channel's funding output.
#[derive(Clone, Debug)]
pub struct Funding {
    /// The channel's short channel id.
    pub scid: u64,
    /// Its capacity.
    pub value: u64,
    /// The P2WSH 2-of-2 of its bitcoin keys.
    pub script: ScriptBuf,
}

/// The generated graph.
pub struct Graph {
    /// The seed it was made from.
    pub seed: u64,
    /// Its size.
    pub shape: Shape,
    /// The hour its timestamps lead up to.
    pub base_time: u32,
    /// The graph with every announcement and the latest update of each channel direction.
    pub graph: BenchGraph,
    /// The next day's updates (two per channel direction), oldest first.
    pub day: Vec<ChannelUpdate>,
    /// The funding outputs, in the order they are mined.
    pub funding: Vec<Funding>,
}

/// A secret key derived from the seed, for `kind` and `index`.
fn derived_key(seed: u64, kind: &str, index: u64) -> SecretKey {
    let mut data = seed.to_le_bytes().to_vec();
    data.extend_from_slice(kind.as_bytes());
    data.extend_from_slice(&index.to_le_bytes());
    SecretKey::from_slice(sha256::Hash::hash(&data).as_byte_array()).expect("a valid key")
}

/// The node key of the gateway's daemon (its seed is [`GATEWAY_SEED`]).
pub fn gateway_key() -> SecretKey {
    lightning::sign::KeysManager::new(&GATEWAY_SEED, 0, 0, true).get_node_secret_key()
}

/// The node key of generated node `index` (the gateway is `shape.nodes`).
pub fn node_key(seed: u64, shape: Shape, index: u32) -> SecretKey {
    if index == shape.nodes {
        gateway_key()
    } else {
        derived_key(seed, "node", u64::from(index))
    }
}

/// The node features a current LDK node announces.
pub fn node_features() -> NodeFeatures {
    let mut features = NodeFeatures::empty();
    features.set_data_loss_protect_required();
    features.set_upfront_shutdown_script_optional();
    features.set_gossip_queries_optional();
    features.set_variable_length_onion_required();
    features.set_static_remote_key_required();
    features.set_payment_secret_required();
    features.set_basic_mpp_optional();
    features.set_wumbo_optional();
    features.set_shutdown_any_segwit_optional();
    features.set_channel_type_optional();
    features.set_scid_privacy_optional();
    features.set_zero_conf_optional();
    features
}

fn sign(
    secp: &Secp256k1<bitcoin::secp256k1::All>,
    bytes: &[u8],
    key: &SecretKey,
) -> bitcoin::secp256k1::ecdsa::Signature {
    let digest = sha256d::Hash::hash(bytes);
    secp.sign_ecdsa(&Message::from_digest(digest.to_byte_array()), key)
}

/// A sampler of node indices in proportion to their weights.
struct Weights {
    cumulative: Vec<f64>,
}

impl Weights {
    fn new(nodes: u32) -> Self {
        let mut total = 0.0;
        let cumulative = (0..nodes)
            .map(|i| {
                total += f64::from(i + 1).powf(-DEGREE_EXPONENT);
                total
            })
            .collect();
        Weights { cumulative }
    }

    /// A node among the first `below`, by weight.
    fn sample(&self, rng: &mut ChaCha8Rng, below: usize) -> u32 {
        let point = rng.gen::<f64>() * self.cumulative[below - 1];
        self.cumulative[..below].partition_point(|c| *c < point) as u32
    }
}

/// The graph's channels as pairs of node indices: each node after the first joins one earlier
/// node (so the graph is connected), the rest join two nodes drawn by weight; the gateway's
/// channels come last.
fn channel_ends(rng: &mut ChaCha8Rng, shape: Shape) -> Vec<(u32, u32)> {
    let weights = Weights::new(shape.nodes);
    let mut ends = Vec::with_capacity(shape.channels as usize + GATEWAY_CHANNELS);
    for node in 1..shape.nodes {
        if ends.len() == shape.channels as usize {
            break;
        }
        ends.push((node, weights.sample(rng, node as usize)));
    }
    while ends.len() < shape.channels as usize {
        let a = weights.sample(rng, shape.nodes as usize);
        let b = weights.sample(rng, shape.nodes as usize);
        if a != b {
            ends.push((a, b));
        }
    }
    for hub in 0..GATEWAY_CHANNELS as u32 {
        ends.push((shape.nodes, hub));
    }
    ends
}

/// The short channel id of the `index`-th funding output.
fn scid_of(index: usize) -> u64 {
    let tx = index / OUTPUTS_PER_TX;
    let block = FUNDING_HEIGHT as usize + tx / TXS_PER_BLOCK;
    let tx_index = 1 + tx % TXS_PER_BLOCK;
    scid_from_parts(
        block as u64,
        tx_index as u64,
        (index % OUTPUTS_PER_TX) as u64,
    )
    .expect("a valid short channel id")
}

/// A channel's capacity: log-uniform between 20,000 sat and 20,000,000 sat.
fn capacity(rng: &mut ChaCha8Rng) -> u64 {
    let exponent = rng.gen_range(0.0..3.0);
    (20_000.0 * 10f64.powf(exponent)) as u64
}

/// Addresses a public node announces: most an IPv4 address (documentation ranges), many an
/// onion service too, some only an onion service.
fn addresses(rng: &mut ChaCha8Rng) -> Vec<SocketAddress> {
    let ipv4 = SocketAddress::TcpIpV4 {
        addr: [198, 51, 100, rng.gen()],
        port: 9735,
    };
    let onion = SocketAddress::OnionV3 {
        ed25519_pubkey: rng.gen(),
        checksum: rng.gen(),
        version: 3,
        port: 9735,
    };
    match rng.gen_range(0..10) {
        0..=4 => vec![ipv4],
        5..=7 => vec![ipv4, onion],
        _ => vec![onion],
    }
}

impl Graph {
    /// The graph of `seed` and `shape`: from the cache when it holds it, made (and cached)
    /// otherwise.
    pub fn load_or_make(seed: u64, shape: Shape) -> Graph {
        let path = cache_path(seed);
        let now = now_secs();
        if let Some(graph) = Graph::read(&path, seed, shape) {
            if graph.base_time + CACHE_MAX_AGE_SECS > now {
                return graph;
            }
        }
        let graph = Graph::make(seed, shape, now / 3600 * 3600);
        graph.write(&path);
        graph
    }

    /// Makes the graph of `seed` and `shape` whose timestamps lead up to `base_time`.
    pub fn make(seed: u64, shape: Shape, base_time: u32) -> Graph {
        let secp = Secp256k1::new();
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let chain_hash = ChainHash::using_genesis_block(Network::Regtest);
        let node_count = shape.nodes + 1;
        let node_keys: Vec<SecretKey> = (0..node_count).map(|i| node_key(seed, shape, i)).collect();
        let node_ids: Vec<NodeId> = node_keys
            .iter()
            .map(|key| NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, key)))
            .collect();
        let graph = NetworkGraph::new(Network::Regtest, Arc::new(QuietLogger));
        let ends = channel_ends(&mut rng, shape);
        let mut funding = Vec::with_capacity(ends.len());
        let mut day = Vec::with_capacity(ends.len() * 4);
        for (index, (a, b)) in ends.iter().enumerate() {
            let (one, two) = if node_ids[*a as usize] < node_ids[*b as usize] {
                (*a as usize, *b as usize)
            } else {
                (*b as usize, *a as usize)
            };
            let bitcoin_1 = derived_key(seed, "bitcoin", 2 * index as u64);
            let bitcoin_2 = derived_key(seed, "bitcoin", 2 * index as u64 + 1);
            let (bitcoin_pub_1, bitcoin_pub_2) = (
                PublicKey::from_secret_key(&secp, &bitcoin_1),
                PublicKey::from_secret_key(&secp, &bitcoin_2),
            );
            let scid = scid_of(index);
            let value = capacity(&mut rng);
            let redeem = make_funding_redeemscript(&bitcoin_pub_1, &bitcoin_pub_2);
            funding.push(Funding {
                scid,
                value,
                script: redeem.to_p2wsh(),
            });
            let contents = UnsignedChannelAnnouncement {
                features: ChannelFeatures::empty(),
                chain_hash,
                short_channel_id: scid,
                node_id_1: node_ids[one],
                node_id_2: node_ids[two],
                bitcoin_key_1: NodeId::from_pubkey(&bitcoin_pub_1),
                bitcoin_key_2: NodeId::from_pubkey(&bitcoin_pub_2),
                excess_data: Vec::new(),
            };
            let bytes = contents.encode();
            let announcement = ChannelAnnouncement {
                node_signature_1: sign(&secp, &bytes, &node_keys[one]),
                node_signature_2: sign(&secp, &bytes, &node_keys[two]),
                bitcoin_signature_1: sign(&secp, &bytes, &bitcoin_1),
                bitcoin_signature_2: sign(&secp, &bytes, &bitcoin_2),
                contents,
            };
            graph
                .update_channel_from_announcement_no_lookup(&announcement)
                .expect("the graph takes the announcement");
            for (direction, signer) in [(0u8, one), (1u8, two)] {
                let policy = UnsignedChannelUpdate {
                    chain_hash,
                    short_channel_id: scid,
                    timestamp: base_time - 2 * DAY_SECS + rng.gen_range(0..DAY_SECS),
                    message_flags: 1,
                    channel_flags: direction,
                    cltv_expiry_delta: [40, 80, 144][rng.gen_range(0..3)],
                    htlc_minimum_msat: 1_000,
                    htlc_maximum_msat: value * 990,
                    fee_base_msat: rng.gen_range(0..1_000),
                    fee_proportional_millionths: rng.gen_range(1..1_000),
                    excess_data: Vec::new(),
                };
                let update = |contents: UnsignedChannelUpdate| ChannelUpdate {
                    signature: sign(&secp, &contents.encode(), &node_keys[signer]),
                    contents,
                };
                graph
                    .update_channel(&update(policy.clone()))
                    .expect("the graph takes the update");
                // The day's two updates: a fee change in each half of the day.
                for half in 0..2 {
                    let mut next = policy.clone();
                    next.timestamp =
                        base_time - DAY_SECS + half * DAY_SECS / 2 + rng.gen_range(0..DAY_SECS / 2);
                    next.fee_proportional_millionths = rng.gen_range(1..1_000);
                    day.push(update(next));
                }
            }
        }
        for (index, key) in node_keys.iter().enumerate() {
            let mut alias = [0u8; 32];
            let name = format!("bench-node-{index}");
            alias[..name.len()].copy_from_slice(name.as_bytes());
            let contents = UnsignedNodeAnnouncement {
                features: node_features(),
                timestamp: base_time - rng.gen_range(0..2 * DAY_SECS),
                node_id: node_ids[index],
                rgb: rng.gen(),
                alias: NodeAlias(alias),
                addresses: addresses(&mut rng),
                excess_address_data: Vec::new(),
                excess_data: Vec::new(),
            };
            let announcement = NodeAnnouncement {
                signature: sign(&secp, &contents.encode(), key),
                contents,
            };
            graph
                .update_node_from_announcement(&announcement)
                .expect("the graph takes the node announcement");
        }
        day.sort_by_key(|update| update.contents.timestamp);
        Graph {
            seed,
            shape,
            base_time,
            graph,
            day,
            funding,
        }
    }

    /// The node id of generated node `index` (the gateway is `shape.nodes`).
    pub fn node_id(&self, index: u32) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::new(), &node_key(self.seed, self.shape, index))
    }

    /// Channels in the graph, the gateway's included.
    pub fn channel_count(&self) -> usize {
        self.funding.len()
    }

    /// Mines the funding outputs of every channel into `peer`, whose tip must be at
    /// [`FUNDING_HEIGHT`] − 2: a block with a faucet payment fanned out to one coin per
    /// funding transaction, then the funding transactions, [`TXS_PER_BLOCK`] to a block.
    pub fn mine_funding(&self, peer: &RegtestPeer) {
        assert_eq!(
            peer.tip().0,
            FUNDING_HEIGHT - 2,
            "the funding blocks must start at height {FUNDING_HEIGHT}"
        );
        let miner = peer.faucet_script();
        let chunks: Vec<&[Funding]> = self.funding.chunks(OUTPUTS_PER_TX).collect();
        let needs: Vec<u64> = chunks
            .iter()
            .map(|chunk| chunk.iter().map(|f| f.value).sum::<u64>() + FUNDING_TX_FEE)
            .collect();
        let total: u64 = needs.iter().sum::<u64>() + FUNDING_TX_FEE;
        let paid = peer
            .fund(
                &anyone_script(),
                Amount::from_sat(total),
                FeeRate::from_sat_per_vb(2).expect("a fee rate"),
            )
            .expect("the faucet pays for every channel");
        let fan_out = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![anyone_input(OutPoint::new(paid.compute_txid(), 0))],
            output: needs
                .iter()
                .map(|need| TxOut {
                    value: Amount::from_sat(*need),
                    script_pubkey: anyone_script(),
                })
                .collect(),
        };
        let fan_txid = fan_out.compute_txid();
        peer.mine_with(vec![paid, fan_out], &miner)
            .expect("the fan-out is mined");
        let funding_txs: Vec<Transaction> = chunks
            .iter()
            .enumerate()
            .map(|(n, chunk)| Transaction {
                version: Version::TWO,
                lock_time: LockTime::ZERO,
                input: vec![anyone_input(OutPoint::new(fan_txid, n as u32))],
                output: chunk
                    .iter()
                    .map(|f| TxOut {
                        value: Amount::from_sat(f.value),
                        script_pubkey: f.script.clone(),
                    })
                    .collect(),
            })
            .collect();
        for block in funding_txs.chunks(TXS_PER_BLOCK) {
            peer.mine_with(block.to_vec(), &miner)
                .expect("the funding transactions are mined");
        }
        // The short channel ids point at the funding outputs.
        for (index, f) in self.funding.iter().enumerate().step_by(997) {
            let (height, tx_index, vout) = (
                (f.scid >> 40) as u32,
                ((f.scid >> 16) & 0xff_ffff) as usize,
                (f.scid & 0xffff) as usize,
            );
            let block = peer.block_at(height).expect("a funding block");
            assert_eq!(
                block.txdata[tx_index].output[vout].script_pubkey, f.script,
                "funding output of channel {index}"
            );
        }
    }

    fn write(&self, path: &PathBuf) {
        let mut out = Vec::new();
        out.extend_from_slice(b"LFGG");
        out.extend_from_slice(&CACHE_VERSION.to_le_bytes());
        out.extend_from_slice(&self.seed.to_le_bytes());
        out.extend_from_slice(&self.shape.nodes.to_le_bytes());
        out.extend_from_slice(&self.shape.channels.to_le_bytes());
        out.extend_from_slice(&self.base_time.to_le_bytes());
        let graph = self.graph.encode();
        out.extend_from_slice(&(graph.len() as u64).to_le_bytes());
        out.extend_from_slice(&graph);
        out.extend_from_slice(&(self.day.len() as u32).to_le_bytes());
        for update in &self.day {
            let bytes = update.encode();
            out.extend_from_slice(&(bytes.len() as u16).to_le_bytes());
            out.extend_from_slice(&bytes);
        }
        out.extend_from_slice(&(self.funding.len() as u32).to_le_bytes());
        for f in &self.funding {
            out.extend_from_slice(&f.scid.to_le_bytes());
            out.extend_from_slice(&f.value.to_le_bytes());
            out.push(f.script.len() as u8);
            out.extend_from_slice(f.script.as_bytes());
        }
        let partial = path.with_extension("partial");
        std::fs::write(&partial, &out).expect("write the graph cache");
        std::fs::rename(&partial, path).expect("put the graph cache in place");
    }

    fn read(path: &PathBuf, seed: u64, shape: Shape) -> Option<Graph> {
        let bytes = std::fs::read(path).ok()?;
        let mut reader = Reader(&bytes[..]);
        if reader.take(4)? != b"LFGG"
            || reader.u32()? != CACHE_VERSION
            || reader.u64()? != seed
            || reader.u32()? != shape.nodes
            || reader.u32()? != shape.channels
        {
            return None;
        }
        let base_time = reader.u32()?;
        let graph_len = reader.u64()? as usize;
        let mut graph_bytes = reader.take(graph_len)?;
        let graph = BenchGraph::read(&mut graph_bytes, Arc::new(QuietLogger)).ok()?;
        let day = (0..reader.u32()?)
            .map(|_| {
                let len = reader.u16()? as usize;
                let mut message = reader.take(len)?;
                ChannelUpdate::read_from_fixed_length_buffer(&mut message).ok()
            })
            .collect::<Option<Vec<_>>>()?;
        let funding = (0..reader.u32()?)
            .map(|_| {
                let scid = reader.u64()?;
                let value = reader.u64()?;
                let len = reader.take(1)?[0] as usize;
                let script = ScriptBuf::from_bytes(reader.take(len)?.to_vec());
                Some(Funding {
                    scid,
                    value,
                    script,
                })
            })
            .collect::<Option<Vec<_>>>()?;
        Some(Graph {
            seed,
            shape,
            base_time,
            graph,
            day,
            funding,
        })
    }
}

/// Reads the cache's fields in order.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        if self.0.len() < n {
            return None;
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Some(head)
    }
    fn u16(&mut self) -> Option<u16> {
        Some(u16::from_le_bytes(self.take(2)?.try_into().ok()?))
    }
    fn u32(&mut self) -> Option<u32> {
        Some(u32::from_le_bytes(self.take(4)?.try_into().ok()?))
    }
    fn u64(&mut self) -> Option<u64> {
        Some(u64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }
}

/// Where the graph of `seed` is cached: the target directory (never in git).
fn cache_path(seed: u64) -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target"));
    std::fs::create_dir_all(&target).expect("the target directory");
    target.join(format!("gossip-graph-{seed}.bin"))
}

fn now_secs() -> u32 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970")
        .as_secs() as u32
}

/// `OP_TRUE`, the witness script of the coins that pay for the funding transactions.
fn anyone_witness_script() -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_opcode(bitcoin::opcodes::OP_TRUE)
        .into_script()
}

fn anyone_script() -> ScriptBuf {
    ScriptBuf::new_p2wsh(&anyone_witness_script().wscript_hash())
}

fn anyone_input(previous_output: OutPoint) -> TxIn {
    let mut witness = Witness::new();
    witness.push(anyone_witness_script().as_bytes());
    TxIn {
        previous_output,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness,
    }
}

//! Snapshots the node's operations return: plain data, ready to print or serialise.

use bitcoin::secp256k1::PublicKey;
use bitcoin::{BlockHash, Network, OutPoint, Txid};

/// How far the chain sync has come.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct SyncProgress {
    /// Tip of the header chain.
    pub headers_height: u32,
    /// Highest block whose compact filter, and every one below it, is verified.
    pub filters_height: u32,
    /// Block the wallet and channel state stand on.
    pub listeners_height: u32,
    /// How much of the current phase is done, 0.0 to 1.0; 1.0 only once synced.
    pub progress: f64,
    /// Payload bytes of headers, filter headers, filters and blocks received from Bitcoin
    /// peers since the daemon started.
    pub bytes_received: u64,
    /// Of those, the bytes of decoy blocks: blocks fetched beside the ones the wallet needs so
    /// that no peer can tell which those are.
    pub decoy_bytes: u64,
    /// What the sync is doing: headers only, filters, or the wallet and channel state.
    pub phase: crate::chain::SyncPhase,
    /// The height from which compact filters are checked; `None` while the first sync of a
    /// new chain syncs headers only.
    pub filters_from: Option<u32>,
}

/// What `getinfo` shows.
#[derive(Debug, Clone, PartialEq)]
pub struct NodeInfo {
    /// The node's public key.
    pub node_id: PublicKey,
    /// The Bitcoin network.
    pub network: Network,
    /// Height the node's listeners are synced to.
    pub block_height: u32,
    /// Hash of that block.
    pub block_hash: BlockHash,
    /// Whether headers, filters and listeners are all at the chain tip.
    pub synced: bool,
    /// Tip of the header chain.
    pub header_height: u32,
    /// Highest block whose compact filter is verified.
    pub filter_height: u32,
    /// Connected Bitcoin peers.
    pub num_bitcoin_peers: usize,
    /// Connected Lightning peers.
    pub num_peers: usize,
    /// Channels, in any state.
    pub num_channels: usize,
    /// Channels ready to send and receive.
    pub num_usable_channels: usize,
    /// The Lightning listen addresses.
    pub listen_addresses: Vec<String>,
    /// The node's alias.
    pub alias: String,
    /// The data directory in use.
    pub data_dir: std::path::PathBuf,
    /// Nodes in the gossiped network graph.
    pub graph_nodes: usize,
    /// Channels in the gossiped network graph.
    pub graph_channels: usize,
    /// Whether the node is still starting (syncing the chain before its wallet and channel
    /// state are built; other operations are refused until then).
    pub starting: bool,
    /// How far the chain sync has come.
    pub sync: SyncProgress,
    /// The live mirror of the channel state.
    pub backup: crate::node::BackupStatus,
    /// Where the channel state and the wallet are kept, and this process's role there.
    pub store: crate::node::StoreInfo,
}

/// On-chain and Lightning balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Balances {
    /// Confirmed, spendable on-chain coins.
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed on-chain coins (own change and incoming).
    pub onchain_pending_sat: u64,
    /// Coinbase outputs not yet mature.
    pub onchain_immature_sat: u64,
    /// Our balance in open channels (HTLCs in flight excluded, before the commitment fee a
    /// unilateral close would cost the opener).
    pub lightning_sat: u64,
    /// The same in msat (whole satoshis).
    pub lightning_msat: u64,
    /// Funds of closed channels on their way back to the wallet, as the channel monitors
    /// count them (until the output is ours to spend).
    pub claimable_onchain_sat: u64,
    /// Outputs of closed channels that are ours to spend and that the sweeper is moving into
    /// the wallet, until its sweeping transaction confirms.
    pub sweeping_sat: u64,
    /// Confirmed on-chain funds kept to pay the fees of anchor channels' closing transactions
    /// ([`Node::anchor_reserve_sat`](crate::node::Node::anchor_reserve_sat)): sends leave them.
    pub anchor_reserve_sat: u64,
}

/// An unspent wallet output.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UtxoInfo {
    /// Where it is.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount_sat: u64,
    /// The address it pays.
    pub address: String,
    /// Height that confirmed it.
    pub confirmation_height: Option<u32>,
    /// Whether it can be spent now.
    pub spendable: bool,
}

/// A Lightning peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerInfo {
    /// Its public key.
    pub node_id: PublicKey,
    /// The address we know it by, if any.
    pub address: Option<String>,
    /// Whether it is connected now.
    pub connected: bool,
    /// Whether the connection was opened by the peer.
    pub inbound: bool,
}

/// A channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelInfo {
    /// The channel id (hex).
    pub channel_id: String,
    /// The counterparty.
    pub counterparty_node_id: PublicKey,
    /// Total capacity.
    pub capacity_sat: u64,
    /// Our balance (whole satoshis, HTLCs in flight excluded, before the commitment fee a
    /// unilateral close would cost the opener).
    pub local_balance_msat: u64,
    /// What we can send now.
    pub outbound_capacity_msat: u64,
    /// What we can receive now.
    pub inbound_capacity_msat: u64,
    /// Funding confirmed and channel_ready exchanged.
    pub ready: bool,
    /// Ready and the peer is connected.
    pub usable: bool,
    /// Announced to the network.
    pub public: bool,
    /// We opened it.
    pub outbound: bool,
    /// An anchor channel (fees set at closing time, bumped from the wallet).
    pub anchors: bool,
    /// The funding transaction.
    pub funding_txid: Option<Txid>,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// The short channel id, once the funding is confirmed.
    pub short_channel_id: Option<u64>,
    /// Why the channel is held, if it is: its state is not proved current, so the node does
    /// not broadcast its commitment until the peer has reestablished it or closed it.
    pub held: Option<String>,
}

/// A channel named by its channel id or its short channel id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelRef {
    /// The channel id.
    Id([u8; 32]),
    /// The short channel id (block, transaction index and output packed as BOLT 7 does).
    Short(u64),
}

impl std::fmt::Display for ChannelRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ChannelRef::Id(id) => {
                use bitcoin::hex::DisplayHex;
                write!(f, "{}", id.to_lower_hex_string())
            }
            ChannelRef::Short(scid) => write!(
                f,
                "{}x{}x{}",
                scid >> 40,
                (scid >> 16) & 0xff_ffff,
                scid & 0xffff
            ),
        }
    }
}

/// A channel's forwarding policy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ChannelPolicy {
    /// Base fee per forwarded payment.
    pub base_fee_msat: u32,
    /// Proportional fee, in millionths of the amount.
    pub fee_ppm: u32,
    /// CLTV expiry delta asked of payments forwarded over it.
    pub cltv_expiry_delta: u16,
}

/// A transaction of the on-chain wallet.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TransactionInfo {
    /// Its id.
    pub txid: Txid,
    /// What it paid to the wallet.
    pub received_sat: u64,
    /// What it spent from the wallet.
    pub sent_sat: u64,
    /// Received minus sent.
    pub net_sat: i64,
    /// The fee, when the wallet knows every input's value.
    pub fee_sat: Option<u64>,
    /// Height that confirmed it.
    pub confirmation_height: Option<u32>,
    /// Confirmations (0 while unconfirmed).
    pub confirmations: u32,
}

/// A forwarded payment, as the node stores it (JSON, one record per forward).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ForwardInfo {
    /// The channel it came in on (hex).
    pub prev_channel_id: Option<String>,
    /// The channel it went out on (hex).
    pub next_channel_id: Option<String>,
    /// The node it came from.
    pub prev_node_id: Option<String>,
    /// The node it went to.
    pub next_node_id: Option<String>,
    /// What was forwarded out.
    pub amount_msat: Option<u64>,
    /// The fee earned.
    pub fee_msat: Option<u64>,
    /// Whether the incoming HTLC was claimed on chain.
    pub claimed_on_chain: bool,
    /// Unix seconds when it was recorded.
    pub at: u64,
}

/// The node's fee estimates and what shaped them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FeeRatesInfo {
    /// Per target: name, estimate in sat/kw, source name.
    pub estimates: Vec<(&'static str, u32, &'static str)>,
    /// Heights of the blocks sampled.
    pub sampled_heights: Vec<u32>,
    /// The highest minimum the connected Bitcoin peers announce (feefilter), in sat/kw, as
    /// asked of them now; `None` while unknown.
    pub peer_minimum_sat_per_kw: Option<u64>,
    /// The floor it sets for the node's own transactions, in sat/kw.
    pub peer_floor_sat_per_kw: u32,
}

/// Which way a payment went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentDirection {
    /// We received it.
    Inbound,
    /// We sent it.
    Outbound,
}

impl PaymentDirection {
    /// `inbound` or `outbound`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentDirection::Inbound => "inbound",
            PaymentDirection::Outbound => "outbound",
        }
    }
}

/// Where a payment stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaymentStatus {
    /// Still in flight (or awaiting payment, for an invoice).
    Pending,
    /// Completed.
    Succeeded,
    /// Failed for good.
    Failed,
}

impl PaymentStatus {
    /// `pending`, `succeeded` or `failed`.
    pub fn as_str(&self) -> &'static str {
        match self {
            PaymentStatus::Pending => "pending",
            PaymentStatus::Succeeded => "succeeded",
            PaymentStatus::Failed => "failed",
        }
    }
}

/// A payment, sent or received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PaymentInfo {
    /// The payment hash (hex).
    pub payment_hash: String,
    /// Which way.
    pub direction: PaymentDirection,
    /// Amount (for outbound: what the recipient gets), if known.
    pub amount_msat: Option<u64>,
    /// For inbound payments: what has arrived so far (held, being claimed, or claimed).
    pub received_msat: Option<u64>,
    /// Routing fee paid (outbound, once succeeded).
    pub fee_msat: Option<u64>,
    /// Where it stands.
    pub status: PaymentStatus,
    /// The preimage (hex), once known.
    pub preimage: Option<String>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Unix time it was created.
    pub created_at: u64,
    /// Unix time it last changed.
    pub updated_at: u64,
}

/// A freshly created invoice.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvoiceInfo {
    /// The BOLT11 invoice.
    pub bolt11: String,
    /// Its payment hash (hex).
    pub payment_hash: String,
    /// Unix time it expires.
    pub expires_at: u64,
}

/// A channel just opened (funding broadcast, waiting for confirmations).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenedChannel {
    /// The channel id (hex) to use with `closechannel`.
    pub channel_id: String,
    /// The funding transaction.
    pub funding_txid: Txid,
}

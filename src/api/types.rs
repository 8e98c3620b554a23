//! The control API's methods and their request and response bodies, shared by the server and
//! the client. Field names are part of the command-line contract: extend, don't rename.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// One API method: `POST /v1/<NAME>` with a JSON [`Method::Request`], answered with a JSON
/// [`Method::Response`].
pub trait Method {
    /// The route name (also the CLI command name).
    const NAME: &'static str;
    /// The request body.
    type Request: Serialize + DeserializeOwned + Send + 'static;
    /// The response body on success.
    type Response: Serialize + DeserializeOwned + Send + 'static;
}

/// The body of a request or response that carries nothing.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Empty {}

/// The error body: `{"error": {"code": …, "message": …}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    /// The error.
    pub error: ErrorDetail,
}

/// A stable code and a human message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorDetail {
    /// Machine-readable code, e.g. `unknown_channel`.
    pub code: String,
    /// What went wrong, for people.
    pub message: String,
}

/// `getinfo`'s `backup` object: the live mirror of the channel state.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct BackupEntry {
    /// The backup directory, if one is configured.
    pub dir: Option<String>,
    /// `off` (none configured), `starting`, `ok` (the last write reached it) or `failing`
    /// (the last write to it failed, and so did the operation that made it).
    pub state: String,
    /// What the last failed write to the mirror was, while it is failing.
    pub last_error: Option<String>,
}

/// `getinfo`'s `store` object: where the channel state and the wallet are kept.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct StoreEntry {
    /// `files` (the data directory) or `postgresql`.
    pub kind: String,
    /// The directory, or the server and database (without the password).
    pub location: String,
    /// `writer`; with PostgreSQL also `connecting`, `standby` (waiting to become the writer)
    /// or `lost` (the session ended: nothing more is written, the daemon stops).
    pub role: String,
    /// On a standby: who holds the node's writer lock.
    pub waiting_for: Option<String>,
    /// The PostgreSQL writer's fencing epoch.
    pub epoch: Option<i64>,
    /// Why the PostgreSQL session was lost.
    pub lost: Option<String>,
}

/// `getinfo`'s `sync` object: how far the chain sync has come.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SyncEntry {
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
    #[serde(default)]
    pub decoy_bytes: u64,
    /// What the sync is doing: `headers` (a new chain syncs headers only, up to the tip or
    /// the wallet birthday), `filters` (compact filters up to the header tip), `listeners`
    /// (the wallet and channel state catch up) or `synced`.
    #[serde(default)]
    pub phase: String,
    /// The height from which compact filters are checked; absent during the header phase.
    #[serde(default)]
    pub filters_from: Option<u32>,
}

/// `POST /v1/prove`, the one request answered without the token: the daemon proves that it
/// holds the token in `api.cookie` without either side sending it, so a client can make sure
/// it reached the daemon of its data directory before it sends the token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProveRequest {
    /// 32 random bytes drawn by the client, as 64 hex digits.
    pub nonce: String,
}

/// The answer to [`ProveRequest`].
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProveResponse {
    /// HMAC-SHA256 keyed with the token's text over `lightfilter control API proof v1`
    /// followed by the nonce's bytes, as 64 hex digits.
    pub proof: String,
}

/// `getinfo`: node, chain and channel summary.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InfoResponse {
    /// The node's public key (hex).
    pub node_id: String,
    /// `regtest`, `signet`, `testnet`, `testnet4` or `bitcoin`.
    pub network: String,
    /// Height the node's listeners are synced to.
    pub block_height: u32,
    /// Hash of that block.
    pub block_hash: String,
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
    /// Lightning listen addresses.
    pub listen_addresses: Vec<String>,
    /// The node's alias.
    pub alias: String,
    /// `starting` while the chain syncs before the wallet and channel state are built (only
    /// `getinfo` and `stop` are served then), `running` after; `standby` while the daemon
    /// waits to become the writer of the node's PostgreSQL store.
    pub state: String,
    /// How far the chain sync has come.
    pub sync: SyncEntry,
    /// The data directory in use.
    #[serde(default)]
    pub data_dir: String,
    /// Nodes in the network graph learnt from gossip.
    #[serde(default)]
    pub graph_nodes: usize,
    /// Channels in the network graph learnt from gossip.
    #[serde(default)]
    pub graph_channels: usize,
    /// The live mirror of the channel state.
    #[serde(default)]
    pub backup: BackupEntry,
    /// Where the channel state and the wallet are kept.
    #[serde(default)]
    pub store: StoreEntry,
}

/// `newaddress`: a fresh on-chain receive address.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AddressResponse {
    /// The address.
    pub address: String,
}

/// `balance`: on-chain and Lightning balances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BalanceResponse {
    /// Confirmed, spendable on-chain coins.
    pub onchain_confirmed_sat: u64,
    /// Unconfirmed on-chain coins.
    pub onchain_pending_sat: u64,
    /// Coinbase outputs not yet mature.
    pub onchain_immature_sat: u64,
    /// Our balance in channels, rounded down to whole satoshis.
    pub lightning_sat: u64,
    /// Our balance in channels.
    pub lightning_msat: u64,
    /// Funds of closed channels on their way back to the wallet.
    pub claimable_onchain_sat: u64,
    /// Outputs of closed channels being swept into the wallet, until the sweep confirms.
    #[serde(default)]
    pub sweeping_sat: u64,
    /// Confirmed on-chain funds kept to pay the fees of anchor channels' closing
    /// transactions: 25,000 sat per open anchor channel (and per closed one whose claims are
    /// not settled); `send` and `bumpfee` leave them unless forced.
    #[serde(default)]
    pub anchor_reserve_sat: u64,
}

/// How much `send` sends: `{"sat": N}` or `"all"`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SendAmountSpec {
    /// Exactly this many satoshis; the fee comes on top.
    Sat(u64),
    /// Everything confirmed and spendable, minus the fee.
    All,
}

/// `send` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SendRequest {
    /// Destination address (must be for the node's network).
    pub address: String,
    /// How much.
    pub amount: SendAmountSpec,
    /// Fee rate in sat per 1000 weight units (1 sat/vB = 250); the estimator's when absent.
    #[serde(default)]
    pub fee_rate_sat_per_kwu: Option<u64>,
    /// Fee rate with its unit, as the CLI takes it (`5sat/vb`, `1250sat/kw`); instead of
    /// `fee_rate_sat_per_kwu`.
    #[serde(default)]
    pub fee_rate: Option<String>,
    /// Send even if the fee rate is below what the Bitcoin peers accept, or if the send
    /// spends the anchor reserve (with a warning).
    #[serde(default)]
    pub force: bool,
}

/// `send` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SendResponse {
    /// The broadcast transaction.
    pub txid: String,
    /// What it pays to the address (for `all`: everything but the fee and the anchor
    /// reserve).
    #[serde(default)]
    pub amount_sat: u64,
    /// How much of the anchor reserve the wallet still holds once it confirms (for `all`
    /// without `force`: the whole reserve, on a change address).
    #[serde(default)]
    pub reserve_kept_sat: u64,
    /// Said when the send spends the anchor reserve (`force`).
    #[serde(default)]
    pub warning: Option<String>,
    /// Whether a Bitcoin peer took it within a short wait (the node keeps offering it either
    /// way).
    pub propagated: bool,
    /// What happened, as a sentence.
    pub propagation: String,
}

/// An unspent wallet output (`utxos` returns a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UtxoEntry {
    /// `txid:vout`.
    pub outpoint: String,
    /// Its value.
    pub amount_sat: u64,
    /// The address it pays.
    pub address: String,
    /// Height that confirmed it, if confirmed.
    pub confirmation_height: Option<u32>,
    /// Whether it can be spent now.
    pub spendable: bool,
}

/// `connect` request (and response: the peer connected to).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConnectRequest {
    /// The peer's public key (hex).
    pub node_id: String,
    /// `host:port`.
    pub address: String,
}

/// `disconnect` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DisconnectRequest {
    /// The peer's public key (hex).
    pub node_id: String,
}

/// A Lightning peer (`peers` returns a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PeerEntry {
    /// Its public key.
    pub node_id: String,
    /// The address we know it by, if any.
    pub address: Option<String>,
    /// Whether it is connected now.
    pub connected: bool,
    /// Whether the connection was opened by the peer.
    pub inbound: bool,
}

/// `openchannel` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpenChannelRequest {
    /// The peer's public key (hex).
    pub node_id: String,
    /// `host:port`.
    pub address: String,
    /// Channel capacity.
    pub amount_sat: u64,
    /// Given to the peer at opening.
    #[serde(default)]
    pub push_msat: u64,
    /// Announce the channel to the network.
    #[serde(default)]
    pub public: bool,
    /// Open even if the funding's fee rate is below what the Bitcoin peers accept.
    #[serde(default)]
    pub force: bool,
}

/// `openchannel` response: funding broadcast, waiting for confirmations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenChannelResponse {
    /// The channel id (hex), for `closechannel`.
    pub channel_id: String,
    /// The funding transaction.
    pub funding_txid: String,
    /// Whether a Bitcoin peer took the funding transaction within a short wait.
    pub propagated: bool,
    /// What happened, as a sentence.
    pub propagation: String,
}

/// `closechannel` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloseChannelResponse {
    /// The channel id.
    pub channel_id: String,
    /// Whether it is closed unilaterally.
    pub force: bool,
    /// The closing transaction, once broadcast within the short wait.
    pub closing_txid: Option<String>,
    /// Whether a Bitcoin peer took the closing transaction within that wait.
    pub propagated: bool,
    /// What happened, as a sentence.
    pub propagation: String,
}

/// `closechannel` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CloseChannelRequest {
    /// The channel id (64 hex digits) or short channel id (`BLOCKxTXxOUTPUT`).
    pub channel_id: String,
    /// Close unilaterally.
    #[serde(default)]
    pub force: bool,
}

/// A channel (`channels` returns a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelEntry {
    /// The channel id (hex).
    pub channel_id: String,
    /// The counterparty.
    pub counterparty_node_id: String,
    /// Total capacity.
    pub capacity_sat: u64,
    /// Our balance.
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
    pub funding_txid: Option<String>,
    /// Confirmations of the funding transaction.
    pub confirmations: Option<u32>,
    /// The short channel id (`BLOCKxTXxOUTPUT`), once the funding is confirmed.
    #[serde(default)]
    pub short_channel_id: Option<String>,
    /// Whether the channel is held: its state is not proved current (restored from a backup,
    /// or its channel manager was older than its monitor), so the node does not broadcast its
    /// commitment until the peer has reestablished it or closed it.
    #[serde(default)]
    pub held: bool,
    /// Why it is held.
    #[serde(default)]
    pub held_reason: Option<String>,
}

/// `invoice` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct InvoiceRequest {
    /// Amount; any amount when absent.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// Description shown to the payer.
    #[serde(default)]
    pub description: String,
    /// Seconds until it expires.
    pub expiry_secs: u32,
}

/// `invoice` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InvoiceResponse {
    /// The BOLT11 invoice.
    pub bolt11: String,
    /// Its payment hash (hex).
    pub payment_hash: String,
    /// Unix time it expires.
    pub expires_at: u64,
}

/// `pay` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PayRequest {
    /// A BOLT11 invoice or a BOLT12 offer.
    pub destination: String,
    /// Amount, for invoices and offers without one.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// Seconds to wait for the outcome before answering `pending`.
    pub timeout_secs: u64,
}

/// `keysend` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct KeysendRequest {
    /// The recipient's public key (hex).
    pub node_id: String,
    /// Amount.
    pub amount_msat: u64,
    /// Seconds to wait for the outcome before answering `pending`.
    pub timeout_secs: u64,
}

/// `payments` request: a page of the payments, oldest first (all of them by default).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PaymentsRequest {
    /// How many of the oldest payments to skip.
    #[serde(default)]
    pub offset: u64,
    /// Most payments to return (at least 1); all when absent.
    #[serde(default)]
    pub limit: Option<u64>,
}

/// A payment, sent or received (`pay` and `keysend` return one, `payments` a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentEntry {
    /// The payment hash (hex).
    pub payment_hash: String,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// Amount (for outbound: what the recipient gets), if known.
    pub amount_msat: Option<u64>,
    /// For inbound payments: what has arrived so far.
    pub received_msat: Option<u64>,
    /// Routing fee paid.
    pub fee_msat: Option<u64>,
    /// `succeeded`, `failed` or `pending`.
    pub status: String,
    /// The preimage (hex), once known.
    pub preimage: Option<String>,
    /// Why it failed, if it did.
    pub failure: Option<String>,
    /// Unix time it was created.
    pub created_at: u64,
    /// Unix time it last changed.
    pub updated_at: u64,
}

/// `offer` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OfferRequest {
    /// Amount; any amount when absent.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// Description shown to the payer.
    #[serde(default)]
    pub description: String,
}

/// `offer` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OfferResponse {
    /// The BOLT12 offer.
    pub offer: String,
}

/// `signmessage` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SignMessageRequest {
    /// The message.
    pub message: String,
}

/// `signmessage` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SignMessageResponse {
    /// The signature (zbase32).
    pub signature: String,
}

/// `verifymessage` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct VerifyMessageRequest {
    /// The message.
    pub message: String,
    /// The signature (zbase32).
    pub signature: String,
    /// The claimed signer (hex public key).
    pub node_id: String,
}

/// `verifymessage` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct VerifyMessageResponse {
    /// Whether the signature is valid for the message and key.
    pub valid: bool,
}

/// `stop` response.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct StopResponse {
    /// Always true: the daemon is stopping.
    pub stopping: bool,
}

/// One confirmation target's estimate (`feerates` lists them).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeRateEntry {
    /// The target's name, as in `fee_overrides`.
    pub target: String,
    /// The estimate, in sat per 1000 weight units.
    pub sat_per_kw: u32,
    /// The same in sat/vB.
    pub sat_per_vb: f64,
    /// Where it comes from: `recent_blocks`, `fallback`, `peer_minimum` or `override`.
    pub source: String,
}

/// `feerates` response.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeeRatesResponse {
    /// Every target's estimate.
    pub estimates: Vec<FeeRateEntry>,
    /// Heights of the blocks whose fees the estimates are computed from.
    pub sampled_blocks: Vec<u32>,
    /// The highest minimum fee rate the Bitcoin peers announce (feefilter), in sat/kw; null
    /// while unknown.
    pub peer_minimum_sat_per_kw: Option<u64>,
    /// The floor that minimum sets for the node's own transactions (with the margin, capped),
    /// in sat/kw.
    pub peer_floor_sat_per_kw: u32,
}

/// An on-chain wallet transaction (`transactions` returns a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TransactionEntry {
    /// Its id.
    pub txid: String,
    /// What it paid to the wallet.
    pub received_sat: u64,
    /// What it spent from the wallet.
    pub sent_sat: u64,
    /// Received minus sent (negative for a send).
    pub net_sat: i64,
    /// The fee, when the wallet knows every input's value.
    pub fee_sat: Option<u64>,
    /// Height that confirmed it.
    pub confirmation_height: Option<u32>,
    /// Confirmations (0 while unconfirmed).
    pub confirmations: u32,
}

/// A forwarded payment (`forwards` returns a list).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardEntry {
    /// The channel it came in on.
    pub prev_channel_id: Option<String>,
    /// The channel it went out on.
    pub next_channel_id: Option<String>,
    /// The node it came from.
    pub prev_node_id: Option<String>,
    /// The node it went to.
    pub next_node_id: Option<String>,
    /// What was forwarded out.
    pub amount_msat: Option<u64>,
    /// The fee earned.
    pub fee_msat: Option<u64>,
    /// Whether the incoming payment was claimed on chain.
    pub claimed_on_chain: bool,
    /// Unix time it was recorded.
    pub at: u64,
}

/// `setchannelfee` request: the fields given change, the others stay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetChannelFeeRequest {
    /// The channel id or short channel id.
    pub channel: String,
    /// Base fee per forwarded payment, in msat.
    #[serde(default)]
    pub base_fee_msat: Option<u32>,
    /// Proportional fee, in millionths of the amount.
    #[serde(default)]
    pub fee_ppm: Option<u32>,
    /// CLTV expiry delta, in blocks.
    #[serde(default)]
    pub cltv_expiry_delta: Option<u16>,
}

/// `setchannelfee` response: the policy now in force.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChannelPolicyResponse {
    /// The channel id.
    pub channel_id: String,
    /// Base fee per forwarded payment, in msat.
    pub base_fee_msat: u32,
    /// Proportional fee, in millionths.
    pub fee_ppm: u32,
    /// CLTV expiry delta, in blocks.
    pub cltv_expiry_delta: u16,
}

/// `bumpfee` request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BumpFeeRequest {
    /// The wallet's unconfirmed transaction to replace.
    pub txid: String,
    /// The replacement's fee rate with its unit (`5sat/vb`, `1250sat/kw`).
    pub fee_rate: String,
    /// Replace even if the new fee rate is below what the Bitcoin peers accept, or if the
    /// replacement spends the anchor reserve (with a warning).
    #[serde(default)]
    pub force: bool,
}

/// `bumpfee` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BumpFeeResponse {
    /// The replacement.
    pub txid: String,
    /// The transaction it replaces.
    pub replaced_txid: String,
    /// Said when the replacement spends the anchor reserve (`force`).
    #[serde(default)]
    pub warning: Option<String>,
    /// Whether a Bitcoin peer took the replacement within a short wait.
    pub propagated: bool,
    /// What happened, as a sentence.
    pub propagation: String,
}

/// `holdinvoice` request: an invoice for a payment hash whose preimage the node is not told.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HoldInvoiceRequest {
    /// The payment hash (64 hex digits).
    pub payment_hash: String,
    /// Amount; any amount when absent.
    #[serde(default)]
    pub amount_msat: Option<u64>,
    /// Description shown to the payer.
    #[serde(default)]
    pub description: String,
    /// Seconds until it expires.
    pub expiry_secs: u32,
}

/// `settleinvoice` request: claim a held payment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SettleInvoiceRequest {
    /// The preimage (64 hex digits).
    pub preimage: String,
}

/// `cancelinvoice` request: fail a held payment back.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CancelInvoiceRequest {
    /// The payment hash (64 hex digits).
    pub payment_hash: String,
}

/// `settleinvoice` and `cancelinvoice` response.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HeldPaymentResponse {
    /// The payment hash.
    pub payment_hash: String,
}

macro_rules! methods {
    ($($(#[$doc:meta])* $marker:ident = $name:literal: $request:ty => $response:ty;)*) => {
        $(
            $(#[$doc])*
            #[derive(Debug, Clone, Copy)]
            pub struct $marker;

            impl Method for $marker {
                const NAME: &'static str = $name;
                type Request = $request;
                type Response = $response;
            }
        )*

        /// Every method name, in the order of the CLI reference.
        pub const METHOD_NAMES: &[&str] = &[$($name),*];
    };
}

methods! {
    /// Node, chain and channel summary.
    GetInfo = "getinfo": Empty => InfoResponse;
    /// A fresh on-chain address.
    NewAddress = "newaddress": Empty => AddressResponse;
    /// On-chain and Lightning balances.
    Balance = "balance": Empty => BalanceResponse;
    /// Send on-chain.
    SendOnchain = "send": SendRequest => SendResponse;
    /// Unspent wallet outputs.
    Utxos = "utxos": Empty => Vec<UtxoEntry>;
    /// Connect to a Lightning peer.
    Connect = "connect": ConnectRequest => ConnectRequest;
    /// Disconnect a Lightning peer.
    Disconnect = "disconnect": DisconnectRequest => DisconnectRequest;
    /// Known and connected Lightning peers.
    Peers = "peers": Empty => Vec<PeerEntry>;
    /// Open a channel.
    OpenChannel = "openchannel": OpenChannelRequest => OpenChannelResponse;
    /// Close a channel.
    CloseChannel = "closechannel": CloseChannelRequest => CloseChannelResponse;
    /// All channels.
    Channels = "channels": Empty => Vec<ChannelEntry>;
    /// Create a BOLT11 invoice.
    CreateInvoice = "invoice": InvoiceRequest => InvoiceResponse;
    /// Pay a BOLT11 invoice or BOLT12 offer.
    Pay = "pay": PayRequest => PaymentEntry;
    /// Send a spontaneous payment.
    Keysend = "keysend": KeysendRequest => PaymentEntry;
    /// Payments sent and received.
    Payments = "payments": PaymentsRequest => Vec<PaymentEntry>;
    /// Create a BOLT12 offer.
    CreateOffer = "offer": OfferRequest => OfferResponse;
    /// Sign a message with the node key.
    SignMessage = "signmessage": SignMessageRequest => SignMessageResponse;
    /// Verify a signed message.
    VerifyMessage = "verifymessage": VerifyMessageRequest => VerifyMessageResponse;
    /// The fee estimates, their sources and the peers' minimum.
    FeeRates = "feerates": Empty => FeeRatesResponse;
    /// On-chain wallet history.
    Transactions = "transactions": Empty => Vec<TransactionEntry>;
    /// Replace an unconfirmed send with a higher fee rate.
    BumpFee = "bumpfee": BumpFeeRequest => BumpFeeResponse;
    /// Forwarded payments.
    Forwards = "forwards": Empty => Vec<ForwardEntry>;
    /// Set a channel's forwarding policy.
    SetChannelFee = "setchannelfee": SetChannelFeeRequest => ChannelPolicyResponse;
    /// Create a hold invoice.
    HoldInvoice = "holdinvoice": HoldInvoiceRequest => InvoiceResponse;
    /// Claim a held payment with its preimage.
    SettleInvoice = "settleinvoice": SettleInvoiceRequest => HeldPaymentResponse;
    /// Fail a held payment back.
    CancelInvoice = "cancelinvoice": CancelInvoiceRequest => HeldPaymentResponse;
    /// Stop the daemon.
    Stop = "stop": Empty => StopResponse;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn send_amounts_have_a_readable_json_form() {
        let all = serde_json::to_string(&SendAmountSpec::All).unwrap();
        assert_eq!(all, "\"all\"");
        let sat = serde_json::to_string(&SendAmountSpec::Sat(1500)).unwrap();
        assert_eq!(sat, "{\"sat\":1500}");
        let parsed: SendAmountSpec = serde_json::from_str("{\"sat\":7}").unwrap();
        assert_eq!(parsed, SendAmountSpec::Sat(7));
    }

    #[test]
    fn empty_requests_refuse_unknown_fields() {
        assert!(serde_json::from_str::<Empty>("{}").is_ok());
        assert!(serde_json::from_str::<Empty>("{\"x\":1}").is_err());
    }

    #[test]
    fn method_names_are_unique() {
        let mut names = METHOD_NAMES.to_vec();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), METHOD_NAMES.len());
    }
}

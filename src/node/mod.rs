//! The Lightning node: the LDK stack wired onto the compact-filter chain source and the
//! on-chain wallet, and the operations the control API exposes.

mod error;
mod info;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{FeeRate, Txid};

pub use crate::wallet::SendAmount;
pub use error::NodeError;
pub use info::{
    Balances, ChannelInfo, InvoiceInfo, NodeInfo, OpenedChannel, PaymentDirection, PaymentInfo,
    PaymentStatus, PeerInfo, UtxoInfo,
};

use crate::config::Config;

/// A running node.
pub struct Node {
    config: Config,
}

impl Node {
    /// Starts the node described by `config` (keys, stores, chain sync, networking,
    /// background processing) on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Arc<Node>, NodeError> {
        Err(NodeError::NotReady(format!(
            "node start for {} is being built",
            config.data_dir.display()
        )))
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// Asks the node to stop; [`Node::stopped`] resolves afterwards.
    pub fn request_stop(&self) {}

    /// Resolves once a stop was requested.
    pub async fn stopped(&self) {}

    /// Stops networking and background work, persisting everything.
    pub async fn stop(&self) {}

    /// The node's public key.
    pub fn node_id(&self) -> PublicKey {
        unreachable_node()
    }

    /// Node, chain and channel summary.
    pub async fn info(&self) -> NodeInfo {
        unreachable_node()
    }

    /// A new on-chain receive address.
    pub fn new_address(&self) -> Result<String, NodeError> {
        Err(not_built())
    }

    /// On-chain and Lightning balances.
    pub fn balances(&self) -> Balances {
        unreachable_node()
    }

    /// Unspent wallet outputs.
    pub fn utxos(&self) -> Vec<UtxoInfo> {
        unreachable_node()
    }

    /// Sends on-chain to `address`; `fee_rate` defaults to the estimator's normal rate.
    pub fn send_onchain(
        &self,
        _address: &str,
        _amount: SendAmount,
        _fee_rate: Option<FeeRate>,
    ) -> Result<Txid, NodeError> {
        Err(not_built())
    }

    /// Connects to a Lightning peer at `address` (`host:port`) and remembers it.
    pub async fn connect(&self, _node_id: PublicKey, _address: &str) -> Result<(), NodeError> {
        Err(not_built())
    }

    /// Disconnects a Lightning peer.
    pub async fn disconnect(&self, _node_id: PublicKey) -> Result<(), NodeError> {
        Err(not_built())
    }

    /// Known and connected Lightning peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        unreachable_node()
    }

    /// Opens a channel of `amount_sat` to `node_id` at `address`, pushing `push_msat`; waits
    /// until the funding transaction is broadcast.
    pub async fn open_channel(
        &self,
        _node_id: PublicKey,
        _address: &str,
        _amount_sat: u64,
        _push_msat: u64,
        _public: bool,
    ) -> Result<OpenedChannel, NodeError> {
        Err(not_built())
    }

    /// Closes a channel cooperatively, or unilaterally with `force`.
    pub async fn close_channel(&self, _channel_id: &str, _force: bool) -> Result<(), NodeError> {
        Err(not_built())
    }

    /// All channels.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        unreachable_node()
    }

    /// A BOLT11 invoice for `amount_msat` (any amount when `None`).
    pub fn create_invoice(
        &self,
        _amount_msat: Option<u64>,
        _description: &str,
        _expiry_secs: u32,
    ) -> Result<InvoiceInfo, NodeError> {
        Err(not_built())
    }

    /// Pays a BOLT11 invoice or BOLT12 offer, waiting up to `timeout` for the outcome.
    pub async fn pay(
        &self,
        _destination: &str,
        _amount_msat: Option<u64>,
        _timeout: Duration,
    ) -> Result<PaymentInfo, NodeError> {
        Err(not_built())
    }

    /// Sends a spontaneous (keysend) payment, waiting up to `timeout` for the outcome.
    pub async fn keysend(
        &self,
        _node_id: PublicKey,
        _amount_msat: u64,
        _timeout: Duration,
    ) -> Result<PaymentInfo, NodeError> {
        Err(not_built())
    }

    /// Payments sent and received, newest last.
    pub fn payments(&self) -> Vec<PaymentInfo> {
        unreachable_node()
    }

    /// A BOLT12 offer for `amount_msat` (any amount when `None`).
    pub fn create_offer(
        &self,
        _amount_msat: Option<u64>,
        _description: &str,
    ) -> Result<String, NodeError> {
        Err(not_built())
    }

    /// Signs `message` with the node key (zbase32, as other implementations do).
    pub fn sign_message(&self, _message: &str) -> String {
        unreachable_node()
    }

    /// Whether `signature` over `message` was made by `node_id`.
    pub fn verify_message(&self, _message: &str, _signature: &str, _node_id: PublicKey) -> bool {
        unreachable_node()
    }
}

fn not_built() -> NodeError {
    NodeError::NotReady("this operation is being built".into())
}

fn unreachable_node<T>() -> T {
    panic!("a Node cannot be constructed yet")
}

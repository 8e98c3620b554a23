//! The Lightning node: the LDK stack wired onto the compact-filter chain source and the
//! on-chain wallet, grouped by job:
//!
//! - [`stores`]: what the node keeps on disk (the channel store and its mirror, payment,
//!   forward and peer records, the data directory and its permissions);
//! - [`keys`]: the keys manager and the seed's words;
//! - [`recovery`]: starts from state that is not what a clean run leaves (a restore, channel
//!   state behind its peers', held channels, the sweeper's repair, the start-up monitors);
//! - [`operations`]: what the control API calls (channels, payments, on-chain, info, fee
//!   demand);
//! - [`ldk`]: LDK wired together (the builder follows LDK's node-building guide step by step,
//!   the types, events, background processing, gossip, peers, the logger).
//!
//! This module holds the running [`Node`] itself, its [`NodeHandle`] and [`NodeError`].
//!
//! Its long-running tasks, and those of the chain source, are supervised: one that panics or
//! ends while the node runs is a failure [`Node::failed`] reports, and the node must stop. So
//! is an on-chain wallet that stopped following the chain (a block that did not connect): the
//! next start replays the chain to it from its last block.

mod error;
mod handle;
mod keys;
mod ldk;
mod operations;
mod recovery;
mod stores;

use std::collections::HashMap;
use std::future::Future;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, RwLock};

use bitcoin::secp256k1::PublicKey;
use lightning::sign::KeysManager;
use log::info;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

pub use crate::wallet::SendAmount;
pub use error::NodeError;
pub use handle::NodeHandle;
pub use keys::seed_words;
pub use ldk::builder::user_config;
pub use ldk::types;
pub use operations::info::{
    Balances, ChannelInfo, ChannelPolicy, ChannelRef, FeeRatesInfo, ForwardInfo, InvoiceInfo,
    NodeInfo, OpenedChannel, PaymentDirection, PaymentInfo, PaymentStatus, PeerInfo, SyncProgress,
    TransactionInfo, UtxoInfo,
};
pub use operations::onchain::{BumpedOnchain, Propagation, SentOnchain, PROPAGATION_WAIT};
pub use stores::backup::{BackupError, BackupState, BackupStatus};
pub use stores::data_dir::{init_from_words, seed_words_of, LOCK_FILE, NETWORK_FILE, SEED_FILE};
pub use stores::node_store::{NodeStore, StoreInfo};
pub use stores::store_copy::{copy_store, CopyDirection, CopyReport, MOVED_KEY};

use crate::chain::ChainSource;
use crate::config::Config;
use crate::tasks::{Supervisor, TaskFailure};
use crate::wallet::Wallet;
use stores::data_dir::DataDir;
use stores::forward_store::ForwardStore;
use stores::payment_store::PaymentStore;
use stores::peer_store::PeerStore;
use types::{
    ChainMonitor, ChannelManager, GossipSync, NetworkGraph, OnionMessenger, PeerManager, Scorer,
    Store, Sweeper,
};

/// Waiters for channels being opened, by user channel id.
type OpenWaiters = HashMap<u128, oneshot::Sender<Result<OpenedChannel, NodeError>>>;

/// Everything a running node is made of (built by [`builder`]).
pub(crate) struct NodeParts {
    pub config: Config,
    pub data_dir: DataDir,
    pub keys: Arc<KeysManager>,
    pub chain: Arc<ChainSource>,
    pub wallet: Arc<Wallet>,
    pub chain_monitor: Arc<ChainMonitor>,
    pub channel_manager: Arc<ChannelManager>,
    pub peer_manager: Arc<PeerManager>,
    pub onion_messenger: Arc<OnionMessenger>,
    pub network_graph: Arc<NetworkGraph>,
    pub gossip_sync: Arc<GossipSync>,
    pub scorer: Arc<RwLock<Scorer>>,
    pub sweeper: Arc<Sweeper>,
    pub store: Arc<Store>,
    pub payments: Arc<PaymentStore>,
    pub peers: Arc<PeerStore>,
    pub held: Arc<recovery::held_channels::HeldChannels>,
    pub ln_listen_addr: Option<SocketAddr>,
    pub onion_address: Option<String>,
    pub stop_tx: watch::Sender<bool>,
}

/// A running node.
pub struct Node {
    config: Config,
    data_dir: DataDir,
    keys: Arc<KeysManager>,
    chain: Arc<ChainSource>,
    wallet: Arc<Wallet>,
    chain_monitor: Arc<ChainMonitor>,
    channel_manager: Arc<ChannelManager>,
    peer_manager: Arc<PeerManager>,
    onion_messenger: Arc<OnionMessenger>,
    network_graph: Arc<NetworkGraph>,
    gossip_sync: Arc<GossipSync>,
    scorer: Arc<RwLock<Scorer>>,
    sweeper: Arc<Sweeper>,
    store: Arc<Store>,
    payments: Arc<PaymentStore>,
    forwards: ForwardStore,
    peers: Arc<PeerStore>,
    held: Arc<recovery::held_channels::HeldChannels>,
    ln_listen_addr: Option<SocketAddr>,
    /// The onion service's address (`<id>.onion:9735`), when Tor gave the node one.
    onion_address: Option<String>,
    stop_tx: watch::Sender<bool>,
    stop_requested: watch::Sender<bool>,
    supervisor: Arc<Supervisor>,
    tasks: Mutex<Vec<JoinHandle<()>>>,
    background: Mutex<Option<JoinHandle<()>>>,
    open_waiters: Mutex<OpenWaiters>,
    bump_handler: types::BumpHandler,
}

impl Node {
    fn new(parts: NodeParts) -> Self {
        let logger = Arc::new(ldk::logger::LdkLogger::default());
        let bump_handler = types::BumpHandler::new(
            parts.chain.broadcaster().clone(),
            Arc::new(lightning::events::bump_transaction::sync::WalletSync::new(
                parts.wallet.clone(),
                logger.clone(),
            )),
            parts.keys.clone(),
            logger,
        );
        let supervisor = Supervisor::new();
        let failures = supervisor.clone();
        parts.wallet.on_stopped_following(move |err| {
            failures.report(TaskFailure::Failed {
                task: "on-chain wallet",
                reason: err.to_string(),
            })
        });
        // A lost PostgreSQL session stops the node: it writes nothing more.
        if let Some(postgres) = parts.store.postgres() {
            let failures = supervisor.clone();
            postgres.on_lost(move |reason| {
                failures.report(TaskFailure::Failed {
                    task: "PostgreSQL store",
                    reason: reason.to_string(),
                })
            });
        }
        Self {
            config: parts.config,
            data_dir: parts.data_dir,
            keys: parts.keys,
            chain: parts.chain,
            wallet: parts.wallet,
            chain_monitor: parts.chain_monitor,
            channel_manager: parts.channel_manager,
            peer_manager: parts.peer_manager,
            onion_messenger: parts.onion_messenger,
            network_graph: parts.network_graph,
            gossip_sync: parts.gossip_sync,
            scorer: parts.scorer,
            sweeper: parts.sweeper,
            forwards: ForwardStore::new(parts.store.clone()),
            store: parts.store,
            payments: parts.payments,
            peers: parts.peers,
            held: parts.held,
            ln_listen_addr: parts.ln_listen_addr,
            onion_address: parts.onion_address,
            stop_tx: parts.stop_tx,
            stop_requested: watch::channel(false).0,
            supervisor,
            tasks: Mutex::new(Vec::new()),
            background: Mutex::new(None),
            open_waiters: Mutex::new(HashMap::new()),
            bump_handler,
        }
    }

    /// Starts the node described by `config` (keys, stores, chain sync, networking,
    /// background processing) on the current tokio runtime.
    pub async fn start(config: Config) -> Result<Arc<Node>, NodeError> {
        let handle = NodeHandle::starting(&config);
        ldk::builder::start(config, &handle).await
    }

    /// Starts a node as [`Node::start`] does, making its progress visible through `handle`
    /// (which holds the node once it runs). A start abandoned midway (its future dropped)
    /// leaves the chain source to be stopped through [`NodeHandle::chain`].
    pub async fn start_with(
        config: Config,
        handle: &Arc<NodeHandle>,
    ) -> Result<Arc<Node>, NodeError> {
        let node = ldk::builder::start(config, handle).await?;
        handle.set_node(node.clone());
        Ok(node)
    }

    /// The configuration the node runs with.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The data directory.
    pub fn data_dir(&self) -> &std::path::Path {
        self.data_dir.path()
    }

    /// The chain source (for status and tests).
    pub fn chain(&self) -> &Arc<ChainSource> {
        &self.chain
    }

    /// The address the node accepts Lightning connections on.
    pub fn listen_address(&self) -> Option<SocketAddr> {
        self.ln_listen_addr
    }

    /// Asks the node to stop; [`Node::stopped`] resolves afterwards.
    pub fn request_stop(&self) {
        self.stop_requested.send_replace(true);
    }

    /// Resolves once a stop was requested.
    pub async fn stopped(&self) {
        let mut requested = self.stop_requested.subscribe();
        let _ = requested.wait_for(|stop| *stop).await;
    }

    /// Resolves with the first failure of a task of the node or of its chain source: a task
    /// that panicked or ended while the node was running, or a fatal error (such as the
    /// channel manager failing to persist). The node no longer works as it should and must be
    /// stopped.
    pub async fn failed(&self) -> TaskFailure {
        tokio::select! {
            failure = self.supervisor.failed() => failure,
            failure = self.chain.supervisor().failed() => failure,
        }
    }

    /// The first failure [`Node::failed`] reported, if there was one.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.supervisor
            .failure()
            .or_else(|| self.chain.supervisor().failure())
    }

    /// Stops networking and background work; the background processor persists the channel
    /// manager, graph and scorer one last time before it returns.
    pub async fn stop(&self) {
        self.supervisor.stopping();
        self.request_stop();
        self.stop_tx.send_replace(true);
        self.peer_manager.disconnect_all_peers();
        let background = self
            .background
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        if let Some(background) = background {
            let _ = background.await;
        }
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(|p| p.into_inner()));
        for task in tasks {
            task.abort();
            let _ = task.await;
        }
        if let Err(err) = self.wallet.flush() {
            log::error!("saving the wallet on shutdown failed: {err}");
        }
        self.chain.stop().await;
        info!("node stopped");
    }

    /// The node's public key.
    pub fn node_id(&self) -> PublicKey {
        self.channel_manager.get_our_node_id()
    }

    /// Node, chain and channel summary.
    pub async fn info(&self) -> NodeInfo {
        let status = self.chain.status().await;
        let best = self.channel_manager.current_best_block();
        let channels = self.channel_manager.list_channels();
        NodeInfo {
            node_id: self.node_id(),
            network: self.config.network,
            block_height: best.height,
            block_hash: best.block_hash,
            synced: status.synced && status.filter_height == best.height,
            header_height: status.header_height,
            filter_height: status.filter_height,
            num_bitcoin_peers: status.peers,
            num_peers: self.peer_manager.list_peers().len(),
            num_channels: channels.len(),
            num_usable_channels: channels.iter().filter(|c| c.is_usable).count(),
            listen_addresses: self
                .ln_listen_addr
                .iter()
                .map(|a| a.to_string())
                .chain(self.onion_address.clone())
                .collect(),
            alias: self.config.alias.clone(),
            data_dir: self.config.data_dir.clone(),
            graph_nodes: self.network_graph.read_only().nodes().len(),
            graph_channels: self.network_graph.read_only().channels().len(),
            starting: false,
            sync: SyncProgress {
                headers_height: status.header_height,
                filters_height: status.filter_height,
                listeners_height: best.height,
                progress: status.progress(),
                bytes_received: status.bytes_received,
                decoy_bytes: status.decoy_bytes,
                phase: status.phase,
                filters_from: status.filters_from,
            },
            backup: self.store.backup_status(),
            store: self.store.info(self.data_dir.path()),
        }
    }

    /// Signs `message` with the node key (zbase32, as other implementations do).
    pub fn sign_message(&self, message: &str) -> String {
        lightning::util::message_signing::sign(message.as_bytes(), &self.keys.get_node_secret_key())
    }

    /// Whether `signature` over `message` was made by `node_id`.
    pub fn verify_message(&self, message: &str, signature: &str, node_id: PublicKey) -> bool {
        lightning::util::message_signing::verify(message.as_bytes(), signature, &node_id)
    }

    /// Spawns one of the node's long-running tasks under `name`.
    fn spawn(&self, name: &'static str, task: impl Future<Output = ()> + Send + 'static) {
        self.tasks
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(self.supervisor.spawn(name, task));
    }

    fn open_waiters(&self) -> std::sync::MutexGuard<'_, OpenWaiters> {
        self.open_waiters.lock().unwrap_or_else(|p| p.into_inner())
    }
}

//! The node as the control API sees it from the moment the daemon has opened its data
//! directory: starting (the chain is syncing, and the wallet and channel state are not built
//! yet) or running. While it starts, `getinfo` answers from the chain source with the sync's
//! progress, a stop is taken, and every other operation is refused with `not_synced`.

use std::sync::{Arc, Mutex, OnceLock};

use bitcoin::secp256k1::PublicKey;
use tokio::sync::watch;

use super::operations::info::{NodeInfo, SyncProgress};
use super::stores::data_dir::DataDir;
use super::stores::node_store::StoreInfo;
use super::{Node, NodeError};
use crate::chain::ChainSource;
use crate::config::Config;
use crate::postgres::PgStatusHandle;

/// The progress of a start that has not opened the chain yet.
const OPENING: &str = "0.0% (opening the data directory)";

/// A node that may still be starting.
pub struct NodeHandle {
    config: Config,
    /// The data directory, opened (and locked) before the node starts, until the start
    /// takes it.
    data_dir: Mutex<Option<DataDir>>,
    node_id: OnceLock<PublicKey>,
    chain: OnceLock<Arc<ChainSource>>,
    /// The PostgreSQL store's status, while it opens (a standby waiting for the writer lock).
    postgres: OnceLock<PgStatusHandle>,
    node: OnceLock<Arc<Node>>,
    stop_requested: watch::Sender<bool>,
}

impl std::fmt::Debug for NodeHandle {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NodeHandle")
            .field("network", &self.config.network)
            .field("running", &self.node.get().is_some())
            .finish()
    }
}

impl NodeHandle {
    /// Opens (and locks) the data directory of `config` for a node about to start: nothing
    /// else (no second daemon) can use it from here on.
    pub fn open(config: &Config) -> Result<Arc<Self>, NodeError> {
        let data_dir = DataDir::open(&config.data_dir, config.network)?;
        let handle = Self::starting(config);
        *handle.data_dir.lock().unwrap_or_else(|p| p.into_inner()) = Some(data_dir);
        Ok(handle)
    }

    /// A handle for a node about to start with `config`; the start opens the data directory.
    pub fn starting(config: &Config) -> Arc<Self> {
        Arc::new(Self {
            config: config.clone(),
            data_dir: Mutex::new(None),
            node_id: OnceLock::new(),
            chain: OnceLock::new(),
            postgres: OnceLock::new(),
            node: OnceLock::new(),
            stop_requested: watch::channel(false).0,
        })
    }

    /// A handle for a node that runs already.
    pub fn running(node: Arc<Node>) -> Arc<Self> {
        let handle = Self::starting(node.config());
        handle.set_node(node);
        handle
    }

    /// The node, once it runs.
    pub fn node(&self) -> Option<Arc<Node>> {
        self.node.get().cloned()
    }

    /// The node for an operation that needs it synced: refused with
    /// [`NodeError::NotSynced`] while it starts.
    pub async fn ready(&self) -> Result<Arc<Node>, NodeError> {
        if let Some(node) = self.node() {
            return Ok(node);
        }
        let progress = match self.chain.get() {
            Some(chain) => {
                let status = chain.status().await;
                format!(
                    "{} {:.1}% (headers at {}, filters at {})",
                    status.phase.as_str(),
                    status.progress() * 100.0,
                    status.header_height,
                    status.filter_height
                )
            }
            None => OPENING.into(),
        };
        Err(NodeError::NotSynced(progress))
    }

    /// Node, chain and channel summary; while the node starts, its id, the network and the
    /// sync's progress, with no channels or peers.
    pub async fn info(&self) -> Result<NodeInfo, NodeError> {
        if let Some(node) = self.node() {
            return Ok(node.info().await);
        }
        let store = match self.postgres.get() {
            Some(postgres) => StoreInfo::postgres(postgres),
            None => StoreInfo::files(self.config.data_dir.join("ldk")),
        };
        let (Some(node_id), Some(chain)) = (self.node_id.get(), self.chain.get()) else {
            return match (self.node_id.get(), self.postgres.get()) {
                // Waiting for the PostgreSQL store (a standby): the chain opens after.
                (Some(node_id), Some(_)) => Ok(self.info_before_chain(*node_id, store)),
                _ => Err(NodeError::NotSynced(OPENING.into())),
            };
        };
        let status = chain.status().await;
        let start = chain.tracker().chain_start();
        Ok(NodeInfo {
            block_height: start.height,
            block_hash: start.hash,
            header_height: status.header_height,
            filter_height: status.filter_height,
            num_bitcoin_peers: status.peers,
            sync: SyncProgress {
                headers_height: status.header_height,
                filters_height: status.filter_height,
                listeners_height: status.listeners_height.unwrap_or(start.height),
                progress: status.progress(),
                bytes_received: status.bytes_received,
                decoy_bytes: status.decoy_bytes,
                phase: status.phase,
                filters_from: status.filters_from,
            },
            backup: super::BackupStatus {
                dir: self.config.backup_dir.clone(),
                state: match self.config.backup_dir {
                    Some(_) => super::BackupState::Starting,
                    None => super::BackupState::Off,
                },
                last_error: None,
            },
            ..self.info_before_chain(*node_id, store)
        })
    }

    /// What `getinfo` shows before the chain source opens: the node, the network and the
    /// store (a standby waits for the writer lock there before it opens anything else).
    fn info_before_chain(&self, node_id: PublicKey, store: StoreInfo) -> NodeInfo {
        let genesis = bitcoin::constants::genesis_block(self.config.network).block_hash();
        NodeInfo {
            node_id,
            network: self.config.network,
            block_height: 0,
            block_hash: genesis,
            synced: false,
            header_height: 0,
            filter_height: 0,
            num_bitcoin_peers: 0,
            num_peers: 0,
            num_channels: 0,
            num_usable_channels: 0,
            listen_addresses: Vec::new(),
            alias: self.config.alias.clone(),
            data_dir: self.config.data_dir.clone(),
            graph_nodes: 0,
            graph_channels: 0,
            starting: true,
            sync: SyncProgress {
                headers_height: 0,
                filters_height: 0,
                listeners_height: 0,
                progress: 0.0,
                bytes_received: 0,
                decoy_bytes: 0,
                // Nothing syncs yet: the chain opens once the store is open.
                phase: crate::chain::SyncPhase::Headers,
                filters_from: None,
            },
            backup: super::BackupStatus {
                dir: None,
                state: super::BackupState::Off,
                last_error: None,
            },
            store,
        }
    }

    /// Asks the node to stop, whether it runs or still starts.
    pub fn request_stop(&self) {
        self.stop_requested.send_replace(true);
        if let Some(node) = self.node() {
            node.request_stop();
        }
    }

    /// Resolves once a stop was requested through this handle or the running node.
    pub async fn stop_requested(&self) {
        let mut requested = self.stop_requested.subscribe();
        match self.node() {
            Some(node) => {
                tokio::select! {
                    _ = requested.wait_for(|stop| *stop) => {}
                    _ = node.stopped() => {}
                }
            }
            None => {
                let _ = requested.wait_for(|stop| *stop).await;
            }
        }
    }

    /// The data directory [`NodeHandle::open`] opened, for the start to use.
    pub(super) fn take_data_dir(&self) -> Option<DataDir> {
        self.data_dir
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
    }

    pub(super) fn set_node_id(&self, node_id: PublicKey) {
        let _ = self.node_id.set(node_id);
    }

    pub(super) fn set_postgres(&self, status: PgStatusHandle) {
        let _ = self.postgres.set(status);
    }

    pub(super) fn set_chain(&self, chain: Arc<ChainSource>) {
        let _ = self.chain.set(chain);
    }

    pub(super) fn set_node(&self, node: Arc<Node>) {
        let _ = self.node.set(node);
    }

    /// The chain source, once it is open: a start abandoned midway stops it.
    pub fn chain(&self) -> Option<Arc<ChainSource>> {
        self.chain.get().cloned()
    }
}

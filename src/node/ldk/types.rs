//! The concrete LDK types the node is built from.

use std::sync::Arc;

use lightning::chain::chainmonitor;
use lightning::events::bump_transaction::sync::{BumpTransactionEventHandlerSync, WalletSync};
use lightning::ln::channelmanager;
use lightning::ln::peer_handler::{self, IgnoringMessageHandler};
use lightning::onion_message::messenger;
use lightning::routing::gossip;
use lightning::routing::scoring::ProbabilisticScorer;
use lightning::routing::utxo::UtxoLookup;
use lightning::sign::{InMemorySigner, KeysManager};
use lightning::util::persist::MonitorUpdatingPersister;
use lightning::util::sweep::OutputSweeperSync;
use lightning_net_tokio::SocketDescriptor;

use super::logger::LdkLogger;
use crate::chain::fees::FeeEstimates;
use crate::chain::{Broadcaster, WatchSet};
use crate::node::keys::keys_manager::NodeKeys;
use crate::wallet::Wallet;

/// Key-value store for LDK state (monitors, manager, graph, scorer, sweeper, payments): files
/// with the backup directory's live mirror when one is configured, or PostgreSQL.
pub type Store = crate::node::stores::node_store::NodeStore;

/// Persists channel monitors as full snapshots plus small incremental updates.
pub type Persister = MonitorUpdatingPersister<
    Arc<Store>,
    Arc<LdkLogger>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<Broadcaster>,
    Arc<FeeEstimates>,
>;

/// Watches channel monitors against the chain.
pub type ChainMonitor = chainmonitor::ChainMonitor<
    InMemorySigner,
    Arc<WatchSet>,
    Arc<Broadcaster>,
    Arc<FeeEstimates>,
    Arc<LdkLogger>,
    Arc<Persister>,
    Arc<KeysManager>,
>;

/// The public channel graph learnt from gossip.
pub type NetworkGraph = gossip::NetworkGraph<Arc<LdkLogger>>;

/// Path scoring from payment outcomes.
pub type Scorer = ProbabilisticScorer<Arc<NetworkGraph>, Arc<LdkLogger>>;

/// Finds payment routes (see [`super::router`]).
pub type Router = super::router::NodeRouter;

/// Finds onion-message paths (BOLT12).
pub type MessageRouter = lightning::onion_message::messenger::DefaultMessageRouter<
    Arc<NetworkGraph>,
    Arc<LdkLogger>,
    Arc<KeysManager>,
>;

/// The channel manager.
pub type ChannelManager = channelmanager::ChannelManager<
    Arc<ChainMonitor>,
    Arc<Broadcaster>,
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<NodeKeys>,
    Arc<FeeEstimates>,
    Arc<Router>,
    Arc<MessageRouter>,
    Arc<LdkLogger>,
>;

/// Gossip validation has no UTXO source: channel announcements are not checked against the
/// chain (a compact-filter node cannot look up arbitrary outputs cheaply), so the peer manager
/// sees it through [`BoundedGossip`], which bounds the graph.
pub type GossipSync =
    gossip::P2PGossipSync<Arc<NetworkGraph>, Arc<dyn UtxoLookup + Send + Sync>, Arc<LdkLogger>>;

/// Routes onion messages (BOLT12 offers).
pub type OnionMessenger = messenger::OnionMessenger<
    Arc<KeysManager>,
    Arc<KeysManager>,
    Arc<LdkLogger>,
    Arc<ChannelManager>,
    Arc<MessageRouter>,
    Arc<ChannelManager>,
    Arc<ChannelManager>,
    IgnoringMessageHandler,
    IgnoringMessageHandler,
>;

pub use super::gossip::BoundedGossip;

/// The Lightning P2P peer manager.
pub type PeerManager = peer_handler::PeerManager<
    SocketDescriptor,
    Arc<ChannelManager>,
    Arc<BoundedGossip>,
    Arc<OnionMessenger>,
    Arc<LdkLogger>,
    IgnoringMessageHandler,
    Arc<KeysManager>,
    Arc<ChainMonitor>,
>;

/// Sweeps the outputs of closed channels back to the wallet.
pub type Sweeper = OutputSweeperSync<
    Arc<Broadcaster>,
    Arc<Wallet>,
    Arc<FeeEstimates>,
    Arc<WatchSet>,
    Arc<Store>,
    Arc<LdkLogger>,
    Arc<KeysManager>,
>;

/// Bumps anchor-channel transactions with wallet coins.
pub type BumpHandler = BumpTransactionEventHandlerSync<
    Arc<Broadcaster>,
    Arc<WalletSync<Arc<Wallet>, Arc<LdkLogger>>>,
    Arc<KeysManager>,
    Arc<LdkLogger>,
>;

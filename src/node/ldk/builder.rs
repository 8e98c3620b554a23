//! Node start-up, in the order of LDK's "Building a Node with LDK in Rust" guide (its step
//! numbers in the comments), with today's names: the compact-filter chain source is the fee
//! estimator, broadcaster, transaction filter and block source; lightning-persister's
//! `FilesystemStore` with `MonitorUpdatingPersister` persists channel state; the background
//! processor persists the ChannelManager, graph and scorer.

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bitcoin::BlockHash;
use lightning::chain::chainmonitor::ChainMonitor as LdkChainMonitor;
use lightning::chain::channelmonitor::ChannelMonitor;
use lightning::chain::{BestBlock, Watch};
use lightning::ln::channelmanager::{ChainParameters, ChannelManagerReadArgs};
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler};
use lightning::onion_message::messenger::{DefaultMessageRouter, OnionMessenger};
use lightning::routing::gossip::P2PGossipSync;
use lightning::routing::scoring::{ProbabilisticScorer, ProbabilisticScoringDecayParameters};
use lightning::sign::{EntropySource, InMemorySigner, KeysManager};
use lightning::util::config::UserConfig;
use lightning::util::persist::{
    KVStoreSync, MonitorUpdatingPersister, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_KEY, NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
    NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_KEY,
    OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE, OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
    SCORER_PERSISTENCE_KEY, SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
    SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::{ReadableArgs, Writeable};
use lightning::util::sweep::OutputSweeperSync;
use lightning_block_sync::poll::ValidatedBlockHeader;
use log::{debug, info, warn};
use tokio::sync::watch;

use super::background;
use super::inbound::{InboundLimits, InboundPlace};
use super::logger::LdkLogger;
use super::start_checks::{self, read_optional, StoredChannelState};
use super::sweeping::SweepingListener;
use super::types::{
    BoundedGossip, ChainMonitor, ChannelManager, GossipSync, MessageRouter, NetworkGraph,
    OnionMessenger as NodeOnionMessenger, PeerManager, Persister, Router, Scorer, Store, Sweeper,
};
use crate::chain::fees::FeeEstimates;
use crate::chain::{Broadcaster, ChainConfig, ChainListener, ChainSource, SharedListen, WatchSet};
use crate::config::Config;
use crate::node::error::NodeError;
use crate::node::keys::keys_manager::NodeKeys;
use crate::node::recovery::fallen_behind;
use crate::node::recovery::held_channels::{HeldChannel, HeldChannels, HoldReason};
use crate::node::recovery::startup_monitor::StartupMonitor;
use crate::node::stores::backup_compare::ReadMonitor;
use crate::node::stores::data_dir::DataDir;
use crate::node::stores::payment_store::PaymentStore;
use crate::node::stores::peer_store::PeerStore;
use crate::node::Node;
use crate::node::NodeHandle;
use crate::node::NodeParts;
use crate::wallet::{ScriptRegistry, Wallet};

/// Incremental monitor updates written before a full monitor is rewritten (small writes for
/// SD cards; see `MonitorUpdatingPersister`).
const MAX_PENDING_MONITOR_UPDATES: u64 = 100;

impl ScriptRegistry for WatchSet {
    fn register_scripts(&self, scripts: &[bitcoin::ScriptBuf]) {
        self.add_scripts(scripts.iter().map(|s| s.as_script()));
    }
}

/// The LDK user configuration: anchor channels, inbound channels accepted by our own policy,
/// payments allowed to use a channel's whole capacity.
pub fn user_config() -> UserConfig {
    let mut config = UserConfig::default();
    config
        .channel_handshake_config
        .negotiate_anchors_zero_fee_htlc_tx = true;
    config.manually_accept_inbound_channels = true;
    config.channel_handshake_config.announce_for_forwarding = false;
    // Let a payment use the whole channel, as other implementations do (LDK's default caps
    // HTLCs in flight towards us at 10% of the channel).
    config
        .channel_handshake_config
        .max_inbound_htlc_value_in_flight_percent_of_channel = 100;
    // Accept public and private channels alike; whoever opens the channel decides.
    config
        .channel_handshake_limits
        .force_announced_channel_preference = false;
    config
}

fn store_error(context: &str, err: impl std::fmt::Display) -> NodeError {
    NodeError::storage(context, err)
}

/// Starts the node. Everything that can refuse the start is read and checked before anything
/// runs (the data directory, a restore, the backup mirror, the stored channel state); then the
/// chain source opens and [`start_on_chain`] builds the node on it, step by step.
pub(in crate::node) async fn start(
    config: Config,
    handle: &NodeHandle,
) -> Result<Arc<Node>, NodeError> {
    let data_dir = open_data_dir(&config, handle)?;
    let seed = load_seed(&data_dir)?;
    // Step 7: the keys manager (needed by the persister, so it comes before step 4).
    let (keys, now) = keys_manager(&seed);
    let node_id =
        lightning::sign::NodeSigner::get_node_id(&*keys, lightning::sign::Recipient::Node)
            .expect("the node key is available");
    handle.set_node_id(node_id);
    let read_monitor = |bytes: &[u8]| start_checks::read_monitor_facts(bytes, &keys);
    restore_if_asked(&config, &data_dir, &node_id, &read_monitor)?;
    let store = open_store(&config, &data_dir, &node_id, &read_monitor, handle).await?;
    crate::node::stores::store_copy::check_not_moved(
        &*store,
        &store.info(data_dir.path()).location,
    )?;
    let wallet_exists = wallet_exists(&store, data_dir.path())?;
    fallen_behind::record_on_panic(data_dir.path());
    let stored = start_checks::read_channel_state(&store, &keys, data_dir.path())?;

    // Step 5 (the transaction filter) comes first: the chain source and the wallet need it.
    let watch_set = Arc::new(WatchSet::new());
    let listener = Arc::new(ChainListener::new());
    let (chain_config, chain_is_new) =
        chain_config(&config, data_dir.path(), &stored, wallet_exists);
    // The engine starts once the listeners' saved positions are known (when they are
    // synchronised), so that its chain holds every block they still need.
    let chosen_start = chain_config.start;
    let chain = ChainSource::open(chain_config, watch_set.clone(), listener.clone())?;
    handle.set_chain(chain.clone());
    let started = match start_checks::check_stored_start(
        &config,
        data_dir.path(),
        &chain,
        chain_is_new,
        chosen_start,
    )
    .and_then(|()| hold_unsafe_broadcasts(&store, &chain))
    {
        Ok(held) => {
            let opened = Opened {
                config,
                data_dir,
                seed,
                store,
                // A recovery starts with an empty channel manager.
                manager_bytes: stored.manager_bytes.filter(|_| !stored.recovering),
                recovering: stored.recovering,
                now,
                keys,
                watch_set,
                listener,
                held,
                wallet_exists,
                chain_is_new,
            };
            start_on_chain(opened, chain.clone()).await
        }
        Err(err) => Err(err),
    };
    match started {
        Ok(node) => Ok(node),
        Err(err) => {
            // A refused start leaves nothing running and the chain database closed as it was.
            chain.stop().await;
            Err(err)
        }
    }
}

/// The data directory, opened (or taken from `handle`, which opened it to answer while the
/// node starts). A restore is refused here when the directory has no seed.
fn open_data_dir(config: &Config, handle: &NodeHandle) -> Result<DataDir, NodeError> {
    let data_dir = match handle.take_data_dir() {
        Some(data_dir) => data_dir,
        None => DataDir::open(&config.data_dir, config.network)?,
    };
    if config.restore_from.is_some()
        && crate::node::stores::data_dir::read_seed(data_dir.path())?.is_none()
    {
        return Err(NodeError::invalid(
            "--restore-from",
            format!(
                "the data directory {} has no seed; a restore needs the node's own: create \
                 the directory from its 24 words with `lightfilter init --words-file FILE` (or \
                 put its seed file back) first (nothing was changed)",
                data_dir.path().display()
            ),
        ));
    }
    Ok(data_dir)
}

/// The node's seed, made (and said so) when the data directory has none.
fn load_seed(data_dir: &DataDir) -> Result<[u8; 32], NodeError> {
    let (seed, seed_created) = data_dir.load_or_create_seed()?;
    if seed_created {
        info!(
            "created a new seed in {}; back it up: it holds the keys to on-chain funds",
            data_dir
                .path()
                .join(crate::node::stores::data_dir::SEED_FILE)
                .display()
        );
    }
    Ok(seed)
}

/// Step 7: the keys manager on `seed`, and the time it was started at.
fn keys_manager(seed: &[u8; 32]) -> (Arc<KeysManager>, Duration) {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let keys = Arc::new(KeysManager::new(
        seed,
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));
    (keys, now)
}

/// Copies the channel state from `--restore-from` into the data directory, when asked, after
/// every check (see [`crate::node::recovery::restore`]).
fn restore_if_asked(
    config: &Config,
    data_dir: &DataDir,
    node_id: &bitcoin::secp256k1::PublicKey,
    read_monitor: ReadMonitor<'_>,
) -> Result<(), NodeError> {
    let Some(from) = &config.restore_from else {
        return Ok(());
    };
    let copied = crate::node::recovery::restore::restore(
        &crate::node::recovery::restore::RestoreRequest {
            from,
            backup_dir: config.backup_dir.as_deref(),
            data_dir: data_dir.path(),
            wallet_birthday: config.wallet_birthday,
            network: config.network,
            node_id,
        },
        read_monitor,
    )?;
    info!(
        "restored the channel state from the backup directory {} ({copied} files); every \
         channel is held until its peer has reestablished it (see `channels`)",
        from.display()
    );
    Ok(())
}

/// The channel store: PostgreSQL with `--store` (waiting for the writer lock on a standby),
/// else the data directory's `ldk/`, mirrored into `--backup-dir` when one is set (a mirror
/// ahead of the data directory refuses the start, see [`start_checks::restore_advice`]).
async fn open_store(
    config: &Config,
    data_dir: &DataDir,
    node_id: &bitcoin::secp256k1::PublicKey,
    read_monitor: ReadMonitor<'_>,
    handle: &NodeHandle,
) -> Result<Arc<Store>, NodeError> {
    let ldk_dir = data_dir.path().join("ldk");
    Ok(Arc::new(match (&config.store, &config.backup_dir) {
        (Some(url), _) => open_postgres(config, url, node_id, handle).await?,
        (None, Some(dir)) => {
            Store::Files(crate::node::stores::backup::ChannelStore::open_mirrored(
                ldk_dir,
                dir,
                config.network,
                node_id,
                read_monitor,
                &|data_dir_empty| {
                    start_checks::restore_advice(config, data_dir.path(), dir, data_dir_empty)
                },
            )?)
        }
        (None, None) => Store::new(ldk_dir),
    }))
}

/// Opens the PostgreSQL store at `url` for `node_id`, waiting for the writer lock on a standby
/// (its wait shows through `handle`).
async fn open_postgres(
    config: &Config,
    url: &str,
    node_id: &bitcoin::secp256k1::PublicKey,
    handle: &NodeHandle,
) -> Result<Store, NodeError> {
    let (status, opened) = crate::postgres::PgStore::open(&crate::postgres::PgOptions {
        url: url.to_string(),
        node_id: *node_id,
        network: config.network,
        standby: config.standby,
    })?;
    handle.set_postgres(status);
    let store = opened.await?;
    info!(
        "channel state and wallet in PostgreSQL at {}",
        store.status().location
    );
    Ok(Store::Postgres(Arc::new(store)))
}

/// Whether the wallet exists already: its file, or its changesets in the PostgreSQL store.
fn wallet_exists(store: &Store, data_dir: &std::path::Path) -> Result<bool, NodeError> {
    match store.postgres() {
        Some(postgres) => crate::wallet::KvChangesets::exists(postgres.as_ref())
            .map_err(|err| store_error("looking for the wallet", err)),
        None => Ok(data_dir.join("wallet.sqlite").exists()),
    }
}

/// The chain source's configuration, and whether its database is new: where a new header
/// chain starts and where it checks filters from follow from what the node holds.
fn chain_config(
    config: &Config,
    data_dir: &std::path::Path,
    stored: &StoredChannelState,
    wallet_exists: bool,
) -> (ChainConfig, bool) {
    let mut chain_config = ChainConfig::new(config.network, data_dir);
    chain_config.peers = config.bitcoin_peers.clone();
    chain_config.only_peers = config.only_bitcoin_peers;
    chain_config.route = config.route();
    chain_config.decoy_blocks = config.decoy_blocks;
    chain_config.required_peers = config.filter_quorum;
    chain_config.fee_overrides = config.fee_overrides.clone();
    chain_config.fee_sample_interval = config.fee_sample_interval;
    let chain_is_new = !data_dir.join("chain.sqlite").exists();
    chain_config.start = start_checks::new_chain_start(
        config,
        wallet_exists,
        stored.fresh(),
        stored.monitor_heights.iter().min().copied(),
    );
    chain_config.filters = start_checks::new_chain_filters(
        config,
        wallet_exists,
        stored.fresh() && stored.monitor_heights.is_empty(),
        chain_is_new.then_some(chain_config.start),
    );
    (chain_config, chain_is_new)
}

/// Before anything can broadcast: the channels behind never spend their funding, and the
/// held channels never broadcast their own commitments.
fn hold_unsafe_broadcasts(
    store: &Arc<Store>,
    chain: &ChainSource,
) -> Result<Arc<HeldChannels>, NodeError> {
    chain.broadcaster().refuse_spends_of(
        fallen_behind::load(store)
            .map_err(|err| store_error("reading the channels behind", err))?,
    );
    Ok(Arc::new(
        HeldChannels::open(store.clone(), chain.broadcaster().clone())
            .map_err(|err| store_error("reading the held channels", err))?,
    ))
}

/// What [`start`] has opened and checked before the chain source.
struct Opened {
    config: Config,
    data_dir: DataDir,
    seed: [u8; 32],
    store: Arc<Store>,
    manager_bytes: Option<Vec<u8>>,
    /// Whether the channel state fell behind and the start recovers (see [`fallen_behind`]).
    recovering: bool,
    now: Duration,
    keys: Arc<KeysManager>,
    watch_set: Arc<WatchSet>,
    listener: Arc<ChainListener>,
    held: Arc<HeldChannels>,
    /// Whether the wallet exists already (in its file, or in the PostgreSQL store).
    wallet_exists: bool,
    /// Whether the chain database was just made (a standby taking over from PostgreSQL, or
    /// a chain database removed): the listeners' blocks are not in it until the first sync.
    chain_is_new: bool,
}

/// Steps 1 to 4 and 6 of the guide: what every later step is built with.
struct Base {
    fee_estimator: Arc<FeeEstimates>,
    logger: Arc<LdkLogger>,
    broadcaster: Arc<Broadcaster>,
    persister: Arc<Persister>,
    chain_monitor: Arc<ChainMonitor>,
}

impl Base {
    fn new(opened: &Opened, chain: &ChainSource) -> Self {
        // Step 1: the fee estimator. Step 2: the logger. Step 3: the broadcaster.
        let fee_estimator = chain.fee_estimator().clone();
        let logger = Arc::new(LdkLogger::default());
        let broadcaster = chain.broadcaster().clone();
        let keys = &opened.keys;
        // Step 4: persistence of channel monitors.
        let persister: Arc<Persister> = Arc::new(MonitorUpdatingPersister::new(
            opened.store.clone(),
            logger.clone(),
            MAX_PENDING_MONITOR_UPDATES,
            keys.clone(),
            keys.clone(),
            broadcaster.clone(),
            fee_estimator.clone(),
        ));
        // Step 6: the chain monitor.
        let chain_monitor: Arc<ChainMonitor> = Arc::new(LdkChainMonitor::new(
            Some(opened.watch_set.clone()),
            broadcaster.clone(),
            logger.clone(),
            fee_estimator.clone(),
            persister.clone(),
            keys.clone(),
            lightning::sign::NodeSigner::get_peer_storage_key(&**keys),
        ));
        Base {
            fee_estimator,
            logger,
            broadcaster,
            persister,
            chain_monitor,
        }
    }
}

/// The network graph, scorer and routers (step 12, the part the channel manager needs).
struct Routing {
    network_graph: Arc<NetworkGraph>,
    scorer: Arc<RwLock<Scorer>>,
    router: Arc<Router>,
    message_router: Arc<MessageRouter>,
}

/// The channel monitors read from the store, each with the block it stands on.
type Monitors = Vec<(BlockHash, ChannelMonitor<InMemorySigner>)>;

/// The rest of the start-up, once the chain source is open: the guide's steps in order.
async fn start_on_chain(opened: Opened, chain: Arc<ChainSource>) -> Result<Arc<Node>, NodeError> {
    let base = Base::new(&opened, &chain);
    let monitors = read_monitors(&opened, &base)?;
    let tip = reach_tip_if_new(&opened, &chain).await?;
    let wallet = open_wallet(&opened, &chain, &base, tip)?;
    // Channel keys from the keys manager; closed-channel funds go to the wallet.
    let signer_provider = Arc::new(NodeKeys::new(opened.keys.clone(), wallet.clone()));
    let routing = read_routing(&opened, &base)?;
    let (manager_block, channel_manager) = channel_manager(
        &opened,
        &chain,
        &base,
        &routing,
        &signer_provider,
        &monitors,
        tip,
    )?;
    hold_stale_manager_channels(&opened, &base, &monitors)?;
    if opened.recovering {
        finish_recovery(&opened, &channel_manager)?;
    }
    let sweeper = output_sweeper(&opened, &chain, &base, &wallet, tip)?;
    let sweeping = Arc::new(SweepingListener::new(sweeper.clone()));
    let listeners = Listeners {
        wallet: &wallet,
        channel_manager: &channel_manager,
        manager_block,
        sweeper: &sweeper,
        sweeping: &sweeping,
    };
    let synced_tip = sync_listeners(&opened, &chain, &base, listeners, monitors).await?;
    let networking = networking(&opened, &base, &routing, &channel_manager);
    let (node, stop_rx) = assemble(
        opened,
        &chain,
        base,
        routing,
        networking,
        wallet,
        channel_manager,
        sweeper,
    )
    .await?;
    node.reconcile_pending_payments();
    sweeping.attach(&node);
    spawn_tasks(&node, &chain, synced_tip, stop_rx);
    info!(
        "node {} running on {} (chain tip {} at height {})",
        node.node_id(),
        crate::config::network_name(node.config.network),
        synced_tip.header.block_hash(),
        synced_tip.height
    );
    Ok(node)
}

/// Step 8: the channel monitors from the store. A damaged monitor stops the start-up: running
/// without it could lose the channel's funds.
fn read_monitors(opened: &Opened, base: &Base) -> Result<Monitors, NodeError> {
    let data_dir = opened.data_dir.path();
    base.persister
        .read_all_channel_monitors_with_updates()
        .map_err(|err| NodeError::DataDir {
            path: data_dir.to_path_buf(),
            reason: format!(
                "a channel monitor in {} cannot be read ({err}); refusing to start without it \
                 (nothing was changed)",
                data_dir.join("ldk").display()
            ),
        })
}

/// The verified chain tip, after the first sync when the node creates its wallet or channel
/// manager now: a fresh node starts them at the tip (not at genesis or the start checkpoint),
/// a wallet restored from its birthday needs the chain up to there, listeners saved elsewhere
/// (a standby on PostgreSQL, whose chain database is its own) need the chain up to their
/// blocks, and a chain still in its header phase has not reached where filters start.
async fn reach_tip_if_new(
    opened: &Opened,
    chain: &Arc<ChainSource>,
) -> Result<BestBlock, NodeError> {
    if opened.manager_bytes.is_none()
        || opened.chain_is_new
        || (opened.config.wallet_birthday.is_some() && !opened.wallet_exists)
        || chain.tracker().in_header_phase()
    {
        chain.start_engine();
        wait_for_first_sync(chain).await?;
    }
    chain
        .heights()
        .verified_tip
        .map(|(height, hash)| BestBlock::new(hash, height))
        .ok_or_else(|| NodeError::NotReady("the chain source has no verified block".into()))
}

/// The on-chain wallet, on the node's seed. A new wallet starts at the tip, or at the
/// configured birthday when it is restored from an existing seed.
fn open_wallet(
    opened: &Opened,
    chain: &ChainSource,
    base: &Base,
    tip: BestBlock,
) -> Result<Arc<Wallet>, NodeError> {
    let config = &opened.config;
    let wallet_start = match config.wallet_birthday {
        Some(birthday) if !opened.wallet_exists => {
            let before = birthday.saturating_sub(1);
            let hash = chain.tracker().headers().hash_at(before)?.ok_or_else(|| {
                NodeError::invalid(
                    "wallet birthday",
                    format!(
                        "block {before} is not in this node's chain (it starts later, or is \
                         not synced that far)"
                    ),
                )
            })?;
            info!("restoring the wallet: rescanning from block {birthday}");
            (before, hash)
        }
        _ => (tip.height, tip.block_hash),
    };
    if !opened.wallet_exists {
        chain.tracker().admit_new_state(wallet_start.0)?;
    }
    let (watch_set, fees, broadcaster) = (
        opened.watch_set.clone(),
        base.fee_estimator.clone(),
        base.broadcaster.clone(),
    );
    let wallet = Arc::new(match opened.store.postgres() {
        Some(postgres) => Wallet::open_in_store(
            postgres.clone(),
            std::path::Path::new(&postgres.status().location),
            &opened.seed,
            config.network,
            Some(wallet_start),
            watch_set,
            fees,
            broadcaster,
        )?,
        None => Wallet::open(
            &opened.data_dir.path().join("wallet.sqlite"),
            &opened.seed,
            config.network,
            Some(wallet_start),
            watch_set,
            fees,
            broadcaster,
        )?,
    });
    // The broadcaster judges its transactions' fees with the wallet's coins.
    base.broadcaster.set_prevout_values(Arc::new(
        crate::node::operations::onchain::WalletPrevouts(Arc::downgrade(&wallet)),
    ));
    Ok(wallet)
}

/// Step 12 (partly): the network graph and scorer from the store (new ones when they are
/// missing or unreadable: both are rebuilt from gossip and payments), and the routers.
fn read_routing(opened: &Opened, base: &Base) -> Result<Routing, NodeError> {
    let (store, logger, network) = (&opened.store, &base.logger, opened.config.network);
    let network_graph = Arc::new(
        match read_optional(
            store,
            NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
            NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE,
            NETWORK_GRAPH_PERSISTENCE_KEY,
        )? {
            Some(bytes) => {
                NetworkGraph::read(&mut &bytes[..], logger.clone()).unwrap_or_else(|err| {
                    warn!("stored network graph unreadable ({err:?}); starting from an empty one");
                    NetworkGraph::new(network, logger.clone())
                })
            }
            None => NetworkGraph::new(network, logger.clone()),
        },
    );
    let decay = ProbabilisticScoringDecayParameters::default();
    let scorer: Arc<RwLock<Scorer>> = Arc::new(RwLock::new(
        match read_optional(
            store,
            SCORER_PERSISTENCE_PRIMARY_NAMESPACE,
            SCORER_PERSISTENCE_SECONDARY_NAMESPACE,
            SCORER_PERSISTENCE_KEY,
        )? {
            Some(bytes) => ProbabilisticScorer::read(
                &mut &bytes[..],
                (decay, network_graph.clone(), logger.clone()),
            )
            .unwrap_or_else(|err| {
                warn!("stored scorer unreadable ({err:?}); starting from a fresh one");
                ProbabilisticScorer::new(decay, network_graph.clone(), logger.clone())
            }),
            None => ProbabilisticScorer::new(decay, network_graph.clone(), logger.clone()),
        },
    ));
    let router = Arc::new(Router::new(
        network_graph.clone(),
        logger.clone(),
        opened.keys.clone(),
        scorer.clone(),
    ));
    let message_router = Arc::new(DefaultMessageRouter::new(
        network_graph.clone(),
        opened.keys.clone(),
    ));
    Ok(Routing {
        network_graph,
        scorer,
        router,
        message_router,
    })
}

/// Step 9: the channel manager, fresh at the tip or read from the store with its monitors,
/// and the block it stands on.
fn channel_manager(
    opened: &Opened,
    chain: &ChainSource,
    base: &Base,
    routing: &Routing,
    signer_provider: &Arc<NodeKeys>,
    monitors: &Monitors,
    tip: BestBlock,
) -> Result<(BlockHash, Arc<ChannelManager>), NodeError> {
    let keys = &opened.keys;
    let user_config = user_config();
    let read_manager = |bytes: &[u8]| {
        let read_args = ChannelManagerReadArgs::new(
            keys.clone(),
            keys.clone(),
            signer_provider.clone(),
            base.fee_estimator.clone(),
            base.chain_monitor.clone(),
            base.broadcaster.clone(),
            routing.router.clone(),
            routing.message_router.clone(),
            base.logger.clone(),
            user_config.clone(),
            monitors.iter().map(|(_, monitor)| monitor).collect(),
        );
        <(BlockHash, ChannelManager)>::read(&mut &bytes[..], read_args).map_err(|err| {
            NodeError::DataDir {
                path: opened.data_dir.path().to_path_buf(),
                reason: format!(
                    "the channel manager cannot be read ({err:?}); refusing to start \
                     (nothing was changed)"
                ),
            }
        })
    };
    let (block, manager) = match &opened.manager_bytes {
        Some(bytes) => read_manager(bytes)?,
        None => {
            chain.tracker().admit_new_state(tip.height)?;
            let manager = ChannelManager::new(
                base.fee_estimator.clone(),
                base.chain_monitor.clone(),
                base.broadcaster.clone(),
                routing.router.clone(),
                routing.message_router.clone(),
                base.logger.clone(),
                keys.clone(),
                keys.clone(),
                signer_provider.clone(),
                user_config.clone(),
                ChainParameters {
                    network: opened.config.network,
                    best_block: tip,
                },
                opened.now.as_secs() as u32,
            );
            if monitors.is_empty() {
                (tip.block_hash, manager)
            } else {
                // An empty manager given the monitors of a recovery: read back with them, LDK
                // closes every channel it does not know (their commitments are refused by the
                // broadcaster, see `fallen_behind`).
                read_manager(&manager.encode())?
            }
        }
    };
    Ok((block, Arc::new(manager)))
}

/// Channels LDK found with a manager older than their monitor are closed by it with the
/// monitor's commitment; that state is not proved current, so they are held before any of it
/// can be broadcast.
fn hold_stale_manager_channels(
    opened: &Opened,
    base: &Base,
    monitors: &Monitors,
) -> Result<(), NodeError> {
    let stale: Vec<HeldChannel> = base
        .logger
        .take_stale_manager_channels()
        .into_iter()
        .filter_map(|channel_id| {
            let (_, monitor) = monitors
                .iter()
                .find(|(_, m)| m.channel_id() == channel_id)?;
            Some(HeldChannel {
                channel_id,
                funding: monitor.get_funding_txo().into_bitcoin_outpoint(),
                reason: HoldReason::StaleManager,
            })
        })
        .collect();
    opened
        .held
        .hold(&stale)
        .map_err(|err| store_error("holding channels with a stale manager", err))
}

/// Saves the empty channel manager a recovery starts with, then removes the record that asked
/// for the recovery.
fn finish_recovery(opened: &Opened, channel_manager: &ChannelManager) -> Result<(), NodeError> {
    opened
        .store
        .write(
            CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
            CHANNEL_MANAGER_PERSISTENCE_KEY,
            channel_manager.encode(),
        )
        .map_err(|err| store_error("saving the new channel manager", err))?;
    fallen_behind::finish_recovery(opened.data_dir.path())
        .map_err(|err| store_error("removing the record of the channel state behind", err))?;
    info!("the channel manager starts empty; the channels behind are closed by their peers");
    Ok(())
}

/// The output sweeper, which returns closed-channel funds to the wallet. Outputs that are the
/// wallet's already are taken out of a queue saved by an earlier version first.
fn output_sweeper(
    opened: &Opened,
    chain: &ChainSource,
    base: &Base,
    wallet: &Arc<Wallet>,
    tip: BestBlock,
) -> Result<Arc<Sweeper>, NodeError> {
    let store = &opened.store;
    crate::node::recovery::sweeper_repair::drop_wallet_static_outputs(&**store, |script| {
        wallet.is_mine(script)
    })
    .map_err(|err| store_error("repairing the output sweeper state", err))?;
    let stored = read_optional(
        store,
        OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
        OUTPUT_SWEEPER_PERSISTENCE_KEY,
    )?;
    let sweeper =
        match stored {
            Some(bytes) => {
                let read_args = (
                    base.broadcaster.clone(),
                    base.fee_estimator.clone(),
                    Some(opened.watch_set.clone()),
                    opened.keys.clone(),
                    wallet.clone(),
                    store.clone(),
                    base.logger.clone(),
                );
                let (_, sweeper) = <(BestBlock, Sweeper)>::read(&mut &bytes[..], read_args)
                    .map_err(|err| NodeError::DataDir {
                        path: opened.data_dir.path().to_path_buf(),
                        reason: format!(
                            "the output sweeper state cannot be read ({err:?}); refusing to start \
                         (nothing was changed)"
                        ),
                    })?;
                sweeper
            }
            None => {
                chain.tracker().admit_new_state(tip.height)?;
                OutputSweeperSync::new(
                    tip,
                    base.broadcaster.clone(),
                    base.fee_estimator.clone(),
                    Some(opened.watch_set.clone()),
                    opened.keys.clone(),
                    wallet.clone(),
                    store.clone(),
                    base.logger.clone(),
                )
            }
        };
    Ok(Arc::new(sweeper))
}

/// The listeners brought to the chain tip besides the channel monitors.
struct Listeners<'a> {
    wallet: &'a Arc<Wallet>,
    channel_manager: &'a Arc<ChannelManager>,
    manager_block: BlockHash,
    sweeper: &'a Arc<Sweeper>,
    sweeping: &'a Arc<SweepingListener>,
}

/// Steps 10 and 11: brings every listener to the chain tip, then hands the monitors to the
/// chain monitor, which listens for all of them from there on. Each monitor is synchronised on
/// its own, from its own best block; the wallet, manager and sweeper likewise. Each registers
/// what its channel watches first, so the blocks mined while the node was down are fetched in
/// full where they touch a channel.
async fn sync_listeners(
    opened: &Opened,
    chain: &Arc<ChainSource>,
    base: &Base,
    listeners: Listeners<'_>,
    monitors: Monitors,
) -> Result<ValidatedBlockHeader, NodeError> {
    let listener = &opened.listener;
    let monitor_listeners: Vec<Arc<StartupMonitor>> = monitors
        .into_iter()
        .map(|(_, monitor)| {
            Arc::new(StartupMonitor::new(
                monitor,
                base.broadcaster.clone(),
                base.fee_estimator.clone(),
                base.logger.clone(),
                opened.watch_set.clone(),
            ))
        })
        .collect();
    let mut best_blocks = vec![
        listeners.wallet.best_block().block_hash,
        listeners.manager_block,
    ];
    listener.register("wallet", listeners.wallet.clone());
    listener.register("channel manager", listeners.channel_manager.clone());
    for monitor in &monitor_listeners {
        best_blocks.push(monitor.monitor().current_best_block().block_hash);
        listener.register(
            &format!("channel monitor {}", monitor.monitor().channel_id()),
            monitor.clone(),
        );
    }
    best_blocks.push(listeners.sweeper.current_best_block().block_hash);
    listener.register("output sweeper", listeners.sweeping.clone());
    let synced_tip = chain.synchronize(&best_blocks).await.map_err(|err| {
        NodeError::NotReady(format!(
            "could not bring channel state to the chain tip: {}",
            err.into_inner()
        ))
    })?;

    // Step 11: hand the monitors to the chain monitor, which now listens for all of them.
    let fan_out: Vec<(String, SharedListen)> = vec![
        ("wallet".into(), listeners.wallet.clone()),
        ("channel manager".into(), listeners.channel_manager.clone()),
        ("chain monitor".into(), base.chain_monitor.clone()),
        ("output sweeper".into(), listeners.sweeping.clone()),
    ];
    listener.replace_all(fan_out);
    for monitor in monitor_listeners {
        let monitor = Arc::try_unwrap(monitor)
            .map_err(|_| NodeError::NotReady("a channel monitor is still shared".into()))?
            .into_monitor();
        let channel_id = monitor.channel_id();
        base.chain_monitor
            .watch_channel(channel_id, monitor)
            .map_err(|()| NodeError::Channel(format!("could not watch channel {channel_id}")))?;
    }
    Ok(synced_tip)
}

/// Gossip, onion messages and the peer manager that carries them with the channel messages.
struct Networking {
    gossip_sync: Arc<GossipSync>,
    onion_messenger: Arc<NodeOnionMessenger>,
    peer_manager: Arc<PeerManager>,
}

/// Steps 12 and 13: gossip sync, the onion messenger (for BOLT12 offers) and the peer manager.
fn networking(
    opened: &Opened,
    base: &Base,
    routing: &Routing,
    channel_manager: &Arc<ChannelManager>,
) -> Networking {
    let (keys, logger) = (&opened.keys, &base.logger);
    // Step 12: gossip.
    let gossip_sync: Arc<GossipSync> = Arc::new(P2PGossipSync::new(
        routing.network_graph.clone(),
        None,
        logger.clone(),
    ));
    // Onion messages, for BOLT12 offers.
    let onion_messenger = Arc::new(OnionMessenger::new(
        keys.clone(),
        keys.clone(),
        logger.clone(),
        channel_manager.clone(),
        routing.message_router.clone(),
        channel_manager.clone(),
        channel_manager.clone(),
        IgnoringMessageHandler {},
        IgnoringMessageHandler {},
    ));
    // Step 13: the peer manager.
    let peer_manager: Arc<PeerManager> = Arc::new(PeerManager::new(
        MessageHandler {
            chan_handler: channel_manager.clone(),
            route_handler: Arc::new({
                let bounded = BoundedGossip::with_limit(
                    gossip_sync.clone(),
                    routing.network_graph.clone(),
                    opened
                        .config
                        .max_graph_channels
                        .unwrap_or(super::gossip::MAX_GRAPH_CHANNELS),
                );
                let bounded = match opened.config.gossip_peers {
                    Some(peers) => bounded.asking_at_most(peers),
                    None => bounded,
                };
                if opened.config.gossip_since_stored_graph {
                    bounded.asking_since_stored_graph()
                } else {
                    bounded
                }
            }),
            onion_message_handler: onion_messenger.clone(),
            custom_message_handler: IgnoringMessageHandler {},
            send_only_message_handler: base.chain_monitor.clone(),
        },
        opened.now.as_secs() as u32,
        &keys.get_secure_random_bytes(),
        logger.clone(),
        keys.clone(),
    ));
    Networking {
        gossip_sync,
        onion_messenger,
        peer_manager,
    }
}

/// The node from its parts, with its payment and peer records and (step 14) its Lightning
/// listener.
#[allow(clippy::too_many_arguments)]
async fn assemble(
    opened: Opened,
    chain: &Arc<ChainSource>,
    base: Base,
    routing: Routing,
    networking: Networking,
    wallet: Arc<Wallet>,
    channel_manager: Arc<ChannelManager>,
    sweeper: Arc<Sweeper>,
) -> Result<(Arc<Node>, watch::Receiver<bool>), NodeError> {
    let Opened {
        config,
        data_dir,
        store,
        keys,
        held,
        ..
    } = opened;
    let payments = Arc::new(
        PaymentStore::load(store.clone()).map_err(|err| store_error("loading payments", err))?,
    );
    let peers =
        Arc::new(PeerStore::load(store.clone()).map_err(|err| store_error("loading peers", err))?);
    let (stop_tx, stop_rx) = watch::channel(false);
    // Step 14: networking.
    let ln_listen_addr = match config.ln_listen {
        Some(addr) => {
            Some(listen_for_peers(addr, networking.peer_manager.clone(), stop_rx.clone()).await?)
        }
        None => None,
    };
    let onion = match (&config.tor_control, ln_listen_addr) {
        (Some(control), Some(listen)) => {
            let tor = super::onion_service::TorControlConfig {
                addr: *control,
                password: config.tor_control_password.clone(),
            };
            let onion = super::onion_service::create(data_dir.path(), tor, listen).await?;
            Some(onion)
        }
        _ => None,
    };
    let onion_address = onion.as_ref().map(|onion| onion.address.clone());
    if let Some(onion) = onion {
        tokio::spawn(onion.keep(stop_rx.clone()));
    }
    let node = Arc::new(Node::new(NodeParts {
        config,
        data_dir,
        keys,
        chain: chain.clone(),
        wallet,
        chain_monitor: base.chain_monitor,
        channel_manager,
        peer_manager: networking.peer_manager,
        onion_messenger: networking.onion_messenger,
        network_graph: routing.network_graph,
        gossip_sync: networking.gossip_sync,
        scorer: routing.scorer,
        sweeper,
        store,
        payments,
        peers,
        held,
        ln_listen_addr,
        onion_address,
        stop_tx,
    }));
    Ok((node, stop_rx))
}

/// Steps 15 to 19: the tasks that keep the node running, each until the node stops.
fn spawn_tasks(
    node: &Arc<Node>,
    chain: &Arc<ChainSource>,
    synced_tip: ValidatedBlockHeader,
    stop_rx: watch::Receiver<bool>,
) {
    // Step 15: keep LDK up to date with the chain.
    node.spawn(
        "chain follower",
        chain.clone().follow_tip(synced_tip, stop_rx.clone()),
    );
    // Steps 16–18: the event handler and background processing (persistence included).
    node.spawn_background_processor(stop_rx.clone());
    // Remembered and channel peers stay connected.
    node.spawn(
        "channel peer reconnection",
        super::peers::keep_peers_connected(
            node.peer_manager.clone(),
            node.config().route(),
            node.channel_manager.clone(),
            node.chain_monitor.clone(),
            node.peers.clone(),
            stop_rx.clone(),
        ),
    );
    // Held channels are released once their state is proved current.
    node.spawn(
        "held channel release",
        crate::node::recovery::held_channels::release_when_settled(
            node.held.clone(),
            node.channel_manager.clone(),
            node.chain_monitor.clone(),
            stop_rx.clone(),
        ),
    );
    // The fee sampler samples every block while the estimates are in use.
    node.spawn(
        "fee demand",
        crate::node::operations::fee_demand::report_fee_sensitive_work(
            node.clone(),
            stop_rx.clone(),
        ),
    );
    // Step 19: announce the node while it has public channels.
    node.spawn(
        "node announcement",
        background::announce_regularly(node.clone(), stop_rx),
    );
}

/// Waits for the chain source's first sync, however long it takes (a first sync on a slow
/// link may take hours; the control API shows its progress meanwhile).
async fn wait_for_first_sync(chain: &Arc<ChainSource>) -> Result<(), NodeError> {
    let mut heights = chain.tracker().subscribe();
    loop {
        if heights.borrow().engine_synced {
            return Ok(());
        }
        if heights.changed().await.is_err() {
            return Err(NodeError::NotReady("the chain source stopped".into()));
        }
    }
}

async fn listen_for_peers(
    addr: SocketAddr,
    peer_manager: Arc<PeerManager>,
    mut stop: watch::Receiver<bool>,
) -> Result<SocketAddr, NodeError> {
    let listener = tokio::net::TcpListener::bind(addr).await.map_err(|err| {
        NodeError::invalid(
            "Lightning listen address",
            format!("cannot listen on {addr}: {err}"),
        )
    })?;
    let local = listener
        .local_addr()
        .map_err(|err| NodeError::invalid("Lightning listen address", err.to_string()))?;
    let open_files = crate::os::open_file_limit().map_or(1_024, |limit| limit.soft);
    let limits = InboundLimits::for_open_files(open_files);
    let total = limits.total();
    tokio::spawn(async move {
        loop {
            tokio::select! {
                accepted = listener.accept() => match accepted {
                    Ok((stream, remote)) => {
                        let Some(place) = limits.admit(remote.ip()) else {
                            debug!(
                                "Lightning connection from {remote} closed: {} inbound \
                                 connections open, or {} from its address",
                                limits.total(),
                                super::inbound::MAX_PER_ADDRESS
                            );
                            continue;
                        };
                        let Ok(stream) = stream.into_std() else { continue };
                        tokio::spawn(serve_inbound(peer_manager.clone(), stream, remote, place));
                    }
                    Err(err) => {
                        warn!("accepting a Lightning connection failed: {err}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                _ = stop.changed() => break,
            }
        }
    });
    info!(
        "listening for Lightning peers on {local} (at most {total} inbound connections, {} \
         from one address)",
        super::inbound::MAX_PER_ADDRESS
    );
    Ok(local)
}

/// Runs one inbound connection, closing it when its handshake does not complete within
/// [`HANDSHAKE_TIMEOUT`](super::inbound::HANDSHAKE_TIMEOUT); `place` is held until it ends.
async fn serve_inbound(
    peer_manager: Arc<PeerManager>,
    stream: std::net::TcpStream,
    remote: SocketAddr,
    place: InboundPlace,
) {
    let closer = stream.try_clone();
    let connection = lightning_net_tokio::setup_inbound(peer_manager.clone(), stream);
    tokio::pin!(connection);
    tokio::select! {
        _ = &mut connection => {}
        _ = tokio::time::sleep(super::inbound::HANDSHAKE_TIMEOUT) => {
            let address = lightning::ln::msgs::SocketAddress::from(remote);
            let completed = peer_manager
                .list_peers()
                .iter()
                .any(|peer| peer.socket_address.as_ref() == Some(&address));
            if !completed {
                debug!("Lightning connection from {remote} closed: no handshake in time");
                if let Ok(closer) = closer {
                    let _ = closer.shutdown(std::net::Shutdown::Both);
                }
            }
            connection.await;
        }
    }
    drop(place);
}

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
use lightning::chain::{BestBlock, Watch};
use lightning::ln::channelmanager::{ChainParameters, ChannelManagerReadArgs};
use lightning::ln::peer_handler::{IgnoringMessageHandler, MessageHandler};
use lightning::onion_message::messenger::{DefaultMessageRouter, OnionMessenger};
use lightning::routing::gossip::P2PGossipSync;
use lightning::routing::router::DefaultRouter;
use lightning::routing::scoring::{
    ProbabilisticScorer, ProbabilisticScoringDecayParameters, ProbabilisticScoringFeeParameters,
};
use lightning::sign::{EntropySource, KeysManager};
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
use log::{debug, info, warn};
use tokio::sync::watch;

use super::background;
use super::inbound::{InboundLimits, InboundPlace};
use super::logger::LdkLogger;
use super::sweeping::SweepingListener;
use super::types::{
    BoundedGossip, ChainMonitor, ChannelManager, GossipSync, NetworkGraph, PeerManager, Persister,
    Scorer, Store, Sweeper,
};
use crate::chain::{
    checkpoints, ChainConfig, ChainListener, ChainSource, Checkpoint, FilterStart, SharedListen,
    WatchSet,
};
use crate::config::Config;
use crate::node::error::NodeError;
use crate::node::keys::keys_manager::NodeKeys;
use crate::node::recovery::fallen_behind;
use crate::node::recovery::held_channels::{HeldChannel, HeldChannels, HoldReason};
use crate::node::recovery::startup_monitor::StartupMonitor;
use crate::node::stores::backup_compare::MonitorFacts;
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

/// Reads `key` from the store; `None` when absent.
fn read_optional(
    store: &Store,
    primary: &str,
    secondary: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, NodeError> {
    match store.read(primary, secondary, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(store_error(&format!("reading {key}"), err)),
    }
}

pub(in crate::node) async fn start(
    config: Config,
    handle: &NodeHandle,
) -> Result<Arc<Node>, NodeError> {
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
    let ldk_dir = data_dir.path().join("ldk");

    // Step 7: the keys manager (needed by the persister, so it comes before step 4).
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("the clock is after 1970");
    let keys = Arc::new(KeysManager::new(
        &seed,
        now.as_secs(),
        now.subsec_nanos(),
        true,
    ));
    let node_id =
        lightning::sign::NodeSigner::get_node_id(&*keys, lightning::sign::Recipient::Node)
            .expect("the node key is available");
    handle.set_node_id(node_id);
    let read_monitor = |bytes: &[u8]| read_monitor_facts(bytes, &keys);
    if let Some(from) = &config.restore_from {
        let copied = crate::node::recovery::restore::restore(
            &crate::node::recovery::restore::RestoreRequest {
                from,
                backup_dir: config.backup_dir.as_deref(),
                data_dir: data_dir.path(),
                wallet_birthday: config.wallet_birthday,
                network: config.network,
                node_id: &node_id,
            },
            &read_monitor,
        )?;
        info!(
            "restored the channel state from the backup directory {} ({copied} files); every \
             channel is held until its peer has reestablished it (see `channels`)",
            from.display()
        );
    }
    let store = Arc::new(match (&config.store, &config.backup_dir) {
        (Some(url), _) => open_postgres(&config, url, &node_id, handle).await?,
        (None, Some(dir)) => {
            Store::Files(crate::node::stores::backup::ChannelStore::open_mirrored(
                ldk_dir,
                dir,
                config.network,
                &node_id,
                &read_monitor,
                &|data_dir_empty| restore_advice(&config, data_dir.path(), dir, data_dir_empty),
            )?)
        }
        (None, None) => Store::new(ldk_dir),
    });
    crate::node::stores::store_copy::check_not_moved(
        &*store,
        &store.info(data_dir.path()).location,
    )?;
    let wallet_exists = wallet_exists(&store, data_dir.path())?;
    fallen_behind::record_on_panic(data_dir.path());
    let manager_bytes = read_optional(
        &store,
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    )?;
    let fresh = manager_bytes.is_none();
    // Channel state must be readable before anything else starts: a damaged monitor stops
    // the node with the data directory untouched.
    let stored_monitors = check_monitors_readable(&store, &keys, data_dir.path())?;
    let recovering = fallen_behind::recovery_pending(data_dir.path());
    if recovering {
        warn!(
            "an earlier run found this node's channel state behind its peers' ({} records \
             it); starting with an empty channel manager so that the peers close the {} \
             channel(s) with their latest state",
            data_dir.path().join(fallen_behind::RECORD_FILE).display(),
            stored_monitors.len()
        );
        let behind: Vec<_> = stored_monitors
            .iter()
            .map(|monitor| (monitor.channel_id, monitor.funding))
            .collect();
        fallen_behind::add(&store, &behind)
            .map_err(|err| store_error("naming the channels behind", err))?;
    }
    let monitor_heights: Vec<u32> = stored_monitors
        .iter()
        .map(|m| m.best_block_height)
        .collect();
    if fresh && !recovering && !monitor_heights.is_empty() {
        return Err(NodeError::DataDir {
            path: data_dir.path().to_path_buf(),
            reason: "channel monitors exist but the channel manager is missing; refusing to \
                     start (nothing was changed)"
                .into(),
        });
    }

    // Step 5 (the transaction filter) comes first: the chain source and the wallet need it.
    let watch_set = Arc::new(WatchSet::new());
    let listener = Arc::new(ChainListener::new());
    let mut chain_config = ChainConfig::new(config.network, data_dir.path());
    chain_config.peers = config.bitcoin_peers.clone();
    chain_config.only_peers = config.only_bitcoin_peers;
    chain_config.required_peers = config.filter_quorum;
    chain_config.fee_overrides = config.fee_overrides.clone();
    chain_config.fee_sample_interval = config.fee_sample_interval;
    let chain_is_new = !data_dir.path().join("chain.sqlite").exists();
    chain_config.start = new_chain_start(
        &config,
        wallet_exists,
        fresh,
        monitor_heights.iter().min().copied(),
    );
    chain_config.filters = new_chain_filters(
        &config,
        wallet_exists,
        fresh && monitor_heights.is_empty(),
        chain_is_new.then_some(chain_config.start),
    );
    // The engine starts once the listeners' saved positions are known (when they are
    // synchronised), so that its chain holds every block they still need.
    let chosen_start = chain_config.start;
    let chain = ChainSource::open(chain_config, watch_set.clone(), listener.clone())?;
    handle.set_chain(chain.clone());
    // Before anything can broadcast: the channels behind never spend their funding.
    chain.broadcaster().refuse_spends_of(
        fallen_behind::load(&store)
            .map_err(|err| store_error("reading the channels behind", err))?,
    );
    // Likewise, the held channels never broadcast their own commitments.
    let held = Arc::new(
        HeldChannels::open(store.clone(), chain.broadcaster().clone())
            .map_err(|err| store_error("reading the held channels", err))?,
    );
    let stored_start =
        check_stored_start(&config, data_dir.path(), &chain, chain_is_new, chosen_start);
    let opened = Opened {
        config,
        data_dir,
        seed,
        store,
        // A recovery starts with an empty channel manager.
        manager_bytes: manager_bytes.filter(|_| !recovering),
        recovering,
        now,
        keys,
        watch_set,
        listener,
        held,
        wallet_exists,
        chain_is_new,
    };
    let started = match stored_start {
        Ok(()) => start_on_chain(opened, chain.clone()).await,
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

/// What [`start`] has opened and checked before the chain source.
struct Opened {
    config: Config,
    data_dir: DataDir,
    seed: [u8; 32],
    store: Arc<Store>,
    manager_bytes: Option<Vec<u8>>,
    /// Whether the channel state fell behind and the start recovers (see [`fallen_behind`]).
    recovering: bool,
    now: std::time::Duration,
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

/// The rest of the start-up, once the chain source is open.
async fn start_on_chain(opened: Opened, chain: Arc<ChainSource>) -> Result<Arc<Node>, NodeError> {
    let Opened {
        config,
        data_dir,
        seed,
        store,
        manager_bytes,
        recovering,
        now,
        keys,
        watch_set,
        listener,
        held,
        wallet_exists,
        chain_is_new,
    } = opened;
    let fresh = manager_bytes.is_none();

    // Step 1: the fee estimator. Step 2: the logger. Step 3: the broadcaster.
    let fee_estimator = chain.fee_estimator().clone();
    let logger = Arc::new(LdkLogger::default());
    let broadcaster = chain.broadcaster().clone();

    // Step 4: persistence of channel monitors.
    let persister: Arc<Persister> = Arc::new(MonitorUpdatingPersister::new(
        store.clone(),
        logger.clone(),
        MAX_PENDING_MONITOR_UPDATES,
        keys.clone(),
        keys.clone(),
        broadcaster.clone(),
        fee_estimator.clone(),
    ));

    // Step 6: the chain monitor.
    let chain_monitor: Arc<ChainMonitor> = Arc::new(LdkChainMonitor::new(
        Some(watch_set.clone()),
        broadcaster.clone(),
        logger.clone(),
        fee_estimator.clone(),
        persister.clone(),
        keys.clone(),
        lightning::sign::NodeSigner::get_peer_storage_key(&*keys),
    ));

    // Step 8: channel monitors from disk. A damaged monitor stops the start-up: running
    // without it could lose the channel's funds.
    let monitors = persister
        .read_all_channel_monitors_with_updates()
        .map_err(|err| NodeError::DataDir {
            path: data_dir.path().to_path_buf(),
            reason: format!(
                "a channel monitor in {} cannot be read ({err}); refusing to start without it \
                 (nothing was changed)",
                data_dir.path().join("ldk").display()
            ),
        })?;

    // A fresh node starts its wallet and channel manager at the chain tip: wait for the first
    // sync so they are not created at genesis (or at the start checkpoint). A wallet restored
    // from its birthday needs the chain up to there, and listeners saved elsewhere (a standby
    // on PostgreSQL, whose chain database is its own) need the chain up to their blocks.
    let wallet_path = data_dir.path().join("wallet.sqlite");
    if fresh
        || chain_is_new
        || (config.wallet_birthday.is_some() && !wallet_exists)
        || chain.tracker().in_header_phase()
    {
        chain.start_engine();
        wait_for_first_sync(&chain).await?;
    }
    let tip = chain
        .heights()
        .verified_tip
        .map(|(height, hash)| BestBlock::new(hash, height))
        .ok_or_else(|| NodeError::NotReady("the chain source has no verified block".into()))?;

    // The on-chain wallet, on the same seed. A new wallet starts at the tip, or at the
    // configured birthday when it is restored from an existing seed.
    let wallet_start = match config.wallet_birthday {
        Some(birthday) if !wallet_exists => {
            let before = birthday.saturating_sub(1);
            let hash = chain
                .tracker()
                .headers()
                .hash_at(before)?
                .ok_or_else(|| NodeError::invalid(
                    "wallet birthday",
                    format!("block {before} is not in this node's chain (it starts later, or is not synced that far)"),
                ))?;
            info!("restoring the wallet: rescanning from block {birthday}");
            (before, hash)
        }
        _ => (tip.height, tip.block_hash),
    };
    if !wallet_exists {
        chain.tracker().admit_new_state(wallet_start.0)?;
    }
    let wallet = Arc::new(match store.postgres() {
        Some(postgres) => Wallet::open_in_store(
            postgres.clone(),
            std::path::Path::new(&postgres.status().location),
            &seed,
            config.network,
            Some(wallet_start),
            watch_set.clone(),
            fee_estimator.clone(),
            broadcaster.clone(),
        )?,
        None => Wallet::open(
            &wallet_path,
            &seed,
            config.network,
            Some(wallet_start),
            watch_set.clone(),
            fee_estimator.clone(),
            broadcaster.clone(),
        )?,
    });
    // The broadcaster judges its transactions' fees with the wallet's coins.
    broadcaster.set_prevout_values(Arc::new(crate::node::operations::onchain::WalletPrevouts(
        Arc::downgrade(&wallet),
    )));

    // Channel keys from the keys manager; closed-channel funds go to the wallet.
    let signer_provider = Arc::new(NodeKeys::new(keys.clone(), wallet.clone()));

    // Step 12 (partly): the network graph and scorer, needed by the router.
    let network_graph = Arc::new(
        match read_optional(
            &store,
            NETWORK_GRAPH_PERSISTENCE_PRIMARY_NAMESPACE,
            NETWORK_GRAPH_PERSISTENCE_SECONDARY_NAMESPACE,
            NETWORK_GRAPH_PERSISTENCE_KEY,
        )? {
            Some(bytes) => {
                NetworkGraph::read(&mut &bytes[..], logger.clone()).unwrap_or_else(|err| {
                    warn!("stored network graph unreadable ({err:?}); starting from an empty one");
                    NetworkGraph::new(config.network, logger.clone())
                })
            }
            None => NetworkGraph::new(config.network, logger.clone()),
        },
    );
    let decay = ProbabilisticScoringDecayParameters::default();
    let scorer: Arc<RwLock<Scorer>> = Arc::new(RwLock::new(
        match read_optional(
            &store,
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
    let router = Arc::new(DefaultRouter::new(
        network_graph.clone(),
        logger.clone(),
        keys.clone(),
        scorer.clone(),
        ProbabilisticScoringFeeParameters::default(),
    ));
    let message_router = Arc::new(DefaultMessageRouter::new(
        network_graph.clone(),
        keys.clone(),
    ));

    // Step 9: the channel manager, fresh at the tip or from disk with its monitors.
    let user_config = user_config();
    let read_manager = |bytes: &[u8]| {
        let read_args = ChannelManagerReadArgs::new(
            keys.clone(),
            keys.clone(),
            signer_provider.clone(),
            fee_estimator.clone(),
            chain_monitor.clone(),
            broadcaster.clone(),
            router.clone(),
            message_router.clone(),
            logger.clone(),
            user_config.clone(),
            monitors.iter().map(|(_, monitor)| monitor).collect(),
        );
        <(BlockHash, ChannelManager)>::read(&mut &bytes[..], read_args).map_err(|err| {
            NodeError::DataDir {
                path: data_dir.path().to_path_buf(),
                reason: format!(
                    "the channel manager cannot be read ({err:?}); refusing to start \
                     (nothing was changed)"
                ),
            }
        })
    };
    let (manager_block, channel_manager) = match &manager_bytes {
        Some(bytes) => read_manager(bytes)?,
        None => {
            chain.tracker().admit_new_state(tip.height)?;
            let manager = ChannelManager::new(
                fee_estimator.clone(),
                chain_monitor.clone(),
                broadcaster.clone(),
                router.clone(),
                message_router.clone(),
                logger.clone(),
                keys.clone(),
                keys.clone(),
                signer_provider.clone(),
                user_config.clone(),
                ChainParameters {
                    network: config.network,
                    best_block: tip,
                },
                now.as_secs() as u32,
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
    let channel_manager = Arc::new(channel_manager);
    // Channels LDK found with a manager older than their monitor are closed by it with the
    // monitor's commitment; that state is not proved current, so they are held before any
    // of it can be broadcast.
    let stale: Vec<HeldChannel> = logger
        .take_stale_manager_channels()
        .into_iter()
        .filter_map(|channel_id| {
            let monitor = monitors
                .iter()
                .find(|(_, m)| m.channel_id() == channel_id)?;
            Some(HeldChannel {
                channel_id,
                funding: monitor.1.get_funding_txo().into_bitcoin_outpoint(),
                reason: HoldReason::StaleManager,
            })
        })
        .collect();
    held.hold(&stale)
        .map_err(|err| store_error("holding channels with a stale manager", err))?;
    if recovering {
        store
            .write(
                CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
                CHANNEL_MANAGER_PERSISTENCE_KEY,
                channel_manager.encode(),
            )
            .map_err(|err| store_error("saving the new channel manager", err))?;
        fallen_behind::finish_recovery(data_dir.path())
            .map_err(|err| store_error("removing the record of the channel state behind", err))?;
        info!("the channel manager starts empty; the channels behind are closed by their peers");
    }

    // The output sweeper returns closed-channel funds to the wallet. Outputs that are the
    // wallet's already are taken out of a queue saved by an earlier version first.
    crate::node::recovery::sweeper_repair::drop_wallet_static_outputs(&*store, |script| {
        wallet.is_mine(script)
    })
    .map_err(|err| store_error("repairing the output sweeper state", err))?;
    let sweeper: Arc<Sweeper> = Arc::new(
        match read_optional(
            &store,
            OUTPUT_SWEEPER_PERSISTENCE_PRIMARY_NAMESPACE,
            OUTPUT_SWEEPER_PERSISTENCE_SECONDARY_NAMESPACE,
            OUTPUT_SWEEPER_PERSISTENCE_KEY,
        )? {
            Some(bytes) => {
                let (_, sweeper) = <(BestBlock, Sweeper)>::read(
                    &mut &bytes[..],
                    (
                        broadcaster.clone(),
                        fee_estimator.clone(),
                        Some(watch_set.clone()),
                        keys.clone(),
                        wallet.clone(),
                        store.clone(),
                        logger.clone(),
                    ),
                )
                .map_err(|err| NodeError::DataDir {
                    path: data_dir.path().to_path_buf(),
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
                    broadcaster.clone(),
                    fee_estimator.clone(),
                    Some(watch_set.clone()),
                    keys.clone(),
                    wallet.clone(),
                    store.clone(),
                    logger.clone(),
                )
            }
        },
    );

    // Step 10: bring every listener to the chain tip. Each monitor is synchronised on its
    // own, from its own best block; the wallet, manager and sweeper likewise.
    // Each registers what its channel watches first, so the blocks mined while the node was
    // down are fetched in full where they touch a channel.
    let monitor_listeners: Vec<Arc<StartupMonitor>> = monitors
        .into_iter()
        .map(|(_, monitor)| {
            Arc::new(StartupMonitor::new(
                monitor,
                broadcaster.clone(),
                fee_estimator.clone(),
                logger.clone(),
                watch_set.clone(),
            ))
        })
        .collect();
    let mut best_blocks = vec![wallet.best_block().block_hash, manager_block];
    listener.register("wallet", wallet.clone());
    listener.register("channel manager", channel_manager.clone());
    for monitor in &monitor_listeners {
        best_blocks.push(monitor.monitor().current_best_block().block_hash);
        listener.register(
            &format!("channel monitor {}", monitor.monitor().channel_id()),
            monitor.clone(),
        );
    }
    best_blocks.push(sweeper.current_best_block().block_hash);
    let sweeping = Arc::new(SweepingListener::new(sweeper.clone()));
    listener.register("output sweeper", sweeping.clone());
    let synced_tip = chain.synchronize(&best_blocks).await.map_err(|err| {
        NodeError::NotReady(format!(
            "could not bring channel state to the chain tip: {}",
            err.into_inner()
        ))
    })?;

    // Step 11: hand the monitors to the chain monitor, which now listens for all of them.
    let fan_out: Vec<(String, SharedListen)> = vec![
        ("wallet".into(), wallet.clone()),
        ("channel manager".into(), channel_manager.clone()),
        ("chain monitor".into(), chain_monitor.clone()),
        ("output sweeper".into(), sweeping.clone()),
    ];
    listener.replace_all(fan_out);
    for monitor in monitor_listeners {
        let monitor = Arc::try_unwrap(monitor)
            .map_err(|_| NodeError::NotReady("a channel monitor is still shared".into()))?
            .into_monitor();
        let channel_id = monitor.channel_id();
        chain_monitor
            .watch_channel(channel_id, monitor)
            .map_err(|()| NodeError::Channel(format!("could not watch channel {channel_id}")))?;
    }

    // Step 12: gossip.
    let gossip_sync: Arc<GossipSync> = Arc::new(P2PGossipSync::new(
        network_graph.clone(),
        None,
        logger.clone(),
    ));

    // Onion messages, for BOLT12 offers.
    let onion_messenger = Arc::new(OnionMessenger::new(
        keys.clone(),
        keys.clone(),
        logger.clone(),
        channel_manager.clone(),
        message_router.clone(),
        channel_manager.clone(),
        channel_manager.clone(),
        IgnoringMessageHandler {},
        IgnoringMessageHandler {},
    ));

    // Step 13: the peer manager.
    let peer_manager: Arc<PeerManager> = Arc::new(PeerManager::new(
        MessageHandler {
            chan_handler: channel_manager.clone(),
            route_handler: Arc::new(BoundedGossip::new(
                gossip_sync.clone(),
                network_graph.clone(),
            )),
            onion_message_handler: onion_messenger.clone(),
            custom_message_handler: IgnoringMessageHandler {},
            send_only_message_handler: chain_monitor.clone(),
        },
        now.as_secs() as u32,
        &keys.get_secure_random_bytes(),
        logger.clone(),
        keys.clone(),
    ));

    let payments = Arc::new(
        PaymentStore::load(store.clone()).map_err(|err| store_error("loading payments", err))?,
    );
    let peers =
        Arc::new(PeerStore::load(store.clone()).map_err(|err| store_error("loading peers", err))?);
    let (stop_tx, stop_rx) = watch::channel(false);

    // Step 14: networking.
    let ln_listen_addr = match config.ln_listen {
        Some(addr) => Some(listen_for_peers(addr, peer_manager.clone(), stop_rx.clone()).await?),
        None => None,
    };

    let node = Arc::new(Node::new(NodeParts {
        config,
        data_dir,
        keys,
        chain: chain.clone(),
        wallet,
        chain_monitor,
        channel_manager,
        peer_manager,
        onion_messenger,
        network_graph,
        gossip_sync,
        scorer,
        sweeper,
        store,
        payments,
        peers,
        held,
        ln_listen_addr,
        stop_tx,
    }));

    node.reconcile_pending_payments();
    sweeping.attach(&node);

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
    info!(
        "node {} running on {} (chain tip {} at height {})",
        node.node_id(),
        crate::config::network_name(node.config.network),
        synced_tip.header.block_hash(),
        synced_tip.height
    );
    Ok(node)
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

/// Reads a stored channel monitor's bytes (as `MonitorUpdatingPersister` stores them) with
/// the node's keys, without applying updates or starting anything; `None` for a monitor LDK
/// no longer loads.
fn read_monitor_facts(bytes: &[u8], keys: &KeysManager) -> Result<Option<MonitorFacts>, String> {
    use lightning::util::persist::MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL;
    let body = bytes
        .strip_prefix(MONITOR_UPDATING_PERSISTER_PREPEND_SENTINEL)
        .unwrap_or(bytes);
    let monitor = <Option<(
        BlockHash,
        lightning::chain::channelmonitor::ChannelMonitor<lightning::sign::InMemorySigner>,
    )>>::read(&mut &body[..], (keys, keys))
    .map_err(|err| format!("{err:?}"))?;
    Ok(monitor.map(|(_, monitor)| MonitorFacts {
        channel_id: monitor.channel_id(),
        funding: monitor.get_funding_txo().into_bitcoin_outpoint(),
        update_id: monitor.get_latest_update_id(),
        best_block_height: monitor.current_best_block().height,
    }))
}

/// Reads every stored channel monitor once, so that a damaged one is reported before the
/// node touches its data directory.
fn check_monitors_readable(
    store: &Store,
    keys: &KeysManager,
    dir: &std::path::Path,
) -> Result<Vec<MonitorFacts>, NodeError> {
    use lightning::util::persist::{
        CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    };
    let refuse = |key: &str, reason: String| NodeError::DataDir {
        path: dir.to_path_buf(),
        reason: format!(
            "channel monitor {key} cannot be read ({reason}); refusing to start without it \
             (nothing was changed)"
        ),
    };
    let keys_list = store
        .list(
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
        )
        .map_err(|err| refuse("list", err.to_string()))?;
    let mut monitors = Vec::new();
    for key in &keys_list {
        let bytes = store
            .read(
                CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
                CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
                key,
            )
            .map_err(|err| refuse(key, err.to_string()))?;
        monitors.extend(read_monitor_facts(&bytes, keys).map_err(|err| refuse(key, err))?);
    }
    Ok(monitors)
}

/// What to run when the mirror in `backup_dir` is ahead of the data directory: a restore,
/// into this data directory when it holds only the seed (`data_dir_empty` and no wallet),
/// else into a new one.
fn restore_advice(
    config: &Config,
    data_dir: &std::path::Path,
    backup_dir: &std::path::Path,
    data_dir_empty: bool,
) -> String {
    let network = crate::config::network_name(config.network);
    let restore = |dir: &str| {
        format!(
            "lightfilter --network {network} --datadir {dir} daemon --restore-from {backup} \
             --wallet-birthday HEIGHT --backup-dir {backup}",
            backup = backup_dir.display()
        )
    };
    if data_dir_empty && !data_dir.join("wallet.sqlite").exists() {
        format!(
            "This data directory holds no channel state: to bring the node back from the \
             backup, run `{}`, HEIGHT being a block from before the wallet's first transaction",
            restore(&data_dir.display().to_string())
        )
    } else {
        format!(
            "If this data directory was put back from an older copy, bring the node back from \
             the backup into a new data directory instead: `lightfilter --network {network} \
             --datadir NEW init --words-file -` (or copy the seed file {} into NEW), then `{}`, \
             HEIGHT being a block from before the wallet's first transaction",
            data_dir
                .join(crate::node::stores::data_dir::SEED_FILE)
                .display(),
            restore("NEW")
        )
    }
}

/// Where a new header chain starts: for a new node, the newest start point of the network
/// (compiled in, or `--checkpoint`), below the wallet birthday when the wallet is restored;
/// for a node that has a wallet or channels already (its chain database was removed), the
/// `--checkpoint` given, else genesis, as their saved blocks may lie below any start point.
///
/// A node with channel state but no wallet yet, restoring its wallet from a birthday (a
/// restore from a backup), starts like a new one, below the birthday and below every channel
/// monitor's block.
fn new_chain_start(
    config: &Config,
    wallet_exists: bool,
    fresh: bool,
    lowest_monitor: Option<u32>,
) -> Option<Checkpoint> {
    if wallet_exists {
        return config.checkpoint;
    }
    if fresh {
        return checkpoints::start_for(config.network, config.checkpoint, config.wallet_birthday);
    }
    match config.wallet_birthday {
        Some(birthday) => checkpoints::start_for(
            config.network,
            config.checkpoint,
            Some(lowest_monitor.map_or(birthday, |height| height.min(birthday))),
        ),
        None => config.checkpoint,
    }
}

/// Where a new chain checks compact filters from: a node with nothing that can hold money (no
/// wallet, no channel state) syncs headers only, and checks the filters of the blocks after
/// the tip its first sync reaches, or from its wallet birthday on when it restores a wallet;
/// its wallet and channel manager are created there. A node that holds a wallet or channel
/// state already (its chain database was removed, or channels are restored from a backup)
/// checks every filter from the chain's start, since that state may stand on any block.
/// For a new chain database (`new_chain` gives where it starts) the log says which, and why.
fn new_chain_filters(
    config: &Config,
    wallet_exists: bool,
    no_channel_state: bool,
    new_chain: Option<Option<Checkpoint>>,
) -> FilterStart {
    let holds = if wallet_exists {
        Some("a wallet")
    } else if !no_channel_state {
        Some("channel state")
    } else {
        None
    };
    let plan = match (holds, config.wallet_birthday) {
        (Some(_), _) => FilterStart::ChainStart,
        (None, Some(birthday)) => FilterStart::Height(birthday),
        (None, None) => FilterStart::Tip,
    };
    if let Some(start) = new_chain {
        let start = start.map_or(0, |start| start.height);
        match (holds, plan) {
            (Some(what), _) => info!(
                "this node holds {what} but no chain database: checking every compact filter \
                 from block {} on, since that state may stand on any block",
                start + 1
            ),
            (None, FilterStart::Height(birthday)) => info!(
                "restoring a wallet with birthday {birthday} and no channel state: syncing \
                 headers only from block {} to {}, then checking compact filters from \
                 {birthday} on",
                start + 1,
                birthday.saturating_sub(1)
            ),
            (None, _) => info!(
                "a new node (no wallet, no channel state): syncing headers only from block {} \
                 to the tip, then checking the compact filters of the blocks after it, where \
                 its wallet and channel manager start",
                start + 1
            ),
        }
    }
    plan
}

/// Refuses a `--checkpoint` below where an existing chain database starts: the blocks
/// between them are not in it (and a restore from a birthday there could not find its
/// coins). A chain that starts at or below the checkpoint is kept.
fn check_stored_start(
    config: &Config,
    data_dir: &std::path::Path,
    chain: &ChainSource,
    chain_is_new: bool,
    chosen: Option<Checkpoint>,
) -> Result<(), NodeError> {
    let stored = chain.tracker().chain_start();
    let Some(explicit) = config.checkpoint else {
        return Ok(());
    };
    if chain_is_new || stored.height <= explicit.height {
        if !chain_is_new && Some(stored) != chosen {
            info!(
                "the chain database starts after block {} ({}); it is kept (--checkpoint \
                 {explicit} applies to a new chain database only)",
                stored.height, stored.hash
            );
        }
        return Ok(());
    }
    Err(NodeError::invalid(
        "checkpoint",
        format!(
            "the chain database {} starts after block {}, above --checkpoint {explicit}, so \
             the blocks between them are not in it; to start over from the checkpoint, stop \
             the node and delete that file (it holds only headers and filters: coins and \
             channels are kept)",
            data_dir.join("chain.sqlite").display(),
            stored.height
        ),
    ))
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

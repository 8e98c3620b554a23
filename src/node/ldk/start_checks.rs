//! What the start-up reads and checks before anything runs: the stored channel monitors and
//! manager, where a new header chain starts and checks filters from, a `--checkpoint` against
//! the stored chain, and the restore command to advise when the backup is ahead. Nothing here
//! writes, except naming the channels behind when a recovery is pending.

use std::path::Path;

use bitcoin::BlockHash;
use lightning::sign::KeysManager;
use lightning::util::persist::{
    KVStoreSync, CHANNEL_MANAGER_PERSISTENCE_KEY, CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning::util::ser::ReadableArgs;
use log::{info, warn};

use super::types::Store;
use crate::chain::{checkpoints, ChainSource, Checkpoint, FilterStart};
use crate::config::Config;
use crate::node::error::NodeError;
use crate::node::recovery::fallen_behind;
use crate::node::stores::backup_compare::MonitorFacts;

/// The channel state found in the store before anything starts.
pub(super) struct StoredChannelState {
    /// The stored channel manager, if any.
    pub manager_bytes: Option<Vec<u8>>,
    /// Whether the channel state fell behind and the start recovers (see [`fallen_behind`]).
    pub recovering: bool,
    /// The best block heights of the stored channel monitors.
    pub monitor_heights: Vec<u32>,
}

impl StoredChannelState {
    /// Whether the node has no channel manager yet.
    pub fn fresh(&self) -> bool {
        self.manager_bytes.is_none()
    }
}

/// Reads `key` from the store; `None` when absent.
pub(super) fn read_optional(
    store: &Store,
    primary: &str,
    secondary: &str,
    key: &str,
) -> Result<Option<Vec<u8>>, NodeError> {
    match store.read(primary, secondary, key) {
        Ok(bytes) => Ok(Some(bytes)),
        Err(err) if err.kind() == lightning::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(NodeError::storage(format!("reading {key}"), err)),
    }
}

/// Reads the stored channel manager and checks that every channel monitor is readable before
/// anything else starts: a damaged monitor stops the node with the data directory untouched.
/// A pending recovery names the channels behind; monitors without a manager refuse the start.
pub(super) fn read_channel_state(
    store: &Store,
    keys: &KeysManager,
    data_dir: &Path,
) -> Result<StoredChannelState, NodeError> {
    let manager_bytes = read_optional(
        store,
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    )?;
    let stored_monitors = check_monitors_readable(store, keys, data_dir)?;
    let recovering = fallen_behind::recovery_pending(data_dir);
    if recovering {
        warn!(
            "an earlier run found this node's channel state behind its peers' ({} records \
             it); starting with an empty channel manager so that the peers close the {} \
             channel(s) with their latest state",
            data_dir.join(fallen_behind::RECORD_FILE).display(),
            stored_monitors.len()
        );
        let behind: Vec<_> = stored_monitors
            .iter()
            .map(|monitor| (monitor.channel_id, monitor.funding))
            .collect();
        fallen_behind::add(store, &behind)
            .map_err(|err| NodeError::storage("naming the channels behind", err))?;
    }
    let monitor_heights: Vec<u32> = stored_monitors
        .iter()
        .map(|m| m.best_block_height)
        .collect();
    if manager_bytes.is_none() && !recovering && !monitor_heights.is_empty() {
        return Err(NodeError::DataDir {
            path: data_dir.to_path_buf(),
            reason: "channel monitors exist but the channel manager is missing; refusing to \
                     start (nothing was changed)"
                .into(),
        });
    }
    Ok(StoredChannelState {
        manager_bytes,
        recovering,
        monitor_heights,
    })
}

/// Reads a stored channel monitor's bytes (as `MonitorUpdatingPersister` stores them) with
/// the node's keys, without applying updates or starting anything; `None` for a monitor LDK
/// no longer loads.
pub(super) fn read_monitor_facts(
    bytes: &[u8],
    keys: &KeysManager,
) -> Result<Option<MonitorFacts>, String> {
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
pub(super) fn check_monitors_readable(
    store: &Store,
    keys: &KeysManager,
    dir: &Path,
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
pub(super) fn restore_advice(
    config: &Config,
    data_dir: &Path,
    backup_dir: &Path,
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
pub(super) fn new_chain_start(
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
pub(super) fn new_chain_filters(
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
pub(super) fn check_stored_start(
    config: &Config,
    data_dir: &Path,
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

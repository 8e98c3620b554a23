//! Which of two copies of the channel state is ahead, and bringing a mirror in step with the
//! data directory without ever making it older or emptier.
//!
//! A copy's channel state is its channel manager and, for each channel, its channel monitor
//! with the monitor updates stored beside it. A channel's position is the latest update id
//! LDK would reach reading that copy: the monitor's own, then each following update file in
//! turn (as `MonitorUpdatingPersister` reads them). A copy is behind another when it lacks a
//! channel manager the other has, or when any channel is missing from it or stands at a lower
//! position there. Starting from a copy that is behind would run channels from revoked states;
//! making the mirror match such a copy would destroy the only current one.
//!
//! Reading a monitor needs the node's keys, so the caller says how ([`ReadMonitor`]).

use std::collections::{BTreeMap, BTreeSet};

use bitcoin::OutPoint;
use lightning::io;
use lightning::ln::types::ChannelId;
use lightning::util::persist::{
    KVStoreSync, MigratableKVStore, ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MANAGER_PERSISTENCE_KEY, CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE, CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
};
use lightning_persister::fs_store::FilesystemStore;

/// What a stored channel monitor says of itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MonitorFacts {
    /// Its channel.
    pub channel_id: ChannelId,
    /// The channel's funding output.
    pub funding: OutPoint,
    /// The latest update the monitor itself holds (updates stored beside it not counted).
    pub update_id: u64,
    /// The height of the monitor's best block.
    pub best_block_height: u32,
}

/// Reads a stored monitor's bytes (as the store holds them) into its facts, `None` for a
/// monitor LDK no longer loads (its channel closed and nothing is left to claim); an error
/// says why it cannot be read.
pub type ReadMonitor<'a> = &'a dyn Fn(&[u8]) -> Result<Option<MonitorFacts>, String>;

/// One channel in one copy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChannelPosition {
    /// What the monitor says of itself.
    pub facts: MonitorFacts,
    /// The latest update LDK reaches reading this copy: the monitor's, then each following
    /// update file in turn.
    pub latest_update_id: u64,
    /// The ids of the update files stored for the monitor.
    pub update_files: BTreeSet<u64>,
}

/// The channel state of one copy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CopyState {
    /// Whether it holds a channel manager.
    pub has_manager: bool,
    /// Its channels, by monitor key (the store's key of the monitor file).
    pub channels: BTreeMap<String, ChannelPosition>,
    /// Monitor keys of archived (fully resolved) channels.
    pub archived: BTreeSet<String>,
    /// Monitor keys of monitors LDK no longer loads (see [`ReadMonitor`]).
    pub resolved: BTreeSet<String>,
}

impl CopyState {
    /// Whether it holds no channel state at all.
    pub fn is_empty(&self) -> bool {
        !self.has_manager && self.channels.is_empty()
    }
}

/// Why a copy cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum ReadStateError {
    /// The store could not be listed or read.
    #[error("{0}")]
    Io(#[from] io::Error),
    /// A monitor could not be read.
    #[error("channel monitor {key} cannot be read ({reason})")]
    Monitor {
        /// The monitor's key.
        key: String,
        /// Why.
        reason: String,
    },
}

fn is_not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

fn list_or_empty(
    store: &FilesystemStore,
    primary: &str,
    secondary: &str,
) -> io::Result<Vec<String>> {
    match KVStoreSync::list(store, primary, secondary) {
        Ok(keys) => Ok(keys),
        Err(err) if is_not_found(&err) => Ok(Vec::new()),
        Err(err) => Err(err),
    }
}

/// Reads the channel state of the copy in `store`.
pub fn read_state(store: &FilesystemStore, read: ReadMonitor) -> Result<CopyState, ReadStateError> {
    let has_manager = match KVStoreSync::read(
        store,
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    ) {
        Ok(_) => true,
        Err(err) if is_not_found(&err) => false,
        Err(err) => return Err(err.into()),
    };
    let mut channels = BTreeMap::new();
    let mut resolved = BTreeSet::new();
    for key in list_or_empty(
        store,
        CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
    )? {
        let bytes = KVStoreSync::read(
            store,
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            &key,
        )?;
        let facts = read(&bytes).map_err(|reason| ReadStateError::Monitor {
            key: key.clone(),
            reason,
        })?;
        let Some(facts) = facts else {
            resolved.insert(key);
            continue;
        };
        let update_files: BTreeSet<u64> = list_or_empty(
            store,
            CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
            &key,
        )?
        .iter()
        .filter_map(|name| name.parse().ok())
        .collect();
        let mut latest_update_id = facts.update_id;
        while let Some(next) = latest_update_id.checked_add(1) {
            if !update_files.contains(&next) {
                break;
            }
            latest_update_id = next;
        }
        channels.insert(
            key,
            ChannelPosition {
                facts,
                latest_update_id,
                update_files,
            },
        );
    }
    let archived = list_or_empty(
        store,
        ARCHIVED_CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
        "",
    )?
    .into_iter()
    .collect();
    Ok(CopyState {
        has_manager,
        channels,
        archived,
        resolved,
    })
}

/// Where one copy holds channel state another lacks or holds older.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ahead {
    /// It holds a channel manager the other lacks.
    Manager,
    /// It holds a channel the other lacks (and has not archived).
    Channel {
        /// The channel.
        channel_id: ChannelId,
        /// The latest update of the channel in the copy that is ahead.
        update_id: u64,
    },
    /// It holds a later state of a channel.
    LaterState {
        /// The channel.
        channel_id: ChannelId,
        /// The latest update in the copy that is ahead.
        update_id: u64,
        /// The latest update in the other copy.
        behind_update_id: u64,
    },
}

impl std::fmt::Display for Ahead {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Ahead::Manager => write!(f, "it holds a channel manager"),
            Ahead::Channel {
                channel_id,
                update_id,
            } => write!(f, "it holds channel {channel_id} (at update {update_id})"),
            Ahead::LaterState {
                channel_id,
                update_id,
                behind_update_id,
            } => write!(
                f,
                "it holds channel {channel_id} at update {update_id}, against update \
                 {behind_update_id}"
            ),
        }
    }
}

/// Everything `candidate` holds that `base` lacks or holds older: empty when `candidate` is
/// nowhere ahead of `base`.
pub fn ahead_of(candidate: &CopyState, base: &CopyState) -> Vec<Ahead> {
    let mut ahead = Vec::new();
    if candidate.has_manager && !base.has_manager {
        ahead.push(Ahead::Manager);
    }
    for (key, position) in &candidate.channels {
        match base.channels.get(key) {
            None if base.archived.contains(key) => {}
            None => ahead.push(Ahead::Channel {
                channel_id: position.facts.channel_id,
                update_id: position.latest_update_id,
            }),
            Some(other) if other.latest_update_id < position.latest_update_id => {
                ahead.push(Ahead::LaterState {
                    channel_id: position.facts.channel_id,
                    update_id: position.latest_update_id,
                    behind_update_id: other.latest_update_id,
                })
            }
            Some(_) => {}
        }
    }
    ahead
}

/// What [`bring_in_step`] did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct InStep {
    /// Files written to the mirror.
    pub written: usize,
    /// Files removed from the mirror: update files the monitor written with them supersedes,
    /// and monitors the data directory archived.
    pub removed: usize,
}

/// Writes to `mirror` what is newer in `primary`, which must be nowhere behind it (see
/// [`ahead_of`]): each channel whose position in `primary` is later (or equal, with a
/// monitor at least as far along the chain) is copied with its update files, and the mirror's
/// update files that monitor supersedes are removed; every other key `primary` holds and the
/// mirror lacks or holds otherwise is written; the channel manager last. Keys only the
/// mirror holds are kept, but for the monitors the data directory archived. Only keys
/// `is_mirrored` accepts are touched.
pub fn bring_in_step(
    primary: &FilesystemStore,
    primary_state: &CopyState,
    mirror: &FilesystemStore,
    mirror_state: &CopyState,
    is_mirrored: impl Fn(&str, &str, &str) -> bool,
) -> io::Result<InStep> {
    let mut done = InStep::default();
    let copy = |p: &str, s: &str, k: &str, done: &mut InStep| -> io::Result<()> {
        let bytes = KVStoreSync::read(primary, p, s, k)?;
        let same = match KVStoreSync::read(mirror, p, s, k) {
            Ok(existing) => existing == bytes,
            Err(err) if is_not_found(&err) => false,
            Err(err) => return Err(err),
        };
        if !same {
            KVStoreSync::write(mirror, p, s, k, bytes)?;
            done.written += 1;
        }
        Ok(())
    };
    // Channels first, so that the mirror's manager is never newer than its monitors.
    for (key, position) in &primary_state.channels {
        let take = match mirror_state.channels.get(key) {
            None => true,
            Some(other) => {
                position.latest_update_id > other.latest_update_id
                    || (position.latest_update_id == other.latest_update_id
                        && position.facts.best_block_height >= other.facts.best_block_height)
            }
        };
        if !take {
            continue;
        }
        for id in &position.update_files {
            copy(
                CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                key,
                &id.to_string(),
                &mut done,
            )?;
        }
        copy(
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            key,
            &mut done,
        )?;
        if let Some(other) = mirror_state.channels.get(key) {
            for id in other.update_files.difference(&position.update_files) {
                KVStoreSync::remove(
                    mirror,
                    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                    key,
                    &id.to_string(),
                    false,
                )?;
                done.removed += 1;
            }
        }
    }
    let manager = (
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    );
    for (p, s, k) in primary.list_all_keys()? {
        let is_channel = (p == CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE
            && !primary_state.resolved.contains(&k))
            || p == CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE;
        if is_channel || (p.as_str(), s.as_str(), k.as_str()) == manager || !is_mirrored(&p, &s, &k)
        {
            continue;
        }
        copy(&p, &s, &k, &mut done)?;
    }
    // Monitors the data directory archived leave the mirror's live monitors (their archived
    // copy was written above).
    for (key, position) in &mirror_state.channels {
        if primary_state.channels.contains_key(key) || !primary_state.archived.contains(key) {
            continue;
        }
        for id in &position.update_files {
            KVStoreSync::remove(
                mirror,
                CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE,
                key,
                &id.to_string(),
                false,
            )?;
            done.removed += 1;
        }
        KVStoreSync::remove(
            mirror,
            CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
            CHANNEL_MONITOR_PERSISTENCE_SECONDARY_NAMESPACE,
            key,
            false,
        )?;
        done.removed += 1;
    }
    if primary_state.has_manager {
        copy(manager.0, manager.1, manager.2, &mut done)?;
    }
    Ok(done)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    /// Monitor bytes for the tests' reader: the channel's byte, its update id, its height.
    pub(crate) fn monitor_bytes(channel: u8, update_id: u64, height: u32) -> Vec<u8> {
        let mut bytes = vec![channel];
        bytes.extend(update_id.to_be_bytes());
        bytes.extend(height.to_be_bytes());
        bytes
    }

    /// Reads [`monitor_bytes`].
    pub(crate) fn read_test_monitor(bytes: &[u8]) -> Result<Option<MonitorFacts>, String> {
        if bytes == [0] {
            return Ok(None);
        }
        if bytes.len() != 13 {
            return Err(format!("{} bytes", bytes.len()));
        }
        Ok(Some(MonitorFacts {
            channel_id: ChannelId([bytes[0]; 32]),
            funding: OutPoint::new(bitcoin::Txid::from_byte_array([bytes[0]; 32]), 0),
            update_id: u64::from_be_bytes(bytes[1..9].try_into().unwrap()),
            best_block_height: u32::from_be_bytes(bytes[9..13].try_into().unwrap()),
        }))
    }

    fn write(store: &FilesystemStore, p: &str, s: &str, k: &str, bytes: Vec<u8>) {
        KVStoreSync::write(store, p, s, k, bytes).unwrap();
    }

    fn state(store: &FilesystemStore) -> CopyState {
        read_state(store, &read_test_monitor).unwrap()
    }

    fn all_mirrored(_: &str, _: &str, _: &str) -> bool {
        true
    }

    #[test]
    fn a_channel_position_counts_the_update_files_that_follow_the_monitor() {
        let dir = tempfile::tempdir().unwrap();
        let store = FilesystemStore::new(dir.path().to_path_buf());
        assert!(state(&store).is_empty());
        write(&store, "monitors", "", "a_0", monitor_bytes(1, 10, 100));
        // 11 and 12 follow; 14 does not (13 is missing), and 9 is older than the monitor.
        for id in [9, 11, 12, 14] {
            write(&store, "monitor_updates", "a_0", &id.to_string(), vec![0]);
        }
        let read = state(&store);
        assert!(!read.has_manager);
        assert_eq!(read.channels["a_0"].latest_update_id, 12);
        write(&store, "", "", "manager", vec![1]);
        assert!(state(&store).has_manager);
        write(&store, "monitors", "", "b_0", vec![0; 3]);
        let err = read_state(&store, &read_test_monitor).unwrap_err();
        assert!(err.to_string().contains("b_0"), "{err}");
    }

    #[test]
    fn a_copy_is_ahead_where_it_holds_a_manager_a_channel_or_a_later_state() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let data = FilesystemStore::new(one.path().to_path_buf());
        let mirror = FilesystemStore::new(two.path().to_path_buf());
        write(&mirror, "", "", "manager", vec![1]);
        write(&mirror, "monitors", "", "a_0", monitor_bytes(1, 10, 100));
        write(&mirror, "monitor_updates", "a_0", "11", vec![0]);
        // A data directory holding only a seed: the mirror is ahead in everything.
        assert_eq!(
            ahead_of(&state(&mirror), &state(&data)),
            vec![
                Ahead::Manager,
                Ahead::Channel {
                    channel_id: ChannelId([1; 32]),
                    update_id: 11
                }
            ]
        );
        assert!(ahead_of(&state(&data), &state(&mirror)).is_empty());
        // A data directory rolled back to an older state of the channel.
        write(&data, "", "", "manager", vec![1]);
        write(&data, "monitors", "", "a_0", monitor_bytes(1, 10, 120));
        assert_eq!(
            ahead_of(&state(&mirror), &state(&data)),
            vec![Ahead::LaterState {
                channel_id: ChannelId([1; 32]),
                update_id: 11,
                behind_update_id: 10
            }]
        );
        // The same state, consolidated into the monitor: neither is ahead.
        write(&data, "monitors", "", "a_0", monitor_bytes(1, 11, 120));
        assert!(ahead_of(&state(&mirror), &state(&data)).is_empty());
        assert!(ahead_of(&state(&data), &state(&mirror)).is_empty());
        // A channel the data directory archived is not missing from it.
        write(&mirror, "monitors", "", "b_0", monitor_bytes(2, 5, 100));
        assert_eq!(ahead_of(&state(&mirror), &state(&data)).len(), 1);
        write(
            &data,
            "archived_monitors",
            "",
            "b_0",
            monitor_bytes(2, 6, 130),
        );
        assert!(ahead_of(&state(&mirror), &state(&data)).is_empty());
    }

    #[test]
    fn bringing_in_step_writes_what_is_newer_and_keeps_what_only_the_mirror_holds() {
        let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let data = FilesystemStore::new(one.path().to_path_buf());
        let mirror = FilesystemStore::new(two.path().to_path_buf());
        // The mirror: channel a at 10 + update 11, channel c further along the chain than
        // the data directory's, channel b archived since, a payment record of its own.
        write(&mirror, "", "", "manager", vec![1]);
        write(&mirror, "monitors", "", "a_0", monitor_bytes(1, 10, 100));
        write(&mirror, "monitor_updates", "a_0", "11", vec![11]);
        write(&mirror, "monitors", "", "b_0", monitor_bytes(2, 5, 100));
        write(&mirror, "monitors", "", "c_0", monitor_bytes(3, 7, 150));
        write(&mirror, "payments", "", "p1", vec![1]);
        // The data directory: a consolidated at 12 with update 13, c at the same update but
        // an older block, b archived, a new manager and payment record, and a graph.
        write(&data, "", "", "manager", vec![2]);
        write(&data, "monitors", "", "a_0", monitor_bytes(1, 12, 110));
        write(&data, "monitor_updates", "a_0", "13", vec![13]);
        write(
            &data,
            "archived_monitors",
            "",
            "b_0",
            monitor_bytes(2, 6, 130),
        );
        write(&data, "monitors", "", "c_0", monitor_bytes(3, 7, 140));
        write(&data, "payments", "", "p2", vec![2]);
        write(&data, "", "", "network_graph", vec![9]);
        // A monitor LDK no longer loads is copied like any other file.
        write(&data, "monitors", "", "d_0", vec![0]);
        let (data_state, mirror_state) = (state(&data), state(&mirror));
        assert!(ahead_of(&mirror_state, &data_state).is_empty());
        let done = bring_in_step(&data, &data_state, &mirror, &mirror_state, |p, s, k| {
            !(p.is_empty() && s.is_empty() && k == "network_graph")
        })
        .unwrap();
        let read = |p: &str, s: &str, k: &str| KVStoreSync::read(&mirror, p, s, k).ok();
        assert_eq!(read("", "", "manager"), Some(vec![2]));
        assert_eq!(read("monitors", "", "a_0"), Some(monitor_bytes(1, 12, 110)));
        assert_eq!(read("monitor_updates", "a_0", "13"), Some(vec![13]));
        assert_eq!(read("monitor_updates", "a_0", "11"), None, "superseded");
        assert_eq!(read("monitors", "", "b_0"), None, "archived");
        assert_eq!(
            read("archived_monitors", "", "b_0"),
            Some(monitor_bytes(2, 6, 130))
        );
        assert_eq!(
            read("monitors", "", "c_0"),
            Some(monitor_bytes(3, 7, 150)),
            "the mirror's monitor further along the chain is kept"
        );
        assert_eq!(read("payments", "", "p1"), Some(vec![1]), "kept");
        assert_eq!(read("payments", "", "p2"), Some(vec![2]));
        assert_eq!(read("", "", "network_graph"), None);
        assert_eq!(read("monitors", "", "d_0"), Some(vec![0]));
        assert_eq!(
            done,
            InStep {
                written: 6,
                removed: 2
            }
        );
        // In step, a second pass writes nothing.
        let again =
            bring_in_step(&data, &state(&data), &mirror, &state(&mirror), all_mirrored).unwrap();
        assert_eq!(again.removed, 0);
    }
}

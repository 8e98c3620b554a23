//! The channel-state store and its live mirror: every write and removal of LDK's state
//! (channel monitors and their updates, the channel manager, the sweeper's state, payment and
//! peer records) goes to the backup directory and to `<datadir>/ldk`, each fsynced, before
//! the call returns; a write the mirror cannot take fails the call. Reads come from the
//! primary copy. The network graph and the scorer, which the node can learn again, are not
//! mirrored. The mirror never holds the seed.
//!
//! The order of the two writes keeps the primary copy consistent when the mirror fails (the
//! mirror is the copy most likely to: a USB stick, a network mount). A channel monitor or
//! monitor update goes to the mirror first, so one the mirror refuses is on neither copy and
//! LDK stops before acknowledging it; everything else, the channel manager above all, goes to
//! the primary copy first, so that the manager there is never older than its monitors (which
//! would close the channel at the next start). A mirror found missing or replaced at run time
//! (its directory is not the one opened at start) fails every write until it comes back.
//!
//! The mirror is marked with the node it belongs to ([`MARKER_KEY`]); a start with a mirror
//! of another node, a directory that holds something else, or one that cannot be written is
//! refused. So is a start whose mirror is ahead of the primary copy anywhere (a data
//! directory that was lost and made again from the seed, or put back from an older copy):
//! neither copy is changed, and the refusal says how to restore. Otherwise the mirror is
//! brought in step at every start, taking only what is newer in the primary copy (see
//! `backup_compare`).

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use lightning::io;
use lightning::util::persist::{
    KVStoreSync, CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE,
    CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE, NETWORK_GRAPH_PERSISTENCE_KEY,
    SCORER_PERSISTENCE_KEY,
};
use lightning_persister::fs_store::FilesystemStore;
use log::{error, info, warn};

use super::backup_compare::{self, ReadMonitor};
use crate::config::network_name;

/// Key (in the top namespace of the mirror) of the file naming the node a mirror belongs to.
pub const MARKER_KEY: &str = "lightfilter_backup";

/// Why a backup directory cannot be used, or a restore from it cannot be done.
#[derive(Debug, thiserror::Error)]
#[error("backup directory {}: {reason}", path.display())]
pub struct BackupError {
    /// The backup directory.
    pub path: PathBuf,
    /// What is wrong.
    pub reason: String,
}

/// The state of the live mirror, as `getinfo` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BackupState {
    /// No backup directory is configured.
    Off,
    /// The node is starting; the mirror is not open yet.
    Starting,
    /// The last write reached the mirror.
    Ok,
    /// The last write to the mirror failed (and so did the call that made it).
    Failing,
}

impl BackupState {
    /// The name shown by `getinfo`.
    pub fn as_str(&self) -> &'static str {
        match self {
            BackupState::Off => "off",
            BackupState::Starting => "starting",
            BackupState::Ok => "ok",
            BackupState::Failing => "failing",
        }
    }
}

/// The live mirror's directory, state and last failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BackupStatus {
    /// The backup directory, if one is configured.
    pub dir: Option<PathBuf>,
    /// Its state.
    pub state: BackupState,
    /// The last write that failed on the mirror, kept until a later write succeeds.
    pub last_error: Option<String>,
}

/// What identifies a directory while it stays the same: device and inode.
type DirIdentity = (u64, u64);

fn identity_of(path: &Path) -> std::io::Result<DirIdentity> {
    use std::os::unix::fs::MetadataExt;
    let metadata = std::fs::metadata(path)?;
    if !metadata.is_dir() {
        return Err(std::io::Error::other("it is not a directory"));
    }
    Ok((metadata.dev(), metadata.ino()))
}

/// The mirror of a [`ChannelStore`].
struct Mirror {
    dir: PathBuf,
    store: FilesystemStore,
    identity: DirIdentity,
    /// Held across the mirror's and the primary's write of one call, so both copies see the
    /// writes in the same order.
    order: Mutex<()>,
    last_error: Mutex<Option<String>>,
}

impl Mirror {
    /// Fails unless the backup directory is still the one opened at start.
    fn check_present(&self) -> Result<(), String> {
        match identity_of(&self.dir) {
            Ok(identity) if identity == self.identity => Ok(()),
            Ok(_) => Err("the directory was replaced since the daemon started".into()),
            Err(err) => Err(format!("it is gone ({err})")),
        }
    }

    /// Runs `op` on the mirror, recording (and logging at error level) a failure. The
    /// directory must be the one opened at start before and after `op`: a write that raced
    /// with its removal may have gone to a directory the store made in its place.
    fn apply(
        &self,
        what: &str,
        op: &impl Fn(&FilesystemStore) -> io::Result<()>,
    ) -> io::Result<()> {
        let result = self
            .check_present()
            .and_then(|()| op(&self.store).map_err(|err| describe(&err)))
            .and_then(|()| self.check_present());
        let mut last_error = self.last_error.lock().unwrap_or_else(|p| p.into_inner());
        match result {
            Ok(()) => {
                if last_error.take().is_some() {
                    info!(
                        "backup directory {}: writes reach it again",
                        self.dir.display()
                    );
                }
                Ok(())
            }
            Err(err) => {
                let message = format!("{what} failed: {err}");
                error!(
                    "backup directory {}: {message}; the write is refused, the channel state \
                     is not acknowledged until the backup takes it",
                    self.dir.display()
                );
                *last_error = Some(message.clone());
                Err(io_error(format!(
                    "backup directory {}: {message}",
                    self.dir.display()
                )))
            }
        }
    }
}

/// LDK's key-value store for the node: `<datadir>/ldk`, and the backup directory's mirror
/// when one is configured.
pub struct ChannelStore {
    primary: FilesystemStore,
    mirror: Option<Mirror>,
}

/// Whether a key is mirrored: everything but the network graph and the scorer.
pub(in crate::node) fn is_mirrored(
    primary_namespace: &str,
    secondary_namespace: &str,
    key: &str,
) -> bool {
    !(primary_namespace.is_empty()
        && secondary_namespace.is_empty()
        && (key == NETWORK_GRAPH_PERSISTENCE_KEY
            || key == SCORER_PERSISTENCE_KEY
            || key == MARKER_KEY))
}

/// `primary/secondary/key`, without the empty parts.
pub(in crate::node) fn key_path(
    primary_namespace: &str,
    secondary_namespace: &str,
    key: &str,
) -> String {
    [primary_namespace, secondary_namespace, key]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

fn io_error(message: impl Into<String>) -> io::Error {
    io::Error::new(io::ErrorKind::Other, message.into())
}

/// The error's own message, without the I/O error wrapper's decoration.
fn describe(err: &io::Error) -> String {
    match err.get_ref() {
        Some(inner) => inner.to_string(),
        None => format!("{:?}", err.kind()),
    }
}

fn is_not_found(err: &io::Error) -> bool {
    err.kind() == io::ErrorKind::NotFound
}

/// What to check when the backup directory cannot be written: under the systemd unit in
/// `contrib/`, every path outside the state directory is read-only unless allowed.
fn write_hint(err: &std::io::Error) -> &'static str {
    if err.raw_os_error() == Some(libc::EROFS) || err.kind() == std::io::ErrorKind::PermissionDenied
    {
        " (running under systemd with ProtectSystem=strict, as contrib/lightfilter.service \
         does? allow the directory with a drop-in: `systemctl edit lightfilter`, then \
         `[Service]` and `ReadWritePaths=` followed by the directory; see the README)"
    } else {
        ""
    }
}

/// The marker's contents for `node_id` on `network`.
fn marker(network: Network, node_id: &PublicKey) -> String {
    format!(
        "lightfilter backup\nnetwork {}\nnode_id {node_id}\n",
        network_name(network)
    )
}

/// Checks the marker of the mirror in `dir`; `Ok(false)` when it has none.
fn check_marker(
    dir: &Path,
    store: &FilesystemStore,
    network: Network,
    node_id: &PublicKey,
) -> Result<bool, BackupError> {
    let fail = |reason: String| BackupError {
        path: dir.to_path_buf(),
        reason,
    };
    match KVStoreSync::read(store, "", "", MARKER_KEY) {
        Ok(bytes) => {
            let expected = marker(network, node_id);
            if bytes == expected.as_bytes() {
                Ok(true)
            } else {
                let found = String::from_utf8_lossy(&bytes).replace('\n', "; ");
                Err(fail(format!(
                    "it holds the backup of another node ({found}), not of node {node_id} on {}",
                    network_name(network)
                )))
            }
        }
        Err(err) if is_not_found(&err) => Ok(false),
        Err(err) => Err(fail(format!(
            "cannot read its {MARKER_KEY} file: {}",
            describe(&err)
        ))),
    }
}

impl ChannelStore {
    /// The store in `primary_dir` alone, without a mirror.
    pub fn new(primary_dir: PathBuf) -> Self {
        Self {
            primary: FilesystemStore::new(primary_dir),
            mirror: None,
        }
    }

    /// The store in `primary_dir` mirrored to `mirror_dir` (a directory that must exist),
    /// for node `node_id` on `network`. Refuses a mirror that is not a directory, belongs to
    /// another node, holds something else, or cannot be written, and a mirror that is ahead of
    /// the primary copy anywhere (see [`backup_compare::ahead_of`]): then neither copy is
    /// changed, and the refusal says what to run (`advice`, given whether the primary copy
    /// holds no channel state at all). Otherwise brings the mirror in step, writing only what
    /// is newer in the primary copy. `read_monitor` reads a stored channel monitor.
    pub fn open_mirrored(
        primary_dir: PathBuf,
        mirror_dir: &Path,
        network: Network,
        node_id: &PublicKey,
        read_monitor: ReadMonitor,
        advice: &dyn Fn(bool) -> String,
    ) -> Result<Self, BackupError> {
        let fail = |reason: String| BackupError {
            path: mirror_dir.to_path_buf(),
            reason,
        };
        let (identity, store) = check_usable(mirror_dir, network, node_id)?;
        if let Some(data_dir) = primary_dir.parent() {
            if identity_of(data_dir).is_ok_and(|(device, _)| device == identity.0) {
                warn!(
                    "backup directory {} is on the same device as the data directory {}: it \
                     will not outlive that device; put it on other storage",
                    mirror_dir.display(),
                    data_dir.display()
                );
            }
        }
        let primary = FilesystemStore::new(primary_dir);
        let primary_state = backup_compare::read_state(&primary, read_monitor).map_err(|err| {
            fail(format!(
                "cannot be compared with the data directory's channel state: {err} in the \
                 data directory"
            ))
        })?;
        let mirror_state = backup_compare::read_state(&store, read_monitor)
            .map_err(|err| fail(format!("cannot be compared with the data directory: {err}")))?;
        let ahead = backup_compare::ahead_of(&mirror_state, &primary_state);
        if !ahead.is_empty() {
            return Err(fail(format!(
                "it holds channel state that the data directory lacks or holds older ({}); \
                 starting from the data directory would run channels from revoked states and \
                 overwrite the only current copy, so the daemon does not start (neither copy \
                 was changed). {}",
                ahead
                    .iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join("; "),
                advice(primary_state.is_empty())
            )));
        }
        // It holds payment preimages and channel secrets: the owner's only, as the data
        // directory.
        let narrowed = super::private_files::make_owner_only(mirror_dir)
            .map_err(|err| fail(format!("cannot be made owner-only: {err}")))?;
        if !narrowed.is_empty() {
            warn!(
                "backup directory {} was open to other users; removed group and other \
                 permissions from {} entries",
                mirror_dir.display(),
                narrowed.len()
            );
        }
        // A file of its own first, for the operating system's reason when it cannot be written.
        tempfile::NamedTempFile::new_in(mirror_dir)
            .map_err(|err| fail(format!("cannot be written: {err}{}", write_hint(&err))))?;
        // Writing the marker (again) proves the directory takes fsynced writes.
        KVStoreSync::write(
            &store,
            "",
            "",
            MARKER_KEY,
            marker(network, node_id).into_bytes(),
        )
        .map_err(|err| fail(format!("cannot be written: {}", describe(&err))))?;
        let done = backup_compare::bring_in_step(
            &primary,
            &primary_state,
            &store,
            &mirror_state,
            is_mirrored,
        )
        .map_err(|err| {
            fail(format!(
                "cannot be brought in step with the node: {}",
                describe(&err)
            ))
        })?;
        info!(
            "backup directory {}: mirror in step with the channel state ({} files written, \
             {} removed)",
            mirror_dir.display(),
            done.written,
            done.removed
        );
        Ok(Self {
            primary,
            mirror: Some(Mirror {
                dir: mirror_dir.to_path_buf(),
                store,
                identity,
                order: Mutex::new(()),
                last_error: Mutex::new(None),
            }),
        })
    }

    /// The mirror's directory, state and last failure.
    pub fn backup_status(&self) -> BackupStatus {
        match &self.mirror {
            None => BackupStatus {
                dir: None,
                state: BackupState::Off,
                last_error: None,
            },
            Some(mirror) => {
                let last_error = mirror
                    .last_error
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .clone();
                BackupStatus {
                    dir: Some(mirror.dir.clone()),
                    state: if last_error.is_some() {
                        BackupState::Failing
                    } else {
                        BackupState::Ok
                    },
                    last_error,
                }
            }
        }
    }
}

/// Checks, without writing anything, that `mirror_dir` can be this node's mirror: a
/// directory, marked as the backup of `node_id` on `network`, or empty. Returns its identity
/// and a store on it.
pub fn check_usable(
    mirror_dir: &Path,
    network: Network,
    node_id: &PublicKey,
) -> Result<(DirIdentity, FilesystemStore), BackupError> {
    let fail = |reason: String| BackupError {
        path: mirror_dir.to_path_buf(),
        reason,
    };
    let identity = identity_of(mirror_dir).map_err(|err| {
        fail(format!(
            "cannot be used ({err}); create the directory (on the backup device) or fix \
             --backup-dir / backup_dir; the daemon does not start without its backup"
        ))
    })?;
    let store = FilesystemStore::new(mirror_dir.to_path_buf());
    if !check_marker(mirror_dir, &store, network, node_id)? {
        let mut entries =
            std::fs::read_dir(mirror_dir).map_err(|err| fail(format!("cannot be read: {err}")))?;
        if let Some(entry) = entries.next() {
            let name = entry
                .map(|entry| entry.file_name().to_string_lossy().into_owned())
                .unwrap_or_default();
            return Err(fail(format!(
                "it is not empty (it holds {name:?}) and holds no lightfilter backup; give an \
                 empty directory"
            )));
        }
    }
    Ok((identity, store))
}

impl ChannelStore {
    /// Runs `op` on both copies, in the order that keeps the primary copy consistent when the
    /// mirror fails: channel monitors and their updates go to the mirror first (a refused
    /// update is then on neither copy, and LDK stops before acknowledging it); everything
    /// else, the channel manager above all, goes to the primary copy first (so the manager
    /// there is never older than its monitors), and the call still fails if the mirror does
    /// not take it. Either way the next start brings the mirror in step.
    fn on_both(
        &self,
        what: &str,
        (primary_namespace, secondary_namespace, key): (&str, &str, &str),
        op: impl Fn(&FilesystemStore) -> io::Result<()>,
    ) -> io::Result<()> {
        let mirror = match &self.mirror {
            Some(mirror) if is_mirrored(primary_namespace, secondary_namespace, key) => mirror,
            _ => return op(&self.primary),
        };
        let what = format!(
            "{what} {}",
            key_path(primary_namespace, secondary_namespace, key)
        );
        let _order = mirror.order.lock().unwrap_or_else(|p| p.into_inner());
        if primary_namespace == CHANNEL_MONITOR_PERSISTENCE_PRIMARY_NAMESPACE
            || primary_namespace == CHANNEL_MONITOR_UPDATE_PERSISTENCE_PRIMARY_NAMESPACE
        {
            mirror.apply(&what, &op)?;
            op(&self.primary)
        } else {
            op(&self.primary)?;
            mirror.apply(&what, &op)
        }
    }
}

impl KVStoreSync for ChannelStore {
    fn read(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
    ) -> io::Result<Vec<u8>> {
        KVStoreSync::read(&self.primary, primary_namespace, secondary_namespace, key)
    }

    fn write(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        buf: Vec<u8>,
    ) -> io::Result<()> {
        self.on_both(
            "writing",
            (primary_namespace, secondary_namespace, key),
            |store| {
                KVStoreSync::write(
                    store,
                    primary_namespace,
                    secondary_namespace,
                    key,
                    buf.clone(),
                )
            },
        )
    }

    fn remove(
        &self,
        primary_namespace: &str,
        secondary_namespace: &str,
        key: &str,
        lazy: bool,
    ) -> io::Result<()> {
        self.on_both(
            "removing",
            (primary_namespace, secondary_namespace, key),
            |store| KVStoreSync::remove(store, primary_namespace, secondary_namespace, key, lazy),
        )
    }

    fn list(&self, primary_namespace: &str, secondary_namespace: &str) -> io::Result<Vec<String>> {
        KVStoreSync::list(&self.primary, primary_namespace, secondary_namespace)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::stores::backup_compare::tests::{monitor_bytes, read_test_monitor};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};
    use std::collections::BTreeSet;

    fn node(byte: u8) -> PublicKey {
        PublicKey::from_secret_key(
            &Secp256k1::new(),
            &SecretKey::from_slice(&[byte; 32]).unwrap(),
        )
    }

    fn mirrored(root: &Path) -> ChannelStore {
        std::fs::create_dir_all(root.join("mirror")).unwrap();
        ChannelStore::open_mirrored(
            root.join("ldk"),
            &root.join("mirror"),
            Network::Regtest,
            &node(1),
            &read_test_monitor,
            &|_| "advice".to_string(),
        )
        .unwrap()
    }

    fn read(store: &FilesystemStore, p: &str, s: &str, k: &str) -> Option<Vec<u8>> {
        KVStoreSync::read(store, p, s, k).ok()
    }

    #[test]
    fn writes_and_removals_reach_both_copies_and_reads_come_from_the_primary() {
        let root = tempfile::tempdir().unwrap();
        let store = mirrored(root.path());
        let primary = FilesystemStore::new(root.path().join("ldk"));
        let mirror = FilesystemStore::new(root.path().join("mirror"));
        store.write("monitors", "", "a", vec![1]).unwrap();
        store.write("monitor_updates", "a", "1", vec![2]).unwrap();
        store.write("", "", "manager", vec![3]).unwrap();
        for copy in [&primary, &mirror] {
            assert_eq!(read(copy, "monitors", "", "a"), Some(vec![1]));
            assert_eq!(read(copy, "monitor_updates", "a", "1"), Some(vec![2]));
            assert_eq!(read(copy, "", "", "manager"), Some(vec![3]));
        }
        assert_eq!(store.list("monitors", "").unwrap(), vec!["a".to_string()]);
        store.remove("monitor_updates", "a", "1", false).unwrap();
        for copy in [&primary, &mirror] {
            assert_eq!(read(copy, "monitor_updates", "a", "1"), None);
        }
        // The graph and the scorer stay on the primary copy only.
        store.write("", "", "network_graph", vec![4]).unwrap();
        assert_eq!(read(&primary, "", "", "network_graph"), Some(vec![4]));
        assert_eq!(read(&mirror, "", "", "network_graph"), None);
        // Reads come from the primary copy.
        KVStoreSync::write(&primary, "", "", "manager", vec![9]).unwrap();
        assert_eq!(store.read("", "", "manager").unwrap(), vec![9]);
        assert_eq!(store.backup_status().state, BackupState::Ok);
    }

    #[test]
    fn a_mirror_that_cannot_take_a_write_fails_the_call_and_keeps_the_primary_consistent() {
        let root = tempfile::tempdir().unwrap();
        let store = mirrored(root.path());
        store.write("monitors", "", "a", vec![1]).unwrap();
        let away = root.path().join("away");
        std::fs::rename(root.path().join("mirror"), &away).unwrap();
        let err = store.write("monitors", "", "a", vec![2]).unwrap_err();
        assert!(err.to_string().contains("mirror"), "{err}");
        assert!(store.remove("monitors", "", "a", false).is_err());
        let status = store.backup_status();
        assert_eq!(status.state, BackupState::Failing);
        assert!(status.last_error.unwrap().contains("monitors/a"));
        // A monitor write was refused before the primary took it.
        assert_eq!(store.read("monitors", "", "a").unwrap(), vec![1]);
        // The channel manager goes to the primary first, so it is never older there than
        // its monitors; the call fails all the same.
        assert!(store.write("", "", "manager", vec![8]).is_err());
        assert_eq!(store.read("", "", "manager").unwrap(), vec![8]);
        assert!(
            !root.path().join("mirror").exists(),
            "a missing mirror is not recreated on the card"
        );
        // A directory put in its place is not the mirror either.
        std::fs::create_dir(root.path().join("mirror")).unwrap();
        assert!(store.write("monitors", "", "a", vec![2]).is_err());
        std::fs::remove_dir(root.path().join("mirror")).unwrap();
        // Once it is back, writes reach both copies again.
        std::fs::rename(&away, root.path().join("mirror")).unwrap();
        store.write("monitors", "", "a", vec![3]).unwrap();
        let mirror = FilesystemStore::new(root.path().join("mirror"));
        assert_eq!(read(&mirror, "monitors", "", "a"), Some(vec![3]));
        assert_eq!(store.backup_status().state, BackupState::Ok);
    }

    fn open(root: &Path, mirror: &str, node_id: u8) -> Result<ChannelStore, BackupError> {
        ChannelStore::open_mirrored(
            root.join("ldk"),
            &root.join(mirror),
            Network::Regtest,
            &node(node_id),
            &read_test_monitor,
            &|empty| format!("advice for a data directory empty: {empty}"),
        )
    }

    /// Every file under `dir` with its bytes.
    fn snapshot(dir: &Path) -> BTreeSet<(PathBuf, Vec<u8>)> {
        let mut files = BTreeSet::new();
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                files.extend(snapshot(&path));
            } else {
                let bytes = std::fs::read(&path).unwrap();
                files.insert((path, bytes));
            }
        }
        files
    }

    #[test]
    fn a_start_brings_the_mirror_in_step_and_refuses_unusable_directories() {
        let root = tempfile::tempdir().unwrap();
        let primary = FilesystemStore::new(root.path().join("ldk"));
        KVStoreSync::write(&primary, "monitors", "", "a", monitor_bytes(1, 10, 100)).unwrap();
        KVStoreSync::write(&primary, "", "", "scorer", vec![5]).unwrap();
        let store = mirrored(root.path());
        let mirror = FilesystemStore::new(root.path().join("mirror"));
        assert_eq!(
            read(&mirror, "monitors", "", "a"),
            Some(monitor_bytes(1, 10, 100))
        );
        assert_eq!(read(&mirror, "", "", "scorer"), None);
        drop(store);
        // An update file the monitor supersedes is removed from the mirror at the next start.
        KVStoreSync::write(&mirror, "monitor_updates", "a", "9", vec![7]).unwrap();
        mirrored(root.path());
        assert_eq!(read(&mirror, "monitor_updates", "a", "9"), None);

        let missing = open(root.path(), "nowhere", 1).err().unwrap().to_string();
        assert!(
            missing.contains("nowhere") && missing.contains("does not start"),
            "{missing}"
        );
        let other = open(root.path(), "mirror", 2).err().unwrap().to_string();
        assert!(other.contains("another node"), "{other}");
        let busy = root.path().join("busy");
        std::fs::create_dir(&busy).unwrap();
        std::fs::write(busy.join("photo.jpg"), b"x").unwrap();
        let busy = open(root.path(), "busy", 1).err().unwrap().to_string();
        assert!(busy.contains("not empty"), "{busy}");
    }

    #[test]
    fn a_backup_directory_that_cannot_be_written_is_explained() {
        let read_only = std::io::Error::from_raw_os_error(libc::EROFS);
        assert!(write_hint(&read_only).contains("ReadWritePaths="));
        let denied = std::io::Error::from(std::io::ErrorKind::PermissionDenied);
        assert!(write_hint(&denied).contains("systemctl edit lightfilter"));
        let full = std::io::Error::from_raw_os_error(libc::ENOSPC);
        assert_eq!(write_hint(&full), "");
    }

    #[test]
    fn a_mirror_ahead_of_the_data_directory_is_refused_and_left_as_it_was() {
        let root = tempfile::tempdir().unwrap();
        let store = mirrored(root.path());
        store
            .write("monitors", "", "a", monitor_bytes(1, 10, 100))
            .unwrap();
        store.write("monitor_updates", "a", "11", vec![11]).unwrap();
        store.write("", "", "manager", vec![3]).unwrap();
        drop(store);
        let mirror_dir = root.path().join("mirror");
        let before = snapshot(&mirror_dir);

        // The data directory rolled back to an older state of the channel.
        std::fs::remove_file(root.path().join("ldk/monitor_updates/a/11")).unwrap();
        let refused = open(root.path(), "mirror", 1).err().unwrap().to_string();
        assert!(
            refused.contains("at update 11, against update 10")
                && refused.contains("advice for a data directory empty: false"),
            "{refused}"
        );
        assert_eq!(snapshot(&mirror_dir), before, "the mirror changed");

        // A data directory holding only a seed.
        std::fs::remove_dir_all(root.path().join("ldk")).unwrap();
        let refused = open(root.path(), "mirror", 1).err().unwrap().to_string();
        assert!(
            refused.contains("channel manager")
                && refused.contains("advice for a data directory empty: true"),
            "{refused}"
        );
        assert_eq!(snapshot(&mirror_dir), before, "the mirror changed");
        assert!(
            !root.path().join("ldk").exists(),
            "the refused start wrote into the data directory"
        );
    }
}

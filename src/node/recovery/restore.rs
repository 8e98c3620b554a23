//! A restore of the channel state from a backup directory (`daemon --restore-from DIR`) into
//! a data directory that holds the node's seed and no wallet yet.
//!
//! Every check comes before the first write, so a refused restore leaves the data directory
//! as it was: the wallet birthday is given, the data directory has no wallet, `DIR` is this
//! node's backup with a channel manager and readable monitors, the data directory holds no
//! channel state that `DIR` lacks or holds older (an earlier restore from `DIR` that did not
//! finish may be done again), and a separate `--backup-dir` is usable and not ahead of `DIR`.
//! Then the copy: channel monitors and the rest first, then every restored channel is
//! recorded as held (see `held_channels`), and the channel manager last, so an interrupted
//! copy has no manager (a start without `--restore-from` refuses it) and can be done again.

use std::path::Path;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use lightning::util::persist::{
    KVStoreSync, MigratableKVStore, CHANNEL_MANAGER_PERSISTENCE_KEY,
    CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE, CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
};
use lightning_persister::fs_store::FilesystemStore;

use super::held_channels::{self, HeldChannel, HoldReason};
use crate::node::stores::backup::{self, is_mirrored, key_path, BackupError, MARKER_KEY};
use crate::node::stores::backup_compare::{self, ReadMonitor};
use crate::node::NodeError;

/// What a restore is asked to do.
pub struct RestoreRequest<'a> {
    /// The backup directory to restore from.
    pub from: &'a Path,
    /// The backup directory the node will mirror to, if any (often `from` itself).
    pub backup_dir: Option<&'a Path>,
    /// The data directory.
    pub data_dir: &'a Path,
    /// The wallet birthday given.
    pub wallet_birthday: Option<u32>,
    /// The node's network.
    pub network: Network,
    /// The node's id.
    pub node_id: &'a PublicKey,
}

/// Restores the channel state of `request.from` into the data directory's `ldk/`, after
/// checking everything (see the module documentation). Returns the number of files copied.
pub fn restore(request: &RestoreRequest, read_monitor: ReadMonitor) -> Result<usize, NodeError> {
    let RestoreRequest {
        from,
        backup_dir,
        data_dir,
        wallet_birthday,
        network,
        node_id,
    } = *request;
    let fail = |reason: String| -> NodeError {
        BackupError {
            path: from.to_path_buf(),
            reason,
        }
        .into()
    };
    let wallet = data_dir.join("wallet.sqlite");
    if wallet.exists() {
        return Err(NodeError::invalid(
            "--restore-from",
            format!(
                "the data directory has a wallet already ({}); restore into a new data \
                 directory holding only the seed (nothing was changed)",
                wallet.display()
            ),
        ));
    }
    if wallet_birthday.is_none() {
        return Err(NodeError::invalid(
            "--restore-from",
            "it needs --wallet-birthday HEIGHT, a block from before the wallet's first \
             transaction, so that the wallet finds its coins and the channels' funding \
             (nothing was changed)",
        ));
    }
    let (from_identity, source) = backup::check_usable(from, network, node_id)?;
    if KVStoreSync::read(&source, "", "", MARKER_KEY).is_err() {
        return Err(fail(format!(
            "it is not a lightfilter backup (no {MARKER_KEY} file)"
        )));
    }
    let manager = (
        CHANNEL_MANAGER_PERSISTENCE_PRIMARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_SECONDARY_NAMESPACE,
        CHANNEL_MANAGER_PERSISTENCE_KEY,
    );
    let manager_bytes = KVStoreSync::read(&source, manager.0, manager.1, manager.2)
        .map_err(|err| fail(format!("it holds no channel manager to restore ({err})")))?;
    let source_state = backup_compare::read_state(&source, read_monitor)
        .map_err(|err| fail(format!("it cannot be restored from: {err}")))?;
    let ldk_dir = data_dir.join("ldk");
    let primary = FilesystemStore::new(ldk_dir.clone());
    let primary_state =
        backup_compare::read_state(&primary, read_monitor).map_err(|err| NodeError::DataDir {
            path: data_dir.to_path_buf(),
            reason: format!("{err} in {} (nothing was changed)", ldk_dir.display()),
        })?;
    let ahead = backup_compare::ahead_of(&primary_state, &source_state);
    if !ahead.is_empty() || (primary_state.has_manager && source_state.is_empty()) {
        return Err(fail(format!(
            "the data directory already holds channel state the backup lacks or holds older \
             ({}); a restore needs a data directory with only the seed (start without \
             --restore-from to run it; nothing was changed)",
            describe(&ahead, "it holds a channel manager")
        )));
    }
    if let Some(backup_dir) = backup_dir {
        let (identity, mirror) = backup::check_usable(backup_dir, network, node_id)?;
        if identity != from_identity {
            let mirror_state =
                backup_compare::read_state(&mirror, read_monitor).map_err(|err| BackupError {
                    path: backup_dir.to_path_buf(),
                    reason: format!("cannot be read: {err}"),
                })?;
            let ahead = backup_compare::ahead_of(&mirror_state, &source_state);
            if !ahead.is_empty() {
                return Err(BackupError {
                    path: backup_dir.to_path_buf(),
                    reason: format!(
                        "it holds channel state that the backup restored from ({}) lacks or \
                         holds older ({}); restore from {} instead (nothing was changed)",
                        from.display(),
                        describe(&ahead, ""),
                        backup_dir.display()
                    ),
                }
                .into());
            }
        }
    }

    // Everything is checked: copy.
    let keys = source
        .list_all_keys()
        .map_err(|err| fail(format!("cannot be listed: {err}")))?;
    let mut copied = 0;
    for (p, s, k) in keys {
        if !is_mirrored(&p, &s, &k) || (p.as_str(), s.as_str(), k.as_str()) == manager {
            continue;
        }
        let bytes = KVStoreSync::read(&source, &p, &s, &k)
            .map_err(|err| fail(format!("cannot read {}: {err}", key_path(&p, &s, &k))))?;
        KVStoreSync::write(&primary, &p, &s, &k, bytes).map_err(|err| {
            fail(format!(
                "cannot write {} into {}: {err}",
                key_path(&p, &s, &k),
                ldk_dir.display()
            ))
        })?;
        copied += 1;
    }
    let held: Vec<HeldChannel> = source_state
        .channels
        .values()
        .map(|position| HeldChannel {
            channel_id: position.facts.channel_id,
            funding: position.facts.funding,
            reason: HoldReason::Restored,
        })
        .collect();
    held_channels::record(&primary, &held).map_err(|err| {
        fail(format!(
            "cannot record the restored channels as held in {}: {err}",
            ldk_dir.display()
        ))
    })?;
    KVStoreSync::write(&primary, manager.0, manager.1, manager.2, manager_bytes).map_err(
        |err| {
            fail(format!(
                "cannot write the channel manager into {}: {err}",
                ldk_dir.display()
            ))
        },
    )?;
    Ok(copied + 1)
}

/// `ahead` in words, `manager` standing for [`backup_compare::Ahead::Manager`].
fn describe(ahead: &[backup_compare::Ahead], manager: &str) -> String {
    let parts: Vec<String> = ahead
        .iter()
        .map(|ahead| match ahead {
            backup_compare::Ahead::Manager => manager.to_string(),
            other => other.to_string(),
        })
        .filter(|part| !part.is_empty())
        .collect();
    if parts.is_empty() {
        manager.to_string()
    } else {
        parts.join("; ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::stores::backup::ChannelStore;
    use crate::node::stores::backup_compare::tests::{monitor_bytes, read_test_monitor};
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    fn node(byte: u8) -> PublicKey {
        PublicKey::from_secret_key(
            &Secp256k1::new(),
            &SecretKey::from_slice(&[byte; 32]).unwrap(),
        )
    }

    fn no_advice(_: bool) -> String {
        String::new()
    }

    /// A mirror in `root/mirror` of a node with one channel.
    fn backup_with_a_channel(root: &Path) {
        std::fs::create_dir_all(root.join("mirror")).unwrap();
        let store = ChannelStore::open_mirrored(
            root.join("old-ldk"),
            &root.join("mirror"),
            Network::Regtest,
            &node(1),
            &read_test_monitor,
            &no_advice,
        )
        .unwrap();
        store
            .write("monitors", "", "a_0", monitor_bytes(1, 10, 100))
            .unwrap();
        store.write("", "", "manager", vec![3]).unwrap();
    }

    fn request<'a>(
        from: &'a Path,
        data_dir: &'a Path,
        node_id: &'a PublicKey,
    ) -> RestoreRequest<'a> {
        RestoreRequest {
            from,
            backup_dir: None,
            data_dir,
            wallet_birthday: Some(1),
            network: Network::Regtest,
            node_id,
        }
    }

    fn copy_dir(from: &Path, to: &Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap() {
            let path = entry.unwrap().path();
            let target = to.join(path.file_name().unwrap());
            if path.is_dir() {
                copy_dir(&path, &target);
            } else {
                std::fs::copy(&path, &target).unwrap();
            }
        }
    }

    fn files_in(dir: &Path) -> Vec<std::path::PathBuf> {
        if !dir.exists() {
            return Vec::new();
        }
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|entry| entry.unwrap().path())
            .collect();
        files.sort();
        files
    }

    #[test]
    fn a_restore_copies_the_mirror_holds_its_channels_and_writes_the_manager_last() {
        let root = tempfile::tempdir().unwrap();
        backup_with_a_channel(root.path());
        let from = root.path().join("mirror");
        let data_dir = root.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        let id = node(1);
        let copied = restore(&request(&from, &data_dir, &id), &read_test_monitor).unwrap();
        assert_eq!(copied, 2);
        let restored = FilesystemStore::new(data_dir.join("ldk"));
        assert_eq!(
            KVStoreSync::read(&restored, "monitors", "", "a_0").unwrap(),
            monitor_bytes(1, 10, 100)
        );
        assert_eq!(
            KVStoreSync::read(&restored, "", "", "manager").unwrap(),
            vec![3]
        );
        assert!(KVStoreSync::read(&restored, "", "", MARKER_KEY).is_err());
        let held = held_channels::load(&restored).unwrap();
        assert_eq!(held.len(), 1);
        assert_eq!(held[0].reason, HoldReason::Restored);
        // An interrupted or refused start after the copy may restore again.
        assert_eq!(
            restore(&request(&from, &data_dir, &id), &read_test_monitor).unwrap(),
            2
        );
        // Not over a later state of the channel.
        KVStoreSync::write(&restored, "monitors", "", "a_0", monitor_bytes(1, 11, 100)).unwrap();
        let again = restore(&request(&from, &data_dir, &id), &read_test_monitor)
            .unwrap_err()
            .to_string();
        assert!(again.contains("already holds channel state"), "{again}");
        // Not another node's backup.
        let other = node(2);
        let foreign = restore(
            &request(&from, &root.path().join("other"), &other),
            &read_test_monitor,
        )
        .unwrap_err()
        .to_string();
        assert!(foreign.contains("another node"), "{foreign}");
    }

    #[test]
    fn a_refused_restore_changes_nothing() {
        let root = tempfile::tempdir().unwrap();
        backup_with_a_channel(root.path());
        let from = root.path().join("mirror");
        let data_dir = root.path().join("data");
        std::fs::create_dir(&data_dir).unwrap();
        let id = node(1);
        // A backup directory to mirror to that is another node's.
        let foreign = root.path().join("foreign");
        std::fs::create_dir(&foreign).unwrap();
        std::fs::write(
            foreign.join(MARKER_KEY),
            "lightfilter backup\nnetwork regtest\nnode_id 02aa\n",
        )
        .unwrap();
        let mut asked = request(&from, &data_dir, &id);
        asked.backup_dir = Some(&foreign);
        let err = restore(&asked, &read_test_monitor).unwrap_err().to_string();
        assert!(err.contains("another node"), "{err}");
        assert!(
            files_in(&data_dir.join("ldk")).is_empty(),
            "ldk/ was written"
        );
        // A backup directory ahead of the one restored from.
        let newer = root.path().join("newer");
        copy_dir(&from, &newer);
        KVStoreSync::write(
            &FilesystemStore::new(newer.clone()),
            "monitor_updates",
            "a_0",
            "11",
            vec![0],
        )
        .unwrap();
        asked.backup_dir = Some(&newer);
        let err = restore(&asked, &read_test_monitor).unwrap_err().to_string();
        assert!(err.contains("restore from"), "{err}");
        assert!(
            files_in(&data_dir.join("ldk")).is_empty(),
            "ldk/ was written"
        );
        // A damaged monitor in the backup.
        KVStoreSync::write(
            &FilesystemStore::new(from.clone()),
            "monitors",
            "",
            "b_0",
            vec![7, 7],
        )
        .unwrap();
        let err = restore(&request(&from, &data_dir, &id), &read_test_monitor)
            .unwrap_err()
            .to_string();
        assert!(err.contains("b_0"), "{err}");
        assert!(
            files_in(&data_dir.join("ldk")).is_empty(),
            "ldk/ was written"
        );
    }
}

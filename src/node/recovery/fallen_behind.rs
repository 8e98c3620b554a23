//! Recovery from channel state that fell behind the peers' (a restore from an old copy).
//!
//! When a peer proves at channel reestablishment that the node's state of a channel is older
//! than the last one it signed, LDK stops the node with a panic: broadcasting that state
//! would hand the peer the whole channel. LDK's documented way out is to start with an empty
//! channel manager, let the peers close the channels with their latest state, and claim what
//! that pays the node with the monitors it has. This module makes that way out automatic:
//!
//! 1. The panic is recorded durably in the data directory ([`record_on_panic`]) before the
//!    process aborts.
//! 2. The next start finds the record ([`recovery_pending`]) and, before anything else, names
//!    every stored channel as behind ([`add`]): their funding outputs are saved in the channel
//!    store (and so in its mirror), and the broadcaster refuses to spend them ([`load`] gives
//!    them to it on every start), so neither a revoked commitment nor anything built on one
//!    ever leaves the node.
//! 3. That start uses a new, empty channel manager given the stored monitors, which LDK
//!    closes; the manager is saved and the record removed ([`finish_recovery`]).
//! 4. A peer reconnecting for such a channel is told it is unknown, and closes it with its
//!    latest commitment. That transaction pays the node's balance to the node's own key,
//!    which the monitor recognises; the sweeper moves it to the wallet. Until the closing
//!    confirms, the node keeps reconnecting to those peers (see `peers`).
//!
//! What is lost: the payments in flight in the channels at the time, and the peers' closing
//! fees are taken from the channels' balances as in any force close.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::OutPoint;
use lightning::ln::types::ChannelId;
use lightning::util::persist::KVStoreSync;
use log::{error, warn};

use crate::node::ldk::types::Store;

/// The file in the data directory recording that the channel state fell behind.
pub const RECORD_FILE: &str = "channel_state_behind";

/// What LDK's panic says when a peer proved the node's channel state old.
const LDK_FALLEN_BEHIND: &str = "We have fallen behind";

/// Where the channels named behind are kept, one key per channel, in the channel store.
const NAMESPACE: &str = "channels_behind";

/// Has a panic saying the channel state fell behind recorded in `data_dir` (durably, before
/// the process aborts), so that the next start recovers.
pub fn record_on_panic(data_dir: &Path) {
    let data_dir = data_dir.to_path_buf();
    crate::tasks::on_fatal_panic(move |message| {
        if !message.contains(LDK_FALLEN_BEHIND) {
            return;
        }
        match write_record(&data_dir, message) {
            Ok(()) => error!(
                "a peer proved this node's channel state old (restored from an old copy?); \
                 broadcasting it would lose the channel. Start the daemon again (without \
                 --restore-from): it will let the peers close these channels with their \
                 latest state and collect this node's balances on chain"
            ),
            Err(err) => error!(
                "a peer proved this node's channel state old, and recording it in {} failed \
                 ({err}); do not start the daemon again before creating that file by hand",
                data_dir.join(RECORD_FILE).display()
            ),
        }
    });
}

fn write_record(data_dir: &Path, message: &str) -> std::io::Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(data_dir.join(RECORD_FILE))?;
    file.write_all(message.as_bytes())?;
    file.sync_all()?;
    File::open(data_dir)?.sync_all()
}

/// Whether an earlier run recorded that the channel state fell behind, and the recovery has
/// not been completed.
pub fn recovery_pending(data_dir: &Path) -> bool {
    data_dir.join(RECORD_FILE).exists()
}

/// Removes the record once the new channel manager is saved.
pub fn finish_recovery(data_dir: &Path) -> std::io::Result<()> {
    let record: PathBuf = data_dir.join(RECORD_FILE);
    std::fs::remove_file(&record)?;
    File::open(data_dir)?.sync_all()
}

/// Names the channels `behind` (their ids and funding outputs) as behind, durably.
pub fn add(store: &Store, behind: &[(ChannelId, OutPoint)]) -> lightning::io::Result<()> {
    for (channel_id, funding) in behind {
        warn!(
            "channel {channel_id} (funding {funding}) is behind its peer's state: its own \
             commitment will never be broadcast; the peer's close pays its balance"
        );
        KVStoreSync::write(
            store,
            NAMESPACE,
            "",
            &channel_id.to_string(),
            serialize(funding),
        )?;
    }
    Ok(())
}

/// The funding outputs of every channel ever named behind.
pub fn load(store: &Store) -> lightning::io::Result<Vec<OutPoint>> {
    let mut fundings = Vec::new();
    for key in KVStoreSync::list(store, NAMESPACE, "")? {
        let bytes = KVStoreSync::read(store, NAMESPACE, "", &key)?;
        let funding = deserialize(&bytes).map_err(|err| {
            lightning::io::Error::new(
                lightning::io::ErrorKind::InvalidData,
                format!("channel {key} named behind: {err}"),
            )
        })?;
        fundings.push(funding);
    }
    Ok(fundings)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn channels_named_behind_are_kept_and_the_record_comes_and_goes() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("ldk"));
        assert!(load(&store).unwrap().is_empty());
        let first = OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0);
        let second = OutPoint::new(bitcoin::Txid::from_byte_array([2; 32]), 3);
        add(&store, &[(ChannelId([1; 32]), first)]).unwrap();
        add(
            &store,
            &[(ChannelId([2; 32]), second), (ChannelId([1; 32]), first)],
        )
        .unwrap();
        let mut loaded = load(&Store::new(dir.path().join("ldk"))).unwrap();
        loaded.sort();
        assert_eq!(loaded, vec![first, second]);

        assert!(!recovery_pending(dir.path()));
        write_record(dir.path(), "We have fallen behind - …").unwrap();
        assert!(recovery_pending(dir.path()));
        finish_recovery(dir.path()).unwrap();
        assert!(!recovery_pending(dir.path()));
    }
}

//! `lightfilter store copy`: moving a stopped node's state between its data directory's files
//! and PostgreSQL, either way, checked key by key.
//!
//! The copy takes the data directory's lock and the node's writer lock in PostgreSQL, so it
//! refuses to run while a daemon uses either. The target must hold none of the node's state.
//! Every key LDK and the node persist is copied byte for byte, the wallet as its changeset
//! (its SQLite file on one side, its changesets on the other); then the target is read back and
//! compared with the source. Last, the source is marked as moved ([`MOVED_KEY`]): a daemon
//! refuses to start on a copy that was moved away, since running on it would run on a state
//! that falls behind the one in use.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use bitcoin::Network;
use lightning::util::persist::{KVStoreSync, MigratableKVStore};
use lightning_persister::fs_store::FilesystemStore;

use super::data_dir::{read_seed, DataDir};
use crate::node::NodeError;
use crate::postgres::{PgOptions, PgStore};
use crate::wallet::WALLET_NAMESPACE;

/// Key (in the top namespace) of the note left in a store whose state was copied elsewhere.
pub const MOVED_KEY: &str = "lightfilter_moved";

/// Which way a copy goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CopyDirection {
    /// From the data directory's files into PostgreSQL.
    FilesToPostgres,
    /// From PostgreSQL into the data directory's files.
    PostgresToFiles,
}

/// What a copy did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The node.
    pub node_id: String,
    /// Where from.
    pub from: String,
    /// Where to.
    pub to: String,
    /// Keys copied (and compared), the wallet's not counted.
    pub keys: usize,
    /// Their bytes.
    pub bytes: usize,
    /// Whether a wallet was copied.
    pub wallet: bool,
}

fn refuse(reason: impl Into<String>) -> NodeError {
    NodeError::invalid("store copy", reason)
}

fn failed(context: &str, err: impl std::fmt::Display) -> NodeError {
    NodeError::storage(context.to_string(), err)
}

/// Refuses to start on a store whose state was copied elsewhere with `store copy`.
pub fn check_not_moved(store: &dyn KVStoreSync, location: &str) -> Result<(), NodeError> {
    match store.read("", "", MOVED_KEY) {
        Ok(note) => Err(NodeError::invalid(
            "store",
            format!(
                "the channel state in {location} was copied {}; start the daemon on that \
                 copy (nothing was changed)",
                String::from_utf8_lossy(&note).trim()
            ),
        )),
        Err(err) if err.kind() == lightning::io::ErrorKind::NotFound => Ok(()),
        Err(err) => Err(failed("reading the store", err)),
    }
}

/// Copies the state of the stopped node in `data_dir` between its files and the PostgreSQL
/// store at `url`, in `direction`, and checks the copy.
pub async fn copy_store(
    data_dir: &Path,
    network: Network,
    url: &str,
    direction: CopyDirection,
) -> Result<CopyReport, NodeError> {
    if read_seed(data_dir)?.is_none() {
        return Err(refuse(format!(
            "{} holds no seed: the copy needs the node's data directory (nothing was changed)",
            data_dir.display()
        )));
    }
    let dir = DataDir::open(data_dir, network)?;
    let (seed, _) = dir.load_or_create_seed()?;
    let keys = lightning::sign::KeysManager::new(&seed, 0, 0, true);
    let node_id = lightning::sign::NodeSigner::get_node_id(&keys, lightning::sign::Recipient::Node)
        .expect("the node key is available");
    let postgres = PgStore::open_and_wait(&PgOptions {
        url: url.to_string(),
        node_id,
        network,
        standby: false,
    })
    .await?;
    let location = postgres.status().location;
    let ldk_dir = data_dir.join("ldk");
    let wallet_file = data_dir.join("wallet.sqlite");
    let files = FilesystemStore::new(ldk_dir.clone());
    let (keys, bytes, wallet) = match direction {
        CopyDirection::FilesToPostgres => {
            if !ldk_dir.is_dir() {
                return Err(refuse(format!(
                    "{} holds no channel state (nothing was changed)",
                    ldk_dir.display()
                )));
            }
            check_not_moved(&files, &ldk_dir.display().to_string())?;
            let held = postgres
                .list_all_keys()
                .map_err(|err| failed("listing the PostgreSQL store", err))?;
            if !held.is_empty() {
                return Err(refuse(format!(
                    "PostgreSQL at {location} holds {} keys of node {node_id} already; the copy \
                     goes only into a store without this node's state (nothing was changed)",
                    held.len()
                )));
            }
            let (keys, bytes) = copy_keys(&files, &postgres)?;
            let wallet = wallet_file.exists();
            if wallet {
                crate::wallet::copy_file_to_store(&wallet_file, &postgres)
                    .map_err(|err| failed("copying the wallet", err))?;
            }
            mark_moved(&files, &format!("to PostgreSQL at {location}"))?;
            (keys, bytes, wallet)
        }
        CopyDirection::PostgresToFiles => {
            check_not_moved(&postgres, &format!("PostgreSQL at {location}"))?;
            let taken: Vec<PathBuf> = [ldk_dir.clone(), wallet_file.clone()]
                .into_iter()
                .filter(|path| path.exists())
                .collect();
            if !taken.is_empty() {
                return Err(refuse(format!(
                    "the data directory holds channel state or a wallet already ({}); the copy \
                     goes only into a data directory holding the seed alone (nothing was \
                     changed)",
                    taken
                        .iter()
                        .map(|path| path.display().to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                )));
            }
            let (keys, bytes) = copy_keys(&postgres, &files)?;
            let wallet = crate::wallet::copy_store_to_file(&postgres, &wallet_file)
                .map_err(|err| failed("copying the wallet", err))?;
            mark_moved(
                &postgres,
                &format!("to the files of {}", data_dir.display()),
            )?;
            (keys, bytes, wallet)
        }
    };
    let (from, to) = match direction {
        CopyDirection::FilesToPostgres => (data_dir.display().to_string(), location),
        CopyDirection::PostgresToFiles => (location, data_dir.display().to_string()),
    };
    Ok(CopyReport {
        node_id: node_id.to_string(),
        from,
        to,
        keys,
        bytes,
        wallet,
    })
}

/// The keys of `store` a copy takes: all but the wallet's changesets (copied as a wallet) and
/// the moved note.
fn keys_to_copy(
    store: &dyn MigratableKVStore,
) -> Result<BTreeSet<(String, String, String)>, NodeError> {
    Ok(store
        .list_all_keys()
        .map_err(|err| failed("listing the keys", err))?
        .into_iter()
        .filter(|(primary, secondary, key)| {
            primary != WALLET_NAMESPACE
                && !(primary.is_empty() && secondary.is_empty() && key == MOVED_KEY)
        })
        .collect())
}

/// Copies every key of `from` into `to`, then reads each back and compares: `(keys, bytes)`.
fn copy_keys(
    from: &dyn MigratableKVStore,
    to: &dyn MigratableKVStore,
) -> Result<(usize, usize), NodeError> {
    let keys = keys_to_copy(from)?;
    let mut bytes = 0;
    for (primary, secondary, key) in &keys {
        let value = from
            .read(primary, secondary, key)
            .map_err(|err| failed(&format!("reading {primary}/{secondary}/{key}"), err))?;
        bytes += value.len();
        to.write(primary, secondary, key, value)
            .map_err(|err| failed(&format!("writing {primary}/{secondary}/{key}"), err))?;
    }
    let copied = keys_to_copy(to)?;
    if copied != keys {
        return Err(failed(
            "checking the copy",
            format!(
                "the target lists {} keys where the source has {}",
                copied.len(),
                keys.len()
            ),
        ));
    }
    for (primary, secondary, key) in &keys {
        let source = from
            .read(primary, secondary, key)
            .map_err(|err| failed("checking the copy", err))?;
        let target = to
            .read(primary, secondary, key)
            .map_err(|err| failed("checking the copy", err))?;
        if source != target {
            return Err(failed(
                "checking the copy",
                format!("{primary}/{secondary}/{key} differs from the source"),
            ));
        }
    }
    Ok((keys.len(), bytes))
}

/// Leaves the moved note in the source.
fn mark_moved(store: &dyn KVStoreSync, whereto: &str) -> Result<(), NodeError> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|since| since.as_secs())
        .unwrap_or(0);
    store
        .write(
            "",
            "",
            MOVED_KEY,
            format!("{whereto} (unix time {now})\n").into_bytes(),
        )
        .map_err(|err| failed("marking the source as moved", err))
}

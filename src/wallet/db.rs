//! Where the wallet's changesets are kept: its SQLite file in the data directory (the
//! default), or the node's key-value store (the PostgreSQL store, so that another machine
//! takes the wallet over without a rescan), as one serialised changeset per save under
//! [`WALLET_NAMESPACE`], merged in order when loaded and compacted into one now and then.

use std::sync::Arc;

use bdk_wallet::chain::Merge;
use bdk_wallet::rusqlite::{self, Connection};
use bdk_wallet::{ChangeSet, WalletPersister};
use lightning::util::persist::KVStoreSync;

/// The primary namespace of the wallet's changesets in a key-value store.
pub const WALLET_NAMESPACE: &str = "bdk_wallet";

/// Saves kept apart before they are merged into one.
const COMPACT_AFTER: usize = 256;

/// Why the wallet's storage failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The SQLite file.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
    /// The key-value store.
    #[error("{0}")]
    Store(#[from] lightning::io::Error),
    /// A file of the wallet's.
    #[error(transparent)]
    File(#[from] std::io::Error),
    /// A stored changeset that cannot be read.
    #[error("changeset {key} cannot be read: {reason}")]
    Changeset {
        /// Its key.
        key: String,
        /// Why.
        reason: String,
    },
}

/// A key-value store holding wallet changesets.
pub type ChangesetStore = Arc<dyn KVStoreSync + Send + Sync>;

/// The wallet's changesets in a key-value store.
pub struct KvChangesets {
    store: ChangesetStore,
    /// The keys written so far, oldest first.
    keys: Vec<u64>,
    /// Everything stored, merged.
    aggregate: ChangeSet,
}

impl KvChangesets {
    /// The changesets in `store` (read by [`WalletPersister::initialize`]).
    pub fn new(store: ChangesetStore) -> Self {
        KvChangesets {
            store,
            keys: Vec::new(),
            aggregate: ChangeSet::default(),
        }
    }

    /// Whether `store` holds a wallet.
    pub fn exists(store: &dyn KVStoreSync) -> std::io::Result<bool> {
        Ok(!store.list(WALLET_NAMESPACE, "")?.is_empty())
    }

    /// Every changeset in `store`, merged in order.
    pub fn read_all(store: &dyn KVStoreSync) -> Result<(Vec<u64>, ChangeSet), StorageError> {
        let mut keys: Vec<u64> = store
            .list(WALLET_NAMESPACE, "")?
            .iter()
            .filter_map(|key| key.parse().ok())
            .collect();
        keys.sort_unstable();
        let mut aggregate = ChangeSet::default();
        for key in &keys {
            let name = key_name(*key);
            let bytes = store.read(WALLET_NAMESPACE, "", &name)?;
            let changeset: ChangeSet =
                serde_json::from_slice(&bytes).map_err(|err| StorageError::Changeset {
                    key: format!("{WALLET_NAMESPACE}/{name}"),
                    reason: err.to_string(),
                })?;
            aggregate.merge(changeset);
        }
        Ok((keys, aggregate))
    }

    /// Writes `changeset` as one new save in `store` after `last` (the highest key so far).
    pub fn append(
        store: &dyn KVStoreSync,
        last: Option<u64>,
        changeset: &ChangeSet,
    ) -> Result<u64, StorageError> {
        let key = last.map_or(0, |last| last + 1);
        let bytes = serde_json::to_vec(changeset).map_err(|err| StorageError::Changeset {
            key: key_name(key),
            reason: err.to_string(),
        })?;
        store.write(WALLET_NAMESPACE, "", &key_name(key), bytes)?;
        Ok(key)
    }

    /// Replaces the saves by one holding them all: written first, the older ones removed
    /// after (a crash between leaves both, which merge to the same wallet).
    fn compact(&mut self) -> Result<(), StorageError> {
        let key = Self::append(
            self.store.as_ref(),
            self.keys.last().copied(),
            &self.aggregate,
        )?;
        for old in std::mem::take(&mut self.keys) {
            self.store
                .remove(WALLET_NAMESPACE, "", &key_name(old), false)?;
        }
        self.keys.push(key);
        Ok(())
    }
}

fn key_name(key: u64) -> String {
    format!("{key:020}")
}

impl WalletPersister for KvChangesets {
    type Error = StorageError;

    fn initialize(persister: &mut Self) -> Result<ChangeSet, StorageError> {
        let (keys, aggregate) = Self::read_all(persister.store.as_ref())?;
        persister.keys = keys;
        persister.aggregate = aggregate.clone();
        if persister.keys.len() > 1 {
            persister.compact()?;
        }
        Ok(aggregate)
    }

    fn persist(persister: &mut Self, changeset: &ChangeSet) -> Result<(), StorageError> {
        if changeset.is_empty() {
            return Ok(());
        }
        let key = Self::append(
            persister.store.as_ref(),
            persister.keys.last().copied(),
            changeset,
        )?;
        persister.keys.push(key);
        persister.aggregate.merge(changeset.clone());
        if persister.keys.len() > COMPACT_AFTER {
            persister.compact()?;
        }
        Ok(())
    }
}

/// The wallet's storage.
pub enum WalletDb {
    /// The SQLite file.
    Sqlite(Connection),
    /// A key-value store (boxed: it carries the wallet's aggregate changeset).
    Kv(Box<KvChangesets>),
}

impl WalletPersister for WalletDb {
    type Error = StorageError;

    fn initialize(persister: &mut Self) -> Result<ChangeSet, StorageError> {
        match persister {
            WalletDb::Sqlite(conn) => Ok(WalletPersister::initialize(conn)?),
            WalletDb::Kv(kv) => WalletPersister::initialize(kv.as_mut()),
        }
    }

    fn persist(persister: &mut Self, changeset: &ChangeSet) -> Result<(), StorageError> {
        match persister {
            WalletDb::Sqlite(conn) => Ok(WalletPersister::persist(conn, changeset)?),
            WalletDb::Kv(kv) => WalletPersister::persist(kv.as_mut(), changeset),
        }
    }
}

/// Copies the wallet in the SQLite file `path` into `store` (which must hold no wallet) and
/// checks that the store reads back the same wallet.
pub fn copy_file_to_store(
    path: &std::path::Path,
    store: &dyn KVStoreSync,
) -> Result<(), StorageError> {
    let changeset = read_file(path)?;
    if KvChangesets::exists(store)? {
        return Err(StorageError::Changeset {
            key: WALLET_NAMESPACE.into(),
            reason: "the store holds a wallet already".into(),
        });
    }
    KvChangesets::append(store, None, &changeset)?;
    let (_, copied) = KvChangesets::read_all(store)?;
    if copied != changeset {
        return Err(StorageError::Changeset {
            key: WALLET_NAMESPACE.into(),
            reason: "the copy does not read back as the wallet file".into(),
        });
    }
    Ok(())
}

/// Copies the wallet in `store` into a new SQLite file at `path` (fsynced) and checks that the
/// file reads back the same wallet. `Ok(false)` when the store holds no wallet.
pub fn copy_store_to_file(
    store: &dyn KVStoreSync,
    path: &std::path::Path,
) -> Result<bool, StorageError> {
    if !KvChangesets::exists(store)? {
        return Ok(false);
    }
    let (_, changeset) = KvChangesets::read_all(store)?;
    let mut conn = Connection::open_with_flags(
        path,
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_CREATE,
    )?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    // Creates BDK's tables in the new file.
    let existing = WalletPersister::initialize(&mut conn)?;
    if !existing.is_empty() {
        return Err(StorageError::Changeset {
            key: path.display().to_string(),
            reason: "the wallet file holds a wallet already".into(),
        });
    }
    WalletPersister::persist(&mut conn, &changeset)?;
    drop(conn);
    if let Some(parent) = path.parent() {
        std::fs::File::open(parent)?.sync_all()?;
    }
    let copied = read_file(path)?;
    if copied != changeset {
        return Err(StorageError::Changeset {
            key: path.display().to_string(),
            reason: "the wallet file does not read back as the store's wallet".into(),
        });
    }
    Ok(true)
}

/// The wallet in the SQLite file `path`, read without writing to it.
fn read_file(path: &std::path::Path) -> Result<ChangeSet, StorageError> {
    let mut conn = Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
    let transaction = conn.transaction()?;
    Ok(ChangeSet::from_sqlite(&transaction)?)
}

//! The wallet's SQLite file: opening it (refusing foreign files without touching them),
//! creating a new wallet in it, loading and reloading it; and the same for a wallet kept in a
//! key-value store (see [`super::db`]).
//!
//! SQLite runs in its default rollback-journal mode with `synchronous = FULL`: a commit is on
//! stable storage when it returns, so everything the wallet persists is durable before it is
//! acknowledged.

use std::fs::File;
use std::path::Path;

use bdk_wallet::chain::{BlockId, CheckPoint, Merge};
use bdk_wallet::rusqlite::{self, Connection, ErrorCode, OpenFlags};
use bdk_wallet::{
    ChangeSet, KeychainKind, LoadError, LoadMismatch, LoadParams, LoadWithPersistError,
    PersistedWallet, Update, WalletPersister,
};
use bitcoin::constants::genesis_block;
use bitcoin::{BlockHash, Network};

use super::db::{ChangesetStore, KvChangesets, WalletDb};
use super::keys::WalletKeys;
use super::WalletError;

/// Scripts derived beyond the last revealed index of each keychain, so that payments to
/// addresses handed out by an earlier installation (a restore) are still found.
pub(crate) const LOOKAHEAD: u32 = 25;

/// The BDK wallet, persisted in SQLite or a key-value store.
pub(crate) type StoredWallet = PersistedWallet<WalletDb>;

/// Load parameters that check the file against this node's network and keys.
pub(crate) fn load_params(keys: &WalletKeys, network: Network) -> LoadParams {
    bdk_wallet::Wallet::load()
        .check_network(network)
        .check_genesis_hash(genesis_block(network).block_hash())
        .descriptor(KeychainKind::External, Some(keys.external.clone()))
        .descriptor(KeychainKind::Internal, Some(keys.internal.clone()))
        .lookahead(LOOKAHEAD)
}

/// Opens the wallet file at `path`, creating a new wallet if the file is missing or empty.
///
/// An existing file is first inspected through a read-only connection: a file of another
/// network, of other keys, or no wallet file at all is refused before anything writes to it.
pub(crate) fn open(
    path: &Path,
    keys: &WalletKeys,
    network: Network,
    birthday: Option<(u32, BlockHash)>,
) -> Result<(WalletDb, StoredWallet), WalletError> {
    check_birthday(network, birthday)?;
    if path.exists() {
        match inspect_existing(path, keys, network) {
            // A process killed in the middle of a write leaves a journal that only a
            // read-write connection may replay: replay it, then look again.
            Err(WalletError::NotAWalletFile { .. }) if needs_recovery(path) => {
                recover_journal(path)?;
                inspect_existing(path, keys, network)?;
            }
            other => other?,
        }
    }
    let conn = Connection::open(path).map_err(WalletError::storage("opening the wallet file"))?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(WalletError::storage("configuring the wallet file"))?;
    open_db(WalletDb::Sqlite(conn), path, keys, network, birthday)
}

/// Opens the wallet kept in the key-value store `store` (named `label` in messages), creating
/// a new wallet there if it holds none.
pub(crate) fn open_in_store(
    store: ChangesetStore,
    label: &Path,
    keys: &WalletKeys,
    network: Network,
    birthday: Option<(u32, BlockHash)>,
) -> Result<(WalletDb, StoredWallet), WalletError> {
    check_birthday(network, birthday)?;
    open_db(
        WalletDb::Kv(Box::new(KvChangesets::new(store))),
        label,
        keys,
        network,
        birthday,
    )
}

fn check_birthday(network: Network, birthday: Option<(u32, BlockHash)>) -> Result<(), WalletError> {
    let genesis = genesis_block(network).block_hash();
    match birthday {
        Some((0, hash)) if hash != genesis => Err(WalletError::InvalidBirthday(format!(
            "block {hash} at height 0 is not the genesis block of {network} ({genesis})"
        ))),
        _ => Ok(()),
    }
}

fn open_db(
    mut db: WalletDb,
    path: &Path,
    keys: &WalletKeys,
    network: Network,
    birthday: Option<(u32, BlockHash)>,
) -> Result<(WalletDb, StoredWallet), WalletError> {
    if let Some(wallet) = load(&mut db, path, keys, network)? {
        if birthday.is_some() {
            log::debug!(
                "wallet already exists in {}; birthday ignored",
                path.display()
            );
        }
        return Ok((db, wallet));
    }
    let wallet = create(&mut db, path, keys, network, birthday)?;
    Ok((db, wallet))
}

/// Loads the wallet stored in `db`; `None` if it holds no wallet yet.
pub(crate) fn load(
    conn: &mut WalletDb,
    path: &Path,
    keys: &WalletKeys,
    network: Network,
) -> Result<Option<StoredWallet>, WalletError> {
    PersistedWallet::load(conn, load_params(keys, network)).map_err(|e| match e {
        LoadWithPersistError::Persist(source) => WalletError::Storage {
            context: "loading the wallet",
            source,
        },
        LoadWithPersistError::InvalidChangeSet(e) => load_error(path, e),
    })
}

/// Whether a read-only look at `path` fails because the file has a journal to replay.
fn needs_recovery(path: &Path) -> bool {
    let Ok(conn) = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY) else {
        return false;
    };
    let read = conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    });
    matches!(read, Err(e) if e.sqlite_error_code() == Some(ErrorCode::ReadOnly))
}

/// Opens `path` read-write once so SQLite replays the journal a killed process left.
fn recover_journal(path: &Path) -> Result<(), WalletError> {
    let conn =
        Connection::open(path).map_err(WalletError::storage("recovering the wallet file"))?;
    conn.query_row("SELECT COUNT(*) FROM sqlite_master", [], |row| {
        row.get::<_, i64>(0)
    })
    .map_err(WalletError::storage("recovering the wallet file"))?;
    log::info!(
        "{}: replayed the journal of an interrupted write",
        path.display()
    );
    Ok(())
}

/// Inspects an existing file without writing to it.
fn inspect_existing(path: &Path, keys: &WalletKeys, network: Network) -> Result<(), WalletError> {
    let not_a_wallet = |reason: String| WalletError::NotAWalletFile {
        path: path.to_owned(),
        reason,
    };
    // A file another process holds locked is busy, not foreign.
    let unreadable = |e: rusqlite::Error| match e.sqlite_error_code() {
        Some(ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked) => WalletError::Storage {
            context: "reading the wallet file (is another process using it?)",
            source: e.into(),
        },
        _ => not_a_wallet(e.to_string()),
    };
    let mut conn = Connection::open_with_flags(
        path,
        OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX,
    )
    .map_err(unreadable)?;
    let tables: Vec<String> = conn
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table'")
        .and_then(|mut statement| {
            statement
                .query_map([], |row| row.get(0))?
                .collect::<Result<_, _>>()
        })
        .map_err(unreadable)?;
    if tables.is_empty() {
        return Ok(());
    }
    if !tables.iter().any(|t| t == ChangeSet::WALLET_TABLE_NAME) {
        return Err(not_a_wallet(format!(
            "it is an SQLite database without wallet tables (it has: {})",
            tables.join(", ")
        )));
    }
    let db_tx = conn
        .transaction()
        .map_err(WalletError::storage("reading the wallet file"))?;
    let changeset = ChangeSet::from_sqlite(&db_tx).map_err(|e| WalletError::CorruptWalletFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    if changeset.is_empty() {
        return Ok(());
    }
    load_params(keys, network)
        .load_wallet_no_persist(changeset)
        .map_err(|e| load_error(path, e))?;
    Ok(())
}

/// Creates a new wallet in `conn` whose chain starts at `birthday` (or genesis).
fn create(
    conn: &mut WalletDb,
    path: &Path,
    keys: &WalletKeys,
    network: Network,
    birthday: Option<(u32, BlockHash)>,
) -> Result<StoredWallet, WalletError> {
    let genesis = genesis_block(network).block_hash();
    let mut wallet = bdk_wallet::Wallet::create(keys.external.clone(), keys.internal.clone())
        .network(network)
        .lookahead(LOOKAHEAD)
        .create_wallet_no_persist()
        .map_err(|e| WalletError::KeyDerivation(e.to_string()))?;
    match birthday {
        Some((height, hash)) if height > 0 => {
            let start = CheckPoint::from_block_ids([
                BlockId {
                    height: 0,
                    hash: genesis,
                },
                BlockId { height, hash },
            ])
            .expect("heights are ascending");
            wallet
                .apply_update(Update {
                    chain: Some(start),
                    ..Default::default()
                })
                .map_err(|e| WalletError::InvalidBirthday(e.to_string()))?;
        }
        _ => {}
    }
    let changeset = wallet
        .take_staged()
        .expect("a new wallet has descriptors and network to store");
    WalletPersister::persist(conn, &changeset)
        .map_err(WalletError::storage("creating the wallet"))?;
    if matches!(conn, WalletDb::Sqlite(_)) {
        sync_parent_dir(path)?;
    }
    log::info!(
        "created a new {network} wallet in {} starting after block {}",
        path.display(),
        birthday.map_or(0, |(height, _)| height)
    );
    load(conn, path, keys, network)?.ok_or_else(|| WalletError::CorruptWalletFile {
        path: path.to_owned(),
        reason: "the wallet just created cannot be read back".to_owned(),
    })
}

/// Makes the directory entry of a newly created file durable.
fn sync_parent_dir(path: &Path) -> Result<(), WalletError> {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    File::open(parent)
        .and_then(|dir| dir.sync_all())
        .map_err(|source| WalletError::FileSystem {
            context: format!("syncing directory {}", parent.display()),
            source,
        })
}

/// Describes why a stored wallet cannot be loaded with this node's network and keys.
fn load_error(path: &Path, error: LoadError) -> WalletError {
    match error {
        LoadError::Mismatch(LoadMismatch::Network { loaded, expected }) => {
            WalletError::NetworkMismatch {
                path: path.to_owned(),
                file_network: loaded,
                expected,
            }
        }
        LoadError::Mismatch(LoadMismatch::Descriptor { keychain, .. }) => {
            WalletError::KeysMismatch {
                path: path.to_owned(),
                keychain: match keychain {
                    KeychainKind::External => "external",
                    KeychainKind::Internal => "internal",
                },
            }
        }
        LoadError::Mismatch(LoadMismatch::Genesis { loaded, expected }) => {
            WalletError::CorruptWalletFile {
                path: path.to_owned(),
                reason: format!(
                    "its chain starts at block {loaded}, not at this network's genesis block \
                     {expected}"
                ),
            }
        }
        other => WalletError::CorruptWalletFile {
            path: path.to_owned(),
            reason: other.to_string(),
        },
    }
}

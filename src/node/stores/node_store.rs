//! Where the node keeps what LDK and the node persist: files in the data directory (with the
//! backup directory's mirror when one is configured; the default), or PostgreSQL, where this
//! process is the node's one writer (see [`crate::postgres`]).

use std::path::PathBuf;
use std::sync::Arc;

use lightning::io;
use lightning::util::persist::KVStoreSync;

use super::backup::{BackupState, BackupStatus, ChannelStore};
use crate::postgres::{PgStatusHandle, PgStore, Role};

/// The node's key-value store.
pub enum NodeStore {
    /// Files under `<datadir>/ldk`, maybe mirrored.
    Files(ChannelStore),
    /// PostgreSQL.
    Postgres(Arc<PgStore>),
}

/// The store as `getinfo` shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoreInfo {
    /// `files` or `postgresql`.
    pub kind: &'static str,
    /// The directory, or the server and database (without the password).
    pub location: String,
    /// `writer` for the files store and the PostgreSQL writer; `connecting`, `standby`
    /// (waiting for the writer lock) or `lost` (the session ended: nothing more is written).
    pub role: &'static str,
    /// On a standby, who holds the writer lock.
    pub waiting_for: Option<String>,
    /// The PostgreSQL writer's fencing epoch.
    pub epoch: Option<i64>,
    /// Why the session was lost.
    pub lost: Option<String>,
}

impl StoreInfo {
    /// The files store in `dir`.
    pub fn files(dir: PathBuf) -> Self {
        StoreInfo {
            kind: "files",
            location: dir.display().to_string(),
            role: "writer",
            waiting_for: None,
            epoch: None,
            lost: None,
        }
    }

    /// A PostgreSQL store's status.
    pub fn postgres(status: &PgStatusHandle) -> Self {
        let status = status.status();
        let (role, waiting_for, epoch, lost) = match status.role {
            Role::Connecting => ("connecting", None, None, None),
            Role::Waiting { holder } => ("standby", Some(holder), None, None),
            Role::Writer { epoch } => ("writer", None, Some(epoch), None),
            Role::Lost { reason } => ("lost", None, None, Some(reason)),
        };
        StoreInfo {
            kind: "postgresql",
            location: status.location,
            role,
            waiting_for,
            epoch,
            lost,
        }
    }
}

impl NodeStore {
    /// The files store in `dir` alone, without a mirror.
    pub fn new(dir: PathBuf) -> Self {
        NodeStore::Files(ChannelStore::new(dir))
    }

    /// The mirror's state (always off with PostgreSQL, which is replicated instead).
    pub fn backup_status(&self) -> BackupStatus {
        match self {
            NodeStore::Files(store) => store.backup_status(),
            NodeStore::Postgres(_) => BackupStatus {
                dir: None,
                state: BackupState::Off,
                last_error: None,
            },
        }
    }

    /// The store as `getinfo` shows it, for the node in `data_dir`.
    pub fn info(&self, data_dir: &std::path::Path) -> StoreInfo {
        match self {
            NodeStore::Files(_) => StoreInfo::files(data_dir.join("ldk")),
            NodeStore::Postgres(store) => StoreInfo::postgres(&store.status_handle()),
        }
    }

    /// The PostgreSQL store, if that is where the state lives.
    pub fn postgres(&self) -> Option<&Arc<PgStore>> {
        match self {
            NodeStore::Postgres(store) => Some(store),
            NodeStore::Files(_) => None,
        }
    }

    fn inner(&self) -> &dyn KVStoreSync {
        match self {
            NodeStore::Files(store) => store,
            NodeStore::Postgres(store) => store.as_ref(),
        }
    }
}

impl KVStoreSync for NodeStore {
    fn read(&self, primary: &str, secondary: &str, key: &str) -> io::Result<Vec<u8>> {
        self.inner().read(primary, secondary, key)
    }

    fn write(&self, primary: &str, secondary: &str, key: &str, buf: Vec<u8>) -> io::Result<()> {
        self.inner().write(primary, secondary, key, buf)
    }

    fn remove(&self, primary: &str, secondary: &str, key: &str, lazy: bool) -> io::Result<()> {
        self.inner().remove(primary, secondary, key, lazy)
    }

    fn list(&self, primary: &str, secondary: &str) -> io::Result<Vec<String>> {
        self.inner().list(primary, secondary)
    }
}

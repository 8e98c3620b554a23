//! The node's state in PostgreSQL (`--store postgresql://…`): every key LDK and the node
//! persist, and the wallet's changesets, in one table keyed by node, namespace and key, behind
//! LDK's [`KVStoreSync`] and [`KVStore`] traits. The only place that names `tokio_postgres`,
//! the rust-postgres project's asynchronous client (maintained, pure Rust, on tokio, which the
//! node runs already).
//!
//! # One writer
//!
//! Opening the store makes this process the node's only writer: it takes the PostgreSQL
//! advisory lock named for the node id on its session and holds it for as long as the store
//! lives; a standby ([`PgOptions::standby`]) waits for it. Writes are fenced (see
//! [`writer`]): each one commits only while the epoch this process raised when it took the
//! lock is still the node's, so a process that lost its session cannot commit after another
//! took over. A lost session is never replaced: every later request fails and the hook set with
//! [`PgStore::on_lost`] is told, so the daemon stops.
//!
//! # Durability
//!
//! A write or removal returns once its statement (its own transaction) has committed: as
//! durable as the server's `synchronous_commit` makes a commit (on its disk by default; on a
//! synchronous standby's too when `synchronous_standby_names` names one). A session whose
//! `synchronous_commit` is `off` is set back to `on` at open.
//!
//! Requests run one at a time on the one session, in the order they were made: writes to a
//! key land in the order they were issued, as [`KVStore`] requires.

mod error;
mod session;
pub mod writer;

use lightning::io;
use std::str::FromStr;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use lightning::util::async_poll::AsyncResult;
use lightning::util::persist::{KVStore, KVStoreSync, MigratableKVStore};
use tokio::sync::{mpsc, oneshot};

pub use error::PgError;
pub use session::{SESSION_TIMEOUT, STANDBY_POLL};

use session::{other_error, Answer, Op, Reply, Request};

/// Whether `store` names a PostgreSQL server (a `postgresql://` or `postgres://` URL).
pub fn is_postgres_url(store: &str) -> bool {
    store.starts_with("postgresql://") || store.starts_with("postgres://")
}

/// What to open.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// The connection URL (`postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE[?…]`).
    pub url: String,
    /// The node whose state is kept.
    pub node_id: PublicKey,
    /// Its network (on record with the node's state; another is refused).
    pub network: Network,
    /// Wait for the writer lock instead of refusing when another process holds it.
    pub standby: bool,
}

/// Where this process stands with the node's writer lock.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Role {
    /// Connecting to the server.
    Connecting,
    /// A standby waiting for the lock, held by `holder`.
    Waiting {
        /// Who holds it (as on record: host and process, since when, from where).
        holder: String,
    },
    /// The node's writer, at this epoch.
    Writer {
        /// The fencing epoch this process raised.
        epoch: i64,
    },
    /// The session ended: this process writes nothing more.
    Lost {
        /// Why.
        reason: String,
    },
}

/// The store's location and role, as `getinfo` shows them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PgStatus {
    /// The server and database, without the password.
    pub location: String,
    /// Where this process stands.
    pub role: Role,
}

type LostHook = Box<dyn Fn(&str) + Send + Sync>;

/// State shared between the store and its session's thread.
pub(crate) struct Shared {
    status: Mutex<PgStatus>,
    on_lost: Mutex<Option<LostHook>>,
}

impl Shared {
    fn set_role(&self, role: Role) {
        self.status.lock().unwrap_or_else(|p| p.into_inner()).role = role;
    }

    fn lose(&self, reason: &str) {
        self.set_role(Role::Lost {
            reason: reason.to_string(),
        });
        if let Some(hook) = self
            .on_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take()
        {
            hook(reason);
        }
    }

    fn lost_error(&self) -> io::Error {
        let status = self.status.lock().unwrap_or_else(|p| p.into_inner());
        match &status.role {
            Role::Lost { reason } => session::lost_error(reason),
            _ => session::lost_error("the session ended"),
        }
    }
}

/// A handle on a store being opened, to read its status (a standby's wait) meanwhile.
#[derive(Clone)]
pub struct PgStatusHandle(Arc<Shared>);

impl PgStatusHandle {
    /// The store's location and role now.
    pub fn status(&self) -> PgStatus {
        self.0
            .status
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// The node's key-value store in PostgreSQL, this process its only writer.
pub struct PgStore {
    requests: mpsc::UnboundedSender<Request>,
    shared: Arc<Shared>,
}

/// The URL without its password, as logs and `getinfo` show it.
pub fn describe_config(config: &tokio_postgres::Config) -> String {
    use tokio_postgres::config::Host;
    let host = config
        .get_hosts()
        .iter()
        .map(|host| match host {
            Host::Tcp(name) => name.clone(),
            Host::Unix(path) => path.display().to_string(),
        })
        .collect::<Vec<_>>()
        .join(",");
    let port = config
        .get_ports()
        .first()
        .map(|port| format!(":{port}"))
        .unwrap_or_default();
    let user = config
        .get_user()
        .map(|user| format!("{user}@"))
        .unwrap_or_default();
    let database = config.get_dbname().unwrap_or_default();
    format!("postgresql://{user}{host}{port}/{database}")
}

/// Parses a connection URL; the location shown is the URL without its password.
pub fn parse_url(url: &str) -> Result<(tokio_postgres::Config, String), PgError> {
    if !is_postgres_url(url) {
        return Err(PgError::NotAUrl(url.to_string()));
    }
    let mut config = tokio_postgres::Config::from_str(url).map_err(|err| PgError::BadUrl {
        url: redact(url),
        reason: session::describe(&err),
    })?;
    if config.get_application_name().is_none() {
        config.application_name("lightfilter");
    }
    if config.get_connect_timeout().is_none() {
        config.connect_timeout(SESSION_TIMEOUT);
    }
    let location = describe_config(&config);
    Ok((config, location))
}

/// `url` with any password replaced (for a URL that could not be parsed).
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme), Some(at)) if at > scheme => {
            let credentials = &url[scheme + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

/// How this process names itself as the writer: host and process id.
fn holder_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_else(|_| "an unknown host".into());
    format!("lightfilter on {host} (pid {})", std::process::id())
}

impl PgStore {
    /// Starts opening the store: connects, creates the tables if needed and takes the node's
    /// writer lock (on a standby, waits for it). Returns a status handle at once and the open
    /// store through `opened`; dropping that future abandons the wait.
    pub fn open(
        options: &PgOptions,
    ) -> Result<
        (
            PgStatusHandle,
            impl std::future::Future<Output = Result<PgStore, PgError>>,
        ),
        PgError,
    > {
        let (config, location) = parse_url(&options.url)?;
        let shared = Arc::new(Shared {
            status: Mutex::new(PgStatus {
                location: location.clone(),
                role: Role::Connecting,
            }),
            on_lost: Mutex::new(None),
        });
        let (requests, receiver) = mpsc::unbounded_channel();
        let (ready_tx, ready) = oneshot::channel();
        session::spawn(
            session::Target {
                config,
                location: location.clone(),
                node_id: options.node_id,
                network: options.network,
                standby: options.standby,
                holder: holder_name(),
            },
            shared.clone(),
            receiver,
            ready_tx,
        )?;
        let store = PgStore {
            requests,
            shared: shared.clone(),
        };
        let opened = async move {
            match ready.await {
                Ok(Ok(())) => Ok(store),
                Ok(Err(err)) => Err(err),
                Err(_) => Err(PgError::Lost {
                    url: location,
                    reason: "the store's thread ended".into(),
                }),
            }
        };
        Ok((PgStatusHandle(shared), opened))
    }

    /// Opens the store (see [`PgStore::open`]) and waits until it is open.
    pub async fn open_and_wait(options: &PgOptions) -> Result<PgStore, PgError> {
        let (_, opened) = Self::open(options)?;
        opened.await
    }

    /// Calls `hook` once, with the reason, when the session is lost (at once if it was).
    pub fn on_lost(&self, hook: impl Fn(&str) + Send + Sync + 'static) {
        let status = self.status();
        if let Role::Lost { reason } = status.role {
            hook(&reason);
            return;
        }
        *self
            .shared
            .on_lost
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(Box::new(hook));
        // The session may have been lost in between.
        if let Role::Lost { reason } = self.status().role {
            if let Some(hook) = self
                .shared
                .on_lost
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take()
            {
                hook(&reason);
            }
        }
    }

    /// The store's location and role.
    pub fn status(&self) -> PgStatus {
        PgStatusHandle(self.shared.clone()).status()
    }

    /// A handle to read the status from elsewhere.
    pub fn status_handle(&self) -> PgStatusHandle {
        PgStatusHandle(self.shared.clone())
    }

    fn send(&self, op: Op, reply: Reply) -> Result<(), io::Error> {
        self.requests
            .send(Request { op, reply })
            .map_err(|_| self.shared.lost_error())
    }

    fn blocking(&self, op: Op) -> io::Result<Answer> {
        let (reply, answer) = std::sync::mpsc::sync_channel(1);
        self.send(op, Reply::Blocking(reply))?;
        answer.recv().map_err(|_| self.shared.lost_error())?
    }

    fn later(&self, op: Op) -> impl std::future::Future<Output = io::Result<Answer>> + 'static {
        let (reply, answer) = oneshot::channel();
        let sent = self.send(op, Reply::Async(reply));
        let shared = self.shared.clone();
        async move {
            sent?;
            answer.await.map_err(|_| shared.lost_error())?
        }
    }
}

fn key(primary: &str, secondary: &str, key: &str) -> session::Key {
    (primary.to_string(), secondary.to_string(), key.to_string())
}

fn unexpected() -> io::Error {
    other_error("PostgreSQL store: unexpected answer".into())
}

fn bytes(answer: io::Result<Answer>) -> io::Result<Vec<u8>> {
    match answer? {
        Answer::Bytes(bytes) => Ok(bytes),
        _ => Err(unexpected()),
    }
}

fn done(answer: io::Result<Answer>) -> io::Result<()> {
    match answer? {
        Answer::Done => Ok(()),
        _ => Err(unexpected()),
    }
}

fn keys(answer: io::Result<Answer>) -> io::Result<Vec<String>> {
    match answer? {
        Answer::Keys(keys) => Ok(keys),
        _ => Err(unexpected()),
    }
}

impl KVStoreSync for PgStore {
    fn read(&self, primary: &str, secondary: &str, key_name: &str) -> io::Result<Vec<u8>> {
        bytes(self.blocking(Op::Read(key(primary, secondary, key_name))))
    }

    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key_name: &str,
        buf: Vec<u8>,
    ) -> io::Result<()> {
        done(self.blocking(Op::Write(key(primary, secondary, key_name), buf)))
    }

    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key_name: &str,
        _lazy: bool,
    ) -> io::Result<()> {
        done(self.blocking(Op::Remove(key(primary, secondary, key_name))))
    }

    fn list(&self, primary: &str, secondary: &str) -> io::Result<Vec<String>> {
        keys(self.blocking(Op::List(primary.to_string(), secondary.to_string())))
    }
}

impl KVStore for PgStore {
    fn read(
        &self,
        primary: &str,
        secondary: &str,
        key_name: &str,
    ) -> AsyncResult<'static, Vec<u8>, io::Error> {
        let answer = self.later(Op::Read(key(primary, secondary, key_name)));
        Box::pin(async move { bytes(answer.await) })
    }

    fn write(
        &self,
        primary: &str,
        secondary: &str,
        key_name: &str,
        buf: Vec<u8>,
    ) -> AsyncResult<'static, (), io::Error> {
        // The request is queued now, so writes to a key land in the order they were made.
        let answer = self.later(Op::Write(key(primary, secondary, key_name), buf));
        Box::pin(async move { done(answer.await) })
    }

    fn remove(
        &self,
        primary: &str,
        secondary: &str,
        key_name: &str,
        _lazy: bool,
    ) -> AsyncResult<'static, (), io::Error> {
        let answer = self.later(Op::Remove(key(primary, secondary, key_name)));
        Box::pin(async move { done(answer.await) })
    }

    fn list(&self, primary: &str, secondary: &str) -> AsyncResult<'static, Vec<String>, io::Error> {
        let answer = self.later(Op::List(primary.to_string(), secondary.to_string()));
        Box::pin(async move { keys(answer.await) })
    }
}

impl MigratableKVStore for PgStore {
    fn list_all_keys(&self) -> io::Result<Vec<(String, String, String)>> {
        match self.blocking(Op::ListAll)? {
            Answer::All(all) => Ok(all),
            _ => Err(unexpected()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_recognised_and_shown_without_their_password() {
        assert!(is_postgres_url("postgresql://u@h/db"));
        assert!(is_postgres_url("postgres://u@h/db"));
        assert!(!is_postgres_url("/var/lib/lightfilter"));
        let (_, location) = parse_url("postgresql://node:secret@db.example:6543/ln").unwrap();
        assert_eq!(location, "postgresql://node@db.example:6543/ln");
        assert!(matches!(parse_url("files"), Err(PgError::NotAUrl(_))));
        let bad = parse_url("postgresql://node:secret@host:notaport/ln")
            .err()
            .unwrap()
            .to_string();
        assert!(!bad.contains("secret") && bad.contains("node:***"), "{bad}");
    }
}

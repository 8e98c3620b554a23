//! The thread that owns the PostgreSQL session: it connects, takes the node's writer lock
//! (waiting for it on a standby), raises the fencing epoch, and then runs the store's requests
//! one at a time, in the order they were made, on that one session. It runs a runtime of its
//! own, so that callers may block on it from anywhere, inside the node's runtime included.
//!
//! The session is never replaced. When it ends (the server closed it, or it did not answer a
//! request or a ping within [`SESSION_TIMEOUT`]) the store is lost: every later request fails,
//! and the hook set with `PgStore::on_lost` is told once, so that the daemon stops.

use lightning::io;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use bitcoin::Network;
use log::{error, info, warn};
use tokio::sync::{mpsc, oneshot};
use tokio_postgres::{Client, NoTls, Statement};

use super::error::PgError;
use super::writer;
use super::{Role, Shared};

/// How long a request or a ping may wait for the server before the session counts as lost.
/// A server should end a silent client's session only later than this (see the README's
/// settings), so that a writer cut off from the server has stopped before a standby can take
/// over.
pub const SESSION_TIMEOUT: Duration = Duration::from_secs(10);

/// How often an idle session is checked (the epoch is read back).
const PING_INTERVAL: Duration = Duration::from_secs(1);

/// How often a standby tries the writer lock.
pub const STANDBY_POLL: Duration = Duration::from_millis(250);

/// A key: primary namespace, secondary namespace, key.
pub(super) type Key = (String, String, String);

/// What the store asks of the session.
pub(super) enum Op {
    Read(Key),
    Write(Key, Vec<u8>),
    Remove(Key),
    List(String, String),
    ListAll,
}

/// What the session answers.
pub(super) enum Answer {
    Bytes(Vec<u8>),
    Keys(Vec<String>),
    All(Vec<Key>),
    Done,
}

/// Where an answer goes: a caller blocked on a channel, or a future.
pub(super) enum Reply {
    Blocking(std::sync::mpsc::SyncSender<io::Result<Answer>>),
    Async(oneshot::Sender<io::Result<Answer>>),
}

impl Reply {
    fn send(self, answer: io::Result<Answer>) {
        match self {
            Reply::Blocking(sender) => {
                let _ = sender.send(answer);
            }
            Reply::Async(sender) => {
                let _ = sender.send(answer);
            }
        }
    }
}

/// One request to the session.
pub(super) struct Request {
    pub op: Op,
    pub reply: Reply,
}

/// What the session is opened for.
pub(super) struct Target {
    pub config: tokio_postgres::Config,
    pub location: String,
    pub node_id: PublicKey,
    pub network: Network,
    pub standby: bool,
    pub holder: String,
}

/// Starts the session's thread. `ready` hears once the lock is held and the epoch raised (or
/// why not); dropping its receiver abandons a standby's wait.
pub(super) fn spawn(
    target: Target,
    shared: Arc<Shared>,
    requests: mpsc::UnboundedReceiver<Request>,
    ready: oneshot::Sender<Result<(), PgError>>,
) -> Result<(), PgError> {
    std::thread::Builder::new()
        .name("postgres store".into())
        .spawn(move || {
            let runtime = match tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            {
                Ok(runtime) => runtime,
                Err(err) => {
                    let _ = ready.send(Err(PgError::Thread(err)));
                    return;
                }
            };
            runtime.block_on(run(target, shared, requests, ready));
        })
        .map(|_| ())
        .map_err(PgError::Thread)
}

/// The prepared statements of a session.
struct Statements {
    read: Statement,
    write: Statement,
    remove: Statement,
    list: Statement,
    list_all: Statement,
    epoch: Statement,
}

/// A session holding the writer lock at `epoch`.
struct Session {
    client: Client,
    statements: Statements,
    node: String,
    epoch: i64,
}

async fn run(
    target: Target,
    shared: Arc<Shared>,
    mut requests: mpsc::UnboundedReceiver<Request>,
    mut ready: oneshot::Sender<Result<(), PgError>>,
) {
    let (client, mut closed) = match connect(&target).await {
        Ok(connected) => connected,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    let opened = tokio::select! {
        opened = become_writer(client, &target, &shared, &mut ready) => opened,
        reason = &mut closed => Err(PgError::Lost {
            url: target.location.clone(),
            reason: reason.unwrap_or_else(|_| "the session ended".into()),
        }),
    };
    let session = match opened {
        Ok(Some(session)) => session,
        // The opener gave up waiting.
        Ok(None) => return,
        Err(err) => {
            let _ = ready.send(Err(err));
            return;
        }
    };
    shared.set_role(Role::Writer {
        epoch: session.epoch,
    });
    if ready.send(Ok(())).is_err() {
        return;
    }
    let lost = serve(session, &mut requests, &mut closed).await;
    let Some(reason) = lost else {
        // The store was dropped: the session ends and the lock with it.
        return;
    };
    error!(
        "PostgreSQL store {}: {reason}; this process is no longer the node's writer and \
         writes nothing more",
        target.location
    );
    shared.lose(&reason);
    // Every later request fails.
    while let Some(request) = requests.recv().await {
        request.reply.send(Err(shared.lost_error()));
    }
}

/// Connects; the receiver resolves with the reason once the connection ends.
async fn connect(target: &Target) -> Result<(Client, oneshot::Receiver<String>), PgError> {
    let (client, connection) =
        target
            .config
            .connect(NoTls)
            .await
            .map_err(|err| PgError::Connect {
                url: target.location.clone(),
                reason: describe(&err),
            })?;
    let (closed_tx, closed) = oneshot::channel();
    tokio::spawn(async move {
        let reason = match connection.await {
            Ok(()) => "the server closed the session".to_string(),
            Err(err) => format!("the session ended: {}", describe(&err)),
        };
        let _ = closed_tx.send(reason);
    });
    Ok((client, closed))
}

/// Creates the schema, takes the writer lock (waiting for it on a standby, until `ready`'s
/// receiver is dropped: then `None`), checks the network and raises the epoch.
async fn become_writer(
    mut client: Client,
    target: &Target,
    shared: &Shared,
    ready: &mut oneshot::Sender<Result<(), PgError>>,
) -> Result<Option<Session>, PgError> {
    let fail = |context: &'static str| {
        let url = target.location.clone();
        move |err: tokio_postgres::Error| PgError::Statement {
            url,
            context,
            reason: describe(&err),
        }
    };
    client
        .batch_execute(writer::SCHEMA)
        .await
        .map_err(fail("creating the tables"))?;
    check_durability(&client, target)
        .await
        .map_err(fail("checking synchronous_commit and fsync"))?;
    let node = target.node_id.to_string();
    let key = writer::lock_key(&target.node_id);
    let mut told_waiting = false;
    loop {
        let row = client
            .query_one(writer::TRY_LOCK, &[&key])
            .await
            .map_err(fail("taking the writer lock"))?;
        if row.get::<_, bool>(0) {
            break;
        }
        let holder = holder(&client, &node, key)
            .await
            .map_err(fail("looking up the writer"))?;
        if !target.standby {
            return Err(PgError::Busy {
                url: target.location.clone(),
                node_id: node,
                holder,
            });
        }
        if !told_waiting {
            info!(
                "standby: waiting to become the writer of node {node} in PostgreSQL at {} \
                 (held by {holder})",
                target.location
            );
            told_waiting = true;
        }
        shared.set_role(Role::Waiting { holder });
        tokio::select! {
            () = tokio::time::sleep(STANDBY_POLL) => {}
            () = ready.closed() => return Ok(None),
        }
    }
    let transaction = client
        .transaction()
        .await
        .map_err(fail("raising the epoch"))?;
    // The network's name as the configuration spells it (`bitcoin`, `testnet`, `signet`, …).
    let network_name = target.network.to_string();
    let row = transaction
        .query_one(writer::RAISE_EPOCH, &[&node, &network_name, &target.holder])
        .await
        .map_err(fail("raising the epoch"))?;
    let epoch: i64 = row.get(0);
    let network: String = row.get(1);
    if network != network_name {
        return Err(PgError::OtherNetwork {
            url: target.location.clone(),
            node_id: node,
            found: network,
            expected: network_name,
        });
    }
    transaction
        .commit()
        .await
        .map_err(fail("raising the epoch"))?;
    info!(
        "writer of node {node} in PostgreSQL at {} (epoch {epoch})",
        target.location
    );
    let statements = Statements {
        read: prepare(&client, writer::READ, target).await?,
        write: prepare(&client, writer::WRITE, target).await?,
        remove: prepare(&client, writer::REMOVE, target).await?,
        list: prepare(&client, writer::LIST, target).await?,
        list_all: prepare(&client, writer::LIST_ALL, target).await?,
        epoch: prepare(&client, writer::EPOCH, target).await?,
    };
    Ok(Some(Session {
        client,
        statements,
        node,
        epoch,
    }))
}

/// Sets `synchronous_commit` back to `on` for this session where the server turned it off
/// (a commit could be acknowledged before it is on disk), and warns when the server runs
/// without `fsync`.
async fn check_durability(client: &Client, target: &Target) -> Result<(), tokio_postgres::Error> {
    let setting = |name: &'static str| async move {
        client
            .query_one("SELECT current_setting($1)", &[&name])
            .await
            .map(|row| row.get::<_, String>(0))
    };
    if setting("synchronous_commit").await? == "off" {
        warn!(
            "PostgreSQL at {}: synchronous_commit is off; this session sets it to on, so that \
             a write returns only once it is on disk",
            target.location
        );
        client.batch_execute("SET synchronous_commit TO on").await?;
    }
    if setting("fsync").await? == "off" {
        warn!(
            "PostgreSQL at {}: the server runs with fsync off; a crash of the server can lose \
             channel state that was acknowledged: turn fsync on",
            target.location
        );
    }
    Ok(())
}

async fn prepare(client: &Client, sql: &str, target: &Target) -> Result<Statement, PgError> {
    client.prepare(sql).await.map_err(|err| PgError::Statement {
        url: target.location.clone(),
        context: "preparing the statements",
        reason: describe(&err),
    })
}

/// Who holds the writer lock of `node`, as `getinfo` and the refusal show it.
pub(super) async fn holder(
    client: &Client,
    node: &str,
    key: i64,
) -> Result<String, tokio_postgres::Error> {
    let row = client.query_one(writer::HOLDER, &[&node, &key]).await?;
    let on_record: Option<String> = row.get(0);
    let since: Option<String> = row.get(1);
    let address: Option<String> = row.get(2);
    let mut text = on_record.unwrap_or_else(|| "a process that has not written yet".into());
    if let Some(since) = since {
        text.push_str(&format!(", writer since {since}"));
    }
    if let Some(address) = address {
        text.push_str(&format!(", connected from {address}"));
    }
    Ok(text)
}

/// Runs requests until the store is dropped (`None`) or the session is lost (why).
async fn serve(
    session: Session,
    requests: &mut mpsc::UnboundedReceiver<Request>,
    closed: &mut oneshot::Receiver<String>,
) -> Option<String> {
    let mut ping = tokio::time::interval(PING_INTERVAL);
    ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            request = requests.recv() => {
                let request = request?;
                match tokio::time::timeout(SESSION_TIMEOUT, session.run(request.op)).await {
                    Ok(Ok(answer)) => request.reply.send(Ok(answer)),
                    Ok(Err(Failure::Refused(err))) => request.reply.send(Err(err)),
                    Ok(Err(Failure::Lost(reason))) => {
                        request.reply.send(Err(lost_error(&reason)));
                        return Some(reason);
                    }
                    Err(_) => {
                        let reason = format!(
                            "the server did not answer within {} s",
                            SESSION_TIMEOUT.as_secs()
                        );
                        request.reply.send(Err(lost_error(&reason)));
                        return Some(reason);
                    }
                }
                ping.reset();
            }
            _ = ping.tick() => {
                match tokio::time::timeout(SESSION_TIMEOUT, session.check_epoch()).await {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => return Some(reason),
                    Err(_) => {
                        return Some(format!(
                            "the server did not answer a ping within {} s",
                            SESSION_TIMEOUT.as_secs()
                        ))
                    }
                }
            }
            reason = &mut *closed => {
                return Some(reason.unwrap_or_else(|_| "the session ended".into()));
            }
        }
    }
}

/// Why a request failed: refused (the store goes on), or the session is lost.
enum Failure {
    Refused(io::Error),
    Lost(String),
}

impl Session {
    async fn run(&self, op: Op) -> Result<Answer, Failure> {
        let node = &self.node;
        match op {
            Op::Read((primary, secondary, key)) => {
                let row = self
                    .client
                    .query_opt(&self.statements.read, &[node, &primary, &secondary, &key])
                    .await
                    .map_err(classify)?;
                match row {
                    Some(row) => Ok(Answer::Bytes(row.get(0))),
                    None => Err(Failure::Refused(io::Error::new(
                        io::ErrorKind::NotFound,
                        format!("no key {}", key_path(&primary, &secondary, &key)),
                    ))),
                }
            }
            Op::Write((primary, secondary, key), value) => {
                let written = self
                    .client
                    .execute(
                        &self.statements.write,
                        &[node, &self.epoch, &primary, &secondary, &key, &value],
                    )
                    .await
                    .map_err(classify)?;
                if written == 1 {
                    Ok(Answer::Done)
                } else {
                    Err(Failure::Lost(self.fenced()))
                }
            }
            Op::Remove((primary, secondary, key)) => {
                let row = self
                    .client
                    .query_one(
                        &self.statements.remove,
                        &[node, &self.epoch, &primary, &secondary, &key],
                    )
                    .await
                    .map_err(classify)?;
                if row.get::<_, bool>(0) {
                    Ok(Answer::Done)
                } else {
                    Err(Failure::Lost(self.fenced()))
                }
            }
            Op::List(primary, secondary) => {
                let rows = self
                    .client
                    .query(&self.statements.list, &[node, &primary, &secondary])
                    .await
                    .map_err(classify)?;
                Ok(Answer::Keys(rows.iter().map(|row| row.get(0)).collect()))
            }
            Op::ListAll => {
                let rows = self
                    .client
                    .query(&self.statements.list_all, &[node])
                    .await
                    .map_err(classify)?;
                Ok(Answer::All(
                    rows.iter()
                        .map(|row| (row.get(0), row.get(1), row.get(2)))
                        .collect(),
                ))
            }
        }
    }

    /// Reads the epoch back: lost when the session no longer answers or another process
    /// raised it.
    async fn check_epoch(&self) -> Result<(), String> {
        let row = self
            .client
            .query_opt(&self.statements.epoch, &[&self.node])
            .await
            .map_err(|err| format!("a ping failed: {}", describe(&err)))?;
        match row.map(|row| row.get::<_, i64>(0)) {
            Some(epoch) if epoch == self.epoch => Ok(()),
            _ => Err(self.fenced()),
        }
    }

    fn fenced(&self) -> String {
        format!(
            "another process became the writer (the epoch is no longer {}); the write was \
             refused",
            self.epoch
        )
    }
}

/// A failed statement: the session is lost when the connection is gone; any other error
/// refuses the one request. (A write that fails leaves nothing behind: each is one statement,
/// its own transaction.)
fn classify(err: tokio_postgres::Error) -> Failure {
    if err.is_closed() {
        Failure::Lost(format!("the session ended: {}", describe(&err)))
    } else {
        warn!("PostgreSQL store: a statement failed: {}", describe(&err));
        Failure::Refused(other_error(format!("PostgreSQL: {}", describe(&err))))
    }
}

/// The error every request gets once the session is lost.
pub(super) fn lost_error(reason: &str) -> io::Error {
    other_error(format!(
        "PostgreSQL store lost ({reason}): this process is no longer the node's writer"
    ))
}

/// `primary/secondary/key`, without the empty parts.
fn key_path(primary: &str, secondary: &str, key: &str) -> String {
    [primary, secondary, key]
        .into_iter()
        .filter(|part| !part.is_empty())
        .collect::<Vec<_>>()
        .join("/")
}

/// The client's error with the server's message, when there is one.
pub(super) fn describe(err: &tokio_postgres::Error) -> String {
    match err.as_db_error() {
        Some(db) => format!("{}: {}", db.severity(), db.message()),
        None => {
            let mut text = err.to_string();
            let mut source = std::error::Error::source(err);
            while let Some(inner) = source {
                text.push_str(&format!(": {inner}"));
                source = inner.source();
            }
            text
        }
    }
}

/// An I/O error of kind `Other` with `message`.
pub(super) fn other_error(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::Other, message)
}

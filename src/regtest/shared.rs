//! State shared by the public handle, the listeners and every P2P session.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::{BlockHash, FilterHeader};
use tokio::sync::broadcast;
use tokio::task::AbortHandle;

use super::limits::PeerLimits;
use super::node::{Node, Notice};
use super::stats::ServedStats;

/// Notices buffered per session before a slow session skips ahead.
const NOTICE_CAPACITY: usize = 4096;

/// Locks a mutex, recovering the data if a panicking thread poisoned it.
pub fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A live connection.
#[derive(Debug)]
pub struct SessionEntry {
    /// Stops the session's task.
    pub abort: AbortHandle,
    /// Set once the version handshake completed.
    pub handshaken: Arc<AtomicBool>,
}

/// Listeners and sessions.
#[derive(Debug, Default)]
pub struct ServerState {
    /// Set by shutdown: no listener or session starts afterwards.
    pub shut_down: bool,
    /// Accept loops of every endpoint.
    pub listeners: Vec<AbortHandle>,
    /// Live sessions by id.
    pub sessions: HashMap<u64, SessionEntry>,
    /// The next session id.
    pub next_session: u64,
    /// Set while connections are refused for the connection limit (to log that once).
    pub refusing: bool,
}

/// Everything behind a [`RegtestPeer`](super::RegtestPeer).
#[derive(Debug)]
pub struct Shared {
    /// Chain, mempool, faucet.
    pub node: Mutex<Node>,
    /// Tells sessions about new tips and transactions.
    pub notices: broadcast::Sender<Notice>,
    /// What was served.
    pub stats: Mutex<ServedStats>,
    /// Filter headers of the lying chain served with conflicting cfheaders, by block.
    pub lying_filter_headers: Mutex<HashMap<BlockHash, FilterHeader>>,
    /// Listeners and sessions.
    pub server: Mutex<ServerState>,
    /// What each connection is granted.
    pub limits: PeerLimits,
}

impl Shared {
    /// Fresh state at the genesis block.
    pub fn new(limits: PeerLimits) -> Shared {
        let (notices, _) = broadcast::channel(NOTICE_CAPACITY);
        Shared {
            node: Mutex::new(Node::new(notices.clone())),
            notices,
            stats: Mutex::new(ServedStats::default()),
            lying_filter_headers: Mutex::new(HashMap::new()),
            server: Mutex::new(ServerState::default()),
            limits,
        }
    }

    /// Updates the served statistics.
    pub fn record(&self, update: impl FnOnce(&mut ServedStats)) {
        update(&mut lock(&self.stats));
    }

    /// Sessions that completed the version handshake.
    pub fn peer_count(&self) -> usize {
        lock(&self.server)
            .sessions
            .values()
            .filter(|session| session.handshaken.load(Ordering::SeqCst))
            .count()
    }

    /// Drops every connection; listeners keep accepting.
    pub fn disconnect_all(&self) {
        let sessions: Vec<SessionEntry> = lock(&self.server)
            .sessions
            .drain()
            .map(|(_, s)| s)
            .collect();
        for session in sessions {
            session.abort.abort();
        }
    }

    /// Stops every listener and connection for good.
    pub fn shutdown(&self) {
        let (listeners, sessions) = {
            let mut server = lock(&self.server);
            server.shut_down = true;
            let listeners = std::mem::take(&mut server.listeners);
            let sessions: Vec<SessionEntry> = server.sessions.drain().map(|(_, s)| s).collect();
            (listeners, sessions)
        };
        for listener in listeners {
            listener.abort();
        }
        for session in sessions {
            session.abort.abort();
        }
    }
}

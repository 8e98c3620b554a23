//! Why the PostgreSQL store could not be opened or used.

/// A failure of the PostgreSQL store at open time.
#[derive(Debug, thiserror::Error)]
pub enum PgError {
    /// `--store` / `store` is not a PostgreSQL connection URL.
    #[error(
        "store {0:?} is not a PostgreSQL connection URL (postgresql://USER@HOST:PORT/DATABASE); \
         leave it out to keep the channel state in the data directory"
    )]
    NotAUrl(String),
    /// The URL could not be parsed.
    #[error("store URL {url}: {reason}")]
    BadUrl {
        /// The URL, without its password.
        url: String,
        /// What the client found wrong.
        reason: String,
    },
    /// The server could not be reached or refused the session.
    #[error("cannot connect to PostgreSQL at {url}: {reason}")]
    Connect {
        /// The server, without the password.
        url: String,
        /// What went wrong.
        reason: String,
    },
    /// A statement failed while opening the store.
    #[error("PostgreSQL at {url}: {context} failed: {reason}")]
    Statement {
        /// The server, without the password.
        url: String,
        /// What the store was doing.
        context: &'static str,
        /// The server's or client's message.
        reason: String,
    },
    /// Another process is the node's writer and this one was not started as a standby.
    #[error(
        "another process is the writer of node {node_id} in PostgreSQL at {url} ({holder}); \
         stop it first, or start this daemon with --standby to take over when it stops \
         (nothing was changed)"
    )]
    Busy {
        /// The server, without the password.
        url: String,
        /// The node.
        node_id: String,
        /// Who holds the node's writer lock.
        holder: String,
    },
    /// The store holds this node's state for another network.
    #[error(
        "PostgreSQL at {url} holds node {node_id} on {found}, not on {expected}; refusing to \
         start (nothing was changed)"
    )]
    OtherNetwork {
        /// The server, without the password.
        url: String,
        /// The node.
        node_id: String,
        /// The network on record.
        found: String,
        /// The network this process runs on.
        expected: String,
    },
    /// The session ended before the store was open.
    #[error("PostgreSQL at {url}: the session ended while the store was opening: {reason}")]
    Lost {
        /// The server, without the password.
        url: String,
        /// Why.
        reason: String,
    },
    /// The store's thread could not be started.
    #[error("cannot start the PostgreSQL store's thread: {0}")]
    Thread(std::io::Error),
}

//! Errors of the chain source.

use std::path::PathBuf;

use bitcoin::BlockHash;

/// A failure of the chain database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("chain database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was created for another network.
    #[error("{path} holds {stored} chain data, but this node runs on {expected}; use a data directory made for {expected}")]
    WrongNetwork {
        /// The database file.
        path: PathBuf,
        /// The network recorded in the file.
        stored: String,
        /// The network the node was started for.
        expected: String,
    },
    /// A stored record could not be decoded.
    #[error("corrupt chain database record: {0}")]
    Corrupt(String),
    /// Wallet or channel state was to be created while a new chain still syncs its headers,
    /// before the height from which filters are checked is known.
    #[error(
        "the chain is still syncing headers; wallet and channel state is created once it \
         knows from which block compact filters are checked"
    )]
    HeaderPhase,
    /// A header arrived whose parent is unknown, so its chainwork cannot be computed.
    #[error("header {hash} at height {height} does not connect to any stored header")]
    Disconnected {
        /// The header's hash.
        hash: BlockHash,
        /// The height it claims.
        height: u32,
    },
}

/// A failure to fetch or verify a block.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The compact-filter engine is not running (starting or restarting).
    #[error("the compact-filter engine is not running")]
    EngineDown,
    /// No peer delivered the block in time.
    #[error("no peer delivered block {0} in time")]
    Timeout(BlockHash),
    /// The engine refused the request (e.g. the block is not on its chain of most work).
    #[error("block {hash} could not be fetched: {reason}")]
    Refused {
        /// The requested block.
        hash: BlockHash,
        /// The engine's reason.
        reason: String,
    },
    /// A package handed to the engine was malformed.
    #[error("cannot broadcast: {0}")]
    InvalidPackage(String),
    /// No peer took a transaction in time.
    #[error("no peer took transaction {0} in time")]
    BroadcastTimeout(bitcoin::Txid),
    /// The chain store could not be read.
    #[error("the chain store could not be read: {0}")]
    Store(#[from] StoreError),
    /// Every attempt returned a block that failed verification.
    #[error("block {hash} failed verification on every attempt: {reason}")]
    Invalid {
        /// The requested block.
        hash: BlockHash,
        /// What failed on the last attempt.
        reason: String,
    },
}

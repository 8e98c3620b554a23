//! Errors of the node's operations, each with a stable code for the control API.

use std::path::PathBuf;

use crate::chain::StoreError;
use crate::wallet::WalletError;

/// Why a node operation failed.
#[derive(Debug, thiserror::Error)]
pub enum NodeError {
    /// The on-chain wallet refused or failed.
    #[error(transparent)]
    Wallet(#[from] WalletError),
    /// The chain database failed.
    #[error(transparent)]
    ChainStore(#[from] StoreError),
    /// An argument was malformed or out of range.
    #[error("invalid {what}: {reason}")]
    InvalidInput {
        /// Which argument.
        what: &'static str,
        /// What is wrong with it.
        reason: String,
    },
    /// An invoice, offer or address belongs to another network.
    #[error("{what} is for {found}, but this node runs on {expected}")]
    WrongNetwork {
        /// What was given ("invoice", "offer", "address").
        what: &'static str,
        /// The network it is for.
        found: String,
        /// The node's network.
        expected: String,
    },
    /// No channel has this id.
    #[error("no channel with id {0}")]
    UnknownChannel(String),
    /// No such peer is connected or known.
    #[error("no peer {0} is connected")]
    UnknownPeer(String),
    /// A peer could not be reached.
    #[error("could not connect to {address}: {reason}")]
    PeerUnreachable {
        /// The address tried.
        address: String,
        /// What went wrong.
        reason: String,
    },
    /// A forced close of a channel whose state is not proved current (see `held_channels`).
    #[error(
        "channel {channel_id} is held: {reason}, and its peer has not yet confirmed that this \
         state is its latest. Broadcasting it could hand the peer the whole channel if the \
         state was revoked since, so the node does not force-close it. Wait until the peer \
         reconnects: the channel then resumes (and can be closed), or the node stops if the \
         peer proves the state old, and the next start lets the peer close the channel with \
         its latest state"
    )]
    ChannelHeld {
        /// The channel.
        channel_id: String,
        /// Why it is held.
        reason: String,
    },
    /// LDK refused a channel operation.
    #[error("channel operation failed: {0}")]
    Channel(String),
    /// A payment could not be sent or failed.
    #[error("payment failed: {0}")]
    Payment(String),
    /// This invoice or payment was already paid or is in flight.
    #[error("payment {0} was already sent or is in flight")]
    DuplicatePayment(String),
    /// The node is not ready for this yet (e.g. still syncing).
    #[error("the node is not ready: {0}")]
    NotReady(String),
    /// The node is still starting: its chain is syncing, with this progress.
    #[error("the node is still syncing the chain, {0}; try again once `getinfo` shows it synced")]
    NotSynced(String),
    /// The data directory is unusable (another network, damaged files, permissions).
    #[error("data directory {}: {reason}", path.display())]
    DataDir {
        /// The directory.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The backup directory cannot be used, or a restore from it cannot be done.
    #[error(transparent)]
    Backup(#[from] super::stores::backup::BackupError),
    /// Another daemon already runs on this data directory.
    #[error("another lightfilter daemon is running on {} (lock file {} is held)", dir.display(), lock.display())]
    Locked {
        /// The data directory.
        dir: PathBuf,
        /// The lock file.
        lock: PathBuf,
    },
    /// The PostgreSQL store cannot be opened, or another process is the node's writer.
    #[error(transparent)]
    Postgres(#[from] crate::postgres::PgError),
    /// Tor's control port could not give the node its onion service.
    #[error(transparent)]
    Tor(#[from] crate::tor_control::TorControlError),
    /// Reading or writing node state failed.
    #[error("storage failed while {context}: {reason}")]
    Storage {
        /// What the node was doing.
        context: String,
        /// The underlying error.
        reason: String,
    },
}

impl NodeError {
    /// A stable, machine-readable code.
    pub fn code(&self) -> &'static str {
        match self {
            NodeError::Wallet(err) => match err {
                WalletError::InsufficientFunds { .. } => "insufficient_funds",
                WalletError::DustAmount { .. } => "dust_amount",
                WalletError::InvalidFeeRate { .. } => "invalid_fee_rate",
                WalletError::FeeBelowPeerMinimum { .. } => "fee_below_peer_minimum",
                WalletError::UnparsableAddress { .. } => "invalid_address",
                WalletError::WrongNetworkAddress { .. } => "wrong_network",
                WalletError::UnknownTransaction(_) => "unknown_transaction",
                WalletError::CannotBump { .. } => "cannot_bump",
                WalletError::BumpTooLow { .. } => "fee_bump_too_low",
                WalletError::StoppedFollowing { .. } => "wallet_stopped",
                WalletError::ReserveRequired { .. } | WalletError::NothingAboveReserve { .. } => {
                    "reserve_required"
                }
                _ => "wallet_error",
            },
            NodeError::ChainStore(_) => "storage_error",
            NodeError::InvalidInput { .. } => "invalid_input",
            NodeError::WrongNetwork { .. } => "wrong_network",
            NodeError::UnknownChannel(_) => "unknown_channel",
            NodeError::UnknownPeer(_) => "unknown_peer",
            NodeError::PeerUnreachable { .. } => "peer_unreachable",
            NodeError::ChannelHeld { .. } => "channel_held",
            NodeError::Channel(_) => "channel_error",
            NodeError::Payment(_) => "payment_failed",
            NodeError::DuplicatePayment(_) => "duplicate_payment",
            NodeError::NotReady(_) => "not_ready",
            NodeError::NotSynced(_) => "not_synced",
            NodeError::DataDir { .. } => "data_dir",
            NodeError::Locked { .. } => "locked",
            NodeError::Backup(_) => "backup",
            NodeError::Postgres(_) => "store",
            NodeError::Storage { .. } => "storage_error",
            NodeError::Tor(_) => "tor_error",
        }
    }

    /// An [`NodeError::InvalidInput`].
    pub fn invalid(what: &'static str, reason: impl Into<String>) -> Self {
        NodeError::InvalidInput {
            what,
            reason: reason.into(),
        }
    }

    /// A [`NodeError::Storage`].
    pub fn storage(context: impl Into<String>, reason: impl std::fmt::Display) -> Self {
        NodeError::Storage {
            context: context.into(),
            reason: reason.to_string(),
        }
    }
}

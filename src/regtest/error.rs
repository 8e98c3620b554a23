//! Errors of the embedded regtest peer: transaction rejections and start-up failures.

use std::fmt;
use std::net::SocketAddr;

use bitcoin::Txid;

/// Why a transaction (or a block built from transactions) was refused.
///
/// The names follow the reject reasons Bitcoin Core logs, so a test failure reads the same way a
/// node operator would see it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TxRejectReason {
    /// Structurally invalid: no inputs or outputs, duplicate inputs, values out of range,
    /// oversized, or a coinbase where none is allowed.
    Malformed,
    /// The transaction is already in the mempool.
    AlreadyInMempool,
    /// The transaction is already confirmed on the active chain.
    AlreadyConfirmed,
    /// An input refers to an output that does not exist or is already spent (a double spend of
    /// a confirmed output, or of an output spent earlier in the same block).
    InputsMissingOrSpent,
    /// An input conflicts with a mempool transaction and the replacement rules are not met.
    ReplacementRejected,
    /// An input spends a coinbase output with fewer than 100 confirmations.
    ImmatureCoinbase,
    /// The absolute lock-time (`nLockTime`) is not yet reached.
    NonFinal,
    /// A BIP 68 relative lock-time (`nSequence`) is not yet reached.
    NonBip68Final,
    /// A script or signature check failed.
    ScriptFailure,
    /// Outputs are worth more than inputs.
    NegativeFee,
    /// The fee is below the minimum relay fee (1 sat/vB), or a replacement pays too little.
    FeeTooLow,
    /// An output is below the dust threshold.
    Dust,
    /// Relay policy refuses it (oversized for relay, unknown witness version spent, ...).
    NonStandard,
    /// The built-in faucet cannot pay the requested amount.
    InsufficientFunds,
}

impl TxRejectReason {
    /// Bitcoin Core's short code for this reason.
    pub fn code(&self) -> &'static str {
        match self {
            TxRejectReason::Malformed => "bad-txns-malformed",
            TxRejectReason::AlreadyInMempool => "txn-already-in-mempool",
            TxRejectReason::AlreadyConfirmed => "txn-already-known",
            TxRejectReason::InputsMissingOrSpent => "bad-txns-inputs-missingorspent",
            TxRejectReason::ReplacementRejected => "txn-mempool-conflict",
            TxRejectReason::ImmatureCoinbase => "bad-txns-premature-spend-of-coinbase",
            TxRejectReason::NonFinal => "bad-txns-nonfinal",
            TxRejectReason::NonBip68Final => "non-BIP68-final",
            TxRejectReason::ScriptFailure => "mandatory-script-verify-flag-failed",
            TxRejectReason::NegativeFee => "bad-txns-in-belowout",
            TxRejectReason::FeeTooLow => "min-relay-fee-not-met",
            TxRejectReason::Dust => "dust",
            TxRejectReason::NonStandard => "non-standard",
            TxRejectReason::InsufficientFunds => "insufficient-funds",
        }
    }
}

/// A transaction was refused by the mempool or by block validation; nothing was changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TxRejected {
    /// The refused transaction (all zeros when the refusal is not about one transaction, e.g.
    /// the faucet lacking funds).
    pub txid: Txid,
    /// The rule that was broken.
    pub reason: TxRejectReason,
    /// A human explanation naming what was wrong (which input, which amounts, which heights).
    pub message: String,
}

impl TxRejected {
    pub(crate) fn new(txid: Txid, reason: TxRejectReason, message: impl Into<String>) -> Self {
        TxRejected {
            txid,
            reason,
            message: message.into(),
        }
    }
}

impl fmt::Display for TxRejected {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "transaction {} rejected ({}): {}",
            self.txid,
            self.reason.code(),
            self.message
        )
    }
}

impl std::error::Error for TxRejected {}

/// Failures of the regtest peer's networking.
#[derive(Debug, thiserror::Error)]
pub enum RegtestError {
    /// The listening socket could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address that was asked for.
        addr: SocketAddr,
        /// The operating system's reason.
        source: std::io::Error,
    },
    /// The peer was started outside a tokio runtime.
    #[error("the regtest peer must be started inside a tokio runtime")]
    NoRuntime,
    /// The peer was shut down; no new endpoint can be added.
    #[error("the regtest peer has been shut down")]
    ShutDown,
}

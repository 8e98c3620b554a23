//! Errors of the on-chain wallet, each naming what was wrong.

use std::path::PathBuf;

use bitcoin::{Amount, BlockHash, FeeRate, Network, Txid};

/// Everything that can go wrong in the on-chain wallet.
///
/// Operations that fail with one of these errors create no transaction and change no stored data.
#[derive(Debug, thiserror::Error)]
pub enum WalletError {
    /// The wallet's SQLite file or key-value store failed.
    #[error("wallet storage failed while {context}: {source}")]
    Storage {
        /// What the wallet was doing.
        context: &'static str,
        /// The storage's error.
        #[source]
        source: super::db::StorageError,
    },
    /// A file-system operation on the wallet's directory failed.
    #[error("wallet storage failed while {context}: {source}")]
    FileSystem {
        /// What the wallet was doing.
        context: String,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a wallet file (another SQLite database, or not SQLite at all).
    #[error("{} is not a wallet file: {reason}", path.display())]
    NotAWalletFile {
        /// The file that was opened.
        path: PathBuf,
        /// Why it is not a wallet file.
        reason: String,
    },
    /// The wallet file is damaged or incomplete.
    #[error("wallet file {} is damaged: {reason}", path.display())]
    CorruptWalletFile {
        /// The file that was opened.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The wallet file was made for another network; it was left untouched.
    #[error(
        "wallet file {} belongs to network {file_network}, but this node runs on {expected}; \
         refusing to open it (the file was left untouched)",
        path.display()
    )]
    NetworkMismatch {
        /// The file that was opened.
        path: PathBuf,
        /// The network recorded in the file.
        file_network: Network,
        /// The network the node runs on.
        expected: Network,
    },
    /// The wallet file was made from another seed; it was left untouched.
    #[error(
        "wallet file {} was made from another seed (its {keychain} descriptor does not match \
         this node's keys); refusing to open it (the file was left untouched)",
        path.display()
    )]
    KeysMismatch {
        /// The file that was opened.
        path: PathBuf,
        /// Which keychain did not match ("external" or "internal").
        keychain: &'static str,
    },
    /// The birthday block given for a new wallet cannot be used.
    #[error("invalid wallet birthday: {0}")]
    InvalidBirthday(String),
    /// The wallet keys could not be derived from the seed.
    #[error("cannot derive the wallet keys from the seed: {0}")]
    KeyDerivation(String),
    /// The address could not be parsed.
    #[error("cannot parse address {address:?}: {reason}")]
    UnparsableAddress {
        /// The text given as address.
        address: String,
        /// Why it could not be parsed.
        reason: String,
    },
    /// The address belongs to another network.
    #[error("address {address} is not valid on {expected}, the network this wallet runs on")]
    WrongNetworkAddress {
        /// The address given.
        address: String,
        /// The wallet's network.
        expected: Network,
    },
    /// The wallet's confirmed, spendable coins do not cover amount and fee.
    #[error(
        "insufficient funds: {needed} needed (amount plus fee) but only {available} available \
         in confirmed, spendable coins"
    )]
    InsufficientFunds {
        /// Amount plus fee (for "send all": the smallest output worth creating).
        needed: Amount,
        /// The value of the coins the wallet could spend.
        available: Amount,
    },
    /// The amount is too small to be relayed (dust).
    #[error("amount {amount} is below the dust limit of {minimum} for this output")]
    DustAmount {
        /// The amount asked for.
        amount: Amount,
        /// The smallest amount the output may carry.
        minimum: Amount,
    },
    /// The fee rate is zero, below what the network relays, or absurdly high.
    #[error(
        "fee rate of {} sat/kwu is invalid: it must be at least {} sat/kwu (1 sat/vB, the \
         minimum relay fee rate) and at most {} sat/kwu",
        fee_rate.to_sat_per_kwu(),
        minimum.to_sat_per_kwu(),
        maximum.to_sat_per_kwu()
    )]
    InvalidFeeRate {
        /// The fee rate asked for.
        fee_rate: FeeRate,
        /// The lowest acceptable fee rate.
        minimum: FeeRate,
        /// The highest acceptable fee rate.
        maximum: FeeRate,
    },
    /// The transaction would pay less than every Bitcoin peer accepts (their `feefilter`): no
    /// peer would take it, so it is not sent.
    #[error(
        "the transaction would pay {} sat/vB ({} sat/kwu), below the {} sat/vB ({} sat/kwu) \
         the Bitcoin peers accept (their feefilter): no peer would relay it; pay more, or \
         insist with --force",
        sat_per_vb(*fee_rate),
        fee_rate.to_sat_per_kwu(),
        sat_per_vb(*peer_minimum),
        peer_minimum.to_sat_per_kwu()
    )]
    FeeBelowPeerMinimum {
        /// The fee rate the transaction would pay.
        fee_rate: FeeRate,
        /// The lowest fee rate the peers accept.
        peer_minimum: FeeRate,
    },
    /// The transaction would leave less than the reserve kept for the fee bumps of anchor
    /// channels.
    #[error(
        "this would leave {} sat of confirmed on-chain funds, less than the {} sat reserve kept \
         to pay the fees of anchor channels' closing transactions; send less, or spend the \
         reserve anyway with --force",
        left.to_sat(),
        reserve.to_sat()
    )]
    ReserveRequired {
        /// The reserve.
        reserve: Amount,
        /// What the transaction would leave.
        left: Amount,
    },
    /// "Send all" has nothing to send beyond the reserve kept for the fee bumps of anchor
    /// channels.
    #[error(
        "the wallet's {} sat of confirmed on-chain funds do not go beyond the {} sat reserve \
         kept to pay the fees of anchor channels' closing transactions (and the fee of a \
         send): nothing to send; spend the reserve anyway with --force",
        available.to_sat(),
        reserve.to_sat()
    )]
    NothingAboveReserve {
        /// The reserve.
        reserve: Amount,
        /// The wallet's confirmed, spendable coins.
        available: Amount,
    },
    /// The transaction could not be built for another reason.
    #[error("cannot build the transaction: {0}")]
    TransactionBuild(String),
    /// The transaction could not be signed.
    #[error("cannot sign the transaction: {0}")]
    Signing(String),
    /// The transaction is not known to the wallet.
    #[error("transaction {0} is not known to the wallet")]
    UnknownTransaction(Txid),
    /// The transaction is already confirmed.
    #[error("transaction {0} is already confirmed and cannot be abandoned")]
    AlreadyConfirmed(Txid),
    /// The transaction cannot have its fee bumped (confirmed, not the wallet's own send, or
    /// not signalling replaceability).
    #[error("cannot bump the fee of transaction {txid}: {reason}")]
    CannotBump {
        /// The transaction.
        txid: Txid,
        /// Why not.
        reason: String,
    },
    /// A block did not connect to the last block the wallet processed: the wallet no longer
    /// follows the chain and answers nothing until a restart re-syncs it from that block.
    #[error(
        "the on-chain wallet stopped following the chain: block {block} at height {height} \
         does not connect to its last block {last_block} at height {last_height}; it answers \
         nothing until the node restarts and re-syncs it from that block"
    )]
    StoppedFollowing {
        /// The block that did not connect.
        block: BlockHash,
        /// Its height.
        height: u32,
        /// The last block the wallet connected.
        last_block: BlockHash,
        /// Its height.
        last_height: u32,
    },
    /// A replacement must pay a higher fee rate than the transaction it replaces.
    #[error(
        "a fee bump to {} sat/vB is too low: the replacement must pay at least {} sat/vB",
        sat_per_vb(*fee_rate),
        sat_per_vb(*required)
    )]
    BumpTooLow {
        /// The fee rate asked for.
        fee_rate: FeeRate,
        /// The least the replacement must pay.
        required: FeeRate,
    },
}

/// `rate` in sat/vB, with two decimals when not whole (e.g. `2.5`).
pub fn sat_per_vb(rate: FeeRate) -> String {
    let hundredths = rate.to_sat_per_kwu().saturating_mul(4) / 10;
    if hundredths.is_multiple_of(100) {
        format!("{}", hundredths / 100)
    } else {
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
            .trim_end_matches('0')
            .to_string()
    }
}

impl WalletError {
    /// Wraps a SQLite error with what the wallet was doing.
    pub(crate) fn storage<E: Into<super::db::StorageError>>(
        context: &'static str,
    ) -> impl FnOnce(E) -> WalletError {
        move |source| WalletError::Storage {
            context,
            source: source.into(),
        }
    }
}

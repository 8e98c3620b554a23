//! Plain data the wallet hands out and takes in: balances, coins, transactions, send options.

use bitcoin::{Amount, FeeRate, OutPoint, ScriptBuf, SignedAmount, Transaction, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;

/// The wallet's balance, split by how safe the coins are to spend.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct WalletBalance {
    /// Confirmed coins, spendable now.
    pub confirmed: Amount,
    /// Unconfirmed coins the wallet sent to itself (change of its own transactions).
    pub trusted_pending: Amount,
    /// Unconfirmed coins received from others.
    pub untrusted_pending: Amount,
    /// Coinbase outputs not yet 100 blocks deep.
    pub immature: Amount,
}

impl WalletBalance {
    /// All coins together, spendable or not.
    pub fn total(&self) -> Amount {
        self.confirmed + self.trusted_pending + self.untrusted_pending + self.immature
    }
}

/// An unspent output the wallet owns.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletUtxo {
    /// Where the output is.
    pub outpoint: OutPoint,
    /// Its value.
    pub amount: Amount,
    /// Its script.
    pub script_pubkey: ScriptBuf,
    /// Whether it pays a change address (internal keychain) rather than a receive address.
    pub is_change: bool,
    /// Height of the block that confirmed it, `None` while unconfirmed.
    pub confirmation_height: Option<u32>,
    /// Whether it may be spent in the next block (confirmed, and mature if a coinbase output).
    pub spendable: bool,
}

/// A transaction that pays to or spends from the wallet.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WalletTransaction {
    /// The transaction id.
    pub txid: Txid,
    /// Value of the wallet's outputs it spends.
    pub sent: Amount,
    /// Value of the outputs it pays to the wallet.
    pub received: Amount,
    /// `received - sent`: what it changed in the wallet's balance.
    pub net: SignedAmount,
    /// The fee, when the wallet knows all the inputs' values.
    pub fee: Option<Amount>,
    /// Height of the block that confirmed it, `None` while unconfirmed.
    pub confirmation_height: Option<u32>,
}

/// How much to send.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SendAmount {
    /// Exactly this amount; the fee comes on top.
    Exact(Amount),
    /// Everything confirmed and spendable, minus the fee.
    All,
}

/// How to choose the fee rate of a transaction.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FeeChoice {
    /// This fee rate.
    Rate(FeeRate),
    /// The rate the node's fee estimator gives for this target.
    Target(ConfirmationTarget),
}

/// What a send or a fee bump must respect besides its fee rate.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SpendLimits {
    /// The least fee rate the Bitcoin peers accept (their BIP 133 `feefilter`): a transaction
    /// paying less is refused, as no peer would relay it. `None` checks nothing.
    pub peer_minimum: Option<FeeRate>,
    /// Confirmed coins the wallet must still hold once the transaction confirms (the reserve
    /// for the fee bumps of anchor channels): a transaction leaving less is refused, and
    /// [`SendAmount::All`] sends everything but this.
    pub reserve: Amount,
}

/// A transaction the wallet made, stored and broadcast.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Sent {
    /// The transaction.
    pub tx: Transaction,
    /// What it pays outside the wallet.
    pub amount: Amount,
    /// The confirmed coins the wallet holds once it confirms: the spendable coins it leaves
    /// alone and its change.
    pub left: Amount,
}

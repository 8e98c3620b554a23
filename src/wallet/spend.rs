//! Spending: sending to an address and funding channels, with the checks that keep bad input
//! from creating any transaction.
//!
//! Only confirmed coins are spent (and coinbase outputs only once mature): the wallet sees no
//! mempool, so a chain of unconfirmed transactions could get stuck where it cannot notice. Every
//! transaction signals replace-by-fee and is stored in the wallet (its inputs spent, its change
//! watched) before it leaves the wallet.
//!
//! A send or fee bump can be held to a reserve of confirmed coins (the node keeps one for the
//! fees of its anchor channels' closing transactions): one that would leave fewer confirmed
//! coins, counting its change, is refused, and "send all" sends everything but the reserve.

use std::collections::HashSet;
use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use bdk_wallet::chain::ChainPosition;
use bdk_wallet::coin_selection::InsufficientFunds;
use bdk_wallet::error::{BuildFeeBumpError, CreateTxError};
use bdk_wallet::{KeychainKind, SignOptions};
use bitcoin::address::NetworkUnchecked;
use bitcoin::{
    Address, Amount, FeeRate, Network, OutPoint, Psbt, Script, ScriptBuf, Transaction, TxOut, Txid,
};
use lightning::chain::chaininterface::FEERATE_FLOOR_SATS_PER_KW;

use super::state::WalletState;
use super::{FeeChoice, SendAmount, Sent, SpendLimits, Wallet, WalletError};

impl Wallet {
    /// Sends `amount` to `address` at the fee rate `fee`, and broadcasts the transaction.
    ///
    /// The address must belong to the wallet's network. The transaction signals RBF and is
    /// stored in the wallet before it is handed to the broadcaster. On error nothing is created
    /// and nothing changes.
    pub fn send(
        &self,
        address: &str,
        amount: SendAmount,
        fee: FeeChoice,
    ) -> Result<Transaction, WalletError> {
        self.send_within(address, amount, fee, SpendLimits::default())
            .map(|sent| sent.tx)
    }

    /// [`Wallet::send`] within `limits`: a transaction paying less than the peers' minimum
    /// (counted over its virtual size as Bitcoin Core does) is refused with
    /// [`WalletError::FeeBelowPeerMinimum`], and one leaving less than the reserve with
    /// [`WalletError::ReserveRequired`]; [`SendAmount::All`] sends everything but the reserve
    /// (which stays on a change address), or is refused with
    /// [`WalletError::NothingAboveReserve`].
    pub fn send_within(
        &self,
        address: &str,
        amount: SendAmount,
        fee: FeeChoice,
        limits: SpendLimits,
    ) -> Result<Sent, WalletError> {
        let address = parse_address(address, self.network)?;
        let fee_rate = self.resolve_fee_rate(fee)?;
        let script = address.script_pubkey();
        if let SendAmount::Exact(amount) = amount {
            check_not_dust(amount, &script)?;
        }
        let sent =
            self.state()
                .transact(self.registry.as_ref(), "saving a sent transaction", |s| {
                    let psbt = match amount {
                        SendAmount::All if limits.reserve > Amount::ZERO => {
                            s.build_drain_but(&script, limits.reserve, fee_rate)?
                        }
                        _ => s.build_psbt(&script, amount, fee_rate)?,
                    };
                    let fee = psbt
                        .fee()
                        .map_err(|e| WalletError::TransactionBuild(e.to_string()))?;
                    let tx = s.sign(psbt)?;
                    if let Some(minimum) = limits.peer_minimum {
                        check_peer_minimum(&tx, fee, minimum)?;
                    }
                    let sent = s.sent(tx);
                    check_reserve(&sent, limits.reserve)?;
                    s.wallet
                        .apply_unconfirmed_txs([(sent.tx.clone(), unix_now())]);
                    Ok(sent)
                })?;
        log::info!(
            "sending {} to {address} in {} at {} sat/kwu, leaving {}",
            sent.amount,
            sent.tx.compute_txid(),
            fee_rate.to_sat_per_kwu(),
            sent.left
        );
        self.broadcaster.broadcast_transactions(&[&sent.tx]);
        Ok(sent)
    }

    /// Replaces the wallet's own unconfirmed transaction `txid` by one paying `fee_rate`
    /// (replace-by-fee: every transaction the wallet makes signals it), taking the extra fee
    /// from its change or from more confirmed coins, and broadcasts it. Within `limits`, a
    /// replacement the Bitcoin peers would not take, or that leaves less than the reserve, is
    /// refused. The replacement is stored (the original marked evicted) before it leaves the
    /// wallet; on error nothing changes.
    pub fn bump_fee(
        &self,
        txid: Txid,
        fee_rate: FeeRate,
        limits: SpendLimits,
    ) -> Result<Sent, WalletError> {
        check_fee_rate(fee_rate)?;
        let cannot = |reason: &str| WalletError::CannotBump {
            txid,
            reason: reason.to_string(),
        };
        let sent = self
            .state()
            .transact(self.registry.as_ref(), "saving a fee bump", |s| {
                let mut builder = s.wallet.build_fee_bump(txid).map_err(|err| match err {
                    BuildFeeBumpError::TransactionNotFound(_) => {
                        WalletError::UnknownTransaction(txid)
                    }
                    BuildFeeBumpError::TransactionConfirmed(_) => cannot("it is confirmed"),
                    BuildFeeBumpError::IrreplaceableTransaction(_) => {
                        cannot("it does not signal replace-by-fee")
                    }
                    BuildFeeBumpError::UnknownUtxo(_) => cannot(
                        "it spends coins that are not the wallet's: not one of its own sends",
                    ),
                    other => cannot(&other.to_string()),
                })?;
                builder.fee_rate(fee_rate);
                let psbt = builder.finish().map_err(|err| match err {
                    CreateTxError::FeeRateTooLow { required } => {
                        WalletError::BumpTooLow { fee_rate, required }
                    }
                    CreateTxError::FeeTooLow { .. } => WalletError::BumpTooLow {
                        fee_rate,
                        required: fee_rate,
                    },
                    CreateTxError::CoinSelection(InsufficientFunds { needed, available }) => {
                        WalletError::InsufficientFunds { needed, available }
                    }
                    other => WalletError::TransactionBuild(other.to_string()),
                })?;
                let fee = psbt
                    .fee()
                    .map_err(|e| WalletError::TransactionBuild(e.to_string()))?;
                let tx = s.sign(psbt)?;
                if let Some(minimum) = limits.peer_minimum {
                    check_peer_minimum(&tx, fee, minimum)?;
                }
                let sent = s.sent(tx);
                check_reserve(&sent, limits.reserve)?;
                let last_seen = match s.wallet.get_tx(txid).map(|c| c.chain_position) {
                    Some(ChainPosition::Unconfirmed { last_seen, .. }) => last_seen.unwrap_or(0),
                    _ => 0,
                };
                // The replacement is seen after the original, which is evicted.
                let now = unix_now().max(last_seen + 1);
                s.wallet.apply_unconfirmed_txs([(sent.tx.clone(), now)]);
                s.wallet.apply_evicted_txs([(txid, now)]);
                Ok(sent)
            })?;
        log::info!(
            "replaced {txid} by {} at {} sat/kwu, leaving {}",
            sent.tx.compute_txid(),
            fee_rate.to_sat_per_kwu(),
            sent.left
        );
        self.broadcaster.broadcast_transactions(&[&sent.tx]);
        Ok(sent)
    }

    /// Builds and signs a transaction paying `amount` to `output_script` at `fee_rate`, for
    /// LDK's `Event::FundingGenerationReady`. It is not broadcast (LDK does that), but its inputs
    /// count as spent from now on; [`Wallet::abandon_transaction`] releases them if the channel
    /// is discarded.
    pub fn create_funding_transaction(
        &self,
        output_script: ScriptBuf,
        amount: Amount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, WalletError> {
        check_fee_rate(fee_rate)?;
        check_not_dust(amount, &output_script)?;
        let tx = self.state().transact(
            self.registry.as_ref(),
            "saving a funding transaction",
            |s| {
                let psbt = s.build_psbt(&output_script, SendAmount::Exact(amount), fee_rate)?;
                let tx = s.sign(psbt)?;
                s.wallet.apply_unconfirmed_txs([(tx.clone(), unix_now())]);
                Ok(tx)
            },
        )?;
        log::info!(
            "created funding transaction {} of {amount}",
            tx.compute_txid()
        );
        Ok(tx)
    }

    /// The fee rate for `fee`: checked if given, from the fee estimator (never below LDK's
    /// floor of 253 sat/kwu) if a target.
    fn resolve_fee_rate(&self, fee: FeeChoice) -> Result<FeeRate, WalletError> {
        match fee {
            FeeChoice::Rate(rate) => {
                check_fee_rate(rate)?;
                Ok(rate)
            }
            FeeChoice::Target(target) => {
                let sat_per_kw = self
                    .fee_estimator
                    .get_est_sat_per_1000_weight(target)
                    .max(FEERATE_FLOOR_SATS_PER_KW);
                Ok(FeeRate::from_sat_per_kwu(sat_per_kw.into()))
            }
        }
    }
}

impl WalletState {
    /// Selects confirmed coins and builds the unsigned transaction.
    fn build_psbt(
        &mut self,
        script: &Script,
        amount: SendAmount,
        fee_rate: FeeRate,
    ) -> Result<Psbt, WalletError> {
        let mut builder = self.wallet.build_tx();
        builder.exclude_unconfirmed().fee_rate(fee_rate);
        match amount {
            SendAmount::Exact(amount) => {
                builder.add_recipient(script.to_owned(), amount);
            }
            SendAmount::All => {
                builder.drain_wallet().drain_to(script.to_owned());
            }
        }
        builder.finish().map_err(|e| match e {
            CreateTxError::CoinSelection(InsufficientFunds { needed, available }) => {
                WalletError::InsufficientFunds { needed, available }
            }
            other => WalletError::TransactionBuild(other.to_string()),
        })
    }

    /// Builds the unsigned transaction of "send all but `reserve`": every confirmed coin is
    /// spent, `reserve` goes to the wallet's change address and the rest, less the fee, to
    /// `script`.
    fn build_drain_but(
        &mut self,
        script: &Script,
        reserve: Amount,
        fee_rate: FeeRate,
    ) -> Result<Psbt, WalletError> {
        let available: Amount = self
            .unspent()
            .iter()
            .filter(|utxo| utxo.spendable)
            .map(|utxo| utxo.amount)
            .sum();
        let nothing_above = WalletError::NothingAboveReserve { reserve, available };
        let change = self
            .wallet
            .next_unused_address(KeychainKind::Internal)
            .script_pubkey();
        let mut builder = self.wallet.build_tx();
        builder
            .exclude_unconfirmed()
            .fee_rate(fee_rate)
            .drain_wallet()
            .drain_to(script.to_owned())
            .add_recipient(change, reserve);
        let psbt = builder.finish().map_err(|e| match e {
            CreateTxError::CoinSelection(_) => nothing_above,
            other => WalletError::TransactionBuild(other.to_string()),
        })?;
        // With less than the dust limit above the reserve and the fee, the transaction would
        // pay nothing to `script` (the rest goes to the fee).
        if !psbt
            .unsigned_tx
            .output
            .iter()
            .any(|output| output.script_pubkey.as_script() == script)
        {
            return Err(WalletError::NothingAboveReserve { reserve, available });
        }
        Ok(psbt)
    }

    /// `tx` with what it pays outside the wallet and the confirmed coins it leaves.
    fn sent(&self, tx: Transaction) -> Sent {
        let spent: HashSet<OutPoint> = tx.input.iter().map(|input| input.previous_output).collect();
        let kept: Amount = self
            .unspent()
            .iter()
            .filter(|utxo| utxo.spendable && !spent.contains(&utxo.outpoint))
            .map(|utxo| utxo.amount)
            .sum();
        let (ours, theirs): (Vec<&TxOut>, Vec<&TxOut>) = tx
            .output
            .iter()
            .partition(|output| self.wallet.is_mine(output.script_pubkey.clone()));
        let amount = theirs.iter().map(|output| output.value).sum();
        let change: Amount = ours.iter().map(|output| output.value).sum();
        Sent {
            tx,
            amount,
            left: kept + change,
        }
    }

    /// Signs every input of a transaction the wallet built and extracts it.
    fn sign(&self, mut psbt: Psbt) -> Result<Transaction, WalletError> {
        let finalized = self
            .wallet
            .sign_with_signers(
                &mut psbt,
                &[&self.keys.external_signers, &self.keys.internal_signers],
                SignOptions::default(),
            )
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        if !finalized {
            return Err(WalletError::Signing(
                "not every input could be signed".to_owned(),
            ));
        }
        psbt.extract_tx()
            .map_err(|e| WalletError::Signing(e.to_string()))
    }
}

/// Parses `text` as an address of `network`.
fn parse_address(text: &str, network: Network) -> Result<Address, WalletError> {
    let trimmed = text.trim();
    let unchecked = Address::<NetworkUnchecked>::from_str(trimmed).map_err(|e| {
        WalletError::UnparsableAddress {
            address: text.to_owned(),
            reason: e.to_string(),
        }
    })?;
    unchecked
        .require_network(network)
        .map_err(|_| WalletError::WrongNetworkAddress {
            address: trimmed.to_owned(),
            expected: network,
        })
}

/// Refuses fee rates below the minimum relay fee rate (1 sat/vB), zero included, and above
/// the absurd-fee limit of a PSBT (25,000 sat/vB).
fn check_fee_rate(rate: FeeRate) -> Result<(), WalletError> {
    if rate < FeeRate::BROADCAST_MIN || rate > Psbt::DEFAULT_MAX_FEE_RATE {
        return Err(WalletError::InvalidFeeRate {
            fee_rate: rate,
            minimum: FeeRate::BROADCAST_MIN,
            maximum: Psbt::DEFAULT_MAX_FEE_RATE,
        });
    }
    Ok(())
}

/// Refuses `tx`, paying `fee`, when peers accepting only `minimum` and above would not take
/// it: like Bitcoin Core, they require `minimum` (per 1000 vB) times its virtual size, rounded
/// up to whole vbytes.
fn check_peer_minimum(tx: &Transaction, fee: Amount, minimum: FeeRate) -> Result<(), WalletError> {
    let vsize = tx.weight().to_vbytes_ceil();
    let per_kvb = minimum.to_sat_per_kwu().saturating_mul(4);
    let required = vsize.saturating_mul(per_kvb) / 1_000;
    if fee.to_sat() < required {
        return Err(WalletError::FeeBelowPeerMinimum {
            // Per whole vbyte, as the peers count it.
            fee_rate: FeeRate::from_sat_per_kwu(fee.to_sat() * 250 / vsize.max(1)),
            peer_minimum: minimum,
        });
    }
    Ok(())
}

/// Refuses a transaction that leaves less than `reserve` of confirmed coins.
fn check_reserve(sent: &Sent, reserve: Amount) -> Result<(), WalletError> {
    if sent.left < reserve {
        return Err(WalletError::ReserveRequired {
            reserve,
            left: sent.left,
        });
    }
    Ok(())
}

/// Refuses outputs too small to be relayed.
fn check_not_dust(amount: Amount, script: &Script) -> Result<(), WalletError> {
    let minimum = script.minimal_non_dust();
    if amount < minimum {
        return Err(WalletError::DustAmount { amount, minimum });
    }
    Ok(())
}

/// Seconds since the Unix epoch, the wallet's clock for when it last saw a transaction.
pub(crate) fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

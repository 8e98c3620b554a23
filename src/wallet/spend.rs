//! Spending: sending to an address and funding channels, with the checks that keep bad input
//! from creating any transaction.
//!
//! Only confirmed coins are spent (and coinbase outputs only once mature): the wallet sees no
//! mempool, so a chain of unconfirmed transactions could get stuck where it cannot notice. Every
//! transaction signals replace-by-fee and is stored in the wallet (its inputs spent, its change
//! watched) before it leaves the wallet.

use std::str::FromStr;
use std::time::{SystemTime, UNIX_EPOCH};

use bdk_wallet::chain::ChainPosition;
use bdk_wallet::coin_selection::InsufficientFunds;
use bdk_wallet::error::{BuildFeeBumpError, CreateTxError};
use bdk_wallet::SignOptions;
use bitcoin::address::NetworkUnchecked;
use bitcoin::{Address, Amount, FeeRate, Network, Psbt, Script, ScriptBuf, Transaction, Txid};
use lightning::chain::chaininterface::FEERATE_FLOOR_SATS_PER_KW;

use super::state::WalletState;
use super::{FeeChoice, SendAmount, Wallet, WalletError};

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
        self.send_to_peers(address, amount, fee, None)
    }

    /// [`Wallet::send`], refusing with [`WalletError::FeeBelowPeerMinimum`] a transaction
    /// whose fee is below `peer_minimum` (the fee rate the Bitcoin peers announce as the least
    /// they accept, BIP 133 `feefilter`), counted over its virtual size as Bitcoin Core does:
    /// no peer would take it. `None` checks nothing.
    pub fn send_to_peers(
        &self,
        address: &str,
        amount: SendAmount,
        fee: FeeChoice,
        peer_minimum: Option<FeeRate>,
    ) -> Result<Transaction, WalletError> {
        let address = parse_address(address, self.network)?;
        let fee_rate = self.resolve_fee_rate(fee)?;
        let script = address.script_pubkey();
        if let SendAmount::Exact(amount) = amount {
            check_not_dust(amount, &script)?;
        }
        let tx =
            self.state()
                .transact(self.registry.as_ref(), "saving a sent transaction", |s| {
                    let psbt = s.build_psbt(&script, amount, fee_rate)?;
                    let fee = psbt
                        .fee()
                        .map_err(|e| WalletError::TransactionBuild(e.to_string()))?;
                    let tx = s.sign(psbt)?;
                    if let Some(minimum) = peer_minimum {
                        check_peer_minimum(&tx, fee, minimum)?;
                    }
                    s.wallet.apply_unconfirmed_txs([(tx.clone(), unix_now())]);
                    Ok(tx)
                })?;
        log::info!(
            "sending {amount:?} to {address} in {} at {} sat/kwu",
            tx.compute_txid(),
            fee_rate.to_sat_per_kwu()
        );
        self.broadcaster.broadcast_transactions(&[&tx]);
        Ok(tx)
    }

    /// Replaces the wallet's own unconfirmed transaction `txid` by one paying `fee_rate`
    /// (replace-by-fee: every transaction the wallet makes signals it), taking the extra fee
    /// from its change or from more confirmed coins, and broadcasts it. With `peer_minimum` a
    /// replacement the Bitcoin peers would not take is refused. The replacement is stored
    /// (the original marked evicted) before it leaves the wallet; on error nothing changes.
    pub fn bump_fee(
        &self,
        txid: Txid,
        fee_rate: FeeRate,
        peer_minimum: Option<FeeRate>,
    ) -> Result<Transaction, WalletError> {
        check_fee_rate(fee_rate)?;
        let cannot = |reason: &str| WalletError::CannotBump {
            txid,
            reason: reason.to_string(),
        };
        let tx = self
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
                if let Some(minimum) = peer_minimum {
                    check_peer_minimum(&tx, fee, minimum)?;
                }
                let last_seen = match s.wallet.get_tx(txid).map(|c| c.chain_position) {
                    Some(ChainPosition::Unconfirmed { last_seen, .. }) => last_seen.unwrap_or(0),
                    _ => 0,
                };
                // The replacement is seen after the original, which is evicted.
                let now = unix_now().max(last_seen + 1);
                s.wallet.apply_unconfirmed_txs([(tx.clone(), now)]);
                s.wallet.apply_evicted_txs([(txid, now)]);
                Ok(tx)
            })?;
        log::info!(
            "replaced {txid} by {} at {} sat/kwu",
            tx.compute_txid(),
            fee_rate.to_sat_per_kwu()
        );
        self.broadcaster.broadcast_transactions(&[&tx]);
        Ok(tx)
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

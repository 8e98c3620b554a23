//! On-chain operations: addresses, balances, coins and sends through the wallet.

use std::time::Duration;

use bitcoin::{Address, Amount, FeeRate, OutPoint, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use lightning::chain::channelmonitor::Balance;

use lightning::sign::SpendableOutputDescriptor;
use lightning::util::sweep::OutputSpendStatus;

use super::channels::ANCHOR_RESERVE_SAT_PER_CHANNEL;
use super::info::{Balances, FeeRatesInfo, TransactionInfo, UtxoInfo};
use crate::chain::broadcaster::{BroadcastStatus, PeerState, PrevoutValues};
use crate::chain::fees::{target_name, MAX_FEE_RATE_SAT_PER_KW};
use crate::node::Node;
use crate::node::NodeError;
use crate::node::SendAmount;
use crate::wallet::{sat_per_vb, FeeChoice, SpendLimits, Wallet};

/// How long `send`, `openchannel` and `closechannel` wait to learn whether a Bitcoin peer took
/// their transaction.
pub const PROPAGATION_WAIT: Duration = Duration::from_secs(10);

/// Whether a Bitcoin peer took a transaction within [`PROPAGATION_WAIT`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Propagation {
    /// The transaction, if there was one to offer.
    pub txid: Option<Txid>,
    /// Whether a peer took it (or it is already confirmed).
    pub propagated: bool,
    /// What happened, as a sentence.
    pub detail: String,
}

/// The wallet's coins, for the broadcaster to know the fees of the transactions it offers. It
/// holds the wallet weakly: the wallet holds the broadcaster, and a cycle would keep the chain
/// database open after the node stops.
pub(in crate::node) struct WalletPrevouts(pub std::sync::Weak<Wallet>);

impl PrevoutValues for WalletPrevouts {
    fn value(&self, outpoint: &OutPoint) -> Option<Amount> {
        self.0.upgrade()?.output_value(outpoint)
    }
}

impl Node {
    /// A new on-chain receive address; its script is watched before it is returned.
    pub fn new_address(&self) -> Result<String, NodeError> {
        Ok(self.wallet.new_address()?.to_string())
    }

    /// On-chain and Lightning balances; refused once the wallet stopped following the chain.
    pub fn balances(&self) -> Result<Balances, NodeError> {
        let wallet = self.wallet.balance()?;
        let channels = self.channel_manager.list_channels();
        let lightning_msat: u64 = channels.iter().map(|c| self.local_balance_msat(c)).sum();
        let open: Vec<_> = channels.iter().collect();
        let claimable_onchain_sat = self
            .chain_monitor
            .get_claimable_balances(&open)
            .iter()
            .map(Balance::claimable_amount_satoshis)
            .sum::<u64>();
        Ok(Balances {
            onchain_confirmed_sat: wallet.confirmed.to_sat(),
            onchain_pending_sat: (wallet.trusted_pending + wallet.untrusted_pending).to_sat(),
            onchain_immature_sat: wallet.immature.to_sat(),
            lightning_sat: lightning_msat / 1_000,
            lightning_msat,
            claimable_onchain_sat,
            sweeping_sat: self.sweeping_sat(),
            anchor_reserve_sat: self.anchor_reserve_sat(),
        })
    }

    /// Outputs the sweeper tracks whose sweeping transaction has not confirmed yet: ours, but
    /// not yet in the wallet (which sees only confirmed transactions of the sweeper).
    pub(in crate::node) fn sweeping_sat(&self) -> u64 {
        self.sweeper
            .tracked_spendable_outputs()
            .iter()
            .filter(|tracked| {
                !matches!(
                    tracked.status,
                    OutputSpendStatus::PendingThresholdConfirmations { .. }
                )
            })
            .map(|tracked| descriptor_value(&tracked.descriptor))
            .sum()
    }

    /// Unspent wallet outputs; refused once the wallet stopped following the chain.
    pub fn utxos(&self) -> Result<Vec<UtxoInfo>, NodeError> {
        Ok(self
            .wallet
            .utxos()?
            .into_iter()
            .map(|utxo| UtxoInfo {
                outpoint: utxo.outpoint,
                amount_sat: utxo.amount.to_sat(),
                address: Address::from_script(&utxo.script_pubkey, self.config.network)
                    .map(|a| a.to_string())
                    .unwrap_or_else(|_| utxo.script_pubkey.to_hex_string()),
                confirmation_height: utxo.confirmation_height,
                spendable: utxo.spendable,
            })
            .collect())
    }

    /// Sends on-chain to `address`; `fee_rate` defaults to the estimator's rate for outputs
    /// that are not urgent. With `peer_minimum` (see [`Node::peer_minimum_fee_rate`]) a
    /// transaction paying less is refused (`fee_below_peer_minimum`). Unless `spend_reserve`,
    /// a send leaving less than the anchor reserve ([`Node::anchor_reserve_sat`]) is refused
    /// (`reserve_required`) and "all" sends everything but the reserve; with it, a send that
    /// spends the reserve goes out with a warning. A refused send stores nothing.
    pub fn send_onchain(
        &self,
        address: &str,
        amount: SendAmount,
        fee_rate: Option<FeeRate>,
        peer_minimum: Option<FeeRate>,
        spend_reserve: bool,
    ) -> Result<SentOnchain, NodeError> {
        let fee = match fee_rate {
            Some(rate) => FeeChoice::Rate(rate),
            None => FeeChoice::Target(ConfirmationTarget::OutputSpendingFee),
        };
        let reserve = self.anchor_reserve_sat();
        let limits = SpendLimits {
            peer_minimum,
            reserve: Amount::from_sat(if spend_reserve { 0 } else { reserve }),
        };
        let sent = self.wallet.send_within(address, amount, fee, limits)?;
        Ok(SentOnchain {
            txid: sent.tx.compute_txid(),
            amount_sat: sent.amount.to_sat(),
            reserve_kept_sat: reserve.min(sent.left.to_sat()),
            warning: reserve_warning(reserve, sent.left.to_sat()),
        })
    }

    /// The wallet's transactions (unconfirmed first, then newest first), with confirmations
    /// and fees; refused once the wallet stopped following the chain.
    pub fn transactions(&self) -> Result<Vec<TransactionInfo>, NodeError> {
        let tip = self.wallet.best_block().height;
        Ok(self
            .wallet
            .transactions()?
            .into_iter()
            .map(|tx| TransactionInfo {
                txid: tx.txid,
                received_sat: tx.received.to_sat(),
                sent_sat: tx.sent.to_sat(),
                net_sat: tx.net.to_sat(),
                fee_sat: tx.fee.map(Amount::to_sat),
                confirmation_height: tx.confirmation_height,
                confirmations: tx
                    .confirmation_height
                    .map_or(0, |height| (tip + 1).saturating_sub(height)),
            })
            .collect())
    }

    /// Replaces the wallet's own unconfirmed send `txid` by one paying `fee_rate` (RBF) and
    /// broadcasts it. Channel funding transactions are refused: a replacement would change the
    /// channel's funding outpoint. With `peer_minimum` a replacement no Bitcoin peer would take
    /// is refused; unless `spend_reserve`, so is one that leaves less than the anchor reserve
    /// (`reserve_required`), and with it such a replacement goes out with a warning.
    pub fn bump_fee(
        &self,
        txid: Txid,
        fee_rate: FeeRate,
        peer_minimum: Option<FeeRate>,
        spend_reserve: bool,
    ) -> Result<BumpedOnchain, NodeError> {
        let funds_channel = self.channel_manager.list_channels().iter().any(|channel| {
            channel
                .funding_txo
                .is_some_and(|funding| funding.txid == txid)
        });
        if funds_channel {
            return Err(NodeError::Wallet(crate::wallet::WalletError::CannotBump {
                txid,
                reason: "it funds a channel, whose funding outpoint a replacement would change"
                    .into(),
            }));
        }
        let reserve = self.anchor_reserve_sat();
        let limits = SpendLimits {
            peer_minimum,
            reserve: Amount::from_sat(if spend_reserve { 0 } else { reserve }),
        };
        let sent = self.wallet.bump_fee(txid, fee_rate, limits)?;
        Ok(BumpedOnchain {
            txid: sent.tx.compute_txid(),
            warning: reserve_warning(reserve, sent.left.to_sat()),
        })
    }

    /// The confirmed on-chain funds the wallet keeps to pay the fees of anchor channels'
    /// closing transactions: [`ANCHOR_RESERVE_SAT_PER_CHANNEL`] for every open anchor channel
    /// and every closed one whose claims may still need the wallet (its commitment not yet
    /// confirmed, or HTLCs not yet resolved). Opening or accepting a channel needs this and
    /// the new channel's share; sends and fee bumps leave it.
    pub fn anchor_reserve_sat(&self) -> u64 {
        let open = self.channel_manager.list_channels();
        let open_anchor = open
            .iter()
            .filter(|channel| {
                channel
                    .channel_type
                    .as_ref()
                    .is_some_and(|t| t.supports_anchors_zero_fee_htlc_tx())
            })
            .count();
        let closing_anchor = self
            .chain_monitor
            .list_monitors()
            .into_iter()
            .filter(|id| !open.iter().any(|channel| channel.channel_id == *id))
            .filter_map(|id| self.chain_monitor.get_monitor(id).ok())
            .filter(|monitor| {
                monitor
                    .channel_type_features()
                    .supports_anchors_zero_fee_htlc_tx()
                    && monitor
                        .get_claimable_balances()
                        .iter()
                        .any(may_need_wallet_fees)
            })
            .count();
        ANCHOR_RESERVE_SAT_PER_CHANNEL * (open_anchor + closing_anchor) as u64
    }

    /// The fee estimates per target with their sources, the blocks sampled, and the Bitcoin
    /// peers' minimum (asked of them now).
    pub async fn fee_rates(&self) -> FeeRatesInfo {
        let peer_minimum = self.peer_minimum_fee_rate().await;
        let details = self.chain.fee_estimator().details();
        FeeRatesInfo {
            estimates: details
                .estimates
                .iter()
                .map(|detail| {
                    (
                        target_name(detail.target),
                        detail.sat_per_kw,
                        detail.source.as_str(),
                    )
                })
                .collect(),
            sampled_heights: details.sampled_heights,
            peer_minimum_sat_per_kw: peer_minimum.map(FeeRate::to_sat_per_kwu),
            peer_floor_sat_per_kw: details.peer_floor_sat_per_kw,
        }
    }

    /// The lowest minimum fee rate the connected Bitcoin peers announce (their `feefilter`):
    /// a transaction paying it is relayed by at least one of them, one paying less by none.
    /// Counted at most up to the highest fee rate the node ever pays
    /// ([`MAX_FEE_RATE_SAT_PER_KW`]); `None` while no peer is linked or none announced one.
    /// The fee estimates learn it at once, so a send without a rate is priced above it
    /// (within their cap).
    pub async fn peer_minimum_fee_rate(&self) -> Option<FeeRate> {
        let rate = self.chain.links().lowest_fee_filter()?;
        self.chain.fee_estimator().set_peers_min_feerate(rate);
        Some(rate.min(FeeRate::from_sat_per_kwu(u64::from(
            MAX_FEE_RATE_SAT_PER_KW,
        ))))
    }

    /// The broadcast transactions the node keeps (not yet buried), each with its state:
    /// waiting for a Bitcoin peer (and why), taken by peers, or confirmed.
    pub fn broadcast_statuses(&self) -> Vec<BroadcastStatus> {
        self.chain.broadcaster().statuses()
    }

    /// Waits, at most [`PROPAGATION_WAIT`], until `txid` was offered to the Bitcoin peers,
    /// and says whether one took it.
    pub async fn propagation(&self, txid: Txid) -> Propagation {
        self.propagation_within(txid, PROPAGATION_WAIT).await
    }

    /// [`Node::propagation`], waiting at most `wait`.
    pub(in crate::node) async fn propagation_within(
        &self,
        txid: Txid,
        wait: Duration,
    ) -> Propagation {
        let status = self.chain.broadcaster().wait_offered(&txid, wait).await;
        let (propagated, detail) = match status.map(|s| s.state) {
            Some(PeerState::Taken { .. }) => (true, "a Bitcoin peer took it".to_string()),
            Some(PeerState::Confirmed { height }) => {
                (true, format!("it is confirmed at height {height}"))
            }
            Some(PeerState::Waiting {
                reason: Some(reason),
            }) => (
                false,
                format!(
                    "no Bitcoin peer took it: {}; the node keeps offering it",
                    describe(reason)
                ),
            ),
            Some(PeerState::Waiting { reason: None }) => (
                false,
                format!(
                    "no Bitcoin peer took it within {} s; the node keeps offering it",
                    wait.as_secs()
                ),
            ),
            None => (false, "the node does not hold it for broadcast".to_string()),
        };
        Propagation {
            txid: Some(txid),
            propagated,
            detail,
        }
    }
}

/// What `send` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SentOnchain {
    /// The transaction.
    pub txid: Txid,
    /// What it pays to the address.
    pub amount_sat: u64,
    /// How much of the anchor reserve the wallet holds once it confirms.
    pub reserve_kept_sat: u64,
    /// Said when it spends the anchor reserve (`--force`).
    pub warning: Option<String>,
}

/// What `bumpfee` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BumpedOnchain {
    /// The replacement.
    pub txid: Txid,
    /// Said when it spends the anchor reserve (`--force`).
    pub warning: Option<String>,
}

/// The warning for a transaction leaving `left_sat` of confirmed funds, if that is less
/// than the anchor reserve of `reserve_sat`.
fn reserve_warning(reserve_sat: u64, left_sat: u64) -> Option<String> {
    (left_sat < reserve_sat).then(|| {
        format!(
            "this spends the anchor reserve: it leaves {left_sat} sat of confirmed on-chain funds, \
             less than the {reserve_sat} sat kept to pay the fees of anchor channels' closing \
             transactions; a channel closed without its peer may not get them confirmed in \
             time"
        )
    })
}

/// Whether a closed channel's balance may still need a fee bump paid from the wallet: its
/// commitment is not confirmed yet, or an HTLC on it is not resolved.
fn may_need_wallet_fees(balance: &Balance) -> bool {
    matches!(
        balance,
        Balance::ClaimableOnChannelClose { .. }
            | Balance::ContentiousClaimable { .. }
            | Balance::MaybeTimeoutClaimableHTLC { .. }
            | Balance::MaybePreimageClaimableHTLC { .. }
    )
}

/// `reason` with rates in sat/vB, for people.
fn describe(reason: crate::chain::broadcaster::NotTaken) -> String {
    use crate::chain::broadcaster::NotTaken;
    match reason {
        NotTaken::BelowPeerMinimum {
            fee_rate,
            peer_minimum,
        } => format!(
            "it pays {} sat/vB, below the {} sat/vB the Bitcoin peers accept (their feefilter)",
            sat_per_vb(fee_rate),
            sat_per_vb(peer_minimum)
        ),
        other => other.to_string(),
    }
}

/// The value of the output `descriptor` describes.
fn descriptor_value(descriptor: &SpendableOutputDescriptor) -> u64 {
    match descriptor {
        SpendableOutputDescriptor::StaticOutput { output, .. } => output.value.to_sat(),
        SpendableOutputDescriptor::DelayedPaymentOutput(d) => d.output.value.to_sat(),
        SpendableOutputDescriptor::StaticPaymentOutput(d) => d.output.value.to_sat(),
    }
}

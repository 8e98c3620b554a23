//! On-chain operations: addresses, balances, coins and sends through the wallet.

use bitcoin::{Address, FeeRate, Txid};
use lightning::chain::chaininterface::ConfirmationTarget;
use lightning::chain::channelmonitor::Balance;

use lightning::sign::SpendableOutputDescriptor;
use lightning::util::sweep::OutputSpendStatus;

use super::info::{Balances, UtxoInfo};
use super::{Node, NodeError, SendAmount};
use crate::wallet::FeeChoice;

impl Node {
    /// A new on-chain receive address; its script is watched before it is returned.
    pub fn new_address(&self) -> Result<String, NodeError> {
        Ok(self.wallet.new_address()?.to_string())
    }

    /// On-chain and Lightning balances.
    pub fn balances(&self) -> Balances {
        let wallet = self.wallet.balance();
        let channels = self.channel_manager.list_channels();
        let lightning_msat: u64 = channels.iter().map(|c| self.local_balance_msat(c)).sum();
        let open: Vec<_> = channels.iter().collect();
        let claimable_onchain_sat = self
            .chain_monitor
            .get_claimable_balances(&open)
            .iter()
            .map(Balance::claimable_amount_satoshis)
            .sum::<u64>();
        Balances {
            onchain_confirmed_sat: wallet.confirmed.to_sat(),
            onchain_pending_sat: (wallet.trusted_pending + wallet.untrusted_pending).to_sat(),
            onchain_immature_sat: wallet.immature.to_sat(),
            lightning_sat: lightning_msat / 1_000,
            lightning_msat,
            claimable_onchain_sat,
            sweeping_sat: self.sweeping_sat(),
        }
    }

    /// Outputs the sweeper tracks whose sweeping transaction has not confirmed yet: ours, but
    /// not yet in the wallet (which sees only confirmed transactions of the sweeper).
    fn sweeping_sat(&self) -> u64 {
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

    /// Unspent wallet outputs.
    pub fn utxos(&self) -> Vec<UtxoInfo> {
        self.wallet
            .utxos()
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
            .collect()
    }

    /// Sends on-chain to `address`; `fee_rate` defaults to the estimator's rate for outputs
    /// that are not urgent.
    pub fn send_onchain(
        &self,
        address: &str,
        amount: SendAmount,
        fee_rate: Option<FeeRate>,
    ) -> Result<Txid, NodeError> {
        let fee = match fee_rate {
            Some(rate) => FeeChoice::Rate(rate),
            None => FeeChoice::Target(ConfirmationTarget::OutputSpendingFee),
        };
        Ok(self.wallet.send(address, amount, fee)?.compute_txid())
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

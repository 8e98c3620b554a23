//! The wallet as LDK sees it: coins and signatures for anchor fee bumping
//! ([`WalletSourceSync`]) and change scripts for bump change, swept outputs and closed-channel
//! funds ([`ChangeDestinationSourceSync`]).
//!
//! LDK chooses among the coins itself and keeps track of the ones it has used in its bumps, so
//! transactions signed here are not recorded as spending them: a later bump may reuse the
//! same coins to replace an earlier one.
//!
//! LDK asks for a change script on every round of a fee bump (every 30 s and at intervals of
//! blocks while a claim is unconfirmed), the sweeper on every block while its sweep is
//! unconfirmed, and each channel for its destination and shutdown scripts. A wallet made again
//! from the seed finds coins only up to its lookahead (25 addresses) beyond the last one it
//! found paid, so a new address for each request would leave coins where a restore never
//! looks. Every request therefore gets the first change address that no transaction has paid
//! yet, and a new one is revealed only once every revealed change address has been paid: the
//! rounds of one claim or sweep share one script, and so may requests made before it is paid
//! (as LDK's own `KeysManager` gives every channel the same destination), the same address the
//! wallet's next send would take for its change.

use bdk_wallet::{KeychainKind, SignOptions};
use bitcoin::hashes::Hash;
use bitcoin::{Psbt, ScriptBuf, Transaction, WPubkeyHash};
use lightning::events::bump_transaction::sync::WalletSourceSync;
use lightning::events::bump_transaction::Utxo;
use lightning::sign::ChangeDestinationSourceSync;

use super::state::WalletState;
use super::{Wallet, WalletError};

impl Wallet {
    /// The script of the first change address (internal keychain) that no transaction the
    /// wallet knows has paid; one is revealed only when every revealed change address has
    /// been paid (see the [module](self) for why). A newly revealed address is stored and
    /// registered with the chain source before it is returned. Used for bump change, swept
    /// outputs and funds taken back from channels.
    pub fn change_script(&self) -> Result<ScriptBuf, WalletError> {
        self.state()
            .transact(self.registry.as_ref(), "saving a change address", |s| {
                Ok(s.wallet
                    .next_unused_address(KeychainKind::Internal)
                    .script_pubkey())
            })
    }
}

impl WalletSourceSync for Wallet {
    fn list_confirmed_utxos(&self) -> Result<Vec<Utxo>, ()> {
        let utxos = self
            .utxos()
            .map_err(|e| log::error!("cannot give LDK the wallet's coins: {e}"))?;
        Ok(utxos
            .into_iter()
            .filter(|utxo| utxo.spendable)
            .filter_map(|utxo| {
                // Every wallet script is P2WPKH: OP_0 PUSH20 <20-byte key hash>.
                let script = utxo.script_pubkey.as_bytes();
                let hash = script
                    .get(2..22)
                    .filter(|_| utxo.script_pubkey.is_p2wpkh())
                    .and_then(|bytes| <[u8; 20]>::try_from(bytes).ok())?;
                Some(Utxo::new_v0_p2wpkh(
                    utxo.outpoint,
                    utxo.amount,
                    &WPubkeyHash::from_byte_array(hash),
                ))
            })
            .collect())
    }

    fn get_change_script(&self) -> Result<ScriptBuf, ()> {
        self.change_script()
            .map_err(|e| log::error!("cannot give LDK a change script: {e}"))
    }

    fn sign_psbt(&self, psbt: Psbt) -> Result<Transaction, ()> {
        self.state()
            .sign_inputs_of_ours(psbt)
            .map_err(|e| log::error!("cannot sign LDK's transaction: {e}"))
    }
}

impl ChangeDestinationSourceSync for Wallet {
    fn get_change_destination_script(&self) -> Result<ScriptBuf, ()> {
        self.change_script()
            .map_err(|e| log::error!("cannot give LDK a destination script: {e}"))
    }
}

impl WalletState {
    /// Signs the inputs of `psbt` that spend the wallet's coins and returns the transaction with
    /// their witnesses; the other inputs are left for their owner to sign.
    ///
    /// The previous outputs of our inputs are taken from the wallet's own records, not from the
    /// PSBT, so the signatures commit to the values the wallet knows.
    fn sign_inputs_of_ours(&self, mut psbt: Psbt) -> Result<Transaction, WalletError> {
        if psbt.inputs.len() != psbt.unsigned_tx.input.len() {
            return Err(WalletError::Signing(format!(
                "the PSBT describes {} inputs but its transaction has {}",
                psbt.inputs.len(),
                psbt.unsigned_tx.input.len()
            )));
        }
        let mut ours = Vec::new();
        for (index, txin) in psbt.unsigned_tx.input.iter().enumerate() {
            let outpoint = txin.previous_output;
            if self.wallet.spk_index().txout(outpoint).is_none() {
                continue;
            }
            let previous = self
                .wallet
                .tx_graph()
                .get_tx(outpoint.txid)
                .ok_or_else(|| {
                    WalletError::Signing(format!("the transaction of {outpoint} is unknown"))
                })?;
            let output = previous
                .output
                .get(outpoint.vout as usize)
                .cloned()
                .ok_or_else(|| WalletError::Signing(format!("output {outpoint} does not exist")))?;
            psbt.inputs[index].witness_utxo = Some(output);
            psbt.inputs[index].non_witness_utxo = Some(previous.as_ref().clone());
            ours.push(index);
        }
        if ours.is_empty() {
            return Err(WalletError::Signing(
                "the transaction spends none of the wallet's coins".to_owned(),
            ));
        }
        // The other inputs are not the wallet's: their previous outputs are whatever the PSBT
        // says, and only their owner signs them.
        let options = SignOptions {
            trust_witness_utxo: true,
            ..Default::default()
        };
        self.wallet
            .sign_with_signers(
                &mut psbt,
                &[&self.keys.external_signers, &self.keys.internal_signers],
                options,
            )
            .map_err(|e| WalletError::Signing(e.to_string()))?;
        if let Some(&unsigned) = ours
            .iter()
            .find(|&&index| psbt.inputs[index].final_script_witness.is_none())
        {
            return Err(WalletError::Signing(format!(
                "input {unsigned} spends a wallet coin but could not be signed"
            )));
        }
        let mut tx = psbt.unsigned_tx.clone();
        for (txin, input) in tx.input.iter_mut().zip(&psbt.inputs) {
            if let Some(witness) = &input.final_script_witness {
                txin.witness = witness.clone();
            }
            if let Some(script_sig) = &input.final_script_sig {
                txin.script_sig = script_sig.clone();
            }
        }
        Ok(tx)
    }
}

//! The faucet: a fixed, publicly known regtest key (P2WPKH) that mines coins and pays them to
//! whoever a test or the playground names.

use bitcoin::absolute::LockTime;
use bitcoin::ecdsa;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{CompressedPublicKey, Secp256k1};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, FeeRate, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

use super::consensus::no_txid;
use super::error::{TxRejectReason, TxRejected};

/// The faucet's key and signing context.
pub struct Faucet {
    secp: Secp256k1<All>,
    secret: SecretKey,
    public: CompressedPublicKey,
    script: ScriptBuf,
}

impl std::fmt::Debug for Faucet {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Faucet")
            .field("script", &self.script)
            .finish()
    }
}

impl Default for Faucet {
    fn default() -> Self {
        Self::new()
    }
}

impl Faucet {
    /// The faucet key, derived from a fixed phrase so every run has the same faucet address.
    pub fn new() -> Faucet {
        let secp = Secp256k1::new();
        let seed = sha256::Hash::hash(b"lightfilter regtest faucet");
        let secret =
            SecretKey::from_slice(seed.as_byte_array()).expect("a sha256 digest is a valid key");
        let public = CompressedPublicKey(secret.public_key(&secp));
        let script = ScriptBuf::new_p2wpkh(&public.wpubkey_hash());
        Faucet {
            secp,
            secret,
            public,
            script,
        }
    }

    /// The faucet's output script.
    pub fn script(&self) -> &ScriptBuf {
        &self.script
    }

    /// A verification-capable secp256k1 context, shared with validation.
    pub fn secp(&self) -> &Secp256k1<All> {
        &self.secp
    }

    /// Pays `amount` to `to` from `candidates` (faucet outputs, in preference order), with
    /// change back to the faucet; returns the signed transaction. The payment is output 0.
    pub fn pay(
        &self,
        candidates: impl IntoIterator<Item = (OutPoint, Amount)>,
        to: &Script,
        amount: Amount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, TxRejected> {
        let mut tx = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: Vec::new(),
            output: vec![TxOut {
                value: amount,
                script_pubkey: to.to_owned(),
            }],
        };
        let mut values = Vec::new();
        let mut total = Amount::ZERO;
        let change_dust = self.script.minimal_non_dust();
        for (outpoint, value) in candidates {
            tx.input.push(TxIn {
                previous_output: outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            });
            values.push(value);
            total += value;
            let fee_without_change = self.fee(&tx, fee_rate, false);
            let fee_with_change = self.fee(&tx, fee_rate, true);
            if total >= amount + fee_with_change + change_dust {
                tx.output.push(TxOut {
                    value: total - amount - fee_with_change,
                    script_pubkey: self.script.clone(),
                });
                return Ok(self.sign(tx, &values));
            }
            if total >= amount + fee_without_change {
                return Ok(self.sign(tx, &values));
            }
        }
        let needed = amount + self.fee(&tx, fee_rate, false);
        Err(TxRejected::new(
            no_txid(),
            TxRejectReason::InsufficientFunds,
            format!(
                "the faucet can spend {} sat but paying {} sat at {} sat/vB needs at least {} sat",
                total.to_sat(),
                amount.to_sat(),
                fee_rate.to_sat_per_vb_ceil(),
                needed.to_sat()
            ),
        ))
    }

    /// The fee of `tx` once signed, optionally with one more (change) output.
    fn fee(&self, tx: &Transaction, fee_rate: FeeRate, with_change: bool) -> Amount {
        let mut sized = tx.clone();
        for input in &mut sized.input {
            input.witness = Witness::from_slice(&[vec![0u8; 72], vec![0u8; 33]]);
        }
        if with_change {
            sized.output.push(TxOut {
                value: Amount::ZERO,
                script_pubkey: self.script.clone(),
            });
        }
        fee_rate
            .fee_vb(sized.weight().to_vbytes_ceil())
            .unwrap_or(Amount::MAX_MONEY)
    }

    fn sign(&self, mut tx: Transaction, values: &[Amount]) -> Transaction {
        let mut witnesses = Vec::with_capacity(values.len());
        {
            let mut cache = SighashCache::new(&tx);
            for (index, value) in values.iter().enumerate() {
                let sighash = cache
                    .p2wpkh_signature_hash(index, &self.script, *value, EcdsaSighashType::All)
                    .expect("the faucet script is P2WPKH and the index exists");
                let message = Message::from_digest(sighash.to_byte_array());
                let signature =
                    ecdsa::Signature::sighash_all(self.secp.sign_ecdsa(&message, &self.secret));
                witnesses.push(Witness::p2wpkh(&signature, &self.public.0));
            }
        }
        for (input, witness) in tx.input.iter_mut().zip(witnesses) {
            input.witness = witness;
        }
        tx
    }
}

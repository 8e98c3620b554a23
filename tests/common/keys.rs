//! Test keys that own P2WPKH and P2TR outputs and sign their spends, plus transaction builders.

use bitcoin::absolute::LockTime;
use bitcoin::ecdsa;
use bitcoin::hashes::{sha256, Hash};
use bitcoin::key::{CompressedPublicKey, Keypair, Secp256k1, TapTweak};
use bitcoin::secp256k1::{All, Message, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version;
use bitcoin::{Amount, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};

/// A deterministic key for tests.
pub struct TestKey {
    secp: Secp256k1<All>,
    secret: SecretKey,
    public: CompressedPublicKey,
}

impl TestKey {
    /// The key derived from `name` (same name, same key).
    pub fn new(name: &str) -> TestKey {
        let secp = Secp256k1::new();
        let digest = sha256::Hash::hash(name.as_bytes());
        let secret = SecretKey::from_slice(digest.as_byte_array()).expect("valid key");
        let public = CompressedPublicKey(secret.public_key(&secp));
        TestKey {
            secp,
            secret,
            public,
        }
    }

    /// Its P2WPKH output script.
    pub fn script(&self) -> ScriptBuf {
        ScriptBuf::new_p2wpkh(&self.public.wpubkey_hash())
    }

    /// Its P2TR (key path only) output script.
    pub fn taproot_script(&self) -> ScriptBuf {
        let keypair = Keypair::from_secret_key(&self.secp, &self.secret);
        let (internal, _) = keypair.x_only_public_key();
        ScriptBuf::new_p2tr(&self.secp, internal, None)
    }

    /// Signs input `index` of `tx`, which spends a P2WPKH output of this key worth `value`.
    pub fn sign_p2wpkh(&self, tx: &mut Transaction, index: usize, value: Amount) {
        let sighash = SighashCache::new(&*tx)
            .p2wpkh_signature_hash(index, &self.script(), value, EcdsaSighashType::All)
            .expect("p2wpkh sighash");
        let message = Message::from_digest(sighash.to_byte_array());
        let signature = ecdsa::Signature::sighash_all(self.secp.sign_ecdsa(&message, &self.secret));
        tx.input[index].witness = Witness::p2wpkh(&signature, &self.public.0);
    }

    /// Signs input `index` of `tx` as a taproot key-path spend; `prevouts` are all spent outputs.
    pub fn sign_p2tr(&self, tx: &mut Transaction, index: usize, prevouts: &[TxOut]) {
        let sighash = SighashCache::new(&*tx)
            .taproot_key_spend_signature_hash(
                index,
                &Prevouts::All(prevouts),
                TapSighashType::Default,
            )
            .expect("taproot sighash");
        let keypair = Keypair::from_secret_key(&self.secp, &self.secret)
            .tap_tweak(&self.secp, None)
            .to_keypair();
        let message = Message::from_digest(sighash.to_byte_array());
        let signature = bitcoin::taproot::Signature {
            signature: self.secp.sign_schnorr_no_aux_rand(&message, &keypair),
            sighash_type: TapSighashType::Default,
        };
        tx.input[index].witness = Witness::p2tr_key_spend(&signature);
    }
}

/// An unsigned version-2 transaction spending `inputs` (sequence: RBF, no relative lock).
pub fn unsigned_tx(inputs: &[OutPoint], outputs: Vec<TxOut>) -> Transaction {
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: inputs
            .iter()
            .map(|outpoint| TxIn {
                previous_output: *outpoint,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: Witness::new(),
            })
            .collect(),
        output: outputs,
    }
}

/// An output paying `sats` to `script`.
pub fn pay(script: &ScriptBuf, sats: u64) -> TxOut {
    TxOut {
        value: Amount::from_sat(sats),
        script_pubkey: script.clone(),
    }
}

/// A signed transaction spending one P2WPKH output of `key` worth `value` to `outputs`.
pub fn spend_p2wpkh(
    key: &TestKey,
    outpoint: OutPoint,
    value: Amount,
    outputs: Vec<TxOut>,
) -> Transaction {
    let mut tx = unsigned_tx(&[outpoint], outputs);
    key.sign_p2wpkh(&mut tx, 0, value);
    tx
}

//! Outputs the node must never spend in a transaction it broadcasts.
//!
//! A channel whose state fell behind its peer's (restored from an old copy) must not see its
//! own commitment transaction broadcast: the peer holds the secret that revokes it and would
//! take the whole channel. The node names such channels' funding outputs here; the
//! broadcaster then refuses any transaction spending one of them, and any transaction
//! descending from a refused one (an anchor's fee bump, a claim of one of its outputs), since
//! those can never confirm without it.

use std::collections::HashSet;

use bitcoin::{OutPoint, Transaction, Txid};

/// The outputs that must not be spent, and the transactions refused so far for spending them.
#[derive(Debug, Default)]
pub struct RefusedSpends {
    outpoints: HashSet<OutPoint>,
    refused: HashSet<Txid>,
}

impl RefusedSpends {
    /// Adds outputs that must never be spent; returns how many were new.
    pub fn add(&mut self, outpoints: impl IntoIterator<Item = OutPoint>) -> usize {
        outpoints
            .into_iter()
            .filter(|outpoint| self.outpoints.insert(*outpoint))
            .count()
    }

    /// Whether nothing is refused.
    pub fn is_empty(&self) -> bool {
        self.outpoints.is_empty()
    }

    /// The input of `tx` that makes it refused, if any: one spending a refused output or an
    /// output of a refused transaction. A refused transaction's outputs are refused from then
    /// on, so its descendants are too when they are checked after it (parents first).
    pub fn check(&mut self, tx: &Transaction) -> Option<OutPoint> {
        let culprit = tx
            .input
            .iter()
            .map(|input| input.previous_output)
            .find(|spent| self.outpoints.contains(spent) || self.refused.contains(&spent.txid))?;
        self.refused.insert(tx.compute_txid());
        Some(culprit)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::hashes::Hash;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn spending(outpoints: &[OutPoint], value: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: outpoints
                .iter()
                .map(|previous_output| TxIn {
                    previous_output: *previous_output,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::MAX,
                    witness: Witness::new(),
                })
                .collect(),
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    fn outpoint(byte: u8, vout: u32) -> OutPoint {
        OutPoint::new(Txid::from_byte_array([byte; 32]), vout)
    }

    #[test]
    fn a_spend_of_a_refused_output_and_its_descendants_are_refused_and_others_pass() {
        let funding = outpoint(1, 0);
        let mut refused = RefusedSpends::default();
        assert!(refused.is_empty());
        assert_eq!(refused.add([funding, funding]), 1);

        let commitment = spending(&[funding], 1_000);
        assert_eq!(refused.check(&commitment), Some(funding));
        // A fee bump spending the commitment's anchor along with a wallet coin.
        let anchor = OutPoint::new(commitment.compute_txid(), 0);
        let bump = spending(&[outpoint(9, 3), anchor], 500);
        assert_eq!(refused.check(&bump), Some(anchor));
        let grandchild = spending(&[OutPoint::new(bump.compute_txid(), 0)], 400);
        assert!(refused.check(&grandchild).is_some());

        // The same output at another index, and unrelated spends, pass.
        assert_eq!(refused.check(&spending(&[outpoint(1, 1)], 1_000)), None);
        assert_eq!(refused.check(&spending(&[outpoint(9, 3)], 900)), None);
    }
}

//! Outputs the node must never spend in a transaction it broadcasts.
//!
//! A channel whose state fell behind its peer's (restored from an old copy) must not see its
//! own commitment transaction broadcast: the peer holds the secret that revokes it and would
//! take the whole channel. The node names such channels' funding outputs here; the
//! broadcaster then refuses any transaction spending one of them, and any transaction
//! descending from a refused one (an anchor's fee bump, a claim of one of its outputs), since
//! those can never confirm without it.
//!
//! A channel whose state is not yet proved current (restored from a backup, or found with a
//! channel manager older than its monitor) is *held*: only its commitment transactions (BOLT 3
//! marks them: the locktime's upper byte is 0x20 and the input's sequence's 0x80) and their
//! descendants are refused, so that a cooperative close can still go out. A hold is lifted
//! once the channel's state is proved current; a refusal for a channel behind never is.

use std::collections::{HashMap, HashSet};

use bitcoin::{OutPoint, Transaction, Txid};

/// Why a transaction is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// It spends (or descends from a transaction that spends) an output that must never be
    /// spent: the funding of a channel behind its peer's state.
    NeverSpent(OutPoint),
    /// It is a commitment transaction (or descends from one) spending the funding of a held
    /// channel.
    Held(OutPoint),
}

impl Refusal {
    /// The funding output at the root of the refusal.
    pub fn outpoint(&self) -> OutPoint {
        match self {
            Refusal::NeverSpent(outpoint) | Refusal::Held(outpoint) => *outpoint,
        }
    }
}

impl std::fmt::Display for Refusal {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Refusal::NeverSpent(outpoint) => {
                write!(f, "it spends {outpoint}, which must not be spent")
            }
            Refusal::Held(outpoint) => write!(
                f,
                "it is (or builds on) a commitment transaction of the channel funded by \
                 {outpoint}, whose state is not proved current yet (the channel is held)"
            ),
        }
    }
}

/// Whether `tx` has the shape of a Lightning commitment transaction (BOLT 3): one input, whose
/// sequence's upper byte is 0x80, and a locktime whose upper byte is 0x20.
pub fn is_commitment_shaped(tx: &Transaction) -> bool {
    tx.input.len() == 1
        && tx.input[0].sequence.0 >> 24 == 0x80
        && tx.lock_time.to_consensus_u32() >> 24 == 0x20
}

/// The outputs that must not be spent, the held channels' fundings, and the transactions
/// refused so far.
#[derive(Debug, Default)]
pub struct RefusedSpends {
    never: HashSet<OutPoint>,
    held: HashSet<OutPoint>,
    refused: HashMap<Txid, Refusal>,
}

impl RefusedSpends {
    /// Adds outputs that must never be spent; returns how many were new.
    pub fn add(&mut self, outpoints: impl IntoIterator<Item = OutPoint>) -> usize {
        outpoints
            .into_iter()
            .filter(|outpoint| self.never.insert(*outpoint))
            .count()
    }

    /// Holds the channels funded by `outpoints`: their commitment transactions are refused
    /// until [`RefusedSpends::release`]. Returns how many were new.
    pub fn hold(&mut self, outpoints: impl IntoIterator<Item = OutPoint>) -> usize {
        outpoints
            .into_iter()
            .filter(|outpoint| self.held.insert(*outpoint))
            .count()
    }

    /// Lifts the hold of the channels funded by `outpoints`, forgetting the transactions
    /// refused for it.
    pub fn release(&mut self, outpoints: &[OutPoint]) {
        for outpoint in outpoints {
            self.held.remove(outpoint);
        }
        self.refused.retain(|_, refusal| {
            !matches!(refusal, Refusal::Held(outpoint) if outpoints.contains(outpoint))
        });
    }

    /// Whether nothing is refused.
    pub fn is_empty(&self) -> bool {
        self.never.is_empty() && self.held.is_empty()
    }

    /// Why `tx` is refused, if it is: it spends an output that must never be spent, it is a
    /// commitment transaction of a held channel, or it spends an output of a refused
    /// transaction. A refused transaction's outputs are refused from then on, so its
    /// descendants are too when they are checked after it (parents first).
    pub fn check(&mut self, tx: &Transaction) -> Option<Refusal> {
        let refusal = tx.input.iter().find_map(|input| {
            let spent = input.previous_output;
            if self.never.contains(&spent) {
                Some(Refusal::NeverSpent(spent))
            } else if self.held.contains(&spent) && is_commitment_shaped(tx) {
                Some(Refusal::Held(spent))
            } else {
                self.refused.get(&spent.txid).copied()
            }
        })?;
        self.refused.insert(tx.compute_txid(), refusal);
        Some(refusal)
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
        assert_eq!(
            refused.check(&commitment),
            Some(Refusal::NeverSpent(funding))
        );
        // A fee bump spending the commitment's anchor along with a wallet coin.
        let anchor = OutPoint::new(commitment.compute_txid(), 0);
        let bump = spending(&[outpoint(9, 3), anchor], 500);
        assert_eq!(refused.check(&bump), Some(Refusal::NeverSpent(funding)));
        let grandchild = spending(&[OutPoint::new(bump.compute_txid(), 0)], 400);
        assert!(refused.check(&grandchild).is_some());

        // The same output at another index, and unrelated spends, pass.
        assert_eq!(refused.check(&spending(&[outpoint(1, 1)], 1_000)), None);
        assert_eq!(refused.check(&spending(&[outpoint(9, 3)], 900)), None);
    }

    /// A commitment transaction as BOLT 3 shapes it, spending `funding`.
    fn commitment(funding: OutPoint, value: u64) -> Transaction {
        let mut tx = spending(&[funding], value);
        tx.input[0].sequence = Sequence(0x8000_1234);
        tx.lock_time = LockTime::from_consensus(0x2000_5678);
        tx
    }

    #[test]
    fn a_held_channel_refuses_its_commitments_and_their_descendants_until_released() {
        let funding = outpoint(1, 0);
        let mut refused = RefusedSpends::default();
        assert_eq!(refused.hold([funding]), 1);
        assert!(!refused.is_empty());
        let old = commitment(funding, 1_000);
        assert!(is_commitment_shaped(&old));
        assert_eq!(refused.check(&old), Some(Refusal::Held(funding)));
        let bump = spending(&[outpoint(9, 3), OutPoint::new(old.compute_txid(), 0)], 500);
        assert_eq!(refused.check(&bump), Some(Refusal::Held(funding)));
        // A cooperative close (any other spend of the funding) goes out.
        let close = spending(&[funding], 990);
        assert!(!is_commitment_shaped(&close));
        assert_eq!(refused.check(&close), None);
        // A channel both held and behind stays refused when released.
        let behind = outpoint(2, 0);
        refused.hold([behind]);
        refused.add([behind]);
        refused.release(&[funding, behind]);
        assert_eq!(refused.check(&old), None);
        assert_eq!(refused.check(&bump), None);
        assert_eq!(
            refused.check(&commitment(behind, 1_000)),
            Some(Refusal::NeverSpent(behind))
        );
        assert_eq!(
            refused.check(&spending(&[behind], 990)),
            Some(Refusal::NeverSpent(behind))
        );
    }
}

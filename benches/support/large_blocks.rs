//! Public-network-shaped blocks on the embedded regtest peer: blocks of about a given size,
//! made of two-in, two-out transactions whose spends weigh what P2WPKH spends weigh and whose
//! outputs pay distinct 34-byte scripts, so each transaction adds four elements to its block's
//! BIP 158 filter, as on mainnet.

#![allow(dead_code)]

use std::collections::VecDeque;

use bitcoin::absolute::LockTime;
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness};
use lightfilter::regtest::RegtestPeer;

/// Serialized size of one of the generated transactions, in bytes.
const TX_BYTES: u64 = 410;
/// Fee of each generated transaction, in sat.
const TX_FEE: u64 = 500;

/// An output spendable by anyone who reveals the witness script of `tag`.
#[derive(Clone, Copy)]
struct Coin {
    outpoint: OutPoint,
    value: u64,
    tag: u64,
}

/// The witness script of a coin: `<tag> OP_DROP OP_2DROP OP_TRUE`, which drops two witness
/// items standing in for a signature and a public key.
fn coin_witness_script(tag: u64) -> ScriptBuf {
    use bitcoin::opcodes::all::{OP_2DROP, OP_DROP};
    bitcoin::script::Builder::new()
        .push_int(tag as i64)
        .push_opcode(OP_DROP)
        .push_opcode(OP_2DROP)
        .push_opcode(bitcoin::opcodes::OP_TRUE)
        .into_script()
}

fn coin_script(tag: u64) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&coin_witness_script(tag).wscript_hash())
}

fn spend_input(coin: &Coin) -> TxIn {
    let mut witness = Witness::new();
    witness.push([0x30u8; 72]);
    witness.push([0x02u8; 33]);
    witness.push(coin_witness_script(coin.tag).as_bytes());
    TxIn {
        previous_output: coin.outpoint,
        script_sig: ScriptBuf::new(),
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        witness,
    }
}

/// Mines blocks of about `block_bytes` on a regtest peer, one at a time.
pub struct LargeBlocks<'a> {
    peer: &'a RegtestPeer,
    miner: ScriptBuf,
    txs_per_block: usize,
    pool: VecDeque<Coin>,
    next_tag: u64,
}

impl<'a> LargeBlocks<'a> {
    /// Funds a pool of coins from `peer`'s faucet (mining two blocks) for blocks of about
    /// `block_bytes` of transactions each.
    pub fn new(peer: &'a RegtestPeer, block_bytes: u64) -> Self {
        let miner = peer.faucet_script();
        let mut blocks = LargeBlocks {
            peer,
            miner: miner.clone(),
            txs_per_block: (block_bytes / TX_BYTES).max(1) as usize,
            pool: VecDeque::new(),
            next_tag: 1,
        };
        // One coin from the faucet, fanned out into a pool larger than a block spends.
        let first = Coin {
            outpoint: OutPoint::null(),
            value: 40 * 100_000_000,
            tag: blocks.tag(),
        };
        let funding = peer
            .fund(
                &coin_script(first.tag),
                Amount::from_sat(first.value),
                FeeRate::from_sat_per_vb(2).unwrap(),
            )
            .expect("faucet pays");
        peer.mine(1, &miner);
        let first = Coin {
            outpoint: OutPoint::new(funding.compute_txid(), 0),
            ..first
        };
        let pool_size = blocks.txs_per_block * 2 + 2_000;
        let share = (first.value - 1_000_000) / pool_size as u64;
        let fan_tags: Vec<u64> = (0..pool_size).map(|_| blocks.tag()).collect();
        let fan_out = Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![spend_input(&first)],
            output: fan_tags
                .iter()
                .map(|t| TxOut {
                    value: Amount::from_sat(share),
                    script_pubkey: coin_script(*t),
                })
                .collect(),
        };
        let fan_txid = fan_out.compute_txid();
        blocks.pool = fan_tags
            .iter()
            .enumerate()
            .map(|(vout, t)| Coin {
                outpoint: OutPoint::new(fan_txid, vout as u32),
                value: share,
                tag: *t,
            })
            .collect();
        peer.mine_with(vec![fan_out], &miner)
            .expect("fan-out mined");
        blocks
    }

    fn tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Mines one large block; when `pays` is given, one of its transactions pays that script
    /// (an output that stays unspent).
    pub fn mine_one(&mut self, pays: Option<&ScriptBuf>) {
        let mut txs = Vec::with_capacity(self.txs_per_block);
        for i in 0..self.txs_per_block {
            let a = self.pool.pop_front().expect("pool");
            let b = self.pool.pop_front().expect("pool");
            let half = (a.value + b.value - TX_FEE) / 2;
            let (ta, tb) = (self.tag(), self.tag());
            let watched = pays.filter(|_| i == self.txs_per_block / 2);
            let to_b = watched.cloned().unwrap_or_else(|| coin_script(tb));
            let tx = Transaction {
                version: Version::TWO,
                lock_time: LockTime::ZERO,
                input: vec![spend_input(&a), spend_input(&b)],
                output: vec![
                    TxOut {
                        value: Amount::from_sat(half),
                        script_pubkey: coin_script(ta),
                    },
                    TxOut {
                        value: Amount::from_sat(half),
                        script_pubkey: to_b,
                    },
                ],
            };
            let txid = tx.compute_txid();
            self.pool.push_back(Coin {
                outpoint: OutPoint::new(txid, 0),
                value: half,
                tag: ta,
            });
            // A watched output stays unspent; the pool has room to shrink by one.
            if watched.is_none() {
                self.pool.push_back(Coin {
                    outpoint: OutPoint::new(txid, 1),
                    value: half,
                    tag: tb,
                });
            }
            txs.push(tx);
        }
        self.peer
            .mine_with(txs, &self.miner)
            .expect("large block mined");
    }
}

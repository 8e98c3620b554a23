//! Block assembly: coinbase (BIP 34 height, witness commitment), merkle root, timestamp and
//! proof of work for regtest.

use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::script::{Builder, PushBytesBuf};
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, OutPoint, Script, ScriptBuf, Sequence, Transaction, TxIn, TxOut,
    Witness,
};

use super::consensus::regtest_bits;

/// Magic prefix of the witness commitment output (BIP 141).
const WITNESS_COMMITMENT_MAGIC: [u8; 4] = [0xaa, 0x21, 0xa9, 0xed];
/// Blocks mined per second of timestamp at the slowest pace median-time-past allows.
const BLOCKS_PER_SECOND_OF_MTP: u64 = 6;

/// What the next block needs besides its transactions.
pub struct Template<'a> {
    /// Hash of the block it extends.
    pub prev_blockhash: BlockHash,
    /// Its height.
    pub height: u32,
    /// Its timestamp.
    pub time: u32,
    /// A number unique to this block, so two blocks never share a coinbase.
    pub extra_nonce: u64,
    /// Script the block reward is paid to.
    pub payout: &'a Script,
    /// Subsidy plus fees.
    pub reward: Amount,
}

/// Seconds since the Unix epoch.
pub fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|elapsed| elapsed.as_secs())
        .unwrap_or(0)
}

/// The timestamp of a block mined now with `remaining` more blocks to follow in the same batch.
///
/// It must exceed the parent's median time past. Mining a long batch at wall-clock time would
/// push timestamps ahead of the clock (the median advances only one second per six blocks), so
/// a batch starts in the past and ends near the present; Core's two-hour future limit then holds
/// for chains of any realistic length.
pub fn block_time(parent_median_time: u32, remaining: u32) -> u32 {
    let backdate = remaining as u64 / BLOCKS_PER_SECOND_OF_MTP;
    let floor = now().saturating_sub(backdate).min(u32::MAX as u64) as u32;
    floor.max(parent_median_time + 1)
}

fn coinbase(template: &Template<'_>) -> Transaction {
    let script_sig = Builder::new()
        .push_int(template.height as i64)
        .push_int(template.extra_nonce as i64)
        .into_script();
    let mut witness = Witness::new();
    witness.push([0u8; 32]);
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig,
            sequence: Sequence::MAX,
            witness,
        }],
        output: vec![TxOut {
            value: template.reward,
            script_pubkey: template.payout.to_owned(),
        }],
    }
}

fn commitment_script(block: &Block) -> ScriptBuf {
    let witness_root = block.witness_root().expect("a block has a coinbase");
    let commitment = Block::compute_witness_commitment(&witness_root, &[0u8; 32]);
    let mut data = PushBytesBuf::new();
    data.extend_from_slice(&WITNESS_COMMITMENT_MAGIC)
        .expect("36 bytes fit a push");
    data.extend_from_slice(commitment.as_ref())
        .expect("36 bytes fit a push");
    ScriptBuf::new_op_return(data)
}

/// Builds and mines a block with `txs` after the coinbase.
pub fn assemble(template: &Template<'_>, txs: Vec<Transaction>) -> Block {
    let mut txdata = Vec::with_capacity(txs.len() + 1);
    txdata.push(coinbase(template));
    txdata.extend(txs);
    let mut block = Block {
        header: Header {
            version: BlockVersion::from_consensus(0x2000_0000),
            prev_blockhash: template.prev_blockhash,
            merkle_root: bitcoin::TxMerkleNode::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
            time: template.time,
            bits: regtest_bits(),
            nonce: 0,
        },
        txdata,
    };
    let commitment = TxOut {
        value: Amount::ZERO,
        script_pubkey: commitment_script(&block),
    };
    block.txdata[0].output.push(commitment);
    block.header.merkle_root = block.compute_merkle_root().expect("a block has a coinbase");
    let target = block.header.target();
    while block.header.validate_pow(target).is_err() {
        block.header.nonce = block.header.nonce.wrapping_add(1);
    }
    block
}

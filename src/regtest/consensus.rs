//! Regtest consensus rules as Bitcoin Core applies them, plus the few relay-policy rules the
//! mempool enforces.
//!
//! All soft forks are active from the first block, as on Core's regtest: BIP 34 (height in the
//! coinbase), BIP 65/66/112/113, BIP 68 relative lock-times, segwit and taproot. Scripts are
//! checked by Bitcoin Core's own consensus library (`bitcoinconsensus`). That library predates
//! taproot, so taproot key-path spends are checked here with BIP 340 signatures; taproot
//! script-path spends are refused as unsupported rather than accepted unchecked.

use bitcoin::consensus::encode::serialize;
use bitcoin::hashes::Hash;
use bitcoin::key::{Secp256k1, Verification, XOnlyPublicKey};
use bitcoin::secp256k1::Message;
use bitcoin::sighash::{Prevouts, SighashCache};
use bitcoin::{Amount, CompactTarget, OutPoint, Transaction, TxOut, Txid, Weight};
use std::collections::HashSet;

use super::error::{TxRejectReason, TxRejected};

/// Proof-of-work target of every regtest block (`nBits` 0x207fffff).
pub fn regtest_bits() -> CompactTarget {
    CompactTarget::from_consensus(0x207f_ffff)
}
/// Regtest halves the block subsidy every 150 blocks.
pub const SUBSIDY_HALVING_INTERVAL: u32 = 150;
/// A coinbase output can be spent once it has this many confirmations.
pub const COINBASE_MATURITY: u32 = 100;
/// Consensus limit on block weight.
pub const MAX_BLOCK_WEIGHT: Weight = Weight::from_wu(4_000_000);
/// Relay-policy limit on transaction weight.
pub const MAX_STANDARD_TX_WEIGHT: Weight = Weight::from_wu(400_000);
/// Minimum relay fee in satoshis per 1000 virtual bytes (Core's default `-minrelaytxfee`).
pub const MIN_RELAY_FEE_SAT_PER_KVB: u64 = 1_000;
/// Incremental relay fee used by replacements, satoshis per 1000 virtual bytes.
pub const INCREMENTAL_RELAY_FEE_SAT_PER_KVB: u64 = 1_000;

const MAX_MONEY: u64 = 21_000_000 * 100_000_000;
const LOCKTIME_THRESHOLD: u32 = 500_000_000;
const SEQUENCE_FINAL: u32 = 0xffff_ffff;
const SEQUENCE_LOCKTIME_DISABLE_FLAG: u32 = 1 << 31;
const SEQUENCE_LOCKTIME_TYPE_FLAG: u32 = 1 << 22;
const SEQUENCE_LOCKTIME_MASK: u32 = 0x0000_ffff;
const SEQUENCE_LOCKTIME_GRANULARITY: u32 = 9;

// Script verification flags of Core's consensus library (`bitcoinconsensus.h`).
const VERIFY_P2SH: u32 = 1 << 0;
const VERIFY_DERSIG: u32 = 1 << 2;
const VERIFY_NULLDUMMY: u32 = 1 << 4;
const VERIFY_CHECKLOCKTIMEVERIFY: u32 = 1 << 9;
const VERIFY_CHECKSEQUENCEVERIFY: u32 = 1 << 10;
const VERIFY_WITNESS: u32 = 1 << 11;
/// Script flags of every regtest block: all that the consensus library knows (taproot is handled
/// separately).
const SCRIPT_FLAGS: u32 = VERIFY_P2SH
    | VERIFY_DERSIG
    | VERIFY_NULLDUMMY
    | VERIFY_CHECKLOCKTIMEVERIFY
    | VERIFY_CHECKSEQUENCEVERIFY
    | VERIFY_WITNESS;

/// The block subsidy at `height` on regtest.
pub fn block_subsidy(height: u32) -> Amount {
    let halvings = height / SUBSIDY_HALVING_INTERVAL;
    if halvings >= 64 {
        return Amount::ZERO;
    }
    Amount::from_sat((50 * 100_000_000u64) >> halvings)
}

/// An unspent output with the facts validation needs about its creation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Coin {
    /// The output itself.
    pub txout: TxOut,
    /// Height of the block that created it (for mempool outputs: the next block's height).
    pub height: u32,
    /// Whether it was created by a coinbase transaction.
    pub is_coinbase: bool,
}

/// The block a transaction is checked for: its height and the median time past of its parent.
#[derive(Debug, Clone, Copy)]
pub struct BlockContext {
    /// Height of the block the transaction would be in.
    pub height: u32,
    /// Median time past of the previous block (BIP 113 lock-time reference).
    pub prev_median_time: u32,
}

fn reject(tx: &Transaction, reason: TxRejectReason, message: String) -> TxRejected {
    TxRejected::new(tx.compute_txid(), reason, message)
}

/// Context-free checks of Core's `CheckTransaction`, for a non-coinbase transaction.
pub fn check_transaction(tx: &Transaction) -> Result<(), TxRejected> {
    if tx.input.is_empty() {
        return Err(reject(
            tx,
            TxRejectReason::Malformed,
            "it has no inputs".into(),
        ));
    }
    if tx.output.is_empty() {
        return Err(reject(
            tx,
            TxRejectReason::Malformed,
            "it has no outputs".into(),
        ));
    }
    let stripped_weight = tx.base_size() as u64 * 4;
    if stripped_weight > MAX_BLOCK_WEIGHT.to_wu() {
        return Err(reject(
            tx,
            TxRejectReason::Malformed,
            format!(
                "its stripped size {} bytes exceeds the block limit",
                tx.base_size()
            ),
        ));
    }
    let mut total: u64 = 0;
    for (index, output) in tx.output.iter().enumerate() {
        let value = output.value.to_sat();
        if value > MAX_MONEY {
            return Err(reject(
                tx,
                TxRejectReason::Malformed,
                format!("output {index} value {value} sat exceeds the money supply"),
            ));
        }
        total += value;
        if total > MAX_MONEY {
            return Err(reject(
                tx,
                TxRejectReason::Malformed,
                "its outputs together exceed the money supply".into(),
            ));
        }
    }
    let mut seen = HashSet::with_capacity(tx.input.len());
    for (index, input) in tx.input.iter().enumerate() {
        if !seen.insert(input.previous_output) {
            return Err(reject(
                tx,
                TxRejectReason::Malformed,
                format!(
                    "input {index} spends {} a second time",
                    input.previous_output
                ),
            ));
        }
        if input.previous_output == OutPoint::null() {
            return Err(reject(
                tx,
                TxRejectReason::Malformed,
                format!("input {index} has a null previous output (only a coinbase may)"),
            ));
        }
    }
    Ok(())
}

/// Core's `IsFinalTx`: the absolute lock-time is reached or all sequences are final.
pub fn check_final(tx: &Transaction, ctx: &BlockContext) -> Result<(), TxRejected> {
    let lock_time = tx.lock_time.to_consensus_u32();
    if lock_time == 0 {
        return Ok(());
    }
    let (reference, unit) = if lock_time < LOCKTIME_THRESHOLD {
        (ctx.height, "block height")
    } else {
        (ctx.prev_median_time, "median time past")
    };
    if lock_time < reference {
        return Ok(());
    }
    if tx
        .input
        .iter()
        .all(|input| input.sequence.0 == SEQUENCE_FINAL)
    {
        return Ok(());
    }
    Err(reject(
        tx,
        TxRejectReason::NonFinal,
        format!(
            "nLockTime {lock_time} is not below the next block's {unit} {reference} and an input \
             sequence is not final"
        ),
    ))
}

/// Core's BIP 68 `CalculateSequenceLocks` and `EvaluateSequenceLocks`.
///
/// `median_time_at(h)` gives the median time past of the active-chain block at height `h`.
pub fn check_sequence_locks(
    tx: &Transaction,
    spent: &[Coin],
    ctx: &BlockContext,
    median_time_at: impl Fn(u32) -> u32,
) -> Result<(), TxRejected> {
    if tx.version.0 < 2 {
        return Ok(());
    }
    let mut min_height: i64 = -1;
    let mut min_time: i64 = -1;
    let mut binding_input = 0;
    for (index, (input, coin)) in tx.input.iter().zip(spent).enumerate() {
        let sequence = input.sequence.0;
        if sequence & SEQUENCE_LOCKTIME_DISABLE_FLAG != 0 {
            continue;
        }
        let value = (sequence & SEQUENCE_LOCKTIME_MASK) as i64;
        if sequence & SEQUENCE_LOCKTIME_TYPE_FLAG != 0 {
            let coin_time = median_time_at(coin.height.saturating_sub(1)) as i64;
            let lock = coin_time + (value << SEQUENCE_LOCKTIME_GRANULARITY) - 1;
            if lock > min_time {
                min_time = lock;
                binding_input = index;
            }
        } else {
            let lock = coin.height as i64 + value - 1;
            if lock > min_height {
                min_height = lock;
                binding_input = index;
            }
        }
    }
    if min_height >= ctx.height as i64 {
        return Err(reject(
            tx,
            TxRejectReason::NonBip68Final,
            format!(
                "input {binding_input} is locked by nSequence until after height {min_height}; \
                 the next block is {}",
                ctx.height
            ),
        ));
    }
    if min_time >= ctx.prev_median_time as i64 {
        return Err(reject(
            tx,
            TxRejectReason::NonBip68Final,
            format!(
                "input {binding_input} is locked by nSequence until median time past exceeds \
                 {min_time}; it is {}",
                ctx.prev_median_time
            ),
        ));
    }
    Ok(())
}

/// Coinbase maturity and the fee (inputs minus outputs, never negative). Returns the fee.
pub fn check_amounts(
    tx: &Transaction,
    spent: &[Coin],
    ctx: &BlockContext,
) -> Result<Amount, TxRejected> {
    let mut total_in: u64 = 0;
    for (input, coin) in tx.input.iter().zip(spent) {
        if coin.is_coinbase && ctx.height - coin.height < COINBASE_MATURITY {
            return Err(reject(
                tx,
                TxRejectReason::ImmatureCoinbase,
                format!(
                    "input {} spends a coinbase output mined at height {}; it has {} of the {} \
                     confirmations needed in block {}",
                    input.previous_output,
                    coin.height,
                    ctx.height - coin.height,
                    COINBASE_MATURITY,
                    ctx.height
                ),
            ));
        }
        total_in += coin.txout.value.to_sat();
        if total_in > MAX_MONEY {
            return Err(reject(
                tx,
                TxRejectReason::Malformed,
                "its inputs together exceed the money supply".into(),
            ));
        }
    }
    let total_out: u64 = tx.output.iter().map(|output| output.value.to_sat()).sum();
    if total_in < total_out {
        return Err(reject(
            tx,
            TxRejectReason::NegativeFee,
            format!("outputs total {total_out} sat but inputs only {total_in} sat"),
        ));
    }
    Ok(Amount::from_sat(total_in - total_out))
}

/// Verifies every input's script against the output it spends.
pub fn verify_scripts<C: Verification>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    spent: &[Coin],
) -> Result<(), TxRejected> {
    let serialized = serialize(tx);
    let prevouts: Vec<TxOut> = spent.iter().map(|coin| coin.txout.clone()).collect();
    for (index, coin) in spent.iter().enumerate() {
        let script = &coin.txout.script_pubkey;
        if script.is_p2tr() {
            verify_taproot_key_spend(secp, tx, index, &prevouts)?;
            continue;
        }
        script
            .verify_with_flags(index, coin.txout.value, &serialized, SCRIPT_FLAGS)
            .map_err(|error| {
                reject(
                    tx,
                    TxRejectReason::ScriptFailure,
                    format!(
                        "input {index} (spending {}) failed script verification: {error:?}",
                        tx.input[index].previous_output
                    ),
                )
            })?;
    }
    Ok(())
}

fn verify_taproot_key_spend<C: Verification>(
    secp: &Secp256k1<C>,
    tx: &Transaction,
    index: usize,
    prevouts: &[TxOut],
) -> Result<(), TxRejected> {
    let fail = |why: String| {
        reject(
            tx,
            TxRejectReason::ScriptFailure,
            format!(
                "input {index} (spending taproot output {}): {why}",
                tx.input[index].previous_output
            ),
        )
    };
    let witness = &tx.input[index].witness;
    let elements: Vec<&[u8]> = witness.iter().collect();
    let has_annex = elements.len() >= 2
        && elements
            .last()
            .is_some_and(|last| last.first() == Some(&0x50));
    if has_annex {
        return Err(reject(
            tx,
            TxRejectReason::NonStandard,
            format!("input {index} carries a taproot annex, which this peer does not verify"),
        ));
    }
    match elements.len() {
        0 => return Err(fail("empty witness".into())),
        1 => {}
        _ => {
            return Err(reject(
                tx,
                TxRejectReason::NonStandard,
                format!(
                    "input {index} is a taproot script-path spend, which this peer does not verify"
                ),
            ))
        }
    }
    let signature = bitcoin::taproot::Signature::from_slice(elements[0])
        .map_err(|error| fail(format!("malformed signature: {error}")))?;
    let output_key =
        XOnlyPublicKey::from_slice(&prevouts[index].script_pubkey.as_bytes()[2..34])
            .map_err(|error| fail(format!("output key is not a valid x-only key: {error}")))?;
    let sighash = SighashCache::new(tx)
        .taproot_key_spend_signature_hash(index, &Prevouts::All(prevouts), signature.sighash_type)
        .map_err(|error| fail(format!("cannot compute the signature hash: {error}")))?;
    let message = Message::from_digest(sighash.to_byte_array());
    secp.verify_schnorr(&signature.signature, &message, &output_key)
        .map_err(|_| fail("signature does not verify".into()))
}

/// Relay policy applied to mempool transactions (not to blocks): weight, dust, spending unknown
/// witness versions.
pub fn check_standard(tx: &Transaction, spent: &[Coin]) -> Result<(), TxRejected> {
    let weight = tx.weight();
    if weight > MAX_STANDARD_TX_WEIGHT {
        return Err(reject(
            tx,
            TxRejectReason::NonStandard,
            format!(
                "weight {} exceeds the relay limit of {}",
                weight.to_wu(),
                MAX_STANDARD_TX_WEIGHT.to_wu()
            ),
        ));
    }
    for (index, output) in tx.output.iter().enumerate() {
        let threshold = output.script_pubkey.minimal_non_dust();
        if output.value < threshold {
            return Err(reject(
                tx,
                TxRejectReason::Dust,
                format!(
                    "output {index} pays {} sat, below the dust threshold of {} sat for its script",
                    output.value.to_sat(),
                    threshold.to_sat()
                ),
            ));
        }
    }
    for (index, coin) in spent.iter().enumerate() {
        if let Some(version) = coin.txout.script_pubkey.witness_version() {
            if version.to_num() > 1 {
                return Err(reject(
                    tx,
                    TxRejectReason::NonStandard,
                    format!(
                        "input {index} spends a witness version {} output",
                        version.to_num()
                    ),
                ));
            }
        }
    }
    Ok(())
}

/// The transaction's virtual size as Core computes it for fee rates.
pub fn vsize(tx: &Transaction) -> u64 {
    tx.weight().to_vbytes_ceil()
}

/// An all-zero txid, used where a rejection concerns no single transaction.
pub fn no_txid() -> Txid {
    Txid::all_zeros()
}

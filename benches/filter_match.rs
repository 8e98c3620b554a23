//! Filter matching: the time to check one BIP 158 filter of a block with many outputs against
//! 10, 100 and 1,000 watched scripts with `filter_checks::filter_matches`, and how that time grows
//! with the number of scripts.
//!
//! None of the watched scripts is in the block, so every check walks the whole filter (a match
//! would stop early). Times are medians of several batches measured in this run.
//!
//! `LIGHTFILTER_BENCH_FILTER_OUTPUTS` sets the number of outputs in the block (default 5,000).

#[path = "support/report.rs"]
mod report;

use std::hint::black_box;
use std::time::{Duration, Instant};

use bitcoin::absolute::LockTime;
use bitcoin::bip158::BlockFilter;
use bitcoin::block::{Header, Version as BlockVersion};
use bitcoin::hashes::Hash;
use bitcoin::transaction::Version;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, OutPoint, ScriptBuf, Sequence, Transaction, TxIn,
    TxMerkleNode, TxOut, WScriptHash, Witness,
};
use lightfilter::chain::filter_checks::filter_matches;
use lightfilter::chain::WatchSet;
use report::{env_number, Row, Table};

/// Batches per size; the median batch is reported.
const BATCHES: usize = 9;
/// Each batch runs at least this long.
const BATCH_TIME: Duration = Duration::from_millis(150);

/// A P2WSH script derived from `tag`, distinct for every tag.
fn script(tag: u64) -> ScriptBuf {
    let mut seed = [0u8; 32];
    seed[..8].copy_from_slice(&tag.to_le_bytes());
    ScriptBuf::new_p2wsh(&WScriptHash::hash(&seed))
}

/// A block whose second transaction pays `outputs` distinct scripts.
fn block_with_outputs(outputs: u64) -> Block {
    let coinbase = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(vec![1, 1]),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: vec![TxOut {
            value: Amount::from_sat(50_000),
            script_pubkey: script(u64::MAX),
        }],
    };
    let fan_out = Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(coinbase.compute_txid(), 0),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::MAX,
            witness: Witness::new(),
        }],
        output: (0..outputs)
            .map(|tag| TxOut {
                value: Amount::from_sat(1_000),
                script_pubkey: script(tag),
            })
            .collect(),
    };
    let mut block = Block {
        header: Header {
            version: BlockVersion::TWO,
            prev_blockhash: BlockHash::all_zeros(),
            merkle_root: TxMerkleNode::all_zeros(),
            time: 0,
            bits: CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata: vec![coinbase, fan_out],
    };
    block.header.merkle_root = block.compute_merkle_root().expect("transactions");
    block
}

/// Median time of one `filter_matches` call against `scripts` watched scripts.
fn time_per_filter(filter: &BlockFilter, hash: &BlockHash, scripts: u64) -> Duration {
    let watch = WatchSet::new();
    let watched: Vec<ScriptBuf> = (0..scripts).map(|i| script(1_000_000 + i)).collect();
    watch.add_scripts(watched.iter().map(|s| s.as_script()));
    // Calibrate the batch size, then warm up.
    let mut per_batch = 1u32;
    loop {
        let started = Instant::now();
        for _ in 0..per_batch {
            black_box(filter_matches(&watch, filter, hash).expect("filter decodes"));
        }
        if started.elapsed() >= BATCH_TIME {
            break;
        }
        per_batch *= 2;
    }
    let mut samples: Vec<Duration> = (0..BATCHES)
        .map(|_| {
            let started = Instant::now();
            for _ in 0..per_batch {
                let (matched, _) = filter_matches(&watch, filter, hash).expect("filter decodes");
                assert!(!matched, "no watched script is in the block");
            }
            started.elapsed() / per_batch
        })
        .collect();
    samples.sort();
    samples[BATCHES / 2]
}

fn main() {
    let mut table = Table::new("filter matching");
    let outputs = env_number("LIGHTFILTER_BENCH_FILTER_OUTPUTS", 5_000);
    let block = block_with_outputs(outputs);
    let filter =
        BlockFilter::new_script_filter(&block, |_| Ok(script(u64::MAX))).expect("filter builds");
    let hash = block.block_hash();
    // Sanity: a script of the block matches.
    let probe = WatchSet::new();
    probe.add_scripts([script(outputs / 2).as_script()]);
    assert!(filter_matches(&probe, &filter, &hash).unwrap().0);

    println!(
        "filter_match: one filter of {} bytes ({} outputs, {} bytes of block)",
        filter.content.len(),
        outputs,
        bitcoin::consensus::serialize(&block).len()
    );
    let mut times = Vec::new();
    for scripts in [10u64, 100, 1_000] {
        let per_filter = time_per_filter(&filter, &hash, scripts);
        times.push(per_filter);
        table.push(Row::info(
            format!("match one filter, {scripts} watched scripts"),
            format!("{:.1} µs", per_filter.as_secs_f64() * 1e6),
        ));
    }
    let ratio = times[2].as_secs_f64() / times[0].as_secs_f64();
    table.push(Row::goal(
        "t(1000 scripts) / t(10 scripts)",
        format!("{ratio:.2}"),
        "≤ 100 (linear or better)",
        ratio <= 100.0,
    ));
    table.print();
}

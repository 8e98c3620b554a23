//! First start: a fresh `lightfilter daemon` that starts its header chain at a checkpoint 200
//! blocks below the tip, against a fresh daemon that starts at genesis, on the same regtest
//! chain in one run: bytes received from the peer (the daemon's own `sync.bytes_received`),
//! time from launch to ready (the control API reports the node running and synced to the
//! tip) and peak resident memory, each as checkpoint / genesis.
//!
//! Then, on a second chain with many mainnet-shaped blocks (about 1 MB, whose BIP 158 filters
//! are about 20 kB) above a checkpoint: the bytes the peer sent to a fresh daemon started at
//! that checkpoint, over the filters of those blocks (it needs their headers only), and to a
//! daemon restoring a wallet whose birthday lies half-way, over the filters from the birthday
//! on (it needs those, and headers below). Both figures hold everything the peer sent, the
//! one recent block each downloads for its first fee sample included.
//!
//! `LIGHTFILTER_BENCH_FIRST_START_BLOCKS` sets the first chain's length (default 100,000),
//! `LIGHTFILTER_BENCH_FIRST_START_LARGE_BLOCKS` the number of large blocks (default 1,000)
//! and `LIGHTFILTER_BENCH_BLOCK_BYTES` their size (default 1,000,000).

#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "support/large_blocks.rs"]
mod large_blocks;
#[path = "../tests/common/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use bitcoin::ScriptBuf;
use cli::{Chain, Daemon, TIMEOUT};
use large_blocks::LargeBlocks;
use proc::status_kb;
use report::{env_number, Row, Table};

/// Blocks between the checkpoint and the tip.
const CHECKPOINT_DEPTH: u32 = 200;

/// What one first start cost.
struct Start {
    bytes: u64,
    ready: Duration,
    peak_kb: u64,
}

/// Launches a daemon on a fresh data directory with `extra` flags and measures its first
/// start to ready.
fn first_start(name: &'static str, chain: &Chain, extra: &[&str]) -> Start {
    let tip = u64::from(chain.height());
    let started = Instant::now();
    let mut daemon = Daemon::spawn(name, chain, extra);
    daemon.wait_api();
    loop {
        let info = daemon.json(&["getinfo"]);
        if info["state"] == "running" && info["block_height"].as_u64() == Some(tip) {
            let start = Start {
                bytes: info["sync"]["bytes_received"].as_u64().expect("bytes"),
                ready: started.elapsed(),
                peak_kb: status_kb(&daemon.pid().to_string(), "VmHWM:"),
            };
            assert!(daemon.cli(&["stop"]).success, "the daemon stops");
            assert!(daemon.wait_exit(), "the daemon stopped cleanly");
            return start;
        }
        assert!(started.elapsed() < TIMEOUT, "{name} was not ready in time");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// What the peer sent one daemon's first start, to ready.
struct Sent {
    /// Bytes the peer wrote to it.
    bytes: u64,
    /// The daemon's own count (payload bytes of headers, filter headers, filters, blocks).
    received: u64,
    /// Compact filters sent, and how many of them were of blocks below `below`.
    filters: u64,
    filters_below: u64,
    /// Blocks sent (fee samples, blocks paying the wallet), and their bytes.
    blocks: usize,
    block_bytes: u64,
}

/// Launches a daemon on `dir` with `extra` flags, waits until it is ready at the tip and
/// counts what the peer sent it; `below` is a height to count the filters under.
fn first_start_sent(
    name: &'static str,
    chain: &Chain,
    dir: tempfile::TempDir,
    extra: &[&str],
    below: u32,
) -> Sent {
    let tip = u64::from(chain.height());
    chain.peer.reset_stats();
    let started = Instant::now();
    let mut daemon = Daemon::spawn_in(name, dir, chain, extra);
    daemon.wait_api();
    loop {
        let info = daemon.json(&["getinfo"]);
        if info["state"] == "running" && info["block_height"].as_u64() == Some(tip) {
            // Let a fee sample asked for at the tip land.
            std::thread::sleep(Duration::from_secs(2));
            let info = daemon.json(&["getinfo"]);
            let stats = chain.peer.stats();
            assert!(daemon.cli(&["stop"]).success, "the daemon stops");
            assert!(daemon.wait_exit(), "the daemon stopped cleanly");
            return Sent {
                bytes: stats.bytes_sent,
                received: info["sync"]["bytes_received"].as_u64().expect("bytes"),
                filters: stats.cfilters_served,
                filters_below: stats
                    .cfilters_by_height
                    .range(..below)
                    .map(|(_, n)| u64::from(*n))
                    .sum(),
                blocks: stats.blocks_served.len(),
                block_bytes: stats
                    .blocks_served
                    .iter()
                    .map(|(hash, _)| chain.peer.block(hash).map_or(0, |b| b.total_size() as u64))
                    .sum(),
            };
        }
        assert!(
            started.elapsed() < TIMEOUT * 5,
            "{name} was not ready in time"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn data_dir(name: &str) -> tempfile::TempDir {
    tempfile::Builder::new()
        .prefix(&format!("lightfilter-{name}-"))
        .tempdir()
        .expect("a data directory")
}

/// The rows of fresh and restored first starts above many mainnet-shaped blocks.
fn large_blocks(table: &mut Table) {
    let count = env_number("LIGHTFILTER_BENCH_FIRST_START_LARGE_BLOCKS", 1_000) as u32;
    let block_bytes = env_number("LIGHTFILTER_BENCH_BLOCK_BYTES", 1_000_000);
    let chain = Chain::start();
    let built = Instant::now();
    let mut blocks = LargeBlocks::new(&chain.peer, block_bytes);
    let start = chain.height();
    let start_hash = chain.peer.block_at(start).expect("block").block_hash();
    let checkpoint = format!("{start}:{start_hash}");
    for _ in 0..count {
        blocks.mine_one(None);
    }
    let tip = chain.height();
    let birthday = start + 1 + count / 2;
    let filter_bytes = |from: u32| -> u64 {
        (from..=tip)
            .map(|height| {
                let hash = chain.peer.block_at(height).expect("block").block_hash();
                chain.peer.filter(&hash).expect("filter").content.len() as u64
            })
            .sum()
    };
    let block_bytes_total: u64 = (start + 1..=tip)
        .map(|h| chain.peer.block_at(h).expect("block").total_size() as u64)
        .sum();
    let all_filters = filter_bytes(start + 1);
    let from_birthday = filter_bytes(birthday);
    println!(
        "built {count} blocks of {:.0} kB on average above block {start} in {:.0} s; their \
         filters: {all_filters} B ({:.1} kB each)",
        block_bytes_total as f64 / f64::from(count) / 1e3,
        built.elapsed().as_secs_f64(),
        all_filters as f64 / f64::from(count) / 1e3
    );

    let fresh = first_start_sent(
        "first-start-fresh",
        &chain,
        data_dir("first-start-fresh"),
        &["--checkpoint", &checkpoint],
        tip + 1,
    );
    // A restore needs a seed of its own; which one does not change what it fetches.
    let restore_dir = data_dir("first-start-restore");
    std::fs::write(restore_dir.path().join("seed"), [0x42u8; 32]).expect("a seed");
    let birthday_flag = birthday.to_string();
    let restore = first_start_sent(
        "first-start-restore",
        &chain,
        restore_dir,
        &[
            "--checkpoint",
            &checkpoint,
            "--wallet-birthday",
            &birthday_flag,
        ],
        birthday,
    );

    table.push(Row::info(
        format!(
            "large blocks: {count} above the checkpoint (~{} kB each), their filters",
            block_bytes_total / u64::from(count) / 1_000
        ),
        format!(
            "{:.2} MB ({:.1} kB a block)",
            all_filters as f64 / 1e6,
            all_filters as f64 / f64::from(count) / 1e3
        ),
    ));
    table.push(Row::info(
        "  fresh start: sent by the peer (its own count) / filters / blocks",
        format!(
            "{} B ({} B) / {} filters, {} of blocks up to the tip / {} block(s) of {} B",
            fresh.bytes,
            fresh.received,
            fresh.filters,
            fresh.filters_below,
            fresh.blocks,
            fresh.block_bytes
        ),
    ));
    let fresh_ratio = fresh.bytes as f64 / all_filters as f64;
    table.push(Row::goal(
        "  fresh start: bytes sent / filters of the blocks above its start point",
        format!("{:.2} %", fresh_ratio * 100.0),
        "≤ 5 %",
        fresh_ratio <= 0.05,
    ));
    table.push(Row::info(
        format!(
            "  restore, birthday {birthday}: sent by the peer (its own count) / filters / blocks"
        ),
        format!(
            "{} B ({} B) / {} filters, {} below the birthday / {} block(s) of {} B",
            restore.bytes,
            restore.received,
            restore.filters,
            restore.filters_below,
            restore.blocks,
            restore.block_bytes
        ),
    ));
    let restore_ratio = restore.bytes as f64 / from_birthday as f64;
    table.push(Row::goal(
        "  restore: bytes sent / filters from the birthday on",
        format!("{restore_ratio:.3}"),
        "≤ 1.1",
        restore_ratio <= 1.1,
    ));
}

fn main() {
    let mut table = Table::new("first start");
    let blocks = env_number("LIGHTFILTER_BENCH_FIRST_START_BLOCKS", 100_000) as u32;
    let chain = Chain::start();
    chain.peer.mine(blocks, &ScriptBuf::new_op_return([1]));
    let height = chain.height() - CHECKPOINT_DEPTH;
    let hash = chain.peer.block_at(height).expect("block").block_hash();
    let checkpoint = format!("{height}:{hash}");

    let genesis = first_start("first-start-genesis", &chain, &[]);
    let from_checkpoint = first_start(
        "first-start-checkpoint",
        &chain,
        &["--checkpoint", &checkpoint],
    );
    let tip = chain.height();
    table.push(Row::info(
        format!(
            "bytes received, from genesis / from {CHECKPOINT_DEPTH} below the tip ({tip} blocks)"
        ),
        format!("{} / {}", genesis.bytes, from_checkpoint.bytes),
    ));
    let bytes = from_checkpoint.bytes as f64 / genesis.bytes.max(1) as f64;
    table.push(Row::goal(
        "bytes received: checkpoint / genesis",
        format!("{:.2} %", bytes * 100.0),
        "≤ 5 %",
        bytes <= 0.05,
    ));
    table.push(Row::info(
        "time to ready, from genesis / from the checkpoint",
        format!(
            "{:.2} s / {:.2} s",
            genesis.ready.as_secs_f64(),
            from_checkpoint.ready.as_secs_f64()
        ),
    ));
    table.push(Row::info(
        "time to ready: checkpoint / genesis",
        format!(
            "{:.3}",
            from_checkpoint.ready.as_secs_f64() / genesis.ready.as_secs_f64()
        ),
    ));
    table.push(Row::info(
        "peak resident memory, from genesis / from the checkpoint",
        format!(
            "{:.1} MB / {:.1} MB",
            genesis.peak_kb as f64 / 1024.0,
            from_checkpoint.peak_kb as f64 / 1024.0
        ),
    ));
    table.push(Row::info(
        "peak resident memory: checkpoint / genesis",
        format!(
            "{:.2}",
            from_checkpoint.peak_kb as f64 / genesis.peak_kb.max(1) as f64
        ),
    ));
    drop(chain);
    large_blocks(&mut table);
    table.print();
}

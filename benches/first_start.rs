//! First start: a fresh `lightfilter daemon` that starts its header chain at a checkpoint 200
//! blocks below the tip, against a fresh daemon that starts at genesis, on the same regtest
//! chain in one run: bytes received from the peer (the daemon's own `sync.bytes_received`),
//! time from launch to ready (the control API reports the node running and synced to the
//! tip) and peak resident memory, each as checkpoint / genesis.
//!
//! `LIGHTFILTER_BENCH_FIRST_START_BLOCKS` sets the chain length (default 100,000).

#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "../tests/common/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::time::{Duration, Instant};

use bitcoin::ScriptBuf;
use cli::{Chain, Daemon, TIMEOUT};
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
    table.print();
}

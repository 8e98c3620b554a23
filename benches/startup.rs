//! Start-up: a node's start to ready (listeners synced, operations answering) on a long regtest
//! chain, fresh (syncing every header and filter) against a restart of the same node (from its
//! stored chain), measured in one run. The goal is a restart time that does not grow with the
//! chain.
//!
//! `LIGHTFILTER_BENCH_STARTUP_BLOCKS` sets the chain length (default 100,000).

#[path = "../tests/support/node_harness.rs"]
mod harness;
#[path = "support/report.rs"]
mod report;

use std::time::Instant;

use harness::*;
use report::{env_number, Row, Table};

fn main() {
    let blocks = env_number("LIGHTFILTER_BENCH_STARTUP_BLOCKS", 100_000) as u32;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Table::new("start-up to ready");
    runtime.block_on(async {
        let peer = start_peer().await;
        peer.mine(blocks, &miner());
        let dir = tempfile::tempdir().unwrap();

        let started = Instant::now();
        let node = start_node(&peer, dir.path()).await;
        synced(&peer, &node).await;
        let fresh = started.elapsed();
        node.stop().await;
        drop(node);

        let started = Instant::now();
        let node = start_node(&peer, dir.path()).await;
        synced(&peer, &node).await;
        let restart = started.elapsed();
        node.stop().await;

        let ratio = restart.as_secs_f64() / fresh.as_secs_f64();
        table.push(Row::info(
            format!("fresh start on a {} block chain", peer.tip().0),
            format!("{:.2} s", fresh.as_secs_f64()),
        ));
        table.push(Row::info(
            "restart of the same node",
            format!("{:.2} s", restart.as_secs_f64()),
        ));
        table.push(Row::goal(
            "restart / fresh start",
            format!("{ratio:.3}"),
            "small constant, not proportional to chain length (≤ 0.1)",
            ratio <= 0.1,
        ));
    });
    table.print();
}

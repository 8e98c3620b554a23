//! A day on a public network: the bytes a synced, idle node with a channel downloads from its
//! Bitcoin peers over 144 blocks of about 1.5 MB (`LIGHTFILTER_BENCH_DAY_BLOCKS`,
//! `LIGHTFILTER_BENCH_BLOCK_BYTES`), mined one at a time on the embedded regtest peer, against
//! the BIP 158 filters of those blocks alone.
//!
//! Two daemons hold a channel with each other and follow the same blocks: one samples fees as
//! a public-network node does by default (`fee_sample_interval = 144`: once a day while idle),
//! the other with an hourly sample (`fee_sample_interval = 6`), the node's earlier policy, for
//! comparison. Each one's figure is its own `sync.bytes_received` (headers, filter headers,
//! filters and blocks). Lightning gossip between the two is not in the figures (it is a
//! channel announcement and its updates here; on a public network it depends on the peers).

#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "support/large_blocks.rs"]
mod large_blocks;
#[path = "support/report.rs"]
mod report;

use bitcoin::Amount;
use cli::{Chain, Daemon};
use large_blocks::LargeBlocks;
use report::{env_number, Row, Table};

/// Fee sample interval of a public-network node, in blocks.
const DEFAULT_INTERVAL: u32 = 144;
/// The earlier policy: a sample an hour.
const HOURLY_INTERVAL: u32 = 6;

fn bytes_received(daemon: &Daemon) -> u64 {
    daemon.json(&["getinfo"])["sync"]["bytes_received"]
        .as_u64()
        .expect("bytes_received")
}

fn main() {
    let mut table = Table::new("a day on a public network");
    let day = env_number("LIGHTFILTER_BENCH_DAY_BLOCKS", 144) as u32;
    let block_bytes = env_number("LIGHTFILTER_BENCH_BLOCK_BYTES", 1_500_000);
    let chain = Chain::start();
    let mut blocks = LargeBlocks::new(&chain.peer, block_bytes);

    let daily = Daemon::start_configured(
        "day-daily",
        &chain,
        &format!("fee_sample_interval = {DEFAULT_INTERVAL}\n"),
    );
    let hourly = Daemon::start_configured(
        "day-hourly",
        &chain,
        &format!("fee_sample_interval = {HOURLY_INTERVAL}\n"),
    );
    daily.fund(&chain, Amount::from_sat(1_000_000));
    for daemon in [&daily, &hourly] {
        daemon.wait_synced_to(chain.height());
    }
    daily.open_usable_channel(&chain, &hourly, 500_000);
    // The day starts once both saw the channel confirmed and nothing is pending (the node
    // looks for pending fee-sensitive work every 20 s).
    for daemon in [&daily, &hourly] {
        daemon.wait_synced_to(chain.height());
    }
    std::thread::sleep(std::time::Duration::from_secs(25));
    let first = chain.height() + 1;
    let before = [bytes_received(&daily), bytes_received(&hourly)];

    for _ in 0..day {
        blocks.mine_one(None);
        let tip = chain.height();
        for daemon in [&daily, &hourly] {
            daemon.wait_synced_to(tip);
        }
    }
    // Let fee samples of the last tip land.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = [
        bytes_received(&daily) - before[0],
        bytes_received(&hourly) - before[1],
    ];
    let last = chain.height();
    let mut filter_bytes = 0u64;
    let mut block_sizes = 0u64;
    for height in first..=last {
        let block = chain.peer.block_at(height).expect("block");
        block_sizes += block.total_size() as u64;
        let filter = chain.peer.filter(&block.block_hash()).expect("filter");
        filter_bytes += filter.content.len() as u64;
    }
    let mb = |bytes: u64| format!("{:.2} MB", bytes as f64 / 1e6);
    table.push(Row::info(
        format!(
            "{day} blocks of ~{} kB",
            block_sizes / u64::from(day.max(1)) / 1_000
        ),
        mb(block_sizes),
    ));
    table.push(Row::info("their BIP 158 filters alone", mb(filter_bytes)));
    table.push(Row::info(
        format!("received, sampling fees once per {DEFAULT_INTERVAL} blocks (default) / hourly"),
        format!("{} / {}", mb(used[0]), mb(used[1])),
    ));
    let daily_ratio = used[0] as f64 / filter_bytes.max(1) as f64;
    let hourly_ratio = used[1] as f64 / filter_bytes.max(1) as f64;
    table.push(Row::info(
        "received with hourly fee samples / filters alone",
        format!("{hourly_ratio:.2}"),
    ));
    table.push(Row::goal(
        "received by default / filters alone",
        format!("{daily_ratio:.2}"),
        "≤ 2",
        daily_ratio <= 2.0,
    ));
    table.print();
}

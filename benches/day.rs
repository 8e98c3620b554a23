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
//!
//! Two more daemons show what decoy blocks cost: both are paid on chain a few times during
//! the day (`LIGHTFILTER_BENCH_DAY_MATCHES`, each payment in a block of its own), one fetching
//! each matching block alone (`decoy_blocks = 0`), the other with two decoys (the public
//! networks' default); the cost is the second one's `sync.decoy_bytes`, and the difference
//! between the two, against the filters.

#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "support/large_blocks.rs"]
mod large_blocks;
#[path = "support/report.rs"]
mod report;

use bitcoin::Amount;
use cli::{regtest_script, Chain, Daemon};
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

fn decoy_bytes(daemon: &Daemon) -> u64 {
    daemon.json(&["getinfo"])["sync"]["decoy_bytes"]
        .as_u64()
        .expect("decoy_bytes")
}

/// Decoys per matching block on a public network by default.
const DEFAULT_DECOYS: u32 = 2;

fn main() {
    let mut table = Table::new("a day on a public network");
    let day = env_number("LIGHTFILTER_BENCH_DAY_BLOCKS", 144) as u32;
    let matches = (env_number("LIGHTFILTER_BENCH_DAY_MATCHES", 4) as u32).clamp(1, day / 2);
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
    let alone = Daemon::start_configured(
        "day-alone",
        &chain,
        &format!("fee_sample_interval = {DEFAULT_INTERVAL}\ndecoy_blocks = 0\n"),
    );
    let decoyed = Daemon::start_configured(
        "day-decoys",
        &chain,
        &format!("fee_sample_interval = {DEFAULT_INTERVAL}\ndecoy_blocks = {DEFAULT_DECOYS}\n"),
    );
    let paid = [
        regtest_script(&alone.new_address()),
        regtest_script(&decoyed.new_address()),
    ];
    daily.fund(&chain, Amount::from_sat(1_000_000));
    for daemon in [&daily, &hourly, &alone, &decoyed] {
        daemon.wait_synced_to(chain.height());
    }
    daily.open_usable_channel(&chain, &hourly, 500_000);
    // The day starts once both saw the channel confirmed and nothing is pending (the node
    // looks for pending fee-sensitive work every 20 s).
    for daemon in [&daily, &hourly, &alone, &decoyed] {
        daemon.wait_synced_to(chain.height());
    }
    std::thread::sleep(std::time::Duration::from_secs(25));
    let first = chain.height() + 1;
    let before = [bytes_received(&daily), bytes_received(&hourly)];
    let before_matches = [bytes_received(&alone), bytes_received(&decoyed)];
    let decoys_before = decoy_bytes(&decoyed);

    // The payments to the last two: one to each in consecutive blocks, spread over the day.
    let every = day / matches;
    for n in 0..day {
        let pays = match (n % every, n / every < matches) {
            (0, true) => Some(&paid[0]),
            (1, true) => Some(&paid[1]),
            _ => None,
        };
        blocks.mine_one(pays);
        let tip = chain.height();
        for daemon in [&daily, &hourly, &alone, &decoyed] {
            daemon.wait_synced_to(tip);
        }
    }
    // Let fee samples of the last tip land.
    std::thread::sleep(std::time::Duration::from_secs(2));
    let used = [
        bytes_received(&daily) - before[0],
        bytes_received(&hourly) - before[1],
    ];
    let with_matches = [
        bytes_received(&alone) - before_matches[0],
        bytes_received(&decoyed) - before_matches[1],
    ];
    let decoys = decoy_bytes(&decoyed) - decoys_before;
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
    table.push(Row::info(
        format!("received, paid {matches} times: each match alone / with {DEFAULT_DECOYS} decoys"),
        format!("{} / {}", mb(with_matches[0]), mb(with_matches[1])),
    ));
    table.push(Row::info(
        format!("decoy blocks received ({DEFAULT_DECOYS} per match)"),
        mb(decoys),
    ));
    table.push(Row::info(
        "decoy blocks / filters alone",
        format!("{:.2}", decoys as f64 / filter_bytes.max(1) as f64),
    ));
    table.push(Row::info(
        "received with decoys / without, same payments",
        format!(
            "{:.2}",
            with_matches[1] as f64 / with_matches[0].max(1) as f64
        ),
    ));
    table.print();
}

//! Memory: how much the resident memory of a `lightfilter daemon` grows with the length of the
//! chain it syncs, against the growth of a bare `bip157` client syncing the same chains from the
//! same peer in the same run; and the daemon's resident memory when synced and idle with ten
//! channels, right after the sync and after a restart (what the sync left behind against what
//! the node needs).
//!
//! A fresh daemon syncs headers only (its wallet starts at the tip), so the goal compares it
//! with a bare client syncing headers only too; the growth of a bare client that fetches
//! every filter is printed beside it.
//!
//! Both run (each in a process of its own, from fresh state) on a short chain of 1,000 blocks
//! and again on that chain extended by `LIGHTFILTER_BENCH_MEMORY_BLOCKS` blocks (default
//! 100,000). Growth is peak(long) − peak(short), so what both hold regardless of the chain (code,
//! runtime, the daemon's Lightning stack and stores) cancels out. The bare client runs as this
//! benchmark's own executable with `--bare-client ADDR HEIGHT`.

#[path = "support/channels.rs"]
mod channels;
#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "../tests/common/proc.rs"]
mod proc;
#[path = "support/report.rs"]
mod report;

use std::process::Command;
use std::time::Duration;

use bitcoin::{Network, ScriptBuf};
use channels::{open_channels, usable_channels, CHANNELS};
use cli::{wait_until, Chain, Daemon};
use proc::status_kb;
use report::{env_number, Row, Table};

/// Length of the short chain, faucet blocks included.
const SHORT_CHAIN: u32 = 1_000;

/// How long the daemon is left alone before its idle memory is read.
const IDLE: Duration = Duration::from_secs(5);

fn mb(kb: i64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// What a bare client syncs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BareJob {
    /// Headers only, as a fresh daemon does (its wallet starts at the tip).
    HeadersOnly,
    /// Headers, filter headers and every filter.
    Filters,
}

impl BareJob {
    fn arg(self) -> &'static str {
        match self {
            BareJob::HeadersOnly => "headers-only",
            BareJob::Filters => "filters",
        }
    }
}

/// Runs a bare bip157 client doing `job` to `height` and prints its peak resident memory in kB.
fn bare_client(addr: &str, height: u32, job: BareJob) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let builder = bip157::Builder::new(Network::Regtest)
            .add_peer(addr)
            .whitelist_only()
            .required_peers(1)
            .fetch_witness_data();
        let builder = match job {
            BareJob::HeadersOnly => builder.headers_only_sync(),
            BareJob::Filters => builder,
        };
        let (node, client) = builder.build();
        tokio::spawn(node.run());
        let bip157::Client {
            requester,
            mut event_rx,
            ..
        } = client;
        while let Some(event) = event_rx.recv().await {
            if let bip157::Event::FiltersSynced(update) = event {
                if update.tip().height >= height {
                    break;
                }
            }
        }
        let _ = requester.shutdown();
    });
    println!("{}", status_kb("self", "VmHWM:"));
}

/// Peak resident memory (kB) of a bare client, in a process of its own, doing `job` on
/// `chain`.
fn bare_client_peak(chain: &Chain, job: BareJob) -> i64 {
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--bare-client",
            &chain.addr().to_string(),
            &chain.height().to_string(),
            job.arg(),
        ])
        .output()
        .expect("bare client runs");
    String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("bare client prints its peak memory")
}

/// Starts a daemon on a fresh data directory, waits until it is synced to the tip of `chain`
/// and returns it with its peak resident memory (kB) so far.
fn synced_daemon(name: &'static str, chain: &Chain) -> (Daemon, i64) {
    let daemon = Daemon::start(name, chain);
    daemon.wait_synced_to(chain.height());
    let peak = status_kb(&daemon.pid().to_string(), "VmHWM:") as i64;
    (daemon, peak)
}

/// Resident memory (kB) of `daemon` after it has been left alone for [`IDLE`].
fn idle_rss(daemon: &Daemon) -> i64 {
    std::thread::sleep(IDLE);
    status_kb(&daemon.pid().to_string(), "VmRSS:") as i64
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--bare-client") {
        let job = if args[i + 3] == BareJob::HeadersOnly.arg() {
            BareJob::HeadersOnly
        } else {
            BareJob::Filters
        };
        bare_client(&args[i + 1], args[i + 2].parse().unwrap(), job);
        return;
    }
    let mut table = Table::new("memory");
    let extension = env_number("LIGHTFILTER_BENCH_MEMORY_BLOCKS", 100_000) as u32;
    let miner = ScriptBuf::new_op_return([1]);
    let chain = Chain::start();
    chain
        .peer
        .mine(SHORT_CHAIN.saturating_sub(chain.height()), &miner);
    let short = chain.height();
    let bare_short = bare_client_peak(&chain, BareJob::HeadersOnly);
    let bare_filters_short = bare_client_peak(&chain, BareJob::Filters);
    let (daemon, daemon_short) = synced_daemon("daemon-short-chain", &chain);
    drop(daemon);

    chain.peer.mine(extension, &miner);
    let long = chain.height();
    let bare_long = bare_client_peak(&chain, BareJob::HeadersOnly);
    let bare_filters_long = bare_client_peak(&chain, BareJob::Filters);
    let (daemon, daemon_long) = synced_daemon("daemon-long-chain", &chain);
    let idle_without_channels = idle_rss(&daemon);

    let _counterparties = open_channels(&chain, &daemon);
    let idle_with_channels = idle_rss(&daemon);

    // The same node restarted: what it holds for its channels without what syncing the chain
    // left behind.
    let mut daemon = daemon;
    assert!(daemon.cli(&["stop"]).success, "the daemon stops");
    assert!(daemon.wait_exit(), "the daemon stopped cleanly");
    daemon.restart(&chain, &[]);
    daemon.wait_synced_to(chain.height());
    wait_until("the channels usable after the restart", || {
        usable_channels(&daemon) == CHANNELS
    });
    let idle_after_restart = idle_rss(&daemon);

    let (bare_growth, daemon_growth) = (bare_long - bare_short, daemon_long - daemon_short);
    table.push(Row::info(
        format!("bare bip157 client syncing headers only, peak resident memory on {short} / {long} blocks"),
        format!("{} / {}", mb(bare_short), mb(bare_long)),
    ));
    table.push(Row::info(
        format!("bare bip157 client syncing every filter too, on {short} / {long} blocks"),
        format!("{} / {}", mb(bare_filters_short), mb(bare_filters_long)),
    ));
    table.push(Row::info(
        format!("lightfilter daemon, peak resident memory on {short} / {long} blocks"),
        format!("{} / {}", mb(daemon_short), mb(daemon_long)),
    ));
    table.push(Row::info(
        format!(
            "growth over {} blocks: bare client (headers only) / daemon",
            long - short
        ),
        format!("{} / {}", mb(bare_growth), mb(daemon_growth)),
    ));
    let bare_filters_growth = bare_filters_long - bare_filters_short;
    table.push(Row::info(
        "  daemon growth / growth of the bare client syncing every filter",
        format!(
            "{:.2}",
            daemon_growth as f64 / bare_filters_growth.max(1) as f64
        ),
    ));
    let ratio = daemon_growth as f64 / bare_growth.max(1) as f64;
    table.push(Row::goal(
        "daemon growth / growth of the bare client syncing headers only (the same job)",
        format!("{ratio:.2}"),
        "≤ 1.1",
        ratio <= 1.1,
    ));
    table.push(Row::info(
        format!("daemon synced to {long} blocks, idle, no channels"),
        mb(idle_without_channels),
    ));
    table.push(Row::goal(
        format!("daemon resident memory, synced and idle with {CHANNELS} channels"),
        mb(idle_with_channels),
        "< 60 MB",
        idle_with_channels < 60 * 1024,
    ));
    table.push(Row::info(
        format!("the same daemon restarted, idle with {CHANNELS} usable channels"),
        mb(idle_after_restart),
    ));
    table.print();
}

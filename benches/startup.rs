//! Start-up: a `lightfilter daemon` with ten channels restarted on a long regtest chain, against
//! a fresh start (new data directory, every header and filter to sync) on the same chain,
//! measured in one run. Ready means the control API answers and reports the listeners synced
//! to the peer's tip. The goal is a restart time that does not grow with the chain.
//!
//! `LIGHTFILTER_BENCH_STARTUP_BLOCKS` sets the chain length (default 100,000).

#[path = "support/channels.rs"]
mod channels;
#[path = "../tests/common/cli.rs"]
mod cli;
#[path = "support/report.rs"]
mod report;

use std::path::Path;
use std::time::{Duration, Instant};

use bitcoin::ScriptBuf;
use channels::{open_channels, CHANNELS};
use cli::{cli_in, spawn_daemon, Chain, Daemon, KillOnDrop, TIMEOUT};
use report::{env_number, Row, Table};

/// How often readiness is polled: short against a restart, long against a CLI call.
const POLL: Duration = Duration::from_millis(20);

/// `getinfo` of the daemon on `dir`, if its API answers.
fn info(dir: &Path) -> Option<serde_json::Value> {
    let run = cli_in(dir, &["getinfo", "--json"]);
    if !run.success {
        return None;
    }
    serde_json::from_str(&run.stdout).ok()
}

/// Polls the daemon on `dir` until `condition` holds of its `getinfo`; returns the time since
/// `started`.
fn until(
    what: &str,
    dir: &Path,
    daemon: &mut KillOnDrop,
    started: Instant,
    condition: impl Fn(&serde_json::Value) -> bool,
) -> Duration {
    loop {
        if info(dir).is_some_and(|info| condition(&info)) {
            return started.elapsed();
        }
        if let Ok(Some(status)) = daemon.child().try_wait() {
            panic!("the daemon exited with {status} while starting");
        }
        assert!(started.elapsed() < TIMEOUT, "gave up waiting for {what}");
        std::thread::sleep(POLL);
    }
}

/// Starts a daemon on `dir` and waits until it is ready on `chain`; returns it and the time it
/// took.
fn start_until_ready(dir: &Path, chain: &Chain) -> (KillOnDrop, Duration) {
    let tip = u64::from(chain.height());
    let started = Instant::now();
    let mut daemon = KillOnDrop::new(spawn_daemon(dir, chain.addr(), &[]));
    let ready = until("ready", dir, &mut daemon, started, |info| {
        info["synced"] == true && info["block_height"].as_u64() == Some(tip)
    });
    (daemon, ready)
}

fn seconds(d: Duration) -> String {
    format!("{:.2} s", d.as_secs_f64())
}

fn main() {
    let mut table = Table::new("start-up to ready");
    let blocks = env_number("LIGHTFILTER_BENCH_STARTUP_BLOCKS", 100_000) as u32;
    let chain = Chain::start();
    chain.peer.mine(blocks, &ScriptBuf::new_op_return([1]));
    let mut node = Daemon::start("node-with-channels", &chain);
    let _counterparties = open_channels(&chain, &node);
    assert!(node.cli(&["stop"]).success, "the daemon stops");
    assert!(node.wait_exit(), "the daemon stopped cleanly");

    let fresh_dir = tempfile::tempdir().unwrap();
    let (fresh_daemon, fresh) = start_until_ready(fresh_dir.path(), &chain);
    drop(fresh_daemon);

    let started = Instant::now();
    let (mut restarted, restart) = start_until_ready(node.data_dir(), &chain);
    let usable = until(
        "the channels usable again",
        node.data_dir(),
        &mut restarted,
        started,
        |info| info["num_usable_channels"].as_u64() == Some(CHANNELS as u64),
    );

    let ratio = restart.as_secs_f64() / fresh.as_secs_f64();
    table.push(Row::info(
        format!(
            "fresh start on a {} block chain (new data directory)",
            chain.height()
        ),
        seconds(fresh),
    ));
    table.push(Row::info(
        format!("restart of the daemon with {CHANNELS} channels"),
        seconds(restart),
    ));
    table.push(Row::info(
        format!("restart until all {CHANNELS} channels are usable again"),
        seconds(usable),
    ));
    table.push(Row::goal(
        "restart / fresh start",
        format!("{ratio:.3}"),
        "small constant, not proportional to chain length (≤ 0.1)",
        ratio <= 0.1,
    ));
    table.print();
}

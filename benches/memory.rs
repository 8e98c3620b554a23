//! Memory: peak resident memory of a `lightfilter daemon` syncing a long regtest chain, against
//! a bare `bip157` client syncing the same chain from the same peer in the same run (each in a
//! process of its own), and the daemon's resident memory once synced and idle.
//!
//! `LIGHTFILTER_BENCH_MEMORY_BLOCKS` sets the chain length (default 100,000). The bare client
//! runs as this benchmark's own executable with `--bare-client ADDR HEIGHT`.

#[path = "support/report.rs"]
mod report;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use bitcoin::Network;
use lightfilter::regtest::RegtestPeer;
use report::{env_number, Row, Table};

/// A field of /proc/<pid>/status in kB.
fn status_kb(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

fn mb(kb: u64) -> String {
    format!("{:.1} MB", kb as f64 / 1024.0)
}

/// Runs a bare bip157 client to `height` and prints its peak resident memory in kB.
fn bare_client(addr: &str, height: u32) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let addr: std::net::SocketAddr = addr.parse().unwrap();
        let (node, client) = bip157::Builder::new(Network::Regtest)
            .add_peer(addr)
            .whitelist_only()
            .required_peers(1)
            .fetch_witness_data()
            .build();
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

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if let Some(i) = args.iter().position(|a| a == "--bare-client") {
        bare_client(&args[i + 1], args[i + 2].parse().unwrap());
        return;
    }
    let blocks = env_number("LIGHTFILTER_BENCH_MEMORY_BLOCKS", 100_000) as u32;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let peer = runtime
        .block_on(RegtestPeer::start("127.0.0.1:0".parse().unwrap()))
        .expect("peer");
    peer.mine(blocks, &bitcoin::ScriptBuf::new_op_return([1]));
    let height = peer.tip().0;

    // The bare client, in its own process.
    let output = Command::new(std::env::current_exe().unwrap())
        .args([
            "--bare-client",
            &peer.addr().to_string(),
            &height.to_string(),
        ])
        .output()
        .expect("bare client runs");
    let bare_peak: u64 = String::from_utf8_lossy(&output.stdout)
        .trim()
        .parse()
        .expect("bare client prints its peak memory");

    // The daemon, in its own process.
    let dir = tempfile::tempdir().unwrap();
    let binary = env!("CARGO_BIN_EXE_lightfilter");
    let mut daemon = Command::new(binary)
        .args(["--network", "regtest", "--datadir"])
        .arg(dir.path())
        .args(["daemon", "--bitcoin-peer", &peer.addr().to_string()])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("daemon starts");
    let pid = daemon.id().to_string();
    let started = Instant::now();
    loop {
        let info = Command::new(binary)
            .args(["--network", "regtest", "--datadir"])
            .arg(dir.path())
            .args(["getinfo", "--json"])
            .output()
            .expect("cli runs");
        let text = String::from_utf8_lossy(&info.stdout);
        if text.contains(&format!("\"block_height\":{height}"))
            || text.contains(&format!("\"block_height\": {height}"))
        {
            break;
        }
        assert!(
            started.elapsed() < Duration::from_secs(600),
            "daemon did not sync: {text}"
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    let daemon_peak = status_kb(&pid, "VmHWM:");
    std::thread::sleep(Duration::from_secs(5));
    let daemon_idle = status_kb(&pid, "VmRSS:");
    let _ = daemon.kill();
    let _ = daemon.wait();

    let mut table = Table::new(format!("memory while syncing {height} blocks"));
    table.push(Row::info(
        "bare bip157 client, peak resident memory",
        mb(bare_peak),
    ));
    table.push(Row::info(
        "lightfilter daemon, peak resident memory",
        mb(daemon_peak),
    ));
    table.push(Row::info(
        "daemon peak / bare client peak",
        format!("{:.2}", daemon_peak as f64 / bare_peak.max(1) as f64),
    ));
    table.push(Row::goal(
        "daemon resident memory when synced and idle (no channels)",
        mb(daemon_idle),
        "< 60 MB",
        daemon_idle < 60 * 1024,
    ));
    table.print();
}

//! Code shared by the integration tests, one submodule per concern; the test binary
//! (`tests/it/main.rs`) declares it once and each test module uses `crate::common`. Here:
//! starting regtest peers and waiting for conditions.
//!
//! - [`bitcoind`]: Bitcoin Core discovery (`BITCOIND_EXE`) and a `bitcoind` on regtest.
//! - [`chain_harness`]: a `ChainSource` against embedded regtest peers, with a recording
//!   listener.
//! - [`cli`]: the real `lightfilter` binary: daemons as child processes and CLI calls.
//! - [`client`]: bip157 clients wired to a regtest peer.
//! - [`cln`]: Core Lightning discovery (`LIGHTNINGD_EXE`) and a `lightningd` on regtest.
//! - [`http`]: raw HTTP/1.1 requests to a daemon's control API.
//! - [`interop`]: the node and Core Lightning on one Bitcoin Core, mining and settling.
//! - [`keys`]: test keys and transactions paying them.
//! - [`node_harness`]: whole nodes started in-process next to an embedded regtest peer.
//! - [`postgres`]: a throwaway PostgreSQL server (`initdb`, `pg_ctl`) on 127.0.0.1.
//! - [`proc`]: a process's memory figures and TCP sockets from `/proc` (benchmarks use it too).
//! - [`raw`]: raw P2P connections.
//! - [`restore`]: backup and restore: payments, balances, data directories from words.
//! - [`socks`]: a recording SOCKS5 proxy and tripwire addresses (nothing bypasses a proxy).
//! - [`wallet_feed`]: an on-chain wallet fed blocks straight from a regtest peer.
//!
//! The benchmarks include the few of these they use with `#[path]`.
#![allow(dead_code)]

pub mod bitcoind;
pub mod chain_harness;
pub mod cli;
pub mod client;
pub mod cln;
pub mod http;
pub mod interop;
pub mod keys;
pub mod node_harness;
pub mod postgres;
pub mod proc;
pub mod raw;
pub mod restore;
pub mod socks;
pub mod wallet_feed;

use std::time::Duration;

use lightfilter::regtest::RegtestPeer;

/// Generous limit for conditions that should hold within moments.
pub const TIMEOUT: Duration = Duration::from_secs(90);

/// Says on standard error that the calling test (named by its thread, as the test harness
/// names it) is skipped, and why (`skipped`, the whole line's start). The line is written to
/// the process's standard error itself, past the harness's capture and in one write, so every
/// run shows it on a line of its own (`.ci/run` counts these lines).
pub fn say_skipped(skipped: &str) {
    use std::io::Write;
    let test = std::thread::current()
        .name()
        .unwrap_or("a test")
        .to_string();
    let line = format!("\n{skipped}: {test}\n");
    let _ = std::io::stderr().write_all(line.as_bytes());
}

/// Logs to the test output when `RUST_LOG` is set.
pub fn init_logging() {
    let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
        .is_test(true)
        .try_init();
}

/// A regtest peer on an ephemeral local port.
pub async fn start_peer() -> RegtestPeer {
    init_logging();
    RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("start the regtest peer")
}

/// Polls `condition` until it holds or `timeout` passes; returns whether it held.
pub async fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if condition() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

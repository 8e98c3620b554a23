//! Helpers shared by the integration tests: starting regtest peers, bip157 clients wired to
//! them, raw P2P connections, test keys, and Bitcoin Core discovery (`BITCOIND_EXE`).
#![allow(dead_code)]

pub mod bitcoind;
pub mod client;
pub mod keys;
pub mod raw;

use std::time::Duration;

use lightfilter::regtest::RegtestPeer;

/// Generous limit for conditions that should hold within moments.
pub const TIMEOUT: Duration = Duration::from_secs(90);

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

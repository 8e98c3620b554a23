//! Crashes during a long catch-up. A node that was offline for thousands of blocks downloads
//! their filters faster than its listeners (wallet, channel manager, sweeper) connect the
//! blocks, so for a while the stored filters reach the tip while the listeners' saved
//! positions lag far behind. A SIGKILL then must not leave a data directory that cannot start:
//! the next start brings the listeners from where they stood to the tip, fetching the blocks
//! that pay the wallet on the way.

use crate::common;

use std::io::Read;
use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::cli::*;

/// Blocks mined while the node is offline in the first test, as in the fault report.
const OFFLINE_BLOCKS: u32 = 10_000;
/// The payment to the node is mined this many blocks below the new tip, so that listeners
/// trailing the filters by a few hundred blocks have not reached it yet.
const PAYMENT_DEPTH: u32 = 300;
/// Each payment in these tests.
const PAYMENT_SAT: u64 = 50_000;

/// Polls the daemon's log every few milliseconds until it contains `needle`; returns whether
/// it did before `timeout`.
fn log_reaches(daemon: &Daemon, needle: &str, timeout: Duration) -> bool {
    let path = daemon.data_dir().join("lightfilter.log");
    let deadline = Instant::now() + timeout;
    let mut seen = String::new();
    let mut read_to = 0;
    while Instant::now() < deadline {
        if let Ok(mut file) = std::fs::File::open(&path) {
            use std::io::Seek;
            if file.seek(std::io::SeekFrom::Start(read_to)).is_ok() {
                let mut more = String::new();
                if file.read_to_string(&mut more).is_ok() {
                    read_to += more.len() as u64;
                    seen.push_str(&more);
                }
            }
        }
        if seen.contains(needle) {
            return true;
        }
        // Keep only a tail long enough to hold a needle split across two reads.
        if seen.len() > 4_096 {
            let cut = seen.len() - 1_024;
            let cut = (cut..seen.len())
                .find(|&i| seen.is_char_boundary(i))
                .unwrap_or(cut);
            seen.drain(..cut);
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    false
}

/// The log line the wallet writes when it connects the block at `height` paying it.
fn wallet_saw_block_at(daemon: &Daemon, height: u32) -> bool {
    daemon
        .log()
        .contains(&format!("at height {height} has wallet transactions"))
}

#[test]
fn a_kill_when_filters_reach_the_tip_ahead_of_the_listeners_is_followed_by_a_start_that_sees_the_payment(
) {
    let chain = Chain::start();
    let mut node = Daemon::start("carol", &chain);
    let address = node.new_address();
    node.kill_hard();

    chain.mine(OFFLINE_BLOCKS - PAYMENT_DEPTH);
    let txid = chain.fund(&address, Amount::from_sat(PAYMENT_SAT));
    chain.wait_in_mempool(&txid.to_string());
    chain.mine(PAYMENT_DEPTH);
    let tip = chain.height();
    let payment_height = tip - PAYMENT_DEPTH + 1;

    node.respawn(&chain, &[]);
    assert!(
        log_reaches(
            &node,
            &format!("compact filters synced to height {tip} "),
            TIMEOUT
        ),
        "filters never reached the tip:\n{}",
        node.log_tail()
    );
    node.kill_hard();
    assert!(
        !wallet_saw_block_at(&node, payment_height),
        "the listeners had already passed the payment when the filters reached the tip, so this \
         run does not exercise the catch-up crash"
    );

    // Every later start must come up, reach the tip and see the payment.
    for start in 1..=2 {
        node.restart(&chain, &[]);
        node.wait_synced_to(tip);
        assert_eq!(
            node.confirmed_sat(),
            PAYMENT_SAT,
            "start {start} after the kill does not see the payment mined in the missed blocks"
        );
    }
}

/// A small pseudo-random sequence (xorshift), seeded from the clock and printed, so a failing
/// round can be replayed with `LIGHTFILTER_CRASH_SEED`.
struct Rounds(u64);

impl Rounds {
    fn seeded() -> Self {
        let seed = std::env::var("LIGHTFILTER_CRASH_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| {
                std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .expect("the clock is after 1970")
                    .as_nanos() as u64
                    | 1
            });
        eprintln!("crash rounds seeded with LIGHTFILTER_CRASH_SEED={seed}");
        Self(seed)
    }

    fn below(&mut self, bound: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % bound
    }
}

#[test]
fn kills_at_random_moments_of_catch_ups_never_keep_the_node_from_the_tip_or_its_coins() {
    let rounds: u32 = std::env::var("LIGHTFILTER_CRASH_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(4);
    let mut random = Rounds::seeded();
    let chain = Chain::start();
    let mut node = Daemon::start("dave", &chain);
    let mut expected = 0;
    for round in 1..=rounds {
        let address = node.new_address();
        node.kill_hard();
        // A few thousand blocks offline, paying the node somewhere among them.
        let offline = 1_000 + random.below(3_000) as u32;
        let paid_at = 1 + random.below(u64::from(offline)) as u32;
        chain.mine(paid_at - 1);
        let txid = chain.fund(&address, Amount::from_sat(PAYMENT_SAT));
        chain.wait_in_mempool(&txid.to_string());
        chain.mine(offline - paid_at + 1);
        expected += PAYMENT_SAT;
        let tip = chain.height();

        // Killed at a random moment of the catch-up (possibly before it began or after it
        // ended), then started for good.
        node.respawn(&chain, &[]);
        let kill_after = Duration::from_millis(random.below(3_000));
        std::thread::sleep(kill_after);
        node.kill_hard();
        eprintln!(
            "round {round}: {offline} blocks offline, paid at +{paid_at}, killed after {} ms",
            kill_after.as_millis()
        );
        node.restart(&chain, &[]);
        node.wait_synced_to(tip);
        assert_eq!(
            node.confirmed_sat(),
            expected,
            "round {round}: the balance after the restart misses a payment"
        );
    }
}

#[test]
fn filters_pruned_past_where_a_listener_was_saved_are_fetched_again() {
    let chain = Chain::start();
    let mut lagging = Daemon::start("erin", &chain);
    let address = lagging.new_address();
    lagging.kill_hard();
    // Another node follows the chain meanwhile and prunes the filters its listeners consumed:
    // its chain database then lacks filters the offline node's listeners still need, as after
    // a crash of a node whose listeners' saved positions lagged their positions in memory.
    let mut current = Daemon::start("frank", &chain);
    for _ in 0..4 {
        chain.mine(300);
        current.wait_synced_to(chain.height());
    }
    let txid = chain.fund(&address, Amount::from_sat(PAYMENT_SAT));
    chain.wait_in_mempool(&txid.to_string());
    chain.mine(1);
    current.wait_synced_to(chain.height());
    current.kill_hard();
    for file in ["chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm"] {
        let from = current.data_dir().join(file);
        let to = lagging.data_dir().join(file);
        let _ = std::fs::remove_file(&to);
        if from.exists() {
            std::fs::copy(&from, &to).expect("copy the chain database");
        }
    }

    lagging.restart(&chain, &[]);
    lagging.wait_synced_to(chain.height());
    assert_eq!(lagging.confirmed_sat(), PAYMENT_SAT);
}

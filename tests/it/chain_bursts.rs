//! Blocks mined in bursts (twenty at once, as a regtest script or a miner catching up does)
//! beside a busy CPU: the compact-filter engine follows them without being restarted, and
//! the listener reaches each burst's tip within a bound.

use crate::common;

use common::chain_harness::*;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::{Amount, FeeRate};
use lightfilter::chain::WatchSet;
use lightfilter::regtest::RegtestPeer;

/// Blocks in one burst.
const BURST: u32 = 20;
/// Bursts mined.
const BURSTS: u32 = 10;
/// How long the listener may take to reach a burst's tip, counted from its first block, on a
/// busy machine. A burst is
/// twenty headers, filter headers and filters and one matching block over 127.0.0.1: a
/// healthy engine needs about 0.1 s beside two busy threads on two cores; an engine that
/// restarts waits a back-off of 1 s, then 2 s, 4 s, ... up to 30 s before each new run.
const TIP_WITHIN: Duration = Duration::from_secs(10);

/// Two threads spinning until dropped: the other half of a 2-core machine shared with builds.
struct BusyCpu {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<()>>,
}

impl BusyCpu {
    fn start() -> Self {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = (0..2)
            .map(|_| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    while !stop.load(Ordering::Relaxed) {
                        std::hint::spin_loop();
                    }
                })
            })
            .collect();
        Self { stop, threads }
    }
}

impl Drop for BusyCpu {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        for thread in self.threads.drain(..) {
            let _ = thread.join();
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bursts_of_twenty_blocks_beside_a_busy_cpu_restart_no_engine() {
    common::init_logging();
    let peer = RegtestPeer::start("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .unwrap();
    peer.mine(101, &peer.faucet_script());
    let miner = unique_script(7_300);
    let watched = unique_script(7_301);
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let dir = tempfile::tempdir().unwrap();
    let recorder = Recorder::new(genesis());
    let harness = Harness::start(dir.path(), &[peer.addr()], recorder.clone(), watch).await;
    harness
        .wait_for_tip(peer.tip().1, Duration::from_secs(120))
        .await;
    let engine = harness.source.engine().clone();
    let restarts_before = engine.restarts();

    let busy = BusyCpu::start();
    let mut took = Vec::new();
    for burst in 0..BURSTS {
        // Each burst pays the watched script once, so its blocks are fetched as well.
        let payment = peer
            .fund(
                &watched,
                Amount::from_sat(20_000),
                FeeRate::from_sat_per_vb_u32(2),
            )
            .expect("the faucet pays");
        // One block at a time, each announced on its own while the engine is still busy with
        // the ones before, as Bitcoin Core announces the blocks of a `generatetoaddress`.
        let started = Instant::now();
        let mut tip = None;
        for _ in 0..BURST {
            tip = peer.mine(1, &miner).last().copied();
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
        let tip = tip.expect("a block was mined");
        let reached = tokio::time::timeout(TIP_WITHIN, harness.wait_for_tip(tip, TIP_WITHIN * 2))
            .await
            .is_ok();
        let elapsed = started.elapsed();
        let restarts = engine.restarts() - restarts_before;
        eprintln!(
            "burst {burst}: listener at the tip {:.2} s after the first block (reached: \
             {reached}); engine restarts so far: {restarts}",
            elapsed.as_secs_f64()
        );
        assert!(
            reached,
            "burst {burst}: the listener did not reach the tip within {TIP_WITHIN:?} (engine \
             restarts so far: {restarts})"
        );
        assert!(
            recorder.is_confirmed(&payment.compute_txid()),
            "burst {burst}: the payment reached the listener"
        );
        took.push(elapsed);
    }
    drop(busy);
    let restarts = engine.restarts() - restarts_before;
    let slowest = took.iter().max().unwrap();
    let total: Duration = took.iter().sum();
    eprintln!(
        "{BURSTS} bursts of {BURST} blocks: slowest {:.2} s, mean {:.2} s, engine restarts \
         {restarts}",
        slowest.as_secs_f64(),
        total.as_secs_f64() / f64::from(BURSTS)
    );
    assert_eq!(restarts, 0, "bursts of blocks restarted the engine");
    harness.stop().await;
}

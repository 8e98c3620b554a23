//! The chain source against a real Bitcoin Core, when `BITCOIND_EXE` names a `bitcoind`:
//! Core syncs a chain with real transactions from the embedded peer, and lightfilter's chain
//! source syncs from Core alone — headers, filters checked against Core's filter headers, the
//! block paying a watched script fetched with its witnesses — then follows a reorg Core makes.
//! Without `BITCOIND_EXE` the test says it skipped.

use crate::common;

use common::chain_harness as harness;

use std::sync::Arc;
use std::time::Duration;

use bitcoin::{Amount, FeeRate};
use common::bitcoind::{bitcoind_exe_or_skip, Bitcoind};
use harness::*;
use lightfilter::chain::WatchSet;
use lightfilter::regtest::RegtestPeer;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_chain_source_syncs_from_bitcoin_core_and_follows_its_reorgs() {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let _ = env_logger::builder().is_test(true).try_init();
    let peer = RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let watched = unique_script(7);
    let payment = peer
        .fund(
            &watched,
            Amount::from_sat(75_000),
            FeeRate::from_sat_per_vb(3).unwrap(),
        )
        .expect("faucet pays");
    peer.mine(1, &unique_script(8));
    for i in 0..20u64 {
        peer.fund(
            &unique_script(100 + i),
            Amount::from_sat(20_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .expect("faucet pays");
        peer.mine(1, &unique_script(8));
    }
    let core = Bitcoind::start_listening(&exe, peer.addr());
    let synced_core = |height: u32| {
        let deadline = std::time::Instant::now() + Duration::from_secs(120);
        loop {
            if core
                .rpc("getblockcount", serde_json::json!([]))
                .ok()
                .and_then(|v| v.as_u64())
                == Some(u64::from(height))
            {
                return;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "Core did not sync:\n{}",
                core.debug_log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    };
    synced_core(peer.tip().0);

    let watch = Arc::new(WatchSet::new());
    watch.add_scripts([watched.as_script()]);
    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let harness = Harness::start(dir.path(), &[core.p2p_addr()], recorder.clone(), watch).await;
    harness
        .wait_for_tip(peer.tip().1, Duration::from_secs(120))
        .await;
    assert!(recorder.is_confirmed(&payment.compute_txid()));
    let delivered = recorder.seen().into_iter().any(|s| matches!(s, Seen::Connected { wtxids, .. } if wtxids.contains(&payment.compute_wtxid())));
    assert!(
        delivered,
        "the paying block came from Core with its witnesses"
    );

    // A 3-deep reorg at the source: Core follows it, and so does the chain source.
    peer.invalidate(3);
    peer.mine(5, &unique_script(9));
    synced_core(peer.tip().0);
    harness
        .wait_for_tip(peer.tip().1, Duration::from_secs(120))
        .await;
    assert!(recorder
        .seen()
        .iter()
        .any(|s| matches!(s, Seen::Disconnected { .. })));
    harness.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_branch_bitcoin_core_makes_active_again_reaches_the_listeners() {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let _ = env_logger::builder().is_test(true).try_init();
    let peer = RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    peer.mine(20, &unique_script(10));
    let core = Bitcoind::start_listening(&exe, peer.addr());
    let rpc = |method: &str, params: serde_json::Value| {
        core.rpc(method, params)
            .unwrap_or_else(|err| panic!("{method}: {err}\n{}", core.debug_log_tail()))
    };
    let core_tip = || -> (u64, String) {
        let height = rpc("getblockcount", serde_json::json!([]))
            .as_u64()
            .unwrap();
        let hash = rpc("getbestblockhash", serde_json::json!([]));
        (height, hash.as_str().unwrap().to_string())
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while core
        .rpc("getblockcount", serde_json::json!([]))
        .ok()
        .and_then(|v| v.as_u64())
        != Some(u64::from(peer.tip().0))
    {
        assert!(std::time::Instant::now() < deadline, "Core did not sync");
        std::thread::sleep(Duration::from_millis(200));
    }

    let recorder = Recorder::new(genesis());
    let dir = tempfile::tempdir().unwrap();
    let watch = Arc::new(WatchSet::new());
    let harness = Harness::start(dir.path(), &[core.p2p_addr()], recorder.clone(), watch).await;
    let core_tip_hash = || -> bitcoin::BlockHash { core_tip().1.parse().unwrap() };
    harness
        .wait_for_tip(core_tip_hash(), Duration::from_secs(120))
        .await;

    // Core leaves branch A for a longer branch B...
    let fork = core_tip().0 - 3;
    let a1 = rpc("getblockhash", serde_json::json!([fork + 1]));
    rpc("invalidateblock", serde_json::json!([a1]));
    rpc("generatetodescriptor", serde_json::json!([4, "raw(51)"]));
    harness
        .wait_for_tip(core_tip_hash(), Duration::from_secs(120))
        .await;

    // ...then goes back to A, which grows past B.
    let b1 = rpc("getblockhash", serde_json::json!([fork + 1]));
    rpc("invalidateblock", serde_json::json!([b1]));
    rpc("reconsiderblock", serde_json::json!([a1]));
    rpc("generatetodescriptor", serde_json::json!([2, "raw(51)"]));
    harness
        .wait_for_tip(core_tip_hash(), Duration::from_secs(120))
        .await;
    let (height, _) = core_tip();
    for height in fork..=height {
        let hash = rpc("getblockhash", serde_json::json!([height]));
        assert_eq!(
            recorder.hash_at(height as u32).map(|h| h.to_string()),
            hash.as_str().map(str::to_string),
            "the listener's block at {height}"
        );
    }
    harness.stop().await;
}

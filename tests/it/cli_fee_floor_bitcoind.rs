//! One Bitcoin Core cannot set what the node pays: with `BITCOIND_EXE` set, a daemon whose
//! Bitcoin peers are two Cores, one started with `-minrelaytxfee=0.01` (it announces
//! 1,000 sat/vB), keeps its estimates at what recent blocks pay, and a `send` without a rate
//! pays an ordinary rate and reaches the other Core's mempool. The Cores' chain comes from
//! the embedded regtest peer. Without `BITCOIND_EXE` the test says it skipped.

use crate::common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use bitcoin::{Amount, FeeRate, Txid};
use common::bitcoind::{bitcoind_exe_or_skip, Bitcoind};
use common::cli::{regtest_script, wait_until, Chain, Daemon};
use serde_json::json;

/// Core may take a while to start and sync.
const CORE_TIMEOUT: Duration = Duration::from_secs(180);

fn wait_core_synced(core: &Bitcoind, height: u32) {
    let deadline = Instant::now() + CORE_TIMEOUT;
    while core
        .rpc("getblockcount", json!([]))
        .ok()
        .and_then(|count| count.as_u64())
        != Some(u64::from(height))
    {
        assert!(
            Instant::now() < deadline,
            "Core did not sync:\n{}",
            core.debug_log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn core_has(core: &Bitcoind, txid: &Txid) -> bool {
    core.rpc("getmempoolentry", json!([txid.to_string()]))
        .is_ok()
}

#[test]
fn bitcoin_core_announcing_1000_sat_per_vb_does_not_set_what_a_send_pays() {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let chain = Chain::start();
    let ordinary = Bitcoind::start_listening(&exe, chain.addr());
    let high = Bitcoind::start_listening_with(&exe, chain.addr(), &["-minrelaytxfee=0.01"]);
    wait_core_synced(&ordinary, chain.height());
    wait_core_synced(&high, chain.height());
    let alice = Daemon::start_on(
        "alice",
        ordinary.p2p_addr(),
        &["--bitcoin-peer", &high.p2p_addr().to_string()],
    );
    alice.wait_synced_to(chain.height());
    for _ in 0..2 {
        let address = alice.new_address();
        chain
            .peer
            .fund(
                &regtest_script(&address),
                Amount::from_sat(300_000),
                FeeRate::from_sat_per_vb_u32(2),
            )
            .expect("the faucet pays");
    }
    chain.mine(1);
    wait_until("alice funded through Core", || {
        alice.confirmed_sat() == 600_000
    });

    let rates = alice.json(&["feerates"]);
    for estimate in rates["estimates"].as_array().unwrap() {
        assert_ne!(estimate["source"], "peer_minimum", "{rates}");
    }

    let to = alice.new_address();
    let sent = alice.json(&["send", &to, "100000"]);
    let txid = Txid::from_str(sent["txid"].as_str().expect("a txid")).unwrap();
    assert_eq!(
        sent["propagated"],
        true,
        "{sent}\n{}",
        ordinary.debug_log_tail()
    );
    wait_until("the ordinary Core to take the send", || {
        core_has(&ordinary, &txid)
    });
    assert!(
        !core_has(&high, &txid),
        "the Core asking 1,000 sat/vB took an ordinary send"
    );
}

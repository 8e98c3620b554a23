//! `send` against Bitcoin Core started with a raised `-minrelaytxfee` (20 sat/vB): with
//! `BITCOIND_EXE` set, a daemon whose only Bitcoin peer is that Core sends without a rate at a
//! rate Core takes into its mempool, refuses a rate below Core's minimum, and with `--force`
//! sends it but reports that no peer took it (and Core's mempool does not have it). Core's
//! chain comes from the embedded regtest peer. Without `BITCOIND_EXE` the test says it skipped.

use crate::common;

use std::str::FromStr;
use std::time::{Duration, Instant};

use bitcoin::{Amount, FeeRate, Txid};
use common::bitcoind::{bitcoind_exe_or_skip, Bitcoind};
use common::cli::{regtest_script, wait_until, Chain, Daemon};
use serde_json::json;

/// Core may take a while to start and sync.
const CORE_TIMEOUT: Duration = Duration::from_secs(180);

fn core_has(core: &Bitcoind, txid: &Txid) -> bool {
    core.rpc("getmempoolentry", json!([txid.to_string()]))
        .is_ok()
}

#[test]
fn against_bitcoin_core_with_a_raised_minrelaytxfee_a_send_pays_it_or_is_refused() {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let chain = Chain::start();
    let core = Bitcoind::start_listening_with(&exe, chain.addr(), &["-minrelaytxfee=0.0002"]);
    let deadline = Instant::now() + CORE_TIMEOUT;
    while core
        .rpc("getblockcount", json!([]))
        .ok()
        .and_then(|count| count.as_u64())
        != Some(u64::from(chain.height()))
    {
        assert!(
            Instant::now() < deadline,
            "Core did not sync:\n{}",
            core.debug_log_tail()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let alice = Daemon::start_on("alice", core.p2p_addr(), &[]);
    alice.wait_synced_to(chain.height());
    for _ in 0..2 {
        let address = alice.new_address();
        chain
            .peer
            .fund(
                &regtest_script(&address),
                Amount::from_sat(300_000),
                // Below Core's minimum: mined by the regtest peer, Core sees only the block, and
                // the node's estimates from recent blocks stay below what Core takes.
                FeeRate::from_sat_per_vb_u32(2),
            )
            .expect("the faucet pays");
    }
    chain.mine(1);
    wait_until("alice funded through Core", || {
        alice.confirmed_sat() == 600_000
    });
    let to = alice.new_address();

    let (code, message) = alice.json_error(&["send", &to, "100000", "--feerate", "5"]);
    assert_eq!(code, "fee_below_peer_minimum", "{message}");

    let sent = alice.json(&["send", &to, "100000"]);
    let sent_txid = Txid::from_str(sent["txid"].as_str().unwrap()).unwrap();
    assert_eq!(
        sent["propagated"],
        true,
        "{sent}\n{}",
        core.debug_log_tail()
    );
    wait_until("Core to take the send", || core_has(&core, &sent_txid));

    let forced = alice.json(&["send", &to, "100000", "--feerate", "5", "--force"]);
    let forced_txid = Txid::from_str(forced["txid"].as_str().unwrap()).unwrap();
    assert_eq!(forced["propagated"], false, "{forced}");
    assert!(
        !core_has(&core, &forced_txid),
        "Core took a transaction below its minimum"
    );
}

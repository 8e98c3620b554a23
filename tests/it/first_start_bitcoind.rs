//! First starts against Bitcoin Core: with `BITCOIND_EXE` set, daemons whose only Bitcoin
//! peer is a `bitcoind -regtest -blockfilterindex=1 -peerblockfilters=1` (which takes its
//! chain from the embedded regtest peer) sync headers only and check filters from where their
//! wallet can hold anything: Core serves the filter headers from that height on. A fresh daemon
//! far below the tip receives a payment mined after it reached the tip; a restore with its
//! birthday half-way finds the payment mined after the birthday. Without `BITCOIND_EXE` the
//! test says it skipped.

use std::time::{Duration, Instant};

use crate::common::bitcoind::{bitcoind_exe_or_skip, Bitcoind};
use crate::common::cli::{wait_until, Chain, Daemon};
use bitcoin::Amount;
use serde_json::json;

/// Core may take a while to start and sync.
const CORE_TIMEOUT: Duration = Duration::from_secs(180);

/// Waits until Core's chain is at `chain`'s tip.
fn core_synced(core: &Bitcoind, chain: &Chain) {
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
}

#[test]
fn against_bitcoin_core_a_fresh_node_and_a_restore_check_filters_only_from_the_tip_and_the_birthday(
) {
    let Some(exe) = bitcoind_exe_or_skip() else {
        return;
    };
    let chain = Chain::start();
    chain.mine(2_000);
    let core = Bitcoind::start_listening(&exe, chain.addr());
    core_synced(&core, &chain);

    let fresh = Daemon::start_on("fresh-on-core", core.p2p_addr(), &[]);
    let tip = chain.height();
    fresh.wait_synced_to(tip);
    let info = fresh.json(&["getinfo"]);
    assert_eq!(info["sync"]["filters_from"], tip + 1, "{info}");
    let address = fresh.new_address();
    let seed = std::fs::read(fresh.data_dir().join("seed")).expect("the seed");
    let birthday = chain.height() + 1;
    chain.mine(1_000);
    chain.fund(&address, Amount::from_sat(80_000));
    chain.mine(1);
    chain.mine(1_000);
    core_synced(&core, &chain);
    wait_until("the fresh node's payment", || {
        fresh.confirmed_sat() == 80_000
    });
    drop(fresh);

    let dir = tempfile::Builder::new()
        .prefix("lightfilter-restore-on-core-")
        .tempdir()
        .expect("a data directory");
    std::fs::write(dir.path().join("seed"), seed).expect("the seed copied");
    let birthday_flag = birthday.to_string();
    let restored = Daemon::start_in_on(
        "restore-on-core",
        dir,
        core.p2p_addr(),
        &["--wallet-birthday", &birthday_flag],
    );
    restored.wait_synced_to(chain.height());
    let info = restored.json(&["getinfo"]);
    assert_eq!(info["sync"]["filters_from"], birthday, "{info}");
    wait_until("the restored payment", || {
        restored.confirmed_sat() == 80_000
    });
}

//! A first start killed in either of its phases. A new chain first syncs headers only (up to
//! the tip for a fresh node, up to the wallet birthday for a restore), then the compact filters
//! from where the wallet can hold anything. A SIGKILL in either phase is followed by a start
//! that resumes where the first one was: it fetches again at most the few headers an engine
//! restart re-reads near where it stood and no filter it had, never what it had from the
//! start, and no filter below where filters start. What was fetched is counted at the
//! embedded peer.

use std::time::Duration;

use crate::common::cli::*;
use bitcoin::Amount;
use serde_json::Value;

/// Blocks an engine restart re-reads below where it stood (`tracker::RESTART_DEPTH`).
const RESTART_DEPTH: u64 = 144;
/// The most headers a peer sends in one answer.
const ONE_BATCH: u64 = 2_000;

/// Polls `daemon` until `reached` returns a height from its `getinfo` while it is still
/// starting; returns that height and the answer.
fn wait_starting_until(daemon: &Daemon, mut reached: impl FnMut(&Value) -> Option<u64>) -> u64 {
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let info = daemon.json(&["getinfo"]);
        assert_eq!(info["state"], "starting", "still starting: {info}");
        if let Some(height) = reached(&info) {
            return height;
        }
        assert!(std::time::Instant::now() < deadline, "not reached: {info}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Kills `daemon` and waits until the peer has ended every session it had: a request the
/// daemon sent just before dying is still served (and counted) by its session, and must not be
/// counted as the restart's.
fn kill_and_forget(daemon: &mut Daemon, chain: &Chain) {
    daemon.kill_hard();
    wait_until("the killed daemon's sessions ended", || {
        chain.peer.connection_count() == 0
    });
    chain.peer.reset_stats();
}

#[test]
fn a_fresh_node_killed_while_it_syncs_headers_resumes_them_and_fetches_no_filter_below_the_tip() {
    let chain = Chain::start();
    chain.mine(100_000);
    let tip = u64::from(chain.height());
    let mut daemon = Daemon::spawn("killed-in-headers", &chain, &[]);
    daemon.wait_api();
    let killed_at = wait_starting_until(&daemon, |info| {
        assert_eq!(
            info["sync"]["phase"], "headers",
            "headers come first: {info}"
        );
        assert_eq!(info["sync"]["filters_height"], 0, "no filter yet: {info}");
        let headers = info["sync"]["headers_height"].as_u64().expect("a height");
        (headers >= tip / 4).then_some(headers)
    });
    kill_and_forget(&mut daemon, &chain);

    daemon.respawn(&chain, &[]);
    daemon.wait_api();
    let synced = daemon.json(&["getinfo", "--wait-synced"]);
    assert_eq!(synced["state"], "running", "{synced}");
    assert_eq!(synced["block_height"], tip, "{synced}");
    assert_eq!(synced["sync"]["filters_from"], tip + 1, "{synced}");
    let stats = chain.peer.stats();
    assert!(
        stats.cfilters_by_height.is_empty(),
        "no filter up to the tip: {:?}",
        stats.cfilters_by_height.iter().next()
    );

    // What an uninterrupted first start is sent, on the same chain: the restart must have
    // been sent what was left, not everything again.
    chain.peer.reset_stats();
    let mut uninterrupted = Daemon::spawn("uninterrupted-headers", &chain, &[]);
    uninterrupted.wait_api();
    let full = uninterrupted.json(&["getinfo", "--wait-synced"]);
    assert_eq!(full["sync"]["filters_from"], tip + 1, "{full}");
    let full_headers = chain.peer.stats().headers_served;
    println!(
        "killed with headers at {killed_at} of {tip}; the restart was sent {} headers, an \
         uninterrupted first start {full_headers}",
        stats.headers_served
    );
    let left = 1.0 - killed_at as f64 / tip as f64;
    assert!(
        (stats.headers_served as f64) < full_headers as f64 * (left + 0.1),
        "the restart fetched the headers left ({:.0} % of the chain), not all again: {} of {}",
        left * 100.0,
        stats.headers_served,
        full_headers
    );

    // A payment mined after the first start arrives.
    let address = daemon.new_address();
    let txid = chain.fund(&address, Amount::from_sat(70_000));
    chain.wait_in_mempool(&txid.to_string());
    chain.mine(1);
    wait_until("the payment confirmed", || daemon.confirmed_sat() == 70_000);
}

#[test]
fn a_restore_killed_while_it_checks_filters_resumes_them_and_finds_the_payment() {
    let chain = Chain::start();
    let first = Daemon::start("payee", &chain);
    let address = first.new_address();
    let seed = std::fs::read(first.data_dir().join("seed")).expect("the seed");
    drop(first);

    chain.mine(20_000);
    let birthday = chain.height() + 1;
    chain.mine(10_000);
    let txid = chain.fund(&address, Amount::from_sat(90_000));
    chain.wait_in_mempool(&txid.to_string());
    chain.mine(30_000);
    let tip = u64::from(chain.height());

    let dir = tempfile::Builder::new()
        .prefix("lightfilter-restore-killed-")
        .tempdir()
        .expect("a data directory");
    std::fs::write(dir.path().join("seed"), seed).expect("the seed copied");
    let birthday_flag = birthday.to_string();
    let flags = ["--wallet-birthday", birthday_flag.as_str()];
    let mut daemon = Daemon::spawn_in("restore-killed-in-filters", dir, &chain, &flags);
    daemon.wait_api();
    let birthday = u64::from(birthday);
    let killed_at = wait_starting_until(&daemon, |info| {
        let filters = info["sync"]["filters_height"].as_u64().expect("a height");
        if info["sync"]["phase"] != "filters" {
            return None;
        }
        assert_eq!(info["sync"]["filters_from"], birthday, "{info}");
        (filters >= birthday + (tip - birthday) / 4).then_some(filters)
    });
    kill_and_forget(&mut daemon, &chain);

    daemon.respawn(&chain, &flags);
    daemon.wait_api();
    let synced = daemon.json(&["getinfo", "--wait-synced"]);
    assert_eq!(synced["state"], "running", "{synced}");
    assert_eq!(synced["sync"]["filters_from"], birthday, "{synced}");
    wait_until("the payment found", || daemon.confirmed_sat() == 90_000);
    let stats = chain.peer.stats();
    let fetched_twice = stats
        .cfilters_by_height
        .values()
        .filter(|n| **n > 1)
        .count();
    println!(
        "killed with filters at {killed_at} of {tip} (from {birthday}); the restart was sent \
         {} filters ({fetched_twice} of them twice) and {} headers",
        stats.cfilters_served, stats.headers_served
    );
    assert!(
        stats
            .cfilters_by_height
            .range(..birthday as u32)
            .next()
            .is_none(),
        "no filter below the birthday: {:?}",
        stats.cfilters_by_height.iter().next()
    );
    // A filter the killed start had stored is not fetched again; the restart fetched every
    // filter from the first it lacked to the tip. (A request the engine sends again after a
    // slow answer may fetch a filter above the kill twice: that is not what it had.)
    let first_fetched = stats.cfilters_by_height.keys().next().copied();
    assert!(
        first_fetched.is_some_and(|first| u64::from(first) > killed_at),
        "no filter at or below {killed_at}, which the killed start had, fetched again: first \
         fetched {first_fetched:?}"
    );
    let first = u64::from(first_fetched.unwrap_or_default());
    assert_eq!(
        stats.cfilters_by_height.len() as u64,
        tip - first + 1,
        "every filter from {first} to the tip fetched"
    );
    assert!(
        stats.headers_served <= 2 * (RESTART_DEPTH + ONE_BATCH),
        "the headers were not fetched again: {}",
        stats.headers_served
    );
}

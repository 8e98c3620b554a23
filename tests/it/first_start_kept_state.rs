//! A node that holds a wallet but lost its chain database: its new chain cannot know where the
//! wallet's coins lie, so it checks every filter from the chain's start (genesis on regtest),
//! as before headers-first starts existed, and its log says why. Counted at the embedded peer.

use crate::common::cli::*;
use bitcoin::Amount;

#[test]
fn a_node_with_a_wallet_and_no_chain_database_checks_every_filter_and_says_why() {
    let chain = Chain::start();
    let mut node = Daemon::start("kept-wallet", &chain);
    node.fund(&chain, Amount::from_sat(40_000));
    let address = node.new_address();
    assert!(node.cli(&["stop"]).success, "the daemon stops");
    assert!(node.wait_exit(), "the daemon stopped cleanly");

    chain.mine(300);
    let txid = chain.fund(&address, Amount::from_sat(25_000));
    chain.wait_in_mempool(&txid.to_string());
    chain.mine(1);
    for file in ["chain.sqlite", "chain.sqlite-wal", "chain.sqlite-shm"] {
        let _ = std::fs::remove_file(node.data_dir().join(file));
    }
    chain.peer.reset_stats();

    node.restart(&chain, &[]);
    let tip = chain.height();
    node.wait_synced_to(tip);
    let info = node.json(&["getinfo"]);
    assert_eq!(info["sync"]["filters_from"], 1, "{info}");
    assert_eq!(node.confirmed_sat(), 65_000, "both payments are seen");
    let log = node.log();
    assert!(
        log.contains("this node holds a wallet but no chain database: checking every compact filter from block 1 on"),
        "the log says why every filter is fetched:\n{log}"
    );
    let stats = chain.peer.stats();
    assert_eq!(
        stats.cfilters_by_height.range(1..=tip).count() as u32,
        tip,
        "every filter from the chain's start was fetched"
    );
}

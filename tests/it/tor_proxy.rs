//! `--proxy` and `--tor-only`: every outbound connection, Bitcoin and Lightning, goes through
//! the SOCKS5 proxy, and a node told to use Tor only refuses to start without one.
//!
//! The node is given its peers' addresses as tripwires (addresses that count connections
//! made to them); only the proxy knows where the peers really listen. A node that syncs and
//! pays went through the proxy; any direct connection to a peer would have hit a tripwire, and
//! the sockets the node holds (from `/proc`) lead to the proxy only.

use crate::common;

use std::process::Stdio;

use bitcoin::Amount;
use common::cli::KillOnDrop;
use common::cli::{lightfilter_in, wait_for_exit, wait_for_value, wait_until, Chain, Daemon};
use common::socks::{SocksProxy, Tripwire};

/// The kernel's number for a listening TCP socket.
const LISTEN: u8 = 10;

#[test]
fn a_tor_only_node_syncs_and_pays_with_every_connection_through_the_proxy() {
    let chain = Chain::start();
    let proxy = SocksProxy::start();
    let bitcoin_peer = Tripwire::start();
    proxy.redirect(bitcoin_peer.addr(), chain.addr());
    let bob = Daemon::start("bob", &chain);
    let proxy_flag = proxy.addr().to_string();
    let alice = Daemon::start_on(
        "alice",
        bitcoin_peer.addr(),
        &["--proxy", &proxy_flag, "--tor-only"],
    );

    // Bitcoin: the engine and the node's own link to the peer both go through the proxy.
    let bitcoin_connects = wait_for_value("two Bitcoin connections through the proxy", || {
        assert_eq!(bitcoin_peer.hits(), 0, "a direct Bitcoin connection");
        let n = proxy.connects_to(bitcoin_peer.addr());
        (n >= 2).then_some(n)
    });
    assert!(bitcoin_connects >= 2);
    alice.fund(&chain, Amount::from_sat(500_000));

    // Lightning: Bob's real listen address is known to the proxy only.
    let lightning_peer = Tripwire::start();
    let bob_listen = bob.json(&["getinfo"])["listen_addresses"][0]
        .as_str()
        .expect("bob listens")
        .parse()
        .expect("an IP address and port");
    proxy.redirect(lightning_peer.addr(), bob_listen);
    let uri = format!("{}@{}", bob.node_id(), lightning_peer.addr());
    let opened = alice.json(&["openchannel", &uri, "200000"]);
    let channel_id = opened["channel_id"].as_str().unwrap().to_string();
    chain.wait_in_mempool(opened["funding_txid"].as_str().unwrap());
    chain.mine(6);
    for side in [&alice, &bob] {
        wait_until(&format!("channel usable on {}", side.name), || {
            side.channel(&channel_id)
                .is_some_and(|channel| channel["usable"] == true)
        });
    }
    let invoice = bob.json(&["invoice", "1000000"]);
    let paid = alice.json(&["pay", invoice["bolt11"].as_str().unwrap()]);
    assert_eq!(paid["status"], "succeeded", "{paid}");

    assert!(
        proxy.connects_to(lightning_peer.addr()) >= 1,
        "the Lightning connection went through the proxy: {:?}",
        proxy.connects()
    );
    assert_eq!(
        bitcoin_peer.hits(),
        0,
        "a direct connection to the Bitcoin peer"
    );
    assert_eq!(
        lightning_peer.hits(),
        0,
        "a direct connection to the Lightning peer"
    );
    // What the node holds open now: every connection it made goes to the proxy; the others
    // were accepted on its own listening ports (control API, Lightning).
    let sockets = common::proc::tcp_sockets(alice.pid());
    let listening: Vec<u16> = sockets
        .iter()
        .filter(|socket| socket.state == LISTEN)
        .map(|socket| socket.local.port())
        .collect();
    let outbound: Vec<_> = sockets
        .iter()
        .filter(|socket| socket.state != LISTEN && !listening.contains(&socket.local.port()))
        .collect();
    assert!(
        !outbound.is_empty(),
        "the node holds its connections: {sockets:?}"
    );
    assert!(
        outbound.iter().all(|socket| socket.remote == proxy.addr()),
        "a connection that is not to the proxy: {outbound:?}"
    );
    let unexpected: Vec<String> = proxy
        .connects()
        .into_iter()
        .filter(|target| {
            *target != bitcoin_peer.addr().to_string()
                && *target != lightning_peer.addr().to_string()
        })
        .collect();
    assert!(
        unexpected.is_empty(),
        "connections to peers the node was not given: {unexpected:?}"
    );
}

#[test]
fn tor_only_with_a_clearnet_peer_and_no_proxy_is_refused_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let child = lightfilter_in(dir.path())
        .args(["daemon", "--bitcoin-peer", "127.0.0.1:18444", "--tor-only"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lightfilter daemon");
    let mut child = KillOnDrop::new(child);
    wait_for_exit(
        child.child(),
        "the daemon that should have refused to start",
    );
    let output = child.release().wait_with_output().expect("daemon output");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "it started: {stderr}");
    assert!(
        stderr.contains("--tor-only")
            && stderr.contains("127.0.0.1:18444")
            && stderr.contains("--proxy"),
        "the error names the refused address and the way out: {stderr}"
    );
    let left: Vec<_> = std::fs::read_dir(dir.path())
        .unwrap()
        .map(|entry| entry.unwrap().file_name())
        .collect();
    assert!(left.is_empty(), "the data directory was written: {left:?}");
}

//! Remembered Lightning peers: a peer given to `connect` is reconnected after it restarts,
//! channel or not (as `connect`'s help says), and one `disconnect` forgets stays away.

use crate::common;

use std::time::Duration;

use common::cli::{closed_port, wait_until, Chain, Daemon};
use serde_json::Value;

/// Whether `node` lists `peer` as connected.
fn connected(node: &Daemon, peer: &str) -> bool {
    node.json(&["peers"])
        .as_array()
        .expect("a list of peers")
        .iter()
        .any(|p: &Value| p["node_id"] == peer && p["connected"] == true)
}

#[test]
fn a_remembered_peer_without_a_channel_is_reconnected_until_disconnected() {
    let chain = Chain::start();
    let alice = Daemon::start("alice", &chain);
    let listen = format!("127.0.0.1:{}", closed_port());
    let bob_flags = ["--ln-listen", listen.as_str()];
    let mut bob = Daemon::start_with("bob", &chain, &bob_flags);
    let bob_id = bob.node_id();
    alice.json(&["connect", &format!("{bob_id}@{listen}")]);
    assert!(connected(&alice, &bob_id));

    // Bob restarts: Alice connects again by herself.
    bob.restart(&chain, &bob_flags);
    wait_until("alice to reconnect to bob", || connected(&alice, &bob_id));

    // Once disconnected, a peer without a channel stays away, also after it restarts.
    alice.json(&["disconnect", &bob_id]);
    bob.restart(&chain, &bob_flags);
    std::thread::sleep(Duration::from_secs(12));
    assert!(
        !connected(&alice, &bob_id),
        "alice reconnected to a peer she disconnected"
    );
    assert!(
        alice
            .json(&["peers"])
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["node_id"] != bob_id.as_str()),
        "alice still remembers bob"
    );
}

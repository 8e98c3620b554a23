//! `lightfilter regtest-peer` runs the embedded peer as its own process: a bip157 client syncs
//! from it, Ctrl-C stops it cleanly, and bad arguments get a clear error.

use crate::common;

use std::process::{Command, Stdio};

use common::cli::{lightfilter, PeerProcess};
use common::client::TestClient;
use common::{init_logging, wait_for, TIMEOUT};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regtest_peer_command_serves_a_chain_until_interrupted() {
    init_logging();
    let mut running = PeerProcess::start(&["--blocks", "10"]);
    let addr = running.addr;
    let line = &running.first_line;
    assert!(line.contains("at height 10"), "{line}");

    let client = TestClient::start(&[addr], 1);
    let log = client
        .wait_until("synced to height 10", |log| {
            log.synced_tip().is_some_and(|(height, _)| height == 10)
        })
        .await;
    assert_eq!(log.filters.len(), 10);
    client.stop().await;

    let pid = running.pid().to_string();
    let interrupted = Command::new("kill").args(["-INT", &pid]).status();
    assert!(
        interrupted.is_ok_and(|status| status.success()),
        "cannot send SIGINT"
    );
    let mut status = None;
    let exited = wait_for(TIMEOUT, || {
        status = running.child().try_wait().ok().flatten();
        status.is_some()
    })
    .await;
    assert!(exited, "the peer stops on Ctrl-C");
    assert!(status.unwrap().success(), "a clean exit: {status:?}");
}

#[test]
fn bad_arguments_get_a_clear_error() {
    let output = lightfilter()
        .args(["regtest-peer", "--listen", "not-an-address"])
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.contains("--listen"), "{stderr}");

    for flag in ["--max-connections", "--handshake-timeout", "--idle-timeout"] {
        let output = lightfilter()
            .args(["regtest-peer", "--listen", "127.0.0.1:0", flag, "0"])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        assert!(!output.status.success(), "{flag} 0 is refused");
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.contains(flag), "{stderr}");
    }

    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let output = lightfilter()
        .args(["regtest-peer", "--listen", &format!("127.0.0.1:{port}")])
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert!(!output.status.success());
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        stderr.contains(&format!("cannot listen on 127.0.0.1:{port}")),
        "{stderr}"
    );
    drop(taken);
}

//! `lightfilter regtest-peer` runs the embedded peer as its own process: a bip157 client syncs
//! from it, Ctrl-C stops it cleanly, and bad arguments get a clear error.

mod common;

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;

use common::client::TestClient;
use common::{init_logging, wait_for, TIMEOUT};

/// Kills the process if the test fails before stopping it.
struct Running(Child);

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn lightfilter() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lightfilter"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_regtest_peer_command_serves_a_chain_until_interrupted() {
    init_logging();
    let mut child = lightfilter()
        .args(["regtest-peer", "--listen", "127.0.0.1:0", "--blocks", "10"])
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .spawn()
        .expect("start lightfilter");
    let stdout = child.stdout.take().unwrap();
    let mut running = Running(child);
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let line = lines
        .recv_timeout(TIMEOUT)
        .expect("the peer announces where it listens");
    let addr: SocketAddr = line
        .strip_prefix("regtest peer listening on ")
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|addr| addr.parse().ok())
        .unwrap_or_else(|| panic!("unexpected first line: {line}"));
    assert!(line.contains("at height 10"), "{line}");

    let client = TestClient::start(&[addr], 1);
    let log = client
        .wait_until("synced to height 10", |log| {
            log.synced_tip().is_some_and(|(height, _)| height == 10)
        })
        .await;
    assert_eq!(log.filters.len(), 10);
    client.stop().await;

    let pid = running.0.id().to_string();
    let interrupted = Command::new("kill").args(["-INT", &pid]).status();
    assert!(
        interrupted.is_ok_and(|status| status.success()),
        "cannot send SIGINT"
    );
    let mut status = None;
    let exited = wait_for(TIMEOUT, || {
        status = running.0.try_wait().ok().flatten();
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

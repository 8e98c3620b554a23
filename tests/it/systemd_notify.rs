//! Under systemd (`Type=notify`, as `contrib/lightfilter.service` runs it) the daemon says
//! `READY=1` once its control API answers and `STOPPING=1` when it stops: tested with a
//! notification socket of the test's own in `NOTIFY_SOCKET`.
#![cfg(unix)]

use crate::common;

use std::os::unix::net::UnixDatagram;
use std::time::Duration;

use common::cli::{Chain, Daemon};

fn receive(socket: &UnixDatagram) -> String {
    let mut buffer = [0u8; 4096];
    let length = socket
        .recv(&mut buffer)
        .expect("a notification within the timeout");
    String::from_utf8_lossy(&buffer[..length]).to_string()
}

#[test]
fn the_daemon_notifies_systemd_when_ready_and_when_stopping() {
    let chain = Chain::start();
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_secs(120)))
        .unwrap();
    let mut daemon = Daemon::start_adjusted("notified", &chain, &[], |command| {
        command.env("NOTIFY_SOCKET", &path);
    });
    let ready = receive(&socket);
    assert!(ready.contains("READY=1"), "{ready:?}");
    // Ready means the API answers (`Daemon::start_adjusted` waited for it as well).
    assert!(daemon.data_dir().join("api.addr").exists());
    assert_eq!(daemon.json(&["getinfo"])["network"], "regtest");
    assert_eq!(daemon.json(&["stop"])["stopping"], true);
    let stopping = receive(&socket);
    assert!(stopping.contains("STOPPING=1"), "{stopping:?}");
    assert!(daemon.wait_exit(), "the daemon exits successfully");
}

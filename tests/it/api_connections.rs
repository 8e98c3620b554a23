//! The control API under a flood of connections: a daemon whose open-file limit is small
//! (1,024, as on many systems) keeps answering an authenticated client at once while 2,000
//! idle connections, or 1,100 that send half a request header and stall, are held open
//! against it, and its own descriptors stay bounded.
#![cfg(target_os = "linux")]

use crate::common;

use std::io::Write;
use std::net::TcpStream;
use std::os::unix::process::CommandExt;
use std::time::{Duration, Instant};

use common::cli::{lightfilter, Chain, Daemon, KillOnDrop};

/// Idle connections the test holds open.
const IDLE_CONNECTIONS: usize = 2_000;

/// The open-file limit (soft and hard) the daemon runs under.
const DAEMON_FILE_LIMIT: u64 = 1_024;

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

/// Runs `getinfo --json` against `daemon`; returns whether it succeeded within `limit` and
/// how long it took.
fn timed_getinfo(daemon: &Daemon, limit: Duration) -> (bool, Duration) {
    let started = Instant::now();
    let mut run = KillOnDrop::new(
        lightfilter()
            .arg("--network")
            .arg("regtest")
            .arg("--datadir")
            .arg(daemon.data_dir())
            .args(["getinfo", "--json"])
            .env("RUST_LOG", "warn")
            .stdin(std::process::Stdio::null())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("run lightfilter getinfo"),
    );
    while started.elapsed() < limit {
        if let Some(status) = run.child().try_wait().unwrap() {
            return (status.success(), started.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    (false, started.elapsed())
}

/// A daemon limited to [`DAEMON_FILE_LIMIT`] open files (soft and hard).
fn small_daemon(chain: &Chain) -> Daemon {
    Daemon::start_adjusted("alice", chain, &[], |command| {
        // SAFETY: setrlimit is async-signal-safe and touches only the child.
        unsafe {
            command.pre_exec(|| {
                let small = libc::rlimit {
                    rlim_cur: DAEMON_FILE_LIMIT,
                    rlim_max: DAEMON_FILE_LIMIT,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &small) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    })
}

/// Raises this process's open-file limit for `connections` client sockets.
fn room_for(connections: usize) {
    let limit = lightfilter::os::raise_open_file_limit().expect("raise the open-file limit");
    assert!(
        limit.soft >= connections as u64 + 200,
        "this test needs {} open files; the hard limit here is {}",
        connections + 200,
        limit.hard
    );
}

#[test]
fn getinfo_is_answered_at_once_while_2000_idle_connections_are_held() {
    room_for(IDLE_CONNECTIONS);
    let chain = Chain::start();
    let mut daemon = small_daemon(&chain);
    let addr = daemon.api_addr();

    let mut idle = Vec::with_capacity(IDLE_CONNECTIONS);
    for _ in 0..IDLE_CONNECTIONS {
        idle.push(TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect"));
    }
    let (answered, took) = timed_getinfo(&daemon, Duration::from_secs(5));
    eprintln!(
        "getinfo with {IDLE_CONNECTIONS} idle connections held: {} after {:.3} s",
        if answered { "answered" } else { "not answered" },
        took.as_secs_f64()
    );
    assert!(
        answered,
        "getinfo was not answered within 5 s while {IDLE_CONNECTIONS} idle connections were \
         held:\n{}",
        daemon.log_tail()
    );
    let descriptors = open_descriptors(daemon.pid());
    eprintln!("the daemon holds {descriptors} open files");
    assert!(
        descriptors < DAEMON_FILE_LIMIT as usize / 2,
        "the daemon holds {descriptors} open files"
    );

    // The node's own files still work: a new address is stored.
    daemon.json(&["newaddress"]);
    drop(idle);
    assert!(daemon.is_running());
    daemon.json(&["stop"]);
    assert!(daemon.wait_exit(), "the daemon stopped with a failure");
}

/// Connections that send half a request header and stall.
const HALF_SENT_CONNECTIONS: usize = 1_100;

#[test]
fn getinfo_is_answered_at_once_while_1100_half_sent_connections_are_held() {
    room_for(HALF_SENT_CONNECTIONS);
    let chain = Chain::start();
    let mut daemon = small_daemon(&chain);
    let addr = daemon.api_addr();

    let mut stalled = Vec::with_capacity(HALF_SENT_CONNECTIONS);
    for _ in 0..HALF_SENT_CONNECTIONS {
        let mut stream =
            TcpStream::connect_timeout(&addr, Duration::from_secs(5)).expect("connect");
        // Not an error if the daemon already closed it.
        let _ = stream.write_all(b"POST /v1/getinfo HTTP/1.1\r\nHost: 127.0.0.1\r\n");
        stalled.push(stream);
    }
    let (answered, took) = timed_getinfo(&daemon, Duration::from_secs(5));
    eprintln!(
        "getinfo with {HALF_SENT_CONNECTIONS} half-sent connections held: {} after {:.3} s",
        if answered { "answered" } else { "not answered" },
        took.as_secs_f64()
    );
    assert!(
        answered,
        "getinfo was not answered within 5 s while {HALF_SENT_CONNECTIONS} half-sent \
         connections were held:\n{}",
        daemon.log_tail()
    );
    let descriptors = open_descriptors(daemon.pid());
    assert!(
        descriptors < DAEMON_FILE_LIMIT as usize / 2,
        "the daemon holds {descriptors} open files"
    );
    drop(stalled);
    assert!(daemon.is_running());
}

//! A flood of inbound Lightning connections: 4,000 sockets opened to a node's listener while it
//! runs under an open-file limit of 1,024 (as on many systems) neither stop it nor keep a
//! payment over an existing channel from going through, and the node's own descriptors stay
//! bounded.
#![cfg(target_os = "linux")]

use crate::common;

use std::net::{SocketAddr, TcpStream};
use std::os::unix::process::CommandExt;
use std::time::Duration;

use bitcoin::Amount;
use common::cli::{wait_until, Chain, Daemon};
use common::restore::pay;

/// Sockets the test opens to the listener.
const FLOOD: usize = 4_000;

/// The open-file limit (soft and hard) the flooded daemon runs under.
const DAEMON_FILE_LIMIT: u64 = 1_024;

fn open_descriptors(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .map(|entries| entries.count())
        .unwrap_or(0)
}

#[test]
fn a_flood_of_inbound_connections_neither_stops_the_node_nor_its_payments() {
    let limit = lightfilter::os::raise_open_file_limit().expect("raise the open-file limit");
    assert!(
        limit.soft >= FLOOD as u64 + 200,
        "this test needs {} open files; the hard limit here is {}",
        FLOOD + 200,
        limit.hard
    );
    let chain = Chain::start();
    let mut alice = Daemon::start_adjusted("alice", &chain, &[], |command| {
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
    });
    let bob = Daemon::start("bob", &chain);
    alice.fund(&chain, Amount::from_sat(1_000_000));
    alice.open_usable_channel(&chain, &bob, 600_000);
    let listener: SocketAddr = alice.json(&["getinfo"])["listen_addresses"][0]
        .as_str()
        .expect("alice listens for Lightning peers")
        .parse()
        .unwrap();

    // The flood: sockets that connect and never speak, all held open.
    let mut flood = Vec::with_capacity(FLOOD);
    for _ in 0..FLOOD {
        if let Ok(stream) = TcpStream::connect_timeout(&listener, Duration::from_secs(2)) {
            flood.push(stream);
        }
    }
    eprintln!(
        "{} of {FLOOD} connections to the listener opened",
        flood.len()
    );
    let descriptors = open_descriptors(alice.pid());
    eprintln!("alice holds {descriptors} open files");
    assert!(
        descriptors < DAEMON_FILE_LIMIT as usize / 2,
        "alice holds {descriptors} open files"
    );
    // Payments both ways over the existing channel need the channel store's writes.
    pay(&alice, &bob, 50_000);
    // Bob can pay back once his side of the channel holds what he received.
    wait_until("bob able to send 5,000 sat over the channel", || {
        bob.json(&["channels"]).as_array().is_some_and(|channels| {
            channels
                .iter()
                .any(|channel| channel["outbound_capacity_msat"].as_u64() >= Some(5_000_000))
        })
    });
    pay(&bob, &alice, 5_000);
    assert!(alice.is_running(), "alice stopped");
    drop(flood);
    alice.json(&["stop"]);
    assert!(alice.wait_exit(), "alice stopped with a failure");
}

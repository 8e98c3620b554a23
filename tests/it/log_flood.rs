//! The daemon's log under a flood of refused requests: 200 requests without the token, each
//! with a 60 KB path, add less than 100 KB to the log (what is logged about refused requests
//! is cut short and limited in number), and the daemon keeps answering.

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::time::Duration;

use common::cli::{Chain, Daemon};

const REQUESTS: usize = 200;
const PATH_BYTES: usize = 60 * 1024;

/// The bytes in every log file of `dir` (the current one and those rotated out).
fn log_bytes(dir: &Path) -> u64 {
    std::fs::read_dir(dir)
        .unwrap()
        .filter_map(Result::ok)
        .filter(|entry| {
            let name = entry.file_name().to_string_lossy().to_string();
            name.starts_with("lightfilter") && name.ends_with(".log")
        })
        .map(|entry| entry.metadata().map(|meta| meta.len()).unwrap_or(0))
        .sum()
}

/// Sends a token-less request for `path`; returns the status line.
fn refused_request(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request =
        format!("POST {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{{}}");
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    response.lines().next().unwrap_or_default().to_string()
}

#[test]
fn refused_requests_with_huge_paths_add_little_to_the_log() {
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let addr = daemon.api_addr();
    // Let start-up logging settle.
    std::thread::sleep(Duration::from_secs(1));
    let before = log_bytes(daemon.data_dir());

    let path = format!("/v1/{}", "a".repeat(PATH_BYTES));
    for _ in 0..REQUESTS {
        let status = refused_request(addr, &path);
        assert!(status.contains(" 401 "), "{status}");
    }
    daemon.json(&["getinfo"]);
    let grown = log_bytes(daemon.data_dir()) - before;
    eprintln!(
        "{REQUESTS} refused requests with {PATH_BYTES}-byte paths grew the log by {grown} bytes"
    );
    assert!(
        grown < 100 * 1024,
        "the log grew by {grown} bytes:\n{}",
        daemon.log_tail().chars().take(4000).collect::<String>()
    );
    assert!(
        daemon.log().contains("without the right token"),
        "some refusals are logged:\n{}",
        daemon.log_tail().chars().take(4000).collect::<String>()
    );
}

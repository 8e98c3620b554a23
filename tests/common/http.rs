//! Raw HTTP/1.1 requests to a daemon's control API, for tests of what the API takes and
//! refuses below the CLI.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lightfilter::api::types::ErrorBody;

use super::cli::Daemon;

/// The daemon's API token, from its cookie.
pub fn token(daemon: &Daemon) -> String {
    std::fs::read_to_string(daemon.data_dir().join("api.cookie"))
        .unwrap()
        .trim()
        .to_string()
}

/// Sends one raw HTTP/1.1 request; returns the status code and body.
pub fn raw_request(addr: SocketAddr, head: &str, body: &str) -> (u16, String) {
    raw_request_declaring(addr, head, body.len(), body)
}

/// Like [`raw_request`], declaring `length` as the body's length.
pub fn raw_request_declaring(
    addr: SocketAddr,
    head: &str,
    length: usize,
    body: &str,
) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
    let request = format!(
        "{head}\r\nHost: {addr}\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}"
    );
    stream.write_all(request.as_bytes()).unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response
        .split_whitespace()
        .nth(1)
        .and_then(|code| code.parse().ok())
        .unwrap_or_else(|| panic!("no status in {response:?}"));
    let body = response
        .split_once("\r\n\r\n")
        .map(|(_, body)| body.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The error code of an error body.
pub fn error_code(body: &str) -> String {
    let parsed: ErrorBody =
        serde_json::from_str(body).unwrap_or_else(|err| panic!("{err}: {body:?}"));
    parsed.error.code
}

//! Bitcoin Core for the tests that can also run against it: found through `BITCOIND_EXE`,
//! started in a temporary data dir, driven over JSON-RPC (HTTP/1.1 with cookie auth).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use serde_json::{json, Value};

/// The `bitcoind` binary named by `BITCOIND_EXE`, if set.
pub fn bitcoind_exe() -> Option<PathBuf> {
    std::env::var_os("BITCOIND_EXE")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// What a test that needs Bitcoin Core prints when `BITCOIND_EXE` is not set.
pub const SKIPPED: &str = "SKIPPED (needs Bitcoin Core: set BITCOIND_EXE to a bitcoind binary)";

/// The `bitcoind` binary named by `BITCOIND_EXE`; when it is not set, says on standard error
/// that the calling test (named by its thread, as the test harness names it) is skipped. The
/// line is written to the process's standard error itself, past the harness's capture, so
/// that every run shows it (`.ci/run` counts them).
pub fn bitcoind_exe_or_skip() -> Option<PathBuf> {
    let exe = bitcoind_exe();
    if exe.is_none() {
        super::say_skipped(SKIPPED);
    }
    exe
}

/// A port on 127.0.0.1 free at the time of asking (bound, then released).
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free local port")
}

/// A running `bitcoind -regtest` connected only to one peer.
pub struct Bitcoind {
    child: Child,
    datadir: tempfile::TempDir,
    rpc_port: u16,
    p2p_port: u16,
}

impl Bitcoind {
    /// Starts `exe` with compact filters indexed and served, connecting only to `peer`.
    pub fn start(exe: &Path, peer: SocketAddr) -> Bitcoind {
        Self::start_with(exe, peer, false, &[])
    }

    /// Like [`Bitcoind::start`], also accepting inbound P2P connections on
    /// [`Bitcoind::p2p_addr`] (for light clients that sync from Core).
    pub fn start_listening(exe: &Path, peer: SocketAddr) -> Bitcoind {
        Self::start_with(exe, peer, true, &[])
    }

    /// Like [`Bitcoind::start_listening`] with extra options (e.g. `-minrelaytxfee=0.0002`).
    pub fn start_listening_with(exe: &Path, peer: SocketAddr, extra: &[&str]) -> Bitcoind {
        Self::start_with(exe, peer, true, extra)
    }

    /// Core's P2P address on 127.0.0.1.
    pub fn p2p_addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.p2p_port))
    }

    fn start_with(exe: &Path, peer: SocketAddr, listen: bool, extra: &[&str]) -> Bitcoind {
        let datadir = tempfile::tempdir().expect("temp dir");
        let rpc_port = free_port();
        let p2p_port = free_port();
        let child = Command::new(exe)
            .arg("-regtest")
            .arg("-blockfilterindex=1")
            .arg("-peerblockfilters=1")
            .arg(format!("-connect={peer}"))
            .arg(format!("-datadir={}", datadir.path().display()))
            .arg(format!("-rpcport={rpc_port}"))
            .arg(format!("-port={p2p_port}"))
            .arg("-rpcbind=127.0.0.1")
            .arg("-rpcallowip=127.0.0.1")
            .arg("-server=1")
            .arg(format!("-listen={}", u8::from(listen)))
            .args(listen.then_some("-bind=127.0.0.1"))
            .arg("-dnsseed=0")
            .arg("-fixedseeds=0")
            .arg("-discover=0")
            .arg("-listenonion=0")
            .arg("-disablewallet=1")
            .arg("-printtoconsole=0")
            .arg("-debug=net")
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", exe.display()));
        Bitcoind {
            child,
            datadir,
            rpc_port,
            p2p_port,
        }
    }

    /// Core's data directory (its RPC cookie is in `regtest/.cookie`).
    pub fn datadir(&self) -> &Path {
        self.datadir.path()
    }

    /// Core's RPC port on 127.0.0.1.
    pub fn rpc_port(&self) -> u16 {
        self.rpc_port
    }

    /// Core's block count, if it answers.
    pub fn block_count(&self) -> Option<u64> {
        self.rpc("getblockcount", json!([]))
            .ok()
            .and_then(|count| count.as_u64())
    }

    /// Waits (up to `timeout`) until Core's chain is `height` blocks long; panics with Core's
    /// log otherwise.
    pub fn wait_height(&self, height: u32, timeout: Duration) {
        let deadline = std::time::Instant::now() + timeout;
        while self.block_count() != Some(u64::from(height)) {
            assert!(
                std::time::Instant::now() < deadline,
                "Core did not reach height {height}:\n{}",
                self.debug_log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Core's log, for failure messages.
    pub fn debug_log_tail(&self) -> String {
        let path = self.datadir.path().join("regtest").join("debug.log");
        let log = std::fs::read_to_string(path).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(60)..].join("\n")
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Calls an RPC method; `Err` carries Core's error (or the transport failure).
    pub fn rpc(&self, method: &str, params: Value) -> Result<Value, String> {
        let cookie_path = self.datadir.path().join("regtest").join(".cookie");
        let cookie = std::fs::read_to_string(&cookie_path)
            .map_err(|error| format!("no RPC cookie yet ({error})"))?;
        let body =
            json!({"jsonrpc": "1.0", "id": "lightfilter", "method": method, "params": params})
                .to_string();
        let request = format!(
            "POST / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nAuthorization: Basic {auth}\r\n\
             Content-Type: application/json\r\nContent-Length: {length}\r\nConnection: close\r\n\r\n{body}",
            port = self.rpc_port,
            auth = base64(cookie.trim().as_bytes()),
            length = body.len(),
        );
        let mut stream = TcpStream::connect(("127.0.0.1", self.rpc_port))
            .map_err(|error| format!("RPC connect: {error}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(60)))
            .map_err(|error| error.to_string())?;
        stream
            .write_all(request.as_bytes())
            .map_err(|error| format!("RPC write: {error}"))?;
        let mut response = Vec::new();
        stream
            .read_to_end(&mut response)
            .map_err(|error| format!("RPC read: {error}"))?;
        let response = String::from_utf8_lossy(&response).to_string();
        let (head, body) = response
            .split_once("\r\n\r\n")
            .ok_or_else(|| format!("malformed HTTP response: {response:?}"))?;
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        let status = head.lines().next().unwrap_or_default();
        let reply: Value = serde_json::from_str(&body)
            .map_err(|_| format!("{method}: HTTP {status} with body {body:?}"))?;
        if !reply["error"].is_null() {
            return Err(format!("{method}: {}", reply["error"]));
        }
        Ok(reply["result"].clone())
    }
}

impl Drop for Bitcoind {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn dechunk(body: &str) -> String {
    let mut out = String::new();
    let mut rest = body;
    while let Some((size, tail)) = rest.split_once("\r\n") {
        let size = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if size == 0 || tail.len() < size {
            break;
        }
        out.push_str(&tail[..size]);
        rest = tail[size..].trim_start_matches("\r\n");
    }
    out
}

/// Standard base64 with padding (RFC 4648), for HTTP basic auth.
pub fn base64(input: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let bytes = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let triple = (bytes[0] as u32) << 16 | (bytes[1] as u32) << 8 | bytes[2] as u32;
        for position in 0..4 {
            if position <= chunk.len() {
                out.push(ALPHABET[(triple >> (18 - 6 * position) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

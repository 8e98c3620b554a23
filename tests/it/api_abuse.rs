//! What a local process or a web page can try against the control API: connections that
//! trickle proof requests do not lock out the operator, a program relaying the proof request
//! from another address never obtains the token, requests a browser sends for a web page are
//! refused before the token is looked at, and a refused request's input (a preimage) never
//! reaches the log.
#![cfg(target_os = "linux")]

use crate::common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::cli::{json_error_of, Chain, Daemon};
use common::http::{error_code, token};
use common::restore::preimage;

/// Connections that send a proof request's header and then its body a byte at a time.
const TRICKLING_CONNECTIONS: usize = 300;

/// Sends `request` (a whole HTTP/1.1 request) on a new connection to `addr`; returns the
/// status code and the body of the answer.
fn send(addr: SocketAddr, request: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .unwrap();
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

/// A `POST /v1/<method>` with `extra` header lines and an empty JSON body.
fn post(method: &str, host: &str, extra: &str) -> String {
    format!(
        "POST /v1/{method} HTTP/1.1\r\nHost: {host}\r\n{extra}Content-Length: 2\r\n\
         Connection: close\r\n\r\n{{}}"
    )
}

#[test]
fn getinfo_is_answered_while_300_connections_trickle_proof_requests() {
    let limit = lightfilter::os::raise_open_file_limit().expect("raise the open-file limit");
    assert!(limit.soft >= TRICKLING_CONNECTIONS as u64 + 200);
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let addr = daemon.api_addr();
    let mut trickling = Vec::with_capacity(TRICKLING_CONNECTIONS);
    for _ in 0..TRICKLING_CONNECTIONS {
        let mut stream = TcpStream::connect(addr).unwrap();
        let _ = stream.write_all(
            format!("POST /v1/prove HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 1000\r\n\r\n{{")
                .as_bytes(),
        );
        trickling.push(stream);
    }
    // A byte every 200 ms on each, for as long as the test runs.
    let stop = Arc::new(AtomicBool::new(false));
    let trickler = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                for stream in &mut trickling {
                    let _ = stream.write_all(b" ");
                }
                std::thread::sleep(Duration::from_millis(200));
            }
        })
    };
    std::thread::sleep(Duration::from_secs(1));

    let started = Instant::now();
    let info = daemon.cli(&["getinfo", "--json"]);
    let took = started.elapsed();
    eprintln!(
        "getinfo with {TRICKLING_CONNECTIONS} connections trickling proof requests: {} after \
         {:.3} s",
        if info.success { "answered" } else { "failed" },
        took.as_secs_f64()
    );
    assert!(info.success, "{} {}", info.stdout, info.stderr);
    assert!(
        took < Duration::from_secs(5),
        "getinfo took {:.1} s",
        took.as_secs_f64()
    );
    let stopped = daemon.cli(&["stop", "--json"]);
    stop.store(true, Ordering::SeqCst);
    trickler.join().unwrap();
    assert!(stopped.success, "{} {}", stopped.stdout, stopped.stderr);
}

/// Relays connections on its own port to `target`, recording what clients send.
struct Relay {
    addr: SocketAddr,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Relay {
    fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let seen = Arc::new(Mutex::new(Vec::new()));
        let recorded = seen.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                let Ok(mut client) = client else { return };
                let Ok(mut server) = TcpStream::connect(target) else {
                    return;
                };
                let (mut client_reader, mut server_writer) =
                    (client.try_clone().unwrap(), server.try_clone().unwrap());
                let recorded = recorded.clone();
                std::thread::spawn(move || {
                    let mut buffer = [0u8; 4096];
                    while let Ok(n) = client_reader.read(&mut buffer) {
                        if n == 0 || server_writer.write_all(&buffer[..n]).is_err() {
                            break;
                        }
                        recorded.lock().unwrap().extend_from_slice(&buffer[..n]);
                    }
                });
                std::thread::spawn(move || {
                    let _ = std::io::copy(&mut server, &mut client);
                });
            }
        });
        Relay { addr, seen }
    }

    fn seen(&self) -> String {
        String::from_utf8_lossy(&self.seen.lock().unwrap()).into_owned()
    }
}

#[test]
fn a_program_relaying_from_another_address_never_gets_the_token() {
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let relay = Relay::start(daemon.api_addr());
    let addr_file = daemon.data_dir().join("api.addr");
    let real = std::fs::read_to_string(&addr_file).unwrap();
    // The CLI is pointed at the relay, as a stale api.addr would point it at whatever took
    // that port since.
    std::fs::write(&addr_file, relay.addr.to_string()).unwrap();
    let refused = daemon.cli(&["getinfo", "--json"]);
    std::fs::write(&addr_file, real).unwrap();
    assert!(!refused.success, "the CLI trusted the relay");
    let (code, message) = json_error_of(&refused);
    assert_eq!(code, "daemon_not_verified", "{message}");
    let seen = relay.seen();
    assert!(seen.contains("/v1/prove"), "the relay saw no proof request");
    assert!(
        !seen.contains(&token(&daemon)),
        "the token went through the relay"
    );
    assert!(
        daemon.cli(&["getinfo"]).success,
        "the CLI reaches its daemon"
    );
}

#[test]
fn requests_a_browser_sends_for_a_web_page_are_refused_before_the_token() {
    let chain = Chain::start();
    let mut daemon = Daemon::start("alice", &chain);
    let addr = daemon.api_addr();
    let bearer = format!("Authorization: Bearer {}\r\n", token(&daemon));
    // With the token even: a page cannot read it, but it must not matter if it could.
    let (status, body) = send(
        addr,
        &post(
            "stop",
            &addr.to_string(),
            &format!("{bearer}Origin: http://evil.example\r\n"),
        ),
    );
    assert_eq!((status, error_code(&body)), (403, "forbidden".to_string()));
    assert!(body.contains("Origin"), "{body}");
    // A name that a page's domain was made to resolve to this machine (DNS rebinding).
    let (status, body) = send(addr, &post("stop", "evil.example:9737", &bearer));
    assert_eq!((status, error_code(&body)), (403, "forbidden".to_string()));
    assert!(daemon.is_running(), "a refused stop stopped the daemon");
    // localhost and the address itself are this machine.
    let port = addr.port();
    let (status, _) = send(
        addr,
        &post("getinfo", &format!("localhost:{port}"), &bearer),
    );
    assert_eq!(status, 200);
    let (status, _) = send(addr, &post("getinfo", &addr.to_string(), &bearer));
    assert_eq!(status, 200);
}

#[test]
fn a_refused_request_leaves_its_input_out_of_the_log() {
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let (secret, _) = preimage(42);
    // Through the API, as a script would send it: with the newline it read the preimage with.
    let body = format!("{{\"preimage\": \"{secret}\\n\"}}");
    let addr = daemon.api_addr();
    let (status, answer) = send(
        addr,
        &format!(
            "POST /v1/settleinvoice HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {}\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            token(&daemon),
            body.len()
        ),
    );
    assert_eq!(
        (status, error_code(&answer)),
        (400, "invalid_input".to_string())
    );
    let log = daemon.log();
    assert!(
        !log.contains(&secret),
        "the preimage is in the log: {}",
        daemon.log_tail()
    );
    assert!(
        log.contains("control API /v1/settleinvoice: refused (invalid_input)"),
        "the refusal is not logged: {}",
        daemon.log_tail()
    );
}

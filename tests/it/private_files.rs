//! The data directory is its owner's only, and the CLI trusts only its own daemon: an existing
//! directory left open to other users is closed (and the log says what was changed), and an
//! `api.addr` left behind that names another program's port gets neither the token nor the
//! chance to answer a command.
#![cfg(unix)]

use crate::common;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use common::cli::{cli_in, json_error_of, Chain, Daemon};

/// An address the fake daemon hands out: if the CLI prints it, a payment could go there.
const ATTACKER_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// Serves HTTP on 127.0.0.1 as if it were the daemon: a made-up proof for proof requests and
/// a made-up address for anything else. Returns its address and everything it was sent.
fn fake_daemon() -> (SocketAddr, Arc<Mutex<Vec<u8>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let received = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&received);
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(stream) = stream else { return };
            let seen = Arc::clone(&seen);
            std::thread::spawn(move || answer_like_a_daemon(stream, &seen));
        }
    });
    (addr, received)
}

fn answer_like_a_daemon(stream: TcpStream, seen: &Mutex<Vec<u8>>) {
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let mut writer = stream;
    loop {
        let mut head = Vec::new();
        let mut length = 0usize;
        loop {
            let mut line = String::new();
            if reader.read_line(&mut line).unwrap_or(0) == 0 {
                return;
            }
            if let Some(value) = line.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap_or(0);
            }
            head.extend_from_slice(line.as_bytes());
            if line == "\r\n" {
                break;
            }
        }
        let mut body = vec![0u8; length];
        if reader.read_exact(&mut body).is_err() {
            return;
        }
        seen.lock().unwrap().extend_from_slice(&head);
        seen.lock().unwrap().extend_from_slice(&body);
        let answer = if String::from_utf8_lossy(&head).starts_with("POST /v1/prove ") {
            format!("{{\"proof\": \"{}\"}}", "ab".repeat(32))
        } else {
            format!("{{\"address\": \"{ATTACKER_ADDRESS}\"}}")
        };
        let response = format!(
            "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{answer}",
            answer.len()
        );
        if writer.write_all(response.as_bytes()).is_err() {
            return;
        }
    }
}

#[test]
fn a_stale_api_addr_naming_another_program_gets_no_token_and_no_say() {
    let dir = tempfile::tempdir().unwrap();
    let (addr, received) = fake_daemon();
    let token = "5".repeat(64);
    std::fs::write(dir.path().join("api.addr"), format!("{addr}\n")).unwrap();
    std::fs::write(dir.path().join("api.cookie"), format!("{token}\n")).unwrap();

    let run = cli_in(dir.path(), &["newaddress", "--json"]);
    let sent = String::from_utf8_lossy(&received.lock().unwrap()).to_string();
    assert!(
        !sent.contains(&token),
        "the token was sent to another program:\n{sent}"
    );
    assert!(
        !sent.to_ascii_lowercase().contains("authorization"),
        "{sent}"
    );
    assert!(
        !run.success,
        "the CLI trusted another program: {}",
        run.stdout
    );
    assert!(!run.stdout.contains(ATTACKER_ADDRESS), "{}", run.stdout);
    let (code, message) = json_error_of(&run);
    assert_eq!(code, "daemon_not_verified", "{message}");
    assert!(message.contains("api.addr"), "{message}");
    assert!(message.contains("not sent"), "{message}");

    // Without --json: a clear message on standard error, nothing on standard output.
    let run = cli_in(dir.path(), &["newaddress"]);
    assert!(!run.success);
    assert!(run.stdout.is_empty(), "{}", run.stdout);
    assert!(
        run.stderr
            .contains("did not prove it is this data directory's daemon"),
        "{}",
        run.stderr
    );
    assert!(!String::from_utf8_lossy(&received.lock().unwrap()).contains(&token));
}

/// Every file and directory under `dir` (symbolic links aside), with its mode.
fn modes(dir: &Path) -> Vec<(PathBuf, u32)> {
    let mut found = vec![(
        dir.to_path_buf(),
        std::fs::metadata(dir).unwrap().permissions().mode() & 0o777,
    )];
    for entry in std::fs::read_dir(dir).unwrap() {
        let entry = entry.unwrap();
        let meta = std::fs::symlink_metadata(entry.path()).unwrap();
        if meta.is_dir() {
            found.extend(modes(&entry.path()));
        } else if meta.is_file() {
            found.push((entry.path(), meta.permissions().mode() & 0o777));
        }
    }
    found
}

fn open_up(dir: &Path) {
    for (path, mode) in modes(dir) {
        let open = if path.is_dir() { 0o755 } else { mode | 0o644 };
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(open)).unwrap();
    }
}

#[test]
fn a_data_directory_open_to_others_is_closed_and_the_log_says_so() {
    let chain = Chain::start();
    let mut daemon = Daemon::start("alice", &chain);
    let fresh = modes(daemon.data_dir());
    assert!(
        fresh.iter().all(|(_, mode)| mode & 0o077 == 0),
        "a new data directory has files open to others: {fresh:?}"
    );

    // Opened up while the daemon was down (a copy, a restore, a careless chmod -R), with
    // ldk/ (channel state, payment preimages; written within a minute of start) and a file
    // of the operator's in a directory of its own.
    daemon.kill_hard();
    std::fs::create_dir_all(daemon.data_dir().join("ldk")).unwrap();
    let notes = daemon.data_dir().join("backup/notes.txt");
    std::fs::create_dir_all(notes.parent().unwrap()).unwrap();
    std::fs::write(&notes, "mine").unwrap();
    open_up(daemon.data_dir());
    std::fs::set_permissions(&notes, std::fs::Permissions::from_mode(0o666)).unwrap();
    daemon.restart(&chain, &[]);

    let open: Vec<_> = modes(daemon.data_dir())
        .into_iter()
        .filter(|(_, mode)| mode & 0o077 != 0)
        .collect();
    assert!(open.is_empty(), "still open to others: {open:?}");
    let mode = std::fs::metadata(&notes).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let ldk = std::fs::metadata(daemon.data_dir().join("ldk")).unwrap();
    assert_eq!(ldk.permissions().mode() & 0o777, 0o700);
    let log = daemon.log();
    assert!(
        log.contains("was open to other users") && log.contains("notes.txt"),
        "the log does not say what was changed:\n{}",
        daemon.log_tail()
    );
    daemon.json(&["getinfo"]);
}

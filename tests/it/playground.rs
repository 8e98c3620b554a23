//! `lightfilter playground`: the README's first command runs to completion and says the
//! payment succeeded; with `--keep-running` it prints CLI commands that work while it stays
//! up, mines blocks, and stops on Ctrl-C, removing its directory.

use crate::common;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::Stdio;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::cli::{cli_in, lightfilter, send_signal, wait_until, KillOnDrop, TIMEOUT};

/// Playground runs include node start-up, funding, a channel and a payment.
const PLAYGROUND_TIMEOUT: Duration = Duration::from_secs(300);

#[test]
fn the_playground_pays_an_invoice_and_exits() {
    let child = lightfilter()
        .arg("playground")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the playground");
    let pid = child.id();
    // Read the output while it runs (a full pipe would block it); give up after the limit.
    let (done_tx, done) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = done_tx.send(child.wait_with_output());
    });
    let output = match done.recv_timeout(PLAYGROUND_TIMEOUT) {
        Ok(output) => output.expect("the playground's output"),
        Err(_) => {
            send_signal(pid, "KILL");
            panic!("the playground did not finish");
        }
    };
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "exit {}\n{stdout}\n{stderr}",
        output.status
    );
    let succeeded = stdout
        .lines()
        .find(|line| line.starts_with("payment succeeded: alice paid bob"))
        .unwrap_or_else(|| panic!("no payment line in:\n{stdout}"));
    assert!(succeeded.contains("payment hash"), "{succeeded}");
    assert!(
        stdout.contains("opened a 500000 sat channel to bob: channel id"),
        "{stdout}"
    );
    assert!(
        stdout
            .lines()
            .any(|line| line.starts_with("bob:") && line.contains("lightning 50000 sat")),
        "{stdout}"
    );
}

/// Starts `lightfilter playground --keep-running` and reads its transcript up to the
/// "Press Ctrl-C" line; returns the guarded process, the transcript and the rest of its output.
fn start_kept_playground() -> (KillOnDrop, Vec<String>, mpsc::Receiver<String>) {
    let mut child = KillOnDrop::new(
        lightfilter()
            .args(["playground", "--keep-running"])
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("start the playground"),
    );
    let stdout = child.child().stdout.take().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut transcript = Vec::new();
    let deadline = Instant::now() + PLAYGROUND_TIMEOUT;
    while !transcript
        .last()
        .is_some_and(|line: &String| line.starts_with("Press Ctrl-C"))
    {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = lines
            .recv_timeout(left)
            .unwrap_or_else(|_| panic!("the playground stalled:\n{}", transcript.join("\n")));
        transcript.push(line);
    }
    (child, transcript, lines)
}

/// The data directory of `node` in the printed `getinfo` command.
fn node_dir(transcript: &[String], node: &str) -> PathBuf {
    let text = transcript.join("\n");
    let getinfo = transcript
        .iter()
        .find(|line| line.contains(&format!("/{node} getinfo")))
        .unwrap_or_else(|| panic!("no getinfo command for {node}:\n{text}"));
    assert!(
        getinfo.contains("--network regtest --datadir "),
        "{getinfo}"
    );
    PathBuf::from(
        getinfo
            .split("--datadir ")
            .nth(1)
            .and_then(|rest| rest.strip_suffix(" getinfo"))
            .unwrap(),
    )
}

/// Waits for the process to exit; returns its status.
fn wait_exit(child: &mut KillOnDrop) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.child().try_wait().unwrap() {
            return status;
        }
        assert!(Instant::now() < deadline, "the playground did not stop");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn the_playground_keeps_running_for_the_cli_until_ctrl_c() {
    let (mut child, transcript, _lines) = start_kept_playground();
    let text = transcript.join("\n");
    assert!(text.contains("payment succeeded"), "{text}");

    // The printed commands name each node's data directory; run alice's by hand.
    let alice_dir = node_dir(&transcript, "alice");
    let run = cli_in(&alice_dir, &["getinfo", "--json"]);
    assert!(run.success, "{}", run.stderr);
    let info: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(info["num_channels"], 1);
    let height = info["block_height"].as_u64().unwrap();
    let run = cli_in(&alice_dir, &["payments", "--json"]);
    let payments: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(payments[0]["status"], "succeeded", "{payments}");

    // Blocks keep coming, so on-chain actions confirm.
    wait_until("the playground to mine a block", || {
        let run = cli_in(&alice_dir, &["getinfo", "--json"]);
        serde_json::from_str::<serde_json::Value>(&run.stdout)
            .ok()
            .and_then(|info| info["block_height"].as_u64())
            .is_some_and(|now| now > height)
    });

    send_signal(child.child().id(), "INT");
    let status = wait_exit(&mut child);
    assert!(status.success(), "exit status {status}");
    let root = alice_dir.parent().unwrap();
    assert!(!root.exists(), "{} was left behind", root.display());
}

#[test]
fn stopping_a_playground_node_ends_the_playground() {
    let (mut child, transcript, lines) = start_kept_playground();
    let bob_dir = node_dir(&transcript, "bob");
    let run = cli_in(&bob_dir, &["stop"]);
    assert!(run.success, "{}", run.stderr);
    let status = wait_exit(&mut child);
    assert!(status.success(), "exit status {status}");
    let rest: Vec<String> = lines.iter().collect();
    assert!(
        rest.iter().any(|line| line == "bob was asked to stop"),
        "{rest:?}"
    );
    assert!(!bob_dir.parent().unwrap().exists());
}

//! `lightfilter daemon` as a process: one per data directory, clean stops on SIGTERM and
//! Ctrl-C, clear failures at start-up, a loud warning for a non-loopback API address, a clear
//! message from every client command when no daemon runs, and no half-dead daemon: a task
//! that panics or ends stops it with a failure.

use crate::common;

use std::process::Stdio;

use bitcoin::hashes::Hash;
use common::cli::{
    cli_in, closed_port, daemon_command, json_error_of, lightfilter_in, send_signal, wait_for_exit,
    Chain, Daemon, KillOnDrop,
};
use lightfilter::tasks::fault::FAULT_VAR;

/// Runs `lightfilter --network regtest --datadir <dir> daemon <args>` to its end (it must
/// fail to start); returns whether it succeeded and its standard error.
fn daemon_run(dir: &std::path::Path, args: &[&str]) -> (bool, String) {
    let child = lightfilter_in(dir)
        .arg("daemon")
        .args(args)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lightfilter daemon");
    let mut child = KillOnDrop::new(child);
    wait_for_exit(
        child.child(),
        "the daemon that should have refused to start",
    );
    let output = child.release().wait_with_output().expect("daemon output");
    (
        output.status.success(),
        String::from_utf8_lossy(&output.stderr).to_string(),
    )
}

#[test]
fn a_second_daemon_on_the_same_data_dir_is_refused_and_the_first_keeps_its_files() {
    let chain = Chain::start();
    let mut first = Daemon::start("alice", &chain);
    let addr_before = std::fs::read(first.data_dir().join("api.addr")).unwrap();
    let cookie_before = std::fs::read(first.data_dir().join("api.cookie")).unwrap();
    let node_id = first.node_id();

    let peer = chain.addr().to_string();
    let (success, stderr) = daemon_run(first.data_dir(), &["--bitcoin-peer", &peer]);
    assert!(
        !success,
        "a second daemon started on the same data directory"
    );
    assert!(
        stderr.contains("another lightfilter daemon is running"),
        "{stderr}"
    );
    assert!(first.is_running());
    assert_eq!(
        std::fs::read(first.data_dir().join("api.addr")).unwrap(),
        addr_before
    );
    assert_eq!(
        std::fs::read(first.data_dir().join("api.cookie")).unwrap(),
        cookie_before
    );
    assert_eq!(first.node_id(), node_id);
}

#[test]
fn sigterm_and_ctrl_c_stop_the_daemon_cleanly_and_it_starts_again() {
    let chain = Chain::start();
    let mut daemon = Daemon::start("alice", &chain);
    let node_id = daemon.node_id();
    let dir = daemon.data_dir().to_path_buf();
    send_signal(daemon.pid(), "TERM");
    assert!(daemon.wait_exit(), "exit status 0 after SIGTERM");
    assert!(!dir.join("api.addr").exists());
    assert!(!dir.join("api.cookie").exists());
    let log = daemon.log();
    assert!(
        log.contains("terminated") && log.contains("stopped"),
        "{log}"
    );

    // The same data directory again: same node, then Ctrl-C (SIGINT) once it runs.
    let mut again = KillOnDrop::new(common::cli::spawn_daemon(&dir, chain.addr(), &[]));
    let info = common::cli::wait_for_value("the restarted daemon to run", || {
        let run = cli_in(&dir, &["getinfo", "--json"]);
        let info: serde_json::Value = serde_json::from_str(&run.stdout).ok()?;
        (run.success && info["state"] == "running").then_some(info)
    });
    assert_eq!(info["node_id"], node_id.as_str());
    send_signal(again.child().id(), "INT");
    let status = again.child().wait().expect("wait for the daemon");
    assert!(status.success(), "exit status after Ctrl-C: {status}");
    assert!(!dir.join("api.addr").exists());
    drop(daemon);
}

#[test]
fn ctrl_c_the_moment_the_api_answers_stops_the_daemon_cleanly() {
    let chain = Chain::start();
    let dir = tempfile::tempdir().unwrap();
    // The daemon listens for signals before it serves its API: a Ctrl-C from the moment the
    // API's address is written is a clean stop, whether the node has started yet or not.
    for round in 0..5 {
        let _ = std::fs::remove_file(dir.path().join("api.addr"));
        let mut daemon = KillOnDrop::new(common::cli::spawn_daemon(dir.path(), chain.addr(), &[]));
        common::cli::wait_until("the API's address to be written", || {
            dir.path().join("api.addr").exists()
        });
        send_signal(daemon.child().id(), "INT");
        let status = daemon.child().wait().expect("wait for the daemon");
        assert!(
            status.success(),
            "round {round}: exit status after Ctrl-C: {status}"
        );
    }
}

#[test]
fn start_up_failures_say_what_is_wrong() {
    let dir = tempfile::tempdir().unwrap();
    let (success, stderr) = daemon_run(dir.path(), &["--bitcoin-peer", "localhost"]);
    assert!(!success);
    assert!(
        stderr.contains("invalid configuration") && stderr.contains("Bitcoin peer"),
        "{stderr}"
    );

    // A non-loopback API address is warned about loudly; this one is not on the machine, so
    // the daemon stops with the reason before the node starts.
    let chain = Chain::start();
    let peer = chain.addr().to_string();
    let fresh = dir.path().join("fresh");
    let (success, stderr) = daemon_run(
        &fresh,
        &["--bitcoin-peer", &peer, "--api-listen", "192.0.2.1:9737"],
    );
    assert!(!success);
    assert!(stderr.contains("NOT ONLY ON THIS MACHINE"), "{stderr}");
    assert!(
        stderr.contains("cannot start the control API")
            && stderr.contains("cannot listen for the control API on 192.0.2.1:9737"),
        "{stderr}"
    );
    let log = std::fs::read_to_string(fresh.join("lightfilter.log")).unwrap();
    assert!(log.contains("NOT ONLY ON THIS MACHINE"), "{log}");
    assert!(!fresh.join("api.addr").exists());
    // The API starts before the node, so a node that could not serve it made no seed.
    assert!(
        !fresh.join("seed").exists(),
        "no seed for a node that never started"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode =
            |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&fresh), 0o700, "a new data directory is owner-only");
        assert_eq!(mode(&fresh.join("lightfilter.log")), 0o600);
    }
}

#[test]
fn client_commands_without_a_daemon_say_so() {
    let dir = tempfile::tempdir().unwrap();
    let commands: [&[&str]; 5] = [
        &["getinfo"],
        &["balance"],
        &["channels"],
        &["invoice", "1000"],
        &["stop"],
    ];
    for args in commands {
        let run = cli_in(dir.path(), args);
        assert!(!run.success, "{args:?}");
        assert!(
            run.stderr.contains("no lightfilter daemon is running on")
                && run.stderr.contains("api.addr does not exist"),
            "{args:?}: {}",
            run.stderr
        );
        let mut json_args = args.to_vec();
        json_args.push("--json");
        let run = cli_in(dir.path(), &json_args);
        assert!(!run.success);
        assert_eq!(json_error_of(&run).0, "daemon_not_running", "{args:?}");
    }

    // Files left by a daemon that was killed: nothing answers at the address.
    std::fs::write(
        dir.path().join("api.addr"),
        format!("127.0.0.1:{}\n", closed_port()),
    )
    .unwrap();
    std::fs::write(dir.path().join("api.cookie"), "00".repeat(32)).unwrap();
    let run = cli_in(dir.path(), &["getinfo"]);
    assert!(!run.success);
    assert!(
        run.stderr.contains("no lightfilter daemon is running on")
            && run.stderr.contains("did not stop cleanly"),
        "{}",
        run.stderr
    );
    let run = cli_in(dir.path(), &["getinfo", "--json"]);
    assert_eq!(json_error_of(&run).0, "daemon_not_running");

    // Bad input is reported before looking for a daemon.
    let run = cli_in(dir.path(), &["invoice", "99999999999999999999999"]);
    assert!(!run.success);
    assert!(run.stderr.contains("too large"), "{}", run.stderr);
}

/// Runs a daemon on a fresh data directory with `fault` injected (see [`FAULT_VAR`]) once its
/// control API answers, until it exits; returns its exit status and log.
fn run_daemon_with_fault(chain: &Chain, fault: &str) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = KillOnDrop::new(
        daemon_command(dir.path(), chain.addr(), &[])
            .env(FAULT_VAR, fault)
            .spawn()
            .expect("start lightfilter daemon"),
    );
    let status = wait_for_exit(daemon.child(), &format!("the daemon given {fault}"));
    let log = std::fs::read_to_string(dir.path().join("lightfilter.log")).unwrap();
    assert!(log.contains("control API on"), "it ran first:\n{log}");
    (status, log)
}

#[test]
fn a_panic_in_the_chain_follower_stops_the_daemon_at_once() {
    let chain = Chain::start();
    let (status, log) = run_daemon_with_fault(&chain, "panic:chain follower");
    assert!(!status.success(), "exit status after a panic: {status}");
    assert!(
        log.contains("the chain follower task panicked"),
        "the log names the task:\n{log}"
    );
}

#[test]
fn a_chain_task_ending_while_the_daemon_runs_stops_it_with_a_failure() {
    let chain = Chain::start();
    let (status, log) = run_daemon_with_fault(&chain, "end:fee sampler");
    assert_eq!(status.code(), Some(1), "{log}");
    assert!(
        log.contains("the fee sampler task ended while the node was running"),
        "the log names the task:\n{log}"
    );
    assert!(log.contains("node stopped"), "a clean stop:\n{log}");
}

#[test]
fn the_api_shows_a_first_sync_in_progress_and_refuses_sends_until_it_is_done() {
    let chain = Chain::start();
    chain.mine(100_000);
    let tip = chain.height();
    let mut daemon = Daemon::spawn("first-sync", &chain, &[]);
    daemon.wait_api();
    let address = bitcoin::Address::from_script(
        &bitcoin::ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([9; 32])),
        bitcoin::Network::Regtest,
    )
    .expect("an address")
    .to_string();

    let mut progress_seen = Vec::new();
    let mut refusal = None;
    loop {
        let info = daemon.json(&["getinfo"]);
        if info["state"] == "running" {
            break;
        }
        assert_eq!(info["state"], "starting", "{info}");
        assert_eq!(info["synced"], false, "{info}");
        let progress = info["sync"]["progress"].as_f64().expect("a progress");
        progress_seen.push(progress);
        if progress > 0.0 && progress < 1.0 && refusal.is_none() {
            refusal = Some(daemon.json_error(&["send", &address, "10000"]));
        }
    }
    println!("progress seen while starting: {progress_seen:?}");
    assert!(
        progress_seen.iter().any(|p| *p > 0.0 && *p < 1.0),
        "getinfo showed the sync between 0 and 1 at least once: {progress_seen:?}"
    );
    let (code, message) = refusal.expect("a send was tried during the sync");
    assert_eq!(code, "not_synced", "{message}");
    assert!(
        message.contains('%'),
        "the refusal gives the progress: {message}"
    );

    let info = daemon.json(&["getinfo", "--wait-synced"]);
    assert_eq!(info["sync"]["headers_height"], tip);
    assert_eq!(info["sync"]["progress"], 1.0);
    assert!(info["sync"]["bytes_received"].as_u64().expect("bytes") > 0);
    let (code, _) = daemon.json_error(&["send", &address, "10000"]);
    assert_eq!(
        code, "insufficient_funds",
        "once synced the send is judged on its merits"
    );
}

/// Polls `daemon` until its first sync has stored headers up to a quarter of `tip` (a fresh
/// node syncs headers only up to the tip first), asserting that it is still starting; returns
/// the headers' height then.
fn wait_for_a_quarter_of_the_first_sync(daemon: &Daemon, tip: u32) -> u64 {
    loop {
        let info = daemon.json(&["getinfo"]);
        assert_eq!(
            info["state"], "starting",
            "a quarter of the way before the sync ended: {info}"
        );
        let headers = info["sync"]["headers_height"].as_u64().expect("a height");
        if headers >= u64::from(tip) / 4 {
            return headers;
        }
    }
}

#[test]
fn a_first_sync_killed_midway_resumes_where_it_was() {
    let chain = Chain::start();
    chain.mine(100_000);
    let tip = chain.height();
    let mut daemon = Daemon::spawn("killed-first-sync", &chain, &[]);
    daemon.wait_api();
    let killed_at = wait_for_a_quarter_of_the_first_sync(&daemon, tip);
    daemon.kill_hard();
    let first_bytes = {
        // What the first run received up to the kill is not known any more; what the second
        // run receives must be what is left, not the whole chain again.
        daemon.respawn(&chain, &[]);
        daemon.wait_api();
        daemon.json(&["getinfo", "--wait-synced"])
    };
    assert_eq!(first_bytes["state"], "running");
    assert_eq!(first_bytes["sync"]["filters_height"], tip);
    let resumed_bytes = first_bytes["sync"]["bytes_received"]
        .as_u64()
        .expect("bytes");

    let mut fresh = Daemon::spawn("uninterrupted-first-sync", &chain, &[]);
    fresh.wait_api();
    let full = fresh.json(&["getinfo", "--wait-synced"]);
    let full_bytes = full["sync"]["bytes_received"].as_u64().expect("bytes");
    println!(
        "killed with headers at {killed_at} of {tip}; the restart received {resumed_bytes} B, \
         an uninterrupted first sync {full_bytes} B"
    );
    let left = 1.0 - killed_at as f64 / f64::from(tip);
    assert!(
        (resumed_bytes as f64) < full_bytes as f64 * (left + 0.1),
        "the restart fetched what was left ({:.0} % of the chain), not everything again",
        left * 100.0
    );
}

#[test]
fn a_stop_during_the_first_sync_ends_the_daemon_cleanly_and_the_next_start_resumes() {
    let chain = Chain::start();
    chain.mine(100_000);
    let tip = chain.height();
    let mut daemon = Daemon::spawn("stopped-first-sync", &chain, &[]);
    daemon.wait_api();
    let stopped_at = wait_for_a_quarter_of_the_first_sync(&daemon, tip);
    assert_eq!(daemon.json(&["stop"])["stopping"], true);
    assert!(
        daemon.wait_exit(),
        "exit status 0 after a stop while starting"
    );
    let dir = daemon.data_dir();
    assert!(!dir.join("api.addr").exists());
    assert!(!dir.join("api.cookie").exists());
    let log = daemon.log();
    assert!(
        log.contains("stop requested")
            && log.contains("stopping before the node finished starting")
            && log.contains("control API stopped")
            && log.contains("stopped"),
        "{log}"
    );
    assert!(!log.contains("node stopped"), "the node never ran:\n{log}");

    daemon.respawn(&chain, &[]);
    daemon.wait_api();
    let info = daemon.json(&["getinfo"]);
    let resumed_from = info["sync"]["headers_height"].as_u64().expect("a height");
    assert!(
        resumed_from >= stopped_at,
        "the restart resumes at {resumed_from}, not below {stopped_at}: {info}"
    );
    let synced = daemon.json(&["getinfo", "--wait-synced"]);
    assert_eq!(synced["state"], "running");
    assert_eq!(synced["sync"]["filters_height"], tip);
}

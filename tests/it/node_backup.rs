//! Channel backup and recovery. A node whose data directory is lost (an SD card that died)
//! comes back from its 24 words and the live mirror of its channel state (`--backup-dir`),
//! with every channel open and both sides' balances as they were; a mirror that disappears
//! while the node runs stops channel updates loudly, and neither copy misses an acknowledged
//! update when it comes back.

use crate::common;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::Amount;
use common::cli::*;
use common::restore::{assert_not_closed, copy_dir, local_msat, pay, wait_usable};
use serde_json::Value;

/// Files of a key-value store directory that the mirror holds (all but the network graph,
/// the scorer, the mirror's marker and temporary files), by path relative to `dir`. A file or
/// directory that a running node removes while it is read is left out.
fn mirrored_files(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        let Some(entries) = present(std::fs::read_dir(dir)) else {
            return;
        };
        for entry in entries {
            let Some(entry) = present(entry) else {
                continue;
            };
            let path = entry.path();
            let name = path.file_name().unwrap().to_string_lossy().into_owned();
            if path.is_dir() {
                walk(root, &path, files);
            } else if !(name.ends_with(".tmp")
                || (dir == root
                    && ["network_graph", "scorer", "lightfilter_backup"].contains(&name.as_str())))
            {
                if let Some(content) = present(std::fs::read(&path)) {
                    let relative = path.strip_prefix(root).unwrap().to_path_buf();
                    files.insert(relative, content);
                }
            }
        }
    }
    /// The value, or `None` where the file is gone; any other error fails the test.
    fn present<T>(result: std::io::Result<T>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(err) if err.kind() == std::io::ErrorKind::NotFound => None,
            Err(err) => panic!("reading a store directory: {err}"),
        }
    }
    let mut files = BTreeMap::new();
    walk(dir, dir, &mut files);
    files
}

/// Asserts that the running node's two copies agree. They are read one after the other, so a
/// write may fall between the two reads: the copies are read again until one pair agrees, and
/// that pair is what the assertion is about (a later write cannot fail it).
fn assert_copies_agree(primary: &Path, mirror: &Path) {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (primary_files, mirror_files) = (mirrored_files(primary), mirrored_files(mirror));
        match difference(&primary_files, &mirror_files) {
            None => {
                assert!(
                    !primary_files.is_empty(),
                    "no channel state in {}",
                    primary.display()
                );
                return;
            }
            Some(difference) => assert!(
                Instant::now() < deadline,
                "after {} s, {difference}",
                TIMEOUT.as_secs()
            ),
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Asserts that the two store directories hold the same mirrored files (only the channel
/// monitors and their updates when `monitors_only`), naming those that differ. For copies
/// that nothing writes any more: the node is stopped.
fn assert_same_files(primary: &Path, mirror: &Path, monitors_only: bool) {
    let monitors = |files: BTreeMap<PathBuf, Vec<u8>>| -> BTreeMap<PathBuf, Vec<u8>> {
        files
            .into_iter()
            .filter(|(path, _)| {
                !monitors_only
                    || path.starts_with("monitors")
                    || path.starts_with("monitor_updates")
            })
            .collect()
    };
    let (primary, mirror) = (
        monitors(mirrored_files(primary)),
        monitors(mirrored_files(mirror)),
    );
    assert!(!primary.is_empty(), "no channel state in {primary:?}");
    if let Some(difference) = difference(&primary, &mirror) {
        panic!("{difference}");
    }
}

/// What differs between two copies' files, if anything: the paths and each copy's length.
fn difference(
    primary: &BTreeMap<PathBuf, Vec<u8>>,
    mirror: &BTreeMap<PathBuf, Vec<u8>>,
) -> Option<String> {
    let differing: Vec<&PathBuf> = primary
        .keys()
        .chain(mirror.keys().filter(|path| !primary.contains_key(*path)))
        .filter(|path| primary.get(*path) != mirror.get(*path))
        .collect();
    let lengths = |files: &BTreeMap<PathBuf, Vec<u8>>| -> Vec<Option<usize>> {
        differing
            .iter()
            .map(|path| files.get(*path).map(Vec::len))
            .collect()
    };
    (!differing.is_empty()).then(|| {
        format!(
            "the copies differ in {differing:?} (primary has {:?}, mirror has {:?})",
            lengths(primary),
            lengths(mirror)
        )
    })
}

#[test]
fn the_seed_goes_to_words_and_back_and_bad_words_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let first = dir.path().join("first");
    // A seed as a daemon makes it: 32 random bytes.
    std::fs::create_dir(&first).unwrap();
    std::fs::write(first.join("seed"), [0x5au8; 32]).unwrap();
    let shown = cli_in(&first, &["seed", "--words", "--json"]);
    assert!(shown.success, "{}", shown.stderr);
    assert!(shown.stderr.contains("warning"), "{}", shown.stderr);
    let words: Value = serde_json::from_str(&shown.stdout).unwrap();
    let words = words["words"].as_str().unwrap().to_string();
    assert_eq!(words.split(' ').count(), 24);

    let second = dir.path().join("second");
    let mut wrong: Vec<&str> = words.split(' ').collect();
    wrong[9] = "bitcoinz";
    let refused = init_with_words(&second, &wrong.join(" "));
    assert!(!refused.success);
    let (code, message) = json_error_of(&refused);
    assert_eq!(code, "invalid_input");
    assert!(
        message.contains("word 10") && message.contains("bitcoinz"),
        "{message}"
    );
    assert!(!second.exists(), "bad words create nothing");

    let made = init_with_words(&second, &words);
    assert!(made.success, "{}", made.stdout);
    assert_eq!(
        std::fs::read(second.join("seed")).unwrap(),
        vec![0x5au8; 32]
    );
    let again = init_with_words(&second, &words);
    assert!(!again.success);
    assert!(json_error_of(&again).1.contains("seed already"));
    // Without --words there is nothing to show.
    assert!(!cli_in(&second, &["seed"]).success);
}

#[test]
fn a_node_whose_card_died_comes_back_from_its_words_and_its_mirror() {
    let chain = Chain::start();
    let backup = tempfile::tempdir().unwrap();
    let mirror = backup.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let mirror_arg = mirror.to_str().unwrap().to_string();
    let birthday = chain.height().to_string();
    let mut a = Daemon::start_with("alice", &chain, &["--backup-dir", &mirror_arg]);
    let b = Daemon::start("bob", &chain);
    a.fund(&chain, Amount::from_sat(1_000_000));
    let channel_id = a.open_usable_channel(&chain, &b, 600_000);
    let funding = funding_outpoint(&chain, &a, &channel_id, 600_000);
    for _ in 0..3 {
        pay(&a, &b, 20_000);
    }
    for _ in 0..2 {
        pay(&b, &a, 5_000);
    }
    let info = a.json(&["getinfo"]);
    assert_eq!(info["backup"]["state"], "ok", "{info}");
    assert_eq!(info["backup"]["dir"], mirror_arg.as_str());
    assert!(!mirror.join("seed").exists(), "the mirror holds no seed");
    let a_local = local_msat(&a, &channel_id);
    let b_local = local_msat(&b, &channel_id);
    let a_onchain = a.confirmed_sat();
    let node_id = a.node_id();
    let words = a.json(&["seed", "--words"])["words"]
        .as_str()
        .unwrap()
        .to_string();
    // Let the channel manager's last save after the payments happen, as it would on a node
    // that lost its card some time after its last payment.
    std::thread::sleep(Duration::from_secs(2));

    // The card dies: the data directory goes while the daemon runs, then the daemon.
    let _ = std::fs::remove_dir_all(a.data_dir());
    a.kill_hard();
    let _ = std::fs::remove_dir_all(a.data_dir());
    assert!(!a.data_dir().exists());

    // A new data directory from the 24 words, and a start from the mirror.
    let new_dir = tempfile::Builder::new()
        .prefix("lightfilter-alice-restored-")
        .tempdir()
        .unwrap();
    let made = init_with_words(new_dir.path(), &words);
    assert!(made.success, "{} {}", made.stdout, made.stderr);
    let made: Value = serde_json::from_str(&made.stdout).unwrap();
    assert_eq!(made["node_id"], node_id.as_str());
    let a = Daemon::start_in(
        "alice restored",
        new_dir,
        &chain,
        &[
            "--restore-from",
            &mirror_arg,
            "--wallet-birthday",
            &birthday,
            "--backup-dir",
            &mirror_arg,
        ],
    );
    assert_eq!(a.node_id(), node_id);
    wait_usable([&a, &b], &channel_id);
    assert_eq!(local_msat(&a, &channel_id), a_local);
    assert_eq!(local_msat(&b, &channel_id), b_local);
    wait_until("the wallet rescanned from its birthday", || {
        a.confirmed_sat() == a_onchain
    });

    // The channel carries payments both ways again, and nobody closed it.
    pay(&a, &b, 10_000);
    pay(&b, &a, 7_000);
    assert_eq!(local_msat(&a, &channel_id), a_local - 3_000_000);
    assert_eq!(local_msat(&b, &channel_id), b_local + 3_000_000);
    assert_not_closed(&chain, funding);
    assert_eq!(a.json(&["getinfo"])["backup"]["state"], "ok");
    assert_copies_agree(&a.data_dir().join("ldk"), &mirror);
}

#[test]
fn a_mirror_that_disappears_stops_channel_updates_and_loses_no_acknowledged_one() {
    let chain = Chain::start();
    let backup = tempfile::tempdir().unwrap();
    let mirror = backup.path().join("mirror");
    let away = backup.path().join("unplugged");
    std::fs::create_dir(&mirror).unwrap();
    let mirror_arg = mirror.to_str().unwrap().to_string();
    let a_flags = ["--backup-dir", mirror_arg.as_str()];
    let mut a = Daemon::start_with("alice", &chain, &a_flags);
    let b = Daemon::start("bob", &chain);
    a.fund(&chain, Amount::from_sat(1_000_000));
    let channel_id = a.open_usable_channel(&chain, &b, 600_000);
    let funding = funding_outpoint(&chain, &a, &channel_id, 600_000);
    pay(&a, &b, 20_000);
    let a_local = local_msat(&a, &channel_id);
    // The device goes away while the node is idle (a write racing with its removal fails
    // too, but may have reached the device before it went).
    std::thread::sleep(Duration::from_secs(2));

    // The backup device goes away.
    std::fs::rename(&mirror, &away).unwrap();
    let invoice = b.json(&["invoice", "10000000"]);
    let refused = a.cli(&["pay", invoice["bolt11"].as_str().unwrap(), "--json"]);
    assert!(!refused.success, "a payment went out without its backup");
    if a.is_running() {
        let info = a.json(&["getinfo"]);
        assert_eq!(info["backup"]["state"], "failing", "{info}");
        assert!(
            info["backup"]["last_error"]
                .as_str()
                .unwrap()
                .contains("gone"),
            "{info}"
        );
        // A payment to A needs a channel update A cannot back up: A stops rather than
        // acknowledge it.
        let _ = b.cli(&[
            "keysend",
            &a.node_id(),
            "5000000",
            "--timeout",
            "5",
            "--json",
        ]);
    }
    assert!(!a.wait_exit(), "alice stopped with a failure");
    let log = a.log();
    assert!(
        log.lines().any(|line| line.contains("ERROR")
            && line.contains("backup directory")
            && line.contains(&mirror_arg)
            && line.contains("refused")),
        "no error naming the backup directory in the log:\n{}",
        a.log_tail()
    );
    assert!(
        !mirror.exists(),
        "the missing mirror was not recreated on the node's own storage"
    );

    // The device comes back: both copies hold every channel update acknowledged (the
    // channel manager, a snapshot LDK may always have to catch up, can be newer on the
    // primary copy, and the next start copies it over).
    std::fs::rename(&away, &mirror).unwrap();
    assert_same_files(&a.data_dir().join("ldk"), &mirror, true);

    // The node starts again and its channel resumes where both copies left it.
    a.restart(&chain, &a_flags);
    wait_usable([&a, &b], &channel_id);
    wait_until("bob's keysend to end", || {
        b.json(&["payments"])
            .as_array()
            .unwrap()
            .iter()
            .all(|p| p["direction"] != "outbound" || p["status"] != "pending")
    });
    let received: u64 = a
        .json(&["payments"])
        .as_array()
        .unwrap()
        .iter()
        .filter(|p| p["direction"] == "inbound" && p["status"] == "succeeded")
        .map(|p| p["amount_msat"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(local_msat(&a, &channel_id), a_local + received);
    pay(&a, &b, 10_000);
    pay(&b, &a, 4_000);
    assert_not_closed(&chain, funding);
    assert_eq!(a.json(&["getinfo"])["backup"]["state"], "ok");
    assert_copies_agree(&a.data_dir().join("ldk"), &mirror);
}

#[test]
fn a_daemon_refuses_to_start_without_its_backup_directory() {
    let chain = Chain::start();
    let backup = tempfile::tempdir().unwrap();
    let missing = backup.path().join("not-mounted");
    let mut a = Daemon::spawn(
        "alice",
        &chain,
        &["--backup-dir", missing.to_str().unwrap()],
    );
    assert!(!a.wait_exit(), "the daemon started without its backup");
    let log = a.log();
    assert!(
        log.contains("backup directory") && log.contains(missing.to_str().unwrap()),
        "the refusal does not name the backup directory:\n{log}"
    );
    assert!(
        !missing.exists(),
        "the missing backup directory was created"
    );
    // A restore needs a backup of this node.
    let mut b = Daemon::spawn(
        "bob",
        &chain,
        &[
            "--restore-from",
            backup.path().to_str().unwrap(),
            "--wallet-birthday",
            "1",
        ],
    );
    assert!(!b.wait_exit(), "a restore without the node's seed");
    assert!(b.log().contains("has no seed"), "{}", b.log_tail());
    assert!(!b.data_dir().join("seed").exists());
    assert!(!b.data_dir().join("ldk").exists());
}

#[test]
fn a_restore_from_an_old_copy_broadcasts_nothing_lets_the_peer_close_and_collects_the_balance() {
    /// Allowance for the commitment, anchor and sweep fees.
    const CLOSE_FEES_SAT: u64 = 20_000;
    let chain = Chain::start();
    let backup = tempfile::tempdir().unwrap();
    let mirror = backup.path().join("mirror");
    let old = backup.path().join("old-copy");
    std::fs::create_dir(&mirror).unwrap();
    let birthday = chain.height().to_string();
    let mut a = Daemon::start_with("alice", &chain, &["--backup-dir", mirror.to_str().unwrap()]);
    let b = Daemon::start("bob", &chain);
    a.fund(&chain, Amount::from_sat(1_000_000));
    let channel_id = a.open_usable_channel(&chain, &b, 600_000);
    let funding = funding_outpoint(&chain, &a, &channel_id, 600_000);
    pay(&a, &b, 20_000);
    std::thread::sleep(Duration::from_secs(2));
    copy_dir(&mirror, &old);
    // Later payments make the copy's states revoked ones, in which A holds more.
    for _ in 0..3 {
        pay(&a, &b, 30_000);
    }
    let a_local_sat = local_msat(&a, &channel_id) / 1_000;
    let a_onchain = a.confirmed_sat();
    let words = a.json(&["seed", "--words"])["words"]
        .as_str()
        .unwrap()
        .to_string();
    let _ = std::fs::remove_dir_all(a.data_dir());
    a.kill_hard();

    let new_dir = tempfile::Builder::new()
        .prefix("lightfilter-alice-old-")
        .tempdir()
        .unwrap();
    assert!(init_with_words(new_dir.path(), &words).success);
    let mut a = Daemon::spawn_in(
        "alice from an old copy",
        new_dir,
        &chain,
        &[
            "--restore-from",
            old.to_str().unwrap(),
            "--wallet-birthday",
            &birthday,
        ],
    );
    // Bob proves Alice has fallen behind; she stops without broadcasting anything, and
    // records it for her next start.
    assert!(!a.wait_exit(), "alice ran on from a revoked state");
    assert!(
        a.log().contains("We have fallen behind"),
        "{}",
        a.log_tail()
    );
    assert!(a.data_dir().join("channel_state_behind").exists());
    assert_not_closed(&chain, funding);

    // Started again, she lets Bob close with his latest state: he does so by himself as soon
    // as they reconnect, and her own (revoked) commitment never reaches the chain.
    a.restart(&chain, &[]);
    assert!(!a.data_dir().join("channel_state_behind").exists());
    wait_until("bob's closing transaction in the mempool", || {
        chain.peer.mempool().iter().any(|tx| {
            tx.input
                .iter()
                .any(|input| input.previous_output == funding)
        })
    });
    assert!(
        a.log().contains("not broadcasting transaction"),
        "alice's revoked commitment was not refused: {}",
        a.log_tail()
    );
    // A crash now (`restart` kills with SIGKILL) changes nothing: the channels stay named
    // behind and the channel manager empty.
    a.restart(&chain, &[]);
    chain.mine(1);
    assert!(chain.peer.utxo(&funding).is_none());
    assert!(
        b.channel(&channel_id).is_none(),
        "bob still has the channel"
    );
    // Her latest balance, less fees, reaches her wallet, and stays there after a restart
    // (which reads the new channel manager with the closed channel's monitor).
    let expected = a_onchain + a_local_sat - CLOSE_FEES_SAT;
    chain.mine_until("alice's channel balance in her wallet", || {
        a.confirmed_sat() >= expected
    });
    a.restart(&chain, &[]);
    chain.mine(1);
    a.wait_synced_to(chain.height());
    assert!(a.confirmed_sat() >= expected);
    assert!(a.confirmed_sat() <= a_onchain + a_local_sat);
}

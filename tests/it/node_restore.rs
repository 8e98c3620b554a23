//! Restores that can never cost a channel. A start never makes the backup directory older or
//! emptier than it was; a refused restore changes nothing; and a channel whose restored state
//! is not proved current is held: the node never broadcasts its commitment (a revoked one
//! would hand the peer the channel), refuses `closechannel --force` on it, and collects its
//! balance from the peer's close, whatever the copy held (a payment in flight since settled, a
//! channel manager older than its monitors, an old copy with the peer away).

use std::path::Path;
use std::time::Duration;

use crate::common::cli::*;
use crate::common::restore::*;
use bitcoin::{Amount, OutPoint};

/// Allowance for the commitment, anchor and sweep fees of a close by the peer.
const CLOSE_FEES_SAT: u64 = 20_000;

/// Daemon flags for a Lightning listener on a fixed port, so that a restarted peer is found
/// at the address its channel partner stored.
fn fixed_listener(port: u16) -> Vec<String> {
    vec!["--ln-listen".into(), format!("127.0.0.1:{port}")]
}

fn flags(flags: &[String]) -> Vec<&str> {
    flags.iter().map(String::as_str).collect()
}

/// Alice, with a backup directory, and Bob, with a channel of 600,000 sat from Alice to Bob
/// that has carried a payment.
struct TwoNodes {
    chain: Chain,
    alice: Daemon,
    bob: Daemon,
    bob_flags: Vec<String>,
    mirror: std::path::PathBuf,
    _backup: tempfile::TempDir,
    channel_id: String,
    funding: OutPoint,
    birthday: String,
}

impl TwoNodes {
    fn start() -> TwoNodes {
        let chain = Chain::start();
        let backup = tempfile::tempdir().unwrap();
        let mirror = backup.path().join("mirror");
        std::fs::create_dir(&mirror).unwrap();
        let birthday = chain.height().to_string();
        let alice =
            Daemon::start_with("alice", &chain, &["--backup-dir", mirror.to_str().unwrap()]);
        let bob_flags = fixed_listener(closed_port());
        let bob = Daemon::start_with("bob", &chain, &flags(&bob_flags));
        alice.fund(&chain, Amount::from_sat(1_000_000));
        let channel_id = alice.open_usable_channel(&chain, &bob, 600_000);
        let funding = funding_outpoint(&chain, &alice, &channel_id, 600_000);
        pay(&alice, &bob, 20_000);
        TwoNodes {
            chain,
            alice,
            bob,
            bob_flags,
            mirror,
            _backup: backup,
            channel_id,
            funding,
            birthday,
        }
    }

    fn mirror_arg(&self) -> &str {
        self.mirror.to_str().unwrap()
    }

    /// Alice's balances to come back to: on chain, and in the channel (sat).
    fn alice_balances(&self) -> (u64, u64) {
        (
            self.alice.confirmed_sat(),
            local_msat(&self.alice, &self.channel_id) / 1_000,
        )
    }

    /// Alice's card dies: her data directory goes, then her daemon. Returns her words.
    fn alice_card_dies(&mut self) -> String {
        let words = words_of(&self.alice);
        let _ = std::fs::remove_dir_all(self.alice.data_dir());
        self.alice.kill_hard();
        words
    }

    /// Alice, made again from `words` and restored from the backup directory `from`, started
    /// without waiting.
    fn spawn_restored_alice(&self, words: &str, from: &Path) -> Daemon {
        Daemon::spawn_in(
            "alice restored",
            data_dir_from_words("alice-restored", words),
            &self.chain,
            &[
                "--restore-from",
                from.to_str().unwrap(),
                "--wallet-birthday",
                &self.birthday,
            ],
        )
    }

    /// Waits until Bob's close of the channel is in the mempool, restarting Alice (without
    /// flags, as systemd would) when she stopped because Bob proved her state old.
    fn wait_for_bobs_close(&self, alice: &mut Daemon) {
        wait_until("bob's close in the mempool, or alice stopped", || {
            mempool_spends(&self.chain, self.funding) > 0 || !alice.is_running()
        });
        if !alice.is_running() {
            assert!(
                alice.log().contains("We have fallen behind"),
                "alice stopped for another reason: {}",
                alice.log_tail()
            );
            alice.restart(&self.chain, &[]);
            wait_until("bob's close in the mempool", || {
                mempool_spends(&self.chain, self.funding) > 0
            });
        }
    }
}

/// Bob's close of the channel funded by `funding` confirms and Alice's channel balance reaches
/// her wallet, less fees and never more than her latest balance: no revoked state of hers
/// reached the chain (it would have paid her more, or nothing after Bob's penalty).
fn assert_alice_collects(
    chain: &Chain,
    funding: OutPoint,
    alice: &mut Daemon,
    (onchain, channel): (u64, u64),
) {
    alice.wait_ready();
    chain.mine(1);
    assert!(
        chain.peer.utxo(&funding).is_none(),
        "the channel is not closed"
    );
    let expected = onchain + channel - CLOSE_FEES_SAT;
    chain.mine_until("alice's channel balance in her wallet", || {
        alice.confirmed_sat() >= expected
    });
    let collected = alice.confirmed_sat();
    assert!(
        collected <= onchain + channel,
        "alice holds {collected} sat, more than her latest {} sat",
        onchain + channel
    );
}

#[test]
fn a_start_never_makes_the_backup_older_or_emptier_and_says_how_to_restore() {
    let mut nodes = TwoNodes::start();
    let mirror_arg = nodes.mirror_arg().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let rolled_back = tempfile::tempdir().unwrap();
    copy_dir(&nodes.alice.data_dir().join("ldk"), rolled_back.path());
    pay(&nodes.alice, &nodes.bob, 30_000);
    pay(&nodes.alice, &nodes.bob, 30_000);
    let alice_local = local_msat(&nodes.alice, &nodes.channel_id);
    let words = words_of(&nodes.alice);
    // Stopped, not killed: a kill right after a payment may leave the stored channel manager a
    // step behind its monitor, and a channel restored from that is held until its peer closes
    // it (the stale-manager tests); this test is about what a start does to the mirror.
    nodes.alice.json(&["stop"]);
    assert!(nodes.alice.wait_exit(), "alice stopped cleanly");
    let backup = snapshot(&nodes.mirror);

    // The data directory put back from an older copy (an SD card image, a repair).
    let ldk = nodes.alice.data_dir().join("ldk");
    std::fs::remove_dir_all(&ldk).unwrap();
    copy_dir(rolled_back.path(), &ldk);
    nodes
        .alice
        .respawn(&nodes.chain, &["--backup-dir", &mirror_arg]);
    assert!(
        !nodes.alice.wait_exit(),
        "alice started from an older state"
    );
    let log = nodes.alice.log();
    assert!(
        log.contains("lacks or holds older") && log.contains("--restore-from"),
        "the refusal does not say what is wrong and how to restore: {}",
        nodes.alice.log_tail()
    );
    assert!(snapshot(&nodes.mirror) == backup, "the backup changed");

    // A new data directory made from the words, started with the backup directory of the
    // configuration but without --restore-from.
    let mut alice = Daemon::spawn_in(
        "alice from her words",
        data_dir_from_words("alice-words", &words),
        &nodes.chain,
        &["--backup-dir", &mirror_arg],
    );
    assert!(
        !alice.wait_exit(),
        "alice started without her channel state"
    );
    let command = format!(
        "lightfilter --network regtest --datadir {} daemon --restore-from {mirror_arg} \
         --wallet-birthday HEIGHT --backup-dir {mirror_arg}",
        alice.data_dir().display()
    );
    assert!(
        alice.log().contains(&command),
        "the refusal does not name `{command}`: {}",
        alice.log_tail()
    );
    assert!(snapshot(&nodes.mirror) == backup, "the backup changed");
    assert!(
        !alice.data_dir().join("ldk").exists(),
        "the refused start wrote channel state"
    );

    // The command it names brings the channel back as it was.
    alice.restart(
        &nodes.chain,
        &[
            "--restore-from",
            &mirror_arg,
            "--wallet-birthday",
            &nodes.birthday,
            "--backup-dir",
            &mirror_arg,
        ],
    );
    wait_usable([&alice, &nodes.bob], &nodes.channel_id);
    assert_eq!(local_msat(&alice, &nodes.channel_id), alice_local);
    pay(&alice, &nodes.bob, 10_000);
    assert_not_closed(&nodes.chain, nodes.funding);
}

#[test]
fn a_refused_restore_leaves_the_data_directory_as_it_was() {
    let mut nodes = TwoNodes::start();
    let mirror_arg = nodes.mirror_arg().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let words = nodes.alice_card_dies();
    let unplugged = nodes.mirror.with_file_name("not-mounted");
    let mut alice = Daemon::spawn_in(
        "alice restored",
        data_dir_from_words("alice-restored", &words),
        &nodes.chain,
        &[
            "--restore-from",
            &mirror_arg,
            "--wallet-birthday",
            &nodes.birthday,
            "--backup-dir",
            unplugged.to_str().unwrap(),
        ],
    );
    assert!(!alice.wait_exit(), "alice started without her backup");
    assert!(
        alice.log().contains(unplugged.to_str().unwrap()),
        "the refusal does not name the backup directory: {}",
        alice.log_tail()
    );
    assert!(
        snapshot(&alice.data_dir().join("ldk")).is_empty(),
        "the refused restore wrote into ldk/"
    );

    // Given the right backup directory, the same restore goes through.
    alice.restart(
        &nodes.chain,
        &[
            "--restore-from",
            &mirror_arg,
            "--wallet-birthday",
            &nodes.birthday,
            "--backup-dir",
            &mirror_arg,
        ],
    );
    wait_usable([&alice, &nodes.bob], &nodes.channel_id);
}

#[test]
fn a_current_copy_holds_its_channel_until_the_peer_reestablishes_it() {
    let mut nodes = TwoNodes::start();
    std::thread::sleep(Duration::from_secs(2));
    let words = nodes.alice_card_dies();
    nodes.bob.kill_hard();

    // Restored while Bob is away: the channel is held, and a forced close is refused.
    let mirror = nodes.mirror.clone();
    let mut alice = nodes.spawn_restored_alice(&words, &mirror);
    alice.wait_ready();
    let channel = alice
        .channel(&nodes.channel_id)
        .expect("the channel is listed");
    assert_eq!(channel["held"], true, "{channel}");
    assert!(
        channel["held_reason"]
            .as_str()
            .is_some_and(|reason| reason.contains("restored")),
        "{channel}"
    );
    let (code, message) = alice.json_error(&["closechannel", &nodes.channel_id, "--force"]);
    assert_eq!(code, "channel_held", "{message}");
    assert!(
        message.contains("is held") && message.contains("Wait until the peer reconnects"),
        "{message}"
    );
    assert_not_closed(&nodes.chain, nodes.funding);

    // Bob comes back and reestablishes the channel: it is released, and carries payments.
    let bob_flags = nodes.bob_flags.clone();
    nodes.bob.restart(&nodes.chain, &flags(&bob_flags));
    wait_usable([&alice, &nodes.bob], &nodes.channel_id);
    wait_until("the channel released", || {
        alice
            .channel(&nodes.channel_id)
            .is_some_and(|channel| channel["held"] == false)
    });
    assert!(
        alice.log().contains("is no longer held"),
        "{}",
        alice.log_tail()
    );
    pay(&alice, &nodes.bob, 10_000);
    pay(&nodes.bob, &alice, 5_000);
    assert_not_closed(&nodes.chain, nodes.funding);
}

#[test]
fn a_forced_close_after_a_restore_from_an_old_copy_is_refused_and_the_peer_closes_instead() {
    let mut nodes = TwoNodes::start();
    std::thread::sleep(Duration::from_secs(2));
    let old = nodes.mirror.with_file_name("old-copy");
    copy_dir(&nodes.mirror, &old);
    for _ in 0..3 {
        pay(&nodes.alice, &nodes.bob, 30_000);
    }
    let balances = nodes.alice_balances();
    let words = nodes.alice_card_dies();
    nodes.bob.kill_hard();

    let mut alice = nodes.spawn_restored_alice(&words, &old);
    alice.wait_ready();
    let (code, message) = alice.json_error(&["closechannel", &nodes.channel_id, "--force"]);
    assert_eq!(code, "channel_held", "{message}");
    assert_not_closed(&nodes.chain, nodes.funding);

    let bob_flags = nodes.bob_flags.clone();
    nodes.bob.restart(&nodes.chain, &flags(&bob_flags));
    nodes.wait_for_bobs_close(&mut alice);
    assert_alice_collects(&nodes.chain, nodes.funding, &mut alice, balances);
}

#[test]
fn a_copy_with_a_payment_in_flight_since_settled_and_expired_collects_the_balance() {
    let mut nodes = TwoNodes::start();
    let (preimage, hash) = preimage(7);
    let held = nodes.bob.json(&["holdinvoice", &hash, "50000sat"]);
    let pending = nodes
        .alice
        .json(&["pay", held["bolt11"].as_str().unwrap(), "--timeout", "2"]);
    assert_eq!(pending["status"], "pending", "{pending}");
    wait_until("bob to hold the payment", || {
        payment(&nodes.bob, &hash).is_some_and(|p| p["received_msat"] == 50_000_000)
    });
    std::thread::sleep(Duration::from_secs(2));
    // The copy has the payment in flight.
    let old = nodes.mirror.with_file_name("old-copy");
    copy_dir(&nodes.mirror, &old);
    nodes.bob.json(&["settleinvoice", &preimage]);
    wait_until("alice's payment to succeed", || {
        payment(&nodes.alice, &hash).is_some_and(|p| p["status"] == "succeeded")
    });
    pay(&nodes.alice, &nodes.bob, 10_000);
    let balances = nodes.alice_balances();
    let words = nodes.alice_card_dies();
    // Past the payment's expiry (its final CLTV delta and LDK's random shadow offset of at
    // most 432 blocks): the copy's monitor would claim it back with Alice's commitment.
    for _ in 0..5 {
        nodes.chain.mine(100);
    }
    nodes.bob.wait_synced_to(nodes.chain.height());

    let mut alice = nodes.spawn_restored_alice(&words, &old);
    nodes.wait_for_bobs_close(&mut alice);
    assert_alice_collects(&nodes.chain, nodes.funding, &mut alice, balances);
}

#[test]
fn a_copy_whose_channel_manager_is_older_than_its_monitors_collects_the_balance() {
    let mut nodes = TwoNodes::start();
    std::thread::sleep(Duration::from_secs(2));
    let old_manager = std::fs::read(nodes.mirror.join("manager")).unwrap();
    pay(&nodes.alice, &nodes.bob, 30_000);
    pay(&nodes.alice, &nodes.bob, 30_000);
    std::thread::sleep(Duration::from_secs(2));
    // A copy taken file by file while the daemon ran: its manager from before the last two
    // payments, its monitors from after them.
    let copy = nodes.mirror.with_file_name("file-by-file");
    copy_dir(&nodes.mirror, &copy);
    std::fs::write(copy.join("manager"), old_manager).unwrap();
    // And the channel moved on since the copy.
    pay(&nodes.alice, &nodes.bob, 30_000);
    let balances = nodes.alice_balances();
    let words = nodes.alice_card_dies();

    let mut alice = nodes.spawn_restored_alice(&words, &copy);
    nodes.wait_for_bobs_close(&mut alice);
    assert_alice_collects(&nodes.chain, nodes.funding, &mut alice, balances);
}

#[test]
fn a_channel_manager_older_than_its_monitor_holds_the_channel_until_the_peer_closes_it() {
    let mut nodes = TwoNodes::start();
    let mirror_arg = nodes.mirror_arg().to_string();
    std::thread::sleep(Duration::from_secs(2));
    let old_manager = std::fs::read(nodes.alice.data_dir().join("ldk/manager")).unwrap();
    pay(&nodes.alice, &nodes.bob, 30_000);
    std::thread::sleep(Duration::from_secs(2));
    let balances = nodes.alice_balances();
    nodes.alice.kill_hard();
    // Only the manager put back from an older copy: LDK closes the channel from the monitor,
    // whose state the peer may have revoked for all the node knows.
    for dir in [nodes.alice.data_dir().join("ldk"), nodes.mirror.clone()] {
        std::fs::write(dir.join("manager"), &old_manager).unwrap();
    }
    nodes
        .alice
        .restart(&nodes.chain, &["--backup-dir", &mirror_arg]);
    wait_until("bob's close in the mempool", || {
        mempool_spends(&nodes.chain, nodes.funding) > 0
    });
    let log = nodes.alice.log();
    assert!(
        log.contains("is held: its channel manager was older than its monitor")
            && log.contains("not broadcasting transaction"),
        "alice's commitment was not held back: {}",
        nodes.alice.log_tail()
    );
    let mut alice = std::mem::replace(&mut nodes.alice, Daemon::spawn("unused", &nodes.chain, &[]));
    assert_alice_collects(&nodes.chain, nodes.funding, &mut alice, balances);
}

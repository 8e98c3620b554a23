//! The wallet file: restarts, restore from seed and birthday, crash safety of batched saves,
//! and files that are not this wallet's.

use crate::common;

use common::wallet_feed;

use std::collections::BTreeSet;
use std::path::Path;
use std::sync::Arc;

use bitcoin::{Address, Amount, BlockHash, FeeRate, Network};
use lightfilter::regtest::RegtestPeer;
use lightfilter::wallet::{FeeChoice, SendAmount, Wallet, WalletError};
use wallet_feed::{
    open_wallet, seed, start_peer, sync, FixedFeeEstimator, PeerBroadcaster, RecordingRegistry,
};

fn open_on(
    path: &Path,
    seed: &[u8; 32],
    network: Network,
    peer: &RegtestPeer,
) -> Result<Wallet, WalletError> {
    Wallet::open(
        path,
        seed,
        network,
        None,
        Arc::new(RecordingRegistry::default()),
        Arc::new(FixedFeeEstimator(1_000)),
        Arc::new(PeerBroadcaster::new(peer)),
    )
}

/// Every file of `dir` with its content.
fn snapshot(dir: &Path) -> Vec<(String, Vec<u8>)> {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|entry| {
            let entry = entry.unwrap();
            (
                entry.file_name().to_string_lossy().into_owned(),
                std::fs::read(entry.path()).unwrap(),
            )
        })
        .collect();
    files.sort();
    files
}

/// Builds a wallet history: coins received on several addresses (one far ahead), a coinbase,
/// a send with change. Returns the block before the first of it.
fn build_history(w: &wallet_feed::TestWallet, peer: &RegtestPeer) -> (u32, BlockHash) {
    // Make the faucet rich first, so the history starts after those blocks.
    peer.fund(
        &peer.faucet_script(),
        Amount::from_sat(1_000),
        FeeRate::from_sat_per_vb(1).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(w, peer);
    let before = peer.tip();
    let addresses: Vec<Address> = (0..12).map(|_| w.wallet.new_address().unwrap()).collect();
    for (index, amount) in [(1, 300_000), (11, 450_000), (4, 120_000)] {
        peer.fund(
            &addresses[index].script_pubkey(),
            Amount::from_sat(amount),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
        peer.mine(2, &peer.faucet_script());
    }
    peer.mine(1, &addresses[0].script_pubkey());
    sync(w, peer);
    let faucet = Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap();
    w.wallet
        .send(
            &faucet.to_string(),
            SendAmount::Exact(Amount::from_sat(500_000)),
            FeeChoice::Rate(FeeRate::from_sat_per_vb(3).unwrap()),
        )
        .unwrap();
    peer.mine(3, &peer.faucet_script());
    sync(w, peer);
    before
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_keeps_addresses_coins_and_balances() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    let (balance, utxos, txs, best, last_address) = {
        let w = open_wallet(&path, &seed(30), None, &peer).unwrap();
        build_history(&w, &peer);
        // Something still unconfirmed: a send whose change is pending.
        let faucet = Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap();
        w.wallet
            .send(
                &faucet.to_string(),
                SendAmount::Exact(Amount::from_sat(50_000)),
                FeeChoice::Rate(FeeRate::from_sat_per_vb(2).unwrap()),
            )
            .unwrap();
        let last_address = w.wallet.new_address().unwrap();
        (
            w.wallet.balance().unwrap(),
            w.wallet.utxos().unwrap(),
            w.wallet.transactions().unwrap(),
            w.wallet.best_block(),
            last_address,
        )
    };
    assert!(balance.trusted_pending > Amount::ZERO, "{balance:?}");
    assert!(balance.immature > Amount::ZERO, "{balance:?}");

    let w = open_wallet(&path, &seed(30), None, &peer).unwrap();
    assert_eq!(w.wallet.best_block(), best);
    assert_eq!(w.wallet.balance().unwrap(), balance);
    assert_eq!(w.wallet.utxos().unwrap(), utxos);
    assert_eq!(w.wallet.transactions().unwrap(), txs);
    // Revealed addresses are remembered: the next one is new, and all of them are watched.
    let next = w.wallet.new_address().unwrap();
    assert_ne!(next, last_address);
    assert!(w.registry.contains(&last_address.script_pubkey()));
    // The wallet goes on where it stopped.
    peer.mine(1, &peer.faucet_script());
    let report = sync(&w, &peer);
    assert_eq!(report.disconnected_to, None);
    assert_eq!(report.full_blocks.len() + report.header_only as usize, 1);
    assert_eq!(w.wallet.balance().unwrap().trusted_pending, Amount::ZERO);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restore_from_seed_and_birthday_finds_the_same_funds() {
    let peer = start_peer().await;
    let original_dir = tempfile::tempdir().unwrap();
    let original = open_wallet(
        &original_dir.path().join("wallet.sqlite"),
        &seed(31),
        None,
        &peer,
    )
    .unwrap();
    let birthday = build_history(&original, &peer);
    let balance = original.wallet.balance().unwrap();
    assert!(balance.confirmed > Amount::ZERO);

    let restored_dir = tempfile::tempdir().unwrap();
    let restored = open_wallet(
        &restored_dir.path().join("wallet.sqlite"),
        &seed(31),
        Some(birthday),
        &peer,
    )
    .unwrap();
    assert_eq!(restored.wallet.best_block().height, birthday.0);
    assert_eq!(restored.wallet.best_block().block_hash, birthday.1);
    let report = sync(&restored, &peer);
    assert_eq!(
        report.full_blocks.len() as u32 + report.header_only,
        peer.tip().0 - birthday.0,
        "fed from the block after the birthday"
    );
    assert_eq!(restored.wallet.balance().unwrap(), balance);
    let coins = |w: &Wallet| -> BTreeSet<_> {
        w.utxos()
            .unwrap()
            .into_iter()
            .map(|u| (u.outpoint, u.amount, u.confirmation_height))
            .collect()
    };
    assert_eq!(coins(&restored.wallet), coins(&original.wallet));
    let history = |w: &Wallet| -> BTreeSet<_> {
        w.transactions()
            .unwrap()
            .into_iter()
            .map(|t| (t.txid, t.net, t.confirmation_height))
            .collect()
    };
    assert_eq!(history(&restored.wallet), history(&original.wallet));
    // The restored wallet hands out addresses after the ones used before.
    let used: BTreeSet<_> = original
        .wallet
        .utxos()
        .unwrap()
        .into_iter()
        .map(|u| u.script_pubkey)
        .collect();
    let fresh = restored.wallet.new_address().unwrap();
    assert!(!used.contains(&fresh.script_pubkey()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_only_blocks_are_saved_in_batches_and_replayed_after_a_crash() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    let w = open_wallet(&path, &seed(32), None, &peer).unwrap();
    let address = w.wallet.new_address().unwrap();
    peer.mine(150, &peer.faucet_script());
    let report = sync(&w, &peer);
    // (A block may still come in full: compact filters have false positives.)
    assert_eq!(
        report.header_only + report.full_blocks.len() as u32,
        150,
        "{report:?}"
    );
    assert_eq!(w.wallet.best_block().height, 150);
    // A crash: the wallet is never dropped, so nothing more is written.
    std::mem::forget(w);

    let w = open_wallet(&path, &seed(32), None, &peer).unwrap();
    let saved = w.wallet.best_block().height;
    assert!(
        saved < 150,
        "not every header-only block was written (saved tip {saved})"
    );
    assert!(
        saved > 0,
        "header-only progress is written in batches (saved tip {saved})"
    );
    sync(&w, &peer);
    assert_eq!(w.wallet.best_block().height, 150);

    // A block paying the wallet is written at once.
    peer.fund(
        &address.script_pubkey(),
        Amount::from_sat(200_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let paid_tip = w.wallet.best_block();
    std::mem::forget(w);
    let w = open_wallet(&path, &seed(32), None, &peer).unwrap();
    assert_eq!(w.wallet.best_block(), paid_tip);
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(200_000)
    );

    // A clean shutdown writes the progress.
    peer.mine(5, &peer.faucet_script());
    sync(&w, &peer);
    let tip = w.wallet.best_block();
    drop(w);
    let w = open_wallet(&path, &seed(32), None, &peer).unwrap();
    assert_eq!(w.wallet.best_block(), tip);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_of_another_network_or_seed_is_refused_and_left_untouched() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    {
        let w = open_wallet(&path, &seed(33), None, &peer).unwrap();
        let address = w.wallet.new_address().unwrap();
        peer.fund(
            &address.script_pubkey(),
            Amount::from_sat(100_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
        peer.mine(1, &peer.faucet_script());
        sync(&w, &peer);
    }
    let before = snapshot(dir.path());

    for network in [Network::Testnet, Network::Bitcoin, Network::Signet] {
        let err = open_on(&path, &seed(33), network, &peer).err().unwrap();
        match &err {
            WalletError::NetworkMismatch {
                file_network,
                expected,
                ..
            } => {
                assert_eq!(*file_network, Network::Regtest);
                assert_eq!(*expected, network);
            }
            other => panic!("expected a network mismatch, got {other}"),
        }
        let message = err.to_string();
        assert!(
            message.contains("regtest") && message.contains(&network.to_string()),
            "{message}"
        );
        assert_eq!(snapshot(dir.path()), before, "nothing written");
    }

    let err = open_on(&path, &seed(34), Network::Regtest, &peer)
        .err()
        .unwrap();
    assert!(matches!(err, WalletError::KeysMismatch { .. }), "{err}");
    assert!(err.to_string().contains("another seed"));
    assert_eq!(snapshot(dir.path()), before, "nothing written");

    let w = open_wallet(&path, &seed(33), None, &peer).unwrap();
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(100_000)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn files_that_are_not_wallets_are_refused_and_left_untouched() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();

    let text = dir.path().join("notes.sqlite");
    std::fs::write(
        &text,
        b"these are not the coins you are looking for\n".repeat(200),
    )
    .unwrap();
    let other_db = dir.path().join("other.sqlite");
    {
        let conn = rusqlite::Connection::open(&other_db).unwrap();
        conn.execute_batch("CREATE TABLE channels (id INTEGER PRIMARY KEY, state TEXT);")
            .unwrap();
    }
    let before = snapshot(dir.path());
    for path in [&text, &other_db] {
        let err = open_on(path, &seed(35), Network::Regtest, &peer)
            .err()
            .unwrap();
        assert!(matches!(err, WalletError::NotAWalletFile { .. }), "{err}");
        assert!(err.to_string().contains(&path.display().to_string()));
        assert_eq!(snapshot(dir.path()), before, "nothing written");
    }

    let err = Wallet::open(
        &dir.path().join("new.sqlite"),
        &seed(35),
        Network::Regtest,
        Some((
            0,
            BlockHash::from_raw_hash(bitcoin::hashes::Hash::all_zeros()),
        )),
        Arc::new(RecordingRegistry::default()),
        Arc::new(FixedFeeEstimator(1_000)),
        Arc::new(PeerBroadcaster::new(&peer)),
    )
    .err()
    .unwrap();
    assert!(matches!(err, WalletError::InvalidBirthday(_)), "{err}");
    assert!(!dir.path().join("new.sqlite").exists(), "no file created");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_wallet_file_locked_by_another_process_is_reported_busy_not_foreign() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    drop(open_wallet(&path, &seed(36), None, &peer).unwrap());
    let holder = rusqlite::Connection::open(&path).unwrap();
    holder.execute_batch("BEGIN EXCLUSIVE;").unwrap();

    let err = open_on(&path, &seed(36), Network::Regtest, &peer)
        .err()
        .unwrap();
    assert!(matches!(err, WalletError::Storage { .. }), "{err}");
    assert!(err.to_string().contains("another process"), "{err}");

    holder.execute_batch("ROLLBACK;").unwrap();
    assert!(open_on(&path, &seed(36), Network::Regtest, &peer).is_ok());
}

/// The files a process killed in the middle of a large wallet write leaves behind: SQLite
/// spilled part of the write into the file, and its journal holds what was there before.
fn files_of_a_killed_write(from: &Path, to: &Path) {
    let writer = rusqlite::Connection::open(from.join("wallet.sqlite")).unwrap();
    writer
        .execute_batch(
            "PRAGMA cache_size = 10;
             BEGIN IMMEDIATE;
             CREATE TABLE interrupted (payload BLOB);",
        )
        .unwrap();
    for _ in 0..200 {
        writer
            .execute("INSERT INTO interrupted VALUES (zeroblob(4096))", [])
            .unwrap();
    }
    for name in ["wallet.sqlite", "wallet.sqlite-journal"] {
        std::fs::copy(from.join(name), to.join(name)).expect("file of the interrupted write");
    }
    writer.execute_batch("ROLLBACK;").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_cut_short_by_a_kill_is_rolled_back_when_the_wallet_opens() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let crashed = tempfile::tempdir().unwrap();
    let wallet = open_on(
        &dir.path().join("wallet.sqlite"),
        &seed(37),
        Network::Regtest,
        &peer,
    )
    .unwrap();
    let address = wallet.new_address().unwrap();
    drop(wallet);
    files_of_a_killed_write(dir.path(), crashed.path());
    assert!(crashed.path().join("wallet.sqlite-journal").exists());

    let path = crashed.path().join("wallet.sqlite");
    let reopened = open_on(&path, &seed(37), Network::Regtest, &peer)
        .expect("a wallet whose last write was cut short opens");
    assert_ne!(
        reopened.new_address().unwrap(),
        address,
        "the address handed out before the crash stays handed out"
    );
    drop(reopened);
    let tables: i64 = rusqlite::Connection::open(&path)
        .unwrap()
        .query_row(
            "SELECT COUNT(*) FROM sqlite_master WHERE name = 'interrupted'",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(tables, 0, "the interrupted write was rolled back");
}

//! Reorgs, online and across a restart: confirmations above the fork point are undone. A block
//! that does not connect stops the wallet until a restart replays the chain from its last
//! block.

use crate::common;

use std::sync::{Arc, Mutex};

use common::wallet_feed;

use bitcoin::{Address, Amount, FeeRate, Network};
use lightfilter::wallet::{FeeChoice, SendAmount, WalletError};
use lightning::chain::Listen;
use wallet_feed::{open_wallet, seed, start_peer, sync};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_removes_a_received_payment_and_remining_restores_it() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = open_wallet(&dir.path().join("wallet.sqlite"), &seed(20), None, &peer).unwrap();
    let address = w.wallet.new_address().unwrap();
    let amount = Amount::from_sat(1_500_000);
    let payment = peer
        .fund(
            &address.script_pubkey(),
            amount,
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
    let txid = payment.compute_txid();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let (paid_height, _) = peer.tip();
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);

    // The block with the payment is replaced by two blocks without it.
    peer.invalidate(1);
    peer.mine_with(Vec::new(), &peer.faucet_script()).unwrap();
    peer.mine_with(Vec::new(), &peer.faucet_script()).unwrap();
    assert_eq!(
        peer.confirmations(&txid),
        None,
        "the payment is unconfirmed at the peer"
    );
    let report = sync(&w, &peer);
    assert_eq!(report.disconnected_to, Some(paid_height - 1));
    let balance = w.wallet.balance().unwrap();
    assert_eq!(balance.total(), Amount::ZERO, "{balance:?}");
    assert!(w.wallet.utxos().unwrap().is_empty());
    assert!(w.wallet.transactions().unwrap().is_empty());
    assert_eq!(w.wallet.best_block().height, paid_height + 1);
    assert_eq!(w.wallet.best_block().block_hash, peer.tip().1);

    // Mined again (it waited in the mempool): it is back.
    peer.mine(1, &peer.faucet_script());
    assert_eq!(peer.confirmations(&txid), Some(1));
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
    let txs = w.wallet.transactions().unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].confirmation_height, Some(paid_height + 2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_returns_a_sent_transaction_to_unconfirmed() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = open_wallet(&dir.path().join("wallet.sqlite"), &seed(21), None, &peer).unwrap();
    let address = w.wallet.new_address().unwrap();
    let start = Amount::from_sat(1_000_000);
    peer.fund(
        &address.script_pubkey(),
        start,
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let faucet = Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap();
    let sent = w
        .wallet
        .send(
            &faucet.to_string(),
            SendAmount::Exact(Amount::from_sat(400_000)),
            FeeChoice::Rate(FeeRate::from_sat_per_vb(4).unwrap()),
        )
        .unwrap();
    let txid = sent.compute_txid();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let confirmed = w.wallet.balance().unwrap().confirmed;
    assert!(confirmed > Amount::ZERO && confirmed < start);

    peer.invalidate(1);
    peer.mine_with(Vec::new(), &peer.faucet_script()).unwrap();
    peer.mine_with(Vec::new(), &peer.faucet_script()).unwrap();
    sync(&w, &peer);
    let listed = w.wallet.transactions().unwrap();
    let ours = listed.iter().find(|t| t.txid == txid).unwrap();
    assert_eq!(
        ours.confirmation_height, None,
        "the send is unconfirmed again"
    );
    let balance = w.wallet.balance().unwrap();
    assert_eq!(balance.confirmed, Amount::ZERO, "its input stays spent");
    assert_eq!(balance.trusted_pending, confirmed, "its change is pending");

    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, confirmed);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reorg_while_the_wallet_was_closed_is_undone_on_reopen() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    let amount = Amount::from_sat(900_000);
    let txid = {
        let w = open_wallet(&path, &seed(22), None, &peer).unwrap();
        let address = w.wallet.new_address().unwrap();
        // Faucet coins deep enough to stay mature after the reorg below.
        peer.mine(120, &peer.faucet_script());
        let payment = peer
            .fund(
                &address.script_pubkey(),
                amount,
                FeeRate::from_sat_per_vb(2).unwrap(),
            )
            .unwrap();
        peer.mine(3, &peer.faucet_script());
        sync(&w, &peer);
        assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
        payment.compute_txid()
    };
    let (old_tip, old_hash) = peer.tip();

    // Six blocks, the payment's among them, are replaced by seven others without it.
    peer.invalidate(6);
    for _ in 0..7 {
        peer.mine_with(Vec::new(), &peer.faucet_script()).unwrap();
    }
    assert_eq!(peer.confirmations(&txid), None);

    let w = open_wallet(&path, &seed(22), None, &peer).unwrap();
    assert_eq!(
        w.wallet.best_block().block_hash,
        old_hash,
        "reopened on the stale tip"
    );
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
    let report = sync(&w, &peer);
    assert_eq!(report.disconnected_to, Some(old_tip - 6));
    assert_eq!(w.wallet.balance().unwrap().total(), Amount::ZERO);
    assert_eq!(w.wallet.best_block().block_hash, peer.tip().1);

    peer.mine(1, &peer.faucet_script());
    assert_eq!(
        peer.confirmations(&txid),
        Some(1),
        "re-mined from the mempool"
    );
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_that_does_not_connect_stops_the_wallet_until_it_resyncs_from_its_last_block() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("wallet.sqlite");
    let w = open_wallet(&path, &seed(23), None, &peer).unwrap();
    let stops = Arc::new(Mutex::new(Vec::new()));
    let told = stops.clone();
    w.wallet
        .on_stopped_following(move |err| told.lock().unwrap().push(err.to_string()));
    let address = w.wallet.new_address().unwrap();
    peer.mine(3, &peer.faucet_script());
    sync(&w, &peer);
    let (last_height, last_hash) = peer.tip();
    let amount = Amount::from_sat(100_000);
    peer.fund(
        &address.script_pubkey(),
        amount,
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(2, &peer.faucet_script());

    // The block with the payment never reaches the wallet; the one after it does.
    let next = peer.block_at(last_height + 2).unwrap();
    w.wallet.block_connected(&next, last_height + 2);
    let stopped = |result: Result<(), WalletError>, what: &str| match result {
        Err(WalletError::StoppedFollowing {
            block,
            height,
            last_block,
            last_height: last,
        }) => {
            assert_eq!((block, height), (next.block_hash(), last_height + 2));
            assert_eq!((last_block, last), (last_hash, last_height));
        }
        other => panic!("{what} answered {other:?} from a wallet that missed a block"),
    };
    stopped(w.wallet.balance().map(drop), "balance");
    stopped(w.wallet.utxos().map(drop), "utxos");
    stopped(w.wallet.transactions().map(drop), "transactions");
    let faucet = Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap();
    let send = w.wallet.send(
        &faucet.to_string(),
        SendAmount::Exact(Amount::from_sat(10_000)),
        FeeChoice::Rate(FeeRate::from_sat_per_vb(2).unwrap()),
    );
    stopped(send.map(drop), "send");
    let told = stops.lock().unwrap().clone();
    assert_eq!(told.len(), 1, "{told:?}");
    assert!(
        told[0].contains(&next.block_hash().to_string())
            && told[0].contains(&last_hash.to_string()),
        "{}",
        told[0]
    );

    // Later blocks change nothing, and nothing more is told.
    peer.mine(1, &peer.faucet_script());
    let later = peer.block_at(last_height + 3).unwrap();
    w.wallet.block_connected(&later, last_height + 3);
    stopped(w.wallet.balance().map(drop), "balance");
    assert_eq!(stops.lock().unwrap().len(), 1);

    // Started again, the wallet is at its last block, and the chain replayed from there
    // brings the payment.
    drop(w);
    let w = open_wallet(&path, &seed(23), None, &peer).unwrap();
    assert_eq!(
        (
            w.wallet.best_block().height,
            w.wallet.best_block().block_hash
        ),
        (last_height, last_hash)
    );
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
}

//! The change scripts LDK asks the wallet for (a fee bump of an anchor claim asks on every
//! round, the sweeper on every block while its sweep is unconfirmed, every channel for its
//! destination) stay within the wallet's lookahead, so that a wallet made again from the seed
//! finds every coin.

use crate::common;

use std::collections::BTreeSet;

use common::wallet_feed;

use bitcoin::{
    absolute, transaction, Amount, FeeRate, OutPoint, Psbt, Sequence, Transaction, TxIn,
};
use lightning::chain::ClaimId;
use lightning::events::bump_transaction::sync::{CoinSelectionSourceSync, WalletSync};
use lightning::sign::ChangeDestinationSourceSync;
use lightning::util::logger::{Logger, Record};
use wallet_feed::{open_wallet, seed, start_peer, sync, TestWallet};

/// Scripts the wallet derives beyond its last revealed address (`LOOKAHEAD` in the wallet):
/// a wallet made again from the seed finds a coin only within this distance of the last one
/// it found.
const LOOKAHEAD: usize = 25;

struct TestLogger;

impl Logger for TestLogger {
    fn log(&self, record: Record) {
        log::debug!("ldk: {}", record.args);
    }
}

/// One round of a fee bump as LDK's bump handler makes it: coin selection over the wallet for
/// `claim` at `sat_per_kw`, then the wallet signs the transaction.
fn bump_round(
    ldk_wallet: &WalletSync<&lightfilter::wallet::Wallet, &TestLogger>,
    claim: ClaimId,
    sat_per_kw: u32,
) -> Transaction {
    let selection = ldk_wallet
        .select_confirmed_utxos(claim, Vec::new(), &[], sat_per_kw, 400_000)
        .expect("the wallet funds the bump");
    let unsigned = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: selection
            .confirmed_utxos
            .iter()
            .map(|utxo| TxIn {
                previous_output: utxo.outpoint,
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                ..Default::default()
            })
            .collect(),
        output: vec![selection.change_output.clone().expect("change above dust")],
    };
    let mut psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
    for (input, utxo) in psbt.inputs.iter_mut().zip(&selection.confirmed_utxos) {
        input.witness_utxo = Some(utxo.output.clone());
    }
    ldk_wallet
        .sign_psbt(psbt)
        .expect("the wallet signs its inputs")
}

/// The wallet's coins, by outpoint.
fn coins(w: &TestWallet) -> BTreeSet<(OutPoint, Amount)> {
    w.wallet
        .utxos()
        .expect("the wallet follows the chain")
        .into_iter()
        .map(|utxo| (utxo.outpoint, utxo.amount))
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hundreds_of_bump_and_sweep_rounds_leave_every_coin_findable_from_the_seed() {
    let peer = start_peer().await;
    peer.mine(101, &peer.faucet_script());
    let birthday = peer.tip();
    let dir = tempfile::tempdir().unwrap();
    let w = open_wallet(
        &dir.path().join("wallet.sqlite"),
        &seed(40),
        Some(birthday),
        &peer,
    )
    .unwrap();
    let address = w.wallet.new_address().unwrap();
    peer.fund(
        &address.script_pubkey(),
        Amount::from_sat(600_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let watched_before = w.registry.scripts().len();

    // Channels opened: each asks for a destination script.
    for _ in 0..40 {
        let script = w.wallet.change_script().expect("a destination script");
        assert!(w.registry.contains(&script), "the destination is watched");
    }
    // A claim that stays unconfirmed: LDK bumps it round after round, each round at a higher
    // fee rate, and the sweeper asks for a destination for its sweep on every block.
    let ldk_wallet = WalletSync::new(&w.wallet, &TestLogger);
    let claim = ClaimId([7; 32]);
    let mut last_bump = None;
    let mut last_sweep_destination = None;
    for round in 0..300u32 {
        let bump = bump_round(&ldk_wallet, claim, 253 + round * 5);
        assert!(
            w.registry.contains(&bump.output[0].script_pubkey),
            "round {round}: the bump's change is watched"
        );
        last_bump = Some(bump);
        let destination = w
            .wallet
            .get_change_destination_script()
            .expect("a sweep destination");
        assert!(w.registry.contains(&destination), "round {round}");
        last_sweep_destination = Some(destination);
    }
    let revealed = w.registry.scripts().len() - watched_before;
    assert!(
        revealed < LOOKAHEAD,
        "640 requests revealed {revealed} change addresses: a wallet made again from the seed \
         looks only {LOOKAHEAD} beyond the last coin it found"
    );

    // The last bump confirms, and the sweep pays its destination.
    let last_bump = last_bump.unwrap();
    peer.send_tx(&last_bump).expect("the peer takes the bump");
    peer.fund(
        &last_sweep_destination.unwrap(),
        Amount::from_sat(70_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let original = coins(&w);
    assert_eq!(
        original.len(),
        2,
        "the bump's change and the sweep: {original:?}"
    );
    let balance = w.wallet.balance().expect("the wallet follows the chain");

    // The same seed in a new wallet, synced from the same birthday, finds every coin.
    let restored = open_wallet(
        &dir.path().join("restored.sqlite"),
        &seed(40),
        Some(birthday),
        &peer,
    )
    .unwrap();
    sync(&restored, &peer);
    assert_eq!(coins(&restored), original);
    assert_eq!(
        restored
            .wallet
            .balance()
            .expect("the wallet follows the chain"),
        balance
    );
}

//! Spending: sends at a fee rate, bad input, channel funding, and LDK's wallet source.

use crate::common;

use common::wallet_feed;

use bitcoin::hashes::Hash;
use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, SighashCache};
use bitcoin::{
    absolute, transaction, Address, Amount, CompressedPublicKey, FeeRate, Network, OutPoint, Psbt,
    ScriptBuf, Sequence, Transaction, TxIn, TxOut, WScriptHash, Witness,
};
use lightfilter::regtest::RegtestPeer;
use lightfilter::wallet::{FeeChoice, SendAmount, SpendLimits, WalletError};
use lightning::chain::chaininterface::ConfirmationTarget;
use lightning::events::bump_transaction::sync::{
    CoinSelectionSourceSync, WalletSourceSync, WalletSync,
};
use lightning::events::bump_transaction::Input;
use lightning::sign::ChangeDestinationSourceSync;
use lightning::util::logger::{Logger, Record};
use wallet_feed::{open_wallet, seed, start_peer, sync, TestWallet, ESTIMATED_SAT_PER_KW};

/// Opens a wallet and gives it one confirmed coin of `amount`.
async fn funded_wallet(
    peer: &RegtestPeer,
    dir: &tempfile::TempDir,
    seed_byte: u8,
    amount: Amount,
) -> TestWallet {
    let w = open_wallet(
        &dir.path().join("wallet.sqlite"),
        &seed(seed_byte),
        None,
        peer,
    )
    .unwrap();
    let address = w.wallet.new_address().unwrap();
    peer.fund(
        &address.script_pubkey(),
        amount,
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, amount);
    w
}

fn faucet_address(peer: &RegtestPeer) -> Address {
    Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap()
}

/// Fee paid by `tx`, given the values of the outputs it spends.
fn fee_of(tx: &Transaction, spent: Amount) -> Amount {
    spent - tx.output.iter().map(|o| o.value).sum::<Amount>()
}

/// Fee rate of `tx` in sat/vB (fractional).
fn sat_per_vb(tx: &Transaction, fee: Amount) -> f64 {
    fee.to_sat() as f64 / tx.vsize() as f64
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_pays_amount_plus_fee_at_the_asked_rate() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(2_000_000);
    let w = funded_wallet(&peer, &dir, 10, start).await;
    let amount = Amount::from_sat(500_000);
    let asked = 5.0;

    let tx = w
        .wallet
        .send(
            &faucet_address(&peer).to_string(),
            SendAmount::Exact(amount),
            FeeChoice::Rate(FeeRate::from_sat_per_vb(5).unwrap()),
        )
        .unwrap();
    let txid = tx.compute_txid();
    assert!(peer.in_mempool(&txid), "{:?}", w.broadcaster.outcomes());
    assert!(
        tx.input.iter().all(|input| input.sequence.is_rbf()),
        "RBF signalled"
    );
    let to_faucet: Amount = tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == peer.faucet_script())
        .map(|o| o.value)
        .sum();
    assert_eq!(to_faucet, amount);
    let fee = fee_of(&tx, start);
    let rate = sat_per_vb(&tx, fee);
    assert!(
        (rate - asked).abs() <= 1.0,
        "fee rate {rate} sat/vB, asked {asked}"
    );

    // Before it confirms, only the change is pending.
    let pending = w.wallet.balance().unwrap();
    assert_eq!(pending.confirmed, Amount::ZERO);
    assert_eq!(pending.trusted_pending, start - amount - fee);

    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(peer.confirmations(&txid), Some(1));
    let balance = w.wallet.balance().unwrap();
    assert_eq!(balance.confirmed, start - amount - fee);
    assert_eq!(balance.total(), start - amount - fee);
    let listed = w
        .wallet
        .transactions()
        .unwrap()
        .into_iter()
        .find(|t| t.txid == txid)
        .unwrap();
    assert_eq!(listed.fee, Some(fee));
    assert_eq!(listed.net.to_sat(), -((amount + fee).to_sat() as i64));
    assert_eq!(listed.confirmation_height, Some(peer.tip().0));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_at_a_confirmation_target_uses_the_fee_estimator() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(1_000_000);
    let w = funded_wallet(&peer, &dir, 11, start).await;
    let tx = w
        .wallet
        .send(
            &faucet_address(&peer).to_string(),
            SendAmount::Exact(Amount::from_sat(100_000)),
            FeeChoice::Target(ConfirmationTarget::NonAnchorChannelFee),
        )
        .unwrap();
    assert!(peer.in_mempool(&tx.compute_txid()));
    let rate = sat_per_vb(&tx, fee_of(&tx, start));
    let estimated = f64::from(ESTIMATED_SAT_PER_KW) / 250.0;
    assert!(
        (rate - estimated).abs() <= 1.0,
        "fee rate {rate} sat/vB, estimator said {estimated}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_empties_the_wallet() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(700_000);
    let w = funded_wallet(&peer, &dir, 12, start).await;
    let tx = w
        .wallet
        .send(
            &faucet_address(&peer).to_string(),
            SendAmount::All,
            FeeChoice::Rate(FeeRate::from_sat_per_vb(3).unwrap()),
        )
        .unwrap();
    assert_eq!(tx.output.len(), 1);
    assert_eq!(tx.output[0].script_pubkey, peer.faucet_script());
    let fee = fee_of(&tx, start);
    assert!((sat_per_vb(&tx, fee) - 3.0).abs() <= 1.0);
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().total(), Amount::ZERO);
    assert!(w.wallet.utxos().unwrap().is_empty());

    // Nothing left to send.
    let err = w
        .wallet
        .send(
            &faucet_address(&peer).to_string(),
            SendAmount::All,
            FeeChoice::Rate(FeeRate::from_sat_per_vb(3).unwrap()),
        )
        .unwrap_err();
    assert!(
        matches!(err, WalletError::InsufficientFunds { available, .. } if available == Amount::ZERO),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn send_all_within_a_reserve_keeps_the_reserve_and_refuses_when_nothing_is_above_it() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(700_000);
    let w = funded_wallet(&peer, &dir, 18, start).await;
    let reserve = Amount::from_sat(25_000);
    let limits = SpendLimits {
        peer_minimum: None,
        reserve,
    };
    let rate = FeeChoice::Rate(FeeRate::from_sat_per_vb(3).unwrap());
    let faucet = faucet_address(&peer).to_string();
    let sent = w
        .wallet
        .send_within(&faucet, SendAmount::All, rate, limits)
        .unwrap();
    assert_eq!(sent.left, reserve);
    let to_faucet: Vec<_> = sent
        .tx
        .output
        .iter()
        .filter(|o| o.script_pubkey == peer.faucet_script())
        .collect();
    assert_eq!(to_faucet.len(), 1);
    assert_eq!(to_faucet[0].value, sent.amount);
    assert_eq!(start - sent.amount - reserve, fee_of(&sent.tx, start));
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, reserve);

    // All that is left is the reserve: nothing to send, and nothing changes.
    let transactions = w.wallet.transactions().unwrap();
    let err = w
        .wallet
        .send_within(&faucet, SendAmount::All, rate, limits)
        .unwrap_err();
    assert!(
        matches!(err, WalletError::NothingAboveReserve { available, .. } if available == reserve),
        "{err}"
    );
    let err = w
        .wallet
        .send_within(
            &faucet,
            SendAmount::Exact(Amount::from_sat(1_000)),
            rate,
            limits,
        )
        .unwrap_err();
    assert!(
        matches!(err, WalletError::ReserveRequired { left, .. } if left < reserve),
        "{err}"
    );
    assert_eq!(w.wallet.transactions().unwrap(), transactions);
    assert_eq!(w.wallet.balance().unwrap().confirmed, reserve);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gives_a_clear_error_and_changes_nothing() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(1_000_000);
    let w = funded_wallet(&peer, &dir, 13, start).await;
    w.wallet.flush().unwrap();
    let file = dir.path().join("wallet.sqlite");
    let stored = std::fs::read(&file).unwrap();
    let balance = w.wallet.balance().unwrap();
    let utxos = w.wallet.utxos().unwrap();
    let txs = w.wallet.transactions().unwrap();
    let mempool = peer.mempool().len();
    let good = faucet_address(&peer).to_string();
    let rate = FeeChoice::Rate(FeeRate::from_sat_per_vb(2).unwrap());
    let small = SendAmount::Exact(Amount::from_sat(10_000));

    // The same key's address on testnet and on mainnet.
    let key = CompressedPublicKey::from_private_key(
        &Secp256k1::new(),
        &bitcoin::PrivateKey::new(SecretKey::from_slice(&[7; 32]).unwrap(), Network::Testnet),
    )
    .unwrap();
    for network in [Network::Testnet, Network::Bitcoin] {
        let foreign = Address::p2wpkh(&key, network).to_string();
        let err = w.wallet.send(&foreign, small, rate).unwrap_err();
        assert!(
            matches!(
                &err,
                WalletError::WrongNetworkAddress {
                    expected: Network::Regtest,
                    ..
                }
            ),
            "{err}"
        );
        let message = err.to_string();
        assert!(
            message.contains(&foreign) && message.contains("regtest"),
            "{message}"
        );
    }

    let err = w
        .wallet
        .send("bcrt1-not-an-address", small, rate)
        .unwrap_err();
    assert!(
        matches!(err, WalletError::UnparsableAddress { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bcrt1-not-an-address"));

    let err = w
        .wallet
        .send(&good, SendAmount::Exact(Amount::from_sat(2_000_000)), rate)
        .unwrap_err();
    match &err {
        WalletError::InsufficientFunds { needed, available } => {
            assert_eq!(*available, start);
            assert!(*needed > Amount::from_sat(2_000_000));
        }
        other => panic!("expected insufficient funds, got {other}"),
    }
    let message = err.to_string();
    assert!(
        message.contains("insufficient funds") && message.contains(&start.to_string()),
        "{message}"
    );

    let err = w
        .wallet
        .send(&good, SendAmount::Exact(Amount::from_sat(100)), rate)
        .unwrap_err();
    match err {
        WalletError::DustAmount { amount, minimum } => {
            assert_eq!(amount, Amount::from_sat(100));
            assert_eq!(minimum, peer.faucet_script().minimal_non_dust());
        }
        other => panic!("expected a dust error, got {other}"),
    }

    for sat_per_kwu in [0, 249, 6_250_001] {
        let err = w
            .wallet
            .send(
                &good,
                small,
                FeeChoice::Rate(FeeRate::from_sat_per_kwu(sat_per_kwu)),
            )
            .unwrap_err();
        assert!(matches!(err, WalletError::InvalidFeeRate { .. }), "{err}");
        assert!(err.to_string().contains(&format!("{sat_per_kwu} sat/kwu")));
    }

    let funding_script = ScriptBuf::new_p2wsh(&WScriptHash::all_zeros());
    let err = w
        .wallet
        .create_funding_transaction(
            funding_script.clone(),
            Amount::from_sat(5_000_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(err, WalletError::InsufficientFunds { .. }),
        "{err}"
    );
    let err = w
        .wallet
        .create_funding_transaction(funding_script, Amount::from_sat(100_000), FeeRate::ZERO)
        .unwrap_err();
    assert!(matches!(err, WalletError::InvalidFeeRate { .. }), "{err}");

    assert_eq!(w.wallet.balance().unwrap(), balance);
    assert_eq!(w.wallet.utxos().unwrap(), utxos);
    assert_eq!(w.wallet.transactions().unwrap(), txs);
    assert_eq!(peer.mempool().len(), mempool);
    assert!(w.broadcaster.outcomes().is_empty(), "nothing was broadcast");
    assert_eq!(
        std::fs::read(&file).unwrap(),
        stored,
        "the wallet file is unchanged"
    );

    // And the wallet still works.
    let tx = w.wallet.send(&good, small, rate).unwrap();
    assert!(peer.in_mempool(&tx.compute_txid()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn funding_transaction_is_signed_not_broadcast_and_its_coins_are_not_reused() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(1_000_000);
    let w = funded_wallet(&peer, &dir, 14, start).await;
    let funding_script = ScriptBuf::new_p2wsh(&WScriptHash::hash(b"2-of-2 channel script"));
    let value = Amount::from_sat(300_000);

    let funding = w
        .wallet
        .create_funding_transaction(
            funding_script.clone(),
            value,
            FeeRate::from_sat_per_vb(3).unwrap(),
        )
        .unwrap();
    let txid = funding.compute_txid();
    assert!(funding
        .output
        .iter()
        .any(|o| o.script_pubkey == funding_script && o.value == value));
    assert!(
        funding.input.iter().all(|i| !i.witness.is_empty()),
        "all inputs signed"
    );
    assert!(!peer.in_mempool(&txid), "not broadcast by the wallet");
    assert!(w.broadcaster.outcomes().is_empty());

    // Its input is spent: nothing confirmed remains for another transaction.
    assert_eq!(w.wallet.balance().unwrap().confirmed, Amount::ZERO);
    let err = w
        .wallet
        .create_funding_transaction(
            funding_script.clone(),
            Amount::from_sat(100_000),
            FeeRate::from_sat_per_vb(3).unwrap(),
        )
        .unwrap_err();
    assert!(
        matches!(err, WalletError::InsufficientFunds { .. }),
        "{err}"
    );

    // LDK broadcasts it: the mempool accepts it and it confirms.
    peer.send_tx(&funding).unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let fee = fee_of(&funding, start);
    assert!((sat_per_vb(&funding, fee) - 3.0).abs() <= 1.0);
    assert_eq!(w.wallet.balance().unwrap().confirmed, start - value - fee);
    assert_eq!(
        w.wallet.transactions().unwrap()[0].confirmation_height,
        Some(peer.tip().0)
    );

    // A confirmed transaction cannot be abandoned.
    let err = w.wallet.abandon_transaction(txid).unwrap_err();
    assert!(
        matches!(err, WalletError::AlreadyConfirmed(t) if t == txid),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abandoning_a_funding_transaction_releases_its_coins() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let start = Amount::from_sat(800_000);
    let w = funded_wallet(&peer, &dir, 15, start).await;
    let utxos = w.wallet.utxos().unwrap();
    let funding_script = ScriptBuf::new_p2wsh(&WScriptHash::hash(b"discarded channel"));
    let funding = w
        .wallet
        .create_funding_transaction(
            funding_script,
            Amount::from_sat(200_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
    assert_eq!(w.wallet.balance().unwrap().confirmed, Amount::ZERO);

    w.wallet
        .abandon_transaction(funding.compute_txid())
        .unwrap();
    assert_eq!(w.wallet.balance().unwrap().confirmed, start);
    assert_eq!(w.wallet.utxos().unwrap(), utxos);
    assert!(w
        .wallet
        .transactions()
        .unwrap()
        .iter()
        .all(|t| t.txid != funding.compute_txid()));

    let unknown = bitcoin::Txid::all_zeros();
    let err = w.wallet.abandon_transaction(unknown).unwrap_err();
    assert!(
        matches!(err, WalletError::UnknownTransaction(t) if t == unknown),
        "{err}"
    );

    // The released coin funds something else.
    let tx = w
        .wallet
        .send(
            &faucet_address(&peer).to_string(),
            SendAmount::Exact(Amount::from_sat(300_000)),
            FeeChoice::Rate(FeeRate::from_sat_per_vb(2).unwrap()),
        )
        .unwrap();
    assert!(peer.in_mempool(&tx.compute_txid()));
}

struct TestLogger;

impl Logger for TestLogger {
    fn log(&self, record: Record) {
        log::debug!("ldk: {}", record.args);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ldk_wallet_source_funds_and_signs_a_fee_bump_the_mempool_accepts() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = funded_wallet(&peer, &dir, 16, Amount::from_sat(600_000)).await;
    let secp = Secp256k1::new();

    // Someone else's coin stands in for the anchor LDK must spend.
    let foreign_key = SecretKey::from_slice(&[0x42; 32]).unwrap();
    let foreign_public = CompressedPublicKey::from_private_key(
        &secp,
        &bitcoin::PrivateKey::new(foreign_key, Network::Regtest),
    )
    .unwrap();
    let foreign_script = ScriptBuf::new_p2wpkh(&foreign_public.wpubkey_hash());
    let foreign_tx = peer
        .fund(
            &foreign_script,
            Amount::from_sat(330),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let foreign = OutPoint::new(foreign_tx.compute_txid(), 0);
    let foreign_output = foreign_tx.output[0].clone();

    // The wallet offers exactly its confirmed coin, with the P2WPKH satisfaction weight.
    let offered = w.wallet.list_confirmed_utxos().unwrap();
    assert_eq!(offered.len(), 1);
    assert_eq!(offered[0].output.value, Amount::from_sat(600_000));

    // LDK's own coin selection over the wallet source.
    let ldk_wallet = WalletSync::new(&w.wallet, &TestLogger);
    let target_sat_per_kw = 2_500; // 10 sat/vB
    let selection = ldk_wallet
        .select_confirmed_utxos(
            lightning::chain::ClaimId([1; 32]),
            vec![Input {
                outpoint: foreign,
                previous_utxo: foreign_output.clone(),
                // Empty script_sig (4 wu) and a P2WPKH witness (109 wu).
                satisfaction_weight: 4 + 109,
            }],
            &[],
            target_sat_per_kw,
            400_000,
        )
        .unwrap();
    assert_eq!(selection.confirmed_utxos.len(), 1);
    let change = selection.change_output.clone().expect("change above dust");
    assert!(
        w.registry.contains(&change.script_pubkey),
        "change script is watched"
    );

    let mut inputs = vec![TxIn {
        previous_output: foreign,
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        ..Default::default()
    }];
    inputs.extend(selection.confirmed_utxos.iter().map(|utxo| TxIn {
        previous_output: utxo.outpoint,
        sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
        ..Default::default()
    }));
    let unsigned = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: inputs,
        output: vec![change.clone()],
    };
    let mut psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
    psbt.inputs[0].witness_utxo = Some(foreign_output.clone());
    for (index, utxo) in selection.confirmed_utxos.iter().enumerate() {
        psbt.inputs[index + 1].witness_utxo = Some(utxo.output.clone());
    }

    let mut tx = ldk_wallet.sign_psbt(psbt).unwrap();
    assert!(
        tx.input[0].witness.is_empty(),
        "the foreign input is left alone"
    );
    assert!(
        !tx.input[1].witness.is_empty(),
        "the wallet's input is signed"
    );
    let our_satisfaction =
        (1 + tx.input[1].script_sig.len() as u64) * 4 + tx.input[1].witness.size() as u64;
    assert!(
        our_satisfaction <= selection.confirmed_utxos[0].satisfaction_weight,
        "actual {our_satisfaction} wu within the announced {}",
        selection.confirmed_utxos[0].satisfaction_weight
    );

    // The foreign input's owner signs; the peer accepts the whole transaction.
    let sighash = SighashCache::new(&tx)
        .p2wpkh_signature_hash(
            0,
            &foreign_script,
            foreign_output.value,
            EcdsaSighashType::All,
        )
        .unwrap();
    let signature = bitcoin::ecdsa::Signature::sighash_all(
        secp.sign_ecdsa(&Message::from_digest(sighash.to_byte_array()), &foreign_key),
    );
    tx.input[0].witness = Witness::p2wpkh(&signature, &foreign_public.0);
    let spent = foreign_output.value + selection.confirmed_utxos[0].output.value;
    let fee = fee_of(&tx, spent);
    let rate_sat_per_kw = fee.to_sat() * 1000 / tx.weight().to_wu();
    assert!(
        rate_sat_per_kw >= target_sat_per_kw as u64,
        "LDK's selection reached {rate_sat_per_kw} sat/kw for a target of {target_sat_per_kw}"
    );
    peer.send_tx(&tx).unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(w.wallet.balance().unwrap().confirmed, change.value);

    // Destination scripts for swept funds are watched change scripts, the same one until a
    // transaction pays it.
    let first = w.wallet.get_change_destination_script().unwrap();
    assert_ne!(first, change.script_pubkey, "the bump's change was paid");
    assert!(w.registry.contains(&first));
    assert_eq!(w.wallet.get_change_destination_script().unwrap(), first);
    peer.fund(
        &first,
        Amount::from_sat(20_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    let second = w.wallet.get_change_destination_script().unwrap();
    assert_ne!(first, second, "a paid script is not handed out again");
    assert!(w.registry.contains(&second));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn signing_a_psbt_without_wallet_inputs_is_refused() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = funded_wallet(&peer, &dir, 17, Amount::from_sat(100_000)).await;
    let unsigned = Transaction {
        version: transaction::Version::TWO,
        lock_time: absolute::LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(bitcoin::Txid::all_zeros(), 0),
            ..Default::default()
        }],
        output: vec![TxOut {
            value: Amount::from_sat(1_000),
            script_pubkey: peer.faucet_script(),
        }],
    };
    let psbt = Psbt::from_unsigned_tx(unsigned).unwrap();
    assert!(w.wallet.sign_psbt(psbt).is_err());
}

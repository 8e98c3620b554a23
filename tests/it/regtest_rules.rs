//! The regtest peer enforces Bitcoin Core's regtest rules: double spends, immature coinbase
//! spends, BIP 68 relative and absolute lock-times, bad signatures and negative fees are
//! refused (in the mempool and in mined blocks) with a clear reason and no change; blocks carry
//! BIP 34 heights, witness commitments, valid proof of work and timestamps, and the subsidy
//! halves every 150 blocks.

use crate::common;

use bitcoin::absolute::LockTime;
use bitcoin::constants::genesis_block;
use bitcoin::transaction::Version;
use bitcoin::{Amount, FeeRate, Network, OutPoint, Sequence, Transaction};
use common::keys::{pay, spend_p2wpkh, unsigned_tx, TestKey};
use common::start_peer;
use lightfilter::regtest::{RegtestPeer, TxRejectReason, TxRejected};

fn fee_rate(sat_per_vb: u64) -> FeeRate {
    FeeRate::from_sat_per_vb(sat_per_vb).unwrap()
}

/// A confirmed P2WPKH output of `key` worth `sats`.
fn confirmed_coin(peer: &RegtestPeer, key: &TestKey, sats: u64) -> (OutPoint, Amount) {
    let funding = peer
        .fund(&key.script(), Amount::from_sat(sats), fee_rate(1))
        .unwrap();
    peer.mine(1, &TestKey::new("miner").script());
    (
        OutPoint::new(funding.compute_txid(), 0),
        Amount::from_sat(sats),
    )
}

/// Asserts a refusal for `reason` whose message contains `needle`, and that the tip and the
/// mempool did not change.
fn assert_refused(
    peer: &RegtestPeer,
    attempt: impl FnOnce() -> Result<(), TxRejected>,
    reason: TxRejectReason,
    needle: &str,
) {
    let tip = peer.tip();
    let mempool = peer.mempool();
    let error = attempt().expect_err("the peer must refuse this");
    assert_eq!(error.reason, reason, "unexpected refusal: {error}");
    assert!(
        error.to_string().contains(needle),
        "the message should mention {needle:?}: {error}"
    );
    assert_eq!(peer.tip(), tip, "a refusal must not change the chain");
    assert_eq!(
        peer.mempool(),
        mempool,
        "a refusal must not change the mempool"
    );
}

fn send<'a>(
    peer: &'a RegtestPeer,
    tx: &Transaction,
) -> impl FnOnce() -> Result<(), TxRejected> + 'a {
    let tx = tx.clone();
    move || peer.send_tx(&tx).map(|_| ())
}

fn mine_with(
    peer: &RegtestPeer,
    txs: Vec<Transaction>,
) -> impl FnOnce() -> Result<(), TxRejected> + '_ {
    move || {
        peer.mine_with(txs, &TestKey::new("miner").script())
            .map(|_| ())
    }
}

#[tokio::test]
async fn double_spends_are_refused_in_the_mempool_and_in_blocks() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob").script();
    let carol = TestKey::new("carol").script();
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);

    let first = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 90_000)]);
    let second = spend_p2wpkh(&alice, coin, value, vec![pay(&carol, 90_000)]);
    let first_txid = peer.send_tx(&first).unwrap();
    assert_refused(
        &peer,
        send(&peer, &second),
        TxRejectReason::ReplacementRejected,
        &first_txid.to_string(),
    );
    peer.mine(1, &bob);
    assert_eq!(peer.confirmations(&first_txid), Some(1));
    assert_refused(
        &peer,
        send(&peer, &second),
        TxRejectReason::InputsMissingOrSpent,
        "already spent",
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![second.clone()]),
        TxRejectReason::InputsMissingOrSpent,
        "already spent",
    );

    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let to_bob = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 90_000)]);
    let to_carol = spend_p2wpkh(&alice, coin, value, vec![pay(&carol, 90_000)]);
    assert_refused(
        &peer,
        mine_with(&peer, vec![to_bob, to_carol]),
        TxRejectReason::InputsMissingOrSpent,
        "already spent earlier in this block",
    );

    let mut twice = unsigned_tx(&[coin, coin], vec![pay(&bob, 150_000)]);
    alice.sign_p2wpkh(&mut twice, 0, value);
    alice.sign_p2wpkh(&mut twice, 1, value);
    assert_refused(
        &peer,
        send(&peer, &twice),
        TxRejectReason::Malformed,
        "a second time",
    );
}

#[tokio::test]
async fn a_higher_paying_replacement_evicts_the_original_and_its_children() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let original = spend_p2wpkh(&alice, coin, value, vec![pay(&bob.script(), 99_000)]);
    let child = spend_p2wpkh(
        &bob,
        OutPoint::new(original.compute_txid(), 0),
        Amount::from_sat(99_000),
        vec![pay(&alice.script(), 98_000)],
    );
    peer.send_tx(&original).unwrap();
    peer.send_tx(&child).unwrap();
    // Must pay the evicted fees (1000 + 1000) plus 1 sat/vB of its own size.
    let too_cheap = spend_p2wpkh(&alice, coin, value, vec![pay(&bob.script(), 98_500)]);
    assert_refused(
        &peer,
        send(&peer, &too_cheap),
        TxRejectReason::ReplacementRejected,
        "replacing needs at least",
    );
    let replacement = spend_p2wpkh(&alice, coin, value, vec![pay(&bob.script(), 97_000)]);
    peer.send_tx(&replacement).unwrap();
    assert!(peer.in_mempool(&replacement.compute_txid()));
    assert!(!peer.in_mempool(&original.compute_txid()));
    assert!(!peer.in_mempool(&child.compute_txid()));
}

#[tokio::test]
async fn coinbase_outputs_are_spendable_only_after_100_confirmations() {
    let peer = start_peer().await;
    let miner = TestKey::new("coinbase owner");
    let other = TestKey::new("other").script();
    let coinbase_block = peer.mine(1, &miner.script())[0];
    let coinbase = peer.block(&coinbase_block).unwrap().txdata[0].clone();
    let value = coinbase.output[0].value;
    assert_eq!(value, Amount::from_btc(50.0).unwrap());
    let spend = spend_p2wpkh(
        &miner,
        OutPoint::new(coinbase.compute_txid(), 0),
        value,
        vec![pay(&other, value.to_sat() - 1_000)],
    );
    // Mined at height 1: the next block (100) would give it 99 confirmations.
    peer.mine(98, &other);
    assert_refused(
        &peer,
        send(&peer, &spend),
        TxRejectReason::ImmatureCoinbase,
        "99 of the 100 confirmations",
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![spend.clone()]),
        TxRejectReason::ImmatureCoinbase,
        "99 of the 100 confirmations",
    );
    peer.mine(1, &other);
    peer.send_tx(&spend).unwrap();
    peer.mine(1, &other);
    assert_eq!(peer.confirmations(&spend.compute_txid()), Some(1));
}

#[tokio::test]
async fn bip68_relative_lock_times_are_enforced() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob").script();
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let coin_height = peer.tip().0;

    let mut locked = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    locked.input[0].sequence = Sequence::from_height(5);
    alice.sign_p2wpkh(&mut locked, 0, value);
    // Spendable in the block at coin height + 5.
    assert_refused(
        &peer,
        send(&peer, &locked),
        TxRejectReason::NonBip68Final,
        "nSequence",
    );
    peer.mine(3, &bob);
    assert_eq!(peer.tip().0 + 1, coin_height + 4);
    assert_refused(
        &peer,
        send(&peer, &locked),
        TxRejectReason::NonBip68Final,
        &format!("until after height {}", coin_height + 4),
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![locked.clone()]),
        TxRejectReason::NonBip68Final,
        "nSequence",
    );
    peer.mine(1, &bob);
    peer.send_tx(&locked).unwrap();

    // Version 1 transactions do not opt in to BIP 68.
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let mut version_one = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    version_one.version = Version::ONE;
    version_one.input[0].sequence = Sequence::from_height(5);
    alice.sign_p2wpkh(&mut version_one, 0, value);
    peer.send_tx(&version_one).unwrap();

    // A time-based lock of 1000 * 512 seconds is far from reached.
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let mut time_locked = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    time_locked.input[0].sequence = Sequence::from_512_second_intervals(1_000);
    alice.sign_p2wpkh(&mut time_locked, 0, value);
    assert_refused(
        &peer,
        send(&peer, &time_locked),
        TxRejectReason::NonBip68Final,
        "median time past",
    );

    // One 512-second interval: spendable once the tip's median time past exceeds the median
    // time past before the coin's block by more than 511 seconds.
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let coin_height = peer.tip().0;
    let coin_time = median_time_past(&peer, coin_height - 1);
    let mut one_interval = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    one_interval.input[0].sequence = Sequence::from_512_second_intervals(1);
    alice.sign_p2wpkh(&mut one_interval, 0, value);
    let mut refusals = 0;
    loop {
        let tip_time = median_time_past(&peer, peer.tip().0);
        if tip_time > coin_time + 511 {
            peer.send_tx(&one_interval).unwrap();
            break;
        }
        assert_refused(
            &peer,
            send(&peer, &one_interval),
            TxRejectReason::NonBip68Final,
            "median time past",
        );
        refusals += 1;
        peer.mine(50, &bob);
    }
    assert!(
        refusals > 10,
        "the lock held for a while ({refusals} refusals)"
    );
}

/// Median of the timestamps of the 11 blocks ending at `height`, from the raw headers.
fn median_time_past(peer: &RegtestPeer, height: u32) -> u32 {
    let mut times: Vec<u32> = (height.saturating_sub(10)..=height)
        .map(|h| peer.block_at(h).unwrap().header.time)
        .collect();
    times.sort_unstable();
    times[times.len() / 2]
}

#[tokio::test]
async fn absolute_lock_times_are_enforced() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob").script();
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let tip = peer.tip().0;

    let mut height_locked = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    height_locked.lock_time = LockTime::from_height(tip + 1).unwrap();
    alice.sign_p2wpkh(&mut height_locked, 0, value);
    assert_refused(
        &peer,
        send(&peer, &height_locked),
        TxRejectReason::NonFinal,
        "nLockTime",
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![height_locked.clone()]),
        TxRejectReason::NonFinal,
        "nLockTime",
    );
    peer.mine(1, &bob);
    peer.send_tx(&height_locked).unwrap();

    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let in_an_hour = LockTime::from_time(lightfilter_now() + 3_600).unwrap();
    let mut time_locked = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    time_locked.lock_time = in_an_hour;
    alice.sign_p2wpkh(&mut time_locked, 0, value);
    assert_refused(
        &peer,
        send(&peer, &time_locked),
        TxRejectReason::NonFinal,
        "median time past",
    );
    // With every sequence final the lock-time is ignored.
    let mut final_sequences = time_locked.clone();
    final_sequences.input[0].sequence = Sequence::MAX;
    alice.sign_p2wpkh(&mut final_sequences, 0, value);
    peer.send_tx(&final_sequences).unwrap();
}

fn lightfilter_now() -> u32 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as u32
}

#[tokio::test]
async fn bad_signatures_are_refused() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let mallory = TestKey::new("mallory");
    let bob = TestKey::new("bob").script();
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);

    let mut wrong_key = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    mallory.sign_p2wpkh(&mut wrong_key, 0, value);
    assert_refused(
        &peer,
        send(&peer, &wrong_key),
        TxRejectReason::ScriptFailure,
        "input 0",
    );

    let mut tampered = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 99_000)]);
    let mut signature = tampered.input[0].witness.nth(0).unwrap().to_vec();
    signature[10] ^= 0x01;
    let public_key = tampered.input[0].witness.nth(1).unwrap().to_vec();
    tampered.input[0].witness = bitcoin::Witness::from_slice(&[signature, public_key]);
    assert_refused(
        &peer,
        send(&peer, &tampered),
        TxRejectReason::ScriptFailure,
        "failed script verification",
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![tampered]),
        TxRejectReason::ScriptFailure,
        "failed script verification",
    );

    // Segwit signatures commit to the amount spent.
    let wrong_amount = spend_p2wpkh(
        &alice,
        coin,
        value + Amount::from_sat(1),
        vec![pay(&bob, 99_000)],
    );
    assert_refused(
        &peer,
        send(&peer, &wrong_amount),
        TxRejectReason::ScriptFailure,
        "failed script verification",
    );

    let honest = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 99_000)]);
    peer.send_tx(&honest).unwrap();
}

#[tokio::test]
async fn taproot_key_path_signatures_are_verified() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let mallory = TestKey::new("mallory");
    let bob = TestKey::new("bob").script();
    let funding = peer
        .fund(
            &alice.taproot_script(),
            Amount::from_sat(100_000),
            fee_rate(1),
        )
        .unwrap();
    peer.mine(1, &bob);
    let coin = OutPoint::new(funding.compute_txid(), 0);
    let prevouts = [pay(&alice.taproot_script(), 100_000)];

    let mut forged = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    mallory.sign_p2tr(&mut forged, 0, &prevouts);
    assert_refused(
        &peer,
        send(&peer, &forged),
        TxRejectReason::ScriptFailure,
        "signature does not verify",
    );
    let mut signed = unsigned_tx(&[coin], vec![pay(&bob, 99_000)]);
    alice.sign_p2tr(&mut signed, 0, &prevouts);
    peer.send_tx(&signed).unwrap();
}

#[tokio::test]
async fn fees_must_not_be_negative_and_relay_policy_applies_to_the_mempool_only() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob").script();
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);

    let overspend = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 100_001)]);
    assert_refused(
        &peer,
        send(&peer, &overspend),
        TxRejectReason::NegativeFee,
        "outputs total 100001 sat but inputs only 100000 sat",
    );
    assert_refused(
        &peer,
        mine_with(&peer, vec![overspend]),
        TxRejectReason::NegativeFee,
        "100001",
    );

    let dust = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 99_000), pay(&bob, 100)]);
    assert_refused(
        &peer,
        send(&peer, &dust),
        TxRejectReason::Dust,
        "output 1 pays 100 sat",
    );

    let free = spend_p2wpkh(&alice, coin, value, vec![pay(&bob, 99_990)]);
    assert_refused(
        &peer,
        send(&peer, &free),
        TxRejectReason::FeeTooLow,
        "below the minimum relay fee",
    );
    // A miner may include it anyway: fees below relay policy are valid in blocks.
    let block = peer
        .mine_with(vec![free.clone()], &TestKey::new("miner").script())
        .unwrap();
    assert_eq!(peer.tip().1, block);
    assert_eq!(peer.confirmations(&free.compute_txid()), Some(1));
}

#[tokio::test]
async fn blocks_follow_regtest_consensus() {
    let peer = start_peer().await;
    let miner = TestKey::new("miner").script();
    assert_eq!(
        peer.block_at(0).unwrap(),
        genesis_block(Network::Regtest),
        "the chain starts at Core's regtest genesis"
    );
    peer.mine(310, &miner);
    let now = lightfilter_now();
    for height in 1..=310u32 {
        let block = peer.block_at(height).unwrap();
        let parent = peer.block_at(height - 1).unwrap();
        assert_eq!(block.header.prev_blockhash, parent.block_hash());
        // BIP 34 as Core checks it: the scriptSig starts with `CScript() << height`, which is
        // OP_1..OP_16 for small heights and a minimal number push above.
        let script_sig = block.txdata[0].input[0].script_sig.as_bytes();
        if height <= 16 {
            assert_eq!(script_sig[0], 0x50 + height as u8, "height {height}");
        } else {
            assert_eq!(block.bip34_block_height().unwrap(), height as u64);
        }
        assert_eq!(block.header.bits.to_consensus(), 0x207f_ffff);
        block.header.validate_pow(block.header.target()).unwrap();
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        let coinbase = &block.txdata[0];
        assert!(coinbase.is_coinbase());
        assert_eq!(coinbase.input[0].witness.to_vec(), vec![vec![0u8; 32]]);
        assert!((2..=100).contains(&coinbase.input[0].script_sig.len()));
        let expected_subsidy = 5_000_000_000u64 >> (height / 150);
        assert_eq!(
            coinbase.output[0].value.to_sat(),
            expected_subsidy,
            "height {height}"
        );
        let mut window: Vec<u32> = (height.saturating_sub(11)..height)
            .map(|h| peer.block_at(h).unwrap().header.time)
            .collect();
        window.sort_unstable();
        let median_time_past = window[window.len() / 2];
        assert!(block.header.time > median_time_past, "height {height}");
        assert!(block.header.time <= now + 2 * 60 * 60, "height {height}");
    }
    assert_eq!(
        peer.block_at(149).unwrap().txdata[0].output[0].value,
        Amount::from_btc(50.0).unwrap()
    );
    assert_eq!(
        peer.block_at(150).unwrap().txdata[0].output[0].value,
        Amount::from_btc(25.0).unwrap()
    );
    assert_eq!(
        peer.block_at(300).unwrap().txdata[0].output[0].value,
        Amount::from_btc(12.5).unwrap()
    );

    // Fees go to the miner.
    let alice = TestKey::new("alice");
    let funding = peer
        .fund(&alice.script(), Amount::from_sat(100_000), fee_rate(3))
        .unwrap();
    let inputs: Amount = funding
        .input
        .iter()
        .map(|input| peer.utxo(&input.previous_output).unwrap().value)
        .sum();
    let fee = inputs
        - funding
            .output
            .iter()
            .map(|output| output.value)
            .sum::<Amount>();
    assert!(fee > Amount::ZERO);
    let block = peer.block(&peer.mine(1, &miner)[0]).unwrap();
    let height = peer.tip().0;
    assert_eq!(
        block.txdata[0].output[0].value,
        Amount::from_sat(5_000_000_000u64 >> (height / 150)) + fee
    );
}

#[tokio::test]
async fn a_long_chain_keeps_timestamps_within_cores_future_limit() {
    let peer = start_peer().await;
    peer.mine(20_000, &TestKey::new("miner").script());
    let now = lightfilter_now();
    let tip = peer.block_at(20_000).unwrap();
    assert!(tip.header.time <= now + 2 * 60 * 60);
    let mut previous = Vec::new();
    for height in 19_980..=20_000u32 {
        previous.push(peer.block_at(height).unwrap().header.time);
    }
    let mut window = previous[previous.len() - 12..previous.len() - 1].to_vec();
    window.sort_unstable();
    assert!(tip.header.time > window[5]);
}

#[tokio::test]
async fn the_faucet_pays_at_the_requested_fee_rate_and_explains_refusals() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice").script();
    assert_refused(
        &peer,
        || {
            peer.fund(&alice, Amount::from_sat(200), fee_rate(1))
                .map(|_| ())
        },
        TxRejectReason::Dust,
        "dust threshold",
    );
    assert_eq!(peer.tip().0, 0, "a refused payment mines nothing");

    let tx = peer
        .fund(&alice, Amount::from_sat(1_234_567), fee_rate(5))
        .unwrap();
    assert_eq!(peer.tip().0, 101, "the faucet matured a coinbase first");
    assert_eq!(tx.output[0].value, Amount::from_sat(1_234_567));
    assert_eq!(tx.output[0].script_pubkey, alice);
    assert!(peer.in_mempool(&tx.compute_txid()));
    assert_eq!(peer.confirmations(&tx.compute_txid()), None);
    let inputs: u64 = tx
        .input
        .iter()
        .map(|input| {
            peer.utxo(&input.previous_output)
                .expect("the faucet spends confirmed coins")
                .value
                .to_sat()
        })
        .sum();
    let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    let vsize = tx.weight().to_vbytes_ceil();
    let fee = inputs - outputs;
    assert!(
        fee >= 5 * vsize && fee <= 6 * vsize,
        "fee {fee} for {vsize} vB"
    );

    // A second payment before mining spends other coins: both stay in the mempool.
    let second = peer
        .fund(&alice, Amount::from_sat(1_000), fee_rate(1))
        .unwrap();
    assert!(peer.in_mempool(&tx.compute_txid()));
    assert!(peer.in_mempool(&second.compute_txid()));

    assert_refused(
        &peer,
        || {
            peer.fund(&alice, Amount::from_btc(10_000.0).unwrap(), fee_rate(1))
                .map(|_| ())
        },
        TxRejectReason::InsufficientFunds,
        "the faucet can spend",
    );

    peer.mine(1, &alice);
    let payment = OutPoint::new(tx.compute_txid(), 0);
    assert_eq!(peer.confirmations(&tx.compute_txid()), Some(1));
    assert_eq!(
        peer.utxo(&payment).unwrap().value,
        Amount::from_sat(1_234_567)
    );
    assert!(peer.mempool().is_empty());
    peer.mine(1, &alice);
    assert_eq!(peer.confirmations(&tx.compute_txid()), Some(2));
}

#[tokio::test]
async fn mempool_transactions_are_mined_in_order_and_can_be_cleared() {
    let peer = start_peer().await;
    let alice = TestKey::new("alice");
    let bob = TestKey::new("bob");
    let (coin, value) = confirmed_coin(&peer, &alice, 100_000);
    let parent = spend_p2wpkh(&alice, coin, value, vec![pay(&bob.script(), 99_000)]);
    let child = spend_p2wpkh(
        &bob,
        OutPoint::new(parent.compute_txid(), 0),
        Amount::from_sat(99_000),
        vec![pay(&alice.script(), 98_000)],
    );
    peer.send_tx(&parent).unwrap();
    peer.send_tx(&child).unwrap();
    assert_eq!(peer.mempool(), vec![parent.clone(), child.clone()]);
    assert_refused(
        &peer,
        send(&peer, &child),
        TxRejectReason::AlreadyInMempool,
        "already in the mempool",
    );
    let block = peer.block(&peer.mine(1, &alice.script())[0]).unwrap();
    assert_eq!(block.txdata[1..], [parent.clone(), child.clone()]);
    assert!(peer.mempool().is_empty());
    assert_eq!(peer.utxo(&OutPoint::new(parent.compute_txid(), 0)), None);
    assert!(peer.utxo(&OutPoint::new(child.compute_txid(), 0)).is_some());
    assert_refused(
        &peer,
        send(&peer, &parent),
        TxRejectReason::AlreadyConfirmed,
        "already confirmed",
    );

    let (coin, value) = confirmed_coin(&peer, &alice, 50_000);
    let pending = spend_p2wpkh(&alice, coin, value, vec![pay(&bob.script(), 49_000)]);
    peer.send_tx(&pending).unwrap();
    peer.clear_mempool();
    assert!(!peer.in_mempool(&pending.compute_txid()));
    peer.mine(1, &alice.script());
    assert_eq!(peer.confirmations(&pending.compute_txid()), None);
    peer.send_tx(&pending).unwrap();
}

#[tokio::test]
async fn a_raised_minimum_fee_rate_refuses_cheaper_transactions_and_is_announced() {
    let peer = start_peer().await;
    let key = TestKey::new("payer");
    let (cheap_coin, value) = confirmed_coin(&peer, &key, 100_000);
    let (dear_coin, _) = confirmed_coin(&peer, &key, 100_000);
    let mut raw = common::raw::RawPeer::connect(peer.addr()).await;
    raw.handshake(true).await;

    // As Core with -minrelaytxfee=0.0002: 20 sat/vB.
    peer.set_min_fee_rate(20_000);
    assert_eq!(peer.min_fee_rate(), 20_000);
    let announced = raw
        .recv_until(|message| match message {
            bitcoin::p2p::message::NetworkMessage::FeeFilter(rate) => Some(*rate),
            _ => None,
        })
        .await;
    assert_eq!(
        announced, 20_000,
        "connected peers are told the new minimum"
    );
    let mut later = common::raw::RawPeer::connect(peer.addr()).await;
    let handshake = later.handshake(true).await;
    assert!(
        handshake
            .after_verack
            .contains(&bitcoin::p2p::message::NetworkMessage::FeeFilter(20_000)),
        "peers connecting later are told the minimum: {:?}",
        handshake.after_verack
    );

    // 10 sat/vB: refused, from the API and from a peer alike.
    let to = TestKey::new("payee").script();
    let cheap = spend_p2wpkh(&key, cheap_coin, value, vec![pay(&to, 100_000 - 1_500)]);
    assert_refused(
        &peer,
        send(&peer, &cheap),
        TxRejectReason::FeeTooLow,
        "20000 sat/kvB",
    );
    raw.send(bitcoin::p2p::message::NetworkMessage::Tx(cheap.clone()))
        .await;
    raw.sync().await;
    assert!(!peer.in_mempool(&cheap.compute_txid()));
    // 30 sat/vB: taken.
    let dear = spend_p2wpkh(&key, dear_coin, value, vec![pay(&to, 100_000 - 4_500)]);
    raw.send(bitcoin::p2p::message::NetworkMessage::Tx(dear.clone()))
        .await;
    assert!(common::wait_for(common::TIMEOUT, || peer.in_mempool(&dear.compute_txid())).await);
}

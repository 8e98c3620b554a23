//! A force close that stays unconfirmed for a long time (the mempool refuses it while the
//! node bumps its fee round after round) and is then swept into the wallet, and a restore
//! afterwards from the 24 words and the live mirror: the restored wallet finds every coin.

use crate::common;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use bitcoin::{Amount, OutPoint, Transaction, Txid};
use common::cli::*;

/// Rounds of fee bumping the close goes through before it may confirm: twice the 25
/// addresses a wallet made again from the seed looks beyond the last coin it found, and more.
const BUMP_ROUNDS: usize = 60;

/// The line LDK logs for every round of an anchor fee bump it broadcasts.
const BUMP_LINE: &str = "Broadcasting anchor transaction";

/// The CSV delay of Alice's output in her commitment (LDK's default `our_to_self_delay`,
/// which Bob asks of her).
const TO_SELF_DELAY: u32 = 144;

/// The wallet's coins as `(outpoint, amount)`.
fn coins(node: &Daemon) -> BTreeSet<(String, u64)> {
    node.json(&["utxos"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|utxo| {
            (
                utxo["outpoint"].as_str().expect("an outpoint").to_string(),
                utxo["amount_sat"].as_u64().expect("an amount"),
            )
        })
        .collect()
}

/// The mined transaction (in the last 400 blocks) that spends an output of `parent`.
fn child_of(chain: &Chain, parent: Txid) -> Option<Transaction> {
    let tip = chain.height();
    (tip.saturating_sub(400)..=tip)
        .filter_map(|height| chain.peer.block_at(height))
        .flat_map(|block| block.txdata)
        .find(|tx| {
            tx.input
                .iter()
                .any(|input| input.previous_output.txid == parent)
        })
}

/// The mined transaction (in the last 400 blocks) that spends `outpoint`.
fn spender(chain: &Chain, outpoint: OutPoint) -> Option<Transaction> {
    let tip = chain.height();
    (tip.saturating_sub(400)..=tip)
        .filter_map(|height| chain.peer.block_at(height))
        .flat_map(|block| block.txdata)
        .find(|tx| {
            tx.input
                .iter()
                .any(|input| input.previous_output == outpoint)
        })
}

/// Whether `coins` holds an output of `tx`.
fn holds_output_of(coins: &BTreeSet<(String, u64)>, tx: &Transaction) -> bool {
    let txid = tx.compute_txid().to_string();
    coins
        .iter()
        .any(|(outpoint, _)| outpoint.split(':').next() == Some(txid.as_str()))
}

#[test]
fn a_close_bumped_for_many_rounds_leaves_every_coin_findable_by_a_restore() {
    let chain = Chain::start();
    // The peer tells its minimum as 1 sat/vB but its mempool will refuse the close: the node
    // keeps bumping at the rates its estimates give, as against a full mempool.
    chain.peer.endpoint().switches.set_fee_filter(Some(1_000));
    let backup = tempfile::tempdir().unwrap();
    let mirror = backup.path().join("mirror");
    std::fs::create_dir(&mirror).unwrap();
    let mirror_arg = mirror.to_str().unwrap().to_string();
    let birthday = chain.height().to_string();
    // A close without HTLCs is bumped towards the `output_spending` estimate; above the
    // commitment's own rate, every round needs a child paying from the wallet.
    let mut a = Daemon::start_configured(
        "alice",
        &chain,
        &format!("backup_dir = {mirror_arg:?}\n[fee_overrides]\noutput_spending = \"5sat/vb\"\n"),
    );
    let mut b = Daemon::start("bob", &chain);
    a.fund(&chain, Amount::from_sat(1_000_000));
    // Bob accepts an anchor channel only with coins of his own for its fee bumps.
    b.fund(&chain, Amount::from_sat(100_000));
    let channel_id = a.open_usable_channel(&chain, &b, 600_000);
    assert_eq!(a.channel(&channel_id).unwrap()["anchors"], true);
    let funding = funding_outpoint(&chain, &a, &channel_id, 600_000);
    let words = a.json(&["seed", "--words"])["words"]
        .as_str()
        .unwrap()
        .to_string();

    // Bob is away; Alice closes alone, and the mempool takes nothing from her.
    b.kill_hard();
    chain.peer.set_min_fee_rate(100_000);
    let closed = a.json(&["closechannel", &channel_id, "--force"]);
    assert_eq!(closed["force"], true, "{closed}");
    let mut rounds = 0;
    for _ in 0..2 * BUMP_ROUNDS {
        rounds = a.log().matches(BUMP_LINE).count();
        if rounds >= BUMP_ROUNDS {
            break;
        }
        // LDK bumps an unconfirmed claim every 15 blocks (and every 30 s).
        chain.mine(15);
        a.wait_synced_to(chain.height());
    }
    assert!(rounds >= BUMP_ROUNDS, "only {rounds} bump rounds");
    assert!(
        chain.peer.utxo(&funding).is_some(),
        "the close confirmed while the mempool refused it"
    );

    // The mempool takes the close at last; it confirms with its fee-bumping child. Alice's
    // own output is hers after the CSV delay, and the sweeper moves it into her wallet.
    chain.peer.set_min_fee_rate(1_000);
    chain.mine_until("the close confirmed", || {
        chain.peer.utxo(&funding).is_none() && chain.peer.mempool().is_empty()
    });
    chain.mine(TO_SELF_DELAY);
    chain.mine_until("alice's channel balance swept into her wallet", || {
        let balance = a.json(&["balance"]);
        balance["onchain_confirmed_sat"].as_u64() > Some(900_000)
            && balance["onchain_pending_sat"] == 0
            && balance["sweeping_sat"] == 0
    });
    let original = coins(&a);
    let commitment = spender(&chain, funding).expect("the close is mined");
    let bump = child_of(&chain, commitment.compute_txid()).expect("the bump is mined");
    assert!(
        holds_output_of(&original, &bump),
        "the bump's change is not among the wallet's coins {original:?}"
    );

    // The card dies; the node comes back from its words and the mirror.
    a.kill_hard();
    let new_dir = tempfile::Builder::new()
        .prefix("lightfilter-alice-restored-")
        .tempdir()
        .unwrap();
    let made = init_with_words(new_dir.path(), &words);
    assert!(made.success, "{} {}", made.stdout, made.stderr);
    let restored = Daemon::start_in(
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
    restored.wait_synced_to(chain.height());
    // Synced means every block reached the wallet: it holds what it will ever find.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut found = coins(&restored);
    while found != original && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
        found = coins(&restored);
    }
    assert_eq!(
        found, original,
        "the restored wallet's coins (left) after {rounds} bump rounds, against the lost \
         node's (right)"
    );
}

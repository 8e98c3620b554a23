//! Receiving: coinbase maturity, BIP 84 addresses from the seed, script registration with
//! lookahead, and blocks delivered twice.

use crate::common;

use common::wallet_feed;

use std::str::FromStr;

use bitcoin::bip32::{DerivationPath, Xpriv};
use bitcoin::secp256k1::Secp256k1;
use bitcoin::{Address, Amount, CompressedPublicKey, FeeRate, Network, ScriptBuf};
use lightfilter::wallet::{FeeChoice, SendAmount, Wallet};
use lightning::chain::Listen;
use wallet_feed::{coinbase_paid, open_wallet, seed, start_peer, sync};

/// The BIP 84 script at `m/84'/1'/0'/{keychain}/{index}` of `seed`, derived here independently
/// of the wallet.
fn bip84_script(seed: &[u8; 32], keychain: u32, index: u32) -> ScriptBuf {
    let secp = Secp256k1::new();
    let master = Xpriv::new_master(Network::Regtest, seed).unwrap();
    let path = DerivationPath::from_str(&format!("m/84'/1'/0'/{keychain}/{index}")).unwrap();
    let key = master.derive_priv(&secp, &path).unwrap().to_priv();
    let public = CompressedPublicKey::from_private_key(&secp, &key).unwrap();
    ScriptBuf::new_p2wpkh(&public.wpubkey_hash())
}

#[test]
fn wallet_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Wallet>();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mined_coins_are_immature_until_100_deep_then_confirmed() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = open_wallet(&dir.path().join("wallet.sqlite"), &seed(1), None, &peer).unwrap();
    let address = w.wallet.new_address().unwrap();
    let script = address.script_pubkey();
    let paid_up_to = |tip: u32| -> Vec<Amount> {
        (1..=tip)
            .map(|height| coinbase_paid(&peer, height, &script))
            .collect()
    };

    peer.mine(99, &script);
    sync(&w, &peer);
    let paid = paid_up_to(99);
    assert!(paid.iter().all(|amount| *amount > Amount::ZERO));
    let balance = w.wallet.balance().unwrap();
    assert_eq!(
        balance.confirmed,
        Amount::ZERO,
        "no coinbase is 100 deep yet"
    );
    assert_eq!(balance.immature, paid.iter().copied().sum::<Amount>());
    assert_eq!(
        balance.trusted_pending + balance.untrusted_pending,
        Amount::ZERO
    );

    // At tip 100 the first coinbase is 100 deep: it may be spent in the next block.
    peer.mine(1, &script);
    sync(&w, &peer);
    let paid = paid_up_to(100);
    let balance = w.wallet.balance().unwrap();
    assert_eq!(balance.confirmed, paid[0]);
    assert_eq!(balance.immature, paid[1..].iter().copied().sum::<Amount>());

    // 101 blocks mined to the address: the coinbases of blocks 1 and 2 are mature.
    peer.mine(1, &script);
    sync(&w, &peer);
    let paid = paid_up_to(101);
    let balance = w.wallet.balance().unwrap();
    assert_eq!(balance.confirmed, paid[0] + paid[1]);
    assert_eq!(balance.immature, paid[2..].iter().copied().sum::<Amount>());
    assert_eq!(balance.total(), paid.iter().copied().sum::<Amount>());
    let spendable: Vec<u32> = w
        .wallet
        .utxos()
        .unwrap()
        .iter()
        .filter(|utxo| utxo.spendable)
        .map(|utxo| utxo.confirmation_height.unwrap())
        .collect();
    assert_eq!(spendable.len(), 2);
    assert!(spendable.contains(&1) && spendable.contains(&2));

    // The peer's mempool agrees: spending everything confirmed takes exactly those two coinbases.
    let faucet = Address::from_script(&peer.faucet_script(), Network::Regtest).unwrap();
    let tx = w
        .wallet
        .send(
            &faucet.to_string(),
            SendAmount::All,
            FeeChoice::Rate(FeeRate::from_sat_per_vb(2).unwrap()),
        )
        .unwrap();
    assert!(
        peer.in_mempool(&tx.compute_txid()),
        "{:?}",
        w.broadcaster.outcomes()
    );
    let spent: Vec<_> = tx.input.iter().map(|i| i.previous_output.txid).collect();
    let coinbase_1 = peer.block_at(1).unwrap().txdata[0].compute_txid();
    let coinbase_2 = peer.block_at(2).unwrap().txdata[0].compute_txid();
    assert_eq!(spent.len(), 2);
    assert!(spent.contains(&coinbase_1) && spent.contains(&coinbase_2));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_follow_bip84_and_registered_scripts_grow_with_use() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let seed = seed(2);
    let w = open_wallet(&dir.path().join("wallet.sqlite"), &seed, None, &peer).unwrap();

    // On open: a lookahead of at least 20 scripts per keychain, before any address was given.
    for keychain in [0, 1] {
        for index in 0..20 {
            assert!(
                w.registry.contains(&bip84_script(&seed, keychain, index)),
                "script {keychain}/{index} registered on open"
            );
        }
    }
    let registered_on_open = w.registry.scripts().len();
    let lookahead = (0..)
        .take_while(|&index| w.registry.contains(&bip84_script(&seed, 0, index)))
        .count() as u32;
    assert!(lookahead >= 20);

    // The first address is BIP 84 index 0; revealing it extends the registered lookahead.
    let first = w.wallet.new_address().unwrap();
    assert_eq!(first.script_pubkey(), bip84_script(&seed, 0, 0));
    assert!(w.registry.contains(&bip84_script(&seed, 0, lookahead)));
    assert!(!w.registry.contains(&bip84_script(&seed, 0, lookahead + 1)));
    assert_eq!(w.registry.scripts().len(), registered_on_open + 1);

    // Someone pays index 20, which the wallet never handed out but watches.
    let far = bip84_script(&seed, 0, 20);
    let payment = peer
        .fund(
            &far,
            Amount::from_sat(250_000),
            FeeRate::from_sat_per_vb(2).unwrap(),
        )
        .unwrap();
    peer.mine(1, &peer.faucet_script());
    let report = sync(&w, &peer);
    let (tip, _) = peer.tip();
    assert!(
        report.full_blocks.contains(&tip),
        "the paying block was fetched"
    );
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(250_000)
    );
    assert_eq!(
        w.wallet.transactions().unwrap()[0].txid,
        payment.compute_txid()
    );
    // Index 20 is now used: the lookahead behind it was registered while the block was processed.
    assert!(w.registry.contains(&bip84_script(&seed, 0, 20 + lookahead)));

    // And a payment to the new edge of the lookahead is found too.
    let edge = bip84_script(&seed, 0, 20 + lookahead);
    peer.fund(
        &edge,
        Amount::from_sat(100_000),
        FeeRate::from_sat_per_vb(2).unwrap(),
    )
    .unwrap();
    peer.mine(1, &peer.faucet_script());
    sync(&w, &peer);
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(350_000)
    );
    assert!(w
        .registry
        .contains(&bip84_script(&seed, 0, 20 + 2 * lookahead)));

    // The next address handed out follows the highest used index.
    let next = w.wallet.new_address().unwrap();
    assert_eq!(
        next.script_pubkey(),
        bip84_script(&seed, 0, 20 + lookahead + 1)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_delivered_twice_counts_once() {
    let peer = start_peer().await;
    let dir = tempfile::tempdir().unwrap();
    let w = open_wallet(&dir.path().join("wallet.sqlite"), &seed(3), None, &peer).unwrap();
    let address = w.wallet.new_address().unwrap();
    let payment = peer
        .fund(
            &address.script_pubkey(),
            Amount::from_sat(400_000),
            FeeRate::from_sat_per_vb(3).unwrap(),
        )
        .unwrap();
    sync(&w, &peer);
    peer.mine(1, &peer.faucet_script());
    let (height, hash) = peer.tip();
    let block = peer.block(&hash).unwrap();
    let position = block
        .txdata
        .iter()
        .position(|tx| tx.compute_txid() == payment.compute_txid())
        .unwrap();

    // First header-only, then again with the payment, then once more in full.
    w.wallet
        .filtered_block_connected(&block.header, &[], height);
    assert_eq!(w.wallet.best_block().height, height);
    assert_eq!(w.wallet.balance().unwrap().confirmed, Amount::ZERO);
    w.wallet.filtered_block_connected(
        &block.header,
        &[(position, &block.txdata[position])],
        height,
    );
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(400_000)
    );
    w.wallet.block_connected(&block, height);
    w.wallet.filtered_block_connected(
        &block.header,
        &[(position, &block.txdata[position])],
        height,
    );

    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(400_000)
    );
    assert_eq!(w.wallet.utxos().unwrap().len(), 1);
    let txs = w.wallet.transactions().unwrap();
    assert_eq!(txs.len(), 1);
    assert_eq!(txs[0].confirmation_height, Some(height));
    assert_eq!(w.wallet.best_block().height, height);

    // The chain goes on from there.
    peer.mine(2, &address.script_pubkey());
    let report = sync(&w, &peer);
    assert_eq!(report.disconnected_to, None);
    assert_eq!(w.wallet.best_block().height, height + 2);
    assert_eq!(
        w.wallet.balance().unwrap().confirmed,
        Amount::from_sat(400_000)
    );
    assert!(w.wallet.balance().unwrap().immature > Amount::ZERO);
}

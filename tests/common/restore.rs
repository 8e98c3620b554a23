//! Helpers for the backup and restore tests: payments and balances of channel peers driven
//! through the CLI, copies of directories, data directories made from the 24 words, and the
//! chain's view of a channel's funding.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use bitcoin::hashes::{sha256, Hash};
use bitcoin::hex::DisplayHex;
use bitcoin::OutPoint;
use serde_json::Value;

use super::cli::{init_with_words, wait_until, Chain, Daemon};

/// `payer` pays a new invoice of `payee` for `sat`, and the payment succeeds.
pub fn pay(payer: &Daemon, payee: &Daemon, sat: u64) {
    let invoice = payee.json(&["invoice", &(sat * 1_000).to_string()]);
    let paid = payer.json(&["pay", invoice["bolt11"].as_str().unwrap()]);
    assert_eq!(paid["status"], "succeeded", "{paid}");
}

/// The node's balance in the channel, in msat.
pub fn local_msat(node: &Daemon, channel_id: &str) -> u64 {
    node.channel(channel_id).expect("the channel is listed")["local_balance_msat"]
        .as_u64()
        .unwrap()
}

/// Waits until both nodes list the channel as usable.
pub fn wait_usable(nodes: [&Daemon; 2], channel_id: &str) {
    for node in nodes {
        wait_until(&format!("the channel usable on {}", node.name), || {
            node.channel(channel_id)
                .is_some_and(|channel| channel["usable"] == true)
        });
    }
}

/// The transactions of the mempool spending `outpoint`.
pub fn mempool_spends(chain: &Chain, outpoint: OutPoint) -> usize {
    chain
        .peer
        .mempool()
        .iter()
        .filter(|tx| {
            tx.input
                .iter()
                .any(|input| input.previous_output == outpoint)
        })
        .count()
}

/// Neither a block nor the mempool holds a spend of `funding`: nobody closed the channel.
pub fn assert_not_closed(chain: &Chain, funding: OutPoint) {
    chain.mine(3);
    assert!(
        chain.peer.utxo(&funding).is_some(),
        "the channel was closed on chain"
    );
    assert_eq!(
        mempool_spends(chain, funding),
        0,
        "a close of the channel waits in the mempool"
    );
}

/// The node's seed as its 24 words.
pub fn words_of(node: &Daemon) -> String {
    node.json(&["seed", "--words"])["words"]
        .as_str()
        .unwrap()
        .to_string()
}

/// A new data directory made from `words` with `init`, as after a card failure.
pub fn data_dir_from_words(name: &str, words: &str) -> tempfile::TempDir {
    let dir = tempfile::Builder::new()
        .prefix(&format!("lightfilter-{name}-"))
        .tempdir()
        .unwrap();
    let made = init_with_words(dir.path(), words);
    assert!(made.success, "{} {}", made.stdout, made.stderr);
    dir
}

/// Copies the directory `from` to `to`, files and subdirectories.
pub fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let target = to.join(path.file_name().unwrap());
        if path.is_dir() {
            copy_dir(&path, &target);
        } else {
            std::fs::copy(&path, &target).unwrap();
        }
    }
}

/// Every file under `dir`, by path relative to it, with its bytes.
pub fn snapshot(dir: &Path) -> BTreeMap<PathBuf, Vec<u8>> {
    fn walk(root: &Path, dir: &Path, files: &mut BTreeMap<PathBuf, Vec<u8>>) {
        for entry in std::fs::read_dir(dir).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                walk(root, &path, files);
            } else {
                let relative = path.strip_prefix(root).unwrap().to_path_buf();
                files.insert(relative, std::fs::read(&path).unwrap());
            }
        }
    }
    let mut files = BTreeMap::new();
    if dir.exists() {
        walk(dir, dir, &mut files);
    }
    files
}

/// A payment preimage made of `byte`, as hex, and its payment hash, as hex.
pub fn preimage(byte: u8) -> (String, String) {
    let preimage = [byte; 32];
    (
        preimage.to_lower_hex_string(),
        sha256::Hash::hash(&preimage)
            .to_byte_array()
            .to_lower_hex_string(),
    )
}

/// The payment with `hash` in `daemon`'s `payments`.
pub fn payment(daemon: &Daemon, hash: &str) -> Option<Value> {
    daemon
        .json(&["payments"])
        .as_array()
        .expect("a list of payments")
        .iter()
        .find(|payment| payment["payment_hash"] == hash)
        .cloned()
}

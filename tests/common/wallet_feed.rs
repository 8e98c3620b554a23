//! Test support for the on-chain wallet: feeds it the embedded regtest peer's chain the way the
//! chain source does (full blocks when the block's BIP 158 filter matches a watched script,
//! headers otherwise, a second delivery when the watch set grew, `blocks_disconnected` on
//! reorgs), and gives it a broadcaster that submits to the peer's mempool, a fixed-rate fee
//! estimator and a registry that records the watched scripts.

#![allow(dead_code)]

use std::collections::HashSet;
use std::path::Path;
use std::sync::{Arc, Mutex};

use bitcoin::{Amount, Block, BlockHash, Network, ScriptBuf, Transaction, Txid};
use lightfilter::regtest::RegtestPeer;
use lightfilter::wallet::{ScriptRegistry, Wallet, WalletError};
use lightning::chain::chaininterface::{BroadcasterInterface, ConfirmationTarget, FeeEstimator};
use lightning::chain::{BestBlock, Listen};

/// Records every script the wallet registers, in order.
#[derive(Default)]
pub struct RecordingRegistry {
    scripts: Mutex<Vec<ScriptBuf>>,
}

impl RecordingRegistry {
    /// All registered scripts, in registration order.
    pub fn scripts(&self) -> Vec<ScriptBuf> {
        self.scripts.lock().unwrap().clone()
    }

    /// Whether `script` was registered.
    pub fn contains(&self, script: &ScriptBuf) -> bool {
        self.scripts.lock().unwrap().contains(script)
    }
}

impl ScriptRegistry for RecordingRegistry {
    fn register_scripts(&self, scripts: &[ScriptBuf]) {
        self.scripts.lock().unwrap().extend_from_slice(scripts);
    }
}

/// Submits broadcast transactions to the peer's mempool and records the outcome.
pub struct PeerBroadcaster {
    peer: RegtestPeer,
    outcomes: Mutex<Vec<(Txid, Result<(), String>)>>,
}

impl PeerBroadcaster {
    pub fn new(peer: &RegtestPeer) -> Self {
        PeerBroadcaster {
            peer: peer.clone(),
            outcomes: Mutex::new(Vec::new()),
        }
    }

    /// Every broadcast so far with the mempool's verdict.
    pub fn outcomes(&self) -> Vec<(Txid, Result<(), String>)> {
        self.outcomes.lock().unwrap().clone()
    }
}

impl BroadcasterInterface for PeerBroadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        for tx in txs {
            let outcome = self
                .peer
                .send_tx(tx)
                .map(|_| ())
                .map_err(|rejected| format!("{rejected:?}"));
            self.outcomes
                .lock()
                .unwrap()
                .push((tx.compute_txid(), outcome));
        }
    }
}

/// Answers every confirmation target with one fee rate.
pub struct FixedFeeEstimator(pub u32);

impl FeeEstimator for FixedFeeEstimator {
    fn get_est_sat_per_1000_weight(&self, _target: ConfirmationTarget) -> u32 {
        self.0
    }
}

/// A wallet with its collaborators, as the tests use it.
pub struct TestWallet {
    pub wallet: Wallet,
    pub registry: Arc<RecordingRegistry>,
    pub broadcaster: Arc<PeerBroadcaster>,
}

/// The fee rate the test fee estimator gives (sat per 1000 weight units).
pub const ESTIMATED_SAT_PER_KW: u32 = 2_000;

/// Opens (or creates) the wallet at `path` for regtest with test collaborators.
pub fn open_wallet(
    path: &Path,
    seed: &[u8; 32],
    birthday: Option<(u32, BlockHash)>,
    peer: &RegtestPeer,
) -> Result<TestWallet, WalletError> {
    let registry = Arc::new(RecordingRegistry::default());
    let broadcaster = Arc::new(PeerBroadcaster::new(peer));
    let wallet = Wallet::open(
        path,
        seed,
        Network::Regtest,
        birthday,
        registry.clone(),
        Arc::new(FixedFeeEstimator(ESTIMATED_SAT_PER_KW)),
        broadcaster.clone(),
    )?;
    Ok(TestWallet {
        wallet,
        registry,
        broadcaster,
    })
}

/// Starts an embedded regtest peer on an ephemeral local port.
pub async fn start_peer() -> RegtestPeer {
    RegtestPeer::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("the regtest peer starts")
}

/// What a sync delivered.
#[derive(Debug, Default)]
pub struct FeedReport {
    /// The fork point given to `blocks_disconnected`, if the wallet was on a stale branch.
    pub disconnected_to: Option<u32>,
    /// Heights delivered as full blocks.
    pub full_blocks: Vec<u32>,
    /// Number of blocks delivered header-only.
    pub header_only: u32,
    /// Heights delivered a second time because the watch set grew.
    pub redelivered: Vec<u32>,
}

/// Brings the wallet from its best block to the peer's tip, like the chain source would.
pub fn sync(wallet: &TestWallet, peer: &RegtestPeer) -> FeedReport {
    let mut report = FeedReport::default();
    let best = wallet.wallet.best_block();
    let mut fork = best;
    while peer.block_at(fork.height).map(|b| b.block_hash()) != Some(fork.block_hash) {
        let block = peer
            .block(&fork.block_hash)
            .expect("the peer knows every block the wallet saw");
        fork = BestBlock::new(block.header.prev_blockhash, fork.height - 1);
    }
    if fork != best {
        wallet.wallet.blocks_disconnected(fork);
        report.disconnected_to = Some(fork.height);
    }
    let (tip, _) = peer.tip();
    for height in fork.height + 1..=tip {
        let block = peer.block_at(height).expect("active chain block");
        deliver(wallet, peer, &block, height, &mut report);
    }
    report
}

fn deliver(
    wallet: &TestWallet,
    peer: &RegtestPeer,
    block: &Block,
    height: u32,
    report: &mut FeedReport,
) {
    let hash = block.block_hash();
    let filter = peer.filter(&hash).expect("every block has a filter");
    let watched = wallet.registry.scripts();
    let matches = |scripts: &[ScriptBuf]| {
        !scripts.is_empty()
            && filter
                .match_any(&hash, scripts.iter().map(|s| s.as_bytes()))
                .expect("filter decodes")
    };
    if matches(&watched) {
        wallet.wallet.block_connected(block, height);
        report.full_blocks.push(height);
    } else {
        wallet
            .wallet
            .filtered_block_connected(&block.header, &[], height);
        report.header_only += 1;
    }
    // Scripts registered while the block was processed: check the block again and deliver the
    // transactions that concern them (and those spending their outputs within the block).
    let grown = wallet.registry.scripts();
    let new_scripts = &grown[watched.len()..];
    if matches(new_scripts) {
        let new: HashSet<&ScriptBuf> = new_scripts.iter().collect();
        let mut paid = HashSet::new();
        let mut txdata = Vec::new();
        for (index, tx) in block.txdata.iter().enumerate() {
            let pays = tx.output.iter().any(|o| new.contains(&o.script_pubkey));
            let spends = tx
                .input
                .iter()
                .any(|i| paid.contains(&i.previous_output.txid));
            if pays || spends {
                paid.insert(tx.compute_txid());
                txdata.push((index, tx));
            }
        }
        wallet
            .wallet
            .filtered_block_connected(&block.header, &txdata, height);
        report.redelivered.push(height);
    }
}

/// The coinbase value block `height` pays to `script`.
pub fn coinbase_paid(peer: &RegtestPeer, height: u32, script: &ScriptBuf) -> Amount {
    peer.block_at(height).expect("block").txdata[0]
        .output
        .iter()
        .filter(|o| &o.script_pubkey == script)
        .map(|o| o.value)
        .sum()
}

/// A deterministic seed for test `n`.
pub fn seed(n: u8) -> [u8; 32] {
    let mut seed = [n; 32];
    seed[0] = 0x5e;
    seed
}

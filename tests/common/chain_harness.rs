//! Test support for the chain source: a recording listener and a harness that runs a
//! `ChainSource` against embedded regtest peers in a temporary data directory.

#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::block::Header;
use bitcoin::{BlockHash, Network, ScriptBuf, Transaction, Txid};
use lightfilter::chain::{
    ChainConfig, ChainListener, ChainSource, PeerAddress, SharedListen, WatchSet,
};
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a listener saw.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seen {
    Connected {
        height: u32,
        hash: BlockHash,
        txids: Vec<Txid>,
        wtxids: Vec<bitcoin::Wtxid>,
    },
    Disconnected {
        fork_height: u32,
        fork_hash: BlockHash,
    },
}

type Hook = Box<dyn Fn(&Header, &[&Transaction], u32) + Send + Sync>;

/// A listener that records every call and keeps a view of the chain it was given: tip,
/// block hashes by height and which transactions it holds confirmed.
pub struct Recorder {
    state: Mutex<RecorderState>,
    hook: Mutex<Option<Hook>>,
}

#[derive(Debug, Default)]
pub struct RecorderState {
    pub seen: Vec<Seen>,
    pub tip: Option<BestBlock>,
    pub chain: BTreeMap<u32, BlockHash>,
    pub confirmed: BTreeMap<Txid, u32>,
}

impl Recorder {
    pub fn new(start: BestBlock) -> Arc<Self> {
        let mut state = RecorderState::default();
        state.chain.insert(start.height, start.block_hash);
        state.tip = Some(start);
        Arc::new(Self {
            state: Mutex::new(state),
            hook: Mutex::new(None),
        })
    }

    /// Runs `hook` on every block connected, before recording it.
    pub fn on_block(&self, hook: impl Fn(&Header, &[&Transaction], u32) + Send + Sync + 'static) {
        *self.hook.lock().unwrap() = Some(Box::new(hook));
    }

    pub fn tip(&self) -> BestBlock {
        self.state.lock().unwrap().tip.expect("tip")
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.lock().unwrap().seen.clone()
    }

    pub fn is_confirmed(&self, txid: &Txid) -> bool {
        self.state.lock().unwrap().confirmed.contains_key(txid)
    }

    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.state.lock().unwrap().chain.get(&height).copied()
    }

    pub fn connected_heights(&self) -> Vec<u32> {
        self.seen()
            .into_iter()
            .filter_map(|s| match s {
                Seen::Connected { height, .. } => Some(height),
                _ => None,
            })
            .collect()
    }
}

impl Listen for Recorder {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        let txs: Vec<&Transaction> = txdata.iter().map(|(_, tx)| *tx).collect();
        if let Some(hook) = self.hook.lock().unwrap().as_ref() {
            hook(header, &txs, height);
        }
        let mut state = self.state.lock().unwrap();
        let hash = header.block_hash();
        let tip = state.tip.expect("tip");
        let rescan = tip.block_hash == hash && tip.height == height;
        assert!(
            rescan || (tip.block_hash == header.prev_blockhash && tip.height + 1 == height),
            "block {hash} at {height} does not build on the recorder's tip {tip:?}"
        );
        for tx in &txs {
            state.confirmed.insert(tx.compute_txid(), height);
        }
        state.chain.insert(height, hash);
        state.tip = Some(BestBlock::new(hash, height));
        state.seen.push(Seen::Connected {
            height,
            hash,
            txids: txs.iter().map(|tx| tx.compute_txid()).collect(),
            wtxids: txs.iter().map(|tx| tx.compute_wtxid()).collect(),
        });
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        let mut state = self.state.lock().unwrap();
        let tip = state.tip.expect("tip");
        assert!(
            fork_point.height < tip.height,
            "disconnection to {fork_point:?} from {tip:?}"
        );
        state.chain.retain(|h, _| *h <= fork_point.height);
        state.confirmed.retain(|_, h| *h <= fork_point.height);
        state.tip = Some(fork_point);
        state.seen.push(Seen::Disconnected {
            fork_height: fork_point.height,
            fork_hash: fork_point.block_hash,
        });
    }
}

/// A running chain source with one recording listener.
pub struct Harness {
    pub source: Arc<ChainSource>,
    pub recorder: Arc<Recorder>,
    pub watch: Arc<WatchSet>,
    stop: watch::Sender<bool>,
    follower: Option<JoinHandle<()>>,
}

/// The regtest genesis as a listener starting point.
pub fn genesis() -> BestBlock {
    let hash = bitcoin::constants::genesis_block(Network::Regtest).block_hash();
    BestBlock::new(hash, 0)
}

/// Starts a chain source in `dir` connected to `peers` only, with `listen` registered under
/// `name` as its only listener; nothing follows the tip until [`follow_from`].
pub fn start_source(
    dir: &Path,
    peers: &[std::net::SocketAddr],
    name: &str,
    listen: SharedListen,
    watch: Arc<WatchSet>,
    configure: impl FnOnce(&mut ChainConfig),
) -> Arc<ChainSource> {
    let mut config = ChainConfig::new(Network::Regtest, dir);
    config.peers = peers.iter().map(|a| PeerAddress::from(*a)).collect();
    config.only_peers = true;
    configure(&mut config);
    let listener = Arc::new(ChainListener::new());
    listener.register(name, listen);
    ChainSource::start(config, watch, listener).expect("chain source starts")
}

/// Synchronises the listener of `source` from block `from`, then follows the tip until the
/// returned sender says stop; the handle ends when following does.
pub async fn follow_from(
    source: &Arc<ChainSource>,
    from: BlockHash,
) -> (watch::Sender<bool>, JoinHandle<()>) {
    let tip = source
        .synchronize(&[from])
        .await
        .expect("listeners synchronise");
    let (stop, stop_rx) = watch::channel(false);
    let follower = tokio::spawn(source.clone().follow_tip(tip, stop_rx));
    (stop, follower)
}

impl Harness {
    /// Starts a chain source in `dir` connected to `peers`, registers `recorder` as its only
    /// listener, synchronises it and follows the tip.
    pub async fn start(
        dir: &Path,
        peers: &[std::net::SocketAddr],
        recorder: Arc<Recorder>,
        watch: Arc<WatchSet>,
    ) -> Harness {
        Self::start_with(dir, peers, recorder, watch, |_| {}).await
    }

    /// Like [`Harness::start`], with a chance to adjust the configuration.
    pub async fn start_with(
        dir: &Path,
        peers: &[std::net::SocketAddr],
        recorder: Arc<Recorder>,
        watch: Arc<WatchSet>,
        configure: impl FnOnce(&mut ChainConfig),
    ) -> Harness {
        let source = start_source(
            dir,
            peers,
            "recorder",
            recorder.clone(),
            watch.clone(),
            configure,
        );
        let start = recorder.tip();
        // The listener's block must be known before it can be synchronised.
        wait_for(Duration::from_secs(60), || {
            let heights = source.heights();
            heights.verified_tip.is_some_and(|(h, _)| h >= start.height)
        })
        .await;
        let (stop, follower) = follow_from(&source, start.block_hash).await;
        Harness {
            source,
            recorder,
            watch,
            stop,
            follower: Some(follower),
        }
    }

    /// Waits until the recorder's tip is `hash`.
    pub async fn wait_for_tip(&self, hash: BlockHash, limit: Duration) {
        let recorder = self.recorder.clone();
        wait_for(limit, move || recorder.tip().block_hash == hash).await;
    }

    /// Stops following and shuts the chain source down.
    pub async fn stop(mut self) -> Arc<Recorder> {
        let _ = self.stop.send(true);
        if let Some(follower) = self.follower.take() {
            let _ = follower.await;
        }
        self.source.shutdown();
        // Give the engine a moment to release the database.
        tokio::time::sleep(Duration::from_millis(200)).await;
        self.recorder.clone()
    }
}

/// Polls `condition` every 50 ms until it holds; panics after `limit`.
pub async fn wait_for(limit: Duration, mut condition: impl FnMut() -> bool) {
    let deadline = tokio::time::Instant::now() + limit;
    while !condition() {
        if tokio::time::Instant::now() > deadline {
            panic!("condition not reached within {limit:?}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// The witness script behind [`unique_script`]: `<tag> OP_DROP OP_TRUE`, spendable by anyone
/// who reveals it.
pub fn anyone_witness_script(tag: u64) -> ScriptBuf {
    bitcoin::script::Builder::new()
        .push_int(tag as i64)
        .push_opcode(bitcoin::opcodes::all::OP_DROP)
        .push_opcode(bitcoin::opcodes::OP_TRUE)
        .into_script()
}

/// A P2WSH script nobody else uses, spendable with [`spend_anyone`].
pub fn unique_script(tag: u64) -> ScriptBuf {
    ScriptBuf::new_p2wsh(&anyone_witness_script(tag).wscript_hash())
}

/// A transaction spending output `vout` of `prev` (paying [`unique_script`]`(tag)`) to `to`,
/// leaving `fee` sats as fee.
pub fn spend_anyone(
    prev: &Transaction,
    vout: u32,
    tag: u64,
    to: ScriptBuf,
    fee: u64,
) -> Transaction {
    use bitcoin::{
        absolute::LockTime, transaction::Version, Amount, OutPoint, Sequence, TxIn, TxOut, Witness,
    };
    let value = prev.output[vout as usize].value.to_sat() - fee;
    let mut witness = Witness::new();
    witness.push(anyone_witness_script(tag).as_bytes());
    Transaction {
        version: Version::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::new(prev.compute_txid(), vout),
            script_sig: ScriptBuf::new(),
            sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
            witness,
        }],
        output: vec![TxOut {
            value: Amount::from_sat(value),
            script_pubkey: to,
        }],
    }
}

/// The output index of `tx` paying `script`.
pub fn vout_paying(tx: &Transaction, script: &ScriptBuf) -> u32 {
    tx.output
        .iter()
        .position(|o| &o.script_pubkey == script)
        .expect("output paying the script") as u32
}

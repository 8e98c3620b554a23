//! An embedded regtest Bitcoin peer: a small node that holds a regtest chain in memory, mines on
//! demand, keeps a mempool, and serves blocks and BIP 157/158 compact filters over the real P2P
//! protocol on local TCP sockets.
//!
//! It is the test network of the project and the chain under the playground. It validates with
//! Bitcoin Core's consensus rules for regtest (see [`RegtestPeer::send_tx`] for what is checked)
//! and shares no code with the node's chain source, so it can catch that code's bugs.
//! Misbehaviour switches per [`Endpoint`] make it lie or go quiet for adversarial tests.
//!
//! Everything is kept in memory and updated incrementally (UTXO set with undo data, filters,
//! filter headers), so chains of 100,000 blocks mine in seconds. Block timestamps stay above
//! the median time past and within Core's two-hour future limit.
//!
//! ```no_run
//! # async fn demo() -> Result<(), Box<dyn std::error::Error>> {
//! use lightfilter::regtest::RegtestPeer;
//! let peer = RegtestPeer::start("127.0.0.1:0".parse()?).await?;
//! peer.mine(101, &peer.faucet_script());
//! println!("connect a client to {}", peer.addr());
//! # Ok(()) }
//! ```

mod chain;
mod consensus;
mod error;
mod faucet;
mod filters;
mod limits;
mod mempool;
mod miner;
mod misbehaviour;
mod node;
mod p2p;
mod shared;
mod stats;

use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin::bip158::BlockFilter;
use bitcoin::hash_types::FilterHeader;
use bitcoin::{
    Amount, Block, BlockHash, FeeRate, OutPoint, Script, ScriptBuf, Transaction, TxOut, Txid,
};
use log::{info, warn};

pub use consensus::{block_subsidy, COINBASE_MATURITY, SUBSIDY_HALVING_INTERVAL};
pub use error::{RegtestError, TxRejectReason, TxRejected};
pub use limits::PeerLimits;
pub use misbehaviour::Misbehaviour;
pub use p2p::{services, PROTOCOL_VERSION};
pub use stats::ServedStats;

use shared::{lock, Shared};

/// A listening socket of the peer and its misbehaviour switches.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// The address it listens on.
    pub addr: SocketAddr,
    /// Switches that make this endpoint (only) misbehave.
    pub switches: Arc<Misbehaviour>,
}

/// Handle to a running regtest peer. Clones drive the same peer; when the last clone is dropped
/// the peer stops listening and drops its connections.
#[derive(Clone)]
pub struct RegtestPeer {
    inner: Arc<PeerHandle>,
}

struct PeerHandle {
    shared: Arc<Shared>,
    default_endpoint: Endpoint,
}

impl Drop for PeerHandle {
    fn drop(&mut self) {
        self.shared.shutdown();
    }
}

impl std::fmt::Debug for RegtestPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (height, hash) = self.tip();
        f.debug_struct("RegtestPeer")
            .field("addr", &self.addr())
            .field("tip_height", &height)
            .field("tip_hash", &hash)
            .finish()
    }
}

impl RegtestPeer {
    /// Binds `listen` (use 127.0.0.1:0 for an ephemeral port) and serves P2P on the current
    /// tokio runtime with the default [`PeerLimits`]. The chain starts at the regtest genesis
    /// block.
    pub async fn start(listen: SocketAddr) -> Result<RegtestPeer, RegtestError> {
        RegtestPeer::start_with_limits(listen, PeerLimits::default()).await
    }

    /// [`RegtestPeer::start`] with the given connection limits.
    pub async fn start_with_limits(
        listen: SocketAddr,
        limits: PeerLimits,
    ) -> Result<RegtestPeer, RegtestError> {
        tokio::runtime::Handle::try_current().map_err(|_| RegtestError::NoRuntime)?;
        let shared = Arc::new(Shared::new(limits));
        let default_endpoint = p2p::listen(&shared, listen).await?;
        info!("regtest peer listening on {}", default_endpoint.addr);
        Ok(RegtestPeer {
            inner: Arc::new(PeerHandle {
                shared,
                default_endpoint,
            }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.inner.shared
    }

    fn node(&self) -> std::sync::MutexGuard<'_, node::Node> {
        lock(&self.shared().node)
    }

    /// The default endpoint's address.
    pub fn addr(&self) -> SocketAddr {
        self.inner.default_endpoint.addr
    }

    /// The default endpoint (address and switches).
    pub fn endpoint(&self) -> Endpoint {
        self.inner.default_endpoint.clone()
    }

    /// Another listening socket serving the same chain and mempool, with its own misbehaviour
    /// switches (so a test can have one honest and one lying peer on one chain).
    pub async fn add_endpoint(&self, listen: SocketAddr) -> Result<Endpoint, RegtestError> {
        let endpoint = p2p::listen(&self.inner.shared, listen).await?;
        info!("regtest peer also listening on {}", endpoint.addr);
        Ok(endpoint)
    }

    /// Mines `n` blocks paying `to`, including the valid mempool transactions, and announces
    /// them to connected peers. Returns the new block hashes, oldest first.
    pub fn mine(&self, n: u32, to: &Script) -> Vec<BlockHash> {
        self.node().mine(n, to)
    }

    /// Mines one block containing exactly `txs` (validated, in order) after the coinbase. If
    /// one is invalid nothing is mined and the error names it.
    pub fn mine_with(&self, txs: Vec<Transaction>, to: &Script) -> Result<BlockHash, TxRejected> {
        self.node().mine_with(txs, to)
    }

    /// Submits a transaction to the mempool (consensus rules for the next block, plus relay
    /// policy: 1 sat/vB minimum fee (or [`RegtestPeer::set_min_fee_rate`]'s), dust, standard weight; full-RBF replacement rules). On
    /// success it is announced to peers.
    ///
    /// Scripts are verified by Core's consensus library; taproot key-path spends are verified
    /// here, taproot script-path spends are refused as unsupported.
    pub fn send_tx(&self, tx: &Transaction) -> Result<Txid, TxRejected> {
        let result = self.node().submit(tx.clone(), None);
        if let Err(rejection) = &result {
            info!("refused a transaction: {rejection}");
        }
        result
    }

    /// Sets the lowest fee rate, in sat per 1000 vB, the mempool accepts (as Bitcoin Core's
    /// `-minrelaytxfee`; never below the default of 1,000): transactions paying less, from the
    /// P2P network or [`RegtestPeer::send_tx`], are refused and not relayed, and every
    /// connected peer is told the new rate in `feefilter` (as are peers connecting later). An
    /// endpoint's [`Misbehaviour::set_fee_filter`] still overrides what that endpoint announces.
    pub fn set_min_fee_rate(&self, sat_per_kvb: u64) {
        self.node().set_min_fee_rate_sat_per_kvb(sat_per_kvb);
    }

    /// The lowest fee rate the mempool accepts, in sat per 1000 vB.
    pub fn min_fee_rate(&self) -> u64 {
        self.node().min_fee_rate_sat_per_kvb()
    }

    /// Height and hash of the active tip.
    pub fn tip(&self) -> (u32, BlockHash) {
        self.node().chain().tip()
    }

    /// Any known block, stale ones included.
    pub fn block(&self, hash: &BlockHash) -> Option<Block> {
        self.node()
            .chain()
            .record(hash)
            .map(|record| (*record.block).clone())
    }

    /// The active-chain block at `height`.
    pub fn block_at(&self, height: u32) -> Option<Block> {
        self.node()
            .chain()
            .record_at(height)
            .map(|record| (*record.block).clone())
    }

    /// The BIP 158 basic filter of any known block.
    pub fn filter(&self, hash: &BlockHash) -> Option<BlockFilter> {
        self.node()
            .chain()
            .record(hash)
            .map(|record| record.filter.clone())
    }

    /// The BIP 157 filter header of any known block (on its own branch).
    pub fn filter_header(&self, hash: &BlockHash) -> Option<FilterHeader> {
        self.node()
            .chain()
            .record(hash)
            .map(|record| record.filter_header)
    }

    /// Disconnects the top `depth` blocks of the active chain (like Core's `invalidateblock`):
    /// their non-coinbase transactions return to the mempool when still valid, and the blocks
    /// are no longer served. Peers see the reorg once a longer branch is mined. Returns the
    /// disconnected hashes, old tip first.
    pub fn invalidate(&self, depth: u32) -> Vec<BlockHash> {
        self.node().invalidate(depth)
    }

    /// Connects `block`, disconnected earlier by [`RegtestPeer::invalidate`], again on top of
    /// the tip (Core's `reconsiderblock`, once the branch that replaced it is invalidated).
    pub fn reconnect(&self, block: Block) -> Result<BlockHash, TxRejected> {
        self.node().reconnect(block)
    }

    /// `invalidate(depth)` then `mine(new_blocks)` to `to`; returns the new blocks. With
    /// `new_blocks <= depth` the new branch has no more work than the old one, so peers that
    /// saw the old branch keep it (as they would with Core).
    pub fn reorg(&self, depth: u32, new_blocks: u32, to: &Script) -> Vec<BlockHash> {
        if new_blocks <= depth {
            warn!("reorg of {depth} block(s) replaced by only {new_blocks}: peers will keep the old branch");
        }
        let mut node = self.node();
        node.invalidate(depth);
        node.mine(new_blocks, to)
    }

    /// Mempool transactions in arrival order (parents before children).
    pub fn mempool(&self) -> Vec<Transaction> {
        self.node()
            .mempool()
            .iter()
            .map(|entry| entry.tx.clone())
            .collect()
    }

    /// Whether `txid` is in the mempool.
    pub fn in_mempool(&self, txid: &Txid) -> bool {
        self.node().mempool().contains(txid)
    }

    /// Empties the mempool (what a restarted node without `mempool.dat` has).
    pub fn clear_mempool(&self) {
        self.node().clear_mempool();
    }

    /// Confirmations of `txid` on the active chain (1 when in the tip block).
    pub fn confirmations(&self, txid: &Txid) -> Option<u32> {
        let node = self.node();
        let chain = node.chain();
        chain
            .tx_height(txid)
            .map(|height| chain.height() - height + 1)
    }

    /// A confirmed unspent output of the active chain (the mempool is not considered).
    pub fn utxo(&self, outpoint: &OutPoint) -> Option<TxOut> {
        self.node()
            .chain()
            .utxo(outpoint)
            .map(|coin| coin.txout.clone())
    }

    /// What was served since start or the last reset, all endpoints summed.
    pub fn stats(&self) -> ServedStats {
        lock(&self.shared().stats).clone()
    }

    /// Resets the served statistics.
    pub fn reset_stats(&self) {
        *lock(&self.shared().stats) = ServedStats::default();
    }

    /// Connected peers that completed the version handshake, all endpoints summed.
    pub fn peer_count(&self) -> usize {
        self.shared().peer_count()
    }

    /// Transactions with unknown parents kept from peers for a retry, and their total weight
    /// in weight units.
    pub fn orphans(&self) -> (usize, u64) {
        self.node().orphan_usage()
    }

    /// Open connections, handshaken or not, all endpoints summed.
    pub fn connection_count(&self) -> usize {
        lock(&self.shared().server).sessions.len()
    }

    /// Drops every connection; endpoints keep accepting new ones.
    pub fn disconnect_all(&self) {
        self.shared().disconnect_all();
    }

    /// Stops listening on all endpoints and drops all connections. The chain stays usable
    /// through this handle.
    pub fn shutdown(&self) {
        self.shared().shutdown();
        info!("regtest peer shut down");
    }

    /// The faucet's output script: a built-in regtest key (P2WPKH) that pays anyone.
    pub fn faucet_script(&self) -> ScriptBuf {
        self.node().faucet().script().clone()
    }

    /// Pays `amount` to `to` from the faucet's mature coins (mining 101 blocks to the faucet
    /// first if it has none), signs, submits to the mempool and returns the transaction (not
    /// mined). The payment is output 0; change, if any, goes back to the faucet. RBF is
    /// signalled.
    pub fn fund(
        &self,
        to: &Script,
        amount: Amount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, TxRejected> {
        self.node().fund(to, amount, fee_rate)
    }
}

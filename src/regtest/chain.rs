//! The regtest block chain held in memory: every block ever mined (stale ones too), the active
//! chain, the UTXO set with undo data for reorgs, and each block's filter and filter header.
//!
//! Everything is incremental: connecting a block touches only that block's transactions, so
//! chains of 100,000 blocks are mined and served without recomputation.

use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::Arc;

use bitcoin::bip158::BlockFilter;
use bitcoin::block::Header;
use bitcoin::constants::genesis_block;
use bitcoin::hashes::Hash;
use bitcoin::key::{Secp256k1, Verification};
use bitcoin::{
    Amount, Block, BlockHash, FilterHash, FilterHeader, Network, OutPoint, ScriptBuf, Transaction,
    Txid, Weight, Wtxid,
};

use super::consensus::{self, BlockContext, Coin};
use super::error::{TxRejectReason, TxRejected};
use super::filters;

/// Spent coins of one transaction, in input order, kept to undo the block.
pub type TxUndo = Vec<(OutPoint, Coin)>;

/// A block the chain knows, with what is needed to serve it and to undo it.
#[derive(Debug)]
pub struct BlockRecord {
    /// The block itself.
    pub block: Arc<Block>,
    /// Its height.
    pub height: u32,
    /// Its BIP 158 basic filter.
    pub filter: BlockFilter,
    /// The hash of that filter.
    pub filter_hash: FilterHash,
    /// Its BIP 157 filter header.
    pub filter_header: FilterHeader,
    /// Spent coins per non-coinbase transaction (empty once the block is disconnected).
    undo: Vec<TxUndo>,
    /// Disconnected by `invalidate`: never served to peers again (like Core's invalidateblock).
    pub invalidated: bool,
}

/// The chain state.
#[derive(Debug)]
pub struct Chain {
    records: HashMap<BlockHash, BlockRecord>,
    active: Vec<BlockHash>,
    times: Vec<u32>,
    utxos: HashMap<OutPoint, Coin>,
    tx_heights: HashMap<Txid, u32>,
    confirmed_wtxids: HashSet<Wtxid>,
    tracked_script: ScriptBuf,
    tracked_coins: BTreeSet<(u32, OutPoint)>,
}

const MAX_SCRIPT_SIZE: usize = 10_000;

fn is_unspendable(script: &bitcoin::Script) -> bool {
    script.is_op_return() || script.len() > MAX_SCRIPT_SIZE
}

impl Chain {
    /// A chain holding only the regtest genesis block. Outputs paying `tracked_script` are
    /// indexed for quick lookup (the faucet's coins).
    pub fn new(tracked_script: ScriptBuf) -> Chain {
        let genesis = genesis_block(Network::Regtest);
        let hash = genesis.block_hash();
        let filter = filters::basic_filter(&genesis, &HashMap::new())
            .expect("the genesis block spends nothing");
        let filter_hash = filters::filter_hash(&filter);
        let filter_header = filters::next_filter_header(&filter_hash, &FilterHeader::all_zeros());
        let time = genesis.header.time;
        let record = BlockRecord {
            block: Arc::new(genesis),
            height: 0,
            filter,
            filter_hash,
            filter_header,
            undo: Vec::new(),
            invalidated: false,
        };
        Chain {
            records: HashMap::from([(hash, record)]),
            active: vec![hash],
            times: vec![time],
            utxos: HashMap::new(),
            tx_heights: HashMap::new(),
            confirmed_wtxids: HashSet::new(),
            tracked_script,
            tracked_coins: BTreeSet::new(),
        }
    }

    /// Height and hash of the active tip.
    pub fn tip(&self) -> (u32, BlockHash) {
        let height = self.active.len() as u32 - 1;
        (height, self.active[height as usize])
    }

    /// Height of the active tip.
    pub fn height(&self) -> u32 {
        self.active.len() as u32 - 1
    }

    /// Any known block, stale ones included.
    pub fn record(&self, hash: &BlockHash) -> Option<&BlockRecord> {
        self.records.get(hash)
    }

    /// The active-chain block hash at `height`.
    pub fn hash_at(&self, height: u32) -> Option<BlockHash> {
        self.active.get(height as usize).copied()
    }

    /// The active-chain record at `height`.
    pub fn record_at(&self, height: u32) -> Option<&BlockRecord> {
        self.hash_at(height)
            .and_then(|hash| self.records.get(&hash))
    }

    /// Whether `hash` is on the active chain.
    pub fn is_active(&self, hash: &BlockHash) -> bool {
        self.records
            .get(hash)
            .is_some_and(|record| self.hash_at(record.height) == Some(*hash))
    }

    /// Median time past of the active-chain block at `height` (Core's `GetMedianTimePast`).
    pub fn median_time_at(&self, height: u32) -> u32 {
        let end = (height as usize).min(self.times.len() - 1);
        let start = end.saturating_sub(10);
        let mut window: Vec<u32> = self.times[start..=end].to_vec();
        window.sort_unstable();
        window[window.len() / 2]
    }

    /// The context of the next block on the active chain.
    pub fn next_block_context(&self) -> BlockContext {
        let height = self.height();
        BlockContext {
            height: height + 1,
            prev_median_time: self.median_time_at(height),
        }
    }

    /// A confirmed unspent output of the active chain.
    pub fn utxo(&self, outpoint: &OutPoint) -> Option<&Coin> {
        self.utxos.get(outpoint)
    }

    /// Height of the active-chain block confirming `txid`.
    pub fn tx_height(&self, txid: &Txid) -> Option<u32> {
        self.tx_heights.get(txid).copied()
    }

    /// Whether a non-coinbase transaction with this wtxid is confirmed on the active chain.
    pub fn has_wtxid(&self, wtxid: &Wtxid) -> bool {
        self.confirmed_wtxids.contains(wtxid)
    }

    /// Confirmed unspent outputs paying the tracked script, oldest first.
    pub fn tracked_coins(&self) -> impl Iterator<Item = (&OutPoint, &Coin)> {
        self.tracked_coins
            .iter()
            .filter_map(|(_, outpoint)| self.utxos.get(outpoint).map(|coin| (outpoint, coin)))
    }

    /// The hash of the ancestor of `hash` at `height` (following `hash`'s own branch).
    pub fn ancestor(&self, hash: &BlockHash, height: u32) -> Option<BlockHash> {
        let mut record = self.records.get(hash)?;
        if height > record.height {
            return None;
        }
        if self.is_active(hash) {
            return self.hash_at(height);
        }
        let mut current = *hash;
        while record.height > height {
            current = record.block.header.prev_blockhash;
            if self.is_active(&current) {
                return self.hash_at(height);
            }
            record = self.records.get(&current)?;
        }
        Some(current)
    }

    /// Hashes of `stop`'s branch from `start_height` to `stop` inclusive, oldest first.
    pub fn branch(&self, start_height: u32, stop: &BlockHash) -> Option<Vec<BlockHash>> {
        let stop_record = self.records.get(stop)?;
        if start_height > stop_record.height {
            return None;
        }
        if self.is_active(stop) {
            return Some(self.active[start_height as usize..=stop_record.height as usize].to_vec());
        }
        let mut hashes = Vec::with_capacity((stop_record.height - start_height + 1) as usize);
        let mut current = *stop;
        loop {
            let record = self.records.get(&current)?;
            hashes.push(current);
            if record.height == start_height {
                break;
            }
            current = record.block.header.prev_blockhash;
        }
        hashes.reverse();
        Some(hashes)
    }

    /// Core's `FindForkInGlobalIndex`: the height of the first locator entry on the active
    /// chain (or the tip if that entry descends from it), else genesis.
    pub fn locate(&self, locator: &[BlockHash]) -> u32 {
        let (tip_height, tip_hash) = self.tip();
        for hash in locator {
            let Some(record) = self.records.get(hash) else {
                continue;
            };
            if self.is_active(hash) {
                return record.height;
            }
            if record.height > tip_height && self.ancestor(hash, tip_height) == Some(tip_hash) {
                return tip_height;
            }
        }
        0
    }

    /// Headers of the active chain from `from` to `to` inclusive.
    pub fn headers(&self, from: u32, to: u32) -> Vec<Header> {
        (from..=to.min(self.height()))
            .filter_map(|height| self.record_at(height).map(|record| record.block.header))
            .collect()
    }

    /// Why `outpoint` is not in the UTXO set, for error messages.
    pub fn missing_input_detail(&self, outpoint: &OutPoint) -> &'static str {
        let output_count = self.tx_height(&outpoint.txid).and_then(|height| {
            let record = self.record_at(height)?;
            let tx = record
                .block
                .txdata
                .iter()
                .find(|tx| tx.compute_txid() == outpoint.txid)?;
            Some(tx.output.len())
        });
        match output_count {
            Some(count) if (outpoint.vout as usize) < count => "which is already spent",
            Some(_) => "but that transaction has no such output",
            None => "which does not exist on the active chain",
        }
    }

    /// Starts validating the transactions of the next block.
    pub fn block_builder(&self) -> BlockBuilder<'_> {
        BlockBuilder {
            chain: self,
            ctx: self.next_block_context(),
            created: HashMap::new(),
            spent: HashSet::new(),
            txs: Vec::new(),
            undo: Vec::new(),
            fees: Amount::ZERO,
            weight: Weight::ZERO,
        }
    }

    /// Appends a block whose transactions were validated by a [`BlockBuilder`] on this tip.
    pub fn connect(&mut self, block: Block, undo: Vec<TxUndo>) -> BlockHash {
        let hash = block.block_hash();
        let parent = self
            .records
            .get(&block.header.prev_blockhash)
            .expect("block extends the tip");
        let parent_filter_header = parent.filter_header;
        let height = parent.height + 1;
        debug_assert_eq!(block.header.prev_blockhash, self.tip().1);

        let mut spent_scripts = HashMap::new();
        for (index, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            if index > 0 {
                self.confirmed_wtxids.insert(tx.compute_wtxid());
                for (outpoint, coin) in &undo[index - 1] {
                    self.utxos.remove(outpoint);
                    self.tracked_coins.remove(&(coin.height, *outpoint));
                    spent_scripts.insert(*outpoint, coin.txout.script_pubkey.clone());
                }
            }
            for (vout, output) in tx.output.iter().enumerate() {
                if is_unspendable(&output.script_pubkey) {
                    continue;
                }
                let outpoint = OutPoint::new(txid, vout as u32);
                if output.script_pubkey == self.tracked_script {
                    self.tracked_coins.insert((height, outpoint));
                }
                self.utxos.insert(
                    outpoint,
                    Coin {
                        txout: output.clone(),
                        height,
                        is_coinbase: index == 0,
                    },
                );
            }
            self.tx_heights.insert(txid, height);
        }
        let filter = filters::basic_filter(&block, &spent_scripts)
            .expect("every spent output's script is in the undo data");
        let filter_hash = filters::filter_hash(&filter);
        let filter_header = filters::next_filter_header(&filter_hash, &parent_filter_header);
        self.times.push(block.header.time);
        self.active.push(hash);
        self.records.insert(
            hash,
            BlockRecord {
                block: Arc::new(block),
                height,
                filter,
                filter_hash,
                filter_header,
                undo,
                invalidated: false,
            },
        );
        hash
    }

    /// Disconnects the active tip (never genesis), restoring the outputs it spent; the block
    /// stays known but is marked invalidated.
    pub fn disconnect_tip(&mut self) -> Option<Arc<Block>> {
        let (height, hash) = self.tip();
        if height == 0 {
            return None;
        }
        let record = self
            .records
            .get_mut(&hash)
            .expect("active blocks are recorded");
        record.invalidated = true;
        let undo = std::mem::take(&mut record.undo);
        let block = Arc::clone(&record.block);
        for (index, tx) in block.txdata.iter().enumerate().rev() {
            let txid = tx.compute_txid();
            for vout in 0..tx.output.len() {
                let outpoint = OutPoint::new(txid, vout as u32);
                if self.utxos.remove(&outpoint).is_some() {
                    self.tracked_coins.remove(&(height, outpoint));
                }
            }
            if index > 0 {
                self.confirmed_wtxids.remove(&tx.compute_wtxid());
                for (outpoint, coin) in undo[index - 1].iter().rev() {
                    if coin.txout.script_pubkey == self.tracked_script {
                        self.tracked_coins.insert((coin.height, *outpoint));
                    }
                    self.utxos.insert(*outpoint, coin.clone());
                }
            }
            if self.tx_heights.get(&txid) == Some(&height) {
                self.tx_heights.remove(&txid);
            }
        }
        self.active.pop();
        self.times.pop();
        Some(block)
    }
}

/// Validates transactions one by one as the content of the next block, tracking what earlier
/// transactions of the same block created and spent. A refused transaction changes nothing.
pub struct BlockBuilder<'a> {
    chain: &'a Chain,
    ctx: BlockContext,
    created: HashMap<OutPoint, Coin>,
    spent: HashSet<OutPoint>,
    txs: Vec<Transaction>,
    undo: Vec<TxUndo>,
    fees: Amount,
    weight: Weight,
}

impl BlockBuilder<'_> {
    /// Checks `tx` against every consensus rule in this block and adds it. Script checks are
    /// skipped when `scripts_verified` (the mempool already ran them for the same outputs).
    pub fn try_add<C: Verification>(
        &mut self,
        secp: &Secp256k1<C>,
        tx: &Transaction,
        scripts_verified: bool,
    ) -> Result<Amount, TxRejected> {
        let txid = tx.compute_txid();
        if tx.is_coinbase() {
            return Err(TxRejected::new(
                txid,
                TxRejectReason::Malformed,
                "a coinbase transaction can only be the first of a block",
            ));
        }
        consensus::check_transaction(tx)?;
        consensus::check_final(tx, &self.ctx)?;
        let mut spent = Vec::with_capacity(tx.input.len());
        for (index, input) in tx.input.iter().enumerate() {
            let outpoint = input.previous_output;
            let coin = match self.created.get(&outpoint) {
                Some(coin) => coin.clone(),
                None if !self.spent.contains(&outpoint) => match self.chain.utxo(&outpoint) {
                    Some(coin) => coin.clone(),
                    None => {
                        return Err(TxRejected::new(
                            txid,
                            TxRejectReason::InputsMissingOrSpent,
                            format!(
                                "input {index} spends {outpoint}, {}",
                                self.chain.missing_input_detail(&outpoint)
                            ),
                        ))
                    }
                },
                None => {
                    return Err(TxRejected::new(
                        txid,
                        TxRejectReason::InputsMissingOrSpent,
                        format!(
                            "input {index} spends {outpoint}, already spent earlier in this block"
                        ),
                    ))
                }
            };
            spent.push(coin);
        }
        let fee = consensus::check_amounts(tx, &spent, &self.ctx)?;
        consensus::check_sequence_locks(tx, &spent, &self.ctx, |height| {
            self.chain.median_time_at(height)
        })?;
        if !scripts_verified {
            consensus::verify_scripts(secp, tx, &spent)?;
        }
        let weight = tx.weight();
        if self.weight + weight > consensus::MAX_BLOCK_WEIGHT - Weight::from_wu(8_000) {
            return Err(TxRejected::new(
                txid,
                TxRejectReason::Malformed,
                "the block would exceed the maximum block weight",
            ));
        }

        let mut tx_undo = Vec::with_capacity(tx.input.len());
        for (input, coin) in tx.input.iter().zip(spent) {
            let outpoint = input.previous_output;
            if self.created.remove(&outpoint).is_none() {
                self.spent.insert(outpoint);
            }
            tx_undo.push((outpoint, coin));
        }
        for (vout, output) in tx.output.iter().enumerate() {
            if is_unspendable(&output.script_pubkey) {
                continue;
            }
            self.created.insert(
                OutPoint::new(txid, vout as u32),
                Coin {
                    txout: output.clone(),
                    height: self.ctx.height,
                    is_coinbase: false,
                },
            );
        }
        self.undo.push(tx_undo);
        self.txs.push(tx.clone());
        self.fees += fee;
        self.weight += weight;
        Ok(fee)
    }

    /// The accepted transactions, their undo data and their total fee.
    pub fn finish(self) -> (Vec<Transaction>, Vec<TxUndo>, Amount) {
        (self.txs, self.undo, self.fees)
    }
}

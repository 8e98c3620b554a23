//! The regtest node's state machine: chain plus mempool, mining, transaction acceptance,
//! invalidation, and the faucet. It is synchronous; the P2P server and the public handle wrap it
//! in a mutex and learn about changes through [`Notice`]s.

use std::collections::HashSet;

use bitcoin::{Amount, Block, BlockHash, FeeRate, OutPoint, Script, Transaction, Txid, Wtxid};
use log::{debug, info};
use tokio::sync::broadcast;

use super::chain::Chain;
use super::consensus::{self, no_txid, Coin};
use super::error::{TxRejectReason, TxRejected};
use super::faucet::Faucet;
use super::mempool::{Mempool, MempoolEntry};
use super::miner::{self, Template};

/// How many transactions with unknown parents, received from peers, are kept for a retry.
const MAX_ORPHANS: usize = 100;
/// Most weight of all kept orphans together (ten of the largest standard transactions).
const MAX_ORPHAN_WEIGHT: u64 = 10 * consensus::MAX_STANDARD_TX_WEIGHT.to_wu();
/// Most transactions one replacement may evict (Core's limit).
const MAX_REPLACEMENT_EVICTIONS: usize = 100;

/// A change the P2P sessions may need to tell their peers about.
#[derive(Debug, Clone)]
pub enum Notice {
    /// The active tip moved forward (blocks were mined).
    TipChanged,
    /// A transaction entered the mempool.
    NewTx {
        /// Its txid.
        txid: Txid,
        /// Its wtxid.
        wtxid: Wtxid,
        /// Its fee rate in sat per 1000 vbytes (compared with peers' feefilter).
        fee_rate_sat_per_kvb: u64,
        /// The session it came from, which is not told about it again.
        origin: Option<u64>,
    },
    /// The mempool's minimum fee rate changed: sessions announce it with `feefilter`.
    MinFeeRateChanged,
}

/// Which fee a transaction must pay to enter the mempool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum FeePolicy {
    /// None: it returns from a disconnected block, or is a parent paid for by its child.
    Bypass,
    /// The mempool's minimum, or this rate (sat per 1000 vB) if higher.
    AtLeast(u64),
}

/// Chain, mempool and faucet.
#[derive(Debug)]
pub struct Node {
    chain: Chain,
    mempool: Mempool,
    scripts_verified: HashSet<Wtxid>,
    orphans: Vec<(Transaction, u64)>,
    faucet: Faucet,
    extra_nonce: u64,
    notices: broadcast::Sender<Notice>,
    /// Transactions paying less (sat per 1000 vB) are refused and not relayed.
    min_fee_rate_sat_per_kvb: u64,
}

impl Node {
    /// A node at the regtest genesis block.
    pub fn new(notices: broadcast::Sender<Notice>) -> Node {
        let faucet = Faucet::new();
        Node {
            chain: Chain::new(faucet.script().clone()),
            mempool: Mempool::default(),
            scripts_verified: HashSet::new(),
            orphans: Vec::new(),
            faucet,
            extra_nonce: 0,
            notices,
            min_fee_rate_sat_per_kvb: consensus::MIN_RELAY_FEE_SAT_PER_KVB,
        }
    }

    /// The lowest fee rate (sat per 1000 vB) the mempool accepts, announced in `feefilter`.
    pub fn min_fee_rate_sat_per_kvb(&self) -> u64 {
        self.min_fee_rate_sat_per_kvb
    }

    /// Sets the lowest fee rate the mempool accepts (never below the 1 sat/vB relay minimum)
    /// and has sessions announce it. Transactions already in the mempool stay.
    pub fn set_min_fee_rate_sat_per_kvb(&mut self, rate: u64) {
        self.min_fee_rate_sat_per_kvb = rate.max(consensus::MIN_RELAY_FEE_SAT_PER_KVB);
        info!(
            "mempool minimum fee rate set to {} sat/kvB",
            self.min_fee_rate_sat_per_kvb
        );
        self.notify(Notice::MinFeeRateChanged);
    }

    /// The lowest fee accepted for `vsize` vbytes.
    fn min_fee(&self, vsize: u64) -> Amount {
        Amount::from_sat(vsize.saturating_mul(self.min_fee_rate_sat_per_kvb) / 1000)
    }

    /// The chain.
    pub fn chain(&self) -> &Chain {
        &self.chain
    }

    /// The mempool.
    pub fn mempool(&self) -> &Mempool {
        &self.mempool
    }

    /// The faucet.
    pub fn faucet(&self) -> &Faucet {
        &self.faucet
    }

    fn notify(&self, notice: Notice) {
        // No receiver simply means no peer is connected.
        let _ = self.notices.send(notice);
    }

    /// Mines `n` blocks paying `to`, each filled with the mempool transactions valid in it.
    pub fn mine(&mut self, n: u32, to: &Script) -> Vec<BlockHash> {
        let mut hashes = Vec::with_capacity(n as usize);
        for index in 0..n {
            let mut builder = self.chain.block_builder();
            for entry in self.mempool.iter() {
                let verified = self.scripts_verified.contains(&entry.wtxid);
                if let Err(rejection) = builder.try_add(self.faucet.secp(), &entry.tx, verified) {
                    debug!("mempool transaction left out of the block: {rejection}");
                }
            }
            let (txs, undo, fees) = builder.finish();
            hashes.push(self.connect_new_block(txs, undo, fees, to, n - index - 1));
        }
        if n > 0 {
            let (height, hash) = self.chain.tip();
            info!("mined {n} block(s); tip {hash} at height {height}");
            self.notify(Notice::TipChanged);
        }
        hashes
    }

    /// Mines one block holding exactly `txs` after the coinbase, or nothing if one is invalid.
    pub fn mine_with(
        &mut self,
        txs: Vec<Transaction>,
        to: &Script,
    ) -> Result<BlockHash, TxRejected> {
        let mut builder = self.chain.block_builder();
        for tx in &txs {
            let verified = self.scripts_verified.contains(&tx.compute_wtxid());
            builder.try_add(self.faucet.secp(), tx, verified)?;
        }
        let (txs, undo, fees) = builder.finish();
        let hash = self.connect_new_block(txs, undo, fees, to, 0);
        info!("mined block {hash} at height {}", self.chain.height());
        self.notify(Notice::TipChanged);
        Ok(hash)
    }

    fn connect_new_block(
        &mut self,
        txs: Vec<Transaction>,
        undo: Vec<super::chain::TxUndo>,
        fees: Amount,
        to: &Script,
        remaining_in_batch: u32,
    ) -> BlockHash {
        let (tip_height, tip_hash) = self.chain.tip();
        let height = tip_height + 1;
        self.extra_nonce += 1;
        let template = Template {
            prev_blockhash: tip_hash,
            height,
            time: miner::block_time(self.chain.median_time_at(tip_height), remaining_in_batch),
            extra_nonce: self.extra_nonce,
            payout: to,
            reward: consensus::block_subsidy(height) + fees,
        };
        let block = miner::assemble(&template, txs);
        let confirmed: Vec<Transaction> = block.txdata.iter().skip(1).cloned().collect();
        let hash = self.chain.connect(block, undo);
        self.remove_confirmed(&confirmed);
        hash
    }

    /// Drops confirmed transactions from the mempool, and whatever conflicts with them.
    fn remove_confirmed(&mut self, confirmed: &[Transaction]) {
        for tx in confirmed {
            let txid = tx.compute_txid();
            if let Some(entry) = self.mempool.remove(&txid) {
                self.scripts_verified.remove(&entry.wtxid);
            }
            for input in &tx.input {
                if let Some(conflict) = self.mempool.spender(&input.previous_output) {
                    for evicted in self.mempool.remove_with_descendants([conflict]) {
                        self.scripts_verified.remove(&evicted.wtxid);
                        info!(
                            "evicted {} from the mempool: it conflicts with {txid}, now confirmed",
                            evicted.txid
                        );
                    }
                }
            }
        }
    }

    /// Accepts a transaction into the mempool. Transactions from peers (`origin` set) whose
    /// parents are unknown are kept aside as orphans and retried when a parent arrives; a parent
    /// paying too little is accepted when an orphan child pays for both (Core's one-parent-
    /// one-child package relay).
    pub fn submit(&mut self, tx: Transaction, origin: Option<u64>) -> Result<Txid, TxRejected> {
        self.submit_paying_at_least(tx, origin, 0)
    }

    /// [`Node::submit`] for a transaction that must also pay `sat_per_kvb` (an endpoint's own
    /// relay minimum, as announced in its `feefilter`), whatever the mempool's minimum is.
    pub fn submit_paying_at_least(
        &mut self,
        tx: Transaction,
        origin: Option<u64>,
        sat_per_kvb: u64,
    ) -> Result<Txid, TxRejected> {
        match self.accept(&tx, origin, FeePolicy::AtLeast(sat_per_kvb)) {
            Ok(txid) => {
                self.retry_orphans();
                Ok(txid)
            }
            Err(rejection) if rejection.reason == TxRejectReason::FeeTooLow && origin.is_some() => {
                let Some(index) = self.fee_paying_orphan_child(&tx) else {
                    return Err(rejection);
                };
                let txid = self.accept(&tx, origin, FeePolicy::Bypass)?;
                let (child, session) = self.orphans.remove(index);
                if let Err(child_rejection) = self.accept(&child, Some(session), FeePolicy::Bypass)
                {
                    info!("dropped orphan transaction: {child_rejection}");
                }
                self.retry_orphans();
                Ok(txid)
            }
            Err(rejection) => {
                if let Some(session) = origin {
                    if rejection.reason == TxRejectReason::InputsMissingOrSpent
                        && self.has_unknown_parent(&tx)
                        && self.has_room_for_orphan(&tx)
                        && !self.orphans.iter().any(|(orphan, _)| *orphan == tx)
                    {
                        debug!("keeping {} until its parent arrives", rejection.txid);
                        self.orphans.push((tx, session));
                    }
                }
                Err(rejection)
            }
        }
    }

    /// Whether `tx` may be kept as an orphan: it is not larger than a standard transaction and
    /// the orphans stay within their count and weight limits.
    fn has_room_for_orphan(&self, tx: &Transaction) -> bool {
        let weight = tx.weight();
        let kept: u64 = self.orphans.iter().map(|(o, _)| o.weight().to_wu()).sum();
        weight <= consensus::MAX_STANDARD_TX_WEIGHT
            && self.orphans.len() < MAX_ORPHANS
            && kept + weight.to_wu() <= MAX_ORPHAN_WEIGHT
    }

    /// Drops the orphans received from `session` (whose connection ended), as Core does.
    pub fn forget_orphans_from(&mut self, session: u64) {
        self.orphans.retain(|(_, from)| *from != session);
    }

    /// How many orphans are kept and their total weight.
    pub fn orphan_usage(&self) -> (usize, u64) {
        let weight = self.orphans.iter().map(|(o, _)| o.weight().to_wu()).sum();
        (self.orphans.len(), weight)
    }

    /// The parents of a kept orphan that are neither in the mempool nor confirmed (to request
    /// them from the peer that sent it, as Core does).
    pub fn missing_parents(&self, tx: &Transaction) -> Vec<Txid> {
        if !self.orphans.iter().any(|(orphan, _)| orphan == tx) {
            return Vec::new();
        }
        let mut parents: Vec<Txid> = tx
            .input
            .iter()
            .map(|input| input.previous_output.txid)
            .filter(|parent| {
                !self.mempool.contains(parent) && self.chain.tx_height(parent).is_none()
            })
            .collect();
        parents.sort();
        parents.dedup();
        parents
    }

    /// The value of an output available to the mempool (confirmed or unconfirmed).
    fn available_value(&self, outpoint: &OutPoint) -> Option<Amount> {
        self.mempool
            .output(outpoint)
            .map(|output| output.value)
            .or_else(|| self.chain.utxo(outpoint).map(|coin| coin.txout.value))
    }

    /// An orphan spending `parent` whose fee lifts the pair to the minimum relay fee rate.
    fn fee_paying_orphan_child(&self, parent: &Transaction) -> Option<usize> {
        let parent_txid = parent.compute_txid();
        let outputs = |tx: &Transaction| tx.output.iter().map(|o| o.value).sum::<Amount>();
        let parent_in = parent
            .input
            .iter()
            .map(|input| self.available_value(&input.previous_output))
            .sum::<Option<Amount>>()?;
        let parent_fee = parent_in.checked_sub(outputs(parent))?;
        self.orphans.iter().position(|(child, _)| {
            let child_in = child
                .input
                .iter()
                .map(|input| {
                    let outpoint = input.previous_output;
                    if outpoint.txid == parent_txid {
                        parent.output.get(outpoint.vout as usize).map(|o| o.value)
                    } else {
                        self.available_value(&outpoint)
                    }
                })
                .sum::<Option<Amount>>();
            let spends_parent = child
                .input
                .iter()
                .any(|input| input.previous_output.txid == parent_txid);
            match child_in.and_then(|value| value.checked_sub(outputs(child))) {
                Some(child_fee) if spends_parent => {
                    let vsize = consensus::vsize(parent) + consensus::vsize(child);
                    parent_fee + child_fee >= self.min_fee(vsize)
                }
                _ => false,
            }
        })
    }

    fn has_unknown_parent(&self, tx: &Transaction) -> bool {
        tx.input.iter().any(|input| {
            let parent = input.previous_output.txid;
            !self.mempool.contains(&parent) && self.chain.tx_height(&parent).is_none()
        })
    }

    fn retry_orphans(&mut self) {
        loop {
            let orphans = std::mem::take(&mut self.orphans);
            let before = orphans.len();
            for (tx, session) in orphans {
                match self.accept(&tx, Some(session), FeePolicy::AtLeast(0)) {
                    Ok(_) => {}
                    Err(rejection)
                        if rejection.reason == TxRejectReason::InputsMissingOrSpent
                            && self.has_unknown_parent(&tx) =>
                    {
                        self.orphans.push((tx, session))
                    }
                    Err(rejection) => info!("dropped orphan transaction: {rejection}"),
                }
            }
            if self.orphans.len() == before || self.orphans.is_empty() {
                break;
            }
        }
    }

    /// Mempool acceptance: consensus rules for the next block, relay policy, replacement rules.
    fn accept(
        &mut self,
        tx: &Transaction,
        origin: Option<u64>,
        fee_policy: FeePolicy,
    ) -> Result<Txid, TxRejected> {
        let txid = tx.compute_txid();
        let wtxid = tx.compute_wtxid();
        let fail = |reason, message: String| Err(TxRejected::new(txid, reason, message));
        if self.mempool.contains(&txid) {
            return fail(
                TxRejectReason::AlreadyInMempool,
                "it is already in the mempool".into(),
            );
        }
        if let Some(height) = self.chain.tx_height(&txid) {
            return fail(
                TxRejectReason::AlreadyConfirmed,
                format!("it is already confirmed at height {height}"),
            );
        }
        if tx.is_coinbase() {
            return fail(
                TxRejectReason::Malformed,
                "a coinbase transaction cannot enter the mempool".into(),
            );
        }
        consensus::check_transaction(tx)?;
        let ctx = self.chain.next_block_context();
        consensus::check_final(tx, &ctx)?;

        let conflicts: Vec<Txid> = tx
            .input
            .iter()
            .filter_map(|input| self.mempool.spender(&input.previous_output))
            .collect::<std::collections::BTreeSet<_>>()
            .into_iter()
            .collect();
        let evicted = self.mempool.with_descendants(conflicts.iter().copied());

        let mut spent = Vec::with_capacity(tx.input.len());
        for (index, input) in tx.input.iter().enumerate() {
            let outpoint = input.previous_output;
            let coin = if let Some(output) = self.mempool.output(&outpoint) {
                if evicted.contains(&outpoint.txid) {
                    return fail(
                        TxRejectReason::ReplacementRejected,
                        format!(
                            "input {index} spends an output of {}, which this transaction would \
                             replace",
                            outpoint.txid
                        ),
                    );
                }
                Coin {
                    txout: output.clone(),
                    height: ctx.height,
                    is_coinbase: false,
                }
            } else if let Some(coin) = self.chain.utxo(&outpoint) {
                coin.clone()
            } else if self.mempool.contains(&outpoint.txid) {
                return fail(
                    TxRejectReason::InputsMissingOrSpent,
                    format!("input {index} spends {outpoint}, but that mempool transaction has no such output"),
                );
            } else {
                return fail(
                    TxRejectReason::InputsMissingOrSpent,
                    format!(
                        "input {index} spends {outpoint}, {}",
                        self.chain.missing_input_detail(&outpoint)
                    ),
                );
            };
            spent.push(coin);
        }
        let fee = consensus::check_amounts(tx, &spent, &ctx)?;
        consensus::check_sequence_locks(tx, &spent, &ctx, |height| {
            self.chain.median_time_at(height)
        })?;
        consensus::check_standard(tx, &spent)?;
        let vsize = consensus::vsize(tx);
        if let FeePolicy::AtLeast(own) = fee_policy {
            let rate = self.min_fee_rate_sat_per_kvb.max(own);
            let minimum = Amount::from_sat(vsize.saturating_mul(rate) / 1000);
            if fee < minimum {
                return fail(
                    TxRejectReason::FeeTooLow,
                    format!(
                        "fee {} sat for {vsize} vB is below the minimum relay fee of {} sat \
                         ({rate} sat/kvB)",
                        fee.to_sat(),
                        minimum.to_sat(),
                    ),
                );
            }
        }
        if !conflicts.is_empty() {
            self.check_replacement(tx, fee, vsize, &conflicts, &evicted)?;
        }
        if !self.scripts_verified.contains(&wtxid) {
            consensus::verify_scripts(self.faucet.secp(), tx, &spent)?;
        }

        for replaced in self.mempool.remove_with_descendants(evicted) {
            self.scripts_verified.remove(&replaced.wtxid);
            info!("{} replaced {} in the mempool", txid, replaced.txid);
        }
        let entry = MempoolEntry {
            tx: tx.clone(),
            txid,
            wtxid,
            fee,
            vsize,
        };
        let fee_rate_sat_per_kvb = entry.fee_rate_sat_per_kvb();
        self.mempool.insert(entry);
        self.scripts_verified.insert(wtxid);
        debug!(
            "accepted {txid} into the mempool (fee {} sat, {vsize} vB)",
            fee.to_sat()
        );
        self.notify(Notice::NewTx {
            txid,
            wtxid,
            fee_rate_sat_per_kvb,
            origin,
        });
        Ok(txid)
    }

    /// BIP 125-style replacement rules as Core applies them with full RBF.
    fn check_replacement(
        &self,
        tx: &Transaction,
        fee: Amount,
        vsize: u64,
        conflicts: &[Txid],
        evicted: &std::collections::BTreeSet<Txid>,
    ) -> Result<(), TxRejected> {
        let txid = tx.compute_txid();
        if evicted.len() > MAX_REPLACEMENT_EVICTIONS {
            return Err(TxRejected::new(
                txid,
                TxRejectReason::ReplacementRejected,
                format!(
                    "it would evict {} transactions (at most {MAX_REPLACEMENT_EVICTIONS})",
                    evicted.len()
                ),
            ));
        }
        for conflict in conflicts {
            let Some(entry) = self.mempool.get(conflict) else {
                continue;
            };
            // fee / vsize > entry.fee / entry.vsize, in integers.
            if fee.to_sat() as u128 * entry.vsize as u128
                <= entry.fee.to_sat() as u128 * vsize as u128
            {
                return Err(TxRejected::new(
                    txid,
                    TxRejectReason::ReplacementRejected,
                    format!(
                        "it double-spends {conflict} without a higher fee rate ({} sat/kvB, \
                         the mempool transaction pays {} sat/kvB)",
                        fee.to_sat() * 1000 / vsize.max(1),
                        entry.fee_rate_sat_per_kvb()
                    ),
                ));
            }
        }
        let evicted_fees: Amount = evicted
            .iter()
            .filter_map(|txid| self.mempool.get(txid))
            .map(|entry| entry.fee)
            .sum();
        let required = evicted_fees
            + Amount::from_sat(vsize * consensus::INCREMENTAL_RELAY_FEE_SAT_PER_KVB / 1000);
        if fee < required {
            return Err(TxRejected::new(
                txid,
                TxRejectReason::ReplacementRejected,
                format!(
                    "it double-spends {} with a fee of {} sat; replacing needs at least {} sat",
                    conflicts
                        .iter()
                        .map(|txid| txid.to_string())
                        .collect::<Vec<_>>()
                        .join(", "),
                    fee.to_sat(),
                    required.to_sat()
                ),
            ));
        }
        Ok(())
    }

    /// Disconnects the top `depth` blocks; their transactions go back to the mempool when still
    /// valid, and mempool transactions that no longer are get evicted. Returns the disconnected
    /// hashes, old tip first.
    pub fn invalidate(&mut self, depth: u32) -> Vec<BlockHash> {
        let mut disconnected_blocks = Vec::new();
        for _ in 0..depth {
            match self.chain.disconnect_tip() {
                Some(block) => disconnected_blocks.push(block),
                None => break,
            }
        }
        if disconnected_blocks.is_empty() {
            return Vec::new();
        }
        let hashes: Vec<BlockHash> = disconnected_blocks
            .iter()
            .map(|block| block.block_hash())
            .collect();
        let previous_mempool = self.mempool.take_all();
        let returning = disconnected_blocks
            .iter()
            .rev()
            .flat_map(|block| block.txdata.iter().skip(1).cloned())
            .chain(previous_mempool.into_iter().map(|entry| entry.tx));
        let returning: Vec<Transaction> = returning.collect();
        for tx in returning {
            if let Err(rejection) = self.accept(&tx, None, FeePolicy::Bypass) {
                info!("after invalidation, dropped from the mempool: {rejection}");
            }
        }
        let (height, hash) = self.chain.tip();
        info!(
            "invalidated {} block(s); tip {hash} at height {height}; {} transaction(s) in the mempool",
            hashes.len(),
            self.mempool.len()
        );
        hashes
    }

    /// Connects `block`, one mined earlier and since disconnected by [`Node::invalidate`],
    /// again on top of the tip, as Core's `reconsiderblock` does once the branch that replaced
    /// it is invalidated. Refused when it does not extend the tip or one of its transactions
    /// is no longer valid there.
    pub fn reconnect(&mut self, block: Block) -> Result<BlockHash, TxRejected> {
        let (_, tip) = self.chain.tip();
        if block.header.prev_blockhash != tip {
            return Err(TxRejected::new(
                no_txid(),
                TxRejectReason::Malformed,
                format!(
                    "block {} builds on {}, not on the tip {tip}",
                    block.block_hash(),
                    block.header.prev_blockhash
                ),
            ));
        }
        let mut builder = self.chain.block_builder();
        for tx in block.txdata.iter().skip(1) {
            let verified = self.scripts_verified.contains(&tx.compute_wtxid());
            builder.try_add(self.faucet.secp(), tx, verified)?;
        }
        let (_, undo, _) = builder.finish();
        let confirmed: Vec<Transaction> = block.txdata.iter().skip(1).cloned().collect();
        let hash = self.chain.connect(block, undo);
        self.remove_confirmed(&confirmed);
        info!("reconnected block {hash} at height {}", self.chain.height());
        self.notify(Notice::TipChanged);
        Ok(hash)
    }

    /// Empties the mempool (and the orphan buffer).
    pub fn clear_mempool(&mut self) {
        for entry in self.mempool.take_all() {
            self.scripts_verified.remove(&entry.wtxid);
        }
        self.orphans.clear();
    }

    /// Pays `amount` to `to` from the faucet's coins: mature confirmed ones first, then its
    /// unconfirmed change. Mines 101 blocks to the faucet first when it has nothing spendable.
    pub fn fund(
        &mut self,
        to: &Script,
        amount: Amount,
        fee_rate: FeeRate,
    ) -> Result<Transaction, TxRejected> {
        let dust = to.minimal_non_dust();
        if amount < dust {
            return Err(TxRejected::new(
                no_txid(),
                TxRejectReason::Dust,
                format!(
                    "cannot pay {} sat: the dust threshold for that script is {} sat",
                    amount.to_sat(),
                    dust.to_sat()
                ),
            ));
        }
        if fee_rate < FeeRate::BROADCAST_MIN {
            return Err(TxRejected::new(
                no_txid(),
                TxRejectReason::FeeTooLow,
                format!(
                    "fee rate {} sat/kwu is below the minimum relay fee rate of 1 sat/vB",
                    fee_rate.to_sat_per_kwu()
                ),
            ));
        }
        if self.faucet_candidates().next().is_none() {
            let script = self.faucet.script().clone();
            self.mine(consensus::COINBASE_MATURITY + 1, &script);
        }
        let tx = self
            .faucet
            .pay(self.faucet_candidates(), to, amount, fee_rate)?;
        self.submit(tx.clone(), None)?;
        Ok(tx)
    }

    fn faucet_candidates(&self) -> impl Iterator<Item = (OutPoint, Amount)> + '_ {
        let next_height = self.chain.height() + 1;
        let confirmed = self
            .chain
            .tracked_coins()
            .filter(move |(_, coin)| {
                !coin.is_coinbase || next_height - coin.height >= consensus::COINBASE_MATURITY
            })
            .filter(|(outpoint, coin)| {
                coin.txout.value > Amount::ZERO && self.mempool.spender(outpoint).is_none()
            })
            .map(|(outpoint, coin)| (*outpoint, coin.txout.value));
        let script = self.faucet.script();
        let unconfirmed = self.mempool.iter().flat_map(move |entry| {
            entry
                .tx
                .output
                .iter()
                .enumerate()
                .filter(move |(_, output)| output.script_pubkey == *script)
                .map(move |(vout, output)| (OutPoint::new(entry.txid, vout as u32), output.value))
        });
        confirmed
            .chain(unconfirmed.filter(|(outpoint, _)| self.mempool.spender(outpoint).is_none()))
    }
}

//! Broadcaster: LDK's [`BroadcasterInterface`] over the compact-filter engine.
//!
//! A multi-transaction call is a package: it is ordered parent-first before it goes out, so a
//! child never reaches a peer before the transaction it spends. Every broadcast transaction is
//! kept (persisted in the chain database) and handed to peers again on each new block and each
//! new peer connection until a downloaded block confirms it or spends one of its inputs
//! elsewhere. Peers are never trusted to have kept it: a restarted peer forgets its mempool.
//!
//! A transaction seen in a block is not forgotten at once: it is kept, with that block, until
//! the block is [`BURIAL_DEPTH`] deep on the active chain. If a reorg takes the block off the
//! active chain first, the transaction is broadcast again: a funding transaction or a wallet
//! send dropped by a reorg must not wait forever in no mempool.
//!
//! **Whether a peer took it.** Each transaction kept has a [`BroadcastStatus`]: waiting for a
//! peer (with the reason when known), taken by a peer (how many hand-overs), or confirmed. A
//! peer asks for any transaction announced to it and then drops one paying less than its
//! minimum (BIP 133 `feefilter`) without a word, so a transaction is offered over the node's
//! own peer links ([`PeerLinks::submit`]) only to the peers whose announced minimum its fee
//! meets (counted as Bitcoin Core does), and it counts as taken when one of them asked for it.
//! A peer that had it already (from whoever else broadcast it: a channel's counterparty hands
//! a cooperative close to its own Bitcoin node) never asks; it counts as announced once a
//! linked peer announces it back (`inv`), and as confirmed once a block confirms it.
//! The fee is known when the outputs a transaction spends are (other kept transactions, and
//! what [`PrevoutValues`] knows: the wallet's coins); a transaction with an unknown fee is
//! offered to every peer and counts as taken once one asked for it. While no link is up, the
//! engine hands transactions to a peer of its choice. A transaction no peer has taken for
//! [`NOT_TAKEN_WARNING_AFTER`] is logged at warn level with the reason.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, FeeRate, OutPoint, Transaction, Txid, Weight, Wtxid};
use lightning::chain::chaininterface::BroadcasterInterface;
use log::{debug, info, warn};
use rusqlite::params;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use super::db::ChainDb;
use super::engine::Engine;
use super::error::StoreError;
use super::header_store::HeaderStore;
use super::links::{PeerLinks, Submitted};
use super::notifications::{ChainNotification, Shutdown};
use super::peer_address::PeerAddress;
use super::refused_spends::RefusedSpends;

/// How long a peer has to ask for an announced transaction before the next one goes out, when
/// it is offered again.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a peer has to ask for a transaction offered for the first time. Bitcoin Core asks
/// an inbound peer (which the node is to it) for an announced transaction only after 2 s.
pub const FIRST_SUBMIT_TIMEOUT: Duration = Duration::from_secs(6);
/// A transaction no peer has taken for this long is logged at warn level, with the reason.
pub const NOT_TAKEN_WARNING_AFTER: Duration = Duration::from_secs(600);
/// How often the broadcaster looks for transactions no peer has taken.
const NOT_TAKEN_CHECK_INTERVAL: Duration = Duration::from_secs(30);

/// The values of outputs that broadcast transactions spend, from outside the broadcaster (the
/// wallet's coins): they give a transaction's fee, to compare with what peers accept.
pub trait PrevoutValues: Send + Sync {
    /// The value of the output at `outpoint`, if known.
    fn value(&self, outpoint: &OutPoint) -> Option<Amount>;
}

/// Why no peer has taken a transaction (yet).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NotTaken {
    /// No Bitcoin peer is connected.
    NoPeers,
    /// It pays less than the peers' minimum: a peer that asked for it dropped it.
    BelowPeerMinimum {
        /// What it pays (with a child paying for it, the pair's rate).
        fee_rate: FeeRate,
        /// The highest minimum the peers announce.
        peer_minimum: FeeRate,
    },
    /// It was offered, but no peer asked for it in time.
    NotAsked,
}

impl fmt::Display for NotTaken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            NotTaken::NoPeers => write!(f, "no Bitcoin peer is connected"),
            NotTaken::BelowPeerMinimum {
                fee_rate,
                peer_minimum,
            } => write!(
                f,
                "it pays {} sat/kwu, below the {} sat/kwu the Bitcoin peers accept (their \
                 feefilter)",
                fee_rate.to_sat_per_kwu(),
                peer_minimum.to_sat_per_kwu()
            ),
            NotTaken::NotAsked => write!(
                f,
                "it was offered but no Bitcoin peer asked for it, nor announced it (a peer that \
                 has it already does not ask)"
            ),
        }
    }
}

/// Where a broadcast transaction stands with the Bitcoin peers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerState {
    /// No peer has taken it; `reason` is set once it was offered.
    Waiting {
        /// Why the last offer was not taken.
        reason: Option<NotTaken>,
    },
    /// Peers took it this many times (a hand-over each; one peer may count more than once).
    Taken {
        /// Hand-overs to peers.
        times: u32,
    },
    /// A peer announced it to the node (`inv`): it is in that peer's mempool, whether or not
    /// the peer ever asked the node for it (one that had it first, from whoever broadcast it
    /// too, never does).
    Announced {
        /// The peer that announced it.
        by: PeerAddress,
    },
    /// A block of the active chain confirms it (or spends one of its inputs elsewhere); it is
    /// kept until that block is [`BURIAL_DEPTH`] deep.
    Confirmed {
        /// The height of that block.
        height: u32,
    },
}

/// A kept transaction's state, for the operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BroadcastStatus {
    /// The transaction.
    pub txid: Txid,
    /// Where it stands.
    pub state: PeerState,
    /// Its fee, when the outputs it spends are known.
    pub fee: Option<Amount>,
    /// How many times it was offered to peers since it was (last) queued.
    pub offers: u32,
    /// How long ago it was (last) queued.
    pub queued_for: Duration,
}

/// A transaction is forgotten once the block that confirmed it (or spent one of its inputs) is
/// this many blocks deep on the active chain, counting the block itself; until then a reorg
/// that takes the block away puts it back in the queue.
pub const BURIAL_DEPTH: u32 = 6;

/// Orders `txs` so that every transaction comes after the transactions it spends (among
/// `txs`); the relative order of independent transactions is kept.
pub fn parents_first(txs: &[Transaction]) -> Vec<Transaction> {
    let ids: Vec<Txid> = txs.iter().map(Transaction::compute_txid).collect();
    let index: HashMap<Txid, usize> = ids.iter().enumerate().map(|(i, id)| (*id, i)).collect();
    let mut placed = vec![false; txs.len()];
    let mut ordered = Vec::with_capacity(txs.len());
    fn place(
        i: usize,
        txs: &[Transaction],
        index: &HashMap<Txid, usize>,
        placed: &mut [bool],
        visiting: &mut HashSet<usize>,
        ordered: &mut Vec<Transaction>,
    ) {
        if placed[i] || !visiting.insert(i) {
            return;
        }
        for input in &txs[i].input {
            if let Some(&parent) = index.get(&input.previous_output.txid) {
                place(parent, txs, index, placed, visiting, ordered);
            }
        }
        placed[i] = true;
        ordered.push(txs[i].clone());
    }
    let mut visiting = HashSet::new();
    for i in 0..txs.len() {
        place(i, txs, &index, &mut placed, &mut visiting, &mut ordered);
    }
    ordered
}

/// A block that confirmed a transaction, or spent one of its inputs in another transaction.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
struct Settlement {
    block: BlockHash,
    height: u32,
}

/// A broadcast transaction and what became of it.
#[derive(Debug)]
struct Entry {
    /// The order it was first broadcast in.
    seq: u64,
    tx: Transaction,
    /// Blocks seen settling it, on any branch.
    settlements: Vec<Settlement>,
    /// Whether one of `settlements` was on the active chain when last looked at: it is then
    /// not handed to peers.
    settled: bool,
    /// When it was queued (again, after a reorg).
    queued_at: Instant,
    /// Times a peer took it since then.
    taken: u32,
    /// Times it was offered since then.
    offers: u32,
    /// Why the last offer was not taken.
    not_taken: Option<NotTaken>,
    /// Its fee, once looked up (`Some(None)`: not known).
    fee: Option<Option<Amount>>,
    /// Whether the not-taken warning was logged since it was queued.
    warned: bool,
}

impl Entry {
    fn requeue(&mut self, now: Instant) {
        self.queued_at = now;
        self.taken = 0;
        self.offers = 0;
        self.not_taken = None;
        self.warned = false;
    }

    fn status(&self, txid: Txid, now: Instant) -> BroadcastStatus {
        let state = if self.settled {
            PeerState::Confirmed {
                height: self
                    .settlements
                    .iter()
                    .map(|s| s.height)
                    .min()
                    .unwrap_or_default(),
            }
        } else if self.taken > 0 {
            PeerState::Taken { times: self.taken }
        } else {
            PeerState::Waiting {
                reason: self.not_taken,
            }
        };
        BroadcastStatus {
            txid,
            state,
            fee: self.fee.flatten(),
            offers: self.offers,
            queued_for: now.saturating_duration_since(self.queued_at),
        }
    }
}

/// What [`Pending::review`] decided for the settled transactions.
#[derive(Debug, Default, PartialEq, Eq)]
struct Review {
    /// Transactions whose settling blocks all left the active chain, with one of them.
    unsettled: Vec<(Txid, BlockHash)>,
    /// Transactions settled by a block [`BURIAL_DEPTH`] deep.
    buried: Vec<Txid>,
}

#[derive(Debug, Default)]
struct Pending {
    /// Transactions broadcast and not yet buried.
    txs: HashMap<Txid, Entry>,
    next_seq: u64,
    /// Transactions not yet queued for a peer.
    unsent: HashSet<Txid>,
}

impl Pending {
    fn insert(&mut self, tx: Transaction) -> bool {
        let txid = tx.compute_txid();
        if self.txs.contains_key(&txid) {
            return false;
        }
        self.txs.insert(
            txid,
            Entry {
                seq: self.next_seq,
                tx,
                settlements: Vec::new(),
                settled: false,
                queued_at: Instant::now(),
                taken: 0,
                offers: 0,
                not_taken: None,
                fee: None,
                warned: false,
            },
        );
        self.next_seq += 1;
        self.unsent.insert(txid);
        true
    }

    /// Records that `settlement`'s block settled `txid`; returns whether that is news.
    fn settle(&mut self, txid: Txid, settlement: Settlement) -> bool {
        let Some(entry) = self.txs.get_mut(&txid) else {
            return false;
        };
        self.unsent.remove(&txid);
        entry.settled = true;
        if entry.settlements.contains(&settlement) {
            return false;
        }
        entry.settlements.push(settlement);
        true
    }

    /// Whether `txid` is waiting to be confirmed (broadcast and not settled).
    fn is_queued(&self, txid: &Txid) -> bool {
        self.txs.get(txid).is_some_and(|entry| !entry.settled)
    }

    /// The transactions waiting to be confirmed, parent-first.
    fn queued(&self) -> Vec<Transaction> {
        let mut in_order: Vec<&Entry> = self.txs.values().filter(|e| !e.settled).collect();
        in_order.sort_by_key(|entry| entry.seq);
        let txs: Vec<Transaction> = in_order.into_iter().map(|e| e.tx.clone()).collect();
        parents_first(&txs)
    }

    /// Every block seen settling a transaction still kept.
    fn settling_blocks(&self) -> HashSet<Settlement> {
        self.txs
            .values()
            .flat_map(|entry| entry.settlements.iter().copied())
            .collect()
    }

    /// Looks again at every settled transaction given which of its settling blocks are on
    /// the active chain (`on_active_chain`; a block not in it counts as still there) and the
    /// height of that chain's tip: one with no settling block left on it goes back to the
    /// queue, one whose settling block is [`BURIAL_DEPTH`] deep is forgotten.
    fn review(&mut self, tip_height: u32, on_active_chain: &HashMap<BlockHash, bool>) -> Review {
        let mut review = Review::default();
        for (txid, entry) in &mut self.txs {
            let deepest = entry
                .settlements
                .iter()
                .filter(|s| on_active_chain.get(&s.block).copied().unwrap_or(true))
                .map(|s| s.height)
                .min();
            match deepest {
                Some(height)
                    if tip_height.saturating_add(1).saturating_sub(height) >= BURIAL_DEPTH =>
                {
                    review.buried.push(*txid);
                }
                Some(_) => {
                    entry.settled = true;
                    self.unsent.remove(txid);
                }
                None if entry.settled => {
                    entry.settled = false;
                    entry.requeue(Instant::now());
                    self.unsent.insert(*txid);
                    if let Some(last) = entry.settlements.last() {
                        review.unsettled.push((*txid, last.block));
                    }
                }
                None => {}
            }
        }
        for txid in &review.buried {
            self.txs.remove(txid);
            self.unsent.remove(txid);
        }
        review
    }

    /// The waiting transactions no peer has taken for `after` at `now` and not yet warned
    /// about, with the last reason; they count as warned about from now on.
    fn not_taken_for(&mut self, now: Instant, after: Duration) -> Vec<(Txid, Option<NotTaken>)> {
        let mut overdue = Vec::new();
        for (txid, entry) in &mut self.txs {
            if !entry.settled
                && entry.taken == 0
                && !entry.warned
                && now.saturating_duration_since(entry.queued_at) >= after
            {
                entry.warned = true;
                overdue.push((*txid, entry.not_taken));
            }
        }
        overdue
    }

    /// The fee and weight peers judge `txid` by: its own, or with a kept child whose fee is
    /// known, the pair's when that pays a higher rate (a child paying for its parent).
    fn judged_fee(&self, txid: &Txid) -> Option<(Amount, Weight)> {
        let entry = self.txs.get(txid)?;
        let own = (entry.fee.flatten()?, entry.tx.weight());
        let rate = |(fee, weight): (Amount, Weight)| fee.to_sat() as f64 / weight.to_wu() as f64;
        let best_child = self
            .txs
            .values()
            .filter(|child| {
                child
                    .tx
                    .input
                    .iter()
                    .any(|input| input.previous_output.txid == *txid)
            })
            .filter_map(|child| {
                Some((
                    own.0.checked_add(child.fee.flatten()?)?,
                    own.1 + child.tx.weight(),
                ))
            })
            .max_by(|a, b| rate(*a).total_cmp(&rate(*b)));
        match best_child {
            Some(pair) if rate(pair) > rate(own) => Some(pair),
            _ => Some(own),
        }
    }
}

/// Broadcasts transactions through the engine and keeps them until buried.
#[derive(Debug)]
pub struct Broadcaster {
    engine: Arc<Engine>,
    db: Arc<ChainDb>,
    headers: HeaderStore,
    pending: Mutex<Pending>,
    wake: Notify,
    /// Woken after each offer of a transaction to peers.
    offered: Notify,
    prevouts: OnceLock<Arc<dyn PrevoutValues>>,
    /// The node's own links to the peers, through which transactions are handed over.
    links: OnceLock<Arc<PeerLinks>>,
    /// Outputs no broadcast transaction may spend (see [`Broadcaster::refuse_spends_of`]).
    refused: Mutex<RefusedSpends>,
}

impl fmt::Debug for dyn PrevoutValues {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("PrevoutValues")
    }
}

impl Broadcaster {
    /// A broadcaster over `engine`, reloading from `db` the transactions not yet buried, with
    /// the blocks seen settling them.
    pub fn new(engine: Arc<Engine>, db: Arc<ChainDb>) -> Result<Self, StoreError> {
        let mut pending = Pending::default();
        {
            let conn = db.conn();
            let mut stmt = conn.prepare("SELECT tx FROM pending_broadcasts ORDER BY added_at")?;
            let rows = stmt.query_map([], |row| row.get::<_, Vec<u8>>(0))?;
            for row in rows {
                let bytes = row?;
                let tx: Transaction = deserialize(&bytes)
                    .map_err(|err| StoreError::Corrupt(format!("pending transaction: {err}")))?;
                pending.insert(tx);
            }
            let mut stmt = conn.prepare("SELECT txid, block, height FROM broadcast_settlements")?;
            let rows = stmt.query_map([], |row| {
                Ok((
                    row.get::<_, Vec<u8>>(0)?,
                    row.get::<_, Vec<u8>>(1)?,
                    row.get::<_, u32>(2)?,
                ))
            })?;
            for row in rows {
                let (txid, block, height) = row?;
                let corrupt = || StoreError::Corrupt("broadcast settlement".into());
                let txid = Txid::from_slice(&txid).map_err(|_| corrupt())?;
                let block = BlockHash::from_slice(&block).map_err(|_| corrupt())?;
                pending.settle(txid, Settlement { block, height });
            }
        }
        let queued = pending.queued().len();
        if queued > 0 {
            info!("{queued} unconfirmed transaction(s) will be broadcast again");
        }
        Ok(Self {
            engine,
            headers: HeaderStore::new(db.clone()),
            db,
            pending: Mutex::new(pending),
            wake: Notify::new(),
            offered: Notify::new(),
            prevouts: OnceLock::new(),
            links: OnceLock::new(),
            refused: Mutex::new(RefusedSpends::default()),
        })
    }

    /// Never broadcasts a transaction spending one of `outpoints`, nor one descending from
    /// such a transaction (see [`super::refused_spends`]). Kept unconfirmed transactions that do
    /// are dropped at once, from the database too.
    pub fn refuse_spends_of(&self, outpoints: impl IntoIterator<Item = OutPoint>) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.add(outpoints) > 0 {
            self.drop_refused(refused);
        }
    }

    /// Holds the channels funded by `fundings`: none of their commitment transactions, nor
    /// anything built on one, is broadcast until [`Broadcaster::release_commitments_of`] (see
    /// [`super::refused_spends`]). Kept unconfirmed transactions that are refused now are
    /// dropped at once, from the database too.
    pub fn hold_commitments_of(&self, fundings: impl IntoIterator<Item = OutPoint>) {
        let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
        if refused.hold(fundings) > 0 {
            self.drop_refused(refused);
        }
    }

    /// Lifts the hold of the channels funded by `fundings`.
    pub fn release_commitments_of(&self, fundings: &[OutPoint]) {
        self.refused
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .release(fundings);
    }

    /// Drops the kept unconfirmed transactions that `refused` refuses.
    fn drop_refused(&self, mut refused: std::sync::MutexGuard<'_, RefusedSpends>) {
        let mut dropped = Vec::new();
        {
            let mut pending = self.lock();
            // Confirmed ones stay: nothing is broadcast for them, and what spends them can
            // confirm.
            for tx in pending.queued() {
                if let Some(refusal) = refused.check(&tx) {
                    let txid = tx.compute_txid();
                    pending.txs.remove(&txid);
                    pending.unsent.remove(&txid);
                    dropped.push((txid, refusal));
                }
            }
        }
        drop(refused);
        for (txid, refusal) in &dropped {
            warn!("dropping kept transaction {txid}: {refusal}");
        }
        if !dropped.is_empty() {
            self.forget(dropped.iter().map(|(txid, _)| *txid));
        }
    }

    /// Where the values of outputs outside the broadcaster come from (set once, by the node,
    /// with the wallet's coins); without it only kept transactions' outputs are known.
    pub fn set_prevout_values(&self, values: Arc<dyn PrevoutValues>) {
        if self.prevouts.set(values).is_err() {
            warn!("the source of spent output values was already set");
        }
    }

    /// The links transactions are handed over through (set once, by the chain source);
    /// without them, or while none is up, the engine hands them to a peer of its choice.
    pub fn set_links(&self, links: Arc<PeerLinks>) {
        if self.links.set(links).is_err() {
            warn!("the broadcaster's peer links were already set");
        }
    }

    /// The state of `txid`, if it is kept (broadcast and not yet buried).
    pub fn status(&self, txid: &Txid) -> Option<BroadcastStatus> {
        let now = Instant::now();
        let status = self
            .lock()
            .txs
            .get(txid)
            .map(|entry| (entry.status(*txid, now), entry.tx.compute_wtxid()))?;
        Some(self.with_announcements(status))
    }

    /// `status`, as announced by a peer if one announced its transaction back and no block
    /// confirms it yet.
    fn with_announcements(&self, (mut status, wtxid): (BroadcastStatus, Wtxid)) -> BroadcastStatus {
        if matches!(status.state, PeerState::Confirmed { .. }) {
            return status;
        }
        if let Some(by) = self
            .links
            .get()
            .and_then(|links| links.announced_by(status.txid, wtxid))
        {
            status.state = PeerState::Announced { by };
        }
        status
    }

    /// The kept transaction spending `outpoint`, if any (the latest broadcast when several do).
    pub fn spender_of(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.lock()
            .txs
            .iter()
            .filter(|(_, entry)| {
                entry
                    .tx
                    .input
                    .iter()
                    .any(|input| input.previous_output == *outpoint)
            })
            .max_by_key(|(_, entry)| entry.seq)
            .map(|(txid, _)| *txid)
    }

    /// The state of every kept transaction, in the order they were first broadcast.
    pub fn statuses(&self) -> Vec<BroadcastStatus> {
        let now = Instant::now();
        let statuses: Vec<(BroadcastStatus, Wtxid)> = {
            let pending = self.lock();
            let mut entries: Vec<(&Txid, &Entry)> = pending.txs.iter().collect();
            entries.sort_by_key(|(_, entry)| entry.seq);
            entries
                .into_iter()
                .map(|(txid, entry)| (entry.status(*txid, now), entry.tx.compute_wtxid()))
                .collect()
        };
        statuses
            .into_iter()
            .map(|status| self.with_announcements(status))
            .collect()
    }

    /// Waits until `txid` was offered to peers at least once (or confirmed), at most
    /// `timeout`, and returns its state then; `None` if it is not kept.
    pub async fn wait_offered(&self, txid: &Txid, timeout: Duration) -> Option<BroadcastStatus> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let offered = self.offered.notified();
            tokio::pin!(offered);
            offered.as_mut().enable();
            let status = self.status(txid)?;
            let done = status.offers > 0
                || matches!(
                    status.state,
                    PeerState::Taken { .. }
                        | PeerState::Announced { .. }
                        | PeerState::Confirmed { .. }
                );
            if done || tokio::time::timeout_at(deadline, offered).await.is_err() {
                return self.status(txid);
            }
        }
    }

    /// Logs at warn level, once per queueing, every transaction no peer has taken for
    /// [`NOT_TAKEN_WARNING_AFTER`] (as of `now`), with the reason.
    pub fn warn_not_taken(&self, now: Instant) -> Vec<Txid> {
        self.warn_not_taken_after(now, NOT_TAKEN_WARNING_AFTER)
    }

    fn warn_not_taken_after(&self, now: Instant, after: Duration) -> Vec<Txid> {
        let overdue = self.lock().not_taken_for(now, after);
        // One a peer announced back is in that peer's mempool: not worth a warning.
        let overdue: Vec<_> = overdue
            .into_iter()
            .filter(|(txid, _)| {
                self.status(txid)
                    .is_none_or(|status| !matches!(status.state, PeerState::Announced { .. }))
            })
            .collect();
        for (txid, reason) in &overdue {
            let reason = match reason {
                Some(reason) => reason.to_string(),
                None => "it has not been offered to a peer yet".to_string(),
            };
            warn!(
                "no Bitcoin peer has taken transaction {txid} in {} minutes: {reason}; the node \
                 keeps offering it",
                after.as_secs() / 60
            );
        }
        overdue.into_iter().map(|(txid, _)| txid).collect()
    }

    /// Transactions broadcast and not seen in a block of the active chain, parent-first: the
    /// ones handed to peers again.
    pub fn unconfirmed(&self) -> Vec<Transaction> {
        self.lock().queued()
    }

    /// Transactions seen confirmed (or conflicted) in a block, kept until that block is
    /// [`BURIAL_DEPTH`] deep in case a reorg takes it away.
    pub fn awaiting_burial(&self) -> Vec<Txid> {
        self.lock()
            .txs
            .iter()
            .filter(|(_, entry)| entry.settled)
            .map(|(txid, _)| *txid)
            .collect()
    }

    /// Queues `txs` (one transaction or a package, in any order) for broadcast.
    pub fn broadcast(&self, txs: &[Transaction]) {
        let mut ordered = parents_first(txs);
        {
            let mut refused = self.refused.lock().unwrap_or_else(|p| p.into_inner());
            if !refused.is_empty() {
                ordered.retain(|tx| match refused.check(tx) {
                    Some(refusal) => {
                        log::error!(
                            "not broadcasting transaction {}: {refusal}",
                            tx.compute_txid()
                        );
                        false
                    }
                    None => true,
                });
            }
        }
        let mut added = Vec::new();
        {
            let mut pending = self.lock();
            for tx in ordered {
                if pending.insert(tx.clone()) {
                    added.push(tx);
                }
            }
        }
        if let Err(err) = self.persist(&added) {
            warn!("could not record broadcast transactions for rebroadcast: {err}");
        }
        for tx in &added {
            info!("broadcasting transaction {}", tx.compute_txid());
        }
        self.wake.notify_one();
    }

    /// Records the transactions `block` (at `height`) confirms or conflicts (an input spent by
    /// a different transaction): they are no longer handed to peers while the block stays on
    /// the active chain.
    pub fn block_seen(&self, block: &Block, height: u32) {
        let in_block: HashSet<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        let spent: HashMap<OutPoint, Txid> = block
            .txdata
            .iter()
            .flat_map(|tx| {
                let txid = tx.compute_txid();
                tx.input.iter().map(move |i| (i.previous_output, txid))
            })
            .collect();
        let settlement = Settlement {
            block: block.block_hash(),
            height,
        };
        let mut settled = Vec::new();
        {
            let mut pending = self.lock();
            let hits: Vec<(Txid, bool)> = pending
                .txs
                .iter()
                .filter_map(|(&txid, entry)| {
                    let confirmed = in_block.contains(&txid);
                    let conflicted = entry.tx.input.iter().any(|input| {
                        spent
                            .get(&input.previous_output)
                            .is_some_and(|spender| *spender != txid)
                    });
                    (confirmed || conflicted).then_some((txid, confirmed))
                })
                .collect();
            for (txid, confirmed) in hits {
                if pending.settle(txid, settlement) {
                    info!(
                        "transaction {txid} {} in block {} at {height}",
                        if confirmed {
                            "confirmed"
                        } else {
                            "was conflicted"
                        },
                        settlement.block
                    );
                    settled.push(txid);
                }
            }
        }
        if settled.is_empty() {
            return;
        }
        let result = self.db.write(|tx| {
            for txid in &settled {
                tx.execute(
                    "INSERT OR IGNORE INTO broadcast_settlements (txid, block, height)
                     VALUES (?1, ?2, ?3)",
                    params![
                        txid.to_byte_array().as_slice(),
                        settlement.block.to_byte_array().as_slice(),
                        height
                    ],
                )?;
            }
            Ok(())
        });
        if let Err(err) = result {
            warn!("could not record confirmed transactions: {err}");
        }
    }

    /// Checks the settled transactions against the active chain: those whose block left it
    /// are queued again (and handed to peers on the next round), those buried
    /// [`BURIAL_DEPTH`] deep are forgotten.
    pub fn review_settled(&self) {
        let settling = self.lock().settling_blocks();
        if settling.is_empty() {
            return;
        }
        let tip_height = match self.headers.tip() {
            Ok(Some(tip)) => tip.height,
            Ok(None) => return,
            Err(err) => {
                warn!("cannot check confirmed transactions against the chain: {err}");
                return;
            }
        };
        let mut on_active_chain = HashMap::new();
        for settlement in settling {
            match self.headers.hash_at(settlement.height) {
                Ok(active) => {
                    on_active_chain.insert(settlement.block, active == Some(settlement.block));
                }
                Err(err) => {
                    warn!("cannot check confirmed transactions against the chain: {err}");
                    return;
                }
            }
        }
        let review = self.lock().review(tip_height, &on_active_chain);
        for (txid, block) in &review.unsettled {
            warn!(
                "block {block} that settled transaction {txid} left the active chain; \
                 broadcasting it again"
            );
        }
        if review.buried.is_empty() {
            return;
        }
        debug!(
            "{} transaction(s) buried {BURIAL_DEPTH} blocks deep are no longer kept",
            review.buried.len()
        );
        self.forget(review.buried.iter().copied());
    }

    /// Deletes `txids` from the database of kept transactions.
    fn forget(&self, txids: impl Iterator<Item = Txid>) {
        let txids: Vec<Txid> = txids.collect();
        let result = self.db.write(|tx| {
            for txid in &txids {
                let key = txid.to_byte_array();
                tx.execute(
                    "DELETE FROM pending_broadcasts WHERE txid = ?1",
                    [key.as_slice()],
                )?;
                tx.execute(
                    "DELETE FROM broadcast_settlements WHERE txid = ?1",
                    [key.as_slice()],
                )?;
            }
            Ok(())
        });
        if let Err(err) = result {
            warn!("could not forget transactions no longer kept: {err}");
        }
    }

    /// Hands transactions to peers until `shutdown` fires: new ones at once, all
    /// unconfirmed ones again on each new tip (after checking that the blocks which confirmed
    /// others are still on the active chain) and peer connection. Submissions run in a
    /// separate task so that a peer slow to ask for a transaction (or one that already has it
    /// and never asks) does not hold up confirmations.
    pub async fn run(
        self: Arc<Self>,
        mut notifications: tokio::sync::broadcast::Receiver<ChainNotification>,
        mut shutdown: Shutdown,
    ) {
        let resending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        let mut not_taken_check = tokio::time::interval(NOT_TAKEN_CHECK_INTERVAL);
        loop {
            let resend_all = tokio::select! {
                _ = self.wake.notified() => false,
                _ = not_taken_check.tick() => {
                    self.warn_not_taken(Instant::now());
                    continue;
                }
                notification = notifications.recv() => match notification {
                    Ok(ChainNotification::BlockFetched { block, height }) => {
                        self.block_seen(&block, height);
                        continue;
                    }
                    Ok(ChainNotification::NewTip { .. }) | Err(RecvError::Lagged(_)) => {
                        self.review_settled();
                        true
                    }
                    Ok(ChainNotification::PeerConnected) => true,
                    Err(RecvError::Closed) => break,
                },
                () = shutdown.fired() => break,
            };
            if self.engine.is_shut_down() {
                break;
            }
            let (fresh, all) = {
                let mut pending = self.lock();
                let all = pending.queued();
                let fresh: Vec<Transaction> = all
                    .iter()
                    .filter(|tx| pending.unsent.contains(&tx.compute_txid()))
                    .cloned()
                    .collect();
                pending.unsent.clear();
                (fresh, all)
            };
            if !fresh.is_empty() {
                let broadcaster = self.clone();
                tokio::spawn(async move { broadcaster.submit(fresh, FIRST_SUBMIT_TIMEOUT).await });
            }
            // One resend round at a time: a peer that already has a transaction never asks
            // for it, so a round can take a while.
            if resend_all
                && !all.is_empty()
                && !resending.swap(true, std::sync::atomic::Ordering::SeqCst)
            {
                let broadcaster = self.clone();
                let resending = resending.clone();
                tokio::spawn(async move {
                    broadcaster.submit(all, SUBMIT_TIMEOUT).await;
                    resending.store(false, std::sync::atomic::Ordering::SeqCst);
                });
            }
        }
    }

    /// Hands `batch` (parent-first) to peers one transaction at a time, each peer getting
    /// `timeout` to ask for it, and records whether a peer took it.
    async fn submit(&self, batch: Vec<Transaction>, timeout: Duration) {
        // Every fee first: a parent is judged with the child that pays for it.
        for tx in &batch {
            self.look_up_fee(tx);
        }
        for tx in batch {
            let txid = tx.compute_txid();
            if !self.lock().is_queued(&txid) {
                continue; // confirmed meanwhile
            }
            let outcome = self.hand_over(&tx, &txid, timeout).await;
            let first_offer = self.lock().txs.get(&txid).is_some_and(|e| e.offers == 0);
            match outcome {
                None => debug!("transaction {txid} taken by a peer"),
                // Said once at info level; every block offers it again.
                Some(reason) if first_offer => {
                    info!("transaction {txid} not taken by a peer yet: {reason}")
                }
                Some(reason) => debug!("transaction {txid} not taken by a peer yet: {reason}"),
            }
            if let Some(entry) = self.lock().txs.get_mut(&txid) {
                entry.offers += 1;
                match outcome {
                    None => {
                        entry.taken += 1;
                        entry.not_taken = None;
                    }
                    Some(reason) => entry.not_taken = Some(reason),
                }
            }
            self.offered.notify_waiters();
        }
    }

    /// Looks up the fee of `tx` once (it is kept) from the outputs it spends.
    fn look_up_fee(&self, tx: &Transaction) {
        let txid = tx.compute_txid();
        if self
            .lock()
            .txs
            .get(&txid)
            .is_none_or(|entry| entry.fee.is_some())
        {
            return;
        }
        // The outside source (the wallet) is asked without holding the queue's lock.
        let outside = self.prevouts.get().cloned();
        let fee = self.fee_of(tx, outside.as_deref());
        if fee.is_none() && outside.is_none() {
            return; // asked again once the wallet's coins are known
        }
        if let Some(entry) = self.lock().txs.get_mut(&txid) {
            entry.fee = Some(fee);
        }
    }

    /// The fee of `tx` from the outputs it spends: kept transactions' or, for the others,
    /// `outside`'s (asked without holding the queue's lock).
    fn fee_of(&self, tx: &Transaction, outside: Option<&dyn PrevoutValues>) -> Option<Amount> {
        let kept: HashMap<OutPoint, Amount> = {
            let pending = self.lock();
            tx.input
                .iter()
                .filter_map(|input| {
                    let outpoint = input.previous_output;
                    let parent = pending.txs.get(&outpoint.txid)?;
                    let output = parent.tx.output.get(outpoint.vout as usize)?;
                    Some((outpoint, output.value))
                })
                .collect()
        };
        let mut spent = Amount::ZERO;
        for input in &tx.input {
            let outpoint = input.previous_output;
            let value = match kept.get(&outpoint) {
                Some(value) => *value,
                None => outside?.value(&outpoint)?,
            };
            spent = spent.checked_add(value)?;
        }
        let paid: Amount = tx.output.iter().map(|o| o.value).sum();
        spent.checked_sub(paid)
    }

    /// Hands `tx` to a peer whose announced minimum its fee meets (any peer when its fee is
    /// unknown), over the links, or through the engine while no link is up. Returns why no
    /// peer took it, if none did.
    async fn hand_over(
        &self,
        tx: &Transaction,
        txid: &Txid,
        timeout: Duration,
    ) -> Option<NotTaken> {
        let judged = self.lock().judged_fee(txid);
        if let Some(links) = self.links.get() {
            match links.submit(tx, judged.map(|(fee, _)| fee), timeout).await {
                Submitted::Taken(peer) => {
                    debug!("transaction {txid} taken by Bitcoin peer {peer}");
                    return None;
                }
                Submitted::BelowEveryPeer { lowest } => {
                    let (fee, weight) = judged.unwrap_or((Amount::ZERO, tx.weight()));
                    return Some(NotTaken::BelowPeerMinimum {
                        // Per whole vbyte, as the peers count it.
                        fee_rate: FeeRate::from_sat_per_kwu(
                            fee.to_sat() * 250 / weight.to_vbytes_ceil().max(1),
                        ),
                        peer_minimum: lowest,
                    });
                }
                Submitted::NotAsked => return Some(NotTaken::NotAsked),
                Submitted::NoLinks => {}
            }
        }
        match self.engine.submit(std::slice::from_ref(tx), timeout).await {
            Ok(_) => None,
            Err(_) if self.engine.peer_count().await == 0 => Some(NotTaken::NoPeers),
            Err(err) => {
                debug!("transaction {txid}: {err}");
                Some(NotTaken::NotAsked)
            }
        }
    }

    fn persist(&self, txs: &[Transaction]) -> Result<(), StoreError> {
        if txs.is_empty() {
            return Ok(());
        }
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as i64);
        self.db.write(|db| {
            for (i, tx) in txs.iter().enumerate() {
                db.execute(
                    "INSERT OR IGNORE INTO pending_broadcasts (txid, tx, added_at) VALUES (?1, ?2, ?3)",
                    params![
                        tx.compute_txid().to_byte_array().as_slice(),
                        serialize(tx),
                        now + i as i64
                    ],
                )?;
            }
            Ok(())
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|p| p.into_inner())
    }
}

impl BroadcasterInterface for Broadcaster {
    fn broadcast_transactions(&self, txs: &[&Transaction]) {
        let owned: Vec<Transaction> = txs.iter().map(|tx| (*tx).clone()).collect();
        self.broadcast(&owned);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::absolute::LockTime;
    use bitcoin::transaction::Version;
    use bitcoin::{Amount, ScriptBuf, Sequence, TxIn, TxOut, Witness};

    fn spend(prev: OutPoint, value: u64) -> Transaction {
        Transaction {
            version: Version::TWO,
            lock_time: LockTime::ZERO,
            input: vec![TxIn {
                previous_output: prev,
                script_sig: ScriptBuf::new(),
                sequence: Sequence::MAX,
                witness: Witness::new(),
            }],
            output: vec![TxOut {
                value: Amount::from_sat(value),
                script_pubkey: ScriptBuf::new(),
            }],
        }
    }

    #[test]
    fn children_come_after_parents() {
        let grandparent = spend(OutPoint::null(), 3);
        let parent = spend(OutPoint::new(grandparent.compute_txid(), 0), 2);
        let child = spend(OutPoint::new(parent.compute_txid(), 0), 1);
        let unrelated = spend(OutPoint::new(Txid::all_zeros(), 7), 9);
        let ordered = parents_first(&[
            child.clone(),
            unrelated.clone(),
            parent.clone(),
            grandparent.clone(),
        ]);
        let position = |tx: &Transaction| ordered.iter().position(|t| t == tx).unwrap();
        assert_eq!(ordered.len(), 4);
        assert!(position(&grandparent) < position(&parent));
        assert!(position(&parent) < position(&child));
        assert!(ordered.contains(&unrelated));
    }

    fn block(n: u8) -> BlockHash {
        BlockHash::from_byte_array([n; 32])
    }

    fn settled_at(pending: &mut Pending, tx: &Transaction, hash: BlockHash, height: u32) {
        let settlement = Settlement {
            block: hash,
            height,
        };
        assert!(pending.settle(tx.compute_txid(), settlement));
    }

    #[test]
    fn a_transaction_whose_block_leaves_the_active_chain_is_queued_again() {
        let tx = spend(OutPoint::new(Txid::all_zeros(), 1), 5);
        let txid = tx.compute_txid();
        let mut pending = Pending::default();
        pending.insert(tx.clone());
        pending.unsent.clear();
        settled_at(&mut pending, &tx, block(1), 100);
        assert!(pending.queued().is_empty());

        let review = pending.review(101, &HashMap::from([(block(1), true)]));
        assert_eq!(review, Review::default(), "kept while its block is active");
        assert!(pending.queued().is_empty());

        let review = pending.review(101, &HashMap::from([(block(1), false)]));
        assert_eq!(review.unsettled, vec![(txid, block(1))]);
        assert_eq!(pending.queued(), vec![tx.clone()]);
        assert!(pending.unsent.contains(&txid), "sent again at once");

        // The old branch wins again (A → B → A): settled again without being seen again.
        let review = pending.review(102, &HashMap::from([(block(1), true)]));
        assert_eq!(review, Review::default());
        assert!(pending.queued().is_empty());
        assert!(!pending.unsent.contains(&txid));
    }

    #[test]
    fn a_transaction_is_forgotten_once_its_block_is_buried_on_the_active_chain() {
        let tx = spend(OutPoint::new(Txid::all_zeros(), 2), 5);
        let mut pending = Pending::default();
        pending.insert(tx.clone());
        // Seen on a branch that lost, then on the active one.
        settled_at(&mut pending, &tx, block(2), 100);
        settled_at(&mut pending, &tx, block(3), 101);
        let active = HashMap::from([(block(2), false), (block(3), true)]);
        let review = pending.review(101 + BURIAL_DEPTH - 2, &active);
        assert!(review.buried.is_empty(), "one block short of the depth");
        let review = pending.review(101 + BURIAL_DEPTH - 1, &active);
        assert_eq!(review.buried, vec![tx.compute_txid()]);
        assert!(pending.txs.is_empty());
        // A stale branch's block never buries it.
        let other = spend(OutPoint::new(Txid::all_zeros(), 3), 5);
        pending.insert(other.clone());
        settled_at(&mut pending, &other, block(4), 10);
        let review = pending.review(1_000, &HashMap::from([(block(4), false)]));
        assert!(review.buried.is_empty());
        assert_eq!(pending.queued(), vec![other]);
    }

    #[test]
    fn a_transaction_no_peer_took_is_reported_once_after_the_delay() {
        let tx = spend(OutPoint::new(Txid::all_zeros(), 4), 5);
        let txid = tx.compute_txid();
        let mut pending = Pending::default();
        pending.insert(tx);
        let queued_at = pending.txs[&txid].queued_at;
        let after = Duration::from_secs(600);
        assert!(
            pending
                .not_taken_for(queued_at + after - Duration::from_secs(1), after)
                .is_empty(),
            "not before the delay"
        );
        let reason = NotTaken::BelowPeerMinimum {
            fee_rate: FeeRate::from_sat_per_kwu(500),
            peer_minimum: FeeRate::from_sat_per_kwu(5_000),
        };
        pending.txs.get_mut(&txid).unwrap().not_taken = Some(reason);
        assert_eq!(
            pending.not_taken_for(queued_at + after, after),
            vec![(txid, Some(reason))]
        );
        assert!(
            pending
                .not_taken_for(queued_at + after * 3, after)
                .is_empty(),
            "warned once per queueing"
        );
        assert!(reason.to_string().contains("5000 sat/kwu"), "{reason}");

        // Taken by a peer: never reported; back in the queue after a reorg: reported again.
        let taken = spend(OutPoint::new(Txid::all_zeros(), 5), 5);
        pending.insert(taken.clone());
        pending.txs.get_mut(&taken.compute_txid()).unwrap().taken = 1;
        assert!(pending
            .not_taken_for(queued_at + after * 3, after)
            .is_empty());
        let entry = pending.txs.get_mut(&txid).unwrap();
        entry.requeue(queued_at + after * 4);
        assert_eq!(
            pending.not_taken_for(queued_at + after * 5, after),
            vec![(txid, None)]
        );
    }

    #[test]
    fn states_follow_offers_and_confirmations() {
        let tx = spend(OutPoint::new(Txid::all_zeros(), 6), 5);
        let txid = tx.compute_txid();
        let mut pending = Pending::default();
        pending.insert(tx.clone());
        let now = Instant::now();
        let state = |pending: &Pending| pending.txs[&txid].status(txid, now).state;
        assert_eq!(state(&pending), PeerState::Waiting { reason: None });
        pending.txs.get_mut(&txid).unwrap().not_taken = Some(NotTaken::NoPeers);
        assert_eq!(
            state(&pending),
            PeerState::Waiting {
                reason: Some(NotTaken::NoPeers)
            }
        );
        pending.txs.get_mut(&txid).unwrap().taken = 2;
        assert_eq!(state(&pending), PeerState::Taken { times: 2 });
        settled_at(&mut pending, &tx, block(7), 120);
        assert_eq!(state(&pending), PeerState::Confirmed { height: 120 });
    }

    #[test]
    fn a_parent_is_judged_with_the_child_that_pays_for_it() {
        let parent = spend(OutPoint::new(Txid::all_zeros(), 8), 10_000);
        let child = spend(OutPoint::new(parent.compute_txid(), 0), 5_000);
        let mut pending = Pending::default();
        pending.insert(parent.clone());
        pending.insert(child.clone());
        pending.txs.get_mut(&parent.compute_txid()).unwrap().fee = Some(Some(Amount::ZERO));
        let (fee, weight) = pending.judged_fee(&parent.compute_txid()).unwrap();
        assert_eq!(fee, Amount::ZERO, "the child's fee is not known yet");
        assert_eq!(weight, parent.weight());
        pending.txs.get_mut(&child.compute_txid()).unwrap().fee =
            Some(Some(Amount::from_sat(5_000)));
        let (fee, weight) = pending.judged_fee(&parent.compute_txid()).unwrap();
        assert_eq!(fee, Amount::from_sat(5_000));
        assert_eq!(weight, parent.weight() + child.weight());
    }

    #[test]
    fn refused_outputs_are_never_broadcast_and_kept_spends_of_them_are_dropped_for_good() {
        let dir = tempfile::tempdir().unwrap();
        let open = || {
            let db = Arc::new(
                ChainDb::open(&dir.path().join("chain.sqlite"), bitcoin::Network::Regtest).unwrap(),
            );
            Broadcaster::new(Engine::new(), db).unwrap()
        };
        let funding = OutPoint::new(Txid::from_byte_array([7; 32]), 1);
        let other = OutPoint::new(Txid::from_byte_array([8; 32]), 0);
        let early_commitment = spend(funding, 90_000);
        let early_claim = spend(OutPoint::new(early_commitment.compute_txid(), 0), 80_000);
        let unrelated = spend(other, 50_000);
        let broadcaster = open();
        broadcaster.broadcast(&[
            early_claim.clone(),
            early_commitment.clone(),
            unrelated.clone(),
        ]);
        assert_eq!(broadcaster.unconfirmed().len(), 3);

        broadcaster.refuse_spends_of([funding]);
        assert_eq!(broadcaster.unconfirmed(), vec![unrelated.clone()]);
        let commitment = spend(funding, 95_000);
        let bump = spend(OutPoint::new(commitment.compute_txid(), 1), 1_000);
        broadcaster.broadcast(&[bump, commitment]);
        assert_eq!(broadcaster.unconfirmed(), vec![unrelated.clone()]);
        drop(broadcaster);

        // The dropped transactions are gone from the database as well.
        assert_eq!(open().unconfirmed(), vec![unrelated]);
    }

    #[test]
    fn a_held_channel_has_no_commitment_broadcast_until_released_but_may_close_cooperatively() {
        let dir = tempfile::tempdir().unwrap();
        let db = Arc::new(
            ChainDb::open(&dir.path().join("chain.sqlite"), bitcoin::Network::Regtest).unwrap(),
        );
        let broadcaster = Broadcaster::new(Engine::new(), db).unwrap();
        let funding = OutPoint::new(Txid::from_byte_array([7; 32]), 1);
        let mut commitment = spend(funding, 90_000);
        commitment.input[0].sequence = Sequence(0x8012_3456);
        commitment.lock_time = LockTime::from_consensus(0x2065_4321);
        let anchor_bump = spend(OutPoint::new(commitment.compute_txid(), 0), 1_000);
        broadcaster.broadcast(&[commitment.clone()]);
        broadcaster.hold_commitments_of([funding]);
        assert!(
            broadcaster.unconfirmed().is_empty(),
            "a kept commitment of a channel now held is dropped"
        );
        broadcaster.broadcast(&[commitment.clone(), anchor_bump.clone()]);
        assert!(broadcaster.unconfirmed().is_empty());
        let cooperative_close = spend(funding, 89_000);
        broadcaster.broadcast(std::slice::from_ref(&cooperative_close));
        assert_eq!(broadcaster.unconfirmed(), vec![cooperative_close.clone()]);
        broadcaster.release_commitments_of(&[funding]);
        broadcaster.broadcast(&[anchor_bump.clone(), commitment.clone()]);
        assert_eq!(broadcaster.unconfirmed().len(), 3);
    }
}

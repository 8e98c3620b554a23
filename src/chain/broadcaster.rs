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

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, BlockHash, OutPoint, Transaction, Txid};
use lightning::chain::chaininterface::BroadcasterInterface;
use log::{debug, info, warn};
use rusqlite::params;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use super::db::ChainDb;
use super::engine::Engine;
use super::error::StoreError;
use super::header_store::HeaderStore;
use super::source::ChainNotification;

/// How long a peer has to ask for an announced transaction before the next one goes out.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(2);

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
}

/// Broadcasts transactions through the engine and keeps them until buried.
#[derive(Debug)]
pub struct Broadcaster {
    engine: Arc<Engine>,
    db: Arc<ChainDb>,
    headers: HeaderStore,
    pending: Mutex<Pending>,
    wake: Notify,
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
        })
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
        let ordered = parents_first(txs);
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
        let result = self.db.write(|tx| {
            for txid in &review.buried {
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
            warn!("could not forget buried transactions: {err}");
        }
    }

    /// Hands transactions to peers until `notifications` close: new ones at once, all
    /// unconfirmed ones again on each new tip (after checking that the blocks which confirmed
    /// others are still on the active chain) and peer connection. Submissions run in a
    /// separate task so that a peer slow to ask for a transaction (or one that already has it
    /// and never asks) does not hold up confirmations.
    pub async fn run(
        self: Arc<Self>,
        mut notifications: tokio::sync::broadcast::Receiver<ChainNotification>,
    ) {
        let resending = Arc::new(std::sync::atomic::AtomicBool::new(false));
        loop {
            let resend_all = tokio::select! {
                _ = self.wake.notified() => false,
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
                tokio::spawn(async move { broadcaster.submit(fresh).await });
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
                    broadcaster.submit(all).await;
                    resending.store(false, std::sync::atomic::Ordering::SeqCst);
                });
            }
        }
    }

    /// Hands `batch` (parent-first) to peers one transaction at a time.
    async fn submit(&self, batch: Vec<Transaction>) {
        for tx in batch {
            let txid = tx.compute_txid();
            if !self.lock().is_queued(&txid) {
                continue; // confirmed meanwhile
            }
            match self
                .engine
                .submit(std::slice::from_ref(&tx), SUBMIT_TIMEOUT)
                .await
            {
                Ok(_) => debug!("transaction {txid} handed to a peer"),
                Err(err) => debug!("transaction {txid} not taken by a peer yet: {err}"),
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
}

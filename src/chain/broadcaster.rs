//! Broadcaster: LDK's [`BroadcasterInterface`] over the compact-filter engine.
//!
//! A multi-transaction call is a package: it is ordered parent-first before it goes out, so a
//! child never reaches a peer before the transaction it spends. Every broadcast transaction is
//! kept (persisted in the chain database) and handed to peers again on each new block and each
//! new peer connection until a downloaded block confirms it or spends one of its inputs
//! elsewhere. Peers are never trusted to have kept it: a restarted peer forgets its mempool.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, OutPoint, Transaction, Txid};
use lightning::chain::chaininterface::BroadcasterInterface;
use log::{debug, info, warn};
use rusqlite::params;
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::Notify;

use super::db::ChainDb;
use super::engine::Engine;
use super::error::StoreError;
use super::source::ChainNotification;

/// How long a peer has to ask for an announced transaction before the next one goes out.
const SUBMIT_TIMEOUT: Duration = Duration::from_secs(2);

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

#[derive(Debug, Default)]
struct Pending {
    /// Unconfirmed transactions, with the order they were first broadcast in.
    txs: HashMap<Txid, (u64, Transaction)>,
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
        self.txs.insert(txid, (self.next_seq, tx));
        self.next_seq += 1;
        self.unsent.insert(txid);
        true
    }

    fn all(&self) -> Vec<Transaction> {
        let mut in_order: Vec<&(u64, Transaction)> = self.txs.values().collect();
        in_order.sort_by_key(|(seq, _)| *seq);
        let txs: Vec<Transaction> = in_order.into_iter().map(|(_, tx)| tx.clone()).collect();
        parents_first(&txs)
    }
}

/// Broadcasts transactions through the engine and keeps them until confirmed.
#[derive(Debug)]
pub struct Broadcaster {
    engine: Arc<Engine>,
    db: Arc<ChainDb>,
    pending: Mutex<Pending>,
    wake: Notify,
}

impl Broadcaster {
    /// A broadcaster over `engine`, reloading unconfirmed transactions from `db`.
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
        }
        if !pending.txs.is_empty() {
            info!(
                "{} unconfirmed transaction(s) will be broadcast again",
                pending.txs.len()
            );
        }
        Ok(Self {
            engine,
            db,
            pending: Mutex::new(pending),
            wake: Notify::new(),
        })
    }

    /// Transactions broadcast and not yet seen confirmed, parent-first.
    pub fn unconfirmed(&self) -> Vec<Transaction> {
        self.lock().all()
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

    /// Forgets transactions confirmed by `block` or conflicted by it (an input spent by a
    /// different transaction).
    pub fn block_seen(&self, block: &Block) {
        let in_block: HashSet<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        let spent: HashMap<OutPoint, Txid> = block
            .txdata
            .iter()
            .flat_map(|tx| {
                let txid = tx.compute_txid();
                tx.input.iter().map(move |i| (i.previous_output, txid))
            })
            .collect();
        let mut done = Vec::new();
        {
            let mut pending = self.lock();
            pending.txs.retain(|&txid, (_, tx)| {
                let confirmed = in_block.contains(&txid);
                let conflicted = tx.input.iter().any(|input| {
                    spent
                        .get(&input.previous_output)
                        .is_some_and(|spender| *spender != txid)
                });
                if confirmed || conflicted {
                    info!(
                        "transaction {txid} {} in block {}",
                        if confirmed {
                            "confirmed"
                        } else {
                            "was conflicted"
                        },
                        block.block_hash()
                    );
                    done.push(txid);
                }
                !(confirmed || conflicted)
            });
            for txid in &done {
                pending.unsent.remove(txid);
            }
        }
        if !done.is_empty() {
            let result = self.db.write(|tx| {
                for txid in &done {
                    tx.execute(
                        "DELETE FROM pending_broadcasts WHERE txid = ?1",
                        [txid.to_byte_array().as_slice()],
                    )?;
                }
                Ok(())
            });
            if let Err(err) = result {
                warn!("could not forget confirmed transactions: {err}");
            }
        }
    }

    /// Hands transactions to peers until `notifications` close: new ones at once, all
    /// unconfirmed ones again on each new tip and peer connection. Submissions run in a
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
                    Ok(ChainNotification::BlockFetched { block, .. }) => {
                        self.block_seen(&block);
                        continue;
                    }
                    Ok(ChainNotification::NewTip { .. }) | Ok(ChainNotification::PeerConnected) => true,
                    Err(RecvError::Lagged(_)) => true,
                    Err(RecvError::Closed) => break,
                },
            };
            if self.engine.is_shut_down() {
                break;
            }
            let (fresh, all) = {
                let mut pending = self.lock();
                let all = pending.all();
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
            if !self.lock().txs.contains_key(&txid) {
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
}

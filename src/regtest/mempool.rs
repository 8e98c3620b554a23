//! The mempool's storage: unconfirmed transactions in arrival order (parents always before
//! children), indexed by txid, wtxid and the outpoints they spend.
//!
//! Acceptance rules live with the node, which sees both the chain and the mempool.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use bitcoin::{Amount, OutPoint, Transaction, TxOut, Txid, Wtxid};

/// An accepted unconfirmed transaction.
#[derive(Debug, Clone)]
pub struct MempoolEntry {
    /// The transaction.
    pub tx: Transaction,
    /// Its txid.
    pub txid: Txid,
    /// Its wtxid.
    pub wtxid: Wtxid,
    /// Inputs minus outputs.
    pub fee: Amount,
    /// Virtual size in vbytes.
    pub vsize: u64,
}

impl MempoolEntry {
    /// Fee rate in satoshis per 1000 vbytes.
    pub fn fee_rate_sat_per_kvb(&self) -> u64 {
        self.fee.to_sat() * 1000 / self.vsize.max(1)
    }
}

/// Unconfirmed transactions.
#[derive(Debug, Default)]
pub struct Mempool {
    order: BTreeMap<u64, Txid>,
    arrival: HashMap<Txid, u64>,
    next_arrival: u64,
    entries: HashMap<Txid, MempoolEntry>,
    by_wtxid: HashMap<Wtxid, Txid>,
    spends: HashMap<OutPoint, Txid>,
}

impl Mempool {
    /// Number of transactions.
    pub fn len(&self) -> usize {
        self.order.len()
    }

    /// Whether `txid` is in the mempool.
    pub fn contains(&self, txid: &Txid) -> bool {
        self.entries.contains_key(txid)
    }

    /// The entry for `txid`.
    pub fn get(&self, txid: &Txid) -> Option<&MempoolEntry> {
        self.entries.get(txid)
    }

    /// The entry whose wtxid is `wtxid`.
    pub fn get_by_wtxid(&self, wtxid: &Wtxid) -> Option<&MempoolEntry> {
        self.by_wtxid
            .get(wtxid)
            .and_then(|txid| self.entries.get(txid))
    }

    /// The mempool transaction spending `outpoint`.
    pub fn spender(&self, outpoint: &OutPoint) -> Option<Txid> {
        self.spends.get(outpoint).copied()
    }

    /// An output created by a mempool transaction (spent or not).
    pub fn output(&self, outpoint: &OutPoint) -> Option<&TxOut> {
        self.entries
            .get(&outpoint.txid)
            .and_then(|entry| entry.tx.output.get(outpoint.vout as usize))
    }

    /// Entries in arrival order.
    pub fn iter(&self) -> impl Iterator<Item = &MempoolEntry> {
        self.order
            .values()
            .filter_map(|txid| self.entries.get(txid))
    }

    /// Adds an entry; the caller has checked it.
    pub fn insert(&mut self, entry: MempoolEntry) {
        for input in &entry.tx.input {
            self.spends.insert(input.previous_output, entry.txid);
        }
        self.by_wtxid.insert(entry.wtxid, entry.txid);
        self.order.insert(self.next_arrival, entry.txid);
        self.arrival.insert(entry.txid, self.next_arrival);
        self.next_arrival += 1;
        self.entries.insert(entry.txid, entry);
    }

    /// Removes one transaction (not its descendants).
    pub fn remove(&mut self, txid: &Txid) -> Option<MempoolEntry> {
        let entry = self.entries.remove(txid)?;
        for input in &entry.tx.input {
            if self.spends.get(&input.previous_output) == Some(txid) {
                self.spends.remove(&input.previous_output);
            }
        }
        self.by_wtxid.remove(&entry.wtxid);
        if let Some(arrival) = self.arrival.remove(txid) {
            self.order.remove(&arrival);
        }
        Some(entry)
    }

    /// `roots` and every mempool transaction descending from them.
    pub fn with_descendants(&self, roots: impl IntoIterator<Item = Txid>) -> BTreeSet<Txid> {
        let mut found = BTreeSet::new();
        let mut pending: Vec<Txid> = roots.into_iter().collect();
        while let Some(txid) = pending.pop() {
            if !found.insert(txid) {
                continue;
            }
            if let Some(entry) = self.entries.get(&txid) {
                for vout in 0..entry.tx.output.len() {
                    if let Some(child) = self.spends.get(&OutPoint::new(txid, vout as u32)) {
                        pending.push(*child);
                    }
                }
            }
        }
        found
    }

    /// Removes `roots` and their descendants, returning the removed entries.
    pub fn remove_with_descendants(
        &mut self,
        roots: impl IntoIterator<Item = Txid>,
    ) -> Vec<MempoolEntry> {
        let doomed = self.with_descendants(roots);
        doomed.iter().filter_map(|txid| self.remove(txid)).collect()
    }

    /// Empties the mempool, returning its entries in arrival order.
    pub fn take_all(&mut self) -> Vec<MempoolEntry> {
        let order = std::mem::take(&mut self.order);
        let mut entries = std::mem::take(&mut self.entries);
        self.arrival.clear();
        self.by_wtxid.clear();
        self.spends.clear();
        order
            .into_values()
            .filter_map(|txid| entries.remove(&txid))
            .collect()
    }
}

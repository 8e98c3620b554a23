//! WatchSet: the scripts, outpoints and txids the node cares about.
//!
//! LDK registers funding outputs and the outputs of its channels through
//! [`lightning::chain::Filter`]; the wallet registers its addresses. A block whose filter
//! matches any watched script is delivered in full (the checks are in `filter_checks`). Scripts
//! are append-only and numbered, so a block checked at one generation can later be checked
//! against just the scripts added since.
//! Everything lives in memory: registration never blocks on I/O.

use std::collections::HashSet;
use std::sync::RwLock;

use bitcoin::{OutPoint, Script, ScriptBuf, Transaction, Txid};
use lightning::chain::{Filter, WatchedOutput};

/// Number of scripts ever added: a block checked at generation `g` has been checked against the
/// first `g` scripts.
pub type Generation = usize;

#[derive(Debug, Default)]
struct Inner {
    scripts: Vec<ScriptBuf>,
    known: HashSet<ScriptBuf>,
    outpoints: HashSet<OutPoint>,
    txids: HashSet<Txid>,
}

/// The set of watched scripts, outpoints and transactions.
#[derive(Debug, Default)]
pub struct WatchSet {
    inner: RwLock<Inner>,
}

impl WatchSet {
    /// An empty watch set.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds scripts; returns how many were new.
    pub fn add_scripts<'a>(&self, scripts: impl IntoIterator<Item = &'a Script>) -> usize {
        let mut inner = self.write();
        let before = inner.scripts.len();
        for script in scripts {
            if inner.known.insert(script.to_owned()) {
                inner.scripts.push(script.to_owned());
            }
        }
        inner.scripts.len() - before
    }

    /// The current generation (number of scripts).
    pub fn generation(&self) -> Generation {
        self.read().scripts.len()
    }

    /// Whether `script` is watched.
    pub fn contains_script(&self, script: &Script) -> bool {
        self.read().known.contains(script)
    }

    /// Whether `outpoint` is watched for spends.
    pub fn contains_outpoint(&self, outpoint: &OutPoint) -> bool {
        self.read().outpoints.contains(outpoint)
    }

    /// Runs `f` on the scripts added from generation `since` on, and returns what it returned
    /// with the generation they reach. Registrations wait while `f` runs.
    pub fn with_scripts_since<R>(
        &self,
        since: Generation,
        f: impl FnOnce(&[ScriptBuf]) -> R,
    ) -> (R, Generation) {
        let inner = self.read();
        let generation = inner.scripts.len();
        (f(&inner.scripts[since.min(generation)..]), generation)
    }

    /// Whether `tx` pays a watched script, spends a watched outpoint or is a watched txid.
    pub fn is_relevant(&self, tx: &Transaction) -> bool {
        let inner = self.read();
        inner.txids.contains(&tx.compute_txid())
            || tx
                .output
                .iter()
                .any(|out| inner.known.contains(&out.script_pubkey))
            || tx
                .input
                .iter()
                .any(|input| inner.outpoints.contains(&input.previous_output))
    }

    /// Number of watched scripts.
    pub fn len(&self) -> usize {
        self.read().scripts.len()
    }

    /// Whether nothing is watched.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    fn read(&self) -> std::sync::RwLockReadGuard<'_, Inner> {
        self.inner
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Inner> {
        self.inner
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Filter for WatchSet {
    fn register_tx(&self, txid: &Txid, script_pubkey: &Script) {
        self.add_scripts([script_pubkey]);
        self.write().txids.insert(*txid);
    }

    fn register_output(&self, output: WatchedOutput) {
        self.add_scripts([output.script_pubkey.as_script()]);
        self.write()
            .outpoints
            .insert(output.outpoint.into_bitcoin_outpoint());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    fn script(byte: u8) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([byte; 32]))
    }

    #[test]
    fn generations_count_new_scripts_only() {
        let set = WatchSet::new();
        assert_eq!(
            set.add_scripts([script(1).as_script(), script(2).as_script()]),
            2
        );
        assert_eq!(set.add_scripts([script(2).as_script()]), 0);
        assert_eq!(set.generation(), 2);
        assert_eq!(
            set.with_scripts_since(1, |new| new.to_vec()),
            (vec![script(2)], 2)
        );
        assert_eq!(set.with_scripts_since(5, |new| new.len()), (0, 2));
    }
}

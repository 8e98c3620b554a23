//! WatchSet: the scripts, outpoints and txids the node cares about.
//!
//! LDK registers funding outputs and the outputs of its channels through
//! [`lightning::chain::Filter`]; the wallet registers its addresses. A block whose filter
//! matches any watched script is delivered in full. Scripts are append-only and numbered, so a
//! block checked at one generation can later be checked against just the scripts added since.
//! Everything lives in memory: registration never blocks on I/O.

use std::collections::HashSet;
use std::sync::RwLock;

use bitcoin::bip158::BlockFilter;
use bitcoin::{BlockHash, OutPoint, Script, ScriptBuf, Transaction, Txid, VarInt};
use lightning::chain::{Filter, WatchedOutput};

/// Number of scripts ever added: a block checked at generation `g` has been checked against the
/// first `g` scripts.
pub type Generation = usize;

/// Bits each element of a basic filter takes at least: a unary quotient of one bit or more and
/// a remainder of BIP 158's P = 19 bits.
const MIN_BITS_PER_ELEMENT: u64 = 20;

/// Why a filter's contents cannot be read. A filter is only as honest as the filter headers
/// it was checked against, and those may come from a single lying peer.
#[derive(Debug, thiserror::Error)]
pub enum UnreadableFilter {
    /// The filter does not start with a well-formed element count.
    #[error("the filter does not start with an element count")]
    NoElementCount,
    /// The element count promises more elements than the filter's bytes can hold.
    #[error("the filter claims {claimed} elements in {bytes} bytes")]
    TooManyElements {
        /// The element count the filter starts with.
        claimed: u64,
        /// The bytes after the count.
        bytes: usize,
    },
    /// The elements cannot be decoded.
    #[error("the filter's elements cannot be decoded: {0}")]
    Undecodable(#[from] bitcoin::bip158::Error),
}

/// Checks that `content` starts with an element count its remaining bytes can hold. The
/// decoder reads a missing count as zero elements (a silent miss) and multiplies the count
/// without a bound, so neither reaches it.
fn check_element_count(content: &[u8]) -> Result<(), UnreadableFilter> {
    let (VarInt(claimed), count_len) = bitcoin::consensus::encode::deserialize_partial(content)
        .map_err(|_| UnreadableFilter::NoElementCount)?;
    let bytes = content.len() - count_len;
    if claimed > bytes as u64 * 8 / MIN_BITS_PER_ELEMENT {
        return Err(UnreadableFilter::TooManyElements { claimed, bytes });
    }
    Ok(())
}

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

    /// Checks `filter` of block `block_hash` against the scripts added from generation `since`
    /// on. Returns whether any matched and the generation checked up to; a filter that cannot
    /// be read is an error, never a miss.
    pub fn filter_matches_since(
        &self,
        filter: &BlockFilter,
        block_hash: &BlockHash,
        since: Generation,
    ) -> Result<(bool, Generation), UnreadableFilter> {
        let inner = self.read();
        let generation = inner.scripts.len();
        let new_scripts = &inner.scripts[since.min(generation)..];
        if new_scripts.is_empty() {
            return Ok((false, generation));
        }
        check_element_count(&filter.content)?;
        let matched = filter.match_any(block_hash, new_scripts.iter().map(|s| s.as_bytes()))?;
        Ok((matched, generation))
    }

    /// Checks `filter` of block `block_hash` against every watched script.
    pub fn filter_matches(
        &self,
        filter: &BlockFilter,
        block_hash: &BlockHash,
    ) -> Result<(bool, Generation), UnreadableFilter> {
        self.filter_matches_since(filter, block_hash, 0)
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
    use bitcoin::{Amount, TxOut};

    fn script(byte: u8) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([byte; 32]))
    }

    fn block_paying(scripts: &[ScriptBuf]) -> bitcoin::Block {
        let mut block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        block.txdata[0].output = scripts
            .iter()
            .map(|s| TxOut {
                value: Amount::from_sat(1),
                script_pubkey: s.clone(),
            })
            .collect();
        block
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
    }

    #[test]
    fn filter_match_since_checks_only_newer_scripts() {
        let block = block_paying(&[script(7)]);
        let filter = BlockFilter::new_script_filter(&block, |_| {
            Err::<ScriptBuf, _>(bitcoin::bip158::Error::UtxoMissing(OutPoint::null()))
        })
        .expect("coinbase-only block needs no prevouts");
        let hash = block.block_hash();
        let set = WatchSet::new();
        set.add_scripts([script(1).as_script()]);
        assert_eq!(set.filter_matches(&filter, &hash).unwrap(), (false, 1));
        set.add_scripts([script(7).as_script()]);
        assert_eq!(
            set.filter_matches_since(&filter, &hash, 1).unwrap(),
            (true, 2)
        );
        assert_eq!(
            set.filter_matches_since(&filter, &hash, 2).unwrap(),
            (false, 2)
        );
    }

    #[test]
    fn a_filter_that_cannot_be_decoded_is_an_error_not_a_miss() {
        let hash = bitcoin::constants::genesis_block(bitcoin::Network::Regtest).block_hash();
        let set = WatchSet::new();
        set.add_scripts([script(1).as_script()]);
        for (content, what) in [
            (vec![], "no element count"),
            (vec![0xfd, 0x01], "a truncated element count"),
            (vec![0xfd, 0xff, 0xff], "65,535 elements and no bits"),
            (vec![0xff; 9], "2^64 - 1 elements"),
        ] {
            let filter = BlockFilter::new(&content);
            let checked = std::panic::catch_unwind(|| set.filter_matches(&filter, &hash));
            assert!(
                matches!(checked, Ok(Err(_))),
                "a filter with {what} is reported unreadable: {checked:?}"
            );
        }
        let empty = BlockFilter::new(&[0x00]);
        assert_eq!(set.filter_matches(&empty, &hash).unwrap(), (false, 1));
    }
}

//! BIP 158 basic block filters and BIP 157 filter headers for the regtest chain.
//!
//! A basic filter holds every output script of the block (except OP_RETURN and empty ones) and
//! the script of every output the block spends. The filter header chains each filter hash to the
//! previous header: `header = sha256d(filter_hash || previous_header)`, all zeros before genesis.

use std::collections::HashMap;

use bitcoin::bip158::{self, BlockFilter, BlockFilterWriter};
use bitcoin::hashes::{sha256d, Hash};
use bitcoin::{Block, FilterHash, FilterHeader, OutPoint, ScriptBuf};

/// Builds the basic filter of `block`; `spent_scripts` maps each outpoint the block spends to the
/// script of the output it spends.
pub fn basic_filter(
    block: &Block,
    spent_scripts: &HashMap<OutPoint, ScriptBuf>,
) -> Result<BlockFilter, bip158::Error> {
    BlockFilter::new_script_filter(block, |outpoint| {
        spent_scripts
            .get(outpoint)
            .cloned()
            .ok_or(bip158::Error::UtxoMissing(*outpoint))
    })
}

/// The hash of a filter as committed to by filter headers.
pub fn filter_hash(filter: &BlockFilter) -> FilterHash {
    FilterHash::from_raw_hash(sha256d::Hash::hash(&filter.content))
}

/// The filter header following `previous` for a filter with hash `hash`.
pub fn next_filter_header(hash: &FilterHash, previous: &FilterHeader) -> FilterHeader {
    hash.filter_header(previous)
}

/// A filter that cannot be decoded (it counts five elements and holds none), as a lying peer could
/// serve with filter headers to match.
pub fn undecodable_filter() -> BlockFilter {
    BlockFilter::new(&[0x05])
}

/// A deliberately wrong filter for `block`, as a lying peer would serve: it keeps only the
/// coinbase's output scripts (hiding every payment and spend) and adds a marker element so it
/// never equals the honest filter. It is keyed by the real block hash, so it is well-formed.
pub fn wrong_filter(block: &Block) -> BlockFilter {
    let coinbase_only = Block {
        header: block.header,
        txdata: block.txdata.iter().take(1).cloned().collect(),
    };
    let mut content = Vec::new();
    {
        let mut writer = BlockFilterWriter::new(&mut content, &coinbase_only);
        writer.add_output_scripts();
        writer.add_element(b"lightfilter regtest: wrong filter");
        writer
            .finish()
            .expect("writing a filter into memory cannot fail");
    }
    BlockFilter::new(&content)
}

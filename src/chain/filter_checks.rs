//! What recent filter checks found: for each recently checked block, whether its filter
//! matched the watch set and up to which generation of the watch set it was checked.
//!
//! Filters are checked as they arrive (to fetch matching blocks ahead of the listeners) and
//! again when a listener reaches the block only for the scripts added since; after a block
//! went to the listeners header-only, the scripts registered while they processed it are
//! checked once more (see `ChainSource::recheck_last_delivery`).

use bitcoin::BlockHash;

use super::block_hash_map::RecentBlocks;
use super::watch_set::Generation;

/// How many checks are remembered: enough to cover how far listeners trail the arriving
/// filters during a first sync (as many blocks as the tracker caches headers of), at about
/// 90 bytes each: 0.4 MB.
pub const CHECKS_REMEMBERED: usize = 4_096;

/// The outcome of checking one block's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterCheck {
    /// Whether any script checked so far matched.
    pub matched: bool,
    /// The watch set's generation the filter was checked up to.
    pub generation: Generation,
}

/// The outcomes of the most recent [`CHECKS_REMEMBERED`] filter checks, by block hash.
#[derive(Debug)]
pub struct FilterChecks(RecentBlocks<FilterCheck>);

impl Default for FilterChecks {
    fn default() -> Self {
        Self(RecentBlocks::new(CHECKS_REMEMBERED, usize::MAX))
    }
}

impl FilterChecks {
    /// Records that block `hash` was checked as `check` says, replacing an earlier record of
    /// it; the oldest record goes when too many are kept.
    pub fn record(&mut self, hash: BlockHash, check: FilterCheck) {
        self.0.insert(hash, check, 0);
    }

    /// The last recorded check of block `hash`, if it is still remembered.
    pub fn get(&self, hash: &BlockHash) -> Option<FilterCheck> {
        self.0.get(hash)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::block_hash_map::numbered_hash as hash;

    #[test]
    fn a_new_check_replaces_the_old_one_and_the_oldest_blocks_are_forgotten() {
        let mut checks = FilterChecks::default();
        let unmatched = FilterCheck {
            matched: false,
            generation: 1,
        };
        let matched = FilterCheck {
            matched: true,
            generation: 2,
        };
        checks.record(hash(0), unmatched);
        checks.record(hash(0), matched);
        assert_eq!(checks.get(&hash(0)), Some(matched));
        for i in 1..CHECKS_REMEMBERED as u32 {
            checks.record(hash(i), unmatched);
        }
        assert_eq!(
            checks.get(&hash(0)),
            Some(matched),
            "still within the bound"
        );
        checks.record(hash(CHECKS_REMEMBERED as u32), unmatched);
        assert_eq!(checks.get(&hash(0)), None, "the oldest block is forgotten");
        assert_eq!(checks.get(&hash(1)), Some(unmatched));
    }
}

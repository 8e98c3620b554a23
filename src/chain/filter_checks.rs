//! Filter checks: which blocks the listeners get in full (invariant 1 of the design).
//!
//! A block's filter is checked against the watch set when it arrives (to fetch matching blocks
//! ahead of the listeners), again when a listener reaches the block, then only for the scripts
//! added since, and once more after the block went to the listeners header-only, for the
//! scripts registered while they processed it (the chain source re-delivers it with its
//! transactions on a match). [`FilterChecks`] makes every one of these decisions and remembers
//! their outcomes; it reads filters through the closures it is given, so it runs without a
//! peer or a database. A filter that cannot be read, or is no longer stored when a delivered
//! block is checked again, counts as a match: the block is fetched and checked itself.

use std::sync::{Arc, Mutex, MutexGuard};

use bitcoin::bip158::BlockFilter;
use bitcoin::{BlockHash, VarInt};
use log::warn;

use super::error::StoreError;
use super::recent_blocks::RecentBlocks;
use super::tracker::StoredFilter;
use super::watch_set::{Generation, WatchSet};

/// How many checks are remembered: enough to cover how far listeners trail the arriving
/// filters during a first sync (as many blocks as the tracker caches headers of), at about
/// 90 bytes each: 0.4 MB.
pub const CHECKS_REMEMBERED: usize = 4_096;

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
pub(crate) fn check_element_count(content: &[u8]) -> Result<(), UnreadableFilter> {
    let (VarInt(claimed), count_len) = bitcoin::consensus::encode::deserialize_partial(content)
        .map_err(|_| UnreadableFilter::NoElementCount)?;
    let bytes = content.len() - count_len;
    if claimed > bytes as u64 * 8 / MIN_BITS_PER_ELEMENT {
        return Err(UnreadableFilter::TooManyElements { claimed, bytes });
    }
    Ok(())
}

/// Checks `filter` of block `block_hash` against the scripts of `watch` added from generation
/// `since` on. Returns whether any matched and the generation checked up to; a filter that
/// cannot be read is an error, never a miss.
pub fn filter_matches_since(
    watch: &WatchSet,
    filter: &BlockFilter,
    block_hash: &BlockHash,
    since: Generation,
) -> Result<(bool, Generation), UnreadableFilter> {
    let (matched, generation) = watch.with_scripts_since(since, |new_scripts| {
        if new_scripts.is_empty() {
            return Ok::<bool, UnreadableFilter>(false);
        }
        check_element_count(&filter.content)?;
        Ok(filter.match_any(block_hash, new_scripts.iter().map(|s| s.as_bytes()))?)
    });
    Ok((matched?, generation))
}

/// Checks `filter` of block `block_hash` against every script of `watch`.
pub fn filter_matches(
    watch: &WatchSet,
    filter: &BlockFilter,
    block_hash: &BlockHash,
) -> Result<(bool, Generation), UnreadableFilter> {
    filter_matches_since(watch, filter, block_hash, 0)
}

/// The outcome of checking one block's filter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FilterCheck {
    /// Whether any script checked so far matched.
    pub matched: bool,
    /// The watch set's generation the filter was checked up to.
    pub generation: Generation,
}

/// The filter checks against one watch set, and the outcomes of the most recent
/// [`CHECKS_REMEMBERED`] of them, by block hash.
#[derive(Debug)]
pub struct FilterChecks {
    watch: Arc<WatchSet>,
    checked: Mutex<RecentBlocks<FilterCheck>>,
}

impl FilterChecks {
    /// Checks against `watch`, none made yet.
    pub fn new(watch: Arc<WatchSet>) -> Self {
        Self {
            watch,
            checked: Mutex::new(RecentBlocks::new(CHECKS_REMEMBERED, usize::MAX)),
        }
    }

    /// The watch set checked against.
    pub fn watch_set(&self) -> &Arc<WatchSet> {
        &self.watch
    }

    /// Checks the filters just stored for blocks above `listeners_at` (all of them before the
    /// listeners have a position) and returns those that matched: their blocks are to be
    /// fetched ahead of the listeners. The outcomes are recorded after all checks are made, so
    /// listeners asking meanwhile do not wait for the whole batch.
    pub fn check_arriving<'s, 'f>(
        &self,
        stored: &'s [StoredFilter<'f>],
        listeners_at: Option<u32>,
    ) -> Vec<&'s StoredFilter<'f>> {
        let checked: Vec<(&StoredFilter<'f>, FilterCheck)> = stored
            .iter()
            .filter(|filter| listeners_at.is_none_or(|at| filter.height > at))
            .map(|filter| {
                let content = BlockFilter::new(filter.content);
                // An unreadable filter tells nothing: its block is fetched.
                let (matched, generation) = filter_matches(&self.watch, &content, &filter.hash)
                    .unwrap_or((true, self.watch.generation()));
                let check = FilterCheck {
                    matched,
                    generation,
                };
                (filter, check)
            })
            .collect();
        {
            let mut records = self.records();
            for (filter, check) in &checked {
                records.insert(filter.hash, *check, 0);
            }
        }
        checked
            .into_iter()
            .filter(|(_, check)| check.matched)
            .map(|(filter, _)| filter)
            .collect()
    }

    /// Checks the filter of block `hash` for a listener about to receive the block: an
    /// earlier check that matched, or covered every script, stands; otherwise the filter
    /// (from `read_filter`) is checked against the scripts added since that check, or against
    /// all when there was none. `None` when the filter is not stored (yet).
    pub fn check_for_listeners(
        &self,
        hash: &BlockHash,
        read_filter: impl FnOnce() -> Result<Option<BlockFilter>, StoreError>,
    ) -> Result<Option<FilterCheck>, StoreError> {
        let earlier = self.last_check(hash);
        if let Some(check) = earlier {
            if check.matched || check.generation == self.watch.generation() {
                return Ok(Some(check));
            }
        }
        let Some(filter) = read_filter()? else {
            return Ok(None);
        };
        let since = earlier.map_or(0, |check| check.generation);
        // A filter that verified against the filter headers but cannot be decoded (a lying
        // peer's, agreed by the quorum) tells nothing: the block is fetched and checked itself.
        let (matched, generation) = filter_matches_since(&self.watch, &filter, hash, since)
            .unwrap_or_else(|err| {
                warn!("filter of block {hash} cannot be read ({err}); fetching the block");
                (true, self.watch.generation())
            });
        let check = FilterCheck {
            matched,
            generation,
        };
        self.record(*hash, check);
        Ok(Some(check))
    }

    /// Checks block `hash` again after it went to the listeners header-only, against the
    /// scripts registered since its last check (all of them if that check was forgotten).
    /// `None` when there is nothing new to check. The outcome is not recorded: the caller
    /// records it ([`FilterChecks::record`]) once a matching block was re-delivered, so a
    /// failed fetch is tried again next time. A filter no longer stored, or unreadable, counts
    /// as a match.
    pub fn recheck_delivered(
        &self,
        hash: &BlockHash,
        read_filter: impl FnOnce() -> Result<Option<BlockFilter>, StoreError>,
    ) -> Result<Option<FilterCheck>, StoreError> {
        let checked_at = self.last_check(hash).map(|check| check.generation);
        if checked_at == Some(self.watch.generation()) {
            return Ok(None);
        }
        let (matched, generation) = match read_filter()? {
            Some(filter) => {
                filter_matches_since(&self.watch, &filter, hash, checked_at.unwrap_or(0))
                    .unwrap_or_else(|err| {
                        warn!("filter of block {hash} cannot be read ({err}); fetching the block");
                        (true, self.watch.generation())
                    })
            }
            None => {
                warn!("filter of block {hash} is no longer stored; fetching the block");
                (true, self.watch.generation())
            }
        };
        Ok(Some(FilterCheck {
            matched,
            generation,
        }))
    }

    /// Records that block `hash` was checked as `check` says, replacing an earlier record of
    /// it; the oldest record goes when too many are kept.
    pub fn record(&self, hash: BlockHash, check: FilterCheck) {
        self.records().insert(hash, check, 0);
    }

    /// The last recorded check of block `hash`, if it is still remembered.
    pub fn last_check(&self, hash: &BlockHash) -> Option<FilterCheck> {
        self.records().get(hash)
    }

    fn records(&self) -> MutexGuard<'_, RecentBlocks<FilterCheck>> {
        self.checked.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chain::recent_blocks::numbered_hash;
    use bitcoin::hashes::Hash;
    use bitcoin::{Amount, OutPoint, ScriptBuf, TxOut};

    fn script(byte: u8) -> ScriptBuf {
        ScriptBuf::new_p2wsh(&bitcoin::WScriptHash::from_byte_array([byte; 32]))
    }

    /// A block (distinct per `nonce`) paying `scripts`, and its serialized basic filter.
    fn block_paying(scripts: &[ScriptBuf], nonce: u32) -> (BlockHash, Vec<u8>) {
        let mut block = bitcoin::constants::genesis_block(bitcoin::Network::Regtest);
        block.header.nonce = nonce;
        block.txdata[0].output = scripts
            .iter()
            .map(|s| TxOut {
                value: Amount::from_sat(1),
                script_pubkey: s.clone(),
            })
            .collect();
        let filter = BlockFilter::new_script_filter(&block, |_| {
            Err::<ScriptBuf, _>(bitcoin::bip158::Error::UtxoMissing(OutPoint::null()))
        })
        .expect("a coinbase-only block needs no prevouts");
        (block.block_hash(), filter.content)
    }

    fn watching(scripts: &[ScriptBuf]) -> FilterChecks {
        let watch = Arc::new(WatchSet::new());
        watch.add_scripts(scripts.iter().map(|s| s.as_script()));
        FilterChecks::new(watch)
    }

    fn stored(content: &[u8]) -> impl FnOnce() -> Result<Option<BlockFilter>, StoreError> + '_ {
        move || Ok(Some(BlockFilter::new(content)))
    }

    fn not_read() -> Result<Option<BlockFilter>, StoreError> {
        panic!("the filter is read although the recorded check stands")
    }

    fn check(matched: bool, generation: Generation) -> Option<FilterCheck> {
        Some(FilterCheck {
            matched,
            generation,
        })
    }

    #[test]
    fn filter_match_since_checks_only_newer_scripts() {
        let (hash, content) = block_paying(&[script(7)], 0);
        let filter = BlockFilter::new(&content);
        let set = WatchSet::new();
        set.add_scripts([script(1).as_script()]);
        assert_eq!(filter_matches(&set, &filter, &hash).unwrap(), (false, 1));
        set.add_scripts([script(7).as_script()]);
        assert_eq!(
            filter_matches_since(&set, &filter, &hash, 1).unwrap(),
            (true, 2)
        );
        assert_eq!(
            filter_matches_since(&set, &filter, &hash, 2).unwrap(),
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
            let checked = std::panic::catch_unwind(|| filter_matches(&set, &filter, &hash));
            assert!(
                matches!(checked, Ok(Err(_))),
                "a filter with {what} is reported unreadable: {checked:?}"
            );
        }
        let empty = BlockFilter::new(&[0x00]);
        assert_eq!(filter_matches(&set, &empty, &hash).unwrap(), (false, 1));
    }

    #[test]
    fn arriving_filters_above_the_listeners_are_checked_and_the_matching_ones_returned() {
        let checks = watching(&[script(1)]);
        let blocks: Vec<_> = [vec![script(2)], vec![script(1)], vec![script(1)], vec![]]
            .iter()
            .zip(0..)
            .map(|(scripts, nonce)| block_paying(scripts, nonce))
            .collect();
        let filters: Vec<StoredFilter<'_>> = blocks
            .iter()
            .zip(10..)
            .map(|((hash, content), height)| StoredFilter {
                height,
                hash: *hash,
                content,
            })
            .collect();
        let matched = checks.check_arriving(&filters, Some(11));
        let matched: Vec<u32> = matched.iter().map(|filter| filter.height).collect();
        assert_eq!(
            matched,
            [12],
            "block 11 matches but the listeners are there"
        );
        assert_eq!(checks.last_check(&blocks[0].0), None, "below the listeners");
        assert_eq!(checks.last_check(&blocks[1].0), None, "at the listeners");
        assert_eq!(checks.last_check(&blocks[2].0), check(true, 1));
        assert_eq!(checks.last_check(&blocks[3].0), check(false, 1));
        // Before the listeners have a position, every filter is checked.
        let all = checks.check_arriving(&filters, None);
        assert_eq!(all.len(), 2);
    }

    #[test]
    fn an_unreadable_arriving_filter_fetches_its_block() {
        let checks = watching(&[script(1)]);
        let filters = [StoredFilter {
            height: 1,
            hash: numbered_hash(1),
            content: &[0xff; 9],
        }];
        assert_eq!(checks.check_arriving(&filters, None).len(), 1);
        assert_eq!(checks.last_check(&numbered_hash(1)), check(true, 1));
    }

    #[test]
    fn a_listener_check_keeps_a_match_or_a_check_of_every_script_without_reading_the_filter() {
        let checks = watching(&[script(1)]);
        checks.record(numbered_hash(1), check(true, 0).unwrap());
        checks.record(numbered_hash(2), check(false, 1).unwrap());
        assert_eq!(
            checks
                .check_for_listeners(&numbered_hash(1), not_read)
                .unwrap(),
            check(true, 0)
        );
        assert_eq!(
            checks
                .check_for_listeners(&numbered_hash(2), not_read)
                .unwrap(),
            check(false, 1)
        );
    }

    #[test]
    fn a_listener_check_covers_only_the_scripts_added_since_the_last_one() {
        let (hash, content) = block_paying(&[script(1), script(3)], 0);
        let checks = watching(&[script(1)]);
        // Recorded as a miss at generation 1 (say, before script 1 was in the set): only
        // scripts added later are checked, so this block stays a miss for script 2.
        checks.record(hash, check(false, 1).unwrap());
        checks.watch_set().add_scripts([script(2).as_script()]);
        assert_eq!(
            checks.check_for_listeners(&hash, stored(&content)).unwrap(),
            check(false, 2)
        );
        assert_eq!(checks.last_check(&hash), check(false, 2), "recorded");
        checks.watch_set().add_scripts([script(3).as_script()]);
        assert_eq!(
            checks.check_for_listeners(&hash, stored(&content)).unwrap(),
            check(true, 3)
        );
        // Never checked: every script counts.
        let (fresh, fresh_content) = block_paying(&[script(1)], 1);
        assert_eq!(
            checks
                .check_for_listeners(&fresh, stored(&fresh_content))
                .unwrap(),
            check(true, 3)
        );
    }

    #[test]
    fn a_listener_check_without_a_stored_filter_decides_nothing() {
        let checks = watching(&[script(1)]);
        let hash = numbered_hash(5);
        assert_eq!(
            checks.check_for_listeners(&hash, || Ok(None)).unwrap(),
            None
        );
        assert_eq!(checks.last_check(&hash), None);
        let unreadable = [0xfd, 0xff, 0xff];
        assert_eq!(
            checks
                .check_for_listeners(&hash, stored(&unreadable))
                .unwrap(),
            check(true, 1),
            "an unreadable filter fetches the block"
        );
    }

    #[test]
    fn a_delivered_block_is_checked_again_for_new_scripts_until_its_outcome_is_recorded() {
        let (hash, content) = block_paying(&[script(2)], 0);
        let checks = watching(&[script(1)]);
        assert_eq!(
            checks.check_for_listeners(&hash, stored(&content)).unwrap(),
            check(false, 1)
        );
        assert_eq!(
            checks.recheck_delivered(&hash, not_read).unwrap(),
            None,
            "no script added since the block was delivered"
        );
        checks.watch_set().add_scripts([script(2).as_script()]);
        let outcome = checks.recheck_delivered(&hash, stored(&content)).unwrap();
        assert_eq!(outcome, check(true, 2));
        // The re-delivery failed: nothing recorded, so the next round checks again.
        assert_eq!(
            checks.recheck_delivered(&hash, stored(&content)).unwrap(),
            outcome
        );
        checks.record(hash, outcome.unwrap());
        assert_eq!(checks.recheck_delivered(&hash, not_read).unwrap(), None);
        checks.watch_set().add_scripts([script(9).as_script()]);
        assert_eq!(
            checks.recheck_delivered(&hash, stored(&content)).unwrap(),
            check(false, 3),
            "only script 9 is new, and it is not in the block"
        );
    }

    #[test]
    fn a_delivered_block_whose_check_or_filter_is_gone_is_fetched_or_checked_in_full() {
        let (hash, content) = block_paying(&[script(1)], 0);
        let checks = watching(&[script(1), script(2)]);
        assert_eq!(
            checks.recheck_delivered(&hash, stored(&content)).unwrap(),
            check(true, 2),
            "a forgotten check means every script is checked"
        );
        assert_eq!(
            checks
                .recheck_delivered(&numbered_hash(7), || Ok(None))
                .unwrap(),
            check(true, 2),
            "a filter no longer stored fetches the block"
        );
        assert_eq!(
            checks
                .recheck_delivered(&numbered_hash(8), stored(&[0xff; 9]))
                .unwrap(),
            check(true, 2),
            "an unreadable filter fetches the block"
        );
    }

    #[test]
    fn a_new_check_replaces_the_old_one_and_the_oldest_blocks_are_forgotten() {
        let checks = watching(&[]);
        let unmatched = check(false, 1).unwrap();
        let matched = check(true, 2).unwrap();
        checks.record(numbered_hash(0), unmatched);
        checks.record(numbered_hash(0), matched);
        assert_eq!(checks.last_check(&numbered_hash(0)), Some(matched));
        for i in 1..CHECKS_REMEMBERED as u32 {
            checks.record(numbered_hash(i), unmatched);
        }
        assert_eq!(
            checks.last_check(&numbered_hash(0)),
            Some(matched),
            "still within the bound"
        );
        checks.record(numbered_hash(CHECKS_REMEMBERED as u32), unmatched);
        assert_eq!(
            checks.last_check(&numbered_hash(0)),
            None,
            "the oldest block is forgotten"
        );
        assert_eq!(checks.last_check(&numbered_hash(1)), Some(unmatched));
    }
}

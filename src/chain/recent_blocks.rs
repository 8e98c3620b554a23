//! Bounded records of recent blocks ([`RecentBlocks`]: the tracker's header and filter caches,
//! the filter-check outcomes, the listeners' header cache), on maps keyed by block hash.
//!
//! A block hash is already a uniformly distributed digest, so its leading bytes serve as the
//! map's hash. The standard maps would run SipHash over all 32 bytes on every insert, look-up
//! and eviction, which during a catch-up of tens of thousands of blocks is a measurable share
//! of the time.

use std::collections::{HashMap, VecDeque};
use std::hash::{BuildHasherDefault, Hasher};

use bitcoin::BlockHash;

/// A `HashMap` keyed by block hash that hashes a key by its leading bytes.
pub type BlockHashMap<V> = HashMap<BlockHash, V, BuildHasherDefault<LeadingBytes>>;

/// An empty [`BlockHashMap`] with room for `capacity` entries.
pub fn with_capacity<V>(capacity: usize) -> BlockHashMap<V> {
    HashMap::with_capacity_and_hasher(capacity, BuildHasherDefault::default())
}

/// A hasher that folds the leading eight bytes of each write into its state. Keyed by block
/// hash, the writes are the array's length and then the hash itself.
#[derive(Debug, Default)]
pub struct LeadingBytes(u64);

impl Hasher for LeadingBytes {
    fn write(&mut self, bytes: &[u8]) {
        let mut word = [0u8; 8];
        let len = bytes.len().min(word.len());
        word[..len].copy_from_slice(&bytes[..len]);
        self.0 = self.0.rotate_left(29) ^ u64::from_le_bytes(word);
    }

    fn finish(&self) -> u64 {
        self.0
    }
}

/// Entries for the most recent blocks, evicted oldest first once over a count or byte budget.
/// Replacing an entry keeps its place in that order.
#[derive(Debug)]
pub struct RecentBlocks<V> {
    entries: BlockHashMap<(V, usize)>,
    order: VecDeque<BlockHash>,
    bytes: usize,
    max_entries: usize,
    max_bytes: usize,
}

impl<V: Clone> RecentBlocks<V> {
    /// Keeps at most `max_entries` entries, and at most `max_bytes` bytes as counted by
    /// [`RecentBlocks::insert`].
    pub fn new(max_entries: usize, max_bytes: usize) -> Self {
        // Sized once for the bounded count, so the map never grows (and leaves its old table
        // to the allocator) while it fills.
        Self {
            entries: with_capacity(max_entries + 1),
            order: VecDeque::with_capacity(max_entries + 1),
            bytes: 0,
            max_entries,
            max_bytes,
        }
    }

    /// The entry of block `hash`.
    pub fn get(&self, hash: &BlockHash) -> Option<V> {
        self.get_ref(hash).cloned()
    }

    /// The entry of block `hash`, borrowed.
    pub fn get_ref(&self, hash: &BlockHash) -> Option<&V> {
        self.entries.get(hash).map(|(value, _)| value)
    }

    /// Removes the entry of block `hash` and returns it. This walks the eviction order, so it
    /// is meant for small records or rare removals.
    pub fn remove(&mut self, hash: &BlockHash) -> Option<V> {
        let (value, size) = self.entries.remove(hash)?;
        self.bytes -= size;
        self.order.retain(|kept| kept != hash);
        Some(value)
    }

    /// Sets the entry of block `hash`, counted as `size` bytes, and evicts the oldest entries
    /// while over budget.
    pub fn insert(&mut self, hash: BlockHash, value: V, size: usize) {
        if let Some((_, old)) = self.entries.insert(hash, (value, size)) {
            self.bytes -= old;
        } else {
            self.order.push_back(hash);
        }
        self.bytes += size;
        while self.order.len() > self.max_entries || self.bytes > self.max_bytes {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some((_, size)) = self.entries.remove(&oldest) {
                self.bytes -= size;
            }
        }
    }
}

/// A distinct block hash for test number `i`.
#[cfg(test)]
pub(crate) fn numbered_hash(i: u32) -> BlockHash {
    use bitcoin::hashes::Hash;
    let mut bytes = [0u8; 32];
    bytes[..4].copy_from_slice(&i.to_le_bytes());
    BlockHash::from_byte_array(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn keys_that_differ_only_past_the_leading_bytes_are_still_told_apart() {
        let mut map = with_capacity(4);
        let mut late = [0u8; 32];
        late[31] = 1;
        map.insert(BlockHash::all_zeros(), "zeros");
        map.insert(BlockHash::from_byte_array(late), "late");
        assert_eq!(map.len(), 2);
        assert_eq!(map.get(&BlockHash::all_zeros()), Some(&"zeros"));
        assert_eq!(map.get(&BlockHash::from_byte_array(late)), Some(&"late"));
    }

    #[test]
    fn the_oldest_entries_go_first_and_a_removed_one_leaves_the_order() {
        let mut recent = RecentBlocks::new(3, usize::MAX);
        for i in 0..3 {
            recent.insert(numbered_hash(i), i, 0);
        }
        assert_eq!(recent.remove(&numbered_hash(1)), Some(1));
        assert_eq!(recent.remove(&numbered_hash(1)), None);
        recent.insert(numbered_hash(3), 3, 0);
        recent.insert(numbered_hash(1), 1, 0);
        assert_eq!(recent.get(&numbered_hash(0)), None, "the oldest went");
        for i in 1..4 {
            assert_eq!(
                recent.get_ref(&numbered_hash(i)),
                Some(&i),
                "block {i} kept"
            );
        }
    }

    #[test]
    fn entries_go_once_over_the_byte_budget() {
        let mut recent = RecentBlocks::new(10, 100);
        recent.insert(numbered_hash(0), 'a', 60);
        recent.insert(numbered_hash(1), 'b', 30);
        recent.insert(numbered_hash(0), 'c', 50);
        assert_eq!(
            recent.get(&numbered_hash(0)),
            Some('c'),
            "replaced in place"
        );
        recent.insert(numbered_hash(2), 'd', 30);
        assert_eq!(
            recent.get(&numbered_hash(0)),
            None,
            "oldest evicted for bytes"
        );
        assert_eq!(recent.get(&numbered_hash(1)), Some('b'));
        assert_eq!(recent.get(&numbered_hash(2)), Some('d'));
    }
}

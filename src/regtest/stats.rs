//! What the peer served and received, summed over all endpoints, so tests can assert that a
//! client fetched only what it needed.

use std::collections::BTreeMap;

use bitcoin::BlockHash;

/// Counters since the peer started or since the last reset.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServedStats {
    /// Every block sent, in order, with whether it carried witness data.
    pub blocks_served: Vec<(BlockHash, bool)>,
    /// Bytes written to peers (message headers included).
    pub bytes_sent: u64,
    /// Bytes read from peers (message headers included).
    pub bytes_received: u64,
    /// Compact filters sent (one per `cfilter` message).
    pub cfilters_served: u64,
    /// How many times the filter of a block at each height was sent.
    pub cfilters_by_height: BTreeMap<u32, u32>,
    /// Filter hashes sent in `cfheaders` messages.
    pub cfheaders_served: u64,
    /// Block headers sent in `headers` messages (answers and announcements).
    pub headers_served: u64,
    /// `tx` messages received from peers, accepted or not.
    pub txs_received: u64,
}

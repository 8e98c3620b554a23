//! Limits on inbound Lightning connections, so that a flood of them (the listener is public on
//! the public networks) cannot take the file descriptors the channel store, the databases and
//! the peers the node has channels with need.
//!
//! At most [`InboundLimits::total`] inbound connections are open at once, at most
//! [`MAX_PER_ADDRESS`] from one IP address; a connection beyond either is closed as soon as it
//! is accepted. A connection whose handshake does not complete within [`HANDSHAKE_TIMEOUT`]
//! is closed (LDK itself would only drop it at its next timer tick).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Inbound connections kept at most, whatever the open-file limit allows.
pub const MAX_INBOUND: usize = 256;

/// Inbound connections kept at most from one IP address.
pub const MAX_PER_ADDRESS: usize = 16;

/// Descriptors kept free of inbound connections for the stores, databases, the control API
/// (which holds at most 256) and the node's own peers.
pub const RESERVED_DESCRIPTORS: u64 = 512;

/// How long an inbound connection may take to complete the Lightning handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Counts of open inbound connections, in total and by address.
#[derive(Debug)]
pub struct InboundLimits {
    total: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

/// One admitted inbound connection; its place is given back when dropped.
#[derive(Debug)]
pub struct InboundPlace {
    limits: Arc<InboundLimits>,
    address: IpAddr,
}

impl InboundLimits {
    /// Limits for a process allowed `open_files` descriptors: [`MAX_INBOUND`] connections, or
    /// fewer so that [`RESERVED_DESCRIPTORS`] stay free (at least 16).
    pub fn for_open_files(open_files: u64) -> Arc<InboundLimits> {
        let room = open_files.saturating_sub(RESERVED_DESCRIPTORS).max(16);
        Arc::new(InboundLimits {
            total: (room as usize).min(MAX_INBOUND),
            open: Mutex::new(HashMap::new()),
        })
    }

    /// The most inbound connections kept at once.
    pub fn total(&self) -> usize {
        self.total
    }

    /// A place for a connection from `address`, if neither limit is reached.
    pub fn admit(self: &Arc<Self>, address: IpAddr) -> Option<InboundPlace> {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        let total: usize = open.values().sum();
        let from_address = open.get(&address).copied().unwrap_or(0);
        if total >= self.total || from_address >= MAX_PER_ADDRESS {
            return None;
        }
        *open.entry(address).or_insert(0) += 1;
        Some(InboundPlace {
            limits: Arc::clone(self),
            address,
        })
    }
}

impl Drop for InboundPlace {
    fn drop(&mut self) {
        let mut open = self.limits.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(count) = open.get_mut(&self.address) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.address);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn connections_are_limited_in_total_and_by_address_and_places_come_back() {
        let limits = InboundLimits::for_open_files(RESERVED_DESCRIPTORS + 20);
        assert_eq!(limits.total(), 20);
        assert_eq!(InboundLimits::for_open_files(100_000).total(), MAX_INBOUND);
        assert_eq!(InboundLimits::for_open_files(100).total(), 16);
        let one: IpAddr = "192.0.2.1".parse().unwrap();
        let mut from_one: Vec<InboundPlace> = (0..MAX_PER_ADDRESS)
            .map(|_| limits.admit(one).expect("a place"))
            .collect();
        assert!(limits.admit(one).is_none(), "the address's limit");
        let two: IpAddr = "192.0.2.2".parse().unwrap();
        let from_two: Vec<InboundPlace> = (0..4).map(|_| limits.admit(two).unwrap()).collect();
        assert!(
            limits.admit("192.0.2.3".parse().unwrap()).is_none(),
            "the total"
        );
        from_one.pop();
        assert!(limits.admit(two).is_some(), "a place came back");
        drop((from_one, from_two));
        assert!(limits.admit(one).is_some());
    }
}

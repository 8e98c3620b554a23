//! What the peer grants each connection, so that whatever connects to it cannot take all of its
//! memory or sockets: how many connections at once, and how long a connection may take to
//! complete the version handshake or stay silent afterwards.

use std::time::Duration;

/// Connection limits of a [`RegtestPeer`](super::RegtestPeer), shared by all its endpoints.
///
/// The defaults are Bitcoin Core's: 125 connections (`-maxconnections`), 60 s for the version
/// handshake, and 20 minutes without a message from a peer (which is pinged more often than
/// that, so a live peer always has something to answer). The idle timeout is taken between
/// 200 ms and a year.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerLimits {
    /// Most connections served at once over all endpoints; further ones are closed at once.
    pub max_connections: usize,
    /// A connection that has not completed the version handshake this long after it was
    /// accepted is closed.
    pub handshake_timeout: Duration,
    /// A connection that sent no complete message for this long, or would not take what the
    /// peer writes to it for this long, is closed.
    pub idle_timeout: Duration,
}

impl Default for PeerLimits {
    fn default() -> Self {
        PeerLimits {
            max_connections: 125,
            handshake_timeout: Duration::from_secs(60),
            idle_timeout: Duration::from_secs(20 * 60),
        }
    }
}

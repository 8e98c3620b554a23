//! The chain source's configuration: network, data directory, peers, time limits, fee
//! overrides, where a new header chain starts and where it checks filters from.

use std::path::PathBuf;
use std::time::Duration;

use bitcoin::Network;

use super::checkpoints::Checkpoint;
use super::engine::COMPACT_AFTER_HEADERS;
use super::fees::FeeOverrides;
use super::filter_start::FilterStart;
use super::peer_address::PeerAddress;
use crate::proxy::Route;

/// Configuration of the chain source.
#[derive(Debug, Clone)]
pub struct ChainConfig {
    /// The Bitcoin network.
    pub network: Network,
    /// Directory holding `chain.sqlite`.
    pub data_dir: PathBuf,
    /// Peers to connect to.
    pub peers: Vec<PeerAddress>,
    /// Connect only to `peers`.
    pub only_peers: bool,
    /// How connections to peers leave the machine: directly or through a SOCKS5 proxy.
    pub route: Route,
    /// Number of peers that must agree on filter headers; `None` for the network's default
    /// (1 on regtest, 2 elsewhere).
    pub required_peers: Option<u8>,
    /// How long a block download waits while no peer is connected before it is given up
    /// (a download in progress has no limit of its own: see `response_timeout`).
    pub block_timeout: Duration,
    /// How long a peer may take to answer one request, a whole block included, before it is
    /// dropped and another peer asked: long enough for the largest block over a slow link
    /// (a 4 MB block at 300 kbit/s takes about 110 s).
    pub response_timeout: Duration,
    /// Fixed fee estimates that replace computed ones.
    pub fee_overrides: FeeOverrides,
    /// Blocks between fee samples of the tip while the node is idle; `None` for the
    /// network's default ([`super::fees::default_idle_interval`]).
    pub fee_sample_interval: Option<u32>,
    /// Once the engine synced this many headers past where it started, it is restarted from
    /// the stored chain so the headers it holds in memory are released.
    pub compact_after_headers: u32,
    /// Where a new header chain starts (nothing at or below it is downloaded); genesis when
    /// `None`. A database that has a chain keeps where it started.
    pub start: Option<Checkpoint>,
    /// Blocks asked for beside each block the listeners need, so the peer serving them
    /// cannot tell which one mattered ([`default_decoy_blocks`] by default).
    pub decoy_blocks: u32,
    /// Where a new chain checks compact filters from (see [`super::filter_start`]); a
    /// database that has a chain keeps what it was created with.
    pub filters: FilterStart,
}

/// Decoy blocks per needed block on `network`: none on regtest (a test network has no one to
/// hide from), two elsewhere (each needed block then costs three).
pub fn default_decoy_blocks(network: Network) -> u32 {
    match network {
        Network::Regtest => 0,
        _ => 2,
    }
}

impl ChainConfig {
    /// Defaults for `network` with data in `data_dir`.
    pub fn new(network: Network, data_dir: impl Into<PathBuf>) -> Self {
        Self {
            network,
            data_dir: data_dir.into(),
            peers: Vec::new(),
            only_peers: false,
            route: Route::Direct,
            required_peers: None,
            block_timeout: if network == Network::Regtest {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(30)
            },
            response_timeout: if network == Network::Regtest {
                Duration::from_secs(8)
            } else {
                Duration::from_secs(120)
            },
            fee_overrides: FeeOverrides::new(),
            fee_sample_interval: None,
            compact_after_headers: COMPACT_AFTER_HEADERS,
            start: None,
            decoy_blocks: default_decoy_blocks(network),
            filters: FilterStart::ChainStart,
        }
    }

    /// The filter-header quorum in effect.
    pub fn quorum(&self) -> u8 {
        self.required_peers.unwrap_or(match self.network {
            Network::Regtest => 1,
            _ => 2,
        })
    }
}

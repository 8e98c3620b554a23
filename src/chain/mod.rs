//! The compact-filter chain source: the node's only view of the chain.
//!
//! An embedded BIP 157/158 client (the `bip157` crate, wrapped by [`engine`]) downloads
//! headers and filters from Bitcoin P2P peers; [`tracker`] stores them ([`header_store`],
//! [`filter_store`]) and keeps the verified tip. [`source::ChainSource`] serves LDK's
//! `BlockSource`, delivering only blocks whose filters match the [`watch_set`] in full: every
//! filter check and re-check is in [`filter_checks`], every block download and verification in
//! [`fetcher`], and matching blocks are fetched ahead of the listeners by [`prefetch`].
//! [`listener::ChainListener`] fans blocks out to the wallet and the LDK listeners; [`sync`]
//! drives them with `synchronize_listeners` and `SpvClient`. The [`broadcaster`] and [`fees`]
//! modules give LDK its broadcaster and fee estimator without any server; they, the
//! prefetcher and the fetcher hear of new tips, blocks, peers and the shutdown through
//! [`notifications`]. Beside the engine, the node keeps its own connection to each Bitcoin
//! peer ([`links`]): blocks, transactions and each peer's `feefilter` go through it, and
//! [`filter_audit`] uses it to find the peer that lies when peers disagree on filter headers,
//! which [`ban_list`] then keeps out. This is the only module that names the `bip157` crate.
//!
//! Modules depend downwards only: `source` (and `sync` on it) uses `engine_host`, `prefetch`,
//! `fees`, `broadcaster` and `filter_checks`; those use `fetcher` and `filter_audit`, which use
//! `links`, `notifications`, `engine` and `tracker`; nothing imports `source` back.

pub mod ban_list;
pub mod broadcaster;
pub mod checkpoints;
pub mod config;
pub mod db;
pub mod engine;
mod engine_host;
pub mod error;
pub mod fees;
pub mod fetcher;
pub mod filter_audit;
pub mod filter_checks;
pub mod filter_start;
pub mod filter_store;
pub mod header_store;
#[cfg(test)]
mod layers_tests;
pub mod links;
pub mod listener;
pub mod notifications;
pub mod peer_address;
pub mod prefetch;
pub mod recent_blocks;
pub mod refused_spends;
pub mod source;
pub mod sync;
pub mod tracker;
#[cfg(test)]
mod tracker_model_tests;
pub mod watch_set;

pub use broadcaster::Broadcaster;
pub use checkpoints::Checkpoint;
pub use config::ChainConfig;
pub use error::{FetchError, StoreError};
pub use fees::{FeeEstimates, FeeOverrides};
pub use fetcher::{BlockFetcher, DownloadCounts};
pub use filter_start::{FilterStart, FiltersFrom};
pub use listener::{ChainListener, SharedListen};
pub use notifications::ChainNotification;
pub use peer_address::PeerAddress;
pub use source::{ChainSource, SyncPhase, SyncStatus};
pub use watch_set::WatchSet;

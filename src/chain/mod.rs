//! The compact-filter chain source: the node's only view of the chain.
//!
//! An embedded BIP 157/158 client (the `bip157` crate, wrapped by [`engine`]) downloads
//! headers and filters from Bitcoin P2P peers; [`tracker`] stores them ([`header_store`],
//! [`filter_store`]) and keeps the verified tip; [`source::ChainSource`] serves LDK's
//! `BlockSource`, delivering only blocks whose filters match the [`watch_set`] in full
//! (filters are checked as they arrive, [`filter_checks`], and matching blocks fetched ahead
//! of the listeners, [`prefetch`]); [`listener::ChainListener`] fans blocks out to the wallet and the LDK listeners;
//! [`sync`] drives them with `synchronize_listeners` and `SpvClient`. The
//! [`broadcaster`] and [`fees`] modules give LDK its broadcaster and fee estimator without any
//! server. This is the only module that names the `bip157` crate.

pub mod block_hash_map;
pub mod broadcaster;
pub mod checkpoints;
pub mod db;
pub mod engine;
pub mod error;
pub mod fees;
pub mod filter_checks;
pub mod filter_store;
pub mod header_store;
pub mod listener;
pub mod prefetch;
pub mod source;
pub mod sync;
pub mod tracker;
#[cfg(test)]
mod tracker_model_tests;
pub mod watch_set;

pub use broadcaster::Broadcaster;
pub use checkpoints::Checkpoint;
pub use engine::PeerAddress;
pub use error::{FetchError, StoreError};
pub use fees::{FeeEstimates, FeeOverrides};
pub use listener::{ChainListener, SharedListen};
pub use source::{ChainConfig, ChainNotification, ChainSource, DownloadCounts, SyncStatus};
pub use watch_set::WatchSet;

//! lightfilter: a Lightning node on LDK whose only view of the chain is an embedded
//! BIP 157/158 compact-block-filter client.
//!
//! The node speaks Bitcoin P2P itself, downloads compact filters, and fetches only the blocks
//! whose filters match scripts it watches. Modules follow the data flow described in the
//! design notes:
//!
//! - [`api`]: the control API (JSON over HTTP on 127.0.0.1, token in the data directory), its
//!   request and response types, and the client the CLI uses.
//! - [`chain`]: the compact-filter chain source behind LDK's `BlockSource`, `Filter`,
//!   broadcaster and fee estimator.
//! - [`config`]: node configuration from file, flags and environment.
//! - [`daemon`]: one node run as a daemon: data directory, control API, node start, a stop
//!   awaited and the shutdown, in one order for the `daemon` command and the playground.
//! - [`node`]: the LDK stack on the chain source and wallet, and the operations the control
//!   API exposes.
//! - `playground`: a regtest peer and two nodes in one process, funded, connected by a
//!   channel and paying each other: the first thing to run (feature `regtest`).
//! - `regtest`: an embedded regtest peer (miner, mempool, P2P server serving BIP 157
//!   filters) used by the tests and the local playground (feature `regtest`, on by default;
//!   a build without it leaves out the peer and its C++ script interpreter, `bitcoinconsensus`).
//! - [`postgres`]: the node's state in PostgreSQL (`--store postgresql://…`): one writer,
//!   fenced writes, a standby that takes over.
//! - [`proxy`]: outbound connections, directly or through a SOCKS5 proxy such as Tor's.
//! - [`tor_control`]: Tor's control port, for the node's onion service.
//! - [`tasks`]: the node's long-running tasks, spawned by name and supervised.
//! - [`units`]: amounts and fee rates as users type them, read by the configuration, the CLI
//!   and the control API.
//! - [`wallet`]: the on-chain wallet (BDK) fed by the chain source: addresses, balance, send,
//!   channel funding, and LDK's wallet source for fee bumping.

pub mod api;
pub mod chain;
pub mod config;
pub mod daemon;
pub mod node;
pub mod os;
#[cfg(feature = "regtest")]
pub mod playground;
pub mod postgres;
pub mod proxy;
#[cfg(feature = "regtest")]
pub mod regtest;
pub mod tasks;
pub mod tor_control;
pub mod units;
pub mod wallet;

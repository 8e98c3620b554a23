//! The integration tests, built as one binary: one module per area (named after what it
//! starts or covers: `api_*`, `chain_*`, `cli_*`, `node_*`, `regtest_*`, `wallet_*`, ...),
//! sharing the helpers in `tests/common/`. One binary links LDK, BDK, SQLite and tokio once
//! instead of once per file; run one area with `cargo test --test it node_backup::`.
//!
//! The tests share one process, so none may change process-wide state that another relies
//! on: no environment variables or current directory changes (child processes get theirs
//! through `Command`), no panic hook (the daemon's fatal hook is installed only by the
//! binary's `main`), loggers initialised with `try_init`, and only ephemeral ports.

#[path = "../common/mod.rs"]
mod common;

mod api_abuse;
mod api_auth;
mod api_connections;
mod chain_block_peers;
mod chain_bursts;
mod chain_catchup_crash;
mod chain_decoys;
mod chain_filter_liar;
mod chain_model;
mod chain_source;
mod chain_source_bitcoind;
mod cli_anchor_reserve;
mod cli_bad_input;
mod cli_commands;
mod cli_daemon;
mod cli_fee_floor;
mod cli_fee_floor_bitcoind;
mod cli_network;
mod cli_operator;
mod cli_payments;
mod cli_peer_minimum;
mod cli_peer_minimum_bitcoind;
mod cli_peers;
mod cli_postgres;
mod first_start_bitcoind;
mod first_start_kept_state;
mod first_start_kills;
mod interop_cln;
mod interop_cln_onchain;
mod log_flood;
mod node_backup;
mod node_bump_rounds;
mod node_channels;
mod node_closing;
mod node_crash;
mod node_fee_sampling;
mod node_inbound;
mod node_refusals;
mod node_restore;
mod node_routing;
mod node_start_points;
mod playground;
mod private_files;
mod regtest_abuse;
mod regtest_bitcoind;
mod regtest_cli;
mod regtest_misbehaviour;
mod regtest_p2p;
mod regtest_reorg;
mod regtest_rules;
mod regtest_sync;
mod service_unit;
mod store_postgres;
mod systemd_notify;
mod tor_onion;
mod tor_proxy;
mod wallet_change_scripts;
mod wallet_persistence;
mod wallet_receive;
mod wallet_reorg;
mod wallet_spend;

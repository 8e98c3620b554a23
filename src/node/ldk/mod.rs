//! LDK wired together: the builder (following LDK's node-building guide step by step), the
//! concrete types of the stack, the event handler, the background processor, bounded gossip,
//! peer connections and the inbound listener's limits, sweeping as blocks arrive, and the
//! logger LDK writes through.
//!
//! These modules use every other part of the node: the stores, the keys, the recovery steps,
//! the chain source and the wallet.

pub(super) mod background;
pub(super) mod builder;
pub(super) mod events;
pub(super) mod gossip;
pub(super) mod inbound;
pub(super) mod logger;
pub(super) mod onion_service;
pub(super) mod peers;
pub(super) mod router;
pub(super) mod start_checks;
pub(super) mod sweeping;
pub mod types;

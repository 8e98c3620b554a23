//! What the control API calls on a running node, grouped by concern: channels and peers,
//! payments, on-chain sends and bumps, the node's info and balances, and the fee demand that
//! tells the fee sampler when estimates are about to be used.
//!
//! These modules are `impl Node` blocks and the types they answer with; they use the running
//! node's parts, never the builder.

pub(super) mod channels;
pub(super) mod fee_demand;
pub(super) mod info;
pub(super) mod onchain;
pub(super) mod payments;

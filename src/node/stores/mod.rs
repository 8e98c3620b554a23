//! What the node keeps on disk, apart from the wallet's and the chain's databases: the
//! channel store LDK persists into (with its live mirror and the comparison that keeps a start
//! from making the mirror older), the payment, forward and peer records kept in it, and the
//! data directory itself (its lock, network, seed and permissions).
//!
//! These modules use LDK's store traits, the `bitcoin` types and the node's error type; they
//! know nothing of the running node, the chain source or the wallet.

pub(super) mod backup;
pub(super) mod backup_compare;
pub(super) mod data_dir;
pub(super) mod forward_store;
pub(super) mod payment_store;
pub(super) mod peer_store;
pub(super) mod private_files;

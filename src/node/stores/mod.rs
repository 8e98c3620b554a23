//! What the node keeps, apart from the wallet's and the chain's databases: the channel store
//! LDK persists into, files (with their live mirror and the comparison that keeps a start from
//! making the mirror older) or PostgreSQL; the payment, forward and peer records kept in it;
//! the data directory itself (its lock, network, seed and permissions); and `store copy`,
//! which moves a stopped node's state between the files and PostgreSQL.
//!
//! These modules use LDK's store traits, the `bitcoin` types, the PostgreSQL store and the
//! node's error type; they know nothing of the running node or the chain source. Only
//! `store_copy` touches the wallet, to copy its changesets along with the channel state.

pub(super) mod backup;
pub(super) mod backup_compare;
pub(super) mod data_dir;
pub(super) mod forward_store;
pub(super) mod node_store;
pub(super) mod payment_store;
pub(super) mod peer_store;
pub(super) mod private_files;
pub(super) mod store_copy;

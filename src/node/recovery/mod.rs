//! Starts from state that is not what a clean run leaves: a restore from a backup directory,
//! channel state that fell behind its peers', channels held until their state is proved
//! current, the sweeper state of earlier versions, and the channel monitors brought to the tip
//! before the chain monitor takes them.
//!
//! These modules use the stores, LDK's types and the chain source's broadcaster; the builder
//! calls them in the order its start-up needs.

pub(super) mod fallen_behind;
pub(super) mod held_channels;
pub(super) mod restore;
pub(super) mod startup_monitor;
pub(super) mod sweeper_repair;

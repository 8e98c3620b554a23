//! The node's keys: LDK's keys manager with the wallet's addresses as channel destinations,
//! and the seed written as 24 words.
//!
//! These modules use LDK's signing traits and the wallet (for destination scripts) only.

pub(super) mod keys_manager;
pub mod seed_words;

//! LDK's logger, forwarding every record into the `log` facade under the target `ldk`,
//! noting the channels LDK reports with a channel manager older than their monitor, and
//! logging LDK's warnings about a peer's peer storage once per peer while the daemon runs.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use lightning::ln::types::ChannelId;
use lightning::util::logger::{Level, Logger, Record};

/// What LDK logs, with the channel, when it reads a channel manager older than a channel's
/// monitor; it then closes the channel with the monitor's latest commitment.
const STALE_MANAGER: &str = "A ChannelManager is stale compared to the current ChannelMonitor!";

/// Forwards LDK log records to `log`.
#[derive(Debug, Default, Clone)]
pub struct LdkLogger {
    stale_manager_channels: Arc<Mutex<Vec<ChannelId>>>,
    /// Peers whose peer-storage warning was logged since the daemon started.
    peer_storage_warned: Arc<Mutex<HashSet<PublicKey>>>,
}

/// What the log adds to the first warning about a peer's peer storage.
const PEER_STORAGE_NOTE: &str = " (the node keeps up to 1 KiB of peer storage for peers with a \
     funded channel and ignores the rest; this peer's further peer storage warnings are logged \
     at debug level until the daemon restarts)";

impl LdkLogger {
    /// The channels LDK reported with a channel manager older than their monitor (it does so
    /// while reading the channel manager) since the last call.
    pub fn take_stale_manager_channels(&self) -> Vec<ChannelId> {
        std::mem::take(
            &mut *self
                .stale_manager_channels
                .lock()
                .unwrap_or_else(|p| p.into_inner()),
        )
    }

    /// Whether a warning `message` about `peer`'s peer storage is the first this session (it
    /// is then logged as a warning, with [`PEER_STORAGE_NOTE`]; later ones at debug level).
    fn first_peer_storage_warning(&self, peer: Option<PublicKey>, message: &str) -> Option<bool> {
        let about_peer_storage =
            message.contains("peer storage") || message.contains("peer_storage");
        let peer = peer.filter(|_| about_peer_storage)?;
        Some(
            self.peer_storage_warned
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(peer),
        )
    }
}

impl Logger for LdkLogger {
    fn log(&self, record: Record) {
        let mut level = match record.level {
            Level::Gossip | Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        let mut note = "";
        if record.level >= Level::Warn {
            let message = record.args.to_string();
            if let (Level::Error, Some(channel_id)) = (record.level, record.channel_id) {
                if message.starts_with(STALE_MANAGER) {
                    self.stale_manager_channels
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .push(channel_id);
                }
            }
            match self.first_peer_storage_warning(record.peer_id, &message) {
                Some(true) => note = PEER_STORAGE_NOTE,
                Some(false) => level = log::Level::Debug,
                None => {}
            }
        }
        if log::log_enabled!(target: "ldk", level) {
            log::log!(target: "ldk", level, "[{}:{}] {}{note}", record.module_path, record.line, record.args);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    #[test]
    fn a_peer_storage_warning_is_logged_once_per_peer() {
        let logger = LdkLogger::default();
        let peer = |byte: u8| {
            PublicKey::from_secret_key(
                &Secp256k1::new(),
                &SecretKey::from_slice(&[byte; 32]).unwrap(),
            )
        };
        let warning = "Error handling message from 02..; sending warning message with: \
                       Ignoring peer_storage message, as peer storage is currently supported \
                       only for peers with an active funded channel.";
        assert_eq!(
            logger.first_peer_storage_warning(Some(peer(1)), warning),
            Some(true)
        );
        assert_eq!(
            logger.first_peer_storage_warning(Some(peer(1)), warning),
            Some(false)
        );
        let size =
            "sending warning message with: Supports only data up to 1024 bytes in peer storage.";
        assert_eq!(
            logger.first_peer_storage_warning(Some(peer(1)), size),
            Some(false)
        );
        assert_eq!(
            logger.first_peer_storage_warning(Some(peer(2)), size),
            Some(true)
        );
        assert_eq!(
            logger.first_peer_storage_warning(Some(peer(2)), "another warning"),
            None
        );
        assert_eq!(logger.first_peer_storage_warning(None, warning), None);
    }
}

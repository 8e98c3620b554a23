//! LDK's logger, forwarding every record into the `log` facade under the target `ldk`, and
//! noting the channels LDK reports with a channel manager older than their monitor.

use std::sync::{Arc, Mutex};

use lightning::ln::types::ChannelId;
use lightning::util::logger::{Level, Logger, Record};

/// What LDK logs, with the channel, when it reads a channel manager older than a channel's
/// monitor; it then closes the channel with the monitor's latest commitment.
const STALE_MANAGER: &str = "A ChannelManager is stale compared to the current ChannelMonitor!";

/// Forwards LDK log records to `log`.
#[derive(Debug, Default, Clone)]
pub struct LdkLogger {
    stale_manager_channels: Arc<Mutex<Vec<ChannelId>>>,
}

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
}

impl Logger for LdkLogger {
    fn log(&self, record: Record) {
        let level = match record.level {
            Level::Gossip | Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        if let (Level::Error, Some(channel_id)) = (record.level, record.channel_id) {
            if record.args.to_string().starts_with(STALE_MANAGER) {
                self.stale_manager_channels
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .push(channel_id);
            }
        }
        if log::log_enabled!(target: "ldk", level) {
            log::log!(target: "ldk", level, "[{}:{}] {}", record.module_path, record.line, record.args);
        }
    }
}

//! LDK's logger, forwarding every record into the `log` facade under the target `ldk`.

use lightning::util::logger::{Level, Logger, Record};

/// Forwards LDK log records to `log`.
#[derive(Debug, Default, Clone, Copy)]
pub struct LdkLogger;

impl Logger for LdkLogger {
    fn log(&self, record: Record) {
        let level = match record.level {
            Level::Gossip | Level::Trace => log::Level::Trace,
            Level::Debug => log::Level::Debug,
            Level::Info => log::Level::Info,
            Level::Warn => log::Level::Warn,
            Level::Error => log::Level::Error,
        };
        if log::log_enabled!(target: "ldk", level) {
            log::log!(target: "ldk", level, "[{}:{}] {}", record.module_path, record.line, record.args);
        }
    }
}

//! The daemon's log: standard error and `<datadir>/lightfilter.log`, rotated by size with a
//! few old files kept, each line as `[time level target] message`.

use std::io::Write;

use flexi_logger::{
    Cleanup, Criterion, DeferredNow, Duplicate, FileSpec, LogSpecification, Logger, LoggerHandle,
    Naming,
};

use super::DaemonError;
use crate::config::Config;

/// The daemon's log file in the data directory; rotated files get a timestamp before `.log`.
pub const LOG_FILE: &str = "lightfilter.log";

/// Size at which the log file is rotated.
pub const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Rotated log files kept besides the current one; older ones are deleted.
pub const LOG_FILES_KEPT: usize = 4;

/// Keeps the daemon's log written while it lives.
pub struct LogGuard {
    _handle: LoggerHandle,
}

impl std::fmt::Debug for LogGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LogGuard").finish_non_exhaustive()
    }
}

/// Logs to standard error and to [`LOG_FILE`] in the data directory of `config`, rotated at
/// [`LOG_ROTATE_BYTES`] with [`LOG_FILES_KEPT`] old files kept, at `RUST_LOG`'s level if set,
/// else at the configured one. Logging lasts as long as the returned guard.
pub fn init_logging(config: &Config) -> Result<LogGuard, DaemonError> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| config.log_level.clone());
    let spec = LogSpecification::parse(&filter).unwrap_or_else(|err| {
        eprintln!("warning: log filter {filter:?}: {err}; logging at info");
        LogSpecification::info()
    });
    let file = FileSpec::default()
        .directory(&config.data_dir)
        .basename("lightfilter")
        .suffix("log")
        .suppress_timestamp();
    let path = file.as_pathbuf(None);
    debug_assert_eq!(path, config.data_dir.join(LOG_FILE));
    let handle = Logger::with(spec)
        .log_to_file(file)
        .append()
        .rotate(
            Criterion::Size(LOG_ROTATE_BYTES),
            // The current file keeps its plain name; rotated ones are named by time.
            Naming::TimestampsCustomFormat {
                current_infix: Some(""),
                format: "%Y-%m-%d_%H-%M-%S",
            },
            Cleanup::KeepLogFiles(LOG_FILES_KEPT),
        )
        .duplicate_to_stderr(Duplicate::All)
        .format(log_line)
        .start()
        .map_err(|err| DaemonError::Log {
            path,
            reason: err.to_string(),
        })?;
    Ok(LogGuard { _handle: handle })
}

/// `[time level target] message`, as env_logger writes it.
fn log_line(
    out: &mut dyn Write,
    now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(
        out,
        "[{} {:<5} {}] {}",
        now.now_utc_owned().format("%Y-%m-%dT%H:%M:%SZ"),
        record.level(),
        record.target(),
        record.args()
    )
}

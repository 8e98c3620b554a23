//! What a daemon that is the whole process does besides serving: its data directory and files
//! private to its owner, the open-file limit, Ctrl-C and SIGTERM, systemd's readiness
//! protocol, and the test fault hook of debug builds.

use std::path::Path;

use log::{info, warn};
use tokio::sync::watch;

use super::DaemonError;
use crate::config::Config;

/// Makes every file this process creates from now on its owner's only (the data directory
/// holds keys and payment preimages), and creates the data directory of `config` (and
/// missing parents) readable by its owner only, as the node would.
pub fn prepare_data_dir(config: &Config) -> Result<(), DaemonError> {
    #[cfg(unix)]
    crate::os::restrict_new_files();
    create_private_dir(&config.data_dir).map_err(|reason| DaemonError::DataDir {
        path: config.data_dir.clone(),
        reason,
    })
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// Raises the open-file limit to the hard limit, logging the outcome.
pub(super) fn raise_open_file_limit() {
    #[cfg(unix)]
    match crate::os::raise_open_file_limit() {
        Ok(limit) => info!(
            "open files limited to {} (hard limit {}); the control API holds at most {}",
            limit.soft,
            limit.hard,
            crate::api::MAX_CONNECTIONS
        ),
        Err(err) => warn!("cannot raise the open-file limit: {err}"),
    }
}

/// Tells systemd (`Type=notify`) that the daemon is ready: its control API answers. Does
/// nothing when not started by systemd.
pub(super) fn notify_ready() {
    #[cfg(unix)]
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!("cannot tell systemd the daemon is ready: {err}");
    }
}

/// Tells systemd the daemon is stopping.
pub(super) fn notify_stopping() {
    #[cfg(unix)]
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Injects the fault named by [`FAULT_VAR`](crate::tasks::fault::FAULT_VAR), if set: tests
/// use it to make one of the daemon's tasks panic or end while the daemon runs.
#[cfg(debug_assertions)]
pub(super) fn inject_test_fault() {
    use crate::tasks::fault;
    let Ok(description) = std::env::var(fault::FAULT_VAR) else {
        return;
    };
    match description.parse() {
        Ok(injected) => fault::inject(injected),
        Err(err) => warn!("{err}"),
    }
}

/// Listens for Ctrl-C (SIGINT) and SIGTERM from now on: the listeners are registered before
/// this returns, so a signal that arrives at any later moment (while the control API starts,
/// say) is not lost, nor does it kill the process. The receiver turns true on the first one.
pub(super) fn listen_for_termination() -> watch::Receiver<bool> {
    let (tx, rx) = watch::channel(false);
    #[cfg(unix)]
    {
        use tokio::signal::unix::{signal, SignalKind};
        let interrupt = signal(SignalKind::interrupt());
        let terminate = signal(SignalKind::terminate());
        tokio::spawn(async move {
            let wait = |stream: std::io::Result<tokio::signal::unix::Signal>,
                        name: &'static str| async move {
                match stream {
                    Ok(mut stream) => {
                        stream.recv().await;
                    }
                    Err(err) => {
                        warn!("cannot listen for {name}: {err}");
                        std::future::pending::<()>().await;
                    }
                }
            };
            tokio::select! {
                () = wait(interrupt, "Ctrl-C") => info!("interrupted"),
                () = wait(terminate, "SIGTERM") => info!("terminated"),
            }
            let _ = tx.send(true);
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        match tokio::signal::ctrl_c().await {
            Ok(()) => {
                info!("interrupted");
                let _ = tx.send(true);
            }
            Err(err) => warn!("cannot listen for Ctrl-C: {err}"),
        }
    });
    rx
}

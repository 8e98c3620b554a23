//! One node run as a daemon: its data directory opened, its control API served, the node
//! started, a stop awaited and everything shut down again. The `daemon` command runs one as
//! the whole process; the playground runs one per node.
//!
//! # Start
//!
//! 1. Open (and lock) the data directory: no second daemon can use it from here on.
//! 2. Serve the control API. From now on it answers `getinfo` with the sync's progress and
//!    takes a `stop`; every other method is refused with `not_synced` until the node runs.
//! 3. Tell systemd the daemon is ready (a [`Host::Process`] daemon under `Type=notify`).
//! 4. Start the node: chain sync first, then the wallet, the channel state and networking.
//!    A stop that arrives meanwhile abandons the start; what it wrote is durable, and the next
//!    start resumes from there.
//!
//! # Shutdown
//!
//! 1. Tell systemd the daemon is stopping.
//! 2. Ask the node to stop, so API requests waiting on it (such as a payment's outcome) end.
//! 3. Stop taking API requests, let those in flight finish, and remove `api.addr` and
//!    `api.cookie`.
//! 4. Stop the node: networking and background processing end, the channel manager, graph
//!    and scorer are persisted one last time, the wallet is flushed and the chain source
//!    stopped. A node that never finished starting has only its chain source to stop.

mod logging;
mod process;

use std::net::SocketAddr;
use std::sync::Arc;

use log::{info, warn};
use tokio::sync::watch;

use crate::api::{self, ApiError, ApiServer};
use crate::config::{network_name, Config};
use crate::node::{Node, NodeError, NodeHandle};
use crate::tasks::TaskFailure;

pub use logging::{init_logging, LogGuard, LOG_FILE, LOG_FILES_KEPT, LOG_ROTATE_BYTES};
pub use process::prepare_data_dir;

/// What runs a daemon, and so what besides its control API may stop it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Host {
    /// The daemon is the whole process: Ctrl-C and SIGTERM stop it, systemd (`Type=notify`)
    /// hears when it is ready and when it stops, its open-file limit is raised, and debug
    /// builds inject the fault named by [`FAULT_VAR`](crate::tasks::fault::FAULT_VAR).
    Process,
    /// One of several nodes in a process (the playground): only the API's `stop` and a failed
    /// task stop it; the process handles its own signals.
    Embedded,
}

/// Why a daemon stops.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Stop {
    /// Ctrl-C or SIGTERM ([`Host::Process`] only).
    Signal,
    /// A stop was requested through the control API or the node.
    Requested,
    /// One of the node's tasks failed (logged where it happened).
    Failed(TaskFailure),
}

/// Why a daemon could not start or stopped after a failure.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The data directory could not be created.
    #[error("cannot create the data directory {}: {reason}", path.display())]
    DataDir {
        /// The directory.
        path: std::path::PathBuf,
        /// The I/O error.
        reason: std::io::Error,
    },
    /// The log file could not be opened.
    #[error("cannot open the log file {}: {reason}", path.display())]
    Log {
        /// The file.
        path: std::path::PathBuf,
        /// What went wrong.
        reason: String,
    },
    /// The data directory could not be opened or the node could not start.
    #[error("cannot start the node: {0}")]
    Node(NodeError),
    /// The control API could not start.
    #[error("cannot start the control API: {0}")]
    Api(ApiError),
    /// The node stopped because one of its tasks failed.
    #[error("the node stopped after a failure: {0}")]
    Failed(TaskFailure),
}

/// A daemon whose control API answers: its node runs, or a stop came while it started.
pub struct Daemon {
    host: Host,
    handle: Arc<NodeHandle>,
    node: Option<Arc<Node>>,
    server: Option<ApiServer>,
    api_addr: SocketAddr,
    /// The stop that came while the node started.
    stopped_while_starting: Option<Stop>,
    /// Turns true on Ctrl-C or SIGTERM ([`Host::Process`] only).
    termination: Option<watch::Receiver<bool>>,
}

impl std::fmt::Debug for Daemon {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Daemon")
            .field("host", &self.host)
            .field("api_addr", &self.api_addr)
            .field("running", &self.node.is_some())
            .finish()
    }
}

impl Daemon {
    /// Starts a daemon on `config` in the order the [module](self) describes. Resolves once
    /// the node runs, or once a stop came while it started ([`Daemon::node`] is then `None`
    /// and [`Daemon::wait_for_stop`] returns at once). A failed start leaves nothing running.
    pub async fn start(config: Config, host: Host) -> Result<Daemon, DaemonError> {
        if host == Host::Process {
            info!(
                "lightfilter {} starting on {} in {} (log also in {})",
                env!("CARGO_PKG_VERSION"),
                network_name(config.network),
                config.data_dir.display(),
                config.data_dir.join(LOG_FILE).display()
            );
            process::raise_open_file_limit();
        }
        // Before anything else, so that no signal finds the process without its handlers.
        let termination = (host == Host::Process).then(process::listen_for_termination);
        let handle = NodeHandle::open(&config).map_err(DaemonError::Node)?;
        let server = api::serve(Arc::clone(&handle), config.api_listen, &config.data_dir)
            .await
            .map_err(DaemonError::Api)?;
        let api_addr = server.addr();
        info!("control API on {api_addr}; starting the node");
        if host == Host::Process {
            process::notify_ready();
        }
        let mut daemon = Daemon {
            host,
            handle: Arc::clone(&handle),
            node: None,
            server: Some(server),
            api_addr,
            stopped_while_starting: None,
            termination: termination.clone(),
        };
        let started = tokio::select! {
            started = Node::start_with(config, &handle) => started,
            stop = stop_while_starting(termination, &handle) => {
                daemon.stopped_while_starting = Some(stop);
                return Ok(daemon);
            }
        };
        match started {
            Ok(node) => {
                info!("node {} running", node.node_id());
                daemon.node = Some(node);
                #[cfg(debug_assertions)]
                if host == Host::Process {
                    process::inject_test_fault();
                }
                Ok(daemon)
            }
            Err(err) => {
                daemon.shut_down_api().await;
                Err(DaemonError::Node(err))
            }
        }
    }

    /// The node, once it runs (`None` when a stop came while it started).
    pub fn node(&self) -> Option<&Arc<Node>> {
        self.node.as_ref()
    }

    /// The address the control API listens on.
    pub fn api_addr(&self) -> SocketAddr {
        self.api_addr
    }

    /// Resolves when the daemon should stop: Ctrl-C or SIGTERM (a [`Host::Process`] daemon),
    /// a stop requested through the control API, or a failure of one of the node's tasks. At
    /// once if a stop came while the node started.
    pub async fn wait_for_stop(&self) -> Stop {
        if let Some(stop) = &self.stopped_while_starting {
            return stop.clone();
        }
        let Some(node) = &self.node else {
            return Stop::Requested;
        };
        tokio::select! {
            () = signal(self.termination.clone()) => Stop::Signal,
            () = node.stopped() => {
                info!("stop requested");
                Stop::Requested
            }
            failure = node.failed() => Stop::Failed(failure),
        }
    }

    /// Shuts the daemon down in the order the [module](self) describes. Fails with the
    /// failure that stopped the node, if one did.
    pub async fn shutdown(mut self) -> Result<(), DaemonError> {
        if self.host == Host::Process {
            process::notify_stopping();
        }
        let Some(node) = self.node.take() else {
            info!("stopping before the node finished starting");
            self.shut_down_api().await;
            if let Some(chain) = self.handle.chain() {
                chain.stop().await;
            }
            info!("stopped");
            return Ok(());
        };
        info!("stopping: no new API requests, then the node");
        node.request_stop();
        self.shut_down_api().await;
        node.stop().await;
        if let Some(failure) = node.failure() {
            return Err(DaemonError::Failed(failure));
        }
        info!("stopped");
        Ok(())
    }

    async fn shut_down_api(&mut self) {
        if let Some(server) = self.server.take() {
            if let Err(err) = server.shutdown().await {
                warn!("{err}");
            }
        }
    }
}

/// Resolves on a stop requested through the control API, or on Ctrl-C or SIGTERM for a
/// [`Host::Process`] daemon, while the node starts.
async fn stop_while_starting(
    termination: Option<watch::Receiver<bool>>,
    handle: &NodeHandle,
) -> Stop {
    tokio::select! {
        () = signal(termination) => Stop::Signal,
        () = handle.stop_requested() => {
            info!("stop requested");
            Stop::Requested
        }
    }
}

/// Ctrl-C or SIGTERM, once `termination` (a [`Host::Process`] daemon's) turns true; never
/// for an embedded daemon.
async fn signal(termination: Option<watch::Receiver<bool>>) {
    match termination {
        Some(mut termination) => {
            if termination.wait_for(|signalled| *signalled).await.is_err() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

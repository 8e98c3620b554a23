//! The node's onion service: inbound Lightning connections over Tor.
//!
//! Through Tor's control port (`--tor-control`), the node asks Tor for an onion service whose
//! port 9735 forwards to the Lightning listener. The service's key is kept in the data
//! directory (`onion_service_key`, owner-only, written durably before it is used), so the
//! address stays the same across restarts. Tor drops a service when the control connection
//! that added it closes: the connection stays open while the node runs, and when Tor goes
//! away (a restart) the service is added again once Tor is back.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use log::{info, warn};
use tokio::sync::watch;

use crate::node::NodeError;
use crate::tor_control::{TorControl, TorControlError};

/// The file in the data directory holding the onion service's key.
pub const ONION_KEY_FILE: &str = "onion_service_key";
/// The port the onion service offers (Lightning's usual one).
pub const ONION_PORT: u16 = 9735;
/// The longest pause between two attempts to add the service again after Tor went away.
const MAX_RETRY_PAUSE: Duration = Duration::from_secs(60);

/// Where Tor's control port is and how to authenticate to it.
#[derive(Debug, Clone)]
pub struct TorControlConfig {
    /// The control port.
    pub addr: SocketAddr,
    /// The control password; the cookie file Tor names is used without one.
    pub password: Option<String>,
}

/// The onion service Tor keeps for the node.
#[derive(Debug)]
pub struct OnionListener {
    /// `<56 characters>.onion:9735`.
    pub address: String,
    control: TorControl,
    config: TorControlConfig,
    key: String,
    target: SocketAddr,
}

/// Asks Tor for the node's onion service forwarding to `listen` (the Lightning listener's
/// bound address), with the key stored in `data_dir` or, the first time, a new one that is
/// stored before this returns.
pub async fn create(
    data_dir: &Path,
    config: TorControlConfig,
    listen: SocketAddr,
) -> Result<OnionListener, NodeError> {
    let key_path = data_dir.join(ONION_KEY_FILE);
    let stored = read_key(&key_path)?;
    let target = reachable(listen);
    let mut control = TorControl::connect(config.addr, config.password.as_deref()).await?;
    let service = control
        .add_onion(stored.as_deref(), ONION_PORT, target)
        .await?;
    let key = match (stored, service.new_key) {
        (Some(key), _) => key,
        (None, Some(key)) => {
            crate::node::stores::data_dir::write_durably(
                data_dir,
                ONION_KEY_FILE,
                format!("{key}\n").as_bytes(),
            )
            .map_err(|err| NodeError::storage("storing the onion service key", err))?;
            key
        }
        (None, None) => {
            return Err(TorControlError::Refused {
                addr: config.addr,
                command: "ADD_ONION",
                reply: "a new service without its key".into(),
            }
            .into())
        }
    };
    let address = format!("{}.onion:{ONION_PORT}", service.service_id);
    info!("onion service {address} forwards to {target}");
    Ok(OnionListener {
        address,
        control,
        config,
        key,
        target,
    })
}

impl OnionListener {
    /// Keeps the service up until `stop` turns true: when Tor closes the control connection,
    /// the service is added again (same key, same address) as soon as Tor answers.
    pub async fn keep(mut self, mut stop: watch::Receiver<bool>) {
        loop {
            tokio::select! {
                _ = self.control.closed() => {}
                _ = stop.changed() => {}
            }
            if *stop.borrow() {
                return;
            }
            warn!("Tor's control connection closed; adding the onion service again");
            let mut pause = Duration::from_secs(1);
            loop {
                tokio::select! {
                    _ = tokio::time::sleep(pause) => {}
                    _ = stop.changed() => {}
                }
                if *stop.borrow() {
                    return;
                }
                match self.add_again().await {
                    Ok(control) => {
                        self.control = control;
                        info!("onion service {} is back", self.address);
                        break;
                    }
                    Err(err) => {
                        warn!("onion service {}: {err}", self.address);
                        pause = (pause * 2).min(MAX_RETRY_PAUSE);
                    }
                }
            }
        }
    }

    async fn add_again(&self) -> Result<TorControl, TorControlError> {
        let mut control =
            TorControl::connect(self.config.addr, self.config.password.as_deref()).await?;
        control
            .add_onion(Some(&self.key), ONION_PORT, self.target)
            .await?;
        Ok(control)
    }
}

/// The stored key, if there is one.
fn read_key(path: &PathBuf) -> Result<Option<String>, NodeError> {
    match std::fs::read_to_string(path) {
        Ok(text) => Ok(Some(text.trim().to_string())),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(NodeError::storage("reading the onion service key", err)),
    }
}

/// Where Tor reaches a listener bound to `listen`: the loopback address for a wildcard one.
fn reachable(listen: SocketAddr) -> SocketAddr {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    SocketAddr::new(ip, listen.port())
}

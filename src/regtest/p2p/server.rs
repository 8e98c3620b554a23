//! Listening sockets (endpoints) and the bookkeeping of the sessions they accept.

use std::net::SocketAddr;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Duration;

use log::{debug, warn};
use tokio::net::{TcpListener, TcpStream};

use super::session;
use crate::regtest::error::RegtestError;
use crate::regtest::misbehaviour::Misbehaviour;
use crate::regtest::shared::{lock, SessionEntry, Shared};
use crate::regtest::Endpoint;

/// Binds `addr` and serves P2P on it with fresh misbehaviour switches.
pub async fn listen(shared: &Arc<Shared>, addr: SocketAddr) -> Result<Endpoint, RegtestError> {
    if lock(&shared.server).shut_down {
        return Err(RegtestError::ShutDown);
    }
    let listener = TcpListener::bind(addr)
        .await
        .map_err(|source| RegtestError::Bind { addr, source })?;
    let local = listener
        .local_addr()
        .map_err(|source| RegtestError::Bind { addr, source })?;
    let switches = Arc::new(Misbehaviour::default());
    let task = tokio::spawn(accept_loop(
        Arc::clone(shared),
        listener,
        Arc::clone(&switches),
    ));
    let mut server = lock(&shared.server);
    if server.shut_down {
        task.abort();
        return Err(RegtestError::ShutDown);
    }
    server.listeners.push(task.abort_handle());
    Ok(Endpoint {
        addr: local,
        switches,
    })
}

async fn accept_loop(shared: Arc<Shared>, listener: TcpListener, switches: Arc<Misbehaviour>) {
    loop {
        match listener.accept().await {
            Ok((stream, peer)) => {
                debug!("accepted a connection from {peer}");
                switches.counts().count_connection();
                spawn_session(&shared, &switches, stream, peer);
            }
            Err(error) => {
                warn!("accepting a connection failed: {error}");
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
    }
}

fn spawn_session(
    shared: &Arc<Shared>,
    switches: &Arc<Misbehaviour>,
    stream: TcpStream,
    peer: SocketAddr,
) {
    // The lock is held while spawning so the session cannot deregister before it registers.
    let mut server = lock(&shared.server);
    if server.shut_down {
        return;
    }
    let max = shared.limits.max_connections;
    if server.sessions.len() >= max {
        // Dropping the stream closes it. Logged once per run of refusals, not per connection.
        if !server.refusing {
            warn!("refusing connections: {max} are open already (first refused: {peer})");
        } else {
            debug!("refused a connection from {peer}: {max} are open already");
        }
        server.refusing = true;
        return;
    }
    server.refusing = false;
    let id = server.next_session;
    server.next_session += 1;
    let handshaken = Arc::new(AtomicBool::new(false));
    let task = tokio::spawn(session::run(
        Arc::clone(shared),
        Arc::clone(switches),
        stream,
        peer,
        id,
        Arc::clone(&handshaken),
    ));
    server.sessions.insert(
        id,
        SessionEntry {
            abort: task.abort_handle(),
            handshaken,
        },
    );
}

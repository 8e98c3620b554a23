//! The HTTP/1.1 server: accepts connections on the listen address (at most
//! [`MAX_CONNECTIONS`] at once; idle ones give way to newcomers), closes those that send
//! nothing or no complete header within [`HEADER_READ_TIMEOUT`], checks the token before
//! anything else, limits bodies, hands requests to the method handlers and answers JSON. On
//! shutdown it stops accepting, lets requests in flight finish (for a while), and removes the
//! address and cookie files.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::hex::{DisplayHex, FromHex};
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Body;
use hyper::body::{Bytes, Incoming};
use hyper::header::{HeaderValue, ALLOW, CONTENT_TYPE};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Method as HttpMethod, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use log::{debug, info, warn};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{watch, Semaphore};
use tokio::task::{JoinHandle, JoinSet};

use super::admission::{Activity, Admission, Ticket, ADMISSION_WAIT, MAX_CONNECTIONS};
use super::auth::{
    authorize, check_not_from_a_browser, remove_files, write_addr, write_cookie, ApiToken,
    PROVE_PATH,
};
use super::error::{ApiError, RequestError};
use super::handlers::dispatch;
use super::refusals::{clip, RefusalLimiter, Verdict, LOGGED_PER_WINDOW, WINDOW};
use super::types::{ErrorBody, ProveRequest, ProveResponse, Stop};
use super::Method;
use crate::node::NodeHandle;

/// The largest request body accepted; real requests are far smaller.
pub const MAX_BODY_BYTES: usize = 64 * 1024;

/// How long a connection may take to send a request's header, counted from its opening or
/// from the previous answer on it: the CLI sends at once, so this is also how long an idle
/// connection is kept.
pub const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a request's body may take to arrive once its header has.
pub const BODY_READ_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest proof request accepted.
const PROVE_BODY_BYTES: usize = 1024;

/// How long a proof request's body may take to arrive once its header has: a client sends its
/// 64-digit nonce at once.
const PROVE_BODY_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Accepted connections waiting for a place at once (see [`Admission`]); more are closed at
/// once, so that waiting connections cannot take the descriptors the node needs either.
const MAX_WAITING: usize = 64;

/// How long requests in flight may run on after shutdown begins.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(10);

struct ServerState {
    node: Arc<NodeHandle>,
    /// The address the server is bound to, which proofs cover.
    addr: SocketAddr,
    token: ApiToken,
    stopping: AtomicBool,
    refusals: RefusalLimiter,
}

/// A running control API server. Call [`ApiServer::shutdown`] to stop it and remove its files.
pub struct ApiServer {
    addr: SocketAddr,
    data_dir: PathBuf,
    state: Arc<ServerState>,
    shutdown: watch::Sender<bool>,
    task: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for ApiServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ApiServer")
            .field("addr", &self.addr)
            .field("data_dir", &self.data_dir)
            .finish()
    }
}

/// Serves the control API for the node behind `node` (which may still be starting) on `listen` (port 0 picks a free port), writing a fresh
/// token to `<data_dir>/api.cookie` (mode 0600) and the bound address to
/// `<data_dir>/api.addr`. Warns when `listen` is not a loopback address.
pub async fn serve(
    node: Arc<NodeHandle>,
    listen: SocketAddr,
    data_dir: &Path,
) -> Result<ApiServer, ApiError> {
    if !listen.ip().is_loopback() {
        warn!(
            "THE CONTROL API LISTENS ON {listen}, NOT ONLY ON THIS MACHINE: anyone who can reach \
             it and obtains the token can spend this node's funds; the API has no TLS, so the \
             token crosses the network in clear text. Prefer 127.0.0.1 and an SSH tunnel."
        );
    }
    let listener = TcpListener::bind(listen)
        .await
        .map_err(|source| ApiError::Bind {
            addr: listen,
            source,
        })?;
    let addr = listener.local_addr().map_err(|source| ApiError::Bind {
        addr: listen,
        source,
    })?;
    let token = ApiToken::generate();
    write_cookie(data_dir, &token)?;
    write_addr(data_dir, addr)?;
    let state = Arc::new(ServerState {
        node,
        addr,
        token,
        stopping: AtomicBool::new(false),
        refusals: RefusalLimiter::default(),
    });
    let (shutdown, shutdown_rx) = watch::channel(false);
    let task = tokio::spawn(accept_loop(listener, Arc::clone(&state), shutdown_rx));
    info!("control API listening on http://{addr}/v1/");
    Ok(ApiServer {
        addr,
        data_dir: data_dir.to_path_buf(),
        state,
        shutdown,
        task: Some(task),
    })
}

impl ApiServer {
    /// The address the server is bound to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting requests, waits (up to a grace period) for requests in flight, and
    /// removes `api.addr` and `api.cookie`.
    pub async fn shutdown(mut self) -> Result<(), ApiError> {
        self.state.stopping.store(true, Ordering::SeqCst);
        let _ = self.shutdown.send(true);
        if let Some(task) = self.task.take() {
            if let Err(err) = task.await {
                warn!("the control API task ended abnormally: {err}");
            }
        }
        remove_files(&self.data_dir)?;
        info!("control API stopped");
        Ok(())
    }
}

impl Drop for ApiServer {
    fn drop(&mut self) {
        if self.task.is_some() {
            self.state.stopping.store(true, Ordering::SeqCst);
            let _ = self.shutdown.send(true);
            if let Err(err) = remove_files(&self.data_dir) {
                warn!("{err}");
            }
        }
    }
}

async fn accept_loop(
    listener: TcpListener,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut connections = JoinSet::new();
    let admission = Admission::new(MAX_CONNECTIONS, ADMISSION_WAIT);
    let waiting = Arc::new(Semaphore::new(MAX_WAITING));
    loop {
        tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    debug!("control API connection from {peer}");
                    // The accept loop never waits for a place: a connection waits on its own,
                    // and only so many at once.
                    let Ok(waiter) = Arc::clone(&waiting).try_acquire_owned() else {
                        debug!(
                            "control API connection from {peer} closed: {MAX_WAITING} \
                             connections already wait for a place"
                        );
                        continue;
                    };
                    let admission = Arc::clone(&admission);
                    let state = Arc::clone(&state);
                    let shutdown = shutdown.clone();
                    connections.spawn(async move {
                        let ticket = admission.admit().await;
                        drop(waiter);
                        let Some(ticket) = ticket else {
                            debug!(
                                "control API connection from {peer} closed: all \
                                 {MAX_CONNECTIONS} places are answering requests"
                            );
                            return;
                        };
                        serve_connection(stream, ticket, state, shutdown).await;
                    });
                }
                Err(err) => {
                    warn!("control API could not accept a connection: {err}");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            _ = shutdown.changed() => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
    drop(listener);
    let drain = async { while connections.join_next().await.is_some() {} };
    if tokio::time::timeout(SHUTDOWN_GRACE, drain).await.is_err() {
        warn!(
            "control API requests still running after {} s are cut off",
            SHUTDOWN_GRACE.as_secs()
        );
        connections.abort_all();
    }
}

async fn serve_connection(
    stream: TcpStream,
    ticket: Ticket,
    state: Arc<ServerState>,
    mut shutdown: watch::Receiver<bool>,
) {
    let activity = ticket.activity();
    let service = service_fn(move |request| {
        let state = Arc::clone(&state);
        let activity = Arc::clone(&activity);
        async move { Ok::<_, Infallible>(handle(state, request, activity).await) }
    });
    let connection = http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT)
        .serve_connection(TokioIo::new(stream), service);
    tokio::pin!(connection);
    tokio::select! {
        result = connection.as_mut() => {
            if let Err(err) = result {
                debug!("control API connection ended: {err}");
            }
        }
        _ = ticket.closed() => {
            debug!("control API: an idle connection closed to admit a new one");
        }
        _ = shutdown.changed() => {
            connection.as_mut().graceful_shutdown();
            if let Err(err) = connection.await {
                debug!("control API connection ended: {err}");
            }
        }
    }
}

async fn handle(
    state: Arc<ServerState>,
    request: Request<Incoming>,
    activity: Arc<Activity>,
) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_string();
    match answer(&state, request, &activity).await {
        Ok(body) => {
            debug!("control API {path}: ok");
            json_response(StatusCode::OK, body)
        }
        Err(err) => {
            // Proof requests come without the token: their refusals are limited like those.
            let authenticated = path != PROVE_PATH
                && !matches!(err, RequestError::Unauthorized | RequestError::Forbidden(_));
            log_refusal(&state, &path, &err, authenticated);
            let mut response = json_response(
                err.status(),
                serde_json::to_vec(&ErrorBody {
                    error: err.detail(),
                })
                .unwrap_or_default(),
            );
            if matches!(err, RequestError::MethodNotAllowed) {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
            }
            response
        }
    }
}

/// Answers one request. Only a request with the token, once its body has arrived, counts as
/// being answered (see [`Admission`]): until then its connection may be closed for a newcomer.
async fn answer(
    state: &ServerState,
    request: Request<Incoming>,
    activity: &Arc<Activity>,
) -> Result<Vec<u8>, RequestError> {
    // A web page can make a browser send requests here: none are taken, whatever they carry.
    check_not_from_a_browser(request.headers())?;
    if request.uri().path() == PROVE_PATH {
        return prove(state, request).await;
    }
    // Apart from the proof, nothing is looked at, not even the route, before the token is
    // checked.
    authorize(request.headers(), &state.token)?;
    if state.stopping.load(Ordering::SeqCst) {
        return Err(RequestError::Stopping);
    }
    let name = request
        .uri()
        .path()
        .strip_prefix("/v1/")
        .filter(|name| !name.is_empty() && !name.contains('/'))
        .ok_or_else(|| RequestError::UnknownMethod(request.uri().path().to_string()))?
        .to_string();
    if request.method() != HttpMethod::POST {
        return Err(RequestError::MethodNotAllowed);
    }
    let body = read_body(request, MAX_BODY_BYTES, BODY_READ_TIMEOUT).await?;
    let _serving = activity.serving();
    let result = dispatch(Arc::clone(&state.node), &name, &body).await;
    if name == Stop::NAME && result.is_ok() {
        state.stopping.store(true, Ordering::SeqCst);
    }
    result
}

/// Reads a request's body, of at most `limit` bytes, within `timeout`.
async fn read_body(
    request: Request<Incoming>,
    limit: usize,
    timeout: Duration,
) -> Result<Bytes, RequestError> {
    if request.body().size_hint().lower() > limit as u64 {
        // Refused on the declared length, before reading any of it.
        return Err(RequestError::PayloadTooLarge(limit));
    }
    let body = tokio::time::timeout(timeout, Limited::new(request.into_body(), limit).collect())
        .await
        .map_err(|_| {
            RequestError::BadRequest(format!(
                "the body did not arrive within {} s",
                timeout.as_secs()
            ))
        })?
        .map_err(|err| {
            if err.downcast_ref::<LengthLimitError>().is_some() {
                RequestError::PayloadTooLarge(limit)
            } else {
                RequestError::BadRequest(format!("could not read the body: {err}"))
            }
        })?
        .to_bytes();
    Ok(body)
}

/// Answers a [`ProveRequest`] with the token's proof for the client's nonce.
async fn prove(state: &ServerState, request: Request<Incoming>) -> Result<Vec<u8>, RequestError> {
    if request.method() != HttpMethod::POST {
        return Err(RequestError::MethodNotAllowed);
    }
    let body = read_body(request, PROVE_BODY_BYTES, PROVE_BODY_READ_TIMEOUT).await?;
    let prove: ProveRequest = serde_json::from_slice(&body)
        .map_err(|err| RequestError::BadRequest(format!("not a proof request: {err}")))?;
    let nonce = Vec::<u8>::from_hex(&prove.nonce)
        .ok()
        .filter(|nonce| nonce.len() == 32)
        .ok_or_else(|| RequestError::BadRequest("the nonce is not 64 hex digits".into()))?;
    let proof = state.token.prove(&nonce, state.addr).to_lower_hex_string();
    serde_json::to_vec(&ProveResponse { proof })
        .map_err(|err| RequestError::Internal(format!("cannot encode the proof: {err}")))
}

/// Logs a refused request: its path cut short and the error's code, never its message, which
/// may quote the request's input (a preimage, say); of those refused for their token only the
/// first few per window (see [`refusals`](super::refusals)).
fn log_refusal(state: &ServerState, path: &str, err: &RequestError, authenticated: bool) {
    if authenticated {
        info!("control API {}: refused ({})", clip(path), err.code());
        return;
    }
    if let Verdict::Log { unlogged } = state.refusals.note(Instant::now()) {
        if unlogged > 0 {
            info!(
                "control API: {unlogged} more requests without the right token were refused \
                 in the previous {} s (logged only the first {LOGGED_PER_WINDOW})",
                WINDOW.as_secs()
            );
        }
        info!(
            "control API {}: refused, a request without the right token ({})",
            clip(path),
            err.code()
        );
    }
}

fn json_response(status: StatusCode, body: Vec<u8>) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

//! The client the CLI uses: finds the daemon through `api.addr` and `api.cookie` in the data
//! directory, and calls typed methods over plain HTTP/1.1 on a fresh local connection each.
//!
//! A client found through the data directory first has the daemon prove, on the same
//! connection, that it holds the token (an HMAC of a fresh random nonce, see
//! [`ProveRequest`](super::types::ProveRequest)), and sends the token only then: an
//! `api.addr` left by a daemon that crashed may name a port another local program now listens
//! on, which must get neither the token nor a chance to answer the CLI.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use bitcoin::hex::{DisplayHex, FromHex};
use bitcoin::secp256k1::rand::{thread_rng, RngCore};
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Bytes;
use hyper::client::conn::http1::SendRequest;
use hyper::header::{AUTHORIZATION, CONTENT_TYPE, HOST};
use hyper::{Request, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

use super::auth::{read_discovery, ApiToken, COOKIE_FILE, PROVE_PATH};
use super::error::ClientError;
use super::render;
use super::types::{
    ChannelEntry, Channels, Empty, ErrorBody, GetInfo, InfoResponse, Method, ProveRequest,
    ProveResponse,
};

/// How long to wait for the daemon to accept a connection.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The largest proof answer read.
const MAX_PROOF_BYTES: usize = 4096;

/// How often [`Client::wait_synced`] asks for the sync's progress.
const SYNC_POLL: Duration = Duration::from_secs(1);

/// How often [`Client::wait_channel_ready`] asks for the channel's state.
const CHANNEL_POLL: Duration = Duration::from_secs(2);

/// How long a call may take unless told otherwise.
pub const DEFAULT_CALL_TIMEOUT: Duration = Duration::from_secs(120);

/// A client of one daemon's control API.
#[derive(Debug, Clone)]
pub struct Client {
    addr: SocketAddr,
    token: ApiToken,
    data_dir: Option<PathBuf>,
    timeout: Duration,
}

impl Client {
    /// A client for the daemon running on `data_dir`, found through its `api.addr` and
    /// `api.cookie`; every call first has the daemon prove it holds the token.
    pub fn from_data_dir(data_dir: &Path) -> Result<Client, ClientError> {
        let (addr, token) = read_discovery(data_dir)?;
        Ok(Client {
            addr,
            token,
            data_dir: Some(data_dir.to_path_buf()),
            timeout: DEFAULT_CALL_TIMEOUT,
        })
    }

    /// A client for the API at `addr` using `token`, trusting the caller that `addr` is the
    /// daemon (no proof is asked for).
    pub fn new(addr: SocketAddr, token: &str) -> Client {
        Client {
            addr,
            token: ApiToken::from_text(token),
            data_dir: None,
            timeout: DEFAULT_CALL_TIMEOUT,
        }
    }

    /// The daemon's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// This client with calls limited to `timeout`.
    pub fn with_timeout(mut self, timeout: Duration) -> Client {
        self.timeout = timeout;
        self
    }

    /// Calls method `M` with `request`.
    pub async fn call<M: Method>(&self, request: &M::Request) -> Result<M::Response, ClientError> {
        let body = serde_json::to_vec(request).map_err(|err| ClientError::InvalidResponse {
            status: 0,
            reason: format!("cannot encode the request: {err}"),
        })?;
        let (status, bytes) = self.post(&format!("/v1/{}", M::NAME), body).await?;
        if status.is_success() {
            return serde_json::from_slice(&bytes).map_err(|err| ClientError::InvalidResponse {
                status: status.as_u16(),
                reason: err.to_string(),
            });
        }
        Err(self.error_from(status, &bytes))
    }

    /// Polls `getinfo` until the node is synced and returns that answer, calling `progress`
    /// with every answer before it. Gives up with [`ClientError::NotSynced`] after `timeout`,
    /// if one is given.
    pub async fn wait_synced(
        &self,
        timeout: Option<Duration>,
        mut progress: impl FnMut(&InfoResponse),
    ) -> Result<InfoResponse, ClientError> {
        let deadline = timeout.map(|timeout| Instant::now() + timeout);
        loop {
            let info = self.call::<GetInfo>(&Empty {}).await?;
            if info.synced {
                return Ok(info);
            }
            progress(&info);
            if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
                return Err(ClientError::NotSynced {
                    secs: timeout.unwrap_or_default().as_secs(),
                    status: render::sync_status(&info),
                });
            }
            tokio::time::sleep(SYNC_POLL).await;
        }
    }

    /// Polls `channels` until the channel `channel_id` is ready and returns it, calling
    /// `progress` with the channel as listed before. Gives up with
    /// [`ClientError::ChannelNotReady`] after `timeout`, and with [`ClientError::ChannelGone`]
    /// when the channel is no longer listed (the peer refused it).
    pub async fn wait_channel_ready(
        &self,
        channel_id: &str,
        timeout: Duration,
        mut progress: impl FnMut(&ChannelEntry),
    ) -> Result<ChannelEntry, ClientError> {
        let deadline = Instant::now() + timeout;
        loop {
            let channel = self
                .call::<Channels>(&Empty {})
                .await?
                .into_iter()
                .find(|channel| channel.channel_id == channel_id)
                .ok_or_else(|| ClientError::ChannelGone {
                    channel_id: channel_id.to_string(),
                })?;
            if channel.ready {
                return Ok(channel);
            }
            progress(&channel);
            if Instant::now() >= deadline {
                return Err(ClientError::ChannelNotReady {
                    channel_id: channel_id.to_string(),
                    secs: timeout.as_secs(),
                    status: render::channel_waiting(channel.confirmations),
                });
            }
            tokio::time::sleep(CHANNEL_POLL).await;
        }
    }

    /// Sends `body` to `path` with the token; returns the status and body as they came. For
    /// scripts and tests that speak to the API without the typed methods.
    pub async fn post(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        match tokio::time::timeout(self.timeout, self.exchange(path, body)).await {
            Ok(result) => result,
            Err(_) => Err(ClientError::Timeout {
                addr: self.addr,
                secs: self.timeout.as_secs(),
            }),
        }
    }

    async fn exchange(
        &self,
        path: &str,
        body: Vec<u8>,
    ) -> Result<(StatusCode, Bytes), ClientError> {
        let stream =
            match tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(self.addr)).await {
                Err(_) => {
                    return Err(ClientError::Timeout {
                        addr: self.addr,
                        secs: CONNECT_TIMEOUT.as_secs(),
                    })
                }
                Ok(Err(err)) => return Err(self.connect_error(err)),
                Ok(Ok(stream)) => stream,
            };
        let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|err| self.broken(err))?;
        let driver = tokio::spawn(connection);
        if let Some(data_dir) = &self.data_dir {
            if let Err(err) = self.verify(&mut sender, data_dir).await {
                driver.abort();
                return Err(err);
            }
        }
        let request = Request::post(path)
            .header(HOST, self.addr.to_string())
            .header(AUTHORIZATION, format!("Bearer {}", self.token.as_str()))
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| ClientError::InvalidResponse {
                status: 0,
                reason: format!("cannot build the request: {err}"),
            })?;
        let result = async {
            let response = sender
                .send_request(request)
                .await
                .map_err(|err| self.broken(err))?;
            let status = response.status();
            let bytes = response
                .into_body()
                .collect()
                .await
                .map_err(|err| self.broken(err))?
                .to_bytes();
            Ok((status, bytes))
        }
        .await;
        driver.abort();
        result
    }

    /// Has the other end of `sender` prove that it holds the token, without sending it.
    async fn verify(
        &self,
        sender: &mut SendRequest<Full<Bytes>>,
        data_dir: &Path,
    ) -> Result<(), ClientError> {
        let unverified = |reason: String| ClientError::Unverified {
            addr: self.addr,
            data_dir: data_dir.to_path_buf(),
            reason,
        };
        let mut nonce = [0u8; 32];
        thread_rng().fill_bytes(&mut nonce);
        let body = serde_json::to_vec(&ProveRequest {
            nonce: nonce.to_lower_hex_string(),
        })
        .map_err(|err| unverified(format!("cannot encode the proof request: {err}")))?;
        let request = Request::post(PROVE_PATH)
            .header(HOST, self.addr.to_string())
            .header(CONTENT_TYPE, "application/json")
            .body(Full::new(Bytes::from(body)))
            .map_err(|err| unverified(format!("cannot build the proof request: {err}")))?;
        let response = sender
            .send_request(request)
            .await
            .map_err(|err| unverified(format!("the proof request failed: {err}")))?;
        let status = response.status();
        let bytes = Limited::new(response.into_body(), MAX_PROOF_BYTES)
            .collect()
            .await
            .map_err(|err| unverified(format!("cannot read its proof: {err}")))?
            .to_bytes();
        if !status.is_success() {
            return Err(unverified(format!(
                "it answered the proof request with HTTP {}",
                status.as_u16()
            )));
        }
        let proof = serde_json::from_slice::<ProveResponse>(&bytes)
            .ok()
            .and_then(|answer| Vec::<u8>::from_hex(&answer.proof).ok())
            .ok_or_else(|| unverified("its answer holds no proof".into()))?;
        if !self.token.check_proof(&nonce, self.addr, &proof) {
            return Err(unverified(format!(
                "its proof does not match the token in {} for a daemon listening on {}",
                data_dir.join(COOKIE_FILE).display(),
                self.addr
            )));
        }
        sender
            .ready()
            .await
            .map_err(|err| unverified(format!("the connection closed after the proof: {err}")))
    }

    fn connect_error(&self, err: std::io::Error) -> ClientError {
        match (&self.data_dir, err.kind()) {
            (Some(data_dir), std::io::ErrorKind::ConnectionRefused) => ClientError::NotRunning {
                data_dir: data_dir.clone(),
                reason: format!(
                    "nothing answers on {} named in its api.addr; a daemon that did not stop \
                     cleanly leaves that file behind",
                    self.addr
                ),
            },
            _ => ClientError::Connection {
                addr: self.addr,
                reason: err.to_string(),
            },
        }
    }

    fn broken(&self, err: impl std::fmt::Display) -> ClientError {
        ClientError::Connection {
            addr: self.addr,
            reason: err.to_string(),
        }
    }

    fn error_from(&self, status: StatusCode, bytes: &[u8]) -> ClientError {
        if status == StatusCode::UNAUTHORIZED {
            return ClientError::Unauthorized {
                addr: self.addr,
                cookie: match &self.data_dir {
                    Some(dir) => dir.join(COOKIE_FILE),
                    None => PathBuf::from("the given token"),
                },
            };
        }
        match serde_json::from_slice::<ErrorBody>(bytes) {
            Ok(body) => ClientError::Api {
                status: status.as_u16(),
                code: body.error.code,
                message: body.error.message,
            },
            Err(err) => ClientError::InvalidResponse {
                status: status.as_u16(),
                reason: format!("no error body ({err})"),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::{Empty, GetInfo};

    #[tokio::test]
    async fn a_refused_connection_reads_as_daemon_not_running() {
        let dir = tempfile::tempdir().unwrap();
        // Bind and drop a listener so its port is very likely closed.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        crate::api::auth::write_addr(dir.path(), port).unwrap();
        crate::api::auth::write_cookie(dir.path(), &ApiToken::generate()).unwrap();
        let client = Client::from_data_dir(dir.path()).unwrap();
        let err = client.call::<GetInfo>(&Empty {}).await.unwrap_err();
        assert_eq!(err.code(), "daemon_not_running", "{err}");
        assert!(err.to_string().contains("lightfilter daemon"), "{err}");
    }
}

//! Errors of the control API: starting the server, answering a request, and calling it.

use std::net::SocketAddr;
use std::path::PathBuf;

use hyper::StatusCode;

use super::parse::ParseError;
use super::types::ErrorDetail;
use crate::node::NodeError;

/// Why the API server could not start or stop cleanly.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The listen address could not be bound.
    #[error("cannot listen for the control API on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The cookie or address file could not be written or removed.
    #[error("cannot {action} {}: {source}", path.display())]
    File {
        /// What was being done ("write", "remove").
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Why one request was refused or failed; sent as `{"error": {"code", "message"}}`.
#[derive(Debug, thiserror::Error)]
pub enum RequestError {
    /// The node refused or failed.
    #[error(transparent)]
    Node(#[from] NodeError),
    /// An argument is not well formed.
    #[error(transparent)]
    Parse(#[from] ParseError),
    /// The body is not the JSON this method takes.
    #[error("invalid request body: {0}")]
    BadRequest(String),
    /// No or wrong token.
    #[error("missing or wrong API token: send `Authorization: Bearer <token>` with the token from the data directory's api.cookie")]
    Unauthorized,
    /// The request looks like one a web page made a browser send (see
    /// `auth::check_not_from_a_browser`).
    #[error("refused: {0}; the control API takes no requests from web pages")]
    Forbidden(String),
    /// No such method.
    #[error("no API method {0:?}; methods are POST /v1/<name>")]
    UnknownMethod(String),
    /// Methods are called with POST.
    #[error("use POST for API methods")]
    MethodNotAllowed,
    /// The body is larger than any request needs.
    #[error("request body larger than {0} bytes")]
    PayloadTooLarge(usize),
    /// The daemon is shutting down.
    #[error("the daemon is stopping")]
    Stopping,
    /// Something broke inside the server.
    #[error("internal error: {0}")]
    Internal(String),
}

impl RequestError {
    /// The stable error code.
    pub fn code(&self) -> &'static str {
        match self {
            RequestError::Node(err) => err.code(),
            RequestError::Parse(_) => "invalid_input",
            RequestError::BadRequest(_) => "invalid_request",
            RequestError::Unauthorized => "unauthorized",
            RequestError::Forbidden(_) => "forbidden",
            RequestError::UnknownMethod(_) => "unknown_method",
            RequestError::MethodNotAllowed => "method_not_allowed",
            RequestError::PayloadTooLarge(_) => "payload_too_large",
            RequestError::Stopping => "stopping",
            RequestError::Internal(_) => "internal_error",
        }
    }

    /// The HTTP status it is sent with.
    pub fn status(&self) -> StatusCode {
        match self {
            RequestError::Node(err) => node_status(err.code()),
            RequestError::Parse(_) | RequestError::BadRequest(_) => StatusCode::BAD_REQUEST,
            RequestError::Unauthorized => StatusCode::UNAUTHORIZED,
            RequestError::Forbidden(_) => StatusCode::FORBIDDEN,
            RequestError::UnknownMethod(_) => StatusCode::NOT_FOUND,
            RequestError::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            RequestError::PayloadTooLarge(_) => StatusCode::PAYLOAD_TOO_LARGE,
            RequestError::Stopping => StatusCode::SERVICE_UNAVAILABLE,
            RequestError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    /// The error body's detail.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

/// The HTTP status for a node error code.
fn node_status(code: &str) -> StatusCode {
    match code {
        "invalid_input" | "wrong_network" | "invalid_address" | "dust_amount"
        | "invalid_fee_rate" | "fee_bump_too_low" => StatusCode::BAD_REQUEST,
        "unknown_channel" | "unknown_peer" | "unknown_transaction" => StatusCode::NOT_FOUND,
        "duplicate_payment" => StatusCode::CONFLICT,
        "insufficient_funds"
        | "channel_error"
        | "channel_held"
        | "payment_failed"
        | "fee_below_peer_minimum"
        | "reserve_required"
        | "cannot_bump" => StatusCode::UNPROCESSABLE_ENTITY,
        "peer_unreachable" => StatusCode::BAD_GATEWAY,
        "not_ready" | "wallet_stopped" => StatusCode::SERVICE_UNAVAILABLE,
        _ => StatusCode::INTERNAL_SERVER_ERROR,
    }
}

/// Why a call through [`Client`](super::Client) failed.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon answers for this data directory.
    #[error("no lightfilter daemon is running on {} ({reason}); start one with `lightfilter --datadir {} daemon`", data_dir.display(), data_dir.display())]
    NotRunning {
        /// The data directory.
        data_dir: PathBuf,
        /// What showed it.
        reason: String,
    },
    /// The cookie file exists but cannot be read.
    #[error("cannot read the API token in {}: {source} (run as the user the daemon runs as)", path.display())]
    Cookie {
        /// The cookie file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The daemon refused the token.
    #[error("the daemon at {addr} refused the API token (HTTP 401): the token in {} does not match it", cookie.display())]
    Unauthorized {
        /// The daemon's address.
        addr: SocketAddr,
        /// The cookie file the token came from.
        cookie: PathBuf,
    },
    /// What answers on the address in `api.addr` did not prove it holds the token in
    /// `api.cookie`, so it is not this data directory's daemon; the token was not sent.
    #[error("what answers on {addr}, named in {}, did not prove it is this data directory's daemon ({reason}); the API token was not sent to it. A daemon that did not stop cleanly leaves api.addr behind, and another program may now use that port: start the daemon again (`lightfilter --datadir {} daemon`)", data_dir.join(super::ADDR_FILE).display(), data_dir.display())]
    Unverified {
        /// The address from `api.addr`.
        addr: SocketAddr,
        /// The data directory.
        data_dir: PathBuf,
        /// What was wrong with the answer.
        reason: String,
    },
    /// The daemon answered with an error.
    #[error("{message}")]
    Api {
        /// The HTTP status.
        status: u16,
        /// The stable error code.
        code: String,
        /// The daemon's message.
        message: String,
    },
    /// The connection broke.
    #[error("lost the connection to the daemon at {addr}: {reason}")]
    Connection {
        /// The daemon's address.
        addr: SocketAddr,
        /// What happened.
        reason: String,
    },
    /// No answer in time.
    #[error("the daemon at {addr} did not answer within {secs} s")]
    Timeout {
        /// The daemon's address.
        addr: SocketAddr,
        /// How long the client waited.
        secs: u64,
    },
    /// The answer was not what the method returns.
    #[error("unexpected answer from the daemon (HTTP {status}): {reason}")]
    InvalidResponse {
        /// The HTTP status.
        status: u16,
        /// What was wrong.
        reason: String,
    },
    /// [`Client::wait_synced`](super::Client::wait_synced) gave up.
    #[error("not synced after {secs} s: {status}")]
    NotSynced {
        /// How long it waited.
        secs: u64,
        /// The sync's progress when it gave up.
        status: String,
    },
    /// [`Client::wait_channel_ready`](super::Client::wait_channel_ready) gave up.
    #[error("channel {channel_id} not ready after {secs} s: {status}")]
    ChannelNotReady {
        /// The channel.
        channel_id: String,
        /// How long it waited.
        secs: u64,
        /// What the channel waited for when it gave up.
        status: String,
    },
    /// The channel waited for is no longer listed.
    #[error("channel {channel_id} disappeared while opening (the peer may have refused it; see the daemon's log)")]
    ChannelGone {
        /// The channel.
        channel_id: String,
    },
}

impl ClientError {
    /// A stable code, the daemon's for [`ClientError::Api`].
    pub fn code(&self) -> &str {
        match self {
            ClientError::NotRunning { .. } => "daemon_not_running",
            ClientError::Cookie { .. } => "cookie_unreadable",
            ClientError::Unauthorized { .. } => "unauthorized",
            ClientError::Unverified { .. } => "daemon_not_verified",
            ClientError::Api { code, .. } => code,
            ClientError::Connection { .. } => "connection_failed",
            ClientError::Timeout { .. } => "timeout",
            ClientError::InvalidResponse { .. } => "invalid_response",
            ClientError::NotSynced { .. } | ClientError::ChannelNotReady { .. } => "timeout",
            ClientError::ChannelGone { .. } => "unknown_channel",
        }
    }

    /// The error as an error body's detail.
    pub fn detail(&self) -> ErrorDetail {
        ErrorDetail {
            code: self.code().to_string(),
            message: self.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_errors_keep_their_code_and_get_a_fitting_status() {
        let cases = [
            (
                NodeError::UnknownChannel("ab".into()),
                StatusCode::NOT_FOUND,
            ),
            (
                NodeError::invalid("invoice", "bad checksum"),
                StatusCode::BAD_REQUEST,
            ),
            (
                NodeError::WrongNetwork {
                    what: "invoice",
                    found: "bitcoin".into(),
                    expected: "regtest".into(),
                },
                StatusCode::BAD_REQUEST,
            ),
            (
                NodeError::PeerUnreachable {
                    address: "127.0.0.1:1".into(),
                    reason: "refused".into(),
                },
                StatusCode::BAD_GATEWAY,
            ),
            (
                NodeError::NotReady("syncing".into()),
                StatusCode::SERVICE_UNAVAILABLE,
            ),
            (
                NodeError::DuplicatePayment("ab".into()),
                StatusCode::CONFLICT,
            ),
        ];
        for (err, status) in cases {
            let code = err.code();
            let request_error = RequestError::from(err);
            assert_eq!(request_error.code(), code);
            assert_eq!(request_error.status(), status, "{code}");
        }
    }

    #[test]
    fn unauthorized_is_401_with_a_stable_code() {
        let err = RequestError::Unauthorized;
        assert_eq!(err.status(), StatusCode::UNAUTHORIZED);
        assert_eq!(err.detail().code, "unauthorized");
        assert!(err.detail().message.contains("api.cookie"));
    }
}

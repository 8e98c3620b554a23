//! The control API: JSON over HTTP/1.1, served by the daemon for the `lightfilter` CLI and
//! for scripts.
//!
//! # Protocol
//!
//! Every operation is `POST /v1/<method>` with a JSON object body (`{}` or an empty body when
//! the method takes no arguments) and answers with JSON. Method names are the CLI command
//! names: `getinfo`, `newaddress`, `balance`, `send`, `utxos`, `connect`, `disconnect`,
//! `peers`, `openchannel`, `closechannel`, `channels`, `invoice`, `pay`, `keysend`,
//! `payments`, `offer`, `signmessage`, `verifymessage`, `feerates`, `transactions`, `bumpfee`,
//! `forwards`, `setchannelfee`, `holdinvoice`, `settleinvoice`, `cancelinvoice`, `stop`. Request and response bodies
//! are the structs in [`types`]; unknown request fields are refused.
//!
//! Failures answer with a non-2xx status and `{"error": {"code": "...", "message": "..."}}`.
//! The code is stable (the node's [`NodeError::code`](crate::node::NodeError::code) for node
//! failures, plus `invalid_input`, `invalid_request`, `unauthorized`, `unknown_method`,
//! `method_not_allowed`, `payload_too_large`, `stopping`, `internal_error`); the status
//! follows it: 400 malformed input or wrong network, 401 token, 404 unknown method, channel
//! or peer, 409 duplicate payment, 422 refused (funds, channel, payment), 502 peer
//! unreachable, 503 not ready or stopping, 500 otherwise.
//!
//! # Authentication and discovery
//!
//! At start the server draws a random 32-byte token and writes it in hex to
//! `<datadir>/api.cookie` (created with mode 0600, fsynced), and writes the address it is
//! bound to in `<datadir>/api.addr`. Each request carries `Authorization: Bearer <token>`;
//! without it, or with another token, the answer is 401 and nothing else is looked at. Both
//! files are removed when the daemon stops, and a new token is drawn at every start.
//!
//! The one request answered without the token is `POST /v1/prove`: the daemon answers a
//! client's random nonce with an HMAC of it keyed with the token
//! ([`ProveRequest`](types::ProveRequest)). The CLI's [`Client`] asks for it on each
//! connection and sends the token only if the proof matches its cookie, so a stale
//! `api.addr` naming another program's port gets neither the token nor a say.
//!
//! The server binds 127.0.0.1 by default and warns loudly when told to bind anything that is
//! not a loopback address: the API has no TLS.
//!
//! ```sh
//! curl -s -X POST -H "Authorization: Bearer $(cat ~/.lightfilter/regtest/api.cookie)" \
//!      http://$(cat ~/.lightfilter/regtest/api.addr)/v1/getinfo
//! ```

mod admission;
mod auth;
mod client;
mod convert;
mod error;
mod handlers;
pub mod parse;
mod refusals;
pub mod render;
mod server;
pub mod types;

pub use admission::MAX_CONNECTIONS;
pub use auth::{ApiToken, ADDR_FILE, COOKIE_FILE};
pub use client::{Client, DEFAULT_CALL_TIMEOUT};
pub use error::{ApiError, ClientError, RequestError};
pub use handlers::MAX_PAYMENT_TIMEOUT_SECS;
pub use server::{serve, ApiServer, BODY_READ_TIMEOUT, HEADER_READ_TIMEOUT, MAX_BODY_BYTES};
pub use types::Method;

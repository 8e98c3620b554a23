//! A client for Tor's control port, for the one thing the node asks of it: an onion service
//! that forwards to the Lightning listener (`ADD_ONION`).
//!
//! It authenticates as `PROTOCOLINFO` offers: `SAFECOOKIE` (the cookie proved with HMACs, so a
//! fake control port learns nothing), then `COOKIE`, then a password (`HASHEDPASSWORD`), or
//! none when Tor asks for none. An onion service added this way lasts as long as the control
//! connection: the caller keeps the [`TorControl`] open and adds the service again after a
//! reconnection. No maintained crate fits: `torut` has had no release since 2021, and
//! `tor-interface` authenticates to a system Tor by password only and listens on a socket of
//! its own; the protocol needed here is a few line-based commands.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use bitcoin::hashes::{hmac, sha256, Hash, HashEngine};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;

/// How long Tor has to answer a command.
const REPLY_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest reply line accepted.
const MAX_LINE: usize = 16 * 1024;
/// The HMAC keys of `SAFECOOKIE` (Tor's control-spec, AUTHCHALLENGE).
const SERVER_HASH_KEY: &[u8] = b"Tor safe cookie authentication server-to-controller hash";
const CLIENT_HASH_KEY: &[u8] = b"Tor safe cookie authentication controller-to-server hash";

/// Why talking to Tor's control port failed.
#[derive(Debug, thiserror::Error)]
pub enum TorControlError {
    /// The control port could not be reached, or the connection broke.
    #[error("cannot talk to Tor's control port at {addr}: {reason}")]
    Io {
        /// The control port.
        addr: SocketAddr,
        /// What failed.
        reason: String,
    },
    /// Tor refused a command.
    #[error("Tor's control port at {addr} refused {command}: {reply}")]
    Refused {
        /// The control port.
        addr: SocketAddr,
        /// The command (without secrets).
        command: &'static str,
        /// Tor's reply.
        reply: String,
    },
    /// Authentication is not possible with what was given.
    #[error("cannot authenticate to Tor's control port at {addr}: {reason}")]
    Auth {
        /// The control port.
        addr: SocketAddr,
        /// Why.
        reason: String,
    },
}

/// An onion service Tor created.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OnionService {
    /// Its address without `.onion` (56 characters).
    pub service_id: String,
    /// Its key as `ADD_ONION` takes it back (`ED25519-V3:<base64>`), when Tor made a new one.
    pub new_key: Option<String>,
}

/// An authenticated control connection.
pub struct TorControl {
    addr: SocketAddr,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl std::fmt::Debug for TorControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TorControl")
            .field("addr", &self.addr)
            .finish()
    }
}

impl TorControl {
    /// Connects to the control port at `addr` and authenticates: with `password` when given
    /// (and Tor takes one), else with the cookie file Tor names.
    pub async fn connect(
        addr: SocketAddr,
        password: Option<&str>,
    ) -> Result<TorControl, TorControlError> {
        let stream = tokio::time::timeout(REPLY_TIMEOUT, TcpStream::connect(addr))
            .await
            .map_err(|_| io_error(addr, "no connection within 30 s"))?
            .map_err(|err| io_error(addr, err))?;
        let (reader, writer) = stream.into_split();
        let mut control = TorControl {
            addr,
            reader: BufReader::new(reader),
            writer,
        };
        control.authenticate(password).await?;
        Ok(control)
    }

    async fn authenticate(&mut self, password: Option<&str>) -> Result<(), TorControlError> {
        let info = self.command("PROTOCOLINFO", "PROTOCOLINFO 1").await?;
        let auth_line = info
            .iter()
            .find(|line| line.starts_with("AUTH "))
            .cloned()
            .unwrap_or_default();
        let methods: Vec<&str> = word_value(&auth_line, "METHODS")
            .map(|methods| methods.split(',').collect())
            .unwrap_or_default();
        let cookie_file = quoted_value(&auth_line, "COOKIEFILE").map(PathBuf::from);
        let auth_error = |reason: String| TorControlError::Auth {
            addr: self.addr,
            reason,
        };
        let secret = if let (Some(password), true) = (password, methods.contains(&"HASHEDPASSWORD"))
        {
            format!("\"{}\"", escape(password))
        } else if methods.contains(&"SAFECOOKIE") || methods.contains(&"COOKIE") {
            let path = cookie_file.ok_or_else(|| auth_error("Tor named no cookie file".into()))?;
            let cookie = std::fs::read(&path).map_err(|err| {
                auth_error(format!(
                    "cannot read Tor's cookie file {}: {err} (the node's user must be able to \
                     read it, e.g. be in Tor's group)",
                    path.display()
                ))
            })?;
            if methods.contains(&"SAFECOOKIE") {
                self.safe_cookie(&cookie).await?
            } else {
                hex(&cookie)
            }
        } else if methods.contains(&"NULL") {
            String::new()
        } else if methods.contains(&"HASHEDPASSWORD") {
            return Err(auth_error(
                "Tor asks for a password: give tor_control_password".into(),
            ));
        } else {
            return Err(auth_error(format!(
                "no authentication method the node knows among {methods:?}"
            )));
        };
        let line = if secret.is_empty() {
            "AUTHENTICATE".to_string()
        } else {
            format!("AUTHENTICATE {secret}")
        };
        self.command("AUTHENTICATE", &line).await.map(|_| ())
    }

    /// The `AUTHENTICATE` argument for `SAFECOOKIE`, after checking that Tor knows the cookie
    /// too.
    async fn safe_cookie(&mut self, cookie: &[u8]) -> Result<String, TorControlError> {
        let client_nonce: [u8; 32] = bitcoin::secp256k1::rand::random();
        let reply = self
            .command(
                "AUTHCHALLENGE",
                &format!("AUTHCHALLENGE SAFECOOKIE {}", hex(&client_nonce)),
            )
            .await?;
        let line = reply.first().cloned().unwrap_or_default();
        let field = |name: &str| word_value(&line, name).and_then(unhex);
        let (Some(server_hash), Some(server_nonce)) = (field("SERVERHASH"), field("SERVERNONCE"))
        else {
            return Err(TorControlError::Auth {
                addr: self.addr,
                reason: format!("an AUTHCHALLENGE reply without hash and nonce: {line}"),
            });
        };
        let mac = |key: &[u8]| {
            let mut engine = hmac::HmacEngine::<sha256::Hash>::new(key);
            engine.input(cookie);
            engine.input(&client_nonce);
            engine.input(&server_nonce);
            hmac::Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
        };
        if mac(SERVER_HASH_KEY)[..] != server_hash[..] {
            return Err(TorControlError::Auth {
                addr: self.addr,
                reason: "the control port does not know Tor's cookie: it is not that Tor".into(),
            });
        }
        Ok(hex(&mac(CLIENT_HASH_KEY)))
    }

    /// Adds an onion service whose port `virtual_port` forwards to `target`, with `key`
    /// (`ED25519-V3:<base64>`, as [`OnionService::new_key`] gave it) or a new key.
    pub async fn add_onion(
        &mut self,
        key: Option<&str>,
        virtual_port: u16,
        target: SocketAddr,
    ) -> Result<OnionService, TorControlError> {
        let key_arg = key.unwrap_or("NEW:ED25519-V3");
        let line = format!("ADD_ONION {key_arg} Port={virtual_port},{target}");
        let reply = self.command("ADD_ONION", &line).await?;
        let value = |name: &str| {
            reply
                .iter()
                .find_map(|line| line.strip_prefix(&format!("{name}=")).map(str::to_string))
        };
        let service_id = value("ServiceID").ok_or_else(|| TorControlError::Refused {
            addr: self.addr,
            command: "ADD_ONION",
            reply: format!("no ServiceID in {reply:?}"),
        })?;
        Ok(OnionService {
            service_id,
            new_key: value("PrivateKey"),
        })
    }

    /// Waits until Tor closes the connection (it stopped or restarted: its onion services
    /// are gone with it).
    pub async fn closed(&mut self) {
        let mut line = String::new();
        loop {
            line.clear();
            match self.reader.read_line(&mut line).await {
                Ok(0) | Err(_) => return,
                Ok(_) => {}
            }
        }
    }

    /// Sends `line` and reads the reply: its lines without the status code, or the refusal.
    async fn command(
        &mut self,
        command: &'static str,
        line: &str,
    ) -> Result<Vec<String>, TorControlError> {
        let addr = self.addr;
        self.writer
            .write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|err| io_error(addr, err))?;
        let mut lines = Vec::new();
        loop {
            let mut raw = String::new();
            let read = self.reader.read_line(&mut raw);
            match tokio::time::timeout(REPLY_TIMEOUT, read).await {
                Err(_) => return Err(io_error(addr, format!("no answer to {command}"))),
                Ok(Err(err)) => return Err(io_error(addr, err)),
                Ok(Ok(0)) => return Err(io_error(addr, "Tor closed the connection")),
                Ok(Ok(n)) if n > MAX_LINE => return Err(io_error(addr, "a reply line too long")),
                Ok(Ok(_)) => {}
            }
            let raw = raw.trim_end_matches(['\r', '\n']);
            if raw.len() < 4 {
                return Err(io_error(addr, format!("an unreadable reply {raw:?}")));
            }
            let (code, rest) = raw.split_at(3);
            let (separator, text) = rest.split_at(1);
            if code != "250" {
                return Err(TorControlError::Refused {
                    addr,
                    command,
                    reply: raw.to_string(),
                });
            }
            lines.push(text.to_string());
            if separator == " " {
                return Ok(lines);
            }
        }
    }
}

fn io_error(addr: SocketAddr, reason: impl ToString) -> TorControlError {
    TorControlError::Io {
        addr,
        reason: reason.to_string(),
    }
}

/// The value of `NAME=value` (up to the next space) in `line`.
fn word_value<'a>(line: &'a str, name: &str) -> Option<&'a str> {
    line.split(' ')
        .find_map(|word| word.strip_prefix(name)?.strip_prefix('='))
}

/// The value of `NAME="value"` in `line`, with `\"` and `\\` unescaped.
fn quoted_value(line: &str, name: &str) -> Option<String> {
    let start = line.find(&format!("{name}=\""))? + name.len() + 2;
    let mut value = String::new();
    let mut chars = line[start..].chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => value.push(chars.next()?),
            '"' => return Some(value),
            c => value.push(c),
        }
    }
    None
}

/// `text` escaped for a quoted string.
fn escape(text: &str) -> String {
    text.replace('\\', "\\\\").replace('"', "\\\"")
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02X}")).collect()
}

fn unhex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) {
        return None;
    }
    (0..text.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn protocolinfo_fields_are_read() {
        let line =
            r#"AUTH METHODS=COOKIE,SAFECOOKIE COOKIEFILE="/var/run/tor/control.\"authcookie""#;
        assert_eq!(word_value(line, "METHODS"), Some("COOKIE,SAFECOOKIE"));
        assert_eq!(
            quoted_value(line, "COOKIEFILE").as_deref(),
            Some(r#"/var/run/tor/control."authcookie"#)
        );
        assert_eq!(unhex("00fF10"), Some(vec![0, 255, 16]));
        assert_eq!(unhex("0"), None);
        assert_eq!(escape(r#"a"b\c"#), r#"a\"b\\c"#);
    }
}

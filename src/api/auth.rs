//! Authentication and discovery: the random API token, the `api.cookie` file that holds it
//! (mode 0600 from creation, fsynced) and the `api.addr` file that holds the bound address
//! (0600 too), both in the data directory, the check of a request's `Authorization` header,
//! and the proof by which the daemon shows a client that it holds the token (an HMAC of the
//! client's nonce and of the address the daemon listens on), so that the client never sends
//! the token to another program listening on a stale address, nor to one that relays the
//! proof request to the daemon from another address.

use std::fs::{File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::{Path, PathBuf};

use bitcoin::hashes::{sha256, Hash, HashEngine, Hmac, HmacEngine};
use bitcoin::hex::DisplayHex;
use bitcoin::secp256k1::rand::{thread_rng, RngCore};
use hyper::header::{HeaderMap, AUTHORIZATION, HOST, ORIGIN};

use super::error::{ApiError, ClientError, RequestError};

/// The file in the data directory holding the API token.
pub const COOKIE_FILE: &str = "api.cookie";

/// The file in the data directory holding the API's bound address.
pub const ADDR_FILE: &str = "api.addr";

/// The path of the proof request ([`ProveRequest`](super::types::ProveRequest)), the one
/// answered without the token.
pub const PROVE_PATH: &str = "/v1/prove";

/// What the proof's HMAC covers before the client's nonce and the daemon's address.
const PROOF_CONTEXT: &[u8] = b"lightfilter control API proof v2";

/// A 32-byte random token, as 64 lowercase hex digits.
#[derive(Clone, PartialEq, Eq)]
pub struct ApiToken(String);

impl std::fmt::Debug for ApiToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ApiToken(..)")
    }
}

impl ApiToken {
    /// A fresh token from the operating system's random source.
    pub fn generate() -> ApiToken {
        let mut bytes = [0u8; 32];
        thread_rng().fill_bytes(&mut bytes);
        ApiToken(bytes.to_lower_hex_string())
    }

    /// A token given as text (e.g. read from a cookie file); surrounding whitespace is dropped.
    pub fn from_text(text: &str) -> ApiToken {
        ApiToken(text.trim().to_string())
    }

    /// The token text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether `candidate` is this token, compared in constant time.
    pub fn matches(&self, candidate: &str) -> bool {
        constant_time_eq(self.0.as_bytes(), candidate.as_bytes())
    }

    /// The proof that the holder of this token, listening on `addr`, answers to a client's
    /// `nonce`: HMAC-SHA256 keyed with the token over a fixed context, the nonce and the
    /// address as `api.addr` writes it. It reveals nothing that would let anyone make a
    /// request, and it does not match for a client that reached the daemon through another
    /// address.
    pub fn prove(&self, nonce: &[u8], addr: SocketAddr) -> [u8; 32] {
        let mut engine = HmacEngine::<sha256::Hash>::new(self.0.as_bytes());
        engine.input(PROOF_CONTEXT);
        engine.input(nonce);
        engine.input(addr.to_string().as_bytes());
        Hmac::<sha256::Hash>::from_engine(engine).to_byte_array()
    }

    /// Whether `proof` is this token's proof for `nonce` by a daemon listening on `addr`,
    /// compared in constant time.
    pub fn check_proof(&self, nonce: &[u8], addr: SocketAddr, proof: &[u8]) -> bool {
        constant_time_eq(&self.prove(nonce, addr), proof)
    }
}

/// Whether `a` and `b` are equal, taking as long whichever byte differs.
fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |diff, (x, y)| diff | (x ^ y)) == 0
}

/// Checks that `headers` carry `Authorization: Bearer <token>`.
pub fn authorize(headers: &HeaderMap, token: &ApiToken) -> Result<(), RequestError> {
    let given = headers
        .get(AUTHORIZATION)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.strip_prefix("Bearer "))
        .ok_or(RequestError::Unauthorized)?;
    if token.matches(given.trim()) {
        Ok(())
    } else {
        Err(RequestError::Unauthorized)
    }
}

/// Refuses a request a web page may have made a browser send: one with an `Origin` header
/// (browsers add it to a page's cross-origin requests), or one whose `Host` is a name other
/// than `localhost` (a page of a domain made to resolve to this machine, DNS rebinding).
/// Clients that are not browsers send the address they reached (an IP literal) or
/// `localhost`, as the CLI and `curl http://127.0.0.1:PORT/...` do.
pub fn check_not_from_a_browser(headers: &HeaderMap) -> Result<(), RequestError> {
    if headers.contains_key(ORIGIN) {
        return Err(RequestError::Forbidden(
            "the request carries an Origin header, as browsers send for a web page".into(),
        ));
    }
    let host = headers
        .get(HOST)
        .and_then(|value| value.to_str().ok())
        .ok_or_else(|| RequestError::Forbidden("the request has no Host header".into()))?;
    if host_is_this_machine(host) {
        Ok(())
    } else {
        Err(RequestError::Forbidden(format!(
            "its Host {:?} is neither an IP address nor localhost",
            host.chars().take(100).collect::<String>()
        )))
    }
}

/// Whether `host` (a `Host` header: a name or address, with an optional port) is an IP
/// literal or `localhost`.
fn host_is_this_machine(host: &str) -> bool {
    let name = if let Some(rest) = host.strip_prefix('[') {
        match rest.split_once(']') {
            Some((inner, port)) if port.is_empty() || port.starts_with(':') => {
                return inner.parse::<Ipv6Addr>().is_ok()
            }
            _ => return false,
        }
    } else {
        host.rsplit_once(':').map_or(host, |(name, _)| name)
    };
    name.eq_ignore_ascii_case("localhost") || name.parse::<Ipv4Addr>().is_ok()
}

/// Writes `contents` to `dir/name` through a temporary file created with `mode`, fsyncing the
/// file and the directory, so the file never exists with wider permissions or half-written.
fn write_file_durably(
    dir: &Path,
    name: &str,
    contents: &str,
    mode: u32,
) -> Result<PathBuf, ApiError> {
    let path = dir.join(name);
    let temporary = dir.join(format!("{name}.tmp"));
    let write_error = |source| ApiError::File {
        action: "write",
        path: path.clone(),
        source,
    };
    match std::fs::remove_file(&temporary) {
        Err(err) if err.kind() != std::io::ErrorKind::NotFound => return Err(write_error(err)),
        _ => {}
    }
    let mut options = OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(mode);
    }
    #[cfg(not(unix))]
    let _ = mode;
    let mut file = options.open(&temporary).map_err(write_error)?;
    file.write_all(contents.as_bytes()).map_err(write_error)?;
    file.sync_all().map_err(write_error)?;
    drop(file);
    std::fs::rename(&temporary, &path).map_err(write_error)?;
    File::open(dir)
        .and_then(|dir| dir.sync_all())
        .map_err(write_error)?;
    Ok(path)
}

/// Writes the token to `<data_dir>/api.cookie` (mode 0600).
pub fn write_cookie(data_dir: &Path, token: &ApiToken) -> Result<PathBuf, ApiError> {
    write_file_durably(
        data_dir,
        COOKIE_FILE,
        &format!("{}\n", token.as_str()),
        0o600,
    )
}

/// Writes the bound address to `<data_dir>/api.addr` (mode 0600).
pub fn write_addr(data_dir: &Path, addr: SocketAddr) -> Result<PathBuf, ApiError> {
    write_file_durably(data_dir, ADDR_FILE, &format!("{addr}\n"), 0o600)
}

/// Removes `api.addr` and `api.cookie` (the daemon stopped); missing files are fine.
pub fn remove_files(data_dir: &Path) -> Result<(), ApiError> {
    for name in [ADDR_FILE, COOKIE_FILE] {
        let path = data_dir.join(name);
        match std::fs::remove_file(&path) {
            Err(source) if source.kind() != std::io::ErrorKind::NotFound => {
                return Err(ApiError::File {
                    action: "remove",
                    path,
                    source,
                })
            }
            _ => {}
        }
    }
    Ok(())
}

/// Reads the daemon's address and token from `data_dir`.
pub fn read_discovery(data_dir: &Path) -> Result<(SocketAddr, ApiToken), ClientError> {
    let not_running = |reason: String| ClientError::NotRunning {
        data_dir: data_dir.to_path_buf(),
        reason,
    };
    let addr_path = data_dir.join(ADDR_FILE);
    let addr_text = match std::fs::read_to_string(&addr_path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_running(format!(
                "{} does not exist",
                addr_path.display()
            )))
        }
        Err(err) => {
            return Err(not_running(format!(
                "cannot read {}: {err}",
                addr_path.display()
            )))
        }
    };
    let addr: SocketAddr = addr_text.trim().parse().map_err(|_| {
        not_running(format!(
            "{} does not hold an address: {:?}",
            addr_path.display(),
            addr_text.trim()
        ))
    })?;
    let cookie_path = data_dir.join(COOKIE_FILE);
    let token = match std::fs::read_to_string(&cookie_path) {
        Ok(text) => ApiToken::from_text(&text),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {
            return Err(not_running(format!(
                "{} does not exist",
                cookie_path.display()
            )))
        }
        Err(source) => {
            return Err(ClientError::Cookie {
                path: cookie_path,
                source,
            })
        }
    };
    Ok((addr, token))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hyper::header::HeaderValue;

    #[test]
    fn tokens_are_32_random_bytes_in_hex() {
        let a = ApiToken::generate();
        let b = ApiToken::generate();
        assert_eq!(a.as_str().len(), 64);
        assert!(a.as_str().bytes().all(|byte| byte.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert!(
            !format!("{a:?}").contains(a.as_str()),
            "Debug hides the token"
        );
    }

    #[test]
    fn only_the_token_proves_a_nonce() {
        let token = ApiToken::generate();
        let nonce = [7u8; 32];
        let addr: SocketAddr = "127.0.0.1:9737".parse().unwrap();
        let proof = token.prove(&nonce, addr);
        assert!(token.check_proof(&nonce, addr, &proof));
        assert!(
            !token.check_proof(&[8u8; 32], addr, &proof),
            "another nonce"
        );
        assert!(
            !token.check_proof(&nonce, "127.0.0.1:9738".parse().unwrap(), &proof),
            "another address"
        );
        assert!(
            !ApiToken::generate().check_proof(&nonce, addr, &proof),
            "another token"
        );
        assert!(!token.check_proof(&nonce, addr, &proof[..31]));
        assert!(!token.check_proof(&nonce, addr, &[0u8; 32]));
        assert!(
            !proof.to_lower_hex_string().contains(token.as_str()),
            "the proof is not the token"
        );
    }

    #[test]
    fn requests_a_browser_may_send_for_a_web_page_are_refused() {
        let headers = |pairs: &[(hyper::header::HeaderName, &str)]| {
            let mut map = HeaderMap::new();
            for (name, value) in pairs {
                map.insert(name.clone(), value.parse().unwrap());
            }
            map
        };
        for host in [
            "127.0.0.1:9737",
            "127.0.0.1",
            "localhost:9737",
            "LOCALHOST",
            "[::1]:9737",
            "192.168.1.10:9737",
        ] {
            assert!(
                check_not_from_a_browser(&headers(&[(HOST, host)])).is_ok(),
                "{host}"
            );
        }
        for host in [
            "evil.example:9737",
            "localhost.evil.example",
            "[::1",
            "[zz]:1",
        ] {
            let err = check_not_from_a_browser(&headers(&[(HOST, host)])).unwrap_err();
            assert_eq!(err.code(), "forbidden", "{host}");
        }
        assert!(check_not_from_a_browser(&HeaderMap::new()).is_err());
        let err = check_not_from_a_browser(&headers(&[
            (HOST, "127.0.0.1:9737"),
            (ORIGIN, "https://evil.example"),
        ]))
        .unwrap_err();
        assert!(err.to_string().contains("Origin"), "{err}");
    }

    #[test]
    fn requests_without_the_right_bearer_token_are_unauthorized() {
        let token = ApiToken::generate();
        let mut headers = HeaderMap::new();
        assert!(matches!(
            authorize(&headers, &token),
            Err(RequestError::Unauthorized)
        ));
        let wrong = ApiToken::generate();
        for value in [
            format!("Bearer {}", wrong.as_str()),
            token.as_str().to_string(),
            format!("Basic {}", token.as_str()),
            format!("Bearer {}", &token.as_str()[..63]),
            "Bearer ".to_string(),
        ] {
            headers.insert(AUTHORIZATION, HeaderValue::from_str(&value).unwrap());
            let result = authorize(&headers, &token);
            assert!(
                matches!(result, Err(RequestError::Unauthorized)),
                "{value:?} was accepted"
            );
        }
        headers.insert(
            AUTHORIZATION,
            HeaderValue::from_str(&format!("Bearer {}", token.as_str())).unwrap(),
        );
        assert!(authorize(&headers, &token).is_ok());
    }

    #[cfg(unix)]
    #[test]
    fn the_cookie_is_private_and_both_files_are_found_again() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // A leftover cookie with loose permissions is replaced, not reused.
        std::fs::write(dir.path().join(COOKIE_FILE), "old").unwrap();
        std::fs::set_permissions(
            dir.path().join(COOKIE_FILE),
            std::fs::Permissions::from_mode(0o644),
        )
        .unwrap();
        let token = ApiToken::generate();
        let cookie = write_cookie(dir.path(), &token).unwrap();
        let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        let addr: SocketAddr = "127.0.0.1:4567".parse().unwrap();
        write_addr(dir.path(), addr).unwrap();
        let (read_addr, read_token) = read_discovery(dir.path()).unwrap();
        assert_eq!(read_addr, addr);
        assert_eq!(read_token, token);

        remove_files(dir.path()).unwrap();
        let err = read_discovery(dir.path()).unwrap_err();
        assert_eq!(err.code(), "daemon_not_running");
        assert!(err.to_string().contains("api.addr"), "{err}");
        remove_files(dir.path()).unwrap();
    }

    #[test]
    fn a_garbled_address_file_reads_as_not_running() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join(ADDR_FILE), "not an address").unwrap();
        let err = read_discovery(dir.path()).unwrap_err();
        assert_eq!(err.code(), "daemon_not_running");
        assert!(
            err.to_string().contains("does not hold an address"),
            "{err}"
        );
    }
}

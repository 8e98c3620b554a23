//! Outbound TCP connections: made directly, or through a SOCKS5 proxy (Tor's SOCKS port).
//!
//! Through a proxy, a host name (a `.onion` address included) is handed to the proxy as it
//! is, so the proxy resolves it: no name is looked up on this machine, and no connection
//! leaves it except the one to the proxy. Directly, a host name is resolved with tokio's
//! resolver (on its blocking pool) and an onion service cannot be reached.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;
use std::time::Duration;

use tokio::net::TcpStream;
use tokio_socks::tcp::Socks5Stream;

/// How long resolving a host name locally may take.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(10);

/// How the node's outbound connections leave the machine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Route {
    /// Straight to the peer.
    #[default]
    Direct,
    /// Through the SOCKS5 proxy at this address (an IP address: nothing resolves it).
    Socks5(SocketAddr),
}

/// Why an outbound connection could not be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    /// An onion service is reachable only through a proxy.
    #[error("{target} is an onion service: it is reachable only through a proxy (--proxy)")]
    OnionNeedsProxy {
        /// The address.
        target: String,
    },
    /// The host name did not resolve.
    #[error("cannot resolve {target}: {reason}")]
    Resolve {
        /// The address.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The direct connection failed.
    #[error("cannot connect to {target}: {reason}")]
    Direct {
        /// The address.
        target: String,
        /// What failed.
        reason: String,
    },
    /// The proxy could not be reached, or it could not reach the peer.
    #[error("cannot reach {target} through the proxy at {proxy}: {reason}")]
    Proxy {
        /// The address.
        target: String,
        /// The proxy.
        proxy: SocketAddr,
        /// What failed.
        reason: String,
    },
}

/// Whether `host` names an onion service.
pub fn is_onion(host: &str) -> bool {
    host.to_ascii_lowercase().ends_with(".onion")
}

/// The public key of a v3 onion service address (`<56 characters>.onion`), if `host` is
/// one with a valid checksum.
pub fn onion_v3_key(host: &str) -> Option<[u8; 32]> {
    use lightning::ln::msgs::SocketAddress;
    let Ok(SocketAddress::OnionV3 {
        ed25519_pubkey,
        checksum,
        version,
        ..
    }) = SocketAddress::from_str(&format!("{}:1", host.to_ascii_lowercase()))
    else {
        return None;
    };
    (version == 3 && checksum == onion_checksum(&ed25519_pubkey, version)).then_some(ed25519_pubkey)
}

/// The v3 onion service address (`<56 characters>.onion:port`) of the service whose public
/// key is `ed25519_pubkey`.
pub fn onion_v3_address(ed25519_pubkey: [u8; 32], port: u16) -> String {
    lightning::ln::msgs::SocketAddress::OnionV3 {
        ed25519_pubkey,
        checksum: onion_checksum(&ed25519_pubkey, 3),
        version: 3,
        port,
    }
    .to_string()
}

/// SHA3-256(".onion checksum" || key || version)[..2] (Tor's rend-spec-v3).
fn onion_checksum(ed25519_pubkey: &[u8; 32], version: u8) -> u16 {
    let mut input = b".onion checksum".to_vec();
    input.extend_from_slice(ed25519_pubkey);
    input.push(version);
    let digest = sha3_hashes::sha3_256::hash(&input).to_byte_array();
    u16::from_be_bytes([digest[0], digest[1]])
}

impl Route {
    /// The proxy, if connections go through one.
    pub fn proxy(&self) -> Option<SocketAddr> {
        match self {
            Route::Direct => None,
            Route::Socks5(proxy) => Some(*proxy),
        }
    }

    /// Connects to `host` (an IP address or a host name) on `port`. Directly, a host name
    /// is resolved here and each of its addresses tried in turn; through the proxy, the
    /// proxy is given the name.
    pub async fn connect(&self, host: &str, port: u16) -> Result<TcpStream, ConnectError> {
        let target = if host.contains(':') {
            format!("[{host}]:{port}")
        } else {
            format!("{host}:{port}")
        };
        match self {
            Route::Socks5(proxy) => {
                let proxied = match IpAddr::from_str(host) {
                    Ok(ip) => Socks5Stream::connect(*proxy, SocketAddr::new(ip, port)).await,
                    Err(_) => Socks5Stream::connect(*proxy, (host, port)).await,
                };
                proxied
                    .map(Socks5Stream::into_inner)
                    .map_err(|err| ConnectError::Proxy {
                        target,
                        proxy: *proxy,
                        reason: err.to_string(),
                    })
            }
            Route::Direct => {
                if is_onion(host) {
                    return Err(ConnectError::OnionNeedsProxy { target });
                }
                let addrs = resolve(host, port).await?;
                let mut last = String::from("it resolves to no address");
                for addr in addrs {
                    match TcpStream::connect(addr).await {
                        Ok(stream) => return Ok(stream),
                        Err(err) => last = err.to_string(),
                    }
                }
                Err(ConnectError::Direct {
                    target,
                    reason: last,
                })
            }
        }
    }
}

/// The addresses `host` stands for on `port`: an IP address as it is, a host name through
/// tokio's resolver within [`RESOLVE_TIMEOUT`].
pub async fn resolve(host: &str, port: u16) -> Result<Vec<SocketAddr>, ConnectError> {
    if let Ok(ip) = IpAddr::from_str(host) {
        return Ok(vec![SocketAddr::new(ip, port)]);
    }
    let target = format!("{host}:{port}");
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => Ok(addrs.collect()),
        Ok(Err(err)) => Err(ConnectError::Resolve {
            target,
            reason: err.to_string(),
        }),
        Err(_) => Err(ConnectError::Resolve {
            target,
            reason: format!("no answer within {} s", RESOLVE_TIMEOUT.as_secs()),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "current_thread")]
    async fn an_onion_service_needs_the_proxy_and_names_the_address() {
        let onion = "2gzyxa5ihm7nsggfxnu52rck2vv4rvmdlkiu3zzui5du4xyclen53wid.onion";
        let err = Route::Direct.connect(onion, 9735).await.unwrap_err();
        assert!(matches!(err, ConnectError::OnionNeedsProxy { .. }), "{err}");
        assert!(err.to_string().contains(onion), "{err}");
    }

    #[test]
    fn onion_v3_addresses_give_their_key_and_others_none() {
        // The service of the ed25519 public key d75a98…511a (bip157's own test vector).
        let onion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion";
        let key = onion_v3_key(onion).expect("a v3 onion address");
        assert_eq!(key[..4], [0xd7, 0x5a, 0x98, 0x01]);
        assert!(is_onion(onion));
        assert_eq!(onion_v3_key("example.org"), None);
        assert_eq!(onion_v3_key("127.0.0.1"), None);
        // An address made from a key reads back to that key.
        let made = onion_v3_address(key, 9735);
        assert_eq!(made, format!("{onion}:9735"));
        assert_eq!(onion_v3_key(made.trim_end_matches(":9735")), Some(key));
        // One character of the key changed: the checksum no longer holds.
        let bad = onion.replacen("25nj", "25nk", 1);
        assert_eq!(onion_v3_key(&bad), None);
    }

    #[tokio::test(flavor = "current_thread")]
    async fn a_proxy_that_is_not_there_is_named() {
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let proxy = closed.local_addr().unwrap();
        drop(closed);
        let err = Route::Socks5(proxy)
            .connect("127.0.0.1", 18444)
            .await
            .unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains(&proxy.to_string()) && text.contains("127.0.0.1:18444"),
            "{text}"
        );
    }
}

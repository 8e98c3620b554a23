//! How a Bitcoin peer is named: an IP address, a host name or an onion service, and a port.
//! Peers are configured, linked, banned and reported by this name; a peer given by name is
//! reached through the proxy by name, so no look-up happens on this machine.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// A Bitcoin P2P peer given by the user: an IP address or a host name, and a port.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PeerAddress {
    /// IP address or DNS name.
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl FromStr for PeerAddress {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Ok(addr) = SocketAddr::from_str(s) {
            return Ok(addr.into());
        }
        let (host, port) = s
            .rsplit_once(':')
            .ok_or_else(|| format!("peer address {s:?} needs a port, as HOST:PORT"))?;
        let port = port
            .parse::<u16>()
            .map_err(|_| format!("peer address {s:?} has an invalid port {port:?}"))?;
        if host.is_empty() || host.contains(|c: char| c.is_whitespace() || c == '/') {
            return Err(format!("peer address {s:?} has an invalid host {host:?}"));
        }
        Ok(Self {
            host: host.trim_matches(|c| c == '[' || c == ']').to_string(),
            port,
        })
    }
}

impl From<SocketAddr> for PeerAddress {
    fn from(addr: SocketAddr) -> Self {
        Self {
            host: addr.ip().to_string(),
            port: addr.port(),
        }
    }
}

impl std::fmt::Display for PeerAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl PeerAddress {
    /// The IP address and port, when the peer is given by IP address.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        IpAddr::from_str(&self.host)
            .ok()
            .map(|ip| SocketAddr::new(ip, self.port))
    }

    /// The public key of a v3 onion service address (`<56 characters>.onion`).
    pub fn onion_key(&self) -> Option<[u8; 32]> {
        crate::proxy::onion_v3_key(&self.host)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ip_addresses_read_and_print_as_socket_addresses_and_names_as_written() {
        let v6: PeerAddress = "[::1]:18444".parse().unwrap();
        assert_eq!(v6.host, "::1");
        assert_eq!(v6.to_string(), "[::1]:18444");
        assert_eq!(
            v6,
            PeerAddress::from(SocketAddr::from(([0, 0, 0, 0, 0, 0, 0, 1], 18444)))
        );
        assert_eq!(v6.socket_addr(), Some("[::1]:18444".parse().unwrap()));
        let name: PeerAddress = "node.example:8333".parse().unwrap();
        assert_eq!(name.to_string(), "node.example:8333");
        assert_eq!(name.socket_addr(), None);
        assert!("node.example".parse::<PeerAddress>().is_err());
        assert!("node.example:99999".parse::<PeerAddress>().is_err());
    }
}

//! Reading a process's memory figures and TCP sockets from `/proc` (Linux), for the benchmarks
//! and tests.
#![allow(dead_code)]

/// A field of `/proc/<pid>/status` in kB (`pid` may be `self`); 0 when it cannot be read.
pub fn status_kb(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with(field))
        .and_then(|line| line.split_whitespace().nth(1))
        .and_then(|kb| kb.parse().ok())
        .unwrap_or(0)
}

/// One TCP socket a process holds, from `/proc/<pid>/net/tcp{,6}` and its open files.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TcpSocket {
    /// Its local address.
    pub local: std::net::SocketAddr,
    /// The address it is connected to (unspecified for a listening socket).
    pub remote: std::net::SocketAddr,
    /// The kernel's state number: 1 established, 2 connecting (SYN sent), 10 listening...
    pub state: u8,
}

/// The TCP sockets (IPv4 and IPv6) process `pid` holds open.
pub fn tcp_sockets(pid: u32) -> Vec<TcpSocket> {
    let inodes: std::collections::HashSet<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|fd| std::fs::read_link(fd.path()).ok())
        .filter_map(|target| {
            let target = target.to_string_lossy().into_owned();
            target
                .strip_prefix("socket:[")
                .and_then(|rest| rest.strip_suffix(']'))
                .map(str::to_string)
        })
        .collect();
    let mut sockets = Vec::new();
    for table in ["tcp", "tcp6"] {
        let text = std::fs::read_to_string(format!("/proc/{pid}/net/{table}")).unwrap_or_default();
        for line in text.lines().skip(1) {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.len() < 10 || !inodes.contains(fields[9]) {
                continue;
            }
            let (Some(local), Some(remote), Ok(state)) = (
                proc_socket_addr(fields[1]),
                proc_socket_addr(fields[2]),
                u8::from_str_radix(fields[3], 16),
            ) else {
                continue;
            };
            sockets.push(TcpSocket {
                local,
                remote,
                state,
            });
        }
    }
    sockets
}

/// `0100007F:1F90` (IPv4) or 32 hex digits and a port (IPv6), each 32-bit word in host
/// (little-endian) order, as `/proc/net/tcp` writes them.
fn proc_socket_addr(field: &str) -> Option<std::net::SocketAddr> {
    let (ip, port) = field.split_once(':')?;
    let port = u16::from_str_radix(port, 16).ok()?;
    let mut bytes = Vec::new();
    for word in 0..ip.len() / 8 {
        let word = u32::from_str_radix(&ip[word * 8..word * 8 + 8], 16).ok()?;
        bytes.extend_from_slice(&word.to_le_bytes());
    }
    let ip = match bytes.len() {
        4 => std::net::IpAddr::from(<[u8; 4]>::try_from(bytes).ok()?),
        16 => std::net::IpAddr::from(<[u8; 16]>::try_from(bytes).ok()?),
        _ => return None,
    };
    Some(std::net::SocketAddr::new(ip, port))
}

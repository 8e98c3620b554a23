//! A SOCKS5 proxy for the tests (RFC 1928, no authentication, CONNECT only) that records the
//! target of every CONNECT and can send the connections for one address to another, and a
//! [`Tripwire`]: an address that counts the connections made to it.
//!
//! Together they show that a node makes no connection except through the proxy: the node is
//! given a peer's address that is a tripwire, and only the proxy knows where that peer really
//! listens. A node that reaches the peer went through the proxy; one that connected directly
//! anywhere would have hit the tripwire.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{Read, Write};
use std::net::{Ipv4Addr, Ipv6Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// How often the accept loops look for a new connection or a stop.
const POLL: Duration = Duration::from_millis(20);

/// Accepts connections on `listener` (non-blocking) until `stop`, handing each to `serve`.
fn accept_until(
    listener: TcpListener,
    stop: Arc<AtomicBool>,
    serve: impl Fn(TcpStream) + Send + 'static,
) {
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    std::thread::spawn(move || {
        while !stop.load(Ordering::SeqCst) {
            match listener.accept() {
                Ok((stream, _)) => {
                    let _ = stream.set_nonblocking(false);
                    serve(stream);
                }
                Err(_) => std::thread::sleep(POLL),
            }
        }
    });
}

/// The SOCKS5 proxy.
pub struct SocksProxy {
    addr: SocketAddr,
    connects: Arc<Mutex<Vec<String>>>,
    redirects: Arc<Mutex<HashMap<String, SocketAddr>>>,
    stop: Arc<AtomicBool>,
}

impl SocksProxy {
    /// A proxy on an ephemeral port of 127.0.0.1.
    pub fn start() -> SocksProxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the proxy");
        let proxy = SocksProxy {
            addr: listener.local_addr().unwrap(),
            connects: Arc::default(),
            redirects: Arc::default(),
            stop: Arc::default(),
        };
        let connects = proxy.connects.clone();
        let redirects = proxy.redirects.clone();
        accept_until(listener, proxy.stop.clone(), move |client| {
            let connects = connects.clone();
            let redirects = redirects.clone();
            std::thread::spawn(move || {
                let _ = serve(client, &connects, &redirects);
            });
        });
        proxy
    }

    /// Where the proxy listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Connections for `target` (as `host:port`, the form [`SocksProxy::connects`] lists)
    /// go to `to` instead.
    pub fn redirect(&self, target: impl ToString, to: SocketAddr) {
        self.redirects
            .lock()
            .unwrap()
            .insert(target.to_string(), to);
    }

    /// The target of every CONNECT so far, in order, as `host:port`.
    pub fn connects(&self) -> Vec<String> {
        self.connects.lock().unwrap().clone()
    }

    /// How many CONNECTs named `target`.
    pub fn connects_to(&self, target: impl ToString) -> usize {
        let target = target.to_string();
        self.connects().iter().filter(|t| **t == target).count()
    }
}

impl Drop for SocksProxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// One client: the greeting, one CONNECT, then bytes both ways until either side closes.
fn serve(
    mut client: TcpStream,
    connects: &Mutex<Vec<String>>,
    redirects: &Mutex<HashMap<String, SocketAddr>>,
) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(10)))?;
    let mut head = [0u8; 2];
    client.read_exact(&mut head)?;
    let mut methods = vec![0u8; usize::from(head[1])];
    client.read_exact(&mut methods)?;
    if head[0] != 5 || !methods.contains(&0) {
        return client.write_all(&[5, 0xff]);
    }
    client.write_all(&[5, 0])?;
    let mut request = [0u8; 4];
    client.read_exact(&mut request)?;
    let host = match request[3] {
        1 => {
            let mut ip = [0u8; 4];
            client.read_exact(&mut ip)?;
            Ipv4Addr::from(ip).to_string()
        }
        4 => {
            let mut ip = [0u8; 16];
            client.read_exact(&mut ip)?;
            format!("[{}]", Ipv6Addr::from(ip))
        }
        3 => {
            let mut len = [0u8; 1];
            client.read_exact(&mut len)?;
            let mut name = vec![0u8; usize::from(len[0])];
            client.read_exact(&mut name)?;
            String::from_utf8_lossy(&name).into_owned()
        }
        _ => return client.write_all(&[5, 8, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    let mut port = [0u8; 2];
    client.read_exact(&mut port)?;
    let target = format!("{host}:{}", u16::from_be_bytes(port));
    if request[1] != 1 {
        // Only CONNECT: "command not supported".
        return client.write_all(&[5, 7, 0, 1, 0, 0, 0, 0, 0, 0]);
    }
    connects.lock().unwrap().push(target.clone());
    let redirected = redirects.lock().unwrap().get(&target).copied();
    let upstream = match redirected {
        Some(to) => TcpStream::connect_timeout(&to, Duration::from_secs(5)),
        None => match target.parse::<SocketAddr>() {
            Ok(addr) => TcpStream::connect_timeout(&addr, Duration::from_secs(5)),
            // Names are not resolved by this proxy.
            Err(_) => return client.write_all(&[5, 4, 0, 1, 0, 0, 0, 0, 0, 0]),
        },
    };
    let upstream = match upstream {
        Ok(upstream) => upstream,
        // "Connection refused".
        Err(_) => return client.write_all(&[5, 5, 0, 1, 0, 0, 0, 0, 0, 0]),
    };
    client.write_all(&[5, 0, 0, 1, 127, 0, 0, 1, 0, 0])?;
    client.set_read_timeout(None)?;
    pipe(client, upstream)
}

/// Copies bytes both ways between `a` and `b` until either side closes.
fn pipe(a: TcpStream, b: TcpStream) -> std::io::Result<()> {
    let (mut a_read, mut b_write) = (a.try_clone()?, b.try_clone()?);
    let forward = std::thread::spawn(move || {
        let _ = std::io::copy(&mut a_read, &mut b_write);
        let _ = b_write.shutdown(Shutdown::Both);
    });
    let (mut b_read, mut a_write) = (b, a);
    let _ = std::io::copy(&mut b_read, &mut a_write);
    let _ = a_write.shutdown(Shutdown::Both);
    let _ = forward.join();
    Ok(())
}

/// An address on 127.0.0.1 that counts (and closes) every connection made to it.
pub struct Tripwire {
    addr: SocketAddr,
    hits: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
}

impl Tripwire {
    /// A tripwire on an ephemeral port.
    pub fn start() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the tripwire");
        let tripwire = Tripwire {
            addr: listener.local_addr().unwrap(),
            hits: Arc::default(),
            stop: Arc::default(),
        };
        let hits = tripwire.hits.clone();
        accept_until(listener, tripwire.stop.clone(), move |stream| {
            hits.fetch_add(1, Ordering::SeqCst);
            drop(stream);
        });
        tripwire
    }

    /// The address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many connections were made to it.
    pub fn hits(&self) -> usize {
        self.hits.load(Ordering::SeqCst)
    }
}

impl Drop for Tripwire {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
    }
}

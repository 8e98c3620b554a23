//! Admission of control API connections: at most [`MAX_CONNECTIONS`] are served at once, so
//! a flood of idle or half-sent connections cannot use up the file descriptors that SQLite,
//! LDK persistence and the P2P sockets need.
//!
//! A connection that has not sent a byte yet is *waiting*. When every place is taken, the
//! oldest waiting connection is closed to admit the new one: idle connections cannot keep out
//! a client that speaks at once, as the CLI does. Connections that have started a request
//! are never closed for a newcomer; the server's header-read timeout bounds how long a
//! half-sent one keeps its place, and a newcomer waits for a place (up to
//! [`ADMISSION_WAIT`]) while all of them are busy.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::net::TcpStream;
use tokio::sync::{oneshot, OwnedSemaphorePermit, Semaphore};

/// Connections served at once. Each holds one file descriptor; the rest of the daemon's
/// descriptors (a soft limit of 1,024 is common) stay free for the node.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a new connection waits for a place while every place serves a request; it is
/// closed after that.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(5);

/// Places for connections, and the waiting connections that can be closed to make room.
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    waiting: Mutex<BTreeMap<u64, oneshot::Sender<()>>>,
    next_id: AtomicU64,
}

/// One admitted connection's place, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    closed: oneshot::Receiver<()>,
    _place: OwnedSemaphorePermit,
}

impl Admission {
    /// Room for `capacity` connections at once.
    pub fn new(capacity: usize) -> Arc<Admission> {
        Arc::new(Admission {
            places: Arc::new(Semaphore::new(capacity)),
            waiting: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A place for a newly accepted connection: a free one, else the place of the oldest
    /// waiting connection (which is closed), else the first place a request gives back
    /// within [`ADMISSION_WAIT`]. `None` when none came free in time.
    pub async fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let place = match Arc::clone(&self.places).try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                if let Some((_, close)) = self.waiting().pop_first() {
                    let _ = close.send(());
                }
                tokio::time::timeout(ADMISSION_WAIT, Arc::clone(&self.places).acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let (close, closed) = oneshot::channel();
        self.waiting().insert(id, close);
        Some(Ticket {
            admission: Arc::clone(self),
            id,
            closed,
            _place: place,
        })
    }

    /// Connections admitted and not yet given back.
    #[cfg(test)]
    fn in_use(&self, capacity: usize) -> usize {
        capacity - self.places.available_permits()
    }

    fn waiting(&self) -> MutexGuard<'_, BTreeMap<u64, oneshot::Sender<()>>> {
        self.waiting
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Ticket {
    /// Waits until `stream` has bytes to read (or its end). False when the connection should
    /// be closed instead: it sent nothing within `timeout`, or its place went to a newcomer.
    pub async fn first_bytes(&mut self, stream: &TcpStream, timeout: Duration) -> bool {
        let mut first = [0u8; 1];
        let readable = tokio::select! {
            // `readable` alone may report a socket that has nothing yet; a peek waits for data.
            peeked = stream.peek(&mut first) => peeked.is_ok(),
            _ = &mut self.closed => false,
            _ = tokio::time::sleep(timeout) => false,
        };
        // Still listed means no newcomer took the place meanwhile.
        let kept = self.admission.waiting().remove(&self.id).is_some();
        readable && kept
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.waiting().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::AsyncWriteExt;
    use tokio::net::TcpListener;

    async fn pair(listener: &TcpListener) -> (TcpStream, TcpStream) {
        let client = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (server, _) = listener.accept().await.unwrap();
        (client, server)
    }

    #[tokio::test]
    async fn a_newcomer_takes_the_place_of_the_oldest_idle_connection() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::new(2);
        let (_idle_client, idle_server) = pair(&listener).await;
        let mut idle = admission.admit().await.unwrap();
        let (mut talking_client, talking_server) = pair(&listener).await;
        let mut talking = admission.admit().await.unwrap();
        talking_client.write_all(b"POST").await.unwrap();
        assert!(
            talking
                .first_bytes(&talking_server, Duration::from_secs(5))
                .await
        );
        assert_eq!(admission.in_use(2), 2);

        // Full: the newcomer gets the idle connection's place, which learns it must close.
        let idle_task = tokio::spawn(async move {
            idle.first_bytes(&idle_server, Duration::from_secs(60))
                .await
        });
        tokio::task::yield_now().await;
        let newcomer = admission.admit().await;
        assert!(!idle_task.await.unwrap(), "the idle connection is closed");
        assert!(newcomer.is_some());
        drop(talking);
        assert_eq!(admission.in_use(2), 1);
    }

    #[tokio::test]
    async fn a_connection_that_sends_nothing_is_closed_after_the_timeout() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let admission = Admission::new(1);
        let (_client, server) = pair(&listener).await;
        let mut ticket = admission.admit().await.unwrap();
        assert!(!ticket.first_bytes(&server, Duration::from_millis(50)).await);
    }
}

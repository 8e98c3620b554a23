//! Admission of control API connections: at most [`MAX_CONNECTIONS`] are served at once, so
//! a flood of idle or half-sent connections cannot use up the file descriptors that SQLite,
//! LDK persistence and the P2P sockets need.
//!
//! A connection is *idle* while none of its requests is being answered: before its first
//! request's header is complete (it sent nothing, or half a header), and between requests.
//! When every place is taken, the oldest idle connection is closed to admit the new one, so
//! neither idle nor half-sent connections can keep out a client that speaks at once, as the
//! CLI does; and a request without the token is answered at once, so such requests hold no
//! place either. Only requests being answered keep their place; while all places serve one,
//! a newcomer waits for a place (up to [`ADMISSION_WAIT`]). The server's header-read timeout
//! closes idle connections in any case.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

/// Connections served at once. Each holds one file descriptor; the rest of the daemon's
/// descriptors (a soft limit of 1,024 is common) stay free for the node.
pub const MAX_CONNECTIONS: usize = 256;

/// How long a new connection waits for a place while every place serves a request; it is
/// closed after that.
pub const ADMISSION_WAIT: Duration = Duration::from_secs(5);

/// Places for connections, and the open connections, oldest first.
#[derive(Debug)]
pub struct Admission {
    places: Arc<Semaphore>,
    wait: Duration,
    open: Mutex<BTreeMap<u64, Arc<Activity>>>,
    next_id: AtomicU64,
}

/// What one connection is doing: how many of its requests are being answered, and the signal
/// to close it for a newcomer.
#[derive(Debug, Default)]
pub struct Activity {
    requests: AtomicUsize,
    close: Notify,
}

/// Counts one request as being answered until dropped.
#[derive(Debug)]
pub struct Serving(Arc<Activity>);

/// One admitted connection's place, given back when dropped.
#[derive(Debug)]
pub struct Ticket {
    admission: Arc<Admission>,
    id: u64,
    activity: Arc<Activity>,
    _place: OwnedSemaphorePermit,
}

impl Admission {
    /// Room for `capacity` connections at once; a newcomer waits up to `wait` for a place
    /// while all of them serve requests.
    pub fn new(capacity: usize, wait: Duration) -> Arc<Admission> {
        Arc::new(Admission {
            places: Arc::new(Semaphore::new(capacity)),
            wait,
            open: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(0),
        })
    }

    /// A place for a newly accepted connection: a free one, else the place of the oldest idle
    /// connection (which is told to close), else the first place given back within the wait.
    /// `None` when none came free in time.
    pub async fn admit(self: &Arc<Self>) -> Option<Ticket> {
        let place = match Arc::clone(&self.places).try_acquire_owned() {
            Ok(place) => place,
            Err(_) => {
                self.close_oldest_idle();
                tokio::time::timeout(self.wait, Arc::clone(&self.places).acquire_owned())
                    .await
                    .ok()?
                    .ok()?
            }
        };
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let activity = Arc::new(Activity::default());
        self.open().insert(id, Arc::clone(&activity));
        Some(Ticket {
            admission: Arc::clone(self),
            id,
            activity,
            _place: place,
        })
    }

    fn close_oldest_idle(&self) {
        let mut open = self.open();
        let oldest = open
            .iter()
            .find(|(_, activity)| activity.is_idle())
            .map(|(id, _)| *id);
        if let Some(activity) = oldest.and_then(|id| open.remove(&id)) {
            activity.close.notify_one();
        }
    }

    fn open(&self) -> MutexGuard<'_, BTreeMap<u64, Arc<Activity>>> {
        self.open
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Activity {
    /// Counts a request as being answered until the returned guard is dropped.
    pub fn serving(self: &Arc<Self>) -> Serving {
        self.requests.fetch_add(1, Ordering::SeqCst);
        Serving(Arc::clone(self))
    }

    fn is_idle(&self) -> bool {
        self.requests.load(Ordering::SeqCst) == 0
    }
}

impl Drop for Serving {
    fn drop(&mut self) {
        self.0.requests.fetch_sub(1, Ordering::SeqCst);
    }
}

impl Ticket {
    /// The connection's activity, in which its requests are counted.
    pub fn activity(&self) -> Arc<Activity> {
        Arc::clone(&self.activity)
    }

    /// Resolves when the connection is to be closed for a newcomer. A request that started
    /// meanwhile keeps it open (it no longer can be picked, and ends by its timeouts).
    pub async fn closed(&self) {
        loop {
            self.activity.close.notified().await;
            if self.activity.is_idle() {
                return;
            }
        }
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        self.admission.open().remove(&self.id);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_newcomer_takes_the_place_of_the_oldest_idle_connection() {
        let admission = Admission::new(3, Duration::from_secs(5));
        let busy = admission.admit().await.unwrap();
        let _request = busy.activity().serving();
        let oldest_idle = admission.admit().await.unwrap();
        let newer_idle = admission.admit().await.unwrap();

        // Full: the oldest idle connection, not the older busy one, learns it must close and
        // gives its place to the newcomer.
        let closing = tokio::spawn(async move {
            oldest_idle.closed().await;
        });
        let newcomer = tokio::time::timeout(Duration::from_secs(5), admission.admit())
            .await
            .expect("admitted at once")
            .expect("a place");
        closing.await.unwrap();
        let still_open = tokio::time::timeout(Duration::from_millis(50), newer_idle.closed());
        assert!(still_open.await.is_err(), "only one connection is closed");
        drop((busy, newcomer));
    }

    #[tokio::test]
    async fn connections_answering_requests_keep_their_places() {
        let admission = Admission::new(1, Duration::from_millis(100));
        let busy = admission.admit().await.unwrap();
        let request = busy.activity().serving();
        assert!(admission.admit().await.is_none(), "no place came free");
        drop(request);
        let closing = tokio::spawn(async move { busy.closed().await });
        assert!(admission.admit().await.is_some(), "idle again, it gave way");
        closing.await.unwrap();
    }
}

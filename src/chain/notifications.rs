//! What the chain source tells its own loops (the broadcaster, the fee sampler, the block
//! prefetcher): a bus of [`ChainNotification`]s, and a shutdown signal that wakes every loop
//! when the chain source stops.

use std::sync::Arc;

use bitcoin::{Block, BlockHash};
use tokio::sync::{broadcast, watch};

/// Capacity of the notification channel.
const NOTIFICATION_CAPACITY: usize = 1_024;

/// Something the chain source observed, for the broadcaster and the fee estimator.
#[derive(Debug, Clone)]
pub enum ChainNotification {
    /// A peer completed its handshake.
    PeerConnected,
    /// A verified block was downloaded (for the listeners or for fee sampling).
    BlockFetched {
        /// The block.
        block: Arc<Block>,
        /// Its height.
        height: u32,
    },
    /// The verified tip moved.
    NewTip {
        /// Height of the tip.
        height: u32,
        /// Hash of the tip.
        hash: BlockHash,
    },
}

/// The notification bus and the shutdown signal.
#[derive(Debug)]
pub struct Notifications {
    bus: broadcast::Sender<ChainNotification>,
    shutdown: watch::Sender<bool>,
}

impl Default for Notifications {
    fn default() -> Self {
        Self {
            bus: broadcast::channel(NOTIFICATION_CAPACITY).0,
            shutdown: watch::channel(false).0,
        }
    }
}

impl Notifications {
    /// A bus nobody listens to yet, not shut down.
    pub fn new() -> Self {
        Self::default()
    }

    /// Tells every subscriber (if any) about `notification`.
    pub fn send(&self, notification: ChainNotification) {
        let _ = self.bus.send(notification);
    }

    /// Subscribes to the notifications sent from now on.
    pub fn subscribe(&self) -> broadcast::Receiver<ChainNotification> {
        self.bus.subscribe()
    }

    /// A signal that fires once [`Notifications::shut_down`] was called (at once if it was).
    pub fn shutdown_signal(&self) -> Shutdown {
        Shutdown(self.shutdown.subscribe())
    }

    /// Fires the shutdown signal: every loop waiting on one wakes and ends.
    pub fn shut_down(&self) {
        self.shutdown.send_replace(true);
    }

    /// Whether [`Notifications::shut_down`] was called.
    pub fn is_shut_down(&self) -> bool {
        *self.shutdown.borrow()
    }
}

/// The chain source's shutdown signal, as one loop holds it.
#[derive(Debug, Clone)]
pub struct Shutdown(watch::Receiver<bool>);

impl Shutdown {
    /// Waits until the chain source shuts down (returns at once if it has). Cancel-safe, so
    /// it can be one branch of a `select!` in a loop.
    pub async fn fired(&mut self) {
        // The sender going away means the chain source is gone: that is a shutdown too.
        let _ = self.0.wait_for(|down| *down).await;
    }

    /// Whether the chain source has shut down.
    pub fn has_fired(&self) -> bool {
        *self.0.borrow()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn shutting_down_wakes_every_waiting_loop_and_later_ones_at_once() {
        let notifications = Arc::new(Notifications::new());
        let waiters: Vec<_> = (0..3)
            .map(|_| {
                let mut shutdown = notifications.shutdown_signal();
                tokio::spawn(async move { shutdown.fired().await })
            })
            .collect();
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert!(
            waiters.iter().all(|waiter| !waiter.is_finished()),
            "nothing fires before the shutdown"
        );
        assert!(!notifications.is_shut_down());
        notifications.shut_down();
        for waiter in waiters {
            tokio::time::timeout(Duration::from_secs(5), waiter)
                .await
                .expect("woken by the shutdown")
                .expect("waiter");
        }
        let mut late = notifications.shutdown_signal();
        assert!(late.has_fired());
        tokio::time::timeout(Duration::from_secs(5), late.fired())
            .await
            .expect("a signal taken after the shutdown fires at once");
    }

    #[tokio::test]
    async fn the_shutdown_is_no_notification() {
        let notifications = Notifications::new();
        let mut received = notifications.subscribe();
        notifications.shut_down();
        assert!(matches!(
            received.try_recv(),
            Err(broadcast::error::TryRecvError::Empty)
        ));
    }
}

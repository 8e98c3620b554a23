//! The supervisor: spawns named tasks and reports the first one that panics, ends before its
//! owner is stopping, or reports a fatal error of its own.

use std::any::Any;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};

use log::{debug, error};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{with_injected_fault, TASK_NAME};

/// Why a supervised task can no longer do its work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TaskFailure {
    /// The task panicked.
    #[error("the {task} task panicked: {message}")]
    Panicked {
        /// The task's name.
        task: &'static str,
        /// The panic's message.
        message: String,
    },
    /// The task returned although nothing asked it to stop.
    #[error("the {task} task ended while the node was running")]
    Ended {
        /// The task's name.
        task: &'static str,
    },
    /// The task met an error it cannot go on after.
    #[error("the {task} task failed: {reason}")]
    Failed {
        /// The task's name.
        task: &'static str,
        /// What went wrong.
        reason: String,
    },
}

/// Spawns long-running tasks and watches them until their owner stops them.
#[derive(Debug)]
pub struct Supervisor {
    stopping: AtomicBool,
    failure: watch::Sender<Option<TaskFailure>>,
}

impl Supervisor {
    /// A supervisor with no task and no failure.
    pub fn new() -> Arc<Self> {
        Arc::new(Self {
            stopping: AtomicBool::new(false),
            failure: watch::channel(None).0,
        })
    }

    /// Spawns `task` under `name` on the current tokio runtime. If it panics, or returns
    /// before [`Supervisor::stopping`] was called, that is reported as a failure.
    pub fn spawn<F>(self: &Arc<Self>, name: &'static str, task: F) -> JoinHandle<()>
    where
        F: Future<Output = ()> + Send + 'static,
    {
        let supervisor = self.clone();
        let watched = async move {
            let outcome = CatchPanic(Box::pin(with_injected_fault(name, task))).await;
            match outcome {
                Ok(()) if supervisor.is_stopping() => debug!("the {name} task finished"),
                Ok(()) => supervisor.report(TaskFailure::Ended { task: name }),
                Err(message) => supervisor.report(TaskFailure::Panicked {
                    task: name,
                    message,
                }),
            }
        };
        tokio::spawn(TASK_NAME.scope(name, watched))
    }

    /// Records `failure` and logs it, unless a failure was reported before.
    pub fn report(&self, failure: TaskFailure) {
        let first = self.failure.send_if_modified(|current| {
            if current.is_some() {
                return false;
            }
            *current = Some(failure.clone());
            true
        });
        if first {
            error!("{failure}; the node cannot go on and stops");
        } else {
            debug!("{failure} (after an earlier failure)");
        }
    }

    /// From now on the tasks are being stopped: one that ends is no failure.
    pub fn stopping(&self) {
        self.stopping.store(true, Ordering::SeqCst);
    }

    /// Whether [`Supervisor::stopping`] was called.
    pub fn is_stopping(&self) -> bool {
        self.stopping.load(Ordering::SeqCst)
    }

    /// The first failure, if there was one.
    pub fn failure(&self) -> Option<TaskFailure> {
        self.failure.borrow().clone()
    }

    /// Resolves with the first failure, once there is one.
    pub async fn failed(&self) -> TaskFailure {
        let mut failure = self.failure.subscribe();
        let first = match failure.wait_for(Option::is_some).await {
            Ok(first) => first.clone(),
            // The sender lives as long as `self`.
            Err(_) => None,
        };
        match first {
            Some(first) => first,
            None => std::future::pending().await,
        }
    }
}

/// A future that turns a panic while polling the inner one into an error with its message.
struct CatchPanic<F>(Pin<Box<F>>);

impl<F: Future> Future for CatchPanic<F> {
    type Output = Result<F::Output, String>;

    fn poll(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = self.get_mut().0.as_mut();
        match std::panic::catch_unwind(AssertUnwindSafe(|| inner.poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(payload) => Poll::Ready(Err(panic_message(payload.as_ref()))),
        }
    }
}

/// The text a panic was raised with.
pub(super) fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(text) = payload.downcast_ref::<&str>() {
        (*text).to_string()
    } else if let Some(text) = payload.downcast_ref::<String>() {
        text.clone()
    } else {
        "a panic without a message".to_string()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_task_that_panics_or_ends_early_is_reported_and_a_stopped_one_is_not() {
        let supervisor = Supervisor::new();
        let _ = supervisor
            .spawn("doomed", async { panic!("lost the disk") })
            .await;
        assert_eq!(
            supervisor.failed().await,
            TaskFailure::Panicked {
                task: "doomed",
                message: "lost the disk".into()
            }
        );
        // Only the first failure counts.
        let _ = supervisor.spawn("short", async {}).await;
        assert!(matches!(
            supervisor.failure(),
            Some(TaskFailure::Panicked { task: "doomed", .. })
        ));

        let supervisor = Supervisor::new();
        let _ = supervisor.spawn("short", async {}).await;
        assert_eq!(
            supervisor.failure(),
            Some(TaskFailure::Ended { task: "short" })
        );

        let supervisor = Supervisor::new();
        supervisor.stopping();
        let _ = supervisor.spawn("stopped", async {}).await;
        assert_eq!(supervisor.failure(), None);
    }

    #[tokio::test]
    async fn a_task_knows_its_name() {
        let supervisor = Supervisor::new();
        let (tx, rx) = tokio::sync::oneshot::channel();
        let _ = supervisor
            .spawn("named", async move {
                let _ = tx.send(super::super::current());
            })
            .await;
        assert_eq!(rx.await.unwrap(), Some("named"));
        assert_eq!(super::super::current(), None);
    }
}

//! Long-running tasks by name: the chain follower, the background processor, the broadcaster,
//! the fee sampler and the others the node cannot work without run under a [`Supervisor`],
//! each with its name in scope. A node whose task panicked or ended no longer follows the
//! chain or persists its state, so it must not go on answering as if it did: the supervisor
//! reports the first such failure, and the daemon's panic hook ([`install_fatal_panic_hook`])
//! ends the process at once, naming the task ([`current`]).

#[cfg(debug_assertions)]
pub mod fault;
mod panic_hook;
mod supervisor;

use std::future::Future;

pub use panic_hook::{install_fatal_panic_hook, on_fatal_panic};
pub use supervisor::{Supervisor, TaskFailure};

tokio::task_local! {
    static TASK_NAME: &'static str;
}

/// The name of the supervised task running on this thread, if any.
pub fn current() -> Option<&'static str> {
    TASK_NAME.try_with(|name| *name).ok()
}

/// `task`, acting on a fault injected into it (debug builds only).
#[cfg(debug_assertions)]
async fn with_injected_fault(name: &'static str, task: impl Future<Output = ()>) {
    tokio::select! {
        () = task => {}
        kind = fault::injected_into(name) => match kind {
            fault::FaultKind::Panic => panic!("test fault: the {name} task panics"),
            fault::FaultKind::End => log::warn!("test fault: the {name} task ends"),
        },
    }
}

#[cfg(not(debug_assertions))]
async fn with_injected_fault(_name: &'static str, task: impl Future<Output = ()>) {
    task.await
}

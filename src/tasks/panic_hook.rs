//! The daemon's panic hook: a panic anywhere ends the process at once.
//!
//! LDK panics on purpose when a channel monitor cannot be persisted, to stop the node before
//! it acts on state that is not durable; an orderly shutdown would persist the channel manager
//! ahead of its monitors. So a panic is logged (naming the supervised task it happened in, or
//! the thread) and the process aborts, in debug builds as in release ones (which are built
//! with `panic = "abort"`).

use std::panic::PanicHookInfo;
use std::sync::Mutex;

use super::supervisor::panic_message;

/// What runs with a fatal panic's message before the process aborts.
type Observer = Box<dyn Fn(&str) + Send + Sync>;

static OBSERVERS: Mutex<Vec<Observer>> = Mutex::new(Vec::new());

/// Has `observer` called with the message of each panic the fatal hook sees, before the
/// process aborts: the place to record durably what the next start must know (it must not
/// panic itself).
pub fn on_fatal_panic(observer: impl Fn(&str) + Send + Sync + 'static) {
    OBSERVERS
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .push(Box::new(observer));
}

/// Replaces the panic hook with one that logs the panic and aborts the process.
pub fn install_fatal_panic_hook() {
    std::panic::set_hook(Box::new(|info| {
        log::error!(
            "{}; stopping at once, persisting nothing more",
            describe(info)
        );
        let message = panic_message(info.payload());
        if let Ok(observers) = OBSERVERS.try_lock() {
            for observer in observers.iter() {
                observer(&message);
            }
        }
        log::logger().flush();
        std::process::abort();
    }));
}

/// "the <task> task panicked at <file:line:column>: <message>".
fn describe(info: &PanicHookInfo<'_>) -> String {
    let place = match super::current() {
        Some(task) => format!("the {task} task"),
        None => format!(
            "thread {}",
            std::thread::current().name().unwrap_or("without a name")
        ),
    };
    let location = info
        .location()
        .map_or_else(|| "an unknown place".to_string(), ToString::to_string);
    let message = panic_message(info.payload());
    format!("{place} panicked at {location}: {message}")
}

//! Faults injected into named tasks, for the tests of their supervision only (debug builds).
//!
//! The daemon reads [`FAULT_VAR`] once its control API answers: `panic:<task>` makes the named
//! task panic where it runs, `end:<task>` makes it return as if its work were done. Release
//! builds have neither the variable nor this module.

use std::str::FromStr;
use std::sync::LazyLock;

use tokio::sync::watch;

/// The environment variable the daemon reads a fault from (tests only).
pub const FAULT_VAR: &str = "LIGHTFILTER_TEST_FAULT";

/// What an injected fault makes a task do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// Panic.
    Panic,
    /// Return early.
    End,
}

/// A fault for one named task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    /// What the task does.
    pub kind: FaultKind,
    /// The task's name, as given when it was spawned.
    pub task: String,
}

/// A fault description that is not `panic:<task>` or `end:<task>`.
#[derive(Debug, Clone, thiserror::Error)]
#[error("{FAULT_VAR} must be panic:<task> or end:<task>, not {0:?}")]
pub struct BadFault(String);

impl FromStr for Fault {
    type Err = BadFault;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (kind, task) = text
            .split_once(':')
            .ok_or_else(|| BadFault(text.to_string()))?;
        let kind = match kind {
            "panic" => FaultKind::Panic,
            "end" => FaultKind::End,
            _ => return Err(BadFault(text.to_string())),
        };
        if task.is_empty() {
            return Err(BadFault(text.to_string()));
        }
        Ok(Fault {
            kind,
            task: task.to_string(),
        })
    }
}

static INJECTED: LazyLock<watch::Sender<Option<Fault>>> = LazyLock::new(|| watch::channel(None).0);

/// Injects `fault`: the task it names, running or spawned later, acts on it.
pub fn inject(fault: Fault) {
    log::warn!(
        "test fault injected: the {} task will {}",
        fault.task,
        match fault.kind {
            FaultKind::Panic => "panic",
            FaultKind::End => "end",
        }
    );
    INJECTED.send_replace(Some(fault));
}

/// Resolves with the kind of the fault injected into `task`, if one ever is.
pub(super) async fn injected_into(task: &str) -> FaultKind {
    let mut injected = INJECTED.subscribe();
    let kind = match injected
        .wait_for(|fault| fault.as_ref().is_some_and(|fault| fault.task == task))
        .await
    {
        Ok(fault) => fault.as_ref().map(|fault| fault.kind),
        // The sender is static and never dropped.
        Err(_) => None,
    };
    match kind {
        Some(kind) => kind,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn faults_parse_from_their_description() {
        assert_eq!(
            "panic:chain follower".parse::<Fault>().unwrap(),
            Fault {
                kind: FaultKind::Panic,
                task: "chain follower".into()
            }
        );
        assert_eq!(
            "end:fee sampler".parse::<Fault>().unwrap().kind,
            FaultKind::End
        );
        for bad in ["", "panic", "panic:", "crash:fee sampler"] {
            assert!(bad.parse::<Fault>().is_err(), "{bad:?}");
        }
    }
}

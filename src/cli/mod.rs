//! The `lightfilter` command line's parts besides dispatch: its arguments, how a client
//! command's outcome is printed, the waits it shows, the commands that need no daemon, and the
//! regtest peer and playground commands.

pub mod args;
pub mod local;
pub mod output;
pub mod progress;
#[cfg(feature = "regtest")]
pub mod regtest;

//! The P2P server: regtest Bitcoin protocol over TCP, serving headers, blocks, transactions and
//! BIP 157 compact filters, and relaying transactions.

mod server;
mod session;
pub mod wire;

pub use server::listen;
pub use session::{services, PROTOCOL_VERSION};

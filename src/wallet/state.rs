//! The wallet's state behind its lock: the BDK wallet, its SQLite connection, the signers, and
//! the bookkeeping of saving and script registration.

use std::path::PathBuf;

use bdk_wallet::rusqlite::Connection;
use bitcoin::Network;

use super::keys::WalletKeys;
use super::registry::{RegisteredScripts, ScriptRegistry};
use super::store::{self, StoredWallet};
use super::WalletError;

/// Header-only blocks connected between two saves of the chain tip. Losing them in a crash
/// is harmless: the chain source replays from the saved tip.
pub(crate) const HEADER_ONLY_SAVE_INTERVAL: u32 = 100;

/// Everything the wallet's mutex guards.
pub(crate) struct WalletState {
    pub wallet: StoredWallet,
    pub conn: Connection,
    pub keys: WalletKeys,
    pub registered: RegisteredScripts,
    /// Blocks connected since the last save.
    pub unsaved_blocks: u32,
    pub path: PathBuf,
    pub network: Network,
}

impl WalletState {
    /// Commits the staged changes to SQLite (durable on return).
    pub fn save(&mut self, context: &'static str) -> Result<(), WalletError> {
        self.wallet
            .persist(&mut self.conn)
            .map_err(WalletError::storage(context))?;
        self.unsaved_blocks = 0;
        Ok(())
    }

    /// Replaces the in-memory wallet by what is stored, dropping unsaved changes.
    pub fn reload(&mut self) -> Result<(), WalletError> {
        let wallet = store::load(&mut self.conn, &self.path, &self.keys, self.network)?
            .ok_or_else(|| WalletError::CorruptWalletFile {
                path: self.path.clone(),
                reason: "the wallet data disappeared from the file".to_owned(),
            })?;
        self.wallet = wallet;
        self.unsaved_blocks = 0;
        Ok(())
    }

    /// Registers the scripts derived since the last registration.
    pub fn register_new_scripts(&mut self, registry: &dyn ScriptRegistry) {
        self.registered
            .register_new(self.wallet.spk_index(), registry);
    }

    /// Runs a user operation all-or-nothing: pending chain progress is saved first; if `operation`
    /// fails, or its changes cannot be saved, the wallet returns to the saved state. New scripts
    /// are registered before this returns.
    pub fn transact<T>(
        &mut self,
        registry: &dyn ScriptRegistry,
        context: &'static str,
        operation: impl FnOnce(&mut WalletState) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        self.save("saving chain progress")?;
        let result = operation(self).and_then(|value| self.save(context).map(|()| value));
        if result.is_err() && self.wallet.staged().is_some() {
            if let Err(e) = self.reload() {
                log::error!("cannot return the wallet to its saved state: {e}");
            }
        }
        if result.is_ok() {
            self.register_new_scripts(registry);
        }
        result
    }
}

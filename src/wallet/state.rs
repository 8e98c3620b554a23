//! The wallet's state behind its lock: the BDK wallet, its storage, the signers, and
//! the bookkeeping of saving and script registration.

use std::path::PathBuf;

use bdk_wallet::KeychainKind;
use bitcoin::{BlockHash, Network};

use super::db::WalletDb;
use super::keys::WalletKeys;
use super::registry::{RegisteredScripts, ScriptRegistry};
use super::store::{self, StoredWallet};
use super::{WalletError, WalletUtxo};

/// Header-only blocks connected between two saves of the chain tip. Losing them in a crash
/// is harmless: the chain source replays from the saved tip.
pub(crate) const HEADER_ONLY_SAVE_INTERVAL: u32 = 100;

/// Blocks a coinbase output must wait before it may be spent.
const COINBASE_MATURITY: u32 = 100;

/// Where the wallet stopped following the chain: a block that did not connect to the last
/// one it processed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Stopped {
    /// The block that did not connect, and its height.
    pub block: (BlockHash, u32),
    /// The last block the wallet connected, and its height.
    pub last: (BlockHash, u32),
}

impl Stopped {
    /// The error every request gets from a wallet that stopped here.
    pub fn error(&self) -> WalletError {
        WalletError::StoppedFollowing {
            block: self.block.0,
            height: self.block.1,
            last_block: self.last.0,
            last_height: self.last.1,
        }
    }
}

/// Everything the wallet's mutex guards.
pub(crate) struct WalletState {
    pub wallet: StoredWallet,
    pub conn: WalletDb,
    pub keys: WalletKeys,
    pub registered: RegisteredScripts,
    /// Blocks connected since the last save.
    pub unsaved_blocks: u32,
    pub path: PathBuf,
    pub network: Network,
    /// Set once a block did not connect; the wallet then takes no more blocks and answers
    /// nothing.
    pub stopped: Option<Stopped>,
}

impl WalletState {
    /// Fails with [`WalletError::StoppedFollowing`] once the wallet stopped following the
    /// chain: what it would answer may be out of date.
    pub fn check_following(&self) -> Result<(), WalletError> {
        self.stopped.map_or(Ok(()), |stopped| Err(stopped.error()))
    }

    /// The wallet's unspent outputs, confirmed or not.
    pub fn unspent(&self) -> Vec<WalletUtxo> {
        let tip = self.wallet.latest_checkpoint().height();
        self.wallet
            .list_unspent()
            .map(|utxo| {
                let confirmation_height = utxo
                    .chain_position
                    .is_confirmed()
                    .then(|| utxo.chain_position.confirmation_height_upper_bound())
                    .flatten();
                let mature = self
                    .wallet
                    .tx_graph()
                    .get_tx(utxo.outpoint.txid)
                    .is_none_or(|tx| {
                        !tx.is_coinbase()
                            || confirmation_height.is_some_and(|h| tip + 1 >= h + COINBASE_MATURITY)
                    });
                WalletUtxo {
                    outpoint: utxo.outpoint,
                    amount: utxo.txout.value,
                    script_pubkey: utxo.txout.script_pubkey,
                    is_change: utxo.keychain == KeychainKind::Internal,
                    confirmation_height,
                    spendable: confirmation_height.is_some() && mature,
                }
            })
            .collect()
    }

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
    /// are registered before this returns. Refused once the wallet stopped following the chain.
    pub fn transact<T>(
        &mut self,
        registry: &dyn ScriptRegistry,
        context: &'static str,
        operation: impl FnOnce(&mut WalletState) -> Result<T, WalletError>,
    ) -> Result<T, WalletError> {
        self.check_following()?;
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

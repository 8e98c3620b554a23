//! The node's on-chain wallet, built on BDK with its SQLite store.
//!
//! It receives coins on BIP 84 addresses derived from the node's seed, funds channels, gives
//! LDK the coins and signatures it needs to bump anchor-channel fees, and takes back the funds
//! of closed channels. Like BDK it knows nothing of where blocks come from: it is a
//! [`lightning::chain::Listen`] fed in chain order (full blocks when they concern it, headers
//! otherwise), it hands the scripts it watches to a [`ScriptRegistry`], and it broadcasts and
//! estimates fees through LDK's interfaces.
//!
//! A block that does not connect to the last one it processed stops it: from then on it takes
//! no block and answers no request ([`WalletError::StoppedFollowing`]), and it tells whoever
//! asked with [`Wallet::on_stopped_following`]; its saved state stays at its last block, from
//! which the chain source replays the chain when the node starts again.

mod db;
mod error;
mod keys;
mod ldk;
mod listen;
mod registry;
mod spend;
mod state;
mod store;
mod types;

use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard};

use bdk_wallet::chain::ChainPosition;
use bdk_wallet::KeychainKind;
use bitcoin::secp256k1::Secp256k1;
use bitcoin::{Address, BlockHash, Network, Txid};
use lightning::chain::chaininterface::{BroadcasterInterface, FeeEstimator};
use lightning::chain::BestBlock;

pub use db::{
    copy_file_to_store, copy_store_to_file, ChangesetStore, KvChangesets, StorageError,
    WALLET_NAMESPACE,
};
pub use error::{sat_per_vb, WalletError};
pub use registry::ScriptRegistry;
pub use types::{
    FeeChoice, SendAmount, Sent, SpendLimits, WalletBalance, WalletTransaction, WalletUtxo,
};

use keys::WalletKeys;
use registry::RegisteredScripts;
use state::WalletState;

/// What is told that the wallet stopped following the chain.
type StopHook = Box<dyn Fn(&WalletError) + Send + Sync>;

/// The on-chain wallet. Cheap to share behind an `Arc`; all methods take `&self`.
pub struct Wallet {
    state: Mutex<WalletState>,
    network: Network,
    registry: Arc<dyn ScriptRegistry>,
    fee_estimator: Arc<dyn FeeEstimator + Send + Sync>,
    broadcaster: Arc<dyn BroadcasterInterface + Send + Sync>,
    stop_hook: Mutex<Option<StopHook>>,
}

impl Wallet {
    /// Opens the wallet stored at `path` (an SQLite file, e.g. `<datadir>/wallet.sqlite`), or
    /// creates it there if the file does not exist.
    ///
    /// `seed` is the node's 32-byte seed (the one LDK's `KeysManager` gets); the wallet derives
    /// its keys from it and stores no secret. A file made for another `network` or from another
    /// seed is refused with [`WalletError::NetworkMismatch`] or [`WalletError::KeysMismatch`]
    /// and left untouched.
    ///
    /// `birthday` applies to a new wallet only: `(height, hash)` of a block mined before any
    /// transaction of this wallet (for a restore: a block before its first funds; for a fresh
    /// wallet: the current tip). It becomes the wallet's [`best_block`](Self::best_block), so the
    /// chain source replays the chain from the block after it. Without a birthday a new wallet
    /// starts at genesis.
    ///
    /// On return every revealed and lookahead script has been given to `registry`.
    pub fn open(
        path: &Path,
        seed: &[u8; 32],
        network: Network,
        birthday: Option<(u32, BlockHash)>,
        registry: Arc<dyn ScriptRegistry>,
        fee_estimator: Arc<dyn FeeEstimator + Send + Sync>,
        broadcaster: Arc<dyn BroadcasterInterface + Send + Sync>,
    ) -> Result<Wallet, WalletError> {
        let keys = WalletKeys::derive(seed, network, &Secp256k1::new())?;
        let (conn, wallet) = store::open(path, &keys, network, birthday)?;
        Ok(Self::with_parts(
            (conn, wallet),
            keys,
            path,
            network,
            registry,
            fee_estimator,
            broadcaster,
        ))
    }

    /// Like [`Wallet::open`], with the wallet's changesets in the key-value store `store`
    /// (the node's PostgreSQL store) instead of a file; `label` names it in messages.
    #[allow(clippy::too_many_arguments)]
    pub fn open_in_store(
        store: ChangesetStore,
        label: &Path,
        seed: &[u8; 32],
        network: Network,
        birthday: Option<(u32, BlockHash)>,
        registry: Arc<dyn ScriptRegistry>,
        fee_estimator: Arc<dyn FeeEstimator + Send + Sync>,
        broadcaster: Arc<dyn BroadcasterInterface + Send + Sync>,
    ) -> Result<Wallet, WalletError> {
        let keys = WalletKeys::derive(seed, network, &Secp256k1::new())?;
        let opened = store::open_in_store(store, label, &keys, network, birthday)?;
        Ok(Self::with_parts(
            opened,
            keys,
            label,
            network,
            registry,
            fee_estimator,
            broadcaster,
        ))
    }

    fn with_parts(
        (conn, wallet): (db::WalletDb, store::StoredWallet),
        keys: WalletKeys,
        path: &Path,
        network: Network,
        registry: Arc<dyn ScriptRegistry>,
        fee_estimator: Arc<dyn FeeEstimator + Send + Sync>,
        broadcaster: Arc<dyn BroadcasterInterface + Send + Sync>,
    ) -> Wallet {
        let tip = wallet.latest_checkpoint();
        log::info!(
            "wallet {} open at block {} ({}), {} receive addresses revealed",
            path.display(),
            tip.height(),
            tip.hash(),
            wallet.next_derivation_index(KeychainKind::External)
        );
        let mut state = WalletState {
            wallet,
            conn,
            keys,
            registered: RegisteredScripts::default(),
            unsaved_blocks: 0,
            path: path.to_owned(),
            network,
            stopped: None,
        };
        state.register_new_scripts(registry.as_ref());
        Wallet {
            state: Mutex::new(state),
            network,
            registry,
            fee_estimator,
            broadcaster,
            stop_hook: Mutex::new(None),
        }
    }

    /// Calls `hook` with [`WalletError::StoppedFollowing`] when a block does not connect to the
    /// wallet's last block (at once if that already happened), so that the node can stop: the
    /// wallet no longer follows the chain. Replaces an earlier hook.
    pub fn on_stopped_following(&self, hook: impl Fn(&WalletError) + Send + Sync + 'static) {
        let stopped = self.state().stopped;
        if let Some(stopped) = stopped {
            hook(&stopped.error());
        }
        *self
            .stop_hook
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = Some(Box::new(hook));
    }

    /// Tells the hook of [`Wallet::on_stopped_following`] that the wallet stopped.
    fn report_stopped(&self, error: &WalletError) {
        let hook = self
            .stop_hook
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(hook) = hook.as_ref() {
            hook(error);
        }
    }

    /// The network the wallet runs on.
    pub fn network(&self) -> Network {
        self.network
    }

    /// The last block the wallet has processed; give it to
    /// `lightning_block_sync::init::synchronize_listeners` at start-up.
    pub fn best_block(&self) -> BestBlock {
        let tip = self.state().wallet.latest_checkpoint();
        BestBlock::new(tip.hash(), tip.height())
    }

    /// The value of the output at `outpoint`, if the wallet knows the transaction that made
    /// it (its own transactions and those paying it).
    pub fn output_value(&self, outpoint: &bitcoin::OutPoint) -> Option<bitcoin::Amount> {
        self.state()
            .wallet
            .tx_graph()
            .get_txout(*outpoint)
            .map(|txout| txout.value)
    }

    /// Reveals the next receive address. It is stored durably and its script (with the
    /// lookahead behind it) registered before it is returned.
    pub fn new_address(&self) -> Result<Address, WalletError> {
        let mut state = self.state();
        let address = state.transact(self.registry.as_ref(), "saving a new address", |s| {
            Ok(s.wallet.reveal_next_address(KeychainKind::External).address)
        })?;
        log::debug!("revealed receive address {address}");
        Ok(address)
    }

    /// The wallet's balance; refused once the wallet stopped following the chain.
    pub fn balance(&self) -> Result<WalletBalance, WalletError> {
        let state = self.state();
        state.check_following()?;
        let balance = state.wallet.balance();
        Ok(WalletBalance {
            confirmed: balance.confirmed,
            trusted_pending: balance.trusted_pending,
            untrusted_pending: balance.untrusted_pending,
            immature: balance.immature,
        })
    }

    /// Whether `script` is one of the wallet's own (revealed) scripts.
    pub fn is_mine(&self, script: &bitcoin::Script) -> bool {
        self.state().wallet.is_mine(script.to_owned())
    }

    /// The wallet's unspent outputs, confirmed or not; refused once the wallet stopped
    /// following the chain.
    pub fn utxos(&self) -> Result<Vec<WalletUtxo>, WalletError> {
        let state = self.state();
        state.check_following()?;
        Ok(state.unspent())
    }

    /// The transactions that pay to or spend from the wallet: unconfirmed first, then by
    /// confirmation height, newest first. Refused once the wallet stopped following the chain.
    pub fn transactions(&self) -> Result<Vec<WalletTransaction>, WalletError> {
        let state = self.state();
        state.check_following()?;
        let wallet = &state.wallet;
        let mut list: Vec<WalletTransaction> = wallet
            .transactions()
            .map(|canonical| {
                let tx = &canonical.tx_node.tx;
                let (sent, received) = wallet.sent_and_received(tx);
                WalletTransaction {
                    txid: canonical.tx_node.txid,
                    sent,
                    received,
                    net: wallet.spk_index().net_value(tx, ..),
                    fee: wallet.calculate_fee(tx).ok(),
                    confirmation_height: canonical
                        .chain_position
                        .is_confirmed()
                        .then(|| canonical.chain_position.confirmation_height_upper_bound())
                        .flatten(),
                }
            })
            .collect();
        list.sort_by_key(|tx| std::cmp::Reverse(tx.confirmation_height.unwrap_or(u32::MAX)));
        Ok(list)
    }

    /// Writes chain progress not yet saved (header-only blocks are saved in batches) to disk.
    pub fn flush(&self) -> Result<(), WalletError> {
        self.state().save("saving chain progress")
    }

    /// Forgets an unconfirmed transaction of the wallet that will not be broadcast (e.g. the
    /// funding transaction of a channel LDK discarded), so that its inputs can be spent again.
    /// If it confirms after all, the wallet picks it up from the block.
    pub fn abandon_transaction(&self, txid: Txid) -> Result<(), WalletError> {
        let mut state = self.state();
        state.transact(
            self.registry.as_ref(),
            "saving an abandoned transaction",
            |s| {
                let canonical = s
                    .wallet
                    .get_tx(txid)
                    .ok_or(WalletError::UnknownTransaction(txid))?;
                let last_seen = match canonical.chain_position {
                    ChainPosition::Confirmed { .. } => {
                        return Err(WalletError::AlreadyConfirmed(txid));
                    }
                    ChainPosition::Unconfirmed { last_seen, .. } => last_seen.unwrap_or(0),
                };
                // Eviction wins over a sighting at the same second or earlier.
                let evicted_at = spend::unix_now().max(last_seen);
                s.wallet.apply_evicted_txs([(txid, evicted_at)]);
                Ok(())
            },
        )
    }

    fn state(&self) -> MutexGuard<'_, WalletState> {
        // A panic while the lock was held leaves BDK's state as consistent as its last
        // completed call; the stored state is always consistent.
        self.state
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }
}

impl Drop for Wallet {
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            log::error!("could not save the wallet's chain progress on shutdown: {e}");
        }
    }
}

//! Telling the chain source which scripts the wallet watches.
//!
//! The wallet derives scripts ahead of the addresses it has handed out (the lookahead). Every
//! derived script is registered once, in index order, through a [`ScriptRegistry`]; the chain
//! source then fetches every block whose compact filter matches one of them.

use std::collections::BTreeMap;

use bdk_wallet::chain::keychain_txout::KeychainTxOutIndex;
use bdk_wallet::KeychainKind;
use bitcoin::ScriptBuf;

/// Receives the scripts the wallet needs to see on chain (the node connects it to the chain
/// source's watch set).
///
/// Implementations must be quick and must not call back into the wallet: the wallet calls this
/// while it holds its lock, so that a script is always registered before the address is handed
/// out or the block that revealed it has been processed.
pub trait ScriptRegistry: Send + Sync {
    /// Adds `scripts` to the set of watched scripts.
    fn register_scripts(&self, scripts: &[ScriptBuf]);
}

/// Remembers, per keychain, the index of the next script to register.
#[derive(Debug, Default)]
pub(crate) struct RegisteredScripts {
    next_index: BTreeMap<KeychainKind, u32>,
}

impl RegisteredScripts {
    /// Registers every script of `index` (revealed or lookahead) not registered before.
    pub fn register_new(
        &mut self,
        index: &KeychainTxOutIndex<KeychainKind>,
        registry: &dyn ScriptRegistry,
    ) {
        let mut scripts = Vec::new();
        for keychain in [KeychainKind::External, KeychainKind::Internal] {
            let from = self.next_index.get(&keychain).copied().unwrap_or(0);
            for (&(_, derivation_index), script) in index
                .inner()
                .all_spks()
                .range((keychain, from)..=(keychain, u32::MAX))
            {
                scripts.push(script.clone());
                self.next_index.insert(keychain, derivation_index + 1);
            }
        }
        if !scripts.is_empty() {
            log::debug!(
                "registering {} wallet scripts (next indices: {:?})",
                scripts.len(),
                self.next_index
            );
            registry.register_scripts(&scripts);
        }
    }
}

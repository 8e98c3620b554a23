//! The node's signer provider: LDK's `KeysManager` for channel keys, with the wallet's
//! addresses as destinations, so that cooperatively closed channels pay straight into the
//! on-chain wallet (and its scripts are already watched). The wallet gives its first change
//! address not yet paid ([`Wallet::change_script`]), so channels that stay open for years do
//! not leave unpaid addresses beyond what a restore from the seed looks at.

use std::sync::Arc;

use bitcoin::ScriptBuf;
use lightning::ln::script::ShutdownScript;
use lightning::sign::{InMemorySigner, KeysManager, SignerProvider};
use log::error;

use crate::wallet::Wallet;

/// `KeysManager` with wallet-owned destination and shutdown scripts.
pub struct NodeKeys {
    keys: Arc<KeysManager>,
    wallet: Arc<Wallet>,
}

impl NodeKeys {
    /// Wraps `keys`, sending closed-channel funds to `wallet`.
    pub fn new(keys: Arc<KeysManager>, wallet: Arc<Wallet>) -> Self {
        Self { keys, wallet }
    }
}

impl SignerProvider for NodeKeys {
    type EcdsaSigner = InMemorySigner;

    fn generate_channel_keys_id(&self, inbound: bool, user_channel_id: u128) -> [u8; 32] {
        self.keys.generate_channel_keys_id(inbound, user_channel_id)
    }

    fn derive_channel_signer(&self, channel_keys_id: [u8; 32]) -> InMemorySigner {
        self.keys.derive_channel_signer(channel_keys_id)
    }

    fn get_destination_script(&self, _channel_keys_id: [u8; 32]) -> Result<ScriptBuf, ()> {
        self.wallet.change_script().map_err(|err| {
            error!("no wallet script for a channel's destination: {err}");
        })
    }

    fn get_shutdown_scriptpubkey(&self) -> Result<ShutdownScript, ()> {
        let script = self.wallet.change_script().map_err(|err| {
            error!("no wallet script for a channel's shutdown: {err}");
        })?;
        ShutdownScript::try_from(script).map_err(|err| {
            error!("the wallet's script cannot be a shutdown script: {err:?}");
        })
    }
}

/// `N` bytes from the operating system's random source.
pub fn random_bytes<const N: usize>() -> [u8; N] {
    use bitcoin::secp256k1::rand::RngCore;
    let mut bytes = [0u8; N];
    bitcoin::secp256k1::rand::rngs::OsRng.fill_bytes(&mut bytes);
    bytes
}

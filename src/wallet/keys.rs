//! Keys of the on-chain wallet: BIP 84 descriptors derived from the node's seed.
//!
//! The wallet stores no secret of its own. Its BIP 32 master key is derived from the same 32-byte
//! seed that LDK's `KeysManager` gets; LDK derives its keys on other paths (`m/0'` to `m/3'` and
//! below), so the two never share a key. The descriptors are `wpkh(m/84'/c'/0'/0/*)` (receive)
//! and `wpkh(m/84'/c'/0'/1/*)` (change) with `c` = 0 on mainnet and 1 on the test networks.

use bdk_wallet::descriptor::{ExtendedDescriptor, IntoWalletDescriptor};
use bdk_wallet::signer::SignersContainer;
use bdk_wallet::template::Bip84;
use bdk_wallet::KeychainKind;
use bitcoin::bip32::Xpriv;
use bitcoin::secp256k1::{All, Secp256k1};
use bitcoin::Network;

use super::WalletError;

/// The public descriptors and the signers of both keychains.
pub(crate) struct WalletKeys {
    /// Receive addresses.
    pub external: ExtendedDescriptor,
    /// Change addresses.
    pub internal: ExtendedDescriptor,
    /// Signers for inputs of the external keychain.
    pub external_signers: SignersContainer,
    /// Signers for inputs of the internal keychain.
    pub internal_signers: SignersContainer,
}

impl WalletKeys {
    /// Derives the BIP 84 descriptors of `network` from `seed`.
    pub fn derive(
        seed: &[u8; 32],
        network: Network,
        secp: &Secp256k1<All>,
    ) -> Result<Self, WalletError> {
        let master = Xpriv::new_master(network, seed)
            .map_err(|e| WalletError::KeyDerivation(e.to_string()))?;
        let (external, external_keys) = Bip84(master, KeychainKind::External)
            .into_wallet_descriptor(secp, network.into())
            .map_err(|e| WalletError::KeyDerivation(e.to_string()))?;
        let (internal, internal_keys) = Bip84(master, KeychainKind::Internal)
            .into_wallet_descriptor(secp, network.into())
            .map_err(|e| WalletError::KeyDerivation(e.to_string()))?;
        let external_signers = SignersContainer::build(external_keys, &external, secp);
        let internal_signers = SignersContainer::build(internal_keys, &internal, secp);
        Ok(WalletKeys {
            external,
            internal,
            external_signers,
            internal_signers,
        })
    }
}

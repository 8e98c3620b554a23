//! The remembered addresses of Lightning peers: those given to `connect`, and channel peers'
//! (from gossip too); at most [`MAX_REMEMBERED_PEERS`], channel peers always kept.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};

use bitcoin::secp256k1::PublicKey;
use lightning::util::persist::KVStoreSync;
use log::{debug, warn};

use crate::node::ldk::types::Store;

const NAMESPACE: &str = "peers";
/// Most peers remembered; beyond it, peers without a channel are forgotten to make room.
pub const MAX_REMEMBERED_PEERS: usize = 1_000;

/// Remembered peer addresses.
pub struct PeerStore {
    kv: Arc<Store>,
    addresses: Mutex<HashMap<PublicKey, String>>,
    max: usize,
}

impl PeerStore {
    /// Loads remembered addresses, keeping at most [`MAX_REMEMBERED_PEERS`].
    pub fn load(kv: Arc<Store>) -> Result<Self, std::io::Error> {
        Self::load_with_limit(kv, MAX_REMEMBERED_PEERS)
    }

    /// Loads remembered addresses, keeping at most `max` (more only for channel peers).
    pub fn load_with_limit(kv: Arc<Store>, max: usize) -> Result<Self, std::io::Error> {
        let mut addresses = HashMap::new();
        for key in kv.list(NAMESPACE, "")? {
            let Ok(node_id) = key.parse::<PublicKey>() else {
                warn!("ignoring peer record {key:?}: not a public key");
                continue;
            };
            let address = String::from_utf8(kv.read(NAMESPACE, "", &key)?)
                .map_err(|err| std::io::Error::new(std::io::ErrorKind::InvalidData, err))?;
            addresses.insert(node_id, address);
        }
        Ok(Self {
            kv,
            addresses: Mutex::new(addresses),
            max,
        })
    }

    /// Remembers `address` for `node_id`. When that would pass the limit, peers that are not
    /// in `channel_peers` are forgotten first (channel peers are kept whatever their number:
    /// each costs a channel).
    pub fn remember(
        &self,
        node_id: PublicKey,
        address: &str,
        channel_peers: &HashSet<PublicKey>,
    ) -> Result<(), std::io::Error> {
        if self.get(&node_id).as_deref() == Some(address) {
            return Ok(());
        }
        self.make_room_for(&node_id, channel_peers)?;
        self.kv.write(
            NAMESPACE,
            "",
            &node_id.to_string(),
            address.as_bytes().to_vec(),
        )?;
        self.lock().insert(node_id, address.to_string());
        Ok(())
    }

    /// Forgets peers without a channel until `node_id` fits within the limit.
    fn make_room_for(
        &self,
        node_id: &PublicKey,
        channel_peers: &HashSet<PublicKey>,
    ) -> Result<(), std::io::Error> {
        let mut addresses = self.lock();
        if addresses.contains_key(node_id) || addresses.len() < self.max {
            return Ok(());
        }
        let mut forgettable: Vec<PublicKey> = addresses
            .keys()
            .filter(|id| !channel_peers.contains(id))
            .copied()
            .collect();
        forgettable.sort();
        let excess = addresses.len() + 1 - self.max;
        for id in forgettable.into_iter().take(excess) {
            self.kv.remove(NAMESPACE, "", &id.to_string(), false)?;
            addresses.remove(&id);
            debug!(
                "forgot the address of {id}: {} peers are remembered",
                self.max
            );
        }
        Ok(())
    }

    /// Forgets `node_id`'s address, so that it is no longer reconnected.
    pub fn forget(&self, node_id: &PublicKey) -> Result<(), std::io::Error> {
        if self.lock().remove(node_id).is_some() {
            self.kv.remove(NAMESPACE, "", &node_id.to_string(), false)?;
        }
        Ok(())
    }

    /// The remembered address of `node_id`.
    pub fn get(&self, node_id: &PublicKey) -> Option<String> {
        self.lock().get(node_id).cloned()
    }

    /// All remembered peers.
    pub fn all(&self) -> Vec<(PublicKey, String)> {
        self.lock().iter().map(|(k, v)| (*k, v.clone())).collect()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<PublicKey, String>> {
        self.addresses.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::secp256k1::{Secp256k1, SecretKey};

    use super::*;

    fn node_id(n: u32) -> PublicKey {
        let mut key = [0u8; 32];
        key[28..].copy_from_slice(&(n + 1).to_be_bytes());
        PublicKey::from_secret_key(&Secp256k1::new(), &SecretKey::from_slice(&key).unwrap())
    }

    #[test]
    fn the_remembered_peers_stay_bounded_and_channel_peers_are_kept() {
        let dir = tempfile::tempdir().unwrap();
        let kv = || Arc::new(Store::new(dir.path().to_path_buf()));
        let peers = PeerStore::load_with_limit(kv(), 20).unwrap();
        let channel_peers: HashSet<PublicKey> = (0..5).map(node_id).collect();
        for n in 0..300 {
            peers
                .remember(
                    node_id(n),
                    &format!("127.0.0.1:{}", 10_000 + n),
                    &channel_peers,
                )
                .unwrap();
        }
        assert_eq!(peers.all().len(), 20);
        for id in &channel_peers {
            assert!(peers.get(id).is_some(), "channel peer {id} kept");
        }
        assert_eq!(
            peers.get(&node_id(299)).as_deref(),
            Some("127.0.0.1:10299"),
            "the newest is remembered"
        );
        assert_eq!(
            kv().list(NAMESPACE, "").unwrap().len(),
            20,
            "forgotten on disk too"
        );
        assert_eq!(
            PeerStore::load_with_limit(kv(), 20).unwrap().all().len(),
            20
        );

        // Channel peers are remembered beyond the limit.
        let many: HashSet<PublicKey> = (0..30).map(node_id).collect();
        for n in 0..30 {
            peers
                .remember(node_id(n), &format!("127.0.0.1:{}", 20_000 + n), &many)
                .unwrap();
        }
        assert_eq!(peers.all().len(), 30);
    }
}

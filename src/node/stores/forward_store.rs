//! The record of forwarded payments: one durable file per `PaymentForwarded` event (what went
//! out, the fee earned, the channels in and out), written before the event is acknowledged to
//! LDK, so `forwards` survives restarts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use crate::node::ldk::types::Store;
use crate::node::operations::info::ForwardInfo;
use lightning::util::persist::KVStoreSync;

const NAMESPACE: &str = "forwards";

/// The persisted forwards, read back from the key-value store when listed.
pub struct ForwardStore {
    kv: Arc<Store>,
    sequence: AtomicU32,
}

impl ForwardStore {
    /// The forwards kept in `kv`.
    pub fn new(kv: Arc<Store>) -> Self {
        Self {
            kv,
            sequence: AtomicU32::new(0),
        }
    }

    /// Stores `record` durably under a new key that sorts after every earlier one.
    pub fn record(&self, record: &ForwardInfo) -> Result<(), std::io::Error> {
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos() as u64);
        let sequence = self.sequence.fetch_add(1, Ordering::Relaxed);
        let key = format!("{nanos:016x}{sequence:08x}");
        let bytes = serde_json::to_vec(record).map_err(std::io::Error::other)?;
        self.kv.write(NAMESPACE, "", &key, bytes)?;
        Ok(())
    }

    /// Every stored forward, oldest first.
    pub fn list(&self) -> Result<Vec<ForwardInfo>, std::io::Error> {
        let mut keys = self.kv.list(NAMESPACE, "")?;
        keys.sort();
        keys.iter()
            .map(|key| {
                let bytes = self.kv.read(NAMESPACE, "", key)?;
                serde_json::from_slice(&bytes).map_err(|err| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("forward record {key}: {err}"),
                    )
                })
            })
            .collect()
    }
}

impl crate::node::Node {
    /// Forwarded payments, oldest first.
    pub fn forwards(&self) -> Result<Vec<ForwardInfo>, crate::node::NodeError> {
        self.forwards
            .list()
            .map_err(|err| crate::node::NodeError::storage("reading forwarded payments", err))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::stores::payment_store::unix_now;

    #[test]
    fn forwards_survive_a_reload_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let record = |fee| ForwardInfo {
            prev_channel_id: Some("aa".repeat(32)),
            next_channel_id: Some("bb".repeat(32)),
            prev_node_id: None,
            next_node_id: None,
            amount_msat: Some(1_000),
            fee_msat: Some(fee),
            claimed_on_chain: false,
            at: unix_now(),
        };
        let store = ForwardStore::new(Arc::new(Store::new(dir.path().to_path_buf())));
        for fee in [1, 2, 3] {
            store.record(&record(fee)).unwrap();
        }
        drop(store);
        let reloaded = ForwardStore::new(Arc::new(Store::new(dir.path().to_path_buf())));
        let fees: Vec<_> = reloaded
            .list()
            .unwrap()
            .iter()
            .map(|r| r.fee_msat)
            .collect();
        assert_eq!(fees, [Some(1), Some(2), Some(3)]);
    }
}

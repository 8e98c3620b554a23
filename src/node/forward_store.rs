//! The record of forwarded payments: one durable file per `PaymentForwarded` event (what went
//! out, the fee earned, the channels in and out), written before the event is acknowledged to
//! LDK, so `forwards` survives restarts.

use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use lightning::util::persist::KVStoreSync;
use serde::{Deserialize, Serialize};

use super::info::ForwardInfo;
use super::types::Store;

const NAMESPACE: &str = "forwards";

/// One forwarded payment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ForwardRecord {
    /// The channel the payment came in on (hex), if LDK knew it.
    pub prev_channel_id: Option<String>,
    /// The channel it went out on (hex), if LDK knew it.
    pub next_channel_id: Option<String>,
    /// The node it came from.
    pub prev_node_id: Option<String>,
    /// The node it went to.
    pub next_node_id: Option<String>,
    /// What was forwarded out.
    pub amount_msat: Option<u64>,
    /// The fee earned.
    pub fee_msat: Option<u64>,
    /// Whether the incoming HTLC was claimed on chain.
    pub claimed_on_chain: bool,
    /// Unix seconds when it was recorded.
    pub at: u64,
}

impl ForwardRecord {
    /// As returned by the node's operations.
    pub fn to_info(&self) -> ForwardInfo {
        ForwardInfo {
            prev_channel_id: self.prev_channel_id.clone(),
            next_channel_id: self.next_channel_id.clone(),
            prev_node_id: self.prev_node_id.clone(),
            next_node_id: self.next_node_id.clone(),
            amount_msat: self.amount_msat,
            fee_msat: self.fee_msat,
            claimed_on_chain: self.claimed_on_chain,
            at: self.at,
        }
    }
}

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
    pub fn record(&self, record: &ForwardRecord) -> Result<(), std::io::Error> {
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
    pub fn list(&self) -> Result<Vec<ForwardRecord>, std::io::Error> {
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

impl super::Node {
    /// Forwarded payments, oldest first.
    pub fn forwards(&self) -> Result<Vec<ForwardInfo>, super::NodeError> {
        let records = self
            .forwards
            .list()
            .map_err(|err| super::NodeError::storage("reading forwarded payments", err))?;
        Ok(records.iter().map(ForwardRecord::to_info).collect())
    }
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forwards_survive_a_reload_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let record = |fee| ForwardRecord {
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

//! The payment record: every payment sent or received, with its hash, amount, fee, status,
//! preimage and timestamps, persisted in the node's key-value store (one durable file per
//! payment) before the event that changed it is acknowledged to LDK.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lightning::util::persist::KVStoreSync;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use super::info::{PaymentDirection, PaymentInfo, PaymentStatus};
use super::types::Store;

const NAMESPACE: &str = "payments";

/// One payment as stored.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PaymentRecord {
    /// Hex payment id (outbound) or payment hash (inbound).
    pub id: String,
    /// Hex payment hash, once known.
    pub payment_hash: Option<String>,
    /// `inbound` or `outbound`.
    pub direction: String,
    /// What kind: `bolt11`, `bolt12`, `keysend`.
    pub kind: String,
    /// Amount, if known.
    pub amount_msat: Option<u64>,
    /// For inbound payments: what has arrived (claimable or claimed).
    #[serde(default)]
    pub received_msat: Option<u64>,
    /// Fee paid, for outbound payments once succeeded.
    pub fee_msat: Option<u64>,
    /// `pending`, `succeeded` or `failed`.
    pub status: String,
    /// Hex preimage, once known.
    pub preimage: Option<String>,
    /// Why it failed.
    pub failure: Option<String>,
    /// Unix seconds.
    pub created_at: u64,
    /// Unix seconds.
    pub updated_at: u64,
}

impl PaymentRecord {
    /// A new pending record.
    pub fn new(id: String, direction: PaymentDirection, kind: &str) -> Self {
        let now = unix_now();
        Self {
            id,
            payment_hash: None,
            direction: direction.as_str().to_string(),
            kind: kind.to_string(),
            amount_msat: None,
            received_msat: None,
            fee_msat: None,
            status: PaymentStatus::Pending.as_str().to_string(),
            preimage: None,
            failure: None,
            created_at: now,
            updated_at: now,
        }
    }

    /// The record's status.
    pub fn status(&self) -> PaymentStatus {
        match self.status.as_str() {
            "succeeded" => PaymentStatus::Succeeded,
            "failed" => PaymentStatus::Failed,
            _ => PaymentStatus::Pending,
        }
    }

    /// As returned by the node's operations.
    pub fn to_info(&self) -> PaymentInfo {
        PaymentInfo {
            payment_hash: self.payment_hash.clone().unwrap_or_else(|| self.id.clone()),
            direction: if self.direction == "inbound" {
                PaymentDirection::Inbound
            } else {
                PaymentDirection::Outbound
            },
            amount_msat: self.amount_msat,
            received_msat: self.received_msat,
            fee_msat: self.fee_msat,
            status: self.status(),
            preimage: self.preimage.clone(),
            failure: self.failure.clone(),
            created_at: self.created_at,
            updated_at: self.updated_at,
        }
    }
}

/// Lower-case hex of `bytes`, as payment ids, hashes and preimages are shown.
pub fn hex(bytes: &[u8]) -> String {
    use bitcoin::hex::DisplayHex;
    bytes.to_lower_hex_string()
}

/// Seconds since the Unix epoch.
pub fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The persisted set of payments.
pub struct PaymentStore {
    kv: Arc<Store>,
    records: Mutex<BTreeMap<(String, String), PaymentRecord>>,
    changes: watch::Sender<u64>,
}

impl PaymentStore {
    /// Loads every stored payment.
    pub fn load(kv: Arc<Store>) -> Result<Self, std::io::Error> {
        let mut records = BTreeMap::new();
        for direction in ["inbound", "outbound"] {
            for key in kv.list(NAMESPACE, direction)? {
                let bytes = kv.read(NAMESPACE, direction, &key)?;
                let record: PaymentRecord = serde_json::from_slice(&bytes).map_err(|err| {
                    std::io::Error::new(
                        std::io::ErrorKind::InvalidData,
                        format!("payment record {direction}/{key}: {err}"),
                    )
                })?;
                records.insert((direction.to_string(), key), record);
            }
        }
        Ok(Self {
            kv,
            records: Mutex::new(records),
            changes: watch::channel(0).0,
        })
    }

    /// Writes `record` durably, then makes it visible.
    pub fn upsert(&self, mut record: PaymentRecord) -> Result<(), std::io::Error> {
        record.updated_at = unix_now();
        let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        self.kv
            .write(NAMESPACE, &record.direction, &record.id, bytes)?;
        self.lock()
            .insert((record.direction.clone(), record.id.clone()), record);
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Applies `change` to the stored record (or a new one from `create`) and persists it.
    ///
    /// A succeeded payment stays succeeded: its preimage proves it was paid. LDK can still
    /// report it failed when it restarts from a channel manager written before the payment
    /// completed; such a change is refused (logged) and the stored record returned.
    pub fn update(
        &self,
        direction: PaymentDirection,
        id: &str,
        create: impl FnOnce() -> PaymentRecord,
        change: impl FnOnce(&mut PaymentRecord),
    ) -> Result<PaymentRecord, std::io::Error> {
        let stored = self.get(direction, id);
        let mut record = stored.clone().unwrap_or_else(create);
        change(&mut record);
        if let Some(stored) = stored {
            if stored.status() == PaymentStatus::Succeeded
                && record.status() != PaymentStatus::Succeeded
            {
                log::warn!(
                    "payment {id} already succeeded; not marking it {} ({})",
                    record.status,
                    record.failure.as_deref().unwrap_or("no reason given")
                );
                return Ok(stored);
            }
        }
        self.upsert(record.clone())?;
        Ok(record)
    }

    /// The record of `id` in `direction`.
    pub fn get(&self, direction: PaymentDirection, id: &str) -> Option<PaymentRecord> {
        self.lock()
            .get(&(direction.as_str().to_string(), id.to_string()))
            .cloned()
    }

    /// Every record, oldest first.
    pub fn list(&self) -> Vec<PaymentRecord> {
        let mut all: Vec<_> = self.lock().values().cloned().collect();
        all.sort_by_key(|r| (r.created_at, r.id.clone()));
        all
    }

    /// A receiver that changes whenever a record does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<(String, String), PaymentRecord>> {
        self.records.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn store(dir: &std::path::Path) -> PaymentStore {
        PaymentStore::load(Arc::new(Store::new(dir.to_path_buf()))).unwrap()
    }

    fn mark(status: PaymentStatus) -> impl FnOnce(&mut PaymentRecord) {
        move |r| r.status = status.as_str().into()
    }

    #[test]
    fn a_succeeded_payment_is_never_marked_failed_again() {
        let dir = tempfile::tempdir().unwrap();
        let payments = store(dir.path());
        let new = || PaymentRecord::new("ab".into(), PaymentDirection::Outbound, "bolt11");
        let out = PaymentDirection::Outbound;
        payments.update(out, "ab", new, |_| {}).unwrap();
        payments
            .update(out, "ab", new, mark(PaymentStatus::Succeeded))
            .unwrap();

        let kept = payments
            .update(out, "ab", new, mark(PaymentStatus::Failed))
            .unwrap();
        assert_eq!(kept.status(), PaymentStatus::Succeeded);
        assert_eq!(
            store(dir.path()).get(out, "ab").unwrap().status(),
            PaymentStatus::Succeeded,
            "what is on disk stays succeeded"
        );
    }

    #[test]
    fn a_pending_payment_can_fail_and_a_failed_one_can_still_succeed() {
        let dir = tempfile::tempdir().unwrap();
        let payments = store(dir.path());
        let new = || PaymentRecord::new("cd".into(), PaymentDirection::Outbound, "bolt11");
        let out = PaymentDirection::Outbound;
        let failed = payments
            .update(out, "cd", new, mark(PaymentStatus::Failed))
            .unwrap();
        assert_eq!(failed.status(), PaymentStatus::Failed);
        let succeeded = payments
            .update(out, "cd", new, mark(PaymentStatus::Succeeded))
            .unwrap();
        assert_eq!(succeeded.status(), PaymentStatus::Succeeded);
    }
}

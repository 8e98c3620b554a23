//! The payment record: every payment sent or received, with its hash, amount, fee, status,
//! preimage and timestamps, persisted in the node's key-value store (one durable file per
//! payment) before the event that changed it is acknowledged to LDK.
//!
//! Records that other nodes create by paying us unasked (keysend, BOLT12 offers) are bounded
//! (see [`Retention`]): a sender of many tiny payments cannot fill the disk or the memory.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use lightning::util::persist::KVStoreSync;
use serde::{Deserialize, Serialize};
use tokio::sync::watch;

use crate::node::ldk::types::Store;
use crate::node::operations::info::{PaymentDirection, PaymentInfo, PaymentStatus};

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

    /// Whether another node created this record by paying us unasked (keysend or a BOLT12
    /// offer), as opposed to an invoice of ours or a payment we sent.
    pub fn is_unsolicited(&self) -> bool {
        self.direction == PaymentDirection::Inbound.as_str()
            && matches!(self.kind.as_str(), "keysend" | "bolt12")
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

/// How many records of unsolicited payments ([`PaymentRecord::is_unsolicited`]) are kept.
///
/// Records of unsolicited payments that did not succeed are deleted once unchanged for
/// `unfinished_secs` (a keysend is claimed at once, so one still pending then never will be).
/// Beyond `max_unsolicited` records, the oldest failed ones and then the oldest succeeded ones
/// below `small_msat` are deleted. Payments in flight are not deleted for the count. Succeeded
/// payments of at least `small_msat`, invoices and payments sent are never deleted: they cost
/// their sender real money or were asked for by the operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Retention {
    /// Most records of unsolicited payments kept (unless larger ones or ones in flight).
    pub max_unsolicited: usize,
    /// Succeeded unsolicited payments below this may be deleted to stay within the count.
    pub small_msat: u64,
    /// Unsolicited payments that did not succeed are deleted this long after their last change.
    pub unfinished_secs: u64,
}

impl Default for Retention {
    fn default() -> Self {
        Retention {
            max_unsolicited: 10_000,
            small_msat: 1_000_000,
            unfinished_secs: 24 * 60 * 60,
        }
    }
}

type Key = (String, String);

/// The persisted set of payments.
pub struct PaymentStore {
    kv: Arc<Store>,
    records: Mutex<BTreeMap<Key, PaymentRecord>>,
    changes: watch::Sender<u64>,
    retention: Retention,
}

impl PaymentStore {
    /// Loads every stored payment, deleting the unsolicited ones the default [`Retention`]
    /// gives up.
    pub fn load(kv: Arc<Store>) -> Result<Self, std::io::Error> {
        Self::load_with(kv, Retention::default())
    }

    /// Loads every stored payment, deleting the unsolicited ones `retention` gives up.
    pub fn load_with(kv: Arc<Store>, retention: Retention) -> Result<Self, std::io::Error> {
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
        let store = Self {
            kv,
            records: Mutex::new(records),
            changes: watch::channel(0).0,
            retention,
        };
        store.prune();
        Ok(store)
    }

    /// Writes `record` durably, then makes it visible.
    pub fn upsert(&self, mut record: PaymentRecord) -> Result<(), std::io::Error> {
        record.updated_at = unix_now();
        let bytes = serde_json::to_vec(&record).map_err(std::io::Error::other)?;
        self.kv
            .write(NAMESPACE, &record.direction, &record.id, bytes)?;
        let unsolicited = record.is_unsolicited();
        let new = self
            .lock()
            .insert((record.direction.clone(), record.id.clone()), record)
            .is_none();
        if unsolicited && new {
            self.prune();
        }
        self.changes.send_modify(|n| *n += 1);
        Ok(())
    }

    /// Deletes the records of unsolicited payments that [`Retention`] gives up, from disk
    /// first. A record that cannot be deleted is kept (and logged).
    fn prune(&self) {
        let retention = self.retention;
        let now = unix_now();
        let mut records = self.lock();
        // (order of deletion, key): failed or stale before succeeded small ones, oldest first.
        let mut candidates: Vec<((u8, u64, u64), Key)> = Vec::new();
        let mut doomed: Vec<Key> = Vec::new();
        let mut unsolicited = 0usize;
        for (key, record) in records.iter().filter(|(_, r)| r.is_unsolicited()) {
            unsolicited += 1;
            let unchanged_for = now.saturating_sub(record.updated_at);
            let amount = record.received_msat.or(record.amount_msat).unwrap_or(0);
            let class = match record.status() {
                PaymentStatus::Succeeded if amount < retention.small_msat => 1,
                PaymentStatus::Succeeded => continue,
                PaymentStatus::Pending | PaymentStatus::Failed
                    if unchanged_for >= retention.unfinished_secs =>
                {
                    doomed.push(key.clone());
                    continue;
                }
                PaymentStatus::Failed => 0,
                PaymentStatus::Pending => continue,
            };
            candidates.push(((class, record.updated_at, record.created_at), key.clone()));
        }
        let over = (unsolicited - doomed.len()).saturating_sub(retention.max_unsolicited);
        if over > 0 {
            candidates.sort();
            doomed.extend(candidates.into_iter().take(over).map(|(_, key)| key));
        }
        if doomed.is_empty() {
            return;
        }
        let mut deleted = 0usize;
        for key in doomed {
            match self.kv.remove(NAMESPACE, &key.0, &key.1, false) {
                Ok(()) => {
                    records.remove(&key);
                    deleted += 1;
                }
                Err(err) => {
                    log::warn!("could not delete payment record {}/{}: {err}", key.0, key.1)
                }
            }
        }
        log::debug!(
            "deleted {deleted} record(s) of unsolicited payments; {} kept",
            unsolicited - deleted
        );
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
        self.page(0, usize::MAX)
    }

    /// At most `limit` records, oldest first, after skipping the `offset` oldest.
    pub fn page(&self, offset: usize, limit: usize) -> Vec<PaymentRecord> {
        let records = self.lock();
        let mut all: Vec<&PaymentRecord> = records.values().collect();
        all.sort_by(|a, b| (a.created_at, &a.id).cmp(&(b.created_at, &b.id)));
        all.into_iter().skip(offset).take(limit).cloned().collect()
    }

    /// A receiver that changes whenever a record does.
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changes.subscribe()
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<Key, PaymentRecord>> {
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

    fn store_with(dir: &std::path::Path, retention: Retention) -> PaymentStore {
        PaymentStore::load_with(Arc::new(Store::new(dir.to_path_buf())), retention).unwrap()
    }

    fn files(dir: &std::path::Path, direction: &str) -> usize {
        Store::new(dir.to_path_buf())
            .list(NAMESPACE, direction)
            .unwrap()
            .len()
    }

    /// Records a payment another node sent us unasked, as the event handler does.
    fn receive(payments: &PaymentStore, n: u32, kind: &str, msat: u64, status: PaymentStatus) {
        let id = format!("{n:064x}");
        let new = || PaymentRecord::new(id.clone(), PaymentDirection::Inbound, kind);
        payments
            .update(PaymentDirection::Inbound, &id, new, |r| {
                r.payment_hash = Some(id.clone());
                r.amount_msat = Some(msat);
                r.received_msat = Some(msat);
                r.status = status.as_str().into();
            })
            .unwrap();
    }

    #[test]
    fn a_flood_of_small_keysends_stays_bounded_and_keeps_what_matters() {
        let dir = tempfile::tempdir().unwrap();
        let retention = Retention {
            max_unsolicited: 50,
            small_msat: 1_000,
            ..Retention::default()
        };
        let payments = store_with(dir.path(), retention);
        // An invoice of ours, a payment we sent, and large keysends: never deleted.
        let invoice = PaymentRecord::new("aa".repeat(32), PaymentDirection::Inbound, "bolt11");
        payments.upsert(invoice).unwrap();
        let sent = PaymentRecord::new("bb".repeat(32), PaymentDirection::Outbound, "keysend");
        payments.upsert(sent).unwrap();
        for n in 0..5 {
            receive(&payments, n, "keysend", 5_000, PaymentStatus::Succeeded);
        }
        // A few that failed, then a flood of 1 msat keysends and offer payments.
        for n in 5..10 {
            receive(&payments, n, "keysend", 1, PaymentStatus::Failed);
        }
        for n in 10..1_010 {
            let kind = if n % 2 == 0 { "keysend" } else { "bolt12" };
            receive(&payments, n, kind, 1, PaymentStatus::Succeeded);
        }

        let unsolicited = |p: &PaymentStore| p.list().iter().filter(|r| r.is_unsolicited()).count();
        assert_eq!(unsolicited(&payments), 50);
        assert_eq!(payments.list().len(), 52);
        let inbound = PaymentDirection::Inbound;
        assert!(payments.get(inbound, &"aa".repeat(32)).is_some());
        assert!(payments
            .get(PaymentDirection::Outbound, &"bb".repeat(32))
            .is_some());
        for n in 0..5 {
            assert!(
                payments.get(inbound, &format!("{n:064x}")).is_some(),
                "large {n}"
            );
        }
        for n in 5..10 {
            assert!(
                payments.get(inbound, &format!("{n:064x}")).is_none(),
                "failed {n}"
            );
        }
        assert_eq!(files(dir.path(), "inbound"), 51, "deleted from disk too");
        assert_eq!(unsolicited(&store_with(dir.path(), retention)), 50);
    }

    #[test]
    fn unsolicited_payments_that_never_finished_are_deleted_after_a_while() {
        let dir = tempfile::tempdir().unwrap();
        let kv = Store::new(dir.path().to_path_buf());
        let day_ago = unix_now() - 24 * 60 * 60 - 1;
        let write = |id: String, kind: &str, status: PaymentStatus, at: u64| {
            let mut record = PaymentRecord::new(id.clone(), PaymentDirection::Inbound, kind);
            record.status = status.as_str().into();
            record.created_at = at;
            record.updated_at = at;
            kv.write(
                NAMESPACE,
                "inbound",
                &id,
                serde_json::to_vec(&record).unwrap(),
            )
            .unwrap();
        };
        write("01".repeat(32), "keysend", PaymentStatus::Pending, day_ago);
        write("02".repeat(32), "bolt12", PaymentStatus::Failed, day_ago);
        write(
            "03".repeat(32),
            "keysend",
            PaymentStatus::Pending,
            unix_now(),
        );
        write(
            "04".repeat(32),
            "keysend",
            PaymentStatus::Succeeded,
            day_ago,
        );
        write("05".repeat(32), "hold", PaymentStatus::Pending, day_ago);

        let payments = store(dir.path());
        let kept: Vec<String> = payments.list().into_iter().map(|r| r.id).collect();
        assert_eq!(kept.len(), 3, "{kept:?}");
        for id in ["03", "04", "05"] {
            assert!(kept.contains(&id.repeat(32)), "{id} kept");
        }
        assert_eq!(files(dir.path(), "inbound"), 3);
    }

    #[test]
    fn pages_follow_the_oldest_first_order() {
        let dir = tempfile::tempdir().unwrap();
        let payments = store(dir.path());
        for n in 0..5 {
            receive(&payments, n, "keysend", 5_000, PaymentStatus::Succeeded);
        }
        let all: Vec<String> = payments.list().into_iter().map(|r| r.id).collect();
        let page: Vec<String> = payments.page(1, 2).into_iter().map(|r| r.id).collect();
        assert_eq!(page, all[1..3].to_vec());
        assert!(payments.page(5, 10).is_empty());
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

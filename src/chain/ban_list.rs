//! Banned Bitcoin peers: a peer proved to have sent bad data (a filter that does not belong
//! to its block) is not connected to for [`BAN_DURATION`]. Bans are kept in the chain
//! database, written durably before they take effect, so they outlast a restart; they are by
//! address (or name) and port, as peers are configured.

use std::collections::HashMap;
use std::str::FromStr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use log::warn;
use rusqlite::params;

use super::db::ChainDb;
use super::error::StoreError;
use super::peer_address::PeerAddress;

/// How long a peer stays banned.
pub const BAN_DURATION: Duration = Duration::from_secs(24 * 60 * 60);

/// One banned peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ban {
    /// The peer's address and port.
    pub addr: PeerAddress,
    /// When the ban ends, in seconds since the Unix epoch.
    pub until: u64,
    /// What the peer was proved to have sent.
    pub reason: String,
}

/// The banned peers, stored in the chain database.
#[derive(Debug)]
pub struct BanList {
    db: Arc<ChainDb>,
    bans: Mutex<HashMap<PeerAddress, Ban>>,
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl BanList {
    /// Loads the bans that have not ended from `db`.
    pub fn load(db: Arc<ChainDb>) -> Result<Self, StoreError> {
        let now = now();
        let mut bans = HashMap::new();
        {
            let conn = db.conn();
            let mut statement = conn.prepare("SELECT address, until, reason FROM banned_peers")?;
            let rows = statement.query_map([], |row| {
                Ok((
                    row.get::<_, String>(0)?,
                    row.get::<_, i64>(1)?,
                    row.get::<_, String>(2)?,
                ))
            })?;
            for row in rows {
                let (address, until, reason) = row?;
                let Ok(addr) = PeerAddress::from_str(&address) else {
                    warn!("ignoring a banned peer with an unreadable address {address:?}");
                    continue;
                };
                let until = u64::try_from(until).unwrap_or(0);
                if until > now {
                    bans.insert(
                        addr.clone(),
                        Ban {
                            addr,
                            until,
                            reason,
                        },
                    );
                }
            }
        }
        Ok(Self {
            db,
            bans: Mutex::new(bans),
        })
    }

    /// Bans `addr` for [`BAN_DURATION`] from now for `reason`; stored before it returns.
    pub fn ban(&self, addr: &PeerAddress, reason: &str) -> Result<(), StoreError> {
        self.ban_for(addr, reason, BAN_DURATION)
    }

    /// Bans `addr` for `duration` from now for `reason`.
    pub fn ban_for(
        &self,
        addr: &PeerAddress,
        reason: &str,
        duration: Duration,
    ) -> Result<(), StoreError> {
        let until = now().saturating_add(duration.as_secs());
        self.db.write(|tx| {
            tx.execute(
                "INSERT OR REPLACE INTO banned_peers (address, until, reason) VALUES (?1, ?2, ?3)",
                params![
                    addr.to_string(),
                    i64::try_from(until).unwrap_or(i64::MAX),
                    reason
                ],
            )?;
            // Ended bans are forgotten with each new one.
            tx.execute(
                "DELETE FROM banned_peers WHERE until <= ?1",
                [i64::try_from(now()).unwrap_or(i64::MAX)],
            )?;
            Ok(())
        })?;
        warn!(
            "banned Bitcoin peer {addr} for {} h: {reason}",
            duration.as_secs() / 3600
        );
        self.lock().insert(
            addr.clone(),
            Ban {
                addr: addr.clone(),
                until,
                reason: reason.to_string(),
            },
        );
        Ok(())
    }

    /// Whether `addr` is banned now.
    pub fn is_banned(&self, addr: &PeerAddress) -> bool {
        self.lock().get(addr).is_some_and(|ban| ban.until > now())
    }

    /// The bans in force, by address.
    pub fn list(&self) -> Vec<Ban> {
        let now = now();
        let mut bans: Vec<Ban> = self
            .lock()
            .values()
            .filter(|ban| ban.until > now)
            .cloned()
            .collect();
        bans.sort_by(|a, b| a.addr.cmp(&b.addr));
        bans
    }

    fn lock(&self) -> MutexGuard<'_, HashMap<PeerAddress, Ban>> {
        self.bans.lock().unwrap_or_else(|p| p.into_inner())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::Network;

    #[test]
    fn a_ban_outlasts_a_reopening_and_ends_when_its_time_is_up() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("chain.sqlite");
        let liar: PeerAddress = "127.0.0.1:18444".parse().unwrap();
        let honest: PeerAddress = "127.0.0.1:18445".parse().unwrap();
        let onion: PeerAddress = format!("{}.onion:8333", "a".repeat(56)).parse().unwrap();
        {
            let db = Arc::new(ChainDb::open(&path, Network::Regtest).unwrap());
            let bans = BanList::load(db).unwrap();
            bans.ban(&liar, "a wrong filter").unwrap();
            bans.ban(&onion, "a wrong filter header").unwrap();
            bans.ban_for(&honest, "over at once", Duration::ZERO)
                .unwrap();
            assert!(bans.is_banned(&liar));
            assert!(!bans.is_banned(&honest));
        }
        let db = Arc::new(ChainDb::open(&path, Network::Regtest).unwrap());
        let bans = BanList::load(db).unwrap();
        assert!(bans.is_banned(&liar));
        assert!(
            bans.is_banned(&onion),
            "a peer given by name is banned by name"
        );
        assert!(!bans.is_banned(&honest));
        let listed = bans.list();
        assert_eq!(listed.len(), 2);
        assert_eq!(listed[0].addr, liar);
        assert_eq!(listed[0].reason, "a wrong filter");
        let left = listed[0].until - now();
        assert!(
            (BAN_DURATION.as_secs() - 60..=BAN_DURATION.as_secs()).contains(&left),
            "{left}"
        );
    }
}

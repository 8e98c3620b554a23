//! Channels whose state is not proved current, held until it is.
//!
//! A channel restored from a backup (`--restore-from`), or found at start with a channel
//! manager older than its monitor (LDK then closes it with the monitor's commitment), may hold
//! a state its peer has since revoked: broadcasting that commitment would hand the peer the
//! whole channel. Such a channel is *held*: recorded durably in the channel store (so in its
//! mirror too) before anything can broadcast, and the broadcaster refuses its commitment
//! transactions from every path (LDK's own closes included), while a cooperative close can
//! still go out. `closechannel --force` refuses a held channel.
//!
//! A hold ends when the state is proved current or no longer matters: the peer reestablished
//! the channel and LDK accepted our state (it is usable again: LDK stops the node instead when
//! the peer proves our state old, see `fallen_behind`), or the funding was spent on chain (the
//! peer closed it). [`release_when_settled`] checks this while the node runs.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::OutPoint;
use lightning::chain::channelmonitor::Balance;
use lightning::io;
use lightning::ln::types::ChannelId;
use lightning::util::persist::KVStoreSync;
use log::{info, warn};
use tokio::sync::watch;

use crate::chain::Broadcaster;
use crate::node::ldk::types::{ChainMonitor, ChannelManager, Store};

/// Where held channels are kept, one key per channel, in the channel store.
const NAMESPACE: &str = "channels_held";

/// How often [`release_when_settled`] looks at the held channels.
const CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// Why a channel is held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HoldReason {
    /// Its state was restored from a backup directory.
    Restored,
    /// At start its channel manager was older than its monitor.
    StaleManager,
}

impl HoldReason {
    fn code(self) -> u8 {
        match self {
            HoldReason::Restored => 0,
            HoldReason::StaleManager => 1,
        }
    }

    fn from_code(code: u8) -> Option<Self> {
        match code {
            0 => Some(HoldReason::Restored),
            1 => Some(HoldReason::StaleManager),
            _ => None,
        }
    }

    /// Why, in words.
    pub fn describe(self) -> &'static str {
        match self {
            HoldReason::Restored => "its state was restored from a backup",
            HoldReason::StaleManager => {
                "its channel manager was older than its monitor at start (an interrupted \
                 write, or channel state put back from an older copy)"
            }
        }
    }
}

/// A held channel.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HeldChannel {
    /// The channel.
    pub channel_id: ChannelId,
    /// Its funding output.
    pub funding: OutPoint,
    /// Why it is held.
    pub reason: HoldReason,
}

fn invalid(key: &str, what: impl std::fmt::Display) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("held channel {key}: {what}"),
    )
}

/// Records `channels` as held in `store`, durably.
pub fn record(store: &impl KVStoreSync, channels: &[HeldChannel]) -> io::Result<()> {
    for channel in channels {
        let mut value = serialize(&channel.funding);
        value.push(channel.reason.code());
        KVStoreSync::write(store, NAMESPACE, "", &channel.channel_id.to_string(), value)?;
    }
    Ok(())
}

/// The channels held in `store`.
pub fn load(store: &impl KVStoreSync) -> io::Result<Vec<HeldChannel>> {
    let mut held = Vec::new();
    for key in KVStoreSync::list(store, NAMESPACE, "")? {
        let bytes = KVStoreSync::read(store, NAMESPACE, "", &key)?;
        let (reason, funding) = bytes
            .split_last()
            .ok_or_else(|| invalid(&key, "empty record"))?;
        let reason = HoldReason::from_code(*reason)
            .ok_or_else(|| invalid(&key, format!("unknown reason {reason}")))?;
        let funding = deserialize(funding).map_err(|err| invalid(&key, err))?;
        let channel_id = ChannelId(
            <[u8; 32] as bitcoin::hex::FromHex>::from_hex(&key)
                .map_err(|err| invalid(&key, format!("not a channel id ({err})")))?,
        );
        held.push(HeldChannel {
            channel_id,
            funding,
            reason,
        });
    }
    Ok(held)
}

/// The held channels of a running node: kept in the channel store, told to the broadcaster.
pub struct HeldChannels {
    store: Arc<Store>,
    broadcaster: Arc<Broadcaster>,
    held: Mutex<BTreeMap<ChannelId, HeldChannel>>,
}

impl HeldChannels {
    /// The channels held in `store`, whose commitments `broadcaster` now refuses.
    pub fn open(store: Arc<Store>, broadcaster: Arc<Broadcaster>) -> io::Result<Self> {
        let held: BTreeMap<ChannelId, HeldChannel> = load(&*store)?
            .into_iter()
            .map(|channel| (channel.channel_id, channel))
            .collect();
        broadcaster.hold_commitments_of(held.values().map(|channel| channel.funding));
        for channel in held.values() {
            warn!(
                "channel {} is held: {}; its own commitment transaction is not broadcast \
                 until its peer has reestablished it or closed it",
                channel.channel_id,
                channel.reason.describe()
            );
        }
        Ok(Self {
            store,
            broadcaster,
            held: Mutex::new(held),
        })
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, BTreeMap<ChannelId, HeldChannel>> {
        self.held.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Holds `channels`: recorded durably first, then refused by the broadcaster.
    pub fn hold(&self, channels: &[HeldChannel]) -> io::Result<()> {
        let new: Vec<HeldChannel> = {
            let held = self.lock();
            channels
                .iter()
                .filter(|channel| !held.contains_key(&channel.channel_id))
                .copied()
                .collect()
        };
        record(&*self.store, &new)?;
        self.broadcaster
            .hold_commitments_of(new.iter().map(|channel| channel.funding));
        let mut held = self.lock();
        for channel in new {
            warn!(
                "channel {} is held: {}; its own commitment transaction is not broadcast \
                 until its peer has reestablished it or closed it",
                channel.channel_id,
                channel.reason.describe()
            );
            held.insert(channel.channel_id, channel);
        }
        Ok(())
    }

    /// The hold of `channel_id`, if it is held.
    pub fn get(&self, channel_id: &ChannelId) -> Option<HeldChannel> {
        self.lock().get(channel_id).copied()
    }

    /// Every held channel.
    pub fn all(&self) -> Vec<HeldChannel> {
        self.lock().values().copied().collect()
    }

    /// Ends the hold of `channel_id` (`why` is logged): removed durably, then released by the
    /// broadcaster.
    pub fn release(&self, channel_id: &ChannelId, why: &str) -> io::Result<()> {
        let Some(channel) = self.get(channel_id) else {
            return Ok(());
        };
        KVStoreSync::remove(&*self.store, NAMESPACE, "", &channel_id.to_string(), false)?;
        self.broadcaster.release_commitments_of(&[channel.funding]);
        self.lock().remove(channel_id);
        info!("channel {channel_id} is no longer held: {why}");
        Ok(())
    }

    /// Releases each held channel whose state is proved current (the channel manager has it
    /// and it is usable: its peer reestablished it) or no longer matters (its monitor saw
    /// the funding spent and confirmed). Returns the channels released.
    pub fn release_settled(
        &self,
        channel_manager: &ChannelManager,
        chain_monitor: &ChainMonitor,
    ) -> io::Result<Vec<ChannelId>> {
        let held = self.all();
        if held.is_empty() {
            return Ok(Vec::new());
        }
        let channels = channel_manager.list_channels();
        let mut released = Vec::new();
        for channel in held {
            let listed = channels.iter().find(|c| c.channel_id == channel.channel_id);
            let why = match listed {
                Some(details) if details.is_usable => {
                    "its peer reestablished it and accepted its state"
                }
                Some(_) => continue,
                None => {
                    let open = chain_monitor
                        .get_monitor(channel.channel_id)
                        .map(|monitor| {
                            monitor.get_claimable_balances().iter().any(|balance| {
                                matches!(balance, Balance::ClaimableOnChannelClose { .. })
                            })
                        })
                        .unwrap_or(false);
                    if open {
                        continue;
                    }
                    "its funding was spent on chain"
                }
            };
            self.release(&channel.channel_id, why)?;
            released.push(channel.channel_id);
        }
        Ok(released)
    }
}

/// Releases held channels as their state is proved current (see
/// [`HeldChannels::release_settled`]), until `stop` turns true.
pub async fn release_when_settled(
    held: Arc<HeldChannels>,
    channel_manager: Arc<ChannelManager>,
    chain_monitor: Arc<ChainMonitor>,
    mut stop: watch::Receiver<bool>,
) {
    let mut rounds = tokio::time::interval(CHECK_INTERVAL);
    rounds.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = rounds.tick() => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        if let Err(err) = held.release_settled(&channel_manager, &chain_monitor) {
            // The hold stays: it is only ever lifted once its removal is durable.
            warn!("releasing a held channel failed: {err}; trying again");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bitcoin::hashes::Hash;

    #[test]
    fn held_channels_are_recorded_and_read_back() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::new(dir.path().join("ldk"));
        assert!(load(&store).unwrap().is_empty());
        let channels = [
            HeldChannel {
                channel_id: ChannelId([1; 32]),
                funding: OutPoint::new(bitcoin::Txid::from_byte_array([1; 32]), 0),
                reason: HoldReason::Restored,
            },
            HeldChannel {
                channel_id: ChannelId([2; 32]),
                funding: OutPoint::new(bitcoin::Txid::from_byte_array([2; 32]), 3),
                reason: HoldReason::StaleManager,
            },
        ];
        record(&store, &channels).unwrap();
        let mut loaded = load(&Store::new(dir.path().join("ldk"))).unwrap();
        loaded.sort_by_key(|channel| channel.channel_id);
        assert_eq!(loaded, channels);
        KVStoreSync::write(&store, NAMESPACE, "", "zz", vec![1]).unwrap();
        assert!(load(&store).is_err(), "a damaged record is an error");
    }
}

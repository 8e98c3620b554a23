//! Gossip with a bound on the network graph, shared between the peers that fill it.
//!
//! Channel announcements are not checked against the chain (a compact-filter node would have
//! to download a block per channel to find its funding output), so any peer can announce
//! channels that do not exist. [`BoundedGossip`] sits in front of LDK's `P2PGossipSync` and
//! keeps the graph to [`MAX_GRAPH_CHANNELS`], or to the `max_graph_channels` the node runner
//! chose (a Pi may keep a smaller graph, which saves less than in proportion: most nodes keep
//! a channel, and nodes cost memory too). Nodes enter the graph only through channels, so
//! they are bounded too (at most two per channel). The background processor still prunes
//! channels that get no update for two weeks.
//!
//! **Each peer's share.** While the graph has room, any peer's new channels are taken. Once it
//! is full, a peer holding less than its share (the bound divided by the number of peers whose
//! channels are in the graph, itself included) still gets a new channel in: the channel that
//! entered last from the peer holding the most is removed to make room. A peer at its share is
//! refused. So one peer flooding the graph with made-up channels keeps every other peer's
//! announcements out no longer than it takes them to arrive. Channels already in the graph at
//! start, whose sender is not known, count as one more peer's.
//!
//! **Banned peers.** A peer that sends a channel or node announcement whose signatures do not
//! verify against the keys the message itself carries (data no honest node relays) is banned
//! for [`GOSSIP_BAN`]: the channels it brought in are removed from the graph and its gossip is
//! ignored. LDK does not take a removed channel again for a week. (A channel update's
//! signature is checked against the channel already in the graph, which another peer may have
//! made up, so a bad one proves nothing against its sender.)
//!
//! **Gossip since the stored graph** (`gossip_since_stored_graph`). LDK asks its first five
//! peers of each run for gossip of the last two weeks, which a peer answers with the whole
//! graph. With this choice, a node whose stored graph holds channels asks only for gossip newer
//! than the newest update in it, less [`GOSSIP_SINCE_MARGIN`]: peers that filter by timestamp
//! send what changed while it was away, and LDK peers send the whole graph only when that is
//! more than six hours ago (they forward new gossip either way).
//!
//! **Gossip from fewer peers** (`gossip_peers`). Every peer asked for gossip forwards every
//! channel update it hears, so a node with several peers receives each update several times.
//! With [`BoundedGossip::asking_at_most`] only that many peers are asked (the first to
//! connect); when one of them disconnects or is banned, the longest-connected peer not asked
//! (and not banned) takes its place. Zero asks none: the graph then holds the node's own channels only. Peers that do not
//! support gossip queries send what they send, asked or not.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelAnnouncement, ChannelUpdate, ErrorAction, Init, LightningError,
    MessageSendEvent, NodeAnnouncement, QueryChannelRange, QueryShortChannelIds, ReplyChannelRange,
    ReplyShortChannelIdsEnd, RoutingMessageHandler,
};
use lightning::routing::gossip::NodeId;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::Level;
use log::{debug, warn};

use super::types::{GossipSync, NetworkGraph};

/// Most channels taken into the graph from gossip: about twice the public Lightning network of
/// 2026 (some 50,000 channels). Each costs about 2.8 kB of resident memory with its nodes
/// (the `gossip` benchmark), so a full graph takes about 270 MB.
pub const MAX_GRAPH_CHANNELS: usize = 100_000;
/// How long a peer that sent gossip with bad signatures is ignored.
pub const GOSSIP_BAN: Duration = Duration::from_secs(24 * 60 * 60);
/// How far before the newest update in the stored graph gossip is asked for with
/// [`BoundedGossip::asking_since_stored_graph`]: updates reach peers hours after they are
/// signed at times.
pub const GOSSIP_SINCE_MARGIN: Duration = Duration::from_secs(60 * 60);
/// How often the record of who brought which channel forgets channels no longer in the graph
/// (pruned as stale), once the graph is full.
const LEDGER_CLEANUP_INTERVAL: Duration = Duration::from_secs(10 * 60);

/// Who brought which channel into the graph, and who is banned.
#[derive(Default)]
struct Ledger {
    /// The channels each peer brought in, oldest first.
    by_peer: HashMap<PublicKey, Vec<u64>>,
    /// The channels in the graph before any peer brought one (those of an earlier run), once
    /// the graph first filled up; they count as one more peer's.
    earlier: Option<Vec<u64>>,
    /// Banned peers, until when.
    banned: HashMap<PublicKey, Instant>,
    cleaned_at: Option<Instant>,
}

/// Whose channels make room for a new one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Holder {
    Peer(PublicKey),
    Earlier,
}

/// LDK's gossip handler, keeping the graph to a bound shared between peers.
pub struct BoundedGossip {
    inner: Arc<GossipSync>,
    graph: Arc<NetworkGraph>,
    max_channels: usize,
    ledger: Mutex<Ledger>,
    /// The earliest timestamp to ask peers for gossip from, when asking only for gossip newer
    /// than the stored graph.
    since: Option<u32>,
    /// Most peers asked for gossip at once; all when `None`.
    gossip_peers: Option<usize>,
    askers: Mutex<Askers>,
}

/// Which connected peers are asked for gossip, when only some may be.
#[derive(Default)]
struct Askers {
    /// The peers asked, while they stay connected.
    asked: Vec<PublicKey>,
    /// Peers that support gossip queries but were not asked, longest connected first, with
    /// what LDK needs to ask them later.
    waiting: Vec<(PublicKey, Init, bool)>,
}

impl BoundedGossip {
    /// Bounds `inner`, which fills `graph`, to [`MAX_GRAPH_CHANNELS`].
    pub fn new(inner: Arc<GossipSync>, graph: Arc<NetworkGraph>) -> Self {
        Self::with_limit(inner, graph, MAX_GRAPH_CHANNELS)
    }

    /// Bounds `inner`, which fills `graph`, to `max_channels`. Announcements handled at the
    /// same moment from different peers may pass the bound by one each.
    pub fn with_limit(
        inner: Arc<GossipSync>,
        graph: Arc<NetworkGraph>,
        max_channels: usize,
    ) -> Self {
        BoundedGossip {
            inner,
            graph,
            max_channels,
            ledger: Mutex::new(Ledger::default()),
            since: None,
            gossip_peers: None,
            askers: Mutex::new(Askers::default()),
        }
    }

    /// Asks at most `peers` connected peers for gossip at once (none when zero), instead of
    /// every peer.
    pub fn asking_at_most(mut self, peers: usize) -> Self {
        self.gossip_peers = Some(peers);
        self
    }

    /// Asks peers only for gossip newer than the newest channel update in the graph as it is
    /// now (the stored graph), less [`GOSSIP_SINCE_MARGIN`]; for the whole graph, as LDK does,
    /// when it holds no update.
    pub fn asking_since_stored_graph(mut self) -> Self {
        let newest = self
            .graph
            .read_only()
            .channels()
            .unordered_iter()
            .flat_map(|(_, channel)| [&channel.one_to_two, &channel.two_to_one])
            .filter_map(|direction| direction.as_ref().map(|d| d.last_update))
            .max();
        self.since = newest.map(|at| at.saturating_sub(GOSSIP_SINCE_MARGIN.as_secs() as u32));
        if let Some(since) = self.since {
            debug!("asking peers for gossip from timestamp {since} on (the stored graph's)");
        }
        self
    }

    /// Whether `peer` is banned now.
    pub fn is_banned(&self, peer: &PublicKey) -> bool {
        let mut ledger = self.ledger();
        match ledger.banned.get(peer) {
            Some(until) if *until > Instant::now() => true,
            Some(_) => {
                ledger.banned.remove(peer);
                false
            }
            None => false,
        }
    }

    /// Bans `peer` for [`GOSSIP_BAN`]: the channels it brought in leave the graph and its
    /// gossip is ignored.
    pub fn ban(&self, peer: PublicKey, reason: &str) {
        let brought = {
            let mut ledger = self.ledger();
            ledger.banned.insert(peer, Instant::now() + GOSSIP_BAN);
            ledger.by_peer.remove(&peer).unwrap_or_default()
        };
        warn!(
            "ignoring gossip from Lightning peer {peer} for {} h ({reason}); removing the {} \
             channel(s) it announced",
            GOSSIP_BAN.as_secs() / 3600,
            brought.len()
        );
        for scid in brought {
            self.graph.channel_failed_permanent(scid);
        }
        self.stop_asking(peer);
    }

    /// How many channels in the graph `peer` brought in.
    pub fn channels_from(&self, peer: &PublicKey) -> usize {
        self.ledger().by_peer.get(peer).map_or(0, Vec::len)
    }

    fn ledger(&self) -> MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn askers(&self) -> MutexGuard<'_, Askers> {
        self.askers.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Stops counting `leaving` among the peers asked for gossip (it left, or is banned) and,
    /// when it was asked, asks the longest-connected peer not asked in its place.
    fn stop_asking(&self, leaving: PublicKey) {
        if self.gossip_peers.is_none() {
            return;
        }
        let replacement = {
            let mut askers = self.askers();
            askers.waiting.retain(|(peer, _, _)| *peer != leaving);
            let was_asked = askers.asked.contains(&leaving);
            askers.asked.retain(|peer| *peer != leaving);
            if was_asked && !askers.waiting.is_empty() {
                let next = askers.waiting.remove(0);
                askers.asked.push(next.0);
                Some(next)
            } else {
                None
            }
        };
        if let Some((peer, init, inbound)) = replacement {
            debug!("asking Lightning peer {peer} for gossip in place of {leaving}");
            let _ = self.inner.peer_connected(peer, &init, inbound);
        }
    }

    fn refuse_banned(&self, peer: Option<PublicKey>) -> Result<(), LightningError> {
        match peer {
            Some(peer) if self.is_banned(&peer) => Err(LightningError {
                err: format!("gossip from {peer} is ignored: it is banned"),
                action: ErrorAction::IgnoreAndLog(Level::Gossip),
            }),
            _ => Ok(()),
        }
    }

    /// Bans `peer` when LDK refused its message for a signature that does not verify.
    fn ban_for_bad_signature(
        &self,
        peer: Option<PublicKey>,
        result: &Result<bool, LightningError>,
    ) {
        if let (Some(peer), Err(err)) = (peer, result) {
            if matches!(err.action, ErrorAction::SendWarningMessage { .. })
                && err.err.starts_with("Invalid signature")
            {
                self.ban(peer, &err.err);
            }
        }
    }

    /// Makes room in a full graph for a new channel from `peer`: when `peer` holds less than
    /// its share, the newest channel of the peer holding the most leaves the graph.
    fn make_room_for(&self, peer: PublicKey, scid: u64) -> Result<(), LightningError> {
        let mut ledger = self.ledger();
        let now = Instant::now();
        if ledger
            .cleaned_at
            .is_none_or(|at| now.duration_since(at) >= LEDGER_CLEANUP_INTERVAL)
        {
            let graph = self.graph.read_only();
            for channels in ledger.by_peer.values_mut() {
                channels.retain(|scid| graph.channel(*scid).is_some());
            }
            ledger.by_peer.retain(|_, channels| !channels.is_empty());
            if let Some(earlier) = ledger.earlier.as_mut() {
                earlier.retain(|scid| graph.channel(*scid).is_some());
            }
            ledger.cleaned_at = Some(now);
        }
        if ledger.earlier.is_none() {
            let graph = self.graph.read_only();
            let brought: HashSet<u64> = ledger.by_peer.values().flatten().copied().collect();
            let earlier = graph
                .channels()
                .unordered_keys()
                .copied()
                .filter(|scid| !brought.contains(scid))
                .collect();
            ledger.earlier = Some(earlier);
        }
        let holds = ledger.by_peer.get(&peer).map_or(0, Vec::len);
        let others = ledger.by_peer.keys().filter(|p| **p != peer).count();
        let earlier = ledger.earlier.as_ref().map_or(0, Vec::len);
        let holders = 1 + others + usize::from(earlier > 0);
        let share = self.max_channels / holders;
        let full = |why: String| LightningError {
            err: format!(
                "the network graph holds {} channels already and {why}; not taking channel {scid}",
                self.max_channels
            ),
            action: ErrorAction::IgnoreAndLog(Level::Gossip),
        };
        if holds >= share {
            return Err(full(format!("{peer} brought its share of {share} of them")));
        }
        let largest = ledger
            .by_peer
            .iter()
            .filter(|(p, _)| **p != peer)
            .map(|(p, channels)| (Holder::Peer(*p), channels.len()))
            .chain(std::iter::once((Holder::Earlier, earlier)))
            .max_by_key(|(_, held)| *held)
            .filter(|(_, held)| *held > 0)
            .map(|(holder, _)| holder);
        let Some(holder) = largest else {
            return Err(full("no other peer's channel can make room".into()));
        };
        let evicted = match holder {
            Holder::Peer(p) => ledger.by_peer.get_mut(&p).and_then(Vec::pop),
            Holder::Earlier => ledger.earlier.as_mut().and_then(Vec::pop),
        };
        drop(ledger);
        if let Some(evicted) = evicted {
            debug!(
                "channel {evicted} leaves the full network graph for channel {scid} from {peer}"
            );
            self.graph.channel_failed_permanent(evicted);
        }
        Ok(())
    }
}

impl BaseMessageHandler for BoundedGossip {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        let mut events = self.inner.get_and_clear_pending_msg_events();
        if let Some(since) = self.since {
            for event in &mut events {
                if let MessageSendEvent::SendGossipTimestampFilter { msg, .. } = event {
                    msg.first_timestamp = msg.first_timestamp.max(since);
                }
            }
        }
        events
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.inner.peer_disconnected(their_node_id);
        self.stop_asking(their_node_id);
    }

    fn provided_node_features(&self) -> NodeFeatures {
        self.inner.provided_node_features()
    }

    fn provided_init_features(&self, their_node_id: PublicKey) -> InitFeatures {
        self.inner.provided_init_features(their_node_id)
    }

    fn peer_connected(
        &self,
        their_node_id: PublicKey,
        msg: &Init,
        inbound: bool,
    ) -> Result<(), ()> {
        if let Some(limit) = self.gossip_peers {
            if msg.features.supports_gossip_queries() {
                if self.is_banned(&their_node_id) {
                    return Ok(());
                }
                let mut askers = self.askers();
                if askers.asked.len() >= limit {
                    askers.waiting.push((their_node_id, msg.clone(), inbound));
                    debug!(
                        "not asking Lightning peer {their_node_id} for gossip: {limit} peer(s) \
                         asked already"
                    );
                    return Ok(());
                }
                askers.asked.push(their_node_id);
            }
        }
        self.inner.peer_connected(their_node_id, msg, inbound)
    }
}

impl RoutingMessageHandler for BoundedGossip {
    fn handle_node_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &NodeAnnouncement,
    ) -> Result<bool, LightningError> {
        self.refuse_banned(their_node_id)?;
        let result = self.inner.handle_node_announcement(their_node_id, msg);
        self.ban_for_bad_signature(their_node_id, &result);
        result
    }

    fn handle_channel_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelAnnouncement,
    ) -> Result<bool, LightningError> {
        // Our own channels (no sender) are always taken.
        let Some(peer) = their_node_id else {
            return self.inner.handle_channel_announcement(None, msg);
        };
        self.refuse_banned(their_node_id)?;
        let scid = msg.contents.short_channel_id;
        let (known, full) = {
            let graph = self.graph.read_only();
            (
                graph.channel(scid).is_some(),
                graph.channels().len() >= self.max_channels,
            )
        };
        if !known && full {
            self.make_room_for(peer, scid)?;
        }
        let result = self.inner.handle_channel_announcement(their_node_id, msg);
        self.ban_for_bad_signature(their_node_id, &result);
        if !known && self.graph.read_only().channel(scid).is_some() {
            self.ledger().by_peer.entry(peer).or_default().push(scid);
        }
        result
    }

    fn handle_channel_update(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelUpdate,
    ) -> Result<bool, LightningError> {
        // A bad signature here proves nothing against the sender: it is checked against the
        // keys of the channel in the graph, which another peer may have made up.
        self.refuse_banned(their_node_id)?;
        self.inner.handle_channel_update(their_node_id, msg)
    }

    fn get_next_channel_announcement(
        &self,
        starting_point: u64,
    ) -> Option<(
        ChannelAnnouncement,
        Option<ChannelUpdate>,
        Option<ChannelUpdate>,
    )> {
        self.inner.get_next_channel_announcement(starting_point)
    }

    fn get_next_node_announcement(
        &self,
        starting_point: Option<&NodeId>,
    ) -> Option<NodeAnnouncement> {
        self.inner.get_next_node_announcement(starting_point)
    }

    fn handle_reply_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: ReplyChannelRange,
    ) -> Result<(), LightningError> {
        self.inner.handle_reply_channel_range(their_node_id, msg)
    }

    fn handle_reply_short_channel_ids_end(
        &self,
        their_node_id: PublicKey,
        msg: ReplyShortChannelIdsEnd,
    ) -> Result<(), LightningError> {
        self.inner
            .handle_reply_short_channel_ids_end(their_node_id, msg)
    }

    fn handle_query_channel_range(
        &self,
        their_node_id: PublicKey,
        msg: QueryChannelRange,
    ) -> Result<(), LightningError> {
        self.inner.handle_query_channel_range(their_node_id, msg)
    }

    fn handle_query_short_channel_ids(
        &self,
        their_node_id: PublicKey,
        msg: QueryShortChannelIds,
    ) -> Result<(), LightningError> {
        self.inner
            .handle_query_short_channel_ids(their_node_id, msg)
    }

    fn processing_queue_high(&self) -> bool {
        self.inner.processing_queue_high()
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::constants::ChainHash;
    use bitcoin::hashes::sha256d;
    use bitcoin::hashes::Hash;
    use bitcoin::secp256k1::{Message, Secp256k1, SecretKey};
    use bitcoin::Network;
    use lightning::ln::msgs::UnsignedChannelAnnouncement;
    use lightning::routing::gossip::P2PGossipSync;
    use lightning::types::features::ChannelFeatures;
    use lightning::util::ser::Writeable;

    use super::super::logger::LdkLogger;
    use super::*;

    fn key(n: u32) -> SecretKey {
        let mut bytes = [0u8; 32];
        bytes[28..].copy_from_slice(&(n + 1).to_be_bytes());
        SecretKey::from_slice(&bytes).unwrap()
    }

    /// A correctly signed announcement of channel `scid` between two fresh made-up nodes:
    /// what any peer can make up, since nothing checks the chain.
    fn made_up_channel(scid: u64) -> ChannelAnnouncement {
        let secp = Secp256k1::new();
        let base = (scid as u32) * 4;
        let mut nodes = [key(base), key(base + 1)];
        nodes.sort_by_key(|k| PublicKey::from_secret_key(&secp, k).serialize());
        let funding = [key(base + 2), key(base + 3)];
        let id = |k: &SecretKey| NodeId::from_pubkey(&PublicKey::from_secret_key(&secp, k));
        let contents = UnsignedChannelAnnouncement {
            features: ChannelFeatures::empty(),
            chain_hash: ChainHash::using_genesis_block(Network::Regtest),
            short_channel_id: scid,
            node_id_1: id(&nodes[0]),
            node_id_2: id(&nodes[1]),
            bitcoin_key_1: id(&funding[0]),
            bitcoin_key_2: id(&funding[1]),
            excess_data: Vec::new(),
        };
        let digest = sha256d::Hash::hash(&contents.encode()).to_byte_array();
        let message = Message::from_digest(digest);
        ChannelAnnouncement {
            node_signature_1: secp.sign_ecdsa(&message, &nodes[0]),
            node_signature_2: secp.sign_ecdsa(&message, &nodes[1]),
            bitcoin_signature_1: secp.sign_ecdsa(&message, &funding[0]),
            bitcoin_signature_2: secp.sign_ecdsa(&message, &funding[1]),
            contents,
        }
    }

    fn bounded(limit: usize) -> (BoundedGossip, Arc<NetworkGraph>) {
        let logger = Arc::new(LdkLogger::default());
        let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
        let sync: Arc<GossipSync> = Arc::new(P2PGossipSync::new(graph.clone(), None, logger));
        (BoundedGossip::with_limit(sync, graph.clone(), limit), graph)
    }

    fn peer(n: u32) -> PublicKey {
        PublicKey::from_secret_key(&Secp256k1::new(), &key(1_000_000 + n))
    }

    fn in_graph(graph: &NetworkGraph, scids: impl IntoIterator<Item = u64>) -> Vec<u64> {
        let graph = graph.read_only();
        scids
            .into_iter()
            .filter(|scid| graph.channel(*scid).is_some())
            .collect()
    }

    #[test]
    fn one_peer_flooding_the_graph_leaves_room_for_another_peers_channels() {
        let (gossip, graph) = bounded(10);
        let (flooder, honest) = (peer(1), peer(2));
        for scid in 1..=50 {
            let _ = gossip.handle_channel_announcement(Some(flooder), &made_up_channel(scid));
        }
        assert_eq!(graph.read_only().channels().len(), 10);

        for scid in 101..=105 {
            gossip
                .handle_channel_announcement(Some(honest), &made_up_channel(scid))
                .unwrap_or_else(|err| panic!("channel {scid} refused: {}", err.err));
        }
        assert_eq!(in_graph(&graph, 101..=105), (101..=105).collect::<Vec<_>>());
        assert_eq!(graph.read_only().channels().len(), 10, "still bounded");
        assert_eq!(gossip.channels_from(&flooder), 5);

        // Each holds its share now: neither gets more in.
        let refused = gossip
            .handle_channel_announcement(Some(flooder), &made_up_channel(51))
            .unwrap_err();
        assert!(refused.err.contains("share of 5"), "{}", refused.err);
        assert!(gossip
            .handle_channel_announcement(Some(honest), &made_up_channel(106))
            .is_err());
        assert_eq!(graph.read_only().channels().len(), 10);
    }

    #[test]
    fn a_peer_sending_a_badly_signed_announcement_is_banned_and_its_channels_removed() {
        let (gossip, graph) = bounded(100);
        let (liar, honest) = (peer(1), peer(2));
        for scid in 1..=5 {
            gossip
                .handle_channel_announcement(Some(liar), &made_up_channel(scid))
                .unwrap();
        }
        for scid in 101..=103 {
            gossip
                .handle_channel_announcement(Some(honest), &made_up_channel(scid))
                .unwrap();
        }
        let mut forged = made_up_channel(6);
        forged.node_signature_1 = made_up_channel(7).node_signature_1;
        assert!(gossip
            .handle_channel_announcement(Some(liar), &forged)
            .is_err());
        assert!(gossip.is_banned(&liar));
        assert!(
            in_graph(&graph, 1..=7).is_empty(),
            "the liar's channels left"
        );
        assert_eq!(in_graph(&graph, 101..=103), vec![101, 102, 103]);
        let ignored = gossip
            .handle_channel_announcement(Some(liar), &made_up_channel(8))
            .unwrap_err();
        assert!(ignored.err.contains("banned"), "{}", ignored.err);
        assert!(in_graph(&graph, [8]).is_empty());
        assert!(!gossip.is_banned(&honest));
    }

    #[test]
    fn made_up_channels_stop_at_the_bound() {
        let logger = Arc::new(LdkLogger::default());
        let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
        let sync: Arc<GossipSync> = Arc::new(P2PGossipSync::new(graph.clone(), None, logger));
        let gossip = BoundedGossip::with_limit(sync, graph.clone(), 10);
        let peer = PublicKey::from_secret_key(&Secp256k1::new(), &key(1_000_000));

        for scid in 1..=50 {
            let _ = gossip.handle_channel_announcement(Some(peer), &made_up_channel(scid));
        }
        assert_eq!(graph.read_only().channels().len(), 10);
        assert_eq!(graph.read_only().nodes().len(), 20);
        let refused = gossip
            .handle_channel_announcement(Some(peer), &made_up_channel(51))
            .unwrap_err();
        assert!(refused.err.contains("holds 10 channels"), "{}", refused.err);

        // A channel already known is not refused for the bound (LDK sees a duplicate), and
        // our own announcements are always taken.
        if let Err(again) = gossip.handle_channel_announcement(Some(peer), &made_up_channel(3)) {
            assert!(!again.err.contains("holds 10 channels"), "{}", again.err);
        }
        gossip
            .handle_channel_announcement(None, &made_up_channel(52))
            .unwrap();
        assert_eq!(graph.read_only().channels().len(), 11);
    }

    /// An update of channel `scid` (of [`made_up_channel`]) from its first node, signed at
    /// `timestamp`.
    fn update_of(scid: u64, timestamp: u32) -> ChannelUpdate {
        use lightning::ln::msgs::UnsignedChannelUpdate;
        let secp = Secp256k1::new();
        let base = (scid as u32) * 4;
        let mut nodes = [key(base), key(base + 1)];
        nodes.sort_by_key(|k| PublicKey::from_secret_key(&secp, k).serialize());
        let contents = UnsignedChannelUpdate {
            chain_hash: ChainHash::using_genesis_block(Network::Regtest),
            short_channel_id: scid,
            timestamp,
            message_flags: 1,
            channel_flags: 0,
            cltv_expiry_delta: 40,
            htlc_minimum_msat: 1_000,
            htlc_maximum_msat: 100_000_000,
            fee_base_msat: 1_000,
            fee_proportional_millionths: 100,
            excess_data: Vec::new(),
        };
        let digest = sha256d::Hash::hash(&contents.encode()).to_byte_array();
        ChannelUpdate {
            signature: secp.sign_ecdsa(&Message::from_digest(digest), &nodes[0]),
            contents,
        }
    }

    /// What a peer that supports gossip queries says when it connects.
    fn gossip_init() -> Init {
        let mut features = InitFeatures::empty();
        features.set_gossip_queries_optional();
        Init {
            features,
            networks: None,
            remote_network_address: None,
        }
    }

    /// Connects `peers`, each supporting gossip queries, in that order.
    fn connect(gossip: &BoundedGossip, peers: impl IntoIterator<Item = u32>) {
        for n in peers {
            gossip
                .peer_connected(peer(n), &gossip_init(), false)
                .unwrap();
        }
    }

    /// The peers `gossip` asks for gossip, from the messages it has to send.
    fn asked_peers(gossip: &BoundedGossip) -> Vec<PublicKey> {
        gossip
            .get_and_clear_pending_msg_events()
            .into_iter()
            .filter_map(|event| match event {
                MessageSendEvent::SendGossipTimestampFilter { node_id, .. } => Some(node_id),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn every_peer_is_asked_for_gossip_by_default() {
        let (gossip, _) = bounded(10);
        connect(&gossip, 1..=3);
        assert_eq!(asked_peers(&gossip), vec![peer(1), peer(2), peer(3)]);
    }

    #[test]
    fn asking_one_peer_asks_the_first_and_replaces_it_when_it_leaves() {
        let (gossip, _) = bounded(10);
        let gossip = gossip.asking_at_most(1);
        connect(&gossip, 1..=3);
        assert_eq!(asked_peers(&gossip), vec![peer(1)]);

        // A peer not asked leaving changes nothing; the asked one leaving brings in the
        // longest connected of the others.
        gossip.peer_disconnected(peer(2));
        assert!(asked_peers(&gossip).is_empty());
        gossip.peer_disconnected(peer(1));
        assert_eq!(asked_peers(&gossip), vec![peer(3)]);
        connect(&gossip, [4]);
        assert!(asked_peers(&gossip).is_empty(), "one asked already");
        gossip.peer_disconnected(peer(3));
        assert_eq!(asked_peers(&gossip), vec![peer(4)]);
    }

    #[test]
    fn a_banned_gossip_peer_is_replaced_and_not_asked_again() {
        let (gossip, _) = bounded(10);
        let gossip = gossip.asking_at_most(1);
        connect(&gossip, 1..=2);
        assert_eq!(asked_peers(&gossip), vec![peer(1)]);
        gossip.ban(peer(1), "a test");
        assert_eq!(asked_peers(&gossip), vec![peer(2)]);

        // Back while banned, it waits for nothing: the next peer is asked instead.
        gossip.peer_disconnected(peer(1));
        connect(&gossip, [1, 3]);
        gossip.peer_disconnected(peer(2));
        assert_eq!(asked_peers(&gossip), vec![peer(3)]);
    }

    #[test]
    fn asking_no_peer_asks_none() {
        let (gossip, _) = bounded(10);
        let gossip = gossip.asking_at_most(0);
        connect(&gossip, 1..=3);
        gossip.peer_disconnected(peer(1));
        assert!(asked_peers(&gossip).is_empty());
    }

    /// The `first_timestamp` of the gossip filter `gossip` sends a peer that just connected.
    fn first_timestamp_asked(gossip: &BoundedGossip) -> u32 {
        connect(gossip, [1]);
        gossip
            .get_and_clear_pending_msg_events()
            .into_iter()
            .find_map(|event| match event {
                MessageSendEvent::SendGossipTimestampFilter { msg, .. } => {
                    Some(msg.first_timestamp)
                }
                _ => None,
            })
            .expect("a gossip timestamp filter")
    }

    #[test]
    fn asking_since_the_stored_graph_asks_from_its_newest_update() {
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let logger = Arc::new(LdkLogger::default());
        let graph = Arc::new(NetworkGraph::new(Network::Regtest, logger.clone()));
        let stored_update = now - 3 * 60 * 60;
        for (scid, at) in [(1, now - 5 * 60 * 60), (2, stored_update)] {
            graph
                .update_channel_from_announcement_no_lookup(&made_up_channel(scid))
                .unwrap();
            graph.update_channel(&update_of(scid, at)).unwrap();
        }
        let sync = || -> Arc<GossipSync> {
            Arc::new(P2PGossipSync::new(graph.clone(), None, logger.clone()))
        };

        let whole = BoundedGossip::with_limit(sync(), graph.clone(), 10);
        let asked = first_timestamp_asked(&whole);
        assert!(asked <= now - 14 * 24 * 60 * 60, "asked from {asked}");

        let since =
            BoundedGossip::with_limit(sync(), graph.clone(), 10).asking_since_stored_graph();
        let asked = first_timestamp_asked(&since);
        assert_eq!(asked, stored_update - GOSSIP_SINCE_MARGIN.as_secs() as u32);
    }

    #[test]
    fn asking_since_an_empty_graph_asks_for_the_whole_graph() {
        let (gossip, _) = bounded(10);
        let gossip = gossip.asking_since_stored_graph();
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as u32;
        let asked = first_timestamp_asked(&gossip);
        assert!(asked <= now - 14 * 24 * 60 * 60, "asked from {asked}");
    }
}

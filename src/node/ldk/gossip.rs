//! Gossip with a bound on the network graph.
//!
//! Channel announcements are not checked against the chain (a compact-filter node would have
//! to download a block per channel to find its funding output), so any peer can announce
//! channels that do not exist. [`BoundedGossip`] sits in front of LDK's `P2PGossipSync` and
//! refuses announcements of new channels once the graph holds [`MAX_GRAPH_CHANNELS`]. Nodes
//! enter the graph only through channels, so they are bounded too (at most two per channel).
//! The background processor still prunes channels that get no update for two weeks, so a full
//! graph makes room again as made-up channels go stale.

use std::sync::Arc;

use bitcoin::secp256k1::PublicKey;
use lightning::ln::msgs::{
    BaseMessageHandler, ChannelAnnouncement, ChannelUpdate, ErrorAction, Init, LightningError,
    MessageSendEvent, NodeAnnouncement, QueryChannelRange, QueryShortChannelIds, ReplyChannelRange,
    ReplyShortChannelIdsEnd, RoutingMessageHandler,
};
use lightning::routing::gossip::NodeId;
use lightning::types::features::{InitFeatures, NodeFeatures};
use lightning::util::logger::Level;

use super::types::{GossipSync, NetworkGraph};

/// Most channels taken into the graph from gossip: about twice the public Lightning network of
/// 2026 (some 50,000 channels), about 1 KB of memory each.
pub const MAX_GRAPH_CHANNELS: usize = 100_000;

/// LDK's gossip handler, refusing new channels when the graph is full.
pub struct BoundedGossip {
    inner: Arc<GossipSync>,
    graph: Arc<NetworkGraph>,
    max_channels: usize,
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
        }
    }

    /// Whether an announcement of channel `scid` would grow a full graph.
    fn is_full_for(&self, scid: u64) -> bool {
        let graph = self.graph.read_only();
        graph.channels().len() >= self.max_channels && graph.channel(scid).is_none()
    }
}

impl BaseMessageHandler for BoundedGossip {
    fn get_and_clear_pending_msg_events(&self) -> Vec<MessageSendEvent> {
        self.inner.get_and_clear_pending_msg_events()
    }

    fn peer_disconnected(&self, their_node_id: PublicKey) {
        self.inner.peer_disconnected(their_node_id)
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
        self.inner.peer_connected(their_node_id, msg, inbound)
    }
}

impl RoutingMessageHandler for BoundedGossip {
    fn handle_node_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &NodeAnnouncement,
    ) -> Result<bool, LightningError> {
        self.inner.handle_node_announcement(their_node_id, msg)
    }

    fn handle_channel_announcement(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelAnnouncement,
    ) -> Result<bool, LightningError> {
        // Our own channels (no sender) are always taken.
        if their_node_id.is_some() && self.is_full_for(msg.contents.short_channel_id) {
            return Err(LightningError {
                err: format!(
                    "the network graph holds {} channels already; not taking channel {}",
                    self.max_channels, msg.contents.short_channel_id
                ),
                action: ErrorAction::IgnoreAndLog(Level::Gossip),
            });
        }
        self.inner.handle_channel_announcement(their_node_id, msg)
    }

    fn handle_channel_update(
        &self,
        their_node_id: Option<PublicKey>,
        msg: &ChannelUpdate,
    ) -> Result<bool, LightningError> {
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
}

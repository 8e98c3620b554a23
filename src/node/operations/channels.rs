//! Peers and channels: connecting, opening and closing channels, listing them, and the policy
//! for channels other nodes open to us.

use std::time::Duration;

use bitcoin::secp256k1::PublicKey;
use bitcoin::{Amount, FeeRate};
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use lightning::types::features::ChannelTypeFeatures;
use lightning::util::config::ChannelConfigUpdate;
use log::info;

use super::info::{ChannelInfo, ChannelPolicy, ChannelRef, OpenedChannel, PeerInfo};
use super::onchain::{Propagation, PROPAGATION_WAIT};
use crate::node::ldk::peers;
use crate::node::Node;
use crate::node::NodeError;
use crate::wallet::WalletError;

/// On-chain coins kept per anchor channel to pay for fee bumps when it closes.
pub const ANCHOR_RESERVE_SAT_PER_CHANNEL: u64 = 25_000;
/// The highest proportional forwarding fee: the whole amount.
const MAX_FEE_PPM: u32 = 1_000_000;
/// How long `open_channel` waits for the funding transaction to be broadcast.
const OPEN_TIMEOUT: Duration = Duration::from_secs(60);

impl Node {
    /// Connects to a Lightning peer at `address` (`host:port`) and remembers it.
    pub async fn connect(&self, node_id: PublicKey, address: &str) -> Result<(), NodeError> {
        peers::connect(&self.peer_manager, self.config().route(), node_id, address).await?;
        let channel_peers = peers::channel_peers(&self.channel_manager);
        self.peers
            .remember(node_id, address, &channel_peers)
            .map_err(|err| NodeError::storage("remembering the peer", err))?;
        info!("connected to {node_id} at {address}");
        Ok(())
    }

    /// Disconnects a Lightning peer. A peer without a channel is forgotten too, so that it is
    /// not reconnected; a channel peer is reconnected as long as the channel lasts.
    pub async fn disconnect(&self, node_id: PublicKey) -> Result<(), NodeError> {
        let remembered = self.peers.get(&node_id).is_some();
        if !peers::is_connected(&self.peer_manager, &node_id) && !remembered {
            return Err(NodeError::UnknownPeer(node_id.to_string()));
        }
        if !peers::channel_peers(&self.channel_manager).contains(&node_id) {
            self.peers
                .forget(&node_id)
                .map_err(|err| NodeError::storage("forgetting the peer", err))?;
        }
        self.peer_manager.disconnect_by_node_id(node_id);
        Ok(())
    }

    /// Known and connected Lightning peers.
    pub fn peers(&self) -> Vec<PeerInfo> {
        let mut peers: Vec<PeerInfo> = self
            .peer_manager
            .list_peers()
            .into_iter()
            .map(|peer| PeerInfo {
                node_id: peer.counterparty_node_id,
                address: self
                    .peers
                    .get(&peer.counterparty_node_id)
                    .or_else(|| peer.socket_address.map(|a| a.to_string())),
                connected: true,
                inbound: peer.is_inbound_connection,
            })
            .collect();
        for (node_id, address) in self.peers.all() {
            if !peers.iter().any(|p| p.node_id == node_id) {
                peers.push(PeerInfo {
                    node_id,
                    address: Some(address),
                    connected: false,
                    inbound: false,
                });
            }
        }
        peers
    }

    /// Opens a channel of `amount_sat` to `node_id` at `address`, pushing `push_msat`; waits
    /// until the funding transaction is broadcast. Refused as invalid input when the amount is
    /// zero or the push is more than the channel's capacity; unless `force`, refused
    /// (`fee_below_peer_minimum`) when the funding would pay less than the Bitcoin peers
    /// accept.
    pub async fn open_channel(
        &self,
        node_id: PublicKey,
        address: &str,
        amount_sat: u64,
        push_msat: u64,
        public: bool,
        force: bool,
    ) -> Result<OpenedChannel, NodeError> {
        if amount_sat == 0 {
            return Err(NodeError::invalid(
                "channel amount",
                "must be more than zero",
            ));
        }
        if push_msat > amount_sat.saturating_mul(1_000) {
            return Err(NodeError::invalid(
                "push amount",
                format!("{push_msat} msat is more than the channel's {amount_sat} sat"),
            ));
        }
        let spendable = self.wallet.balance()?.confirmed.to_sat();
        let reserve = self.anchor_reserve_sat() + ANCHOR_RESERVE_SAT_PER_CHANNEL;
        if amount_sat.saturating_add(reserve) > spendable {
            return Err(NodeError::Wallet(
                crate::wallet::WalletError::InsufficientFunds {
                    needed: Amount::from_sat(amount_sat.saturating_add(reserve)),
                    available: Amount::from_sat(spendable),
                },
            ));
        }
        self.freshen_fee_estimates().await;
        if !force {
            self.check_funding_fee_rate().await?;
        }
        self.connect(node_id, address).await?;
        let mut config = crate::node::user_config();
        config.channel_handshake_config.announce_for_forwarding = public;
        let user_channel_id = u128::from_be_bytes(crate::node::keys::keys_manager::random_bytes());
        let (sender, receiver) = tokio::sync::oneshot::channel();
        self.open_waiters().insert(user_channel_id, sender);
        if let Err(err) = self.channel_manager.create_channel(
            node_id,
            amount_sat,
            push_msat,
            user_channel_id,
            None,
            Some(config),
        ) {
            self.open_waiters().remove(&user_channel_id);
            return Err(NodeError::Channel(format!("{err:?}")));
        }
        info!("opening a {amount_sat} sat channel to {node_id}");
        match tokio::time::timeout(OPEN_TIMEOUT, receiver).await {
            Ok(Ok(result)) => result,
            Ok(Err(_)) => Err(NodeError::Channel("the node stopped while opening".into())),
            Err(_) => {
                self.open_waiters().remove(&user_channel_id);
                Err(NodeError::Channel(format!(
                    "{node_id} did not complete the channel opening in {}s",
                    OPEN_TIMEOUT.as_secs()
                )))
            }
        }
    }

    /// Refuses when the rate a funding transaction is built at (the estimate for
    /// `NonAnchorChannelFee`, raised to the peers' minimum within its cap) is below the
    /// minimum the Bitcoin peers accept.
    async fn check_funding_fee_rate(&self) -> Result<(), NodeError> {
        let Some(peer_minimum) = self.peer_minimum_fee_rate().await else {
            return Ok(());
        };
        let rate = self
            .chain
            .fee_estimator()
            .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
        let fee_rate = FeeRate::from_sat_per_kwu(u64::from(rate));
        if fee_rate < peer_minimum {
            return Err(NodeError::Wallet(WalletError::FeeBelowPeerMinimum {
                fee_rate,
                peer_minimum,
            }));
        }
        Ok(())
    }

    /// Closes a channel cooperatively, or unilaterally with `force`, and waits (at most
    /// [`PROPAGATION_WAIT`]) for the closing transaction to be broadcast and offered to the
    /// Bitcoin peers.
    pub async fn close_channel(
        &self,
        channel_id: &str,
        force: bool,
    ) -> Result<Propagation, NodeError> {
        let details = self
            .channel_manager
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id.to_string() == channel_id.to_lowercase())
            .ok_or_else(|| NodeError::UnknownChannel(channel_id.to_string()))?;
        let counterparty = details.counterparty.node_id;
        if let (true, Some(held)) = (force, self.held.get(&details.channel_id)) {
            return Err(NodeError::ChannelHeld {
                channel_id: details.channel_id.to_string(),
                reason: held.reason.describe().to_string(),
            });
        }
        self.freshen_fee_estimates().await;
        let result = if force {
            self.channel_manager.force_close_broadcasting_latest_txn(
                &details.channel_id,
                &counterparty,
                "closed by the node operator".to_string(),
            )
        } else {
            self.channel_manager
                .close_channel(&details.channel_id, &counterparty)
        };
        result.map_err(|err| NodeError::Channel(format!("{err:?}")))?;
        info!(
            "{} close of channel {} started",
            if force { "forced" } else { "cooperative" },
            details.channel_id
        );
        let Some(funding) = details.funding_txo else {
            return Ok(Propagation {
                txid: None,
                propagated: false,
                detail: "the channel was never funded: there is nothing to broadcast".into(),
            });
        };
        let funding = funding.into_bitcoin_outpoint();
        let deadline = tokio::time::Instant::now() + PROPAGATION_WAIT;
        loop {
            if let Some(txid) = self.chain.broadcaster().spender_of(&funding) {
                let left = deadline.saturating_duration_since(tokio::time::Instant::now());
                return Ok(self.propagation_within(txid, left).await);
            }
            if tokio::time::Instant::now() >= deadline {
                return Ok(Propagation {
                    txid: None,
                    propagated: false,
                    detail: format!(
                        "no closing transaction was broadcast within {} s{}",
                        PROPAGATION_WAIT.as_secs(),
                        if force {
                            ""
                        } else {
                            " (the peer has not agreed on the close yet)"
                        }
                    ),
                });
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// All channels.
    pub fn channels(&self) -> Vec<ChannelInfo> {
        self.channel_manager
            .list_channels()
            .into_iter()
            .map(|c| ChannelInfo {
                channel_id: c.channel_id.to_string(),
                counterparty_node_id: c.counterparty.node_id,
                capacity_sat: c.channel_value_satoshis,
                local_balance_msat: self.local_balance_msat(&c),
                outbound_capacity_msat: c.outbound_capacity_msat,
                inbound_capacity_msat: c.inbound_capacity_msat,
                ready: c.is_channel_ready,
                usable: c.is_usable,
                public: c.is_announced,
                outbound: c.is_outbound,
                anchors: c
                    .channel_type
                    .as_ref()
                    .is_some_and(|t| t.supports_anchors_zero_fee_htlc_tx()),
                funding_txid: c.funding_txo.map(|o| o.txid),
                confirmations: c.confirmations,
                short_channel_id: c.short_channel_id,
                held: self
                    .held
                    .get(&c.channel_id)
                    .map(|held| held.reason.describe().to_string()),
            })
            .collect()
    }

    /// The id (hex) of the channel `channel` names, by channel id or short channel id.
    pub fn channel_id_of(&self, channel: ChannelRef) -> Result<String, NodeError> {
        Ok(self.find_channel(channel)?.channel_id.to_string())
    }

    fn find_channel(
        &self,
        channel: ChannelRef,
    ) -> Result<lightning::ln::channel_state::ChannelDetails, NodeError> {
        self.channel_manager
            .list_channels()
            .into_iter()
            .find(|details| match channel {
                ChannelRef::Id(id) => details.channel_id.0 == id,
                ChannelRef::Short(scid) => details.short_channel_id == Some(scid),
            })
            .ok_or_else(|| NodeError::UnknownChannel(channel.to_string()))
    }

    /// Sets the forwarding policy of `channel`: each of the base fee, the proportional fee
    /// and the CLTV expiry delta that is given (the others stay); returns the policy now in
    /// force, which LDK persists with the channel and announces in the channel's next update.
    pub fn set_channel_fee(
        &self,
        channel: ChannelRef,
        base_fee_msat: Option<u32>,
        fee_ppm: Option<u32>,
        cltv_expiry_delta: Option<u16>,
    ) -> Result<(String, ChannelPolicy), NodeError> {
        if base_fee_msat.is_none() && fee_ppm.is_none() && cltv_expiry_delta.is_none() {
            return Err(NodeError::invalid(
                "channel policy",
                "give at least one of the base fee, the proportional fee and the CLTV delta",
            ));
        }
        if let Some(delta) = cltv_expiry_delta {
            let minimum = lightning::ln::channelmanager::MIN_CLTV_EXPIRY_DELTA;
            if delta < minimum {
                return Err(NodeError::invalid(
                    "CLTV expiry delta",
                    format!("{delta} is below the minimum of {minimum} blocks"),
                ));
            }
        }
        if fee_ppm.is_some_and(|ppm| ppm > MAX_FEE_PPM) {
            return Err(NodeError::invalid(
                "proportional fee",
                format!("more than {MAX_FEE_PPM} ppm (the whole amount)"),
            ));
        }
        let details = self.find_channel(channel)?;
        let update = ChannelConfigUpdate {
            forwarding_fee_base_msat: base_fee_msat,
            forwarding_fee_proportional_millionths: fee_ppm,
            cltv_expiry_delta,
            ..Default::default()
        };
        self.channel_manager
            .update_partial_channel_config(
                &details.counterparty.node_id,
                &[details.channel_id],
                &update,
            )
            .map_err(|err| NodeError::Channel(format!("{err:?}")))?;
        let config = self
            .channel_manager
            .list_channels()
            .into_iter()
            .find(|c| c.channel_id == details.channel_id)
            .and_then(|c| c.config)
            .ok_or_else(|| NodeError::UnknownChannel(details.channel_id.to_string()))?;
        info!(
            "channel {} now forwards for {} msat + {} ppm, CLTV delta {}",
            details.channel_id,
            config.forwarding_fee_base_msat,
            config.forwarding_fee_proportional_millionths,
            config.cltv_expiry_delta
        );
        Ok((
            details.channel_id.to_string(),
            ChannelPolicy {
                base_fee_msat: config.forwarding_fee_base_msat,
                fee_ppm: config.forwarding_fee_proportional_millionths,
                cltv_expiry_delta: config.cltv_expiry_delta,
            },
        ))
    }

    /// Whether an inbound channel of `channel_type` may be accepted: anchor channels need
    /// confirmed wallet coins to bump fees at closing time
    /// ([`ANCHOR_RESERVE_SAT_PER_CHANNEL`] for it, and the reserve of the anchor channels we
    /// have, [`Node::anchor_reserve_sat`]).
    pub(in crate::node) fn inbound_channel_refusal(
        &self,
        channel_type: &ChannelTypeFeatures,
    ) -> Option<String> {
        if !channel_type.supports_anchors_zero_fee_htlc_tx() {
            return None;
        }
        let needed = self.anchor_reserve_sat() + ANCHOR_RESERVE_SAT_PER_CHANNEL;
        let available = match self.wallet.balance() {
            Ok(balance) => balance.confirmed.to_sat(),
            Err(err) => return Some(err.to_string()),
        };
        (available < needed).then(|| {
            format!(
                "anchor channels need {needed} sat of confirmed on-chain funds for fee bumping; \
                 the wallet has {available} sat"
            )
        })
    }

    /// Our balance in `channel`, as its channel monitor computes it: whole satoshis, HTLCs in
    /// flight excluded, and before the commitment transaction's fee (which the opener pays
    /// only if the channel closes unilaterally, and which moves with fee rates). Zero before
    /// the funding is negotiated.
    pub(in crate::node) fn local_balance_msat(
        &self,
        channel: &lightning::ln::channel_state::ChannelDetails,
    ) -> u64 {
        use lightning::chain::channelmonitor::Balance;
        let Ok(monitor) = self.chain_monitor.get_monitor(channel.channel_id) else {
            return 0;
        };
        monitor
            .get_claimable_balances()
            .iter()
            .map(|balance| match balance {
                Balance::ClaimableOnChannelClose {
                    balance_candidates,
                    confirmed_balance_candidate_index,
                    ..
                } => balance_candidates
                    .get(*confirmed_balance_candidate_index)
                    .map_or(0, |candidate| {
                        candidate.amount_satoshis + candidate.transaction_fee_satoshis
                    }),
                _ => 0,
            })
            .sum::<u64>()
            * 1_000
    }

    /// Completes `open_channel` for `user_channel_id`.
    pub(in crate::node) fn finish_open(
        &self,
        user_channel_id: u128,
        result: Result<OpenedChannel, NodeError>,
    ) {
        if let Some(waiter) = self.open_waiters().remove(&user_channel_id) {
            let _ = waiter.send(result);
        }
    }
}

//! LDK event handling, as each event's documentation requires. Anything that must survive a
//! crash (payment records, outputs to sweep) is persisted before the event is acknowledged;
//! if that fails, the event is replayed.

use bitcoin::{Amount, FeeRate};
use lightning::chain::chaininterface::{ConfirmationTarget, FeeEstimator};
use lightning::events::{Event, FundingInfo, PaymentPurpose, ReplayEvent};
use lightning::ln::types::ChannelId;
use log::{debug, error, info, warn};

use crate::node::operations::info::{OpenedChannel, PaymentDirection, PaymentStatus};
use crate::node::stores::payment_store::{hex, PaymentRecord};
use crate::node::Node;
use crate::node::NodeError;

impl Node {
    /// Handles one LDK event.
    pub(in crate::node) fn handle_event(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            event @ (Event::FundingGenerationReady { .. }
            | Event::FundingTxBroadcastSafe { .. }
            | Event::DiscardFunding { .. }) => self.on_channel_funding(event),
            event @ (Event::ChannelPending { .. }
            | Event::ChannelReady { .. }
            | Event::ChannelClosed { .. }
            | Event::OpenChannelRequest { .. }) => self.on_channel_state(event),
            event @ (Event::PaymentClaimable { .. } | Event::PaymentClaimed { .. }) => {
                self.on_payment_received(event)
            }
            event @ (Event::PaymentSent { .. }
            | Event::PaymentFailed { .. }
            | Event::PaymentPathSuccessful { .. }) => self.on_payment_sent(event),
            event @ (Event::PaymentForwarded { .. }
            | Event::HTLCIntercepted { .. }
            | Event::HTLCHandlingFailed { .. }) => self.on_forward(event),
            event @ (Event::SpendableOutputs { .. }
            | Event::BumpTransaction(_)
            | Event::ConnectionNeeded { .. }) => self.on_outputs_and_connections(event),
            event => {
                self.on_other(event);
                Ok(())
            }
        }
    }
    /// Funding a channel we open, and the funding of channels that were not opened.
    fn on_channel_funding(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::FundingGenerationReady {
                temporary_channel_id,
                counterparty_node_id,
                channel_value_satoshis,
                output_script,
                user_channel_id,
            } => {
                let rate = self
                    .chain
                    .fee_estimator()
                    .get_est_sat_per_1000_weight(ConfirmationTarget::NonAnchorChannelFee);
                let funding = self.wallet.create_funding_transaction(
                    output_script,
                    Amount::from_sat(channel_value_satoshis),
                    FeeRate::from_sat_per_kwu(u64::from(rate)),
                );
                let result = funding.map_err(NodeError::from).and_then(|tx| {
                    let txid = tx.compute_txid();
                    self.channel_manager
                        .funding_transaction_generated(
                            temporary_channel_id,
                            counterparty_node_id,
                            tx,
                        )
                        .map_err(|err| {
                            let _ = self.wallet.abandon_transaction(txid);
                            NodeError::Channel(format!("{err:?}"))
                        })
                });
                if let Err(err) = result {
                    error!("could not fund channel {temporary_channel_id}: {err}");
                    let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                        &temporary_channel_id,
                        &counterparty_node_id,
                        "funding failed".into(),
                    );
                    self.finish_open(user_channel_id, Err(err));
                }
            }
            Event::FundingTxBroadcastSafe { channel_id, .. } => {
                debug!("funding of channel {channel_id} may be broadcast");
            }
            Event::DiscardFunding {
                channel_id,
                funding_info: FundingInfo::Tx { transaction },
            } => {
                let txid = transaction.compute_txid();
                info!("funding {txid} of channel {channel_id} was discarded; its coins are free again");
                if let Err(err) = self.wallet.abandon_transaction(txid) {
                    warn!("could not release the coins of {txid}: {err}");
                }
            }
            _ => {}
        }
        Ok(())
    }
    /// A channel pending, ready, closed, or asked for by a peer.
    fn on_channel_state(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::ChannelPending {
                channel_id,
                user_channel_id,
                counterparty_node_id,
                funding_txo,
                ..
            } => {
                info!(
                    "channel {channel_id} with {counterparty_node_id} is pending: funding {}:{}",
                    funding_txo.txid, funding_txo.vout
                );
                self.finish_open(
                    user_channel_id,
                    Ok(OpenedChannel {
                        channel_id: channel_id.to_string(),
                        funding_txid: funding_txo.txid,
                    }),
                );
            }
            Event::ChannelReady {
                channel_id,
                counterparty_node_id,
                ..
            } => info!("channel {channel_id} with {counterparty_node_id} is ready"),
            Event::ChannelClosed {
                channel_id,
                user_channel_id,
                reason,
                counterparty_node_id,
                ..
            } => {
                info!(
                    "channel {channel_id} with {} closed: {reason}",
                    counterparty_node_id.map_or("an unknown peer".into(), |n| n.to_string())
                );
                self.finish_open(
                    user_channel_id,
                    Err(NodeError::Channel(format!("the channel closed: {reason}"))),
                );
            }
            Event::OpenChannelRequest {
                temporary_channel_id,
                counterparty_node_id,
                funding_satoshis,
                channel_type,
                ..
            } => {
                if let Some(refusal) = self.inbound_channel_refusal(&channel_type) {
                    warn!(
                        "refusing a {funding_satoshis} sat channel from {counterparty_node_id}: {refusal}"
                    );
                    let _ = self.channel_manager.force_close_broadcasting_latest_txn(
                        &temporary_channel_id,
                        &counterparty_node_id,
                        refusal,
                    );
                } else {
                    let user_channel_id =
                        u128::from_be_bytes(crate::node::keys::keys_manager::random_bytes());
                    match self.channel_manager.accept_inbound_channel(
                        &temporary_channel_id,
                        &counterparty_node_id,
                        user_channel_id,
                        None,
                    ) {
                        Ok(()) => info!(
                            "accepted a {funding_satoshis} sat channel from {counterparty_node_id}"
                        ),
                        Err(err) => {
                            warn!("could not accept a channel from {counterparty_node_id}: {err:?}")
                        }
                    }
                }
            }
            _ => {}
        }
        Ok(())
    }
    /// Payments to this node: claimable, then claimed.
    fn on_payment_received(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::PaymentClaimable {
                payment_hash,
                purpose,
                amount_msat,
                ..
            } => {
                let id = hex(&payment_hash.0);
                let kind = arrival_kind(&purpose);
                let recorded = self.payments.update(
                    PaymentDirection::Inbound,
                    &id,
                    || PaymentRecord::new(id.clone(), PaymentDirection::Inbound, kind),
                    |r| {
                        r.payment_hash = Some(id.clone());
                        r.amount_msat = Some(amount_msat);
                        r.received_msat = Some(amount_msat);
                    },
                );
                let Ok(record) = recorded else {
                    return Err(ReplayEvent());
                };
                let held = record.kind == "hold";
                match purpose.preimage() {
                    Some(preimage) => self.channel_manager.claim_funds(preimage),
                    None if held => info!(
                        "payment {id} of {amount_msat} msat is held until its preimage is given"
                    ),
                    None => {
                        warn!("payment {id} arrived without a known preimage; failing it back");
                        self.channel_manager.fail_htlc_backwards(&payment_hash);
                    }
                }
            }
            Event::PaymentClaimed {
                payment_hash,
                amount_msat,
                purpose,
                ..
            } => {
                let id = hex(&payment_hash.0);
                let kind = arrival_kind(&purpose);
                let recorded = self.payments.update(
                    PaymentDirection::Inbound,
                    &id,
                    || PaymentRecord::new(id.clone(), PaymentDirection::Inbound, kind),
                    |r| {
                        r.payment_hash = Some(id.clone());
                        r.amount_msat = Some(amount_msat);
                        r.received_msat = Some(amount_msat);
                        r.status = PaymentStatus::Succeeded.as_str().into();
                        r.preimage = purpose.preimage().map(|p| hex(&p.0));
                    },
                );
                if recorded.is_err() {
                    return Err(ReplayEvent());
                }
                info!("received {amount_msat} msat for payment {id}");
            }
            _ => {}
        }
        Ok(())
    }
    /// Payments from this node: sent, failed, a path that worked.
    fn on_payment_sent(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::PaymentSent {
                payment_id,
                payment_preimage,
                payment_hash,
                fee_paid_msat,
                amount_msat,
                ..
            } => {
                let hash = hex(&payment_hash.0);
                let id = payment_id.map_or(hash.clone(), |p| hex(&p.0));
                let recorded = self.payments.update(
                    PaymentDirection::Outbound,
                    &id,
                    || PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "bolt11"),
                    |r| {
                        r.payment_hash = Some(hash.clone());
                        r.preimage = Some(hex(&payment_preimage.0));
                        r.fee_msat = fee_paid_msat;
                        r.amount_msat = amount_msat.or(r.amount_msat);
                        r.status = PaymentStatus::Succeeded.as_str().into();
                        r.failure = None;
                    },
                );
                if recorded.is_err() {
                    return Err(ReplayEvent());
                }
                info!(
                    "payment {hash} succeeded (fee {} msat)",
                    fee_paid_msat.unwrap_or(0)
                );
            }
            Event::PaymentFailed {
                payment_id,
                payment_hash,
                reason,
            } => {
                let id = hex(&payment_id.0);
                let reason = reason.map_or("unknown reason".to_string(), |r| format!("{r:?}"));
                let recorded = self.payments.update(
                    PaymentDirection::Outbound,
                    &id,
                    || PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "bolt11"),
                    |r| {
                        if let Some(hash) = payment_hash {
                            r.payment_hash = Some(hex(hash.0.as_slice()));
                        }
                        r.status = PaymentStatus::Failed.as_str().into();
                        r.failure = Some(reason.clone());
                    },
                );
                if recorded.is_err() {
                    return Err(ReplayEvent());
                }
                warn!("payment {id} failed: {reason}");
            }
            Event::PaymentPathSuccessful { .. }
            | Event::PaymentPathFailed { .. }
            | Event::ProbeSuccessful { .. }
            | Event::ProbeFailed { .. } => {
                // The background processor feeds these to the scorer.
            }
            _ => {}
        }
        Ok(())
    }
    /// Payments through this node and HTLCs it handled.
    fn on_forward(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::PaymentForwarded {
                prev_channel_id,
                next_channel_id,
                prev_node_id,
                next_node_id,
                total_fee_earned_msat,
                outbound_amount_forwarded_msat,
                claim_from_onchain_tx,
                ..
            } => {
                let record = crate::node::operations::info::ForwardInfo {
                    prev_channel_id: prev_channel_id.map(|id| id.to_string()),
                    next_channel_id: next_channel_id.map(|id| id.to_string()),
                    prev_node_id: prev_node_id.map(|id| id.to_string()),
                    next_node_id: next_node_id.map(|id| id.to_string()),
                    amount_msat: outbound_amount_forwarded_msat,
                    fee_msat: total_fee_earned_msat,
                    claimed_on_chain: claim_from_onchain_tx,
                    at: crate::node::stores::payment_store::unix_now(),
                };
                if let Err(err) = self.forwards.record(&record) {
                    error!("could not record a forwarded payment: {err}; will retry");
                    return Err(ReplayEvent());
                }
                info!(
                    "forwarded {} msat, earning {} msat",
                    outbound_amount_forwarded_msat.unwrap_or(0),
                    total_fee_earned_msat.unwrap_or(0)
                )
            }
            Event::HTLCIntercepted { intercept_id, .. } => {
                // Interception is not enabled; fail anything that arrives anyway.
                let _ = self.channel_manager.fail_intercepted_htlc(intercept_id);
            }
            Event::HTLCHandlingFailed {
                prev_channel_id,
                failure_type,
                ..
            } => debug!("an HTLC from channel {prev_channel_id} failed: {failure_type:?}"),
            _ => {}
        }
        Ok(())
    }
    /// Outputs to sweep, fee bumps, and peers to connect to.
    fn on_outputs_and_connections(&self, event: Event) -> Result<(), ReplayEvent> {
        match event {
            Event::SpendableOutputs {
                outputs,
                channel_id,
            } => {
                let count = outputs.len();
                // Static outputs pay the wallet's own scripts (the node's destination and
                // shutdown scripts are wallet addresses), so the wallet already has them; the
                // sweeper's signer could not spend them, and one such output in its queue
                // would make every later sweep fail.
                if self
                    .sweeper
                    .track_spendable_outputs(outputs, channel_id, true, None)
                    .is_err()
                {
                    error!("could not hand {count} spendable output(s) to the sweeper; will retry");
                    return Err(ReplayEvent());
                }
                info!(
                    "{count} output(s) of channel {} will be swept to the wallet",
                    channel_id.unwrap_or(ChannelId::from_bytes([0; 32]))
                );
                super::sweeping::sweep_now(&self.sweeper);
            }
            Event::BumpTransaction(bump) => self.bump_handler.handle_event(&bump),
            Event::ConnectionNeeded { node_id, addresses } => {
                // The addresses come from gossip: they are remembered only for a channel peer,
                // so that what other nodes announce cannot grow the stored peer list.
                let peer_manager = self.peer_manager.clone();
                let route = self.config().route();
                let channel_manager = self.channel_manager.clone();
                let peers = self.peers.clone();
                tokio::spawn(async move {
                    for address in addresses {
                        let address = address.to_string();
                        if super::peers::connect(&peer_manager, route, node_id, &address)
                            .await
                            .is_ok()
                        {
                            let channel_peers = super::peers::channel_peers(&channel_manager);
                            if channel_peers.contains(&node_id) {
                                let _ = peers.remember(node_id, &address, &channel_peers);
                            }
                            break;
                        }
                    }
                });
            }
            _ => {}
        }
        Ok(())
    }

    /// Events that ask nothing of this node: logged, or raised only for features it does not
    /// enable.
    fn on_other(&self, event: Event) {
        match event {
            Event::InvoiceReceived { payment_id, .. } => {
                debug!("BOLT12 invoice for payment {} received", hex(&payment_id.0));
            }
            Event::SplicePending { channel_id, .. } => {
                info!("splice of channel {channel_id} pending")
            }
            Event::SpliceFailed { channel_id, .. } => {
                warn!("splice of channel {channel_id} failed")
            }
            Event::FundingTransactionReadyForSigning { channel_id, .. } => {
                warn!("channel {channel_id} asks for an interactive funding signature, which this node does not offer");
            }
            Event::OnionMessageIntercepted { .. }
            | Event::OnionMessagePeerConnected { .. }
            | Event::PersistStaticInvoice { .. }
            | Event::StaticInvoiceRequested { .. } => {
                // Only raised for features this node does not enable.
            }
            _ => {}
        }
    }
}

/// The kind of record an inbound payment without one gets: what the sender paid through.
fn arrival_kind(purpose: &PaymentPurpose) -> &'static str {
    match purpose {
        PaymentPurpose::SpontaneousPayment(_) => "keysend",
        PaymentPurpose::Bolt12OfferPayment { .. } | PaymentPurpose::Bolt12RefundPayment { .. } => {
            "bolt12"
        }
        PaymentPurpose::Bolt11InvoicePayment { .. } => "bolt11",
    }
}

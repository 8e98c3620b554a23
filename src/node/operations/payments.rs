//! Payments: BOLT11 invoices, paying invoices and BOLT12 offers, keysend, offers, and the
//! payment record.

use std::str::FromStr;
use std::time::Duration;

use bitcoin::constants::ChainHash;
use bitcoin::hashes::Hash;
use bitcoin::secp256k1::PublicKey;
use lightning::ln::channelmanager::{
    Bolt11InvoiceParameters, OptionalOfferPaymentParams, PaymentId, RecipientOnionFields, Retry,
};
use lightning::offers::offer::Offer;
use lightning::routing::router::{PaymentParameters, RouteParameters, RouteParametersConfig};
use lightning_invoice::{Bolt11Invoice, Bolt11InvoiceDescription, Description};
use log::info;

use super::info::{InvoiceInfo, PaymentDirection, PaymentInfo, PaymentStatus};
use crate::config::network_name;
use crate::node::stores::payment_store::{hex, unix_now, PaymentRecord};
use crate::node::Node;
use crate::node::NodeError;

/// How long LDK keeps retrying a payment over other routes.
const RETRY_FOR: Duration = Duration::from_secs(60);
/// Final CLTV delta for keysend payments.
const KEYSEND_FINAL_CLTV: u32 = 40;

impl Node {
    /// A BOLT11 invoice for `amount_msat` (any amount when `None`).
    pub fn create_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
    ) -> Result<InvoiceInfo, NodeError> {
        self.invoice(amount_msat, description, expiry_secs, None, "bolt11")
    }

    /// A BOLT11 invoice for `payment_hash`, whose preimage this node does not know: an
    /// incoming payment is held (neither claimed nor failed) until
    /// [`Node::claim_held_payment`] gives the preimage or [`Node::cancel_held_payment`]
    /// fails it, or LDK fails it before its HTLCs expire.
    pub fn create_hold_invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
        payment_hash: [u8; 32],
    ) -> Result<InvoiceInfo, NodeError> {
        self.invoice(
            amount_msat,
            description,
            expiry_secs,
            Some(payment_hash),
            "hold",
        )
    }

    /// Claims a held payment with its preimage.
    pub fn claim_held_payment(&self, preimage: [u8; 32]) -> Result<(), NodeError> {
        let hash = bitcoin::hashes::sha256::Hash::hash(&preimage).to_byte_array();
        let id = hex(&hash);
        self.held_payment(&id)?;
        self.channel_manager
            .claim_funds(lightning::types::payment::PaymentPreimage(preimage));
        Ok(())
    }

    /// Fails a held payment back to its sender.
    pub fn cancel_held_payment(&self, payment_hash: [u8; 32]) -> Result<(), NodeError> {
        let id = hex(&payment_hash);
        self.held_payment(&id)?;
        self.channel_manager
            .fail_htlc_backwards(&lightning::types::payment::PaymentHash(payment_hash));
        self.payments
            .update(
                PaymentDirection::Inbound,
                &id,
                || PaymentRecord::new(id.clone(), PaymentDirection::Inbound, "hold"),
                |r| {
                    r.status = PaymentStatus::Failed.as_str().into();
                    r.failure = Some("cancelled by the node operator".into());
                },
            )
            .map_err(|err| NodeError::storage("recording the cancellation", err))?;
        Ok(())
    }

    fn held_payment(&self, id: &str) -> Result<(), NodeError> {
        match self.payments.get(PaymentDirection::Inbound, id) {
            Some(record) if record.kind == "hold" && record.status() == PaymentStatus::Pending => {
                Ok(())
            }
            _ => Err(NodeError::invalid(
                "payment hash",
                format!("no held payment has hash {id}"),
            )),
        }
    }

    fn invoice(
        &self,
        amount_msat: Option<u64>,
        description: &str,
        expiry_secs: u32,
        payment_hash: Option<[u8; 32]>,
        kind: &str,
    ) -> Result<InvoiceInfo, NodeError> {
        if amount_msat == Some(0) {
            return Err(NodeError::invalid(
                "amount",
                "an invoice amount must be above 0 msat; use `any` for an open amount",
            ));
        }
        if expiry_secs == 0 {
            return Err(NodeError::invalid("expiry", "must be at least 1 second"));
        }
        let description = Description::new(description.to_string())
            .map_err(|err| NodeError::invalid("description", format!("{err}")))?;
        let invoice = self
            .channel_manager
            .create_bolt11_invoice(Bolt11InvoiceParameters {
                amount_msats: amount_msat,
                description: Bolt11InvoiceDescription::Direct(description),
                invoice_expiry_delta_secs: Some(expiry_secs),
                payment_hash: payment_hash.map(lightning::types::payment::PaymentHash),
                ..Default::default()
            })
            .map_err(|err| NodeError::invalid("invoice", format!("{err:?}")))?;
        let payment_hash = hex(invoice.payment_hash().as_byte_array());
        let mut record = PaymentRecord::new(payment_hash.clone(), PaymentDirection::Inbound, kind);
        record.payment_hash = Some(payment_hash.clone());
        record.amount_msat = amount_msat;
        self.payments
            .upsert(record)
            .map_err(|err| NodeError::storage("recording the invoice", err))?;
        Ok(InvoiceInfo {
            bolt11: invoice.to_string(),
            payment_hash,
            expires_at: unix_now() + u64::from(expiry_secs),
        })
    }

    /// Pays a BOLT11 invoice or BOLT12 offer, waiting up to `timeout` for the outcome.
    pub async fn pay(
        &self,
        destination: &str,
        amount_msat: Option<u64>,
        timeout: Duration,
    ) -> Result<PaymentInfo, NodeError> {
        let destination = destination.trim();
        let lower = destination.to_lowercase();
        let payment_id = if lower.starts_with("lno") {
            self.pay_offer(destination, amount_msat)?
        } else {
            self.pay_invoice(destination, amount_msat)?
        };
        Ok(self.wait_for_payment(&payment_id, timeout).await)
    }

    fn pay_invoice(&self, text: &str, amount_msat: Option<u64>) -> Result<String, NodeError> {
        let text = text.strip_prefix("lightning:").unwrap_or(text);
        let invoice = Bolt11Invoice::from_str(text).map_err(|err| {
            NodeError::invalid(
                "invoice",
                format!("not a BOLT11 invoice or BOLT12 offer: {err}"),
            )
        })?;
        if invoice.network() != self.config.network {
            return Err(NodeError::WrongNetwork {
                what: "invoice",
                found: network_name(invoice.network()).into(),
                expected: network_name(self.config.network).into(),
            });
        }
        if invoice.is_expired() {
            return Err(NodeError::invalid("invoice", "it has expired"));
        }
        match (invoice.amount_milli_satoshis(), amount_msat) {
            (None, None) => {
                return Err(NodeError::invalid(
                    "amount",
                    "the invoice has no amount; give one with --amount-msat",
                ))
            }
            (Some(0), _) | (_, Some(0)) => {
                return Err(NodeError::invalid("amount", "must be above 0 msat"))
            }
            _ => {}
        }
        let hash = *invoice.payment_hash().as_byte_array();
        let id = hex(&hash);
        if let Some(existing) = self.payments.get(PaymentDirection::Outbound, &id) {
            if existing.status() != PaymentStatus::Failed {
                return Err(NodeError::DuplicatePayment(id));
            }
        }
        let mut record = PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "bolt11");
        record.payment_hash = Some(id.clone());
        record.amount_msat = amount_msat.or(invoice.amount_milli_satoshis());
        self.payments
            .upsert(record)
            .map_err(|err| NodeError::storage("recording the payment", err))?;
        let pay_amount = if invoice.amount_milli_satoshis().is_some() {
            None
        } else {
            amount_msat
        };
        if let Err(err) = self.channel_manager.pay_for_bolt11_invoice(
            &invoice,
            PaymentId(hash),
            pay_amount,
            RouteParametersConfig::default(),
            Retry::Timeout(RETRY_FOR),
        ) {
            let reason = format!("{err:?}");
            self.mark_failed(&id, &reason);
            return Err(match err {
                lightning::ln::channelmanager::Bolt11PaymentError::InvalidAmount => {
                    NodeError::invalid("amount", "below the invoice's amount")
                }
                lightning::ln::channelmanager::Bolt11PaymentError::SendingFailed(
                    lightning::ln::channelmanager::RetryableSendFailure::DuplicatePayment,
                ) => NodeError::DuplicatePayment(id),
                _ => NodeError::Payment(reason),
            });
        }
        info!("paying invoice {id}");
        Ok(id)
    }

    fn pay_offer(&self, text: &str, amount_msat: Option<u64>) -> Result<String, NodeError> {
        let offer = Offer::from_str(text)
            .map_err(|err| NodeError::invalid("offer", format!("not a BOLT12 offer: {err:?}")))?;
        let chain = ChainHash::using_genesis_block(self.config.network);
        if !offer.supports_chain(chain) {
            return Err(NodeError::WrongNetwork {
                what: "offer",
                found: "another chain".into(),
                expected: network_name(self.config.network).into(),
            });
        }
        if offer.amount().is_none() && amount_msat.is_none() {
            return Err(NodeError::invalid(
                "amount",
                "the offer has no amount; give one with --amount-msat",
            ));
        }
        let id_bytes: [u8; 32] = crate::node::keys::keys_manager::random_bytes();
        let id = hex(&id_bytes);
        let mut record = PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "bolt12");
        record.amount_msat = amount_msat;
        self.payments
            .upsert(record)
            .map_err(|err| NodeError::storage("recording the payment", err))?;
        let params = OptionalOfferPaymentParams {
            retry_strategy: Retry::Timeout(RETRY_FOR),
            ..Default::default()
        };
        if let Err(err) =
            self.channel_manager
                .pay_for_offer(&offer, amount_msat, PaymentId(id_bytes), params)
        {
            let reason = format!("{err:?}");
            self.mark_failed(&id, &reason);
            return Err(NodeError::Payment(reason));
        }
        info!("paying offer with payment id {id}");
        Ok(id)
    }

    /// Sends a spontaneous (keysend) payment, waiting up to `timeout` for the outcome.
    pub async fn keysend(
        &self,
        node_id: PublicKey,
        amount_msat: u64,
        timeout: Duration,
    ) -> Result<PaymentInfo, NodeError> {
        if amount_msat == 0 {
            return Err(NodeError::invalid("amount", "must be above 0 msat"));
        }
        let id_bytes: [u8; 32] = crate::node::keys::keys_manager::random_bytes();
        let id = hex(&id_bytes);
        let mut record = PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "keysend");
        record.amount_msat = Some(amount_msat);
        self.payments
            .upsert(record)
            .map_err(|err| NodeError::storage("recording the payment", err))?;
        let route = RouteParameters::from_payment_params_and_value(
            PaymentParameters::for_keysend(node_id, KEYSEND_FINAL_CLTV, false),
            amount_msat,
        );
        match self.channel_manager.send_spontaneous_payment(
            None,
            RecipientOnionFields::spontaneous_empty(),
            PaymentId(id_bytes),
            route,
            Retry::Timeout(RETRY_FOR),
        ) {
            Ok(hash) => {
                let hash = hex(hash.0.as_slice());
                let _ = self.payments.update(
                    PaymentDirection::Outbound,
                    &id,
                    || PaymentRecord::new(id.clone(), PaymentDirection::Outbound, "keysend"),
                    |r| r.payment_hash = Some(hash),
                );
            }
            Err(err) => {
                let reason = format!("{err:?}");
                self.mark_failed(&id, &reason);
                return Err(NodeError::Payment(reason));
            }
        }
        Ok(self.wait_for_payment(&id, timeout).await)
    }

    /// Payments sent and received, oldest first.
    pub fn payments(&self) -> Vec<PaymentInfo> {
        self.payments_page(0, usize::MAX)
    }

    /// At most `limit` payments, oldest first, after skipping the `offset` oldest.
    pub fn payments_page(&self, offset: usize, limit: usize) -> Vec<PaymentInfo> {
        self.payments
            .page(offset, limit)
            .iter()
            .map(|r| r.to_info())
            .collect()
    }

    /// A BOLT12 offer for `amount_msat` (any amount when `None`).
    pub fn create_offer(
        &self,
        amount_msat: Option<u64>,
        description: &str,
    ) -> Result<String, NodeError> {
        if amount_msat == Some(0) {
            return Err(NodeError::invalid("amount", "must be above 0 msat"));
        }
        let mut builder = self
            .channel_manager
            .create_offer_builder()
            .map_err(|err| NodeError::invalid("offer", format!("{err:?}")))?
            .description(description.to_string());
        if let Some(amount) = amount_msat {
            builder = builder.amount_msats(amount);
        }
        let offer = builder
            .build()
            .map_err(|err| NodeError::invalid("offer", format!("{err:?}")))?;
        Ok(offer.to_string())
    }

    /// Settles outbound payments recorded as pending that LDK does not know: the node stopped
    /// between recording a payment and handing it to LDK, so it was never sent.
    pub(in crate::node) fn reconcile_pending_payments(&self) {
        use lightning::ln::channelmanager::RecentPaymentDetails;
        let known: std::collections::HashSet<String> = self
            .channel_manager
            .list_recent_payments()
            .into_iter()
            .map(|details| match details {
                RecentPaymentDetails::AwaitingInvoice { payment_id }
                | RecentPaymentDetails::Pending { payment_id, .. }
                | RecentPaymentDetails::Fulfilled { payment_id, .. }
                | RecentPaymentDetails::Abandoned { payment_id, .. } => hex(&payment_id.0),
            })
            .collect();
        for record in self.payments.list() {
            if record.direction == PaymentDirection::Outbound.as_str()
                && record.status() == PaymentStatus::Pending
                && !known.contains(&record.id)
            {
                log::warn!(
                    "payment {} was recorded but the node stopped before sending it; marking it failed",
                    record.id
                );
                self.mark_failed(&record.id, "the node stopped before the payment was sent");
            }
        }
    }

    fn mark_failed(&self, id: &str, reason: &str) {
        let _ = self.payments.update(
            PaymentDirection::Outbound,
            id,
            || PaymentRecord::new(id.to_string(), PaymentDirection::Outbound, "bolt11"),
            |r| {
                r.status = PaymentStatus::Failed.as_str().into();
                r.failure = Some(reason.to_string());
            },
        );
    }

    async fn wait_for_payment(&self, id: &str, timeout: Duration) -> PaymentInfo {
        let mut changes = self.payments.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let record = self
                .payments
                .get(PaymentDirection::Outbound, id)
                .expect("the payment was recorded before it was sent");
            if record.status() != PaymentStatus::Pending {
                return record.to_info();
            }
            tokio::select! {
                _ = changes.changed() => {}
                _ = tokio::time::sleep_until(deadline) => return record.to_info(),
            }
        }
    }
}

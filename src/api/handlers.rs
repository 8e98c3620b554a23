//! What each API method does: check the request's syntax, call the node's operation, convert
//! the answer. Synchronous node operations (which may touch the disk) run on the blocking pool.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::hex::DisplayHex;
use bitcoin::{Amount, FeeRate};

use super::error::RequestError;
use super::parse::{
    check_msat, check_sat, parse_channel_ref, parse_fee_rate, parse_hash, parse_host_port,
    parse_node_id, parse_txid, ParseError,
};
use super::types::{
    AddressResponse, Balance, ChannelEntry, Channels, CloseChannel, CloseChannelResponse, Connect,
    ConnectRequest, CreateInvoice, CreateOffer, Disconnect, DisconnectRequest, Empty, GetInfo,
    InfoResponse, Keysend, Method, NewAddress, OfferResponse, OpenChannel, OpenChannelRequest,
    OpenChannelResponse, Pay, PaymentEntry, Payments, PeerEntry, Peers, SendAmountSpec,
    SendOnchain, SendRequest, SendResponse, SignMessage, SignMessageResponse, Stop, StopResponse,
    UtxoEntry, Utxos, VerifyMessage, VerifyMessageResponse,
};
use super::types::{
    BumpFee, BumpFeeRequest, BumpFeeResponse, CancelInvoice, ChannelPolicyResponse, FeeRates,
    ForwardEntry, Forwards, HeldPaymentResponse, HoldInvoice, SetChannelFee, SettleInvoice,
    TransactionEntry, Transactions,
};
use crate::node::{Node, NodeHandle, SendAmount};

/// The longest a `pay` or `keysend` request may wait for the outcome.
pub const MAX_PAYMENT_TIMEOUT_SECS: u64 = 3600;

/// Runs `method` with the JSON `body` on the node behind `handle`; returns the JSON
/// response body. While the node starts only `getinfo` and `stop` are served; the rest is
/// refused with `not_synced`.
pub async fn dispatch(
    handle: Arc<NodeHandle>,
    method: &str,
    body: &[u8],
) -> Result<Vec<u8>, RequestError> {
    match method {
        GetInfo::NAME => {
            return call::<GetInfo, _, _>(body, |Empty {}| async move {
                Ok(InfoResponse::from(handle.info().await?))
            })
            .await
        }
        Stop::NAME => {
            return call::<Stop, _, _>(body, |Empty {}| async move {
                log::info!("stop requested through the control API");
                handle.request_stop();
                Ok(StopResponse { stopping: true })
            })
            .await
        }
        _ => {}
    }
    let node = handle.ready().await?;
    match method {
        NewAddress::NAME => {
            call::<NewAddress, _, _>(body, |Empty {}| async move {
                let address = blocking(&node, |node| node.new_address()).await??;
                Ok(AddressResponse { address })
            })
            .await
        }
        Balance::NAME => {
            call::<Balance, _, _>(body, |Empty {}| async move {
                Ok(blocking(&node, |node| node.balances()).await??.into())
            })
            .await
        }
        SendOnchain::NAME => call::<SendOnchain, _, _>(body, |request| send(node, request)).await,
        Utxos::NAME => {
            call::<Utxos, _, _>(body, |Empty {}| async move {
                let utxos = blocking(&node, |node| node.utxos()).await??;
                Ok(utxos.into_iter().map(UtxoEntry::from).collect())
            })
            .await
        }
        Connect::NAME => {
            call::<Connect, _, _>(body, |request| async move {
                let node_id = parse_node_id(&request.node_id)?;
                let address = parse_host_port(&request.address)?;
                node.connect(node_id, &address).await?;
                Ok(ConnectRequest {
                    node_id: node_id.to_string(),
                    address,
                })
            })
            .await
        }
        Disconnect::NAME => {
            call::<Disconnect, _, _>(body, |request| async move {
                let node_id = parse_node_id(&request.node_id)?;
                node.disconnect(node_id).await?;
                Ok(DisconnectRequest {
                    node_id: node_id.to_string(),
                })
            })
            .await
        }
        Peers::NAME => {
            call::<Peers, _, _>(body, |Empty {}| async move {
                let peers = blocking(&node, |node| node.peers()).await?;
                Ok(peers.into_iter().map(PeerEntry::from).collect())
            })
            .await
        }
        OpenChannel::NAME => {
            call::<OpenChannel, _, _>(body, |request| open_channel(node, request)).await
        }
        CloseChannel::NAME => {
            call::<CloseChannel, _, _>(body, |request| async move {
                let channel = parse_channel_ref(&request.channel_id)?;
                let channel_id = node.channel_id_of(channel)?;
                let propagation = node.close_channel(&channel_id, request.force).await?;
                Ok(CloseChannelResponse {
                    channel_id,
                    force: request.force,
                    closing_txid: propagation.txid.map(|txid| txid.to_string()),
                    propagated: propagation.propagated,
                    propagation: propagation.detail,
                })
            })
            .await
        }
        Channels::NAME => {
            call::<Channels, _, _>(body, |Empty {}| async move {
                let channels = blocking(&node, |node| node.channels()).await?;
                Ok(channels.into_iter().map(ChannelEntry::from).collect())
            })
            .await
        }
        CreateInvoice::NAME => {
            call::<CreateInvoice, _, _>(body, |request| async move {
                if let Some(amount) = request.amount_msat {
                    check_msat("amount", amount)?;
                }
                let invoice = blocking(&node, move |node| {
                    node.create_invoice(
                        request.amount_msat,
                        &request.description,
                        request.expiry_secs,
                    )
                })
                .await??;
                Ok(invoice.into())
            })
            .await
        }
        Pay::NAME => {
            call::<Pay, _, _>(body, |request| async move {
                let destination = request.destination.trim();
                if destination.is_empty() {
                    return Err(ParseError::new(
                        "invoice or offer",
                        destination,
                        "expected a BOLT11 invoice or a BOLT12 offer",
                    )
                    .into());
                }
                if let Some(amount) = request.amount_msat {
                    check_msat("amount", amount)?;
                }
                let timeout = payment_timeout(request.timeout_secs)?;
                let payment = node.pay(destination, request.amount_msat, timeout).await?;
                Ok(payment.into())
            })
            .await
        }
        Keysend::NAME => {
            call::<Keysend, _, _>(body, |request| async move {
                let node_id = parse_node_id(&request.node_id)?;
                check_msat("amount", request.amount_msat)?;
                let timeout = payment_timeout(request.timeout_secs)?;
                let payment = node.keysend(node_id, request.amount_msat, timeout).await?;
                Ok(payment.into())
            })
            .await
        }
        Payments::NAME => {
            call::<Payments, _, _>(body, |request| async move {
                if request.limit == Some(0) {
                    return Err(ParseError::new("limit", "0", "must be at least 1").into());
                }
                let offset = usize::try_from(request.offset).unwrap_or(usize::MAX);
                let limit = request
                    .limit
                    .map_or(usize::MAX, |n| usize::try_from(n).unwrap_or(usize::MAX));
                let payments =
                    blocking(&node, move |node| node.payments_page(offset, limit)).await?;
                Ok(payments.into_iter().map(PaymentEntry::from).collect())
            })
            .await
        }
        CreateOffer::NAME => {
            call::<CreateOffer, _, _>(body, |request| async move {
                if let Some(amount) = request.amount_msat {
                    check_msat("amount", amount)?;
                }
                let offer = blocking(&node, move |node| {
                    node.create_offer(request.amount_msat, &request.description)
                })
                .await??;
                Ok(OfferResponse { offer })
            })
            .await
        }
        SignMessage::NAME => {
            call::<SignMessage, _, _>(body, |request| async move {
                let signature =
                    blocking(&node, move |node| node.sign_message(&request.message)).await?;
                Ok(SignMessageResponse { signature })
            })
            .await
        }
        VerifyMessage::NAME => {
            call::<VerifyMessage, _, _>(body, |request| async move {
                let node_id = parse_node_id(&request.node_id)?;
                let valid = blocking(&node, move |node| {
                    node.verify_message(&request.message, &request.signature, node_id)
                })
                .await?;
                Ok(VerifyMessageResponse { valid })
            })
            .await
        }
        FeeRates::NAME => {
            call::<FeeRates, _, _>(
                body,
                |Empty {}| async move { Ok(node.fee_rates().await.into()) },
            )
            .await
        }
        Transactions::NAME => {
            call::<Transactions, _, _>(body, |Empty {}| async move {
                let transactions = blocking(&node, |node| node.transactions()).await??;
                Ok(transactions
                    .into_iter()
                    .map(TransactionEntry::from)
                    .collect())
            })
            .await
        }
        BumpFee::NAME => call::<BumpFee, _, _>(body, |request| bump_fee(node, request)).await,
        Forwards::NAME => {
            call::<Forwards, _, _>(body, |Empty {}| async move {
                let forwards = blocking(&node, |node| node.forwards()).await??;
                Ok(forwards.into_iter().map(ForwardEntry::from).collect())
            })
            .await
        }
        SetChannelFee::NAME => {
            call::<SetChannelFee, _, _>(body, |request| async move {
                let channel = parse_channel_ref(&request.channel)?;
                let (channel_id, policy) = blocking(&node, move |node| {
                    node.set_channel_fee(
                        channel,
                        request.base_fee_msat,
                        request.fee_ppm,
                        request.cltv_expiry_delta,
                    )
                })
                .await??;
                Ok(ChannelPolicyResponse {
                    channel_id,
                    base_fee_msat: policy.base_fee_msat,
                    fee_ppm: policy.fee_ppm,
                    cltv_expiry_delta: policy.cltv_expiry_delta,
                })
            })
            .await
        }
        HoldInvoice::NAME => {
            call::<HoldInvoice, _, _>(body, |request| async move {
                let payment_hash = parse_hash("payment hash", &request.payment_hash)?;
                if let Some(amount) = request.amount_msat {
                    check_msat("amount", amount)?;
                }
                let invoice = blocking(&node, move |node| {
                    node.create_hold_invoice(
                        request.amount_msat,
                        &request.description,
                        request.expiry_secs,
                        payment_hash,
                    )
                })
                .await??;
                Ok(invoice.into())
            })
            .await
        }
        SettleInvoice::NAME => {
            call::<SettleInvoice, _, _>(body, |request| async move {
                let preimage = parse_hash("preimage", &request.preimage)?;
                blocking(&node, move |node| node.claim_held_payment(preimage)).await??;
                let hash = bitcoin::hashes::sha256::Hash::hash(&preimage);
                Ok(HeldPaymentResponse {
                    payment_hash: hash.to_byte_array().to_lower_hex_string(),
                })
            })
            .await
        }
        CancelInvoice::NAME => {
            call::<CancelInvoice, _, _>(body, |request| async move {
                let payment_hash = parse_hash("payment hash", &request.payment_hash)?;
                blocking(&node, move |node| node.cancel_held_payment(payment_hash)).await??;
                Ok(HeldPaymentResponse {
                    payment_hash: payment_hash.to_lower_hex_string(),
                })
            })
            .await
        }
        other => Err(RequestError::UnknownMethod(other.to_string())),
    }
}

async fn send(node: Arc<Node>, request: SendRequest) -> Result<SendResponse, RequestError> {
    let amount = match request.amount {
        SendAmountSpec::Sat(sat) => {
            check_sat("amount", sat)?;
            SendAmount::Exact(Amount::from_sat(sat))
        }
        SendAmountSpec::All => SendAmount::All,
    };
    let fee_rate = match (request.fee_rate_sat_per_kwu, request.fee_rate.as_deref()) {
        (Some(_), Some(text)) => {
            return Err(ParseError::new(
                "fee rate",
                text,
                "give fee_rate or fee_rate_sat_per_kwu, not both",
            )
            .into());
        }
        (Some(0), None) => {
            return Err(ParseError::new("fee rate", "0", "must be more than zero").into());
        }
        (Some(rate), None) => Some(FeeRate::from_sat_per_kwu(rate)),
        (None, Some(text)) => Some(FeeRate::from_sat_per_kwu(parse_fee_rate(text)?)),
        (None, None) => None,
    };
    let address = request.address.trim().to_string();
    if fee_rate.is_none() {
        node.freshen_fee_estimates().await;
    }
    let peer_minimum = if request.force {
        None
    } else {
        node.peer_minimum_fee_rate().await
    };
    let force = request.force;
    let sent = blocking(&node, move |node| {
        node.send_onchain(&address, amount, fee_rate, peer_minimum, force)
    })
    .await??;
    if let Some(warning) = &sent.warning {
        log::warn!("send {}: {warning}", sent.txid);
    }
    let propagation = node.propagation(sent.txid).await;
    Ok(SendResponse {
        txid: sent.txid.to_string(),
        amount_sat: sent.amount_sat,
        reserve_kept_sat: sent.reserve_kept_sat,
        warning: sent.warning,
        propagated: propagation.propagated,
        propagation: propagation.detail,
    })
}

async fn bump_fee(
    node: Arc<Node>,
    request: BumpFeeRequest,
) -> Result<BumpFeeResponse, RequestError> {
    let txid = parse_txid(&request.txid)?;
    let fee_rate = FeeRate::from_sat_per_kwu(parse_fee_rate(&request.fee_rate)?);
    let peer_minimum = if request.force {
        None
    } else {
        node.peer_minimum_fee_rate().await
    };
    let force = request.force;
    let replacement = blocking(&node, move |node| {
        node.bump_fee(txid, fee_rate, peer_minimum, force)
    })
    .await??;
    if let Some(warning) = &replacement.warning {
        log::warn!("fee bump {}: {warning}", replacement.txid);
    }
    let propagation = node.propagation(replacement.txid).await;
    Ok(BumpFeeResponse {
        txid: replacement.txid.to_string(),
        replaced_txid: txid.to_string(),
        warning: replacement.warning,
        propagated: propagation.propagated,
        propagation: propagation.detail,
    })
}

async fn open_channel(
    node: Arc<Node>,
    request: OpenChannelRequest,
) -> Result<OpenChannelResponse, RequestError> {
    let node_id = parse_node_id(&request.node_id)?;
    let address = parse_host_port(&request.address)?;
    let amount_sat = check_sat("channel amount", request.amount_sat)?;
    let push_msat = check_msat("push amount", request.push_msat)?;
    let opened = node
        .open_channel(
            node_id,
            &address,
            amount_sat,
            push_msat,
            request.public,
            request.force,
        )
        .await?;
    let propagation = node.propagation(opened.funding_txid).await;
    Ok(OpenChannelResponse {
        channel_id: opened.channel_id,
        funding_txid: opened.funding_txid.to_string(),
        propagated: propagation.propagated,
        propagation: propagation.detail,
    })
}

fn payment_timeout(secs: u64) -> Result<Duration, RequestError> {
    if secs == 0 || secs > MAX_PAYMENT_TIMEOUT_SECS {
        return Err(ParseError::new(
            "timeout",
            &secs.to_string(),
            format!("expected 1 to {MAX_PAYMENT_TIMEOUT_SECS} seconds"),
        )
        .into());
    }
    Ok(Duration::from_secs(secs))
}

/// Decodes the request body (empty means `{}`), runs `handler`, encodes its answer.
async fn call<M, F, Fut>(body: &[u8], handler: F) -> Result<Vec<u8>, RequestError>
where
    M: Method,
    F: FnOnce(M::Request) -> Fut,
    Fut: Future<Output = Result<M::Response, RequestError>>,
{
    let body = if body.iter().all(u8::is_ascii_whitespace) {
        b"{}".as_slice()
    } else {
        body
    };
    let request: M::Request =
        serde_json::from_slice(body).map_err(|err| RequestError::BadRequest(err.to_string()))?;
    let response = handler(request).await?;
    serde_json::to_vec(&response).map_err(|err| RequestError::Internal(err.to_string()))
}

/// Runs a synchronous node operation on the blocking pool.
async fn blocking<T, F>(node: &Arc<Node>, operation: F) -> Result<T, RequestError>
where
    T: Send + 'static,
    F: FnOnce(&Node) -> T + Send + 'static,
{
    let node = Arc::clone(node);
    tokio::task::spawn_blocking(move || operation(&node))
        .await
        .map_err(|err| RequestError::Internal(format!("the operation failed: {err}")))
}

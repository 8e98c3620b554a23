//! The node's router: LDK's `DefaultRouter`, keeping the final CLTV delta that a one-hop
//! blinded path asks for.
//!
//! LDK's router ignores the pay info of a blinded path with a single hop (its introduction node
//! is the recipient), taking it to describe only the hops between an introduction node and the
//! recipient. Such a path is also what remains when the node is the introduction node of a
//! two-hop path and LDK advances past itself before routing: Core Lightning's offers give a path
//! from a peer with a channel into it, whose pay info asks for that peer's delta plus Core
//! Lightning's final delta (`cltv-final`). Ignored, an HTLC expired at the current height plus
//! LDK's random shadow offset, and Core Lightning refused it whenever that offset fell below its
//! final delta ("Expiry cltv too soon"). Here the pay info's delta is added to the path's final
//! CLTV (within the payment's `max_total_cltv_expiry_delta`): a recipient never gets less than
//! it asked for, and gets at most the delta of the hop LDK skipped in excess. Upstream, LDK's
//! router should count a one-hop path's pay info (or adjust it when it advances a path past
//! the payer).

use std::sync::{Arc, RwLock};

use bitcoin::secp256k1::{self, PublicKey, Secp256k1};
use lightning::blinded_path::payment::{BlindedPaymentPath, ReceiveTlvs};
use lightning::ln::channel_state::ChannelDetails;
use lightning::ln::channelmanager::PaymentId;
use lightning::routing::router::{
    DefaultRouter, InFlightHtlcs, Payee, Route, RouteParameters, Router,
};
use lightning::routing::scoring::ProbabilisticScoringFeeParameters;
use lightning::sign::KeysManager;
use lightning::types::payment::PaymentHash;

use super::logger::LdkLogger;
use super::types::{NetworkGraph, Scorer};

/// LDK's default router over the node's graph and scorer.
type Inner = DefaultRouter<
    Arc<NetworkGraph>,
    Arc<LdkLogger>,
    Arc<KeysManager>,
    Arc<RwLock<Scorer>>,
    ProbabilisticScoringFeeParameters,
    Scorer,
>;

/// LDK's default router, with the final CLTV delta of one-hop blinded paths kept.
pub struct NodeRouter {
    inner: Inner,
}

impl NodeRouter {
    /// A router over `network_graph` and `scorer`.
    pub fn new(
        network_graph: Arc<NetworkGraph>,
        logger: Arc<LdkLogger>,
        keys: Arc<KeysManager>,
        scorer: Arc<RwLock<Scorer>>,
    ) -> Self {
        NodeRouter {
            inner: DefaultRouter::new(
                network_graph,
                logger,
                keys,
                scorer,
                ProbabilisticScoringFeeParameters::default(),
            ),
        }
    }
}

impl Router for NodeRouter {
    fn find_route(
        &self,
        payer: &PublicKey,
        route_params: &RouteParameters,
        first_hops: Option<&[&ChannelDetails]>,
        inflight_htlcs: InFlightHtlcs,
    ) -> Result<Route, &'static str> {
        let mut route = self
            .inner
            .find_route(payer, route_params, first_hops, inflight_htlcs)?;
        keep_one_hop_blinded_cltv(&mut route, route_params);
        Ok(route)
    }

    fn find_route_with_id(
        &self,
        payer: &PublicKey,
        route_params: &RouteParameters,
        first_hops: Option<&[&ChannelDetails]>,
        inflight_htlcs: InFlightHtlcs,
        payment_hash: PaymentHash,
        payment_id: PaymentId,
    ) -> Result<Route, &'static str> {
        let mut route = self.inner.find_route_with_id(
            payer,
            route_params,
            first_hops,
            inflight_htlcs,
            payment_hash,
            payment_id,
        )?;
        keep_one_hop_blinded_cltv(&mut route, route_params);
        Ok(route)
    }

    fn create_blinded_payment_paths<T: secp256k1::Signing + secp256k1::Verification>(
        &self,
        recipient: PublicKey,
        first_hops: Vec<ChannelDetails>,
        tlvs: ReceiveTlvs,
        amount_msats: Option<u64>,
        secp_ctx: &Secp256k1<T>,
    ) -> Result<Vec<BlindedPaymentPath>, ()> {
        self.inner
            .create_blinded_payment_paths(recipient, first_hops, tlvs, amount_msats, secp_ctx)
    }
}

/// Adds to each path of `route` ending in a one-hop blinded path the CLTV delta that path's pay
/// info asks for, as far as the payment's `max_total_cltv_expiry_delta` allows: to the last
/// hop's delta (the HTLC's expiry) and to the blinded tail's excess (the expiry the onion tells
/// the recipient), as LDK adds its shadow offset, so the two stay equal.
pub fn keep_one_hop_blinded_cltv(route: &mut Route, params: &RouteParameters) {
    let Payee::Blinded { route_hints, .. } = &params.payment_params.payee else {
        return;
    };
    let max_total = params.payment_params.max_total_cltv_expiry_delta;
    for path in &mut route.paths {
        let hops_total: u32 = path.hops.iter().map(|hop| hop.cltv_expiry_delta).sum();
        let Some(tail) = path.blinded_tail.as_mut() else {
            continue;
        };
        let Some(last_hop) = path.hops.last_mut() else {
            continue;
        };
        if tail.hops.len() != 1 {
            continue;
        }
        let Some(hint) = route_hints.iter().find(|hint| {
            hint.blinding_point() == tail.blinding_point && hint.blinded_hops() == tail.hops
        }) else {
            continue;
        };
        let asked = u32::from(hint.payinfo.cltv_expiry_delta);
        // The hops' total holds LDK's shadow offset already (it is on the last hop too).
        let added = asked.min(max_total.saturating_sub(hops_total));
        tail.excess_final_cltv_expiry_delta += added;
        last_hop.cltv_expiry_delta += added;
    }
}

#[cfg(test)]
mod tests {
    use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
    use lightning::blinded_path::payment::{BlindedPayInfo, BlindedPaymentPath};
    use lightning::blinded_path::BlindedHop;
    use lightning::routing::router::{
        BlindedTail, Path, PaymentParameters, Route, RouteHop, RouteParameters,
    };
    use lightning::types::features::{BlindedHopFeatures, ChannelFeatures, NodeFeatures};

    use super::keep_one_hop_blinded_cltv;

    fn key(byte: u8) -> PublicKey {
        PublicKey::from_secret_key(
            &Secp256k1::new(),
            &SecretKey::from_slice(&[byte; 32]).unwrap(),
        )
    }

    /// A blinded path of `hops` hops from the recipient's peer, asking `cltv` blocks.
    fn hint(hops: u8, cltv: u16) -> BlindedPaymentPath {
        let blinded_hops = (0..hops)
            .map(|i| BlindedHop {
                blinded_node_id: key(10 + i),
                encrypted_payload: vec![i; 32],
            })
            .collect();
        let payinfo = BlindedPayInfo {
            fee_base_msat: 0,
            fee_proportional_millionths: 0,
            cltv_expiry_delta: cltv,
            htlc_minimum_msat: 1,
            htlc_maximum_msat: 1_000_000_000,
            features: BlindedHopFeatures::empty(),
        };
        BlindedPaymentPath::from_blinded_path_and_payinfo(key(2), key(3), blinded_hops, payinfo)
    }

    /// A route over the channel to the recipient, into `hint`, with LDK's `shadow` offset on it.
    fn route_into(hint: &BlindedPaymentPath, shadow: u32) -> (Route, RouteParameters) {
        let params = RouteParameters::from_payment_params_and_value(
            PaymentParameters::blinded(vec![hint.clone()]),
            25_000_000,
        );
        let path = Path {
            hops: vec![RouteHop {
                pubkey: key(2),
                node_features: NodeFeatures::empty(),
                short_channel_id: 42,
                channel_features: ChannelFeatures::empty(),
                fee_msat: 0,
                cltv_expiry_delta: shadow,
                maybe_announced_channel: false,
            }],
            blinded_tail: Some(BlindedTail {
                trampoline_hops: vec![],
                hops: hint.blinded_hops().to_vec(),
                blinding_point: hint.blinding_point(),
                excess_final_cltv_expiry_delta: shadow,
                final_value_msat: 25_000_000,
            }),
        };
        let route = Route {
            paths: vec![path],
            route_params: Some(params.clone()),
        };
        (route, params)
    }

    #[test]
    fn a_one_hop_blinded_path_gets_the_cltv_its_pay_info_asks_for_on_the_htlc_and_the_onion() {
        // Core Lightning's path from the node, advanced past it: its pay info asks for the
        // node's delta (72) and Core Lightning's final delta (10); LDK's shadow offset was 6.
        let hint = hint(1, 82);
        let (mut route, params) = route_into(&hint, 6);
        keep_one_hop_blinded_cltv(&mut route, &params);
        let path = &route.paths[0];
        assert_eq!(path.hops[0].cltv_expiry_delta, 88, "the HTLC's expiry");
        assert_eq!(
            path.blinded_tail
                .as_ref()
                .unwrap()
                .excess_final_cltv_expiry_delta,
            88,
            "the expiry the onion tells the recipient"
        );
    }

    #[test]
    fn longer_blinded_paths_and_the_cltv_limit_are_left_to_ldk() {
        let hint_two = hint(2, 82);
        let (mut route, params) = route_into(&hint_two, 6);
        keep_one_hop_blinded_cltv(&mut route, &params);
        assert_eq!(
            route.paths[0].hops[0].cltv_expiry_delta, 6,
            "LDK counts its pay info"
        );

        let hint_one = hint(1, 82);
        let (mut route, mut params) = route_into(&hint_one, 6);
        params.payment_params.max_total_cltv_expiry_delta = 50;
        keep_one_hop_blinded_cltv(&mut route, &params);
        assert_eq!(
            route.paths[0].hops[0].cltv_expiry_delta, 50,
            "never past the payment's limit"
        );
    }
}

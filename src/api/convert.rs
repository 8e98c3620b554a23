//! From the node's snapshots to the API's response bodies: keys, hashes and outpoints become
//! strings, enums their stable lowercase names.

use super::parse::format_short_channel_id;
use super::types::{
    BackupEntry, BalanceResponse, ChannelEntry, InfoResponse, InvoiceResponse, PaymentEntry,
    PeerEntry, StoreEntry, SyncEntry, UtxoEntry,
};
use super::types::{FeeRateEntry, FeeRatesResponse, ForwardEntry, TransactionEntry};
use crate::config::network_name;
use crate::node::{
    Balances, ChannelInfo, FeeRatesInfo, ForwardInfo, InvoiceInfo, NodeInfo, PaymentInfo, PeerInfo,
    TransactionInfo, UtxoInfo,
};

impl From<NodeInfo> for InfoResponse {
    fn from(info: NodeInfo) -> Self {
        InfoResponse {
            node_id: info.node_id.to_string(),
            network: network_name(info.network).to_string(),
            block_height: info.block_height,
            block_hash: info.block_hash.to_string(),
            synced: info.synced,
            header_height: info.header_height,
            filter_height: info.filter_height,
            num_bitcoin_peers: info.num_bitcoin_peers,
            num_peers: info.num_peers,
            num_channels: info.num_channels,
            num_usable_channels: info.num_usable_channels,
            listen_addresses: info.listen_addresses,
            alias: info.alias,
            state: match (info.starting, info.store.role) {
                (true, "standby") => "standby",
                (true, _) => "starting",
                (false, _) => "running",
            }
            .to_string(),
            sync: SyncEntry {
                headers_height: info.sync.headers_height,
                filters_height: info.sync.filters_height,
                listeners_height: info.sync.listeners_height,
                progress: info.sync.progress,
                bytes_received: info.sync.bytes_received,
                decoy_bytes: info.sync.decoy_bytes,
                phase: info.sync.phase.as_str().to_string(),
                filters_from: info.sync.filters_from,
            },
            data_dir: info.data_dir.display().to_string(),
            graph_nodes: info.graph_nodes,
            graph_channels: info.graph_channels,
            backup: BackupEntry {
                dir: info.backup.dir.map(|dir| dir.display().to_string()),
                state: info.backup.state.as_str().to_string(),
                last_error: info.backup.last_error,
            },
            store: StoreEntry {
                kind: info.store.kind.to_string(),
                location: info.store.location,
                role: info.store.role.to_string(),
                waiting_for: info.store.waiting_for,
                epoch: info.store.epoch,
                lost: info.store.lost,
            },
        }
    }
}

impl From<Balances> for BalanceResponse {
    fn from(balances: Balances) -> Self {
        BalanceResponse {
            onchain_confirmed_sat: balances.onchain_confirmed_sat,
            onchain_pending_sat: balances.onchain_pending_sat,
            onchain_immature_sat: balances.onchain_immature_sat,
            lightning_sat: balances.lightning_sat,
            lightning_msat: balances.lightning_msat,
            claimable_onchain_sat: balances.claimable_onchain_sat,
            sweeping_sat: balances.sweeping_sat,
            anchor_reserve_sat: balances.anchor_reserve_sat,
        }
    }
}

impl From<UtxoInfo> for UtxoEntry {
    fn from(utxo: UtxoInfo) -> Self {
        UtxoEntry {
            outpoint: utxo.outpoint.to_string(),
            amount_sat: utxo.amount_sat,
            address: utxo.address,
            confirmation_height: utxo.confirmation_height,
            spendable: utxo.spendable,
        }
    }
}

impl From<PeerInfo> for PeerEntry {
    fn from(peer: PeerInfo) -> Self {
        PeerEntry {
            node_id: peer.node_id.to_string(),
            address: peer.address,
            connected: peer.connected,
            inbound: peer.inbound,
        }
    }
}

impl From<ChannelInfo> for ChannelEntry {
    fn from(channel: ChannelInfo) -> Self {
        ChannelEntry {
            channel_id: channel.channel_id,
            counterparty_node_id: channel.counterparty_node_id.to_string(),
            capacity_sat: channel.capacity_sat,
            local_balance_msat: channel.local_balance_msat,
            outbound_capacity_msat: channel.outbound_capacity_msat,
            inbound_capacity_msat: channel.inbound_capacity_msat,
            ready: channel.ready,
            usable: channel.usable,
            public: channel.public,
            outbound: channel.outbound,
            anchors: channel.anchors,
            funding_txid: channel.funding_txid.map(|txid| txid.to_string()),
            confirmations: channel.confirmations,
            short_channel_id: channel.short_channel_id.map(format_short_channel_id),
            held: channel.held.is_some(),
            held_reason: channel.held,
        }
    }
}

impl From<InvoiceInfo> for InvoiceResponse {
    fn from(invoice: InvoiceInfo) -> Self {
        InvoiceResponse {
            bolt11: invoice.bolt11,
            payment_hash: invoice.payment_hash,
            expires_at: invoice.expires_at,
        }
    }
}

impl From<PaymentInfo> for PaymentEntry {
    fn from(payment: PaymentInfo) -> Self {
        PaymentEntry {
            payment_hash: payment.payment_hash,
            direction: payment.direction.as_str().to_string(),
            amount_msat: payment.amount_msat,
            received_msat: payment.received_msat,
            fee_msat: payment.fee_msat,
            status: payment.status.as_str().to_string(),
            preimage: payment.preimage,
            failure: payment.failure,
            created_at: payment.created_at,
            updated_at: payment.updated_at,
        }
    }
}

impl From<FeeRatesInfo> for FeeRatesResponse {
    fn from(info: FeeRatesInfo) -> Self {
        FeeRatesResponse {
            estimates: info
                .estimates
                .into_iter()
                .map(|(target, sat_per_kw, source)| FeeRateEntry {
                    target: target.to_string(),
                    sat_per_kw,
                    sat_per_vb: f64::from(sat_per_kw) / 250.0,
                    source: source.to_string(),
                })
                .collect(),
            sampled_blocks: info.sampled_heights,
            peer_minimum_sat_per_kw: info.peer_minimum_sat_per_kw,
            peer_floor_sat_per_kw: info.peer_floor_sat_per_kw,
        }
    }
}

impl From<TransactionInfo> for TransactionEntry {
    fn from(tx: TransactionInfo) -> Self {
        TransactionEntry {
            txid: tx.txid.to_string(),
            received_sat: tx.received_sat,
            sent_sat: tx.sent_sat,
            net_sat: tx.net_sat,
            fee_sat: tx.fee_sat,
            confirmation_height: tx.confirmation_height,
            confirmations: tx.confirmations,
        }
    }
}

impl From<ForwardInfo> for ForwardEntry {
    fn from(forward: ForwardInfo) -> Self {
        ForwardEntry {
            prev_channel_id: forward.prev_channel_id,
            next_channel_id: forward.next_channel_id,
            prev_node_id: forward.prev_node_id,
            next_node_id: forward.next_node_id,
            amount_msat: forward.amount_msat,
            fee_msat: forward.fee_msat,
            claimed_on_chain: forward.claimed_on_chain,
            at: forward.at,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::node::{PaymentDirection, PaymentStatus};

    #[test]
    fn payments_use_the_documented_lowercase_names() {
        let entry = PaymentEntry::from(PaymentInfo {
            payment_hash: "ab".repeat(32),
            direction: PaymentDirection::Outbound,
            amount_msat: Some(1000),
            received_msat: None,
            fee_msat: None,
            status: PaymentStatus::Succeeded,
            preimage: None,
            failure: None,
            created_at: 1,
            updated_at: 2,
        });
        let json = serde_json::to_value(&entry).unwrap();
        assert_eq!(json["direction"], "outbound");
        assert_eq!(json["status"], "succeeded");
        assert_eq!(json["amount_msat"], 1000);
    }
}

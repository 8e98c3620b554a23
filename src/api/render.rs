//! Human-readable output of API responses for the CLI: short lines and tables, every amount
//! with its unit.

use std::fmt::Write;

use super::types::{
    BalanceResponse, ChannelEntry, InfoResponse, PaymentEntry, PeerEntry, UtxoEntry,
};

/// Lays out `rows` under `header` in columns separated by two spaces.
pub fn table(header: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = header.iter().map(|title| title.chars().count()).collect();
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let mut out = String::new();
    let mut line = |cells: Vec<&str>| {
        let last = cells.len().saturating_sub(1);
        let mut text = String::new();
        for (index, (cell, width)) in cells.iter().zip(&widths).enumerate() {
            if index == last {
                text.push_str(cell);
            } else {
                let _ = write!(text, "{cell:<width$}  ");
            }
        }
        out.push_str(text.trim_end());
        out.push('\n');
    };
    line(header.to_vec());
    for row in rows {
        line(row.iter().map(String::as_str).collect());
    }
    out
}

/// Formats millisatoshis as satoshis when whole, else with three decimals: `1500 sat`,
/// `1.5 sat`… always with the unit.
pub fn msat(amount_msat: u64) -> String {
    if amount_msat.is_multiple_of(1000) {
        format!("{} sat", amount_msat / 1000)
    } else {
        format!("{} msat", amount_msat)
    }
}

/// `bytes` in the largest unit that keeps it at or above 1 (B, kB, MB, GB; powers of 1000).
pub fn bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["B", "kB", "MB", "GB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < UNITS.len() {
        value /= 1000.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A line on how far the sync has come: percentage, heights, bytes received and peers.
pub fn sync_status(info: &InfoResponse) -> String {
    let listeners = if info.state == "starting" {
        "wallet and channels wait for the sync".to_string()
    } else {
        format!("wallet and channels at {}", info.sync.listeners_height)
    };
    format!(
        "syncing: {:.1}% (headers {}, filters {}, {listeners}; {} received, {} bitcoin peers)",
        info.sync.progress * 100.0,
        info.sync.headers_height,
        info.sync.filters_height,
        bytes(info.sync.bytes_received),
        info.num_bitcoin_peers
    )
}

/// The backup's state, its directory and its last failure.
fn backup(backup: &crate::api::types::BackupEntry) -> String {
    let mut text = backup.state.clone();
    if let Some(dir) = &backup.dir {
        text.push_str(&format!(" ({dir})"));
    }
    if let Some(err) = &backup.last_error {
        text.push_str(&format!(": {err}"));
    }
    text
}

/// `getinfo`.
pub fn info(info: &InfoResponse) -> String {
    let sync = if info.synced {
        format!(
            "synced (headers {}, filters {})",
            info.header_height, info.filter_height
        )
    } else {
        sync_status(info)
    };
    let listen = if info.listen_addresses.is_empty() {
        "not listening".to_string()
    } else {
        info.listen_addresses.join(", ")
    };
    let rows = [
        ("node id", info.node_id.clone()),
        ("alias", info.alias.clone()),
        ("network", info.network.clone()),
        (
            "block",
            format!("{} ({})", info.block_height, info.block_hash),
        ),
        ("sync", sync),
        (
            "received",
            format!("{} from Bitcoin peers", bytes(info.sync.bytes_received)),
        ),
        ("bitcoin peers", info.num_bitcoin_peers.to_string()),
        ("lightning peers", info.num_peers.to_string()),
        (
            "channels",
            format!(
                "{} ({} usable)",
                info.num_channels, info.num_usable_channels
            ),
        ),
        ("listening on", listen),
        ("backup", backup(&info.backup)),
    ];
    key_values(&rows)
}

/// `balance`.
pub fn balance(balance: &BalanceResponse) -> String {
    let rows = [
        (
            "on-chain confirmed",
            format!("{} sat", balance.onchain_confirmed_sat),
        ),
        (
            "on-chain pending",
            format!("{} sat", balance.onchain_pending_sat),
        ),
        (
            "on-chain immature",
            format!("{} sat", balance.onchain_immature_sat),
        ),
        ("lightning", msat(balance.lightning_msat)),
        (
            "closing channels",
            format!("{} sat", balance.claimable_onchain_sat),
        ),
        (
            "being swept to the wallet",
            format!("{} sat", balance.sweeping_sat),
        ),
    ];
    key_values(&rows)
}

/// `utxos`.
pub fn utxos(utxos: &[UtxoEntry]) -> String {
    if utxos.is_empty() {
        return "no unspent outputs\n".to_string();
    }
    let rows: Vec<Vec<String>> = utxos
        .iter()
        .map(|utxo| {
            vec![
                utxo.outpoint.clone(),
                format!("{} sat", utxo.amount_sat),
                utxo.confirmation_height
                    .map_or("unconfirmed".to_string(), |height| height.to_string()),
                if utxo.spendable { "yes" } else { "no" }.to_string(),
                utxo.address.clone(),
            ]
        })
        .collect();
    table(
        &["OUTPOINT", "AMOUNT", "HEIGHT", "SPENDABLE", "ADDRESS"],
        &rows,
    )
}

/// `peers`.
pub fn peers(peers: &[PeerEntry]) -> String {
    if peers.is_empty() {
        return "no peers\n".to_string();
    }
    let rows: Vec<Vec<String>> = peers
        .iter()
        .map(|peer| {
            vec![
                peer.node_id.clone(),
                if peer.connected {
                    "connected"
                } else {
                    "disconnected"
                }
                .to_string(),
                if peer.inbound { "in" } else { "out" }.to_string(),
                peer.address.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    table(&["NODE ID", "STATE", "DIRECTION", "ADDRESS"], &rows)
}

/// The state word of a channel.
fn channel_state(channel: &ChannelEntry) -> String {
    if channel.usable {
        "usable".to_string()
    } else if channel.ready {
        "ready, peer offline".to_string()
    } else {
        match channel.confirmations {
            Some(confirmations) => format!("opening ({confirmations} conf)"),
            None => "opening (unconfirmed)".to_string(),
        }
    }
}

/// `channels`.
pub fn channels(channels: &[ChannelEntry]) -> String {
    if channels.is_empty() {
        return "no channels\n".to_string();
    }
    let rows: Vec<Vec<String>> = channels
        .iter()
        .map(|channel| {
            vec![
                channel.channel_id.clone(),
                short_id(&channel.counterparty_node_id),
                format!("{} sat", channel.capacity_sat),
                msat(channel.local_balance_msat),
                channel_state(channel),
                if channel.public { "public" } else { "private" }.to_string(),
            ]
        })
        .collect();
    table(
        &[
            "CHANNEL ID",
            "PEER",
            "CAPACITY",
            "LOCAL",
            "STATE",
            "VISIBILITY",
        ],
        &rows,
    )
}

/// One payment as a line.
pub fn payment(payment: &PaymentEntry) -> String {
    let amount = payment
        .amount_msat
        .map_or("unknown amount".to_string(), msat);
    let mut line = format!(
        "{} {} {} ({})",
        payment.status, payment.direction, amount, payment.payment_hash
    );
    if let Some(fee) = payment.fee_msat {
        let _ = write!(line, ", fee {}", msat(fee));
    }
    if let Some(failure) = &payment.failure {
        let _ = write!(line, ": {failure}");
    }
    line.push('\n');
    line
}

/// `payments`.
pub fn payments(payments: &[PaymentEntry]) -> String {
    if payments.is_empty() {
        return "no payments\n".to_string();
    }
    let rows: Vec<Vec<String>> = payments
        .iter()
        .map(|payment| {
            vec![
                payment.payment_hash.clone(),
                payment.direction.clone(),
                payment.amount_msat.map_or("-".to_string(), msat),
                payment.fee_msat.map_or("-".to_string(), msat),
                payment.status.clone(),
            ]
        })
        .collect();
    table(
        &["PAYMENT HASH", "DIRECTION", "AMOUNT", "FEE", "STATUS"],
        &rows,
    )
}

fn short_id(node_id: &str) -> String {
    if node_id.len() > 16 {
        format!("{}…", &node_id[..16])
    } else {
        node_id.to_string()
    }
}

fn key_values(rows: &[(&str, String)]) -> String {
    let width = rows.iter().map(|(key, _)| key.len()).max().unwrap_or(0);
    rows.iter()
        .map(|(key, value)| format!("{key:<width$}  {value}\n"))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amounts_always_carry_a_unit() {
        assert_eq!(msat(0), "0 sat");
        assert_eq!(msat(25_000_000), "25000 sat");
        assert_eq!(msat(1_500), "1500 msat");
        let text = balance(&BalanceResponse {
            onchain_confirmed_sat: 10,
            onchain_pending_sat: 2,
            onchain_immature_sat: 0,
            lightning_sat: 5,
            lightning_msat: 5_500,
            claimable_onchain_sat: 0,
            sweeping_sat: 0,
        });
        for line in text.lines() {
            assert!(line.ends_with(" sat") || line.ends_with(" msat"), "{line}");
        }
    }

    #[test]
    fn tables_align_columns() {
        let text = table(
            &["A", "B"],
            &[
                vec!["long value".into(), "x".into()],
                vec!["s".into(), "y".into()],
            ],
        );
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "A           B");
        assert_eq!(lines[1], "long value  x");
        assert_eq!(lines[2], "s           y");
    }
}

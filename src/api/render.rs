//! Human-readable output of API responses for the CLI: short lines and tables, every amount
//! with its unit.

use std::fmt::Write;
use std::path::Path;

use super::types::{
    AddressResponse, BalanceResponse, BumpFeeResponse, ChannelEntry, ChannelPolicyResponse,
    CloseChannelResponse, ConnectRequest, DisconnectRequest, FeeRatesResponse, ForwardEntry,
    HeldPaymentResponse, InfoResponse, InvoiceResponse, OfferResponse, OpenChannelResponse,
    PaymentEntry, PeerEntry, SendAmountSpec, SendResponse, SignMessageResponse, StopResponse,
    TransactionEntry, UtxoEntry, VerifyMessageResponse,
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
    let phase = match (info.sync.phase.as_str(), info.sync.filters_from) {
        ("headers", _) => "syncing headers (no filters below the tip or the birthday)".to_string(),
        ("filters", Some(from)) => format!("syncing filters from block {from}"),
        ("listeners", _) => "bringing wallet and channels to the tip".to_string(),
        _ => "syncing".to_string(),
    };
    format!(
        "{phase}: {:.1}% (headers {}, filters {}, {listeners}; {} received, {} bitcoin peers)",
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

/// The store, this process's role there, and on a standby whom it waits for.
fn store(store: &crate::api::types::StoreEntry) -> String {
    let mut text = format!("{} ({}), {}", store.kind, store.location, store.role);
    if let Some(epoch) = store.epoch {
        text.push_str(&format!(" at epoch {epoch}"));
    }
    if let Some(holder) = &store.waiting_for {
        text.push_str(&format!(", waiting for {holder}"));
    }
    if let Some(reason) = &store.lost {
        text.push_str(&format!(": {reason}"));
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
        (
            "network graph",
            format!(
                "{} nodes, {} channels",
                info.graph_nodes, info.graph_channels
            ),
        ),
        ("data directory", info.data_dir.clone()),
        ("backup", backup(&info.backup)),
        ("store", store(&info.store)),
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
        (
            "anchor reserve (kept on chain)",
            format!("{} sat", balance.anchor_reserve_sat),
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
    if channel.held {
        "held until the peer reestablishes it".to_string()
    } else if channel.usable {
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
                channel
                    .short_channel_id
                    .clone()
                    .unwrap_or_else(|| "-".to_string()),
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
            "SCID",
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

/// A fee rate given in sat/kw, in sat/vB with its sat/kw: `5 sat/vB (1250 sat/kw)`.
pub fn fee_rate(sat_per_kw: u64) -> String {
    let hundredths = sat_per_kw.saturating_mul(4) / 10;
    let per_vb = if hundredths.is_multiple_of(100) {
        format!("{}", hundredths / 100)
    } else {
        format!("{}.{:02}", hundredths / 100, hundredths % 100)
            .trim_end_matches('0')
            .to_string()
    };
    format!("{per_vb} sat/vB ({sat_per_kw} sat/kw)")
}

/// `feerates`.
pub fn fee_rates(rates: &FeeRatesResponse) -> String {
    let rows: Vec<Vec<String>> = rates
        .estimates
        .iter()
        .map(|entry| {
            vec![
                entry.target.clone(),
                fee_rate(u64::from(entry.sat_per_kw)),
                entry.source.replace('_', " "),
            ]
        })
        .collect();
    let mut out = table(&["TARGET", "ESTIMATE", "SOURCE"], &rows);
    let peers = match rates.peer_minimum_sat_per_kw {
        Some(minimum) => format!(
            "Bitcoin peers' minimum (feefilter): {}; own transactions pay at least {}",
            fee_rate(minimum),
            fee_rate(u64::from(rates.peer_floor_sat_per_kw))
        ),
        None => "Bitcoin peers' minimum (feefilter): unknown (no peer connected)".to_string(),
    };
    let _ = writeln!(out, "{peers}");
    let _ = writeln!(
        out,
        "from the fees of {} recent block(s){}",
        rates.sampled_blocks.len(),
        match (rates.sampled_blocks.first(), rates.sampled_blocks.last()) {
            (Some(first), Some(last)) => format!(" ({first} to {last})"),
            _ => String::new(),
        }
    );
    out
}

/// `transactions`.
pub fn transactions(transactions: &[TransactionEntry]) -> String {
    if transactions.is_empty() {
        return "no transactions\n".to_string();
    }
    let rows: Vec<Vec<String>> = transactions
        .iter()
        .map(|tx| {
            vec![
                tx.txid.clone(),
                format!("{:+} sat", tx.net_sat),
                tx.fee_sat
                    .map_or("-".to_string(), |fee| format!("{fee} sat")),
                match tx.confirmation_height {
                    Some(height) => format!("{} (block {height})", tx.confirmations),
                    None => "unconfirmed".to_string(),
                },
            ]
        })
        .collect();
    table(&["TXID", "AMOUNT", "FEE", "CONFIRMATIONS"], &rows)
}

/// `forwards`, with the total earned.
pub fn forwards(forwards: &[ForwardEntry]) -> String {
    if forwards.is_empty() {
        return "no forwarded payments\n".to_string();
    }
    let rows: Vec<Vec<String>> = forwards
        .iter()
        .map(|forward| {
            let channel = |id: &Option<String>| {
                id.as_deref()
                    .map_or("-".to_string(), |id| short_id(id).to_string())
            };
            vec![
                forward.at.to_string(),
                channel(&forward.prev_channel_id),
                channel(&forward.next_channel_id),
                forward.amount_msat.map_or("-".to_string(), msat),
                forward.fee_msat.map_or("-".to_string(), msat),
            ]
        })
        .collect();
    let mut out = table(&["TIME", "IN", "OUT", "AMOUNT", "FEE"], &rows);
    let earned: u64 = forwards.iter().filter_map(|f| f.fee_msat).sum();
    let _ = writeln!(
        out,
        "{} forward(s), {} earned",
        forwards.len(),
        msat(earned)
    );
    out
}

/// `invoice` and `holdinvoice`: the invoice, then its amount, hash and expiry.
pub fn invoice(invoice: &InvoiceResponse, amount_msat: Option<u64>) -> String {
    format!(
        "{}\namount {}, payment hash {}, expires at {} (unix time)\n",
        invoice.bolt11,
        amount_msat.map_or("any".to_string(), msat),
        invoice.payment_hash,
        invoice.expires_at
    )
}

/// `setchannelfee`.
pub fn channel_policy(policy: &ChannelPolicyResponse) -> String {
    format!(
        "channel {} forwards for {} + {} ppm, CLTV delta {} blocks\n",
        policy.channel_id,
        msat(u64::from(policy.base_fee_msat)),
        policy.fee_ppm,
        policy.cltv_expiry_delta
    )
}

/// `bumpfee`: the replacement and whether a peer took it.
pub fn bumped(bumped: &BumpFeeResponse) -> String {
    format!(
        "replaced {} by {}\n{}\n",
        bumped.replaced_txid,
        bumped.txid,
        propagation_line(bumped.propagated, &bumped.propagation)
    )
}

/// `newaddress`.
pub fn address(address: &AddressResponse) -> String {
    format!("{}\n", address.address)
}

/// `send`: what went where, and whether a peer took the transaction.
pub fn sent(sent: &SendResponse, amount: SendAmountSpec, address: &str) -> String {
    let what = match amount {
        SendAmountSpec::Sat(sat) => format!("{sat} sat"),
        SendAmountSpec::All if sent.reserve_kept_sat > 0 => format!(
            "{} sat, all confirmed funds but the fee and the {} sat anchor reserve,",
            sent.amount_sat, sent.reserve_kept_sat
        ),
        SendAmountSpec::All => format!("{} sat, all confirmed funds but the fee,", sent.amount_sat),
    };
    format!(
        "sent {what} to {address} in transaction {}\n{}\n",
        sent.txid,
        propagation_line(sent.propagated, &sent.propagation)
    )
}

/// `connect`.
pub fn connected(peer: &ConnectRequest) -> String {
    format!("connected to {}@{}\n", peer.node_id, peer.address)
}

/// `disconnect`.
pub fn disconnected(peer: &DisconnectRequest) -> String {
    format!("disconnected from {}\n", peer.node_id)
}

/// `openchannel`: the channel and its funding transaction, and whether a peer took it.
pub fn opening(opened: &OpenChannelResponse, amount_sat: u64, node_id: &str) -> String {
    format!(
        "opening a {amount_sat} sat channel to {node_id}: channel id {}, funding transaction {}\n{}\n",
        opened.channel_id,
        opened.funding_txid,
        propagation_line(opened.propagated, &opened.propagation)
    )
}

/// What `openchannel --wait-ready` waits for while the channel is not ready.
pub fn channel_waiting(confirmations: Option<u32>) -> String {
    match confirmations {
        Some(confirmations) => {
            format!("waiting for the funding transaction: {confirmations} confirmation(s)")
        }
        None => "waiting for the funding transaction to confirm".to_string(),
    }
}

/// What `openchannel --wait-ready` says once the channel is ready.
pub const CHANNEL_READY: &str = "channel ready";

/// `closechannel`: where the funds go, and the closing transaction if broadcast.
pub fn closing(closed: &CloseChannelResponse) -> String {
    let how = if closed.force {
        "force-closing"
    } else {
        "closing"
    };
    format!(
        "{how} channel {}; the funds return to the on-chain wallet once the closing transaction confirms{}\n{}\n",
        closed.channel_id,
        if closed.force {
            " and its time lock expires"
        } else {
            ""
        },
        match &closed.closing_txid {
            Some(txid) => format!(
                "closing transaction {txid}: {}",
                propagation_line(closed.propagated, &closed.propagation)
            ),
            None => format!("{}.", closed.propagation),
        }
    )
}

/// `pay` and `keysend`: the payment, and a hint when it is still in flight.
pub fn payment_outcome(entry: &PaymentEntry) -> String {
    let mut text = payment(entry);
    if entry.status == "pending" {
        text.push_str("still in flight: `lightfilter payments` shows how it ends\n");
    }
    text
}

/// `offer`.
pub fn offer(offer: &OfferResponse) -> String {
    format!("{}\n", offer.offer)
}

/// `signmessage`.
pub fn signature(signed: &SignMessageResponse) -> String {
    format!("{}\n", signed.signature)
}

/// `verifymessage`: whether `node_id` signed the message.
pub fn verified(verified: &VerifyMessageResponse, node_id: &str) -> String {
    if verified.valid {
        format!("valid: signed by {node_id}\n")
    } else {
        format!("NOT valid: not signed by {node_id} over this message\n")
    }
}

/// `stop`.
pub fn stopping(_: &StopResponse) -> String {
    "the daemon is stopping\n".to_string()
}

/// `settleinvoice`.
pub fn settled(held: &HeldPaymentResponse) -> String {
    format!("claimed held payment {}\n", held.payment_hash)
}

/// `cancelinvoice`.
pub fn cancelled(held: &HeldPaymentResponse) -> String {
    format!("failed held payment {} back\n", held.payment_hash)
}

/// What `seed --words` says on standard error before the words.
pub const SEED_WARNING: &str = "warning: these 24 words are the keys to every coin and channel \
     of this node; anyone who sees them can take its funds. Write them on paper and keep it \
     offline.";

/// `seed --words`: the words numbered, four to a line.
pub fn seed_words(words: &str) -> String {
    let numbered: Vec<String> = words
        .split(' ')
        .enumerate()
        .map(|(i, word)| format!("{:>2}. {word:<10}", i + 1))
        .collect();
    numbered
        .chunks(4)
        .map(|row| format!("{}\n", row.join(" ").trim_end()))
        .collect()
}

/// `init`: the data directory made, and how to start it.
pub fn initialized(data_dir: &Path, node_id: &str) -> String {
    format!(
        "created {} with the seed of node {node_id}\nstart it with --wallet-birthday HEIGHT, and \
         --restore-from BACKUP_DIR to take its channels from a backup\n",
        data_dir.display()
    )
}

/// The sentence saying whether a Bitcoin peer took a transaction.
pub fn propagation_line(propagated: bool, detail: &str) -> String {
    if propagated {
        format!("propagated: {detail}")
    } else {
        format!("NOT propagated yet: {detail}")
    }
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
            anchor_reserve_sat: 25_000,
        });
        for line in text.lines() {
            assert!(line.ends_with(" sat") || line.ends_with(" msat"), "{line}");
        }
        assert!(
            text.contains("anchor reserve (kept on chain)  25000 sat"),
            "{text}"
        );
    }

    #[test]
    fn send_all_says_what_it_sent_and_what_it_kept() {
        let response = SendResponse {
            txid: "ab".into(),
            amount_sat: 370_000,
            reserve_kept_sat: 25_000,
            warning: None,
            propagated: true,
            propagation: "a Bitcoin peer took it".into(),
        };
        let text = sent(&response, SendAmountSpec::All, "bcrt1q");
        assert!(
            text.starts_with(
                "sent 370000 sat, all confirmed funds but the fee and the 25000 sat anchor \
                 reserve, to bcrt1q in transaction ab\n"
            ),
            "{text}"
        );
        let forced = sent(
            &SendResponse {
                reserve_kept_sat: 0,
                ..response
            },
            SendAmountSpec::All,
            "bcrt1q",
        );
        assert!(
            forced.starts_with("sent 370000 sat, all confirmed funds but the fee, to bcrt1q"),
            "{forced}"
        );
    }

    #[test]
    fn fee_rates_show_both_units() {
        assert_eq!(fee_rate(1_250), "5 sat/vB (1250 sat/kw)");
        assert_eq!(fee_rate(253), "1.01 sat/vB (253 sat/kw)");
        assert_eq!(fee_rate(625), "2.5 sat/vB (625 sat/kw)");
    }

    #[test]
    fn seed_words_are_numbered_four_to_a_line() {
        let words: Vec<String> = (1..=24).map(|i| format!("w{i}")).collect();
        let text = seed_words(&words.join(" "));
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 6);
        assert!(lines[0].starts_with(" 1. w1 "), "{}", lines[0]);
        assert!(lines[5].ends_with("24. w24"), "{}", lines[5]);
    }

    #[test]
    fn only_a_force_close_mentions_the_time_lock() {
        let closed = CloseChannelResponse {
            channel_id: "ab".into(),
            force: true,
            closing_txid: Some("cd".into()),
            propagated: false,
            propagation: "no peer took it yet".into(),
        };
        let text = closing(&closed);
        assert!(text.starts_with("force-closing channel ab;"), "{text}");
        assert!(text.contains("time lock"), "{text}");
        assert!(
            text.contains("closing transaction cd: NOT propagated yet"),
            "{text}"
        );
        let cooperative = closing(&CloseChannelResponse {
            force: false,
            closing_txid: None,
            ..closed
        });
        assert!(!cooperative.contains("time lock"), "{cooperative}");
        assert!(
            cooperative.ends_with("no peer took it yet.\n"),
            "{cooperative}"
        );
    }

    #[test]
    fn the_channel_wait_says_what_it_waits_for() {
        assert_eq!(
            channel_waiting(Some(2)),
            "waiting for the funding transaction: 2 confirmation(s)"
        );
        assert_eq!(
            channel_waiting(None),
            "waiting for the funding transaction to confirm"
        );
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

//! Payments: 1,000 sequential payments from A to B over one channel on 127.0.0.1, then the
//! same number from 8 concurrent senders; p50 / p99 latency and payments per second. Also the
//! size of the release binary.
//!
//! `LIGHTFILTER_BENCH_PAYMENTS` sets the number of payments per phase (default 1,000).

#[path = "../tests/common/node_harness.rs"]
mod harness;
#[path = "support/report.rs"]
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::*;
use lightfilter::node::{Node, PaymentStatus};
use report::{env_number, Row, Table};

/// Sats per payment.
const PAYMENT_MSAT: u64 = 1_000_000;

async fn pay_once(a: &Node, b: &Node) -> Duration {
    let invoice = b
        .create_invoice(Some(PAYMENT_MSAT), "bench", 3_600)
        .expect("invoice");
    let started = Instant::now();
    let paid = a
        .pay(&invoice.bolt11, None, Duration::from_secs(60))
        .await
        .expect("payment sent");
    assert_eq!(paid.status, PaymentStatus::Succeeded, "{paid:?}");
    started.elapsed()
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let index = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[index.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1_000.0)
}

fn main() {
    let payments = env_number("LIGHTFILTER_BENCH_PAYMENTS", 1_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Table::new("payments over one channel on 127.0.0.1");
    runtime.block_on(async {
        let peer = start_peer().await;
        let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let a = start_node(&peer, dir_a.path()).await;
        let b = start_node(&peer, dir_b.path()).await;
        fund(&peer, &a, 10_000_000).await;
        fund(&peer, &b, 100_000).await;
        synced(&peer, &a).await;
        synced(&peer, &b).await;
        let capacity = (payments as u64 * 2 * PAYMENT_MSAT / 1_000 + 100_000).min(9_000_000);
        open_channel(&peer, &a, &b, capacity, 0, false).await;

        // Sequential.
        let started = Instant::now();
        let mut latencies = Vec::with_capacity(payments);
        for _ in 0..payments {
            latencies.push(pay_once(&a, &b).await);
        }
        let elapsed = started.elapsed();
        push_latency_rows(
            &mut table,
            &format!("{payments} sequential payments"),
            "sequential payments per second",
            latencies,
            elapsed,
        );

        // Eight concurrent senders.
        let senders = 8;
        let started = Instant::now();
        let mut tasks = Vec::new();
        for _ in 0..senders {
            let (a, b): (Arc<Node>, Arc<Node>) = (a.clone(), b.clone());
            let count = payments / senders;
            tasks.push(tokio::spawn(async move {
                let mut latencies = Vec::with_capacity(count);
                for _ in 0..count {
                    latencies.push(pay_once(&a, &b).await);
                }
                latencies
            }));
        }
        let mut latencies = Vec::new();
        for task in tasks {
            latencies.extend(task.await.expect("sender"));
        }
        let elapsed = started.elapsed();
        let label = format!(
            "{} payments from {senders} concurrent senders",
            latencies.len()
        );
        push_latency_rows(
            &mut table,
            &label,
            "concurrent payments per second",
            latencies,
            elapsed,
        );
        a.stop().await;
        b.stop().await;
    });
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_lightfilter"));
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    table.push(Row::info(
        "release binary (debug info stripped)",
        format!("{:.1} MB", size as f64 / 1_000_000.0),
    ));
    table.print();
}

/// Adds the p50 / p99 latency row and the rate row of one run of payments.
fn push_latency_rows(
    table: &mut Table,
    label: &str,
    rate_label: &str,
    mut latencies: Vec<Duration>,
    elapsed: Duration,
) {
    latencies.sort();
    table.push(Row::info(
        format!("{label}: p50 / p99 latency"),
        format!(
            "{} / {}",
            ms(percentile(&latencies, 0.5)),
            ms(percentile(&latencies, 0.99))
        ),
    ));
    table.push(Row::info(
        rate_label,
        format!("{:.1}", latencies.len() as f64 / elapsed.as_secs_f64()),
    ));
}

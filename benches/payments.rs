//! Payments: 1,000 sequential payments from A to B over one channel on 127.0.0.1, then the
//! same number from 8 concurrent senders; p50 / p99 latency and payments per second. The same
//! again with a second pair of nodes keeping their channel state in PostgreSQL (`--store`, a
//! server of the bench's own on the same machine, as the tests start it), printed against the
//! file store as ratios of payments per second in the same run: each phase runs in rounds in
//! which the two pairs take turns. Also the size of the release binary.
//!
//! `LIGHTFILTER_BENCH_PAYMENTS` sets the number of payments per phase (default 1,000).

#[path = "../tests/common/node_harness.rs"]
mod harness;
#[path = "../tests/common/postgres.rs"]
#[allow(dead_code)]
mod postgres;
#[path = "support/report.rs"]
mod report;

use std::sync::Arc;
use std::time::{Duration, Instant};

use harness::*;
use lightfilter::node::{Node, PaymentStatus};
use lightfilter::regtest::RegtestPeer;
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

/// Rounds the payments of each phase are split into, the two stores taking turns (the first
/// store alternating), so that a change in the machine's load weighs on both alike.
const ROUNDS: usize = 10;

/// Two nodes with a channel from A to B.
struct Pair {
    a: Arc<Node>,
    b: Arc<Node>,
    _dirs: (tempfile::TempDir, tempfile::TempDir),
}

/// What one pair measured: each phase's latencies and the time its rounds took together.
#[derive(Default)]
struct Measured {
    sequential: (Vec<Duration>, Duration),
    concurrent: (Vec<Duration>, Duration),
}

impl Measured {
    fn sequential_rate(&self) -> f64 {
        rate(&self.sequential)
    }

    fn concurrent_rate(&self) -> f64 {
        rate(&self.concurrent)
    }
}

fn rate((latencies, elapsed): &(Vec<Duration>, Duration)) -> f64 {
    latencies.len() as f64 / elapsed.as_secs_f64()
}

/// Starts two nodes (with `settings` in their configuration files) and opens a channel from
/// A to B large enough for `payments` payments in each phase.
async fn pair(peer: &RegtestPeer, settings: &str, payments: usize) -> Pair {
    let dirs = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let a = start_node_configured(peer, dirs.0.path(), settings).await;
    let b = start_node_configured(peer, dirs.1.path(), settings).await;
    fund(peer, &a, 10_000_000).await;
    fund(peer, &b, 100_000).await;
    synced(peer, &a).await;
    synced(peer, &b).await;
    let capacity = (payments as u64 * 2 * PAYMENT_MSAT / 1_000 + 100_000).min(9_000_000);
    open_channel(peer, &a, &b, capacity, 0, false).await;
    Pair { a, b, _dirs: dirs }
}

/// `count` payments one after the other: their latencies, and how long they took.
async fn sequential(pair: &Pair, count: usize) -> (Vec<Duration>, Duration) {
    let started = Instant::now();
    let mut latencies = Vec::with_capacity(count);
    for _ in 0..count {
        latencies.push(pay_once(&pair.a, &pair.b).await);
    }
    (latencies, started.elapsed())
}

/// `count` payments from 8 concurrent senders: their latencies, and how long they took.
async fn concurrent(pair: &Pair, count: usize) -> (Vec<Duration>, Duration) {
    let senders = 8;
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..senders {
        let (a, b): (Arc<Node>, Arc<Node>) = (pair.a.clone(), pair.b.clone());
        let count = count / senders;
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
    (latencies, started.elapsed())
}

/// Adds one round's figures to a phase's.
fn add(total: &mut (Vec<Duration>, Duration), round: (Vec<Duration>, Duration)) {
    total.0.extend(round.0);
    total.1 += round.1;
}

/// Runs both phases on every pair, in [`ROUNDS`] rounds each with the pairs taking turns.
async fn measure(pairs: &[&Pair], payments: usize) -> Vec<Measured> {
    let mut measured: Vec<Measured> = pairs.iter().map(|_| Measured::default()).collect();
    let per_round = payments / ROUNDS;
    for round in 0..ROUNDS {
        for turn in 0..pairs.len() {
            let index = (turn + round) % pairs.len();
            add(
                &mut measured[index].sequential,
                sequential(pairs[index], per_round).await,
            );
        }
    }
    for round in 0..ROUNDS {
        for turn in 0..pairs.len() {
            let index = (turn + round) % pairs.len();
            add(
                &mut measured[index].concurrent,
                concurrent(pairs[index], per_round).await,
            );
        }
    }
    measured
}

fn main() {
    let payments = env_number("LIGHTFILTER_BENCH_PAYMENTS", 1_000) as usize;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let mut table = Table::new("payments over one channel on 127.0.0.1");
    // The PostgreSQL server runs beside the nodes, on the same machine.
    let server = postgres::Postgres::start();
    runtime.block_on(async {
        let peer = start_peer().await;
        let files = pair(&peer, "", payments).await;
        let Some(server) = &server else {
            let measured = measure(&[&files], payments).await;
            push_rows(&mut table, "", &measured[0]);
            table.push(Row::info(
                "the same on PostgreSQL",
                postgres::SKIPPED.to_string(),
            ));
            files.a.stop().await;
            files.b.stop().await;
            return;
        };
        let settings = format!("store = \"{}\"\n", server.url());
        let on_postgres = pair(&peer, &settings, payments).await;
        let measured = measure(&[&files, &on_postgres], payments).await;
        let (files_measured, postgres_measured) = (&measured[0], &measured[1]);
        push_rows(&mut table, "", files_measured);
        push_rows(&mut table, " on PostgreSQL", postgres_measured);
        for (what, ours, theirs) in [
            (
                "sequential",
                postgres_measured.sequential_rate(),
                files_measured.sequential_rate(),
            ),
            (
                "concurrent",
                postgres_measured.concurrent_rate(),
                files_measured.concurrent_rate(),
            ),
        ] {
            table.push(Row::info(
                format!("PostgreSQL / files: {what} payments per second"),
                format!("{ours:.1} / {theirs:.1} = {:.2}", ours / theirs),
            ));
        }
        for pair in [&files, &on_postgres] {
            pair.a.stop().await;
            pair.b.stop().await;
        }
    });
    let binary = std::path::Path::new(env!("CARGO_BIN_EXE_lightfilter"));
    let size = std::fs::metadata(binary).map(|m| m.len()).unwrap_or(0);
    table.push(Row::info(
        "release binary (debug info stripped)",
        format!("{:.1} MB", size as f64 / 1_000_000.0),
    ));
    table.print();
}

/// Adds the latency and rate rows of both phases of one pair of nodes (`store` names where
/// they keep their state, empty for the files).
fn push_rows(table: &mut Table, store: &str, measured: &Measured) {
    let (latencies, _) = &measured.sequential;
    push_latency_rows(
        table,
        &format!("{} sequential payments{store}", latencies.len()),
        &format!("sequential payments per second{store}"),
        latencies.clone(),
        measured.sequential_rate(),
    );
    let (latencies, _) = &measured.concurrent;
    push_latency_rows(
        table,
        &format!(
            "{} payments from 8 concurrent senders{store}",
            latencies.len()
        ),
        &format!("concurrent payments per second{store}"),
        latencies.clone(),
        measured.concurrent_rate(),
    );
}

/// Adds the p50 / p99 latency row and the rate row of one run of payments.
fn push_latency_rows(
    table: &mut Table,
    label: &str,
    rate_label: &str,
    mut latencies: Vec<Duration>,
    rate: f64,
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
    table.push(Row::info(rate_label, format!("{rate:.1}")));
}

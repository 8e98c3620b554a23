//! Chain sync and bandwidth, measured against baselines in the same run.
//!
//! 1. Sync overhead: one regtest chain (`LIGHTFILTER_BENCH_BLOCKS`, default 20,000 blocks; every
//!    100th block carries a payment, and a few of those pay watched scripts) is synced from
//!    genesis by a bare `bip157` client that also fetches the blocks whose filters match the
//!    watched scripts, and by lightfilter's `ChainSource` with a listener brought to the tip.
//!    Both talk to the same embedded peer over 127.0.0.1; the order alternates over eleven
//!    rounds, each sync starts after the last one's client has been gone for 200 ms, and the
//!    median of the per-round ratios is reported.
//! 2. Bandwidth: a chain of large blocks (`LIGHTFILTER_BENCH_LARGE_BLOCKS`, default 1,000, of
//!    about `LIGHTFILTER_BENCH_BLOCK_BYTES`, default 1,000,000 bytes of transactions each),
//!    1% of which pay a watched script, is synced by `ChainSource`; the bytes the peer sent
//!    are compared with the serialized size of every block of the chain. Transactions spend
//!    two inputs with witnesses the size of P2WPKH spends and pay two distinct 34-byte
//!    scripts, so each adds four elements to its block's filter. `ChainSource` syncs it once
//!    with regtest's fee sampling (a block of its own at every new tip) and once with public
//!    networks' (the blocks fetched for the listeners are sampled; one of its own a day while
//!    idle); a bare `bip157` client syncs the same chain for comparison: its bytes are the
//!    floor BIP 158 filters set.
//! 3. Sync time on that chain of large blocks, where downloading the filters weighs more than
//!    on regtest's tiny blocks: eleven alternating rounds as in 1., with public networks' fee
//!    sampling, over 127.0.0.1 and again with the peer sending at 50 Mbit/s to each client (a
//!    home connection), as a real peer would.

#[path = "../tests/common/chain_harness.rs"]
mod harness;
#[path = "support/large_blocks.rs"]
mod large_blocks;
#[path = "support/report.rs"]
mod report;

use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bip157::{Builder, Event, TrustedPeer};
use bitcoin::block::Header;
use bitcoin::{Amount, FeeRate, Network, ScriptBuf};
use harness::{follow_from, genesis, start_source, unique_script};
use large_blocks::LargeBlocks;
use lightfilter::chain::fees::IDLE_SAMPLE_INTERVAL_PUBLIC;
use lightfilter::chain::{DownloadCounts, WatchSet};
use lightfilter::regtest::RegtestPeer;
use lightning::chain::transaction::TransactionData;
use lightning::chain::{BestBlock, Listen};
use report::{env_number, Row, Table};

/// How long any one sync may take before the benchmark gives up.
const SYNC_LIMIT: Duration = Duration::from_secs(600);
/// Tags of watched scripts start here; other scripts use smaller tags.
const WATCHED_TAG: u64 = 1 << 40;
/// Rounds of the sync comparison (the order alternates). A round takes about a second; on a
/// shared machine single syncs vary by a fifth either way, so it takes this many rounds for
/// the median ratio to vary much less than the margin it is held to.
const ROUNDS: usize = 11;
/// How long a sync whose bytes are counted keeps running after its listener reached the tip:
/// a fee sample the sampler held back for the listeners is fetched by then.
const FEES_SETTLE: Duration = Duration::from_secs(3);
/// How long both clients wait for an answer: over the paced link a batch of 1,000 filters of
/// large blocks takes seconds, and a block asked for meanwhile waits behind it.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(60);
/// The link the paced comparison runs over: 50 Mbit/s, a common home connection.
const LINK_BYTES_PER_SECOND: u64 = 50_000_000 / 8;
/// Pause after each sync, so the next one does not share the machine with the last one's
/// shutdown.
const SETTLE: Duration = Duration::from_millis(200);

fn watched_script(i: u64) -> ScriptBuf {
    unique_script(WATCHED_TAG + i)
}

async fn start_peer() -> RegtestPeer {
    RegtestPeer::start("127.0.0.1:0".parse::<SocketAddr>().unwrap())
        .await
        .expect("regtest peer starts")
}

/// Mines `blocks` blocks: every 100th carries a faucet payment to a fresh script, and one
/// payment in twenty (one per 2,000 blocks) pays a watched script instead. Returns the watched
/// scripts that were paid.
fn build_sync_chain(peer: &RegtestPeer, blocks: u32) -> Vec<ScriptBuf> {
    let miner = peer.faucet_script();
    let fee_rate = FeeRate::from_sat_per_vb(2).unwrap();
    let mut watched = Vec::new();
    // Mature coins for the faucet.
    peer.mine(101, &miner);
    let mut tag = 0u64;
    let mut payments = 0u64;
    while peer.tip().0 < blocks {
        let height = peer.tip().0;
        payments += 1;
        let to = if payments % 20 == 1 {
            let script = watched_script(watched.len() as u64);
            watched.push(script.clone());
            script
        } else {
            tag += 1;
            unique_script(tag)
        };
        peer.fund(&to, Amount::from_sat(50_000), fee_rate)
            .expect("faucet pays");
        peer.mine((blocks - height).min(100), &miner);
    }
    watched
}

/// Syncs a bare bip157 client from genesis to `tip`, fetching every block whose filter
/// matches `watched`. Returns the time taken and the number of blocks fetched.
async fn bare_sync(peer: SocketAddr, tip: u32, watched: &[ScriptBuf]) -> (Duration, usize) {
    let started = Instant::now();
    let (node, client) = Builder::new(Network::Regtest)
        .add_peer(TrustedPeer::from_socket_addr(peer))
        .whitelist_only()
        .required_peers(1)
        .fetch_witness_data()
        .response_timeout(RESPONSE_TIMEOUT)
        .build();
    let node = tokio::spawn(async move { node.run().await });
    let bip157::Client {
        requester,
        mut event_rx,
        ..
    } = client;
    let mut fetches = tokio::task::JoinSet::new();
    let outcome = tokio::time::timeout(SYNC_LIMIT, async {
        while let Some(event) = event_rx.recv().await {
            match event {
                Event::IndexedFilter(filter) if filter.contains_any(watched.iter()) => {
                    let requester = requester.clone();
                    let hash = filter.block_hash();
                    fetches.spawn(async move {
                        requester.get_block(hash).await.expect("block fetched")
                    });
                }
                Event::FiltersSynced(update) if update.tip().height >= tip => break,
                _ => {}
            }
        }
        let mut fetched = 0;
        while let Some(block) = fetches.join_next().await {
            let block = block.expect("fetch task");
            assert!(block.block.check_merkle_root());
            fetched += 1;
        }
        fetched
    })
    .await;
    let elapsed = started.elapsed();
    let fetched = outcome.expect("bare bip157 client syncs in time");
    let _ = requester.shutdown();
    let _ = node.await;
    tokio::time::sleep(SETTLE).await;
    (elapsed, fetched)
}

/// The listener a benchmark sync brings to the tip. Like LDK's listeners, it checks that each
/// block builds on the last and keeps what it is given; it records nothing else, so the time
/// measured is the chain source's and not a test recorder's bookkeeping.
struct TipListener {
    tip: Mutex<BestBlock>,
    transactions: AtomicUsize,
}

impl TipListener {
    fn new(start: BestBlock) -> Self {
        Self {
            tip: Mutex::new(start),
            transactions: AtomicUsize::new(0),
        }
    }

    fn tip(&self) -> BestBlock {
        *self.tip.lock().unwrap()
    }
}

impl Listen for TipListener {
    fn filtered_block_connected(&self, header: &Header, txdata: &TransactionData, height: u32) {
        let hash = header.block_hash();
        let mut tip = self.tip.lock().unwrap();
        let rescan = tip.block_hash == hash;
        assert!(
            rescan || (tip.block_hash == header.prev_blockhash && tip.height + 1 == height),
            "block {hash} at {height} does not build on {tip:?}"
        );
        *tip = BestBlock::new(hash, height);
        self.transactions.fetch_add(txdata.len(), Ordering::Relaxed);
    }

    fn blocks_disconnected(&self, fork_point: BestBlock) {
        *self.tip.lock().unwrap() = fork_point;
    }
}

/// What one `ChainSource` sync took.
struct OurSync {
    /// From start until the listener reached the tip.
    elapsed: Duration,
    /// From start until the filters up to the tip were verified and stored.
    filters_stored: Duration,
    counts: DownloadCounts,
    /// Transactions the listener was given (those of the blocks whose filters matched).
    transactions: usize,
}

/// Polls `condition` every 2 ms (fine enough for sub-second syncs) until it holds.
async fn poll_until(mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + SYNC_LIMIT;
    while !condition() {
        assert!(
            Instant::now() < deadline,
            "sync did not finish within {SYNC_LIMIT:?}"
        );
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Syncs a fresh `ChainSource` in a new temporary directory, with one listener at genesis,
/// until the listener reaches the peer's tip, the way the node runs it: `synchronize` then
/// `follow_tip`. `sampling` is its fee sampling policy; the source keeps running for `linger`
/// after the listener reached the tip (what it fetches then is counted, not timed).
async fn our_sync(
    peer: &RegtestPeer,
    watched: &[ScriptBuf],
    sampling: Sampling,
    linger: Duration,
) -> OurSync {
    let dir = tempfile::tempdir().expect("temp dir");
    let (tip_height, tip_hash) = peer.tip();
    let watch = Arc::new(WatchSet::new());
    watch.add_scripts(watched.iter().map(|s| s.as_script()));
    let started = Instant::now();
    let tip_listener = Arc::new(TipListener::new(genesis()));
    let source = start_source(
        dir.path(),
        &[peer.addr()],
        "tip",
        tip_listener.clone(),
        watch,
        |config| {
            config.fee_sample_interval = sampling.idle_interval();
            config.response_timeout = RESPONSE_TIMEOUT;
        },
    );
    let (stop, follower) = follow_from(&source, genesis().block_hash).await;
    let mut filters_stored = None;
    poll_until(|| {
        if filters_stored.is_none()
            && source
                .heights()
                .verified_tip
                .is_some_and(|(h, _)| h >= tip_height)
        {
            filters_stored = Some(started.elapsed());
        }
        tip_listener.tip().block_hash == tip_hash
    })
    .await;
    let elapsed = started.elapsed();
    tokio::time::sleep(linger).await;
    let counts = source.download_counts();
    let _ = stop.send(true);
    let _ = follower.await;
    source.shutdown();
    // Let the engine release its database before the directory goes.
    tokio::time::sleep(SETTLE).await;
    OurSync {
        elapsed,
        filters_stored: filters_stored.unwrap_or(elapsed),
        counts,
        transactions: tip_listener.transactions.load(Ordering::Relaxed),
    }
}

/// The fee sampling policy a benchmark sync runs with.
#[derive(Debug, Clone, Copy)]
enum Sampling {
    /// Regtest's: a block of its own at every new tip (regtest blocks are tiny).
    Regtest,
    /// Public networks': the blocks fetched for the listeners are sampled, and a block of its
    /// own is fetched once per `fees::IDLE_SAMPLE_INTERVAL_PUBLIC` blocks while idle.
    Public,
}

impl Sampling {
    fn idle_interval(self) -> Option<u32> {
        match self {
            Sampling::Regtest => None,
            Sampling::Public => Some(IDLE_SAMPLE_INTERVAL_PUBLIC),
        }
    }
}

/// Syncs the peer's chain `ROUNDS` times with a bare `bip157` client and with `ChainSource`,
/// alternating which goes first; returns the ratio of each round (ours over bare).
async fn compare_sync_times(
    label: &str,
    peer: &RegtestPeer,
    watched: &[ScriptBuf],
    sampling: Sampling,
) -> Vec<f64> {
    let tip = peer.tip().0;
    let mut ratios = Vec::new();
    for round in 0..ROUNDS {
        let (bare, ours, fetched) = if round % 2 == 0 {
            let (bare, fetched) = bare_sync(peer.addr(), tip, watched).await;
            let ours = our_sync(peer, watched, sampling, Duration::ZERO).await;
            (bare, ours, fetched)
        } else {
            let ours = our_sync(peer, watched, sampling, Duration::ZERO).await;
            let (bare, fetched) = bare_sync(peer.addr(), tip, watched).await;
            (bare, ours, fetched)
        };
        let ratio = ours.elapsed.as_secs_f64() / bare.as_secs_f64();
        println!(
            "{label} round {}: bare {:.3} s ({fetched} blocks fetched), ours {:.3} s (filters \
             stored after {:.3} s; {} blocks for listeners with {} transactions, {} for fee \
             samples), ratio {ratio:.3}",
            round + 1,
            bare.as_secs_f64(),
            ours.elapsed.as_secs_f64(),
            ours.filters_stored.as_secs_f64(),
            ours.counts.blocks_for_listeners,
            ours.transactions,
            ours.counts.blocks_for_fees,
        );
        assert!(
            ours.transactions > watched.len(),
            "the listener was not given the transactions of the matching blocks"
        );
        ratios.push(ratio);
    }
    ratios
}

/// What one `ChainSource` sync of the bandwidth chain cost.
struct SyncBytes {
    /// Bytes the peer sent.
    bytes_sent: u64,
    counts: DownloadCounts,
}

impl SyncBytes {
    /// Bytes of headers, filter headers and filters: all but the blocks.
    fn filters_and_headers(&self) -> u64 {
        self.bytes_sent
            .saturating_sub(self.counts.bytes_for_listeners)
            .saturating_sub(self.counts.bytes_for_fees)
    }
}

/// Syncs the peer's chain once with `ChainSource` and `sampling`, counting the bytes the peer
/// sent.
async fn bytes_of_one_sync(
    label: &str,
    peer: &RegtestPeer,
    watched: &[ScriptBuf],
    sampling: Sampling,
) -> SyncBytes {
    peer.reset_stats();
    let OurSync {
        elapsed, counts, ..
    } = our_sync(peer, watched, sampling, FEES_SETTLE).await;
    let stats = peer.stats();
    println!(
        "bandwidth ({label}): synced in {:.1} s; peer sent {} bytes: {} blocks ({} bytes) for \
         listeners, {} blocks ({} bytes) for fee samples, {} refetches, {} cfilters",
        elapsed.as_secs_f64(),
        stats.bytes_sent,
        counts.blocks_for_listeners,
        counts.bytes_for_listeners,
        counts.blocks_for_fees,
        counts.bytes_for_fees,
        counts.refetches,
        stats.cfilters_served,
    );
    SyncBytes {
        bytes_sent: stats.bytes_sent,
        counts,
    }
}

/// The ratios of `compare_sync_times`, for the table.
fn listed(ratios: &[f64]) -> String {
    ratios
        .iter()
        .map(|r| format!("{r:.3}"))
        .collect::<Vec<_>>()
        .join(", ")
}

fn median(values: &[f64]) -> f64 {
    let mut values = values.to_vec();
    values.sort_by(|a, b| a.partial_cmp(b).unwrap());
    values[values.len() / 2]
}

/// Adds the rows of one sync-time comparison: every round's ratio under `chain`, and their
/// median under `what`, held to `goal` when there is one.
fn push_sync_times(
    table: &mut Table,
    chain: String,
    what: String,
    ratios: &[f64],
    goal: Option<f64>,
) {
    let ratio = median(ratios);
    table.push(Row::info(chain, format!("ratios {}", listed(ratios))));
    let what = format!("{what} (median of {ROUNDS})");
    table.push(match goal {
        Some(goal) => Row::goal(
            what,
            format!("{ratio:.3}"),
            format!("≤ {goal:.2}"),
            ratio <= goal,
        ),
        None => Row::info(what, format!("{ratio:.3}")),
    });
}

async fn sync_overhead(table: &mut Table) {
    let blocks = env_number("LIGHTFILTER_BENCH_BLOCKS", 20_000) as u32;
    let peer = start_peer().await;
    let built = Instant::now();
    let watched = build_sync_chain(&peer, blocks);
    let tip = peer.tip().0;
    println!(
        "sync: built {tip} blocks ({} paying watched scripts) in {:.1} s",
        watched.len(),
        built.elapsed().as_secs_f64()
    );
    let ratios = compare_sync_times("sync", &peer, &watched, Sampling::Regtest).await;
    push_sync_times(
        table,
        format!("chain synced ({tip} blocks, {} matching)", watched.len()),
        "sync time, ChainSource / bare bip157".into(),
        &ratios,
        Some(1.25),
    );
    peer.shutdown();
}

/// Builds a chain of `large` blocks of about `block_bytes` each; one block in a hundred pays
/// one of `watched`. Returns the number of blocks that pay watched scripts.
fn build_large_chain(
    peer: &RegtestPeer,
    large: u32,
    block_bytes: u64,
    watched: &[ScriptBuf],
) -> u32 {
    let mut blocks = LargeBlocks::new(peer, block_bytes);
    let mut paying = 0;
    for block in 0..large {
        let pays_watched = block % 100 == 50 || (large < 100 && block == large / 2);
        if pays_watched {
            blocks.mine_one(Some(&watched[paying as usize % watched.len()]));
            paying += 1;
        } else {
            blocks.mine_one(None);
        }
    }
    paying
}

async fn bandwidth(table: &mut Table) {
    let large = env_number("LIGHTFILTER_BENCH_LARGE_BLOCKS", 1_000) as u32;
    let block_bytes = env_number("LIGHTFILTER_BENCH_BLOCK_BYTES", 1_000_000);
    let peer = start_peer().await;
    let watched: Vec<ScriptBuf> = (0..10).map(watched_script).collect();
    let built = Instant::now();
    let paying = build_large_chain(&peer, large, block_bytes, &watched);
    let tip = peer.tip().0;
    let chain_bytes: u64 = (1..=tip)
        .map(|h| bitcoin::consensus::serialize(&peer.block_at(h).expect("block")).len() as u64)
        .sum();
    let large_bytes: u64 = (tip - large + 1..=tip)
        .map(|h| peer.block_at(h).expect("block").total_size() as u64)
        .sum();
    println!(
        "bandwidth: built {tip} blocks ({large} large, {:.0} bytes each on average, {paying} \
         paying watched scripts; {chain_bytes} bytes in all) in {:.1} s",
        large_bytes as f64 / large as f64,
        built.elapsed().as_secs_f64()
    );

    table.push(Row::info(
        format!(
            "chain of {tip} blocks ({large} of ~{} kB, {paying} paying watched scripts)",
            large_bytes / large as u64 / 1_000
        ),
        format!("{:.1} MB", chain_bytes as f64 / 1e6),
    ));
    let regtest = bytes_of_one_sync("regtest sampling", &peer, &watched, Sampling::Regtest).await;
    let public = bytes_of_one_sync("public sampling", &peer, &watched, Sampling::Public).await;
    for (label, sync) in [("regtest's", &regtest), ("public networks'", &public)] {
        table.push(Row::info(
            format!("  with {label} fee sampling: listeners' blocks / fee samples / rest"),
            format!(
                "{:.2}% / {:.2}% / {:.2}%",
                100.0 * sync.counts.bytes_for_listeners as f64 / chain_bytes as f64,
                100.0 * sync.counts.bytes_for_fees as f64 / chain_bytes as f64,
                100.0 * sync.filters_and_headers() as f64 / chain_bytes as f64,
            ),
        ));
    }
    // The same chain synced by a bare bip157 client: the floor set by BIP 158 filters.
    peer.reset_stats();
    let (_, fetched) = bare_sync(peer.addr(), tip, &watched).await;
    let bare_bytes = peer.stats().bytes_sent;
    println!("bandwidth: bare bip157 client: peer sent {bare_bytes} bytes ({fetched} blocks)");
    table.push(Row::info(
        "bytes sent: bare bip157 / ChainSource with regtest's / with public networks' sampling",
        format!(
            "{:.2}% / {:.2}% / {:.2}% of all blocks",
            100.0 * bare_bytes as f64 / chain_bytes as f64,
            100.0 * regtest.bytes_sent as f64 / chain_bytes as f64,
            100.0 * public.bytes_sent as f64 / chain_bytes as f64,
        ),
    ));
    table.push(Row::info(
        "  ChainSource with regtest's sampling / bare bip157",
        format!("{:.3}", regtest.bytes_sent as f64 / bare_bytes as f64),
    ));
    let ratio = public.bytes_sent as f64 / bare_bytes as f64;
    table.push(Row::goal(
        "bytes sent, ChainSource with public networks' sampling / bare bip157",
        format!("{ratio:.3}"),
        "≤ 1.05",
        ratio <= 1.05,
    ));

    // Sync time on the same mainnet-shaped chain, where downloading filters weighs more.
    let ratios = compare_sync_times("large-block sync", &peer, &watched, Sampling::Public).await;
    push_sync_times(
        table,
        format!("chain of large blocks synced ({tip} blocks, {paying} matching)"),
        "sync time on large blocks over 127.0.0.1, ChainSource / bare bip157".into(),
        &ratios,
        None,
    );

    // The same over a link of a home connection's speed, as a node syncs from a real peer.
    peer.endpoint()
        .switches
        .set_link_rate(Some(LINK_BYTES_PER_SECOND));
    let ratios =
        compare_sync_times("paced large-block sync", &peer, &watched, Sampling::Public).await;
    peer.endpoint().switches.set_link_rate(None);
    let mbits = LINK_BYTES_PER_SECOND * 8 / 1_000_000;
    push_sync_times(
        table,
        format!("the same chain over a {mbits} Mbit/s link"),
        format!("sync time on large blocks over a {mbits} Mbit/s link, ChainSource / bare bip157"),
        &ratios,
        Some(1.10),
    );
    peer.shutdown();
}

fn main() {
    let _ = env_logger::builder().try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    runtime.block_on(async {
        let mut table = Table::new("chain sync and bandwidth");
        sync_overhead(&mut table).await;
        bandwidth(&mut table).await;
        table.print();
    });
}

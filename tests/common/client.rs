//! A real `bip157` client wired to regtest endpoints, with everything it reports collected so
//! tests can wait for conditions.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bip157::chain::BlockHeaderChanges;
use bip157::{Builder, Event, Network, NodeError, Requester, TrustedPeer};
use bitcoin::bip158::BlockFilter;
use bitcoin::{BlockHash, ScriptBuf};
use tokio::task::JoinHandle;

use super::{wait_for, TIMEOUT};

/// A filter the client verified and delivered.
#[derive(Debug, Clone)]
pub struct SeenFilter {
    pub height: u32,
    pub hash: BlockHash,
    pub filter: BlockFilter,
}

impl SeenFilter {
    /// Whether the filter matches `script`.
    pub fn matches(&self, script: &ScriptBuf) -> bool {
        self.filter
            .match_any(&self.hash, std::iter::once(script.as_bytes()))
            .expect("filter decodes")
    }
}

/// Blocks as (height, hash), oldest first.
pub type Branch = Vec<(u32, BlockHash)>;

/// Everything the client reported so far.
#[derive(Debug, Clone, Default)]
pub struct ClientLog {
    /// Tips reported by `FiltersSynced`.
    pub synced: Vec<(u32, BlockHash)>,
    /// Verified filters, in delivery order.
    pub filters: Vec<SeenFilter>,
    /// Blocks connected to the header chain.
    pub connected: Vec<(u32, BlockHash)>,
    /// Reorganizations: (accepted, disconnected), each oldest first.
    pub reorgs: Vec<(Branch, Branch)>,
    /// Forks seen but not (yet) adopted.
    pub forks: Vec<(u32, BlockHash)>,
    /// Warnings, rendered.
    pub warnings: Vec<String>,
}

impl ClientLog {
    /// The last synced tip.
    pub fn synced_tip(&self) -> Option<(u32, BlockHash)> {
        self.synced.last().copied()
    }

    /// The verified filter of `hash`, if delivered.
    pub fn filter_of(&self, hash: &BlockHash) -> Option<&SeenFilter> {
        self.filters.iter().rev().find(|seen| seen.hash == *hash)
    }
}

/// A running bip157 node and its collected output.
pub struct TestClient {
    pub requester: Requester,
    log: Arc<Mutex<ClientLog>>,
    node: JoinHandle<Result<(), NodeError>>,
    pump: JoinHandle<()>,
}

impl TestClient {
    /// A client that connects only to `peers`, needs `required_peers` of them to agree on
    /// filter headers, and fetches witness blocks.
    pub fn start(peers: &[SocketAddr], required_peers: u8) -> TestClient {
        Self::start_with(peers, required_peers, |builder| builder)
    }

    /// Like [`start`](Self::start) with extra builder settings.
    pub fn start_with(
        peers: &[SocketAddr],
        required_peers: u8,
        configure: impl FnOnce(Builder) -> Builder,
    ) -> TestClient {
        let mut builder = Builder::new(Network::Regtest)
            .whitelist_only()
            .required_peers(required_peers)
            .fetch_witness_data();
        for peer in peers {
            builder = builder.add_peer(TrustedPeer::from_socket_addr(*peer));
        }
        let (node, client) = configure(builder).build();
        let node = tokio::spawn(async move { node.run().await });
        let bip157::Client {
            requester,
            mut info_rx,
            mut warn_rx,
            mut event_rx,
        } = client;
        let log = Arc::new(Mutex::new(ClientLog::default()));
        let sink = Arc::clone(&log);
        let pump = tokio::spawn(async move {
            loop {
                tokio::select! {
                    Some(_) = info_rx.recv() => {}
                    Some(warning) = warn_rx.recv() => {
                        sink.lock().unwrap().warnings.push(warning.to_string());
                    }
                    Some(event) = event_rx.recv() => record(&sink, event),
                    else => break,
                }
            }
        });
        TestClient {
            requester,
            log,
            node,
            pump,
        }
    }

    /// A snapshot of what the client reported.
    pub fn log(&self) -> ClientLog {
        self.log.lock().unwrap().clone()
    }

    /// Waits (generously) until `done` holds for the client's log; panics with the log if not.
    pub async fn wait_until(&self, what: &str, done: impl Fn(&ClientLog) -> bool) -> ClientLog {
        let log = Arc::clone(&self.log);
        let reached = wait_for(TIMEOUT, || done(&log.lock().unwrap())).await;
        let snapshot = self.log();
        assert!(
            reached,
            "timed out waiting for the bip157 client: {what}\nsynced: {:?}\nwarnings: {:?}\nreorgs: {:?}",
            snapshot.synced, snapshot.warnings, snapshot.reorgs
        );
        snapshot
    }

    /// Waits until the client reports `FiltersSynced` at `tip`.
    pub async fn wait_synced_to(&self, tip: (u32, BlockHash)) -> ClientLog {
        self.wait_until(&format!("filters synced to {tip:?}"), |log| {
            log.synced.contains(&tip)
        })
        .await
    }

    /// Waits until a warning containing `needle` is reported.
    pub async fn wait_warning(&self, needle: &str) -> ClientLog {
        self.wait_until(&format!("a warning containing {needle:?}"), |log| {
            log.warnings.iter().any(|warning| warning.contains(needle))
        })
        .await
    }

    /// Whether the node task is still running.
    pub fn is_running(&self) -> bool {
        !self.node.is_finished()
    }

    /// Stops the client.
    pub async fn stop(self) {
        let _ = self.requester.shutdown();
        let _ = tokio::time::timeout(Duration::from_secs(10), self.node).await;
        self.pump.abort();
    }
}

fn record(log: &Mutex<ClientLog>, event: Event) {
    let mut log = log.lock().unwrap();
    match event {
        Event::FiltersSynced(update) => {
            let tip = update.tip();
            log.synced.push((tip.height, tip.hash));
        }
        Event::IndexedFilter(filter) => {
            let height = filter.height();
            let hash = filter.block_hash();
            log.filters.push(SeenFilter {
                height,
                hash,
                filter: filter.block_filter(),
            });
        }
        Event::ChainUpdate(BlockHeaderChanges::Connected(header)) => {
            log.connected.push((header.height, header.block_hash()));
        }
        Event::ChainUpdate(BlockHeaderChanges::Reorganized {
            accepted,
            reorganized,
        }) => {
            let accepted = accepted
                .iter()
                .map(|h| (h.height, h.block_hash()))
                .collect();
            let reorganized = reorganized
                .iter()
                .map(|h| (h.height, h.block_hash()))
                .collect();
            log.reorgs.push((accepted, reorganized));
        }
        Event::ChainUpdate(BlockHeaderChanges::ForkAdded(header)) => {
            log.forks.push((header.height, header.block_hash()));
        }
    }
}

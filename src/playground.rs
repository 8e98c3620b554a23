//! The playground: a whole Lightning setup on one machine with nothing installed. An embedded
//! regtest peer and two nodes (alice and bob) run in this process, each node with its own data
//! directory in a temporary directory and its own control API, so the `lightfilter` CLI can
//! drive them. [`Playground::run_demo`] funds both from the faucet, opens a channel from alice
//! to bob, mines it to confirmation, and pays an invoice of bob's, reporting each step.
//!
//! Only 127.0.0.1 is used.

use std::future::Future;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::task::Poll;
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, FeeRate, Network, ScriptBuf};

use crate::config::{Config, ConfigArgs, ConfigError};
use crate::daemon::{Daemon, DaemonError, Host, Stop};
use crate::node::{Balances, Node, NodeError, PaymentDirection, PaymentStatus};
use crate::regtest::{RegtestError, RegtestPeer, TxRejected};
use crate::tasks::TaskFailure;

/// What alice is funded with from the faucet.
pub const FUNDING: Amount = Amount::from_sat(1_000_000);

/// What bob is funded with: the on-chain reserve for fee bumping that the node keeps per anchor
/// channel before it accepts one.
pub const BOB_RESERVE_FUNDING: Amount = Amount::from_sat(100_000);

/// The capacity of the channel alice opens to bob.
pub const CHANNEL_SAT: u64 = 500_000;

/// What alice pays bob.
pub const PAYMENT_MSAT: u64 = 50_000_000;

/// Confirmations mined on the funding transaction.
pub const CONFIRMATIONS: u32 = 6;

/// How long any one step may take before the playground gives up.
const STEP_TIMEOUT: Duration = Duration::from_secs(180);

/// Why the playground stopped early.
#[derive(Debug, thiserror::Error)]
pub enum PlaygroundError {
    /// The temporary directory could not be made.
    #[error("cannot create the playground directory: {0}")]
    TempDir(std::io::Error),
    /// The embedded regtest peer failed.
    #[error("the regtest peer failed: {0}")]
    Regtest(#[from] RegtestError),
    /// A node's configuration was refused.
    #[error("configuring {name}: {source}")]
    Config {
        /// The node.
        name: &'static str,
        /// Why.
        source: ConfigError,
    },
    /// A node operation failed.
    #[error("{name}: {source}")]
    Node {
        /// The node.
        name: &'static str,
        /// Why.
        source: NodeError,
    },
    /// A node's daemon (data directory, control API, start) failed.
    #[error("{name}: {source}")]
    Daemon {
        /// The node.
        name: &'static str,
        /// Why.
        source: DaemonError,
    },
    /// The faucet could not pay.
    #[error("the faucet could not fund {name}: {source}")]
    Funding {
        /// The node.
        name: &'static str,
        /// Why.
        source: TxRejected,
    },
    /// Something did not happen in time.
    #[error("gave up after {} s waiting for {what}", STEP_TIMEOUT.as_secs())]
    Timeout {
        /// What was awaited.
        what: String,
    },
    /// The payment did not succeed.
    #[error("the payment {payment_hash} ended {status}{}", failure.as_ref().map(|f| format!(": {f}")).unwrap_or_default())]
    PaymentNotSucceeded {
        /// The payment hash.
        payment_hash: String,
        /// `failed` or `pending`.
        status: &'static str,
        /// Why, if known.
        failure: Option<String>,
    },
    /// A node gave back something unexpected.
    #[error("{0}")]
    Unexpected(String),
}

/// One node of the playground.
pub struct PlaygroundNode {
    /// Its name (also its data directory's name).
    pub name: &'static str,
    /// Its data directory.
    pub data_dir: PathBuf,
    /// The node.
    pub node: Arc<Node>,
    /// Its control API's address.
    pub api_addr: SocketAddr,
    daemon: Daemon,
}

impl PlaygroundNode {
    fn fail(&self, source: NodeError) -> PlaygroundError {
        PlaygroundError::Node {
            name: self.name,
            source,
        }
    }
}

/// What the demo did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DemoOutcome {
    /// The channel alice opened to bob.
    pub channel_id: String,
    /// The payment's hash.
    pub payment_hash: String,
    /// What bob received.
    pub amount_msat: u64,
    /// Balances afterwards, by node name.
    pub balances: Vec<(&'static str, Balances)>,
}

/// A running playground: the regtest peer and the nodes.
pub struct Playground {
    dir: tempfile::TempDir,
    peer: RegtestPeer,
    nodes: Vec<PlaygroundNode>,
}

/// Polls `check` every 200 ms until it yields a value or [`STEP_TIMEOUT`] passes.
async fn wait_for<T, F, Fut>(what: &str, mut check: F) -> Result<T, PlaygroundError>
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + STEP_TIMEOUT;
    loop {
        if let Some(value) = check().await {
            return Ok(value);
        }
        if Instant::now() >= deadline {
            return Err(PlaygroundError::Timeout {
                what: what.to_string(),
            });
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn seconds(since: Instant) -> String {
    format!("{:.1} s", since.elapsed().as_secs_f64())
}

async fn start_node(
    name: &'static str,
    root: &Path,
    peer: SocketAddr,
) -> Result<PlaygroundNode, PlaygroundError> {
    // The node creates its data directory (owner-only) itself.
    let data_dir = root.join(name);
    let config = Config::load(&ConfigArgs {
        network: Some(Network::Regtest),
        data_dir: Some(data_dir.clone()),
        bitcoin_peers: vec![peer.to_string()],
        only_bitcoin_peers: Some(true),
        ln_listen: Some("127.0.0.1:0".to_string()),
        api_listen: Some("127.0.0.1:0".to_string()),
        alias: Some(name.to_string()),
        ..ConfigArgs::default()
    })
    .map_err(|source| PlaygroundError::Config { name, source })?;
    let daemon = Daemon::start(config, Host::Embedded)
        .await
        .map_err(|source| PlaygroundError::Daemon { name, source })?;
    let Some(node) = daemon.node().cloned() else {
        let _ = daemon.shutdown().await;
        return Err(PlaygroundError::Unexpected(format!(
            "{name} was asked to stop while it started"
        )));
    };
    Ok(PlaygroundNode {
        name,
        data_dir,
        api_addr: daemon.api_addr(),
        node,
        daemon,
    })
}

impl Playground {
    /// Starts the regtest peer (with 101 blocks mined to its faucet, so it has coins to give)
    /// and the nodes, reporting progress through `report`.
    pub async fn start(report: &mut dyn FnMut(&str)) -> Result<Playground, PlaygroundError> {
        let dir = tempfile::Builder::new()
            .prefix("lightfilter-playground-")
            .tempdir()
            .map_err(PlaygroundError::TempDir)?;
        let started = Instant::now();
        let peer = RegtestPeer::start(SocketAddr::from(([127, 0, 0, 1], 0))).await?;
        peer.mine(101, &peer.faucet_script());
        report(&format!(
            "regtest peer on {} with {} blocks mined to its faucet ({})",
            peer.addr(),
            peer.tip().0,
            seconds(started)
        ));
        let mut playground = Playground {
            dir,
            peer,
            nodes: Vec::new(),
        };
        for name in ["alice", "bob"] {
            let started = Instant::now();
            let node = match start_node(name, playground.dir.path(), playground.peer.addr()).await {
                Ok(node) => node,
                Err(err) => {
                    playground.shutdown().await;
                    return Err(err);
                }
            };
            report(&format!(
                "{name} started: node id {}, control API on {} ({})",
                node.node.node_id(),
                node.api_addr,
                seconds(started)
            ));
            playground.nodes.push(node);
        }
        Ok(playground)
    }

    /// The temporary directory holding the nodes' data directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// The regtest peer.
    pub fn peer(&self) -> &RegtestPeer {
        &self.peer
    }

    /// The nodes, alice first.
    pub fn nodes(&self) -> &[PlaygroundNode] {
        &self.nodes
    }

    fn node(&self, index: usize) -> Result<&PlaygroundNode, PlaygroundError> {
        self.nodes
            .get(index)
            .ok_or_else(|| PlaygroundError::Unexpected("the playground has no nodes".into()))
    }

    /// Funds alice, opens a channel from alice to bob, confirms it, and pays an invoice of
    /// bob's from alice, reporting each step through `report`. Fails unless the payment
    /// succeeds.
    pub async fn run_demo(
        &self,
        report: &mut dyn FnMut(&str),
    ) -> Result<DemoOutcome, PlaygroundError> {
        let alice = self.node(0)?;
        let bob = self.node(1)?;
        let demo_started = Instant::now();

        // 1. Fund both from the faucet and confirm it: alice for the channel, bob for the
        //    on-chain reserve an anchor channel needs to bump fees when it closes.
        let started = Instant::now();
        for (node, amount) in [(alice, FUNDING), (bob, BOB_RESERVE_FUNDING)] {
            let address = node.node.new_address().map_err(|err| node.fail(err))?;
            let script = address_script(&address)?;
            let funding = self
                .peer
                .fund(&script, amount, FeeRate::from_sat_per_vb_u32(2))
                .map_err(|source| PlaygroundError::Funding {
                    name: node.name,
                    source,
                })?;
            report(&format!(
                "the faucet paid {} sat to {}'s address {address} (transaction {})",
                amount.to_sat(),
                node.name,
                funding.compute_txid(),
            ));
        }
        self.peer.mine(1, &self.peer.faucet_script());
        for (node, amount) in [(alice, FUNDING), (bob, BOB_RESERVE_FUNDING)] {
            wait_for(
                &format!("{} to see the funds confirmed", node.name),
                || async {
                    node.node
                        .balances()
                        .is_ok_and(|b| b.onchain_confirmed_sat >= amount.to_sat())
                        .then_some(())
                },
            )
            .await?;
        }
        report(&format!(
            "mined a block: both see their funds confirmed ({})",
            seconds(started)
        ));

        // 2. Connect and open a channel.
        let started = Instant::now();
        let bob_address = bob
            .node
            .info()
            .await
            .listen_addresses
            .into_iter()
            .next()
            .ok_or_else(|| PlaygroundError::Unexpected("bob is not listening".into()))?;
        let bob_id = bob.node.node_id();
        alice
            .node
            .connect(bob_id, &bob_address)
            .await
            .map_err(|err| alice.fail(err))?;
        report(&format!("alice connected to bob at {bob_address}"));
        let opened = alice
            .node
            .open_channel(bob_id, &bob_address, CHANNEL_SAT, 0, false, false)
            .await
            .map_err(|err| alice.fail(err))?;
        report(&format!(
            "alice opened a {CHANNEL_SAT} sat channel to bob: channel id {}, funding transaction {} ({})",
            opened.channel_id,
            opened.funding_txid,
            seconds(started)
        ));

        // 3. Confirm it.
        let started = Instant::now();
        wait_for("the funding transaction to reach the mempool", || async {
            self.peer.in_mempool(&opened.funding_txid).then_some(())
        })
        .await?;
        self.peer.mine(CONFIRMATIONS, &self.peer.faucet_script());
        let channel_usable = |node: &PlaygroundNode| {
            node.node
                .channels()
                .iter()
                .any(|channel| channel.channel_id == opened.channel_id && channel.usable)
        };
        wait_for("the channel to be usable on both sides", || async {
            (channel_usable(alice) && channel_usable(bob)).then_some(())
        })
        .await?;
        report(&format!(
            "mined {CONFIRMATIONS} blocks: the channel is usable on both sides ({})",
            seconds(started)
        ));

        // 4. Bob invoices, alice pays.
        let started = Instant::now();
        let invoice = bob
            .node
            .create_invoice(Some(PAYMENT_MSAT), "playground coffee", 3600)
            .map_err(|err| bob.fail(err))?;
        report(&format!(
            "bob created an invoice for {} sat: {}",
            PAYMENT_MSAT / 1000,
            invoice.bolt11
        ));
        let payment = alice
            .node
            .pay(&invoice.bolt11, None, Duration::from_secs(60))
            .await
            .map_err(|err| alice.fail(err))?;
        if payment.status != PaymentStatus::Succeeded {
            return Err(PlaygroundError::PaymentNotSucceeded {
                payment_hash: payment.payment_hash,
                status: payment.status.as_str(),
                failure: payment.failure,
            });
        }
        wait_for("bob to record the payment as received", || async {
            bob.node
                .payments()
                .iter()
                .any(|received| {
                    received.payment_hash == invoice.payment_hash
                        && received.direction == PaymentDirection::Inbound
                        && received.status == PaymentStatus::Succeeded
                })
                .then_some(())
        })
        .await?;
        wait_for("bob's channel balance to include the payment", || async {
            bob.node
                .balances()
                .is_ok_and(|b| b.lightning_msat >= PAYMENT_MSAT)
                .then_some(())
        })
        .await?;
        report(&format!(
            "payment succeeded: alice paid bob {} sat, payment hash {}, routing fee {} msat ({})",
            PAYMENT_MSAT / 1000,
            payment.payment_hash,
            payment.fee_msat.unwrap_or(0),
            seconds(started)
        ));

        let balances = vec![
            (
                alice.name,
                alice.node.balances().map_err(|e| alice.fail(e))?,
            ),
            (bob.name, bob.node.balances().map_err(|e| bob.fail(e))?),
        ];
        for (name, balance) in &balances {
            report(&format!(
                "{name}: on-chain {} sat confirmed, {} sat pending; lightning {} sat",
                balance.onchain_confirmed_sat, balance.onchain_pending_sat, balance.lightning_sat
            ));
        }
        report(&format!(
            "done in {}: funded, opened, confirmed and paid",
            seconds(demo_started)
        ));
        Ok(DemoOutcome {
            channel_id: opened.channel_id,
            payment_hash: payment.payment_hash,
            amount_msat: PAYMENT_MSAT,
            balances,
        })
    }

    /// CLI commands that drive the nodes, with `program` as the executable.
    pub fn cli_commands(&self, program: &str) -> Vec<String> {
        let mut commands = Vec::new();
        for node in &self.nodes {
            let base = format!(
                "{program} --network regtest --datadir {}",
                node.data_dir.display()
            );
            for command in ["getinfo", "balance", "channels", "payments"] {
                commands.push(format!("{base} {command}"));
            }
        }
        if let (Some(alice), Some(bob)) = (self.nodes.first(), self.nodes.get(1)) {
            let bob_id = bob.node.node_id();
            let alice = format!(
                "{program} --network regtest --datadir {}",
                alice.data_dir.display()
            );
            let bob = format!(
                "{program} --network regtest --datadir {}",
                bob.data_dir.display()
            );
            commands.push(format!("{bob} invoice 10000000 --description \"by hand\""));
            commands.push(format!("{alice} pay <the bolt11 from the line above>"));
            commands.push(format!("{alice} keysend {bob_id} 1000000"));
            commands.push(format!("{alice} newaddress"));
        }
        commands
    }

    /// Resolves when a stop was requested for any node (e.g. `lightfilter stop` on it) or one
    /// of its tasks failed, with that node's name and the failure if it failed.
    pub async fn node_stopped(&self) -> (&'static str, Option<TaskFailure>) {
        let mut waiting: Vec<_> = self
            .nodes
            .iter()
            .map(|node| Box::pin(async move { (node.name, node.daemon.wait_for_stop().await) }))
            .collect();
        let (name, stop) = std::future::poll_fn(|cx| {
            waiting
                .iter_mut()
                .find_map(|wait| match wait.as_mut().poll(cx) {
                    Poll::Ready(stopped) => Some(Poll::Ready(stopped)),
                    Poll::Pending => None,
                })
                .unwrap_or(Poll::Pending)
        })
        .await;
        match stop {
            Stop::Failed(failure) => (name, Some(failure)),
            Stop::Signal | Stop::Requested => (name, None),
        }
    }

    /// Mines one block to the faucet (confirms what is in the mempool).
    pub fn mine_block(&self) -> u32 {
        self.peer.mine(1, &self.peer.faucet_script());
        self.peer.tip().0
    }

    /// Shuts the nodes down (each as [`Daemon::shutdown`] describes, bob first), stops the
    /// regtest peer, and removes the temporary directory.
    pub async fn shutdown(mut self) {
        for node in self.nodes.drain(..).rev() {
            if let Err(err) = node.daemon.shutdown().await {
                log::warn!("{}: {err}", node.name);
            }
        }
        self.peer.shutdown();
    }
}

fn address_script(address: &str) -> Result<ScriptBuf, PlaygroundError> {
    Address::from_str(address)
        .and_then(|address| address.require_network(Network::Regtest))
        .map(|address| address.script_pubkey())
        .map_err(|err| {
            PlaygroundError::Unexpected(format!(
                "the node gave an unusable address {address}: {err}"
            ))
        })
}

//! The setup of the tests against Core Lightning: the embedded regtest peer mines the chain,
//! a Bitcoin Core takes it from there, and both the node under test (a `lightfilter` daemon
//! whose only Bitcoin peer is that Core) and a Core Lightning (driving the same Core over RPC)
//! follow it. Transactions either Lightning node broadcasts reach the regtest peer's mempool
//! through Core, and are mined from there.

use std::time::Duration;

use bitcoin::Amount;

use super::bitcoind::{bitcoind_exe_or_skip, Bitcoind};
use super::cli::{wait_for_value, wait_until, Chain, Daemon};
use super::cln::{lightningd_exe_or_skip, Lightningd};

/// How long Core may take to start and follow the regtest peer.
const CORE_TIMEOUT: Duration = Duration::from_secs(180);

/// Blocks mined at once before waiting for everyone to follow: a few, as a miner would.
const MINING_STEP: u32 = 3;

/// A chain, a Bitcoin Core on it, a Core Lightning and the node under test.
pub struct Interop {
    pub chain: Chain,
    pub core: Bitcoind,
    pub cln: Lightningd,
    pub node: Daemon,
}

impl Interop {
    /// Starts everything, or says the test is skipped (returning `None`) when
    /// `LIGHTNINGD_EXE` or `BITCOIND_EXE` is not set.
    pub fn start(name: &'static str) -> Option<Interop> {
        let lightningd = lightningd_exe_or_skip()?;
        let bitcoind = bitcoind_exe_or_skip()?;
        let chain = Chain::start();
        let core = Bitcoind::start_listening(&bitcoind, chain.addr());
        core.wait_height(chain.height(), CORE_TIMEOUT);
        let cln = Lightningd::start(name, &lightningd, &core);
        let node = Daemon::start_on(name, core.p2p_addr(), &[]);
        node.wait_synced_to(chain.height());
        Some(Interop {
            chain,
            core,
            cln,
            node,
        })
    }

    /// Waits until Core, Core Lightning and the node all have the regtest peer's tip.
    pub fn wait_synced(&self) {
        let height = self.chain.height();
        self.core.wait_height(height, CORE_TIMEOUT);
        self.cln.wait_synced_to(height);
        self.node.wait_synced_to(height);
    }

    /// Mines `n` blocks, a few at a time, each time waiting until everyone has them.
    pub fn mine(&self, n: u32) {
        let mut left = n;
        while left > 0 {
            let step = left.min(MINING_STEP);
            self.chain.mine(step);
            self.wait_synced();
            left -= step;
        }
    }

    /// Mines a few blocks at a time (everyone following) until `probe` gives a value, at
    /// most `max_blocks`; returns that value.
    pub fn mine_until<T>(
        &self,
        what: &str,
        max_blocks: u32,
        mut probe: impl FnMut() -> Option<T>,
    ) -> T {
        let start = self.chain.height();
        loop {
            if let Some(value) = probe() {
                return value;
            }
            assert!(
                self.chain.height() - start < max_blocks,
                "{max_blocks} blocks mined and still waiting for {what}"
            );
            self.mine(MINING_STEP);
        }
    }

    /// Pays `node_sat` to the node and `cln_sat` to Core Lightning from the faucet, mines
    /// them, and waits until both wallets have them confirmed.
    pub fn fund(&self, node_sat: u64, cln_sat: u64) {
        let node_before = self.node.confirmed_sat();
        let (cln_before, _) = self.cln.wallet_sat();
        for (address, sat) in [
            (self.node.new_address(), node_sat),
            (self.cln.new_address(), cln_sat),
        ] {
            let txid = self.chain.fund(&address, Amount::from_sat(sat));
            self.chain.wait_in_mempool(&txid.to_string());
        }
        self.mine(1);
        wait_until("the node's funds confirmed", || {
            self.node.confirmed_sat() == node_before + node_sat
        });
        wait_until("Core Lightning's funds confirmed", || {
            self.cln.wallet_sat().0 == cln_before + cln_sat
        });
    }

    /// Connects the node to Core Lightning (so the node knows its address and reconnects to
    /// it after either restarts).
    pub fn connect(&self) {
        let uri = self.cln.uri();
        self.node.json(&["connect", &uri]);
        let cln_id = self.cln.node_id();
        wait_until("Core Lightning to see the node connected", || {
            self.cln
                .call("listpeers", &[&format!("id={}", self.node.node_id())])["peers"]
                .as_array()
                .is_some_and(|peers| peers.iter().any(|peer| peer["connected"] == true))
        });
        wait_until("the node to see Core Lightning connected", || {
            self.node
                .json(&["peers"])
                .as_array()
                .unwrap()
                .iter()
                .any(|peer| peer["node_id"] == cln_id.as_str() && peer["connected"] == true)
        });
    }

    /// Opens a channel of `sat` from the node to Core Lightning, giving it `push_sat` of it,
    /// mines it, and waits until both can use it; returns its channel id.
    pub fn open_from_node(&self, sat: u64, push_sat: u64) -> String {
        let opened = self.node.json(&[
            "openchannel",
            &self.cln.uri(),
            &sat.to_string(),
            "--push-msat",
            &format!("{push_sat}sat"),
        ]);
        let channel_id = opened["channel_id"].as_str().unwrap().to_string();
        self.chain
            .wait_in_mempool(opened["funding_txid"].as_str().unwrap());
        self.mine(6);
        self.wait_usable(&channel_id);
        channel_id
    }

    /// Opens a channel of `sat` from Core Lightning to the node, giving it `push_sat` of it,
    /// mines it, and waits until both can use it; returns its channel id.
    pub fn open_from_cln(&self, sat: u64, push_sat: u64) -> String {
        let opened = self.cln.call(
            "fundchannel",
            &[
                &format!("id={}", self.node.node_id()),
                &format!("amount={sat}"),
                &format!("push_msat={}", push_sat * 1000),
            ],
        );
        let channel_id = opened["channel_id"].as_str().unwrap().to_string();
        self.chain.wait_in_mempool(opened["txid"].as_str().unwrap());
        self.mine(6);
        self.wait_usable(&channel_id);
        channel_id
    }

    /// Waits until the channel is usable on the node and in `CHANNELD_NORMAL` with its peer
    /// connected on Core Lightning.
    pub fn wait_usable(&self, channel_id: &str) {
        wait_until(&format!("channel {channel_id} usable on the node"), || {
            self.node
                .channel(channel_id)
                .is_some_and(|channel| channel["usable"] == true)
        });
        wait_until(
            &format!("channel {channel_id} normal on Core Lightning"),
            || {
                self.cln.channel(channel_id).is_some_and(|channel| {
                    channel["state"] == "CHANNELD_NORMAL" && channel["peer_connected"] == true
                })
            },
        );
    }

    /// The node's balance in the channel and Core Lightning's (`to_us_msat`), in sat: what
    /// each owns before the commitment's fee, which the opener pays on a unilateral close.
    pub fn channel_balances_sat(&self, channel_id: &str) -> (u64, u64) {
        let ours = self.node.channel(channel_id).expect("the node's channel")["local_balance_msat"]
            .as_u64()
            .unwrap()
            / 1000;
        let theirs = self
            .cln
            .channel(channel_id)
            .expect("Core Lightning's channel")["to_us_msat"]
            .as_u64()
            .unwrap()
            / 1000;
        (ours, theirs)
    }

    /// Mines until every channel output has come home: the node claims nothing more on chain,
    /// sweeps nothing, waits for nothing to confirm, and Core Lightning's channels are all
    /// closed with nothing of its wallet unconfirmed; returns both confirmed wallets
    /// `(node, Core Lightning)` as they were then.
    pub fn mine_until_settled(&self, max_blocks: u32) -> (u64, u64) {
        self.mine_until("every output back in a wallet", max_blocks, || {
            let balance = self.node.json(&["balance"]);
            let node_settled = balance["claimable_onchain_sat"] == 0
                && balance["sweeping_sat"] == 0
                && balance["onchain_pending_sat"] == 0
                && balance["lightning_sat"] == 0;
            let cln_settled = self.cln.channels().iter().all(|channel| {
                matches!(channel["state"].as_str(), Some("ONCHAIN") | Some("CLOSED"))
                    && cln_onchain_resolved(channel)
            });
            let (cln_confirmed, cln_unconfirmed) = self.cln.wallet_sat();
            (node_settled && cln_settled && cln_unconfirmed == 0).then(|| {
                (
                    balance["onchain_confirmed_sat"].as_u64().unwrap(),
                    cln_confirmed,
                )
            })
        })
    }

    /// Waits until Core Lightning's payment of `payment_hash` has ended, with `status`
    /// (`complete` or `failed`); returns it.
    pub fn wait_cln_payment(&self, payment_hash: &str, status: &str) -> serde_json::Value {
        wait_for_value(
            &format!("Core Lightning's payment {payment_hash} {status}"),
            || {
                self.cln
                    .call("listsendpays", &[&format!("payment_hash={payment_hash}")])["payments"]
                    .as_array()
                    .and_then(|payments| {
                        payments
                            .iter()
                            .find(|payment| payment["status"] == status)
                            .cloned()
                    })
            },
        )
    }
}

/// Whether Core Lightning says it has nothing left to do on chain for `channel` (its
/// `status` lines say so once every output is resolved and deep enough).
fn cln_onchain_resolved(channel: &serde_json::Value) -> bool {
    channel["status"].as_array().is_some_and(|lines| {
        lines.iter().any(|line| {
            line.as_str()
                .is_some_and(|line| line.contains("All outputs resolved"))
        })
    })
}

//! Ten usable channels for a `lightfilter daemon`, each to a counterparty daemon of its own, on
//! the embedded regtest peer: the node the memory and start-up benchmarks measure. The bench
//! including this module must also include the CLI test support as `mod cli`.

#![allow(dead_code)]

use bitcoin::Amount;

use crate::cli::{wait_until, Chain, Daemon};

/// Channels the measured node holds.
pub const CHANNELS: usize = 10;

/// Capacity of each channel, in sat.
const CHANNEL_SATS: u64 = 100_000;

/// Names of the counterparties, one per channel.
const COUNTERPARTIES: [&str; CHANNELS] = [
    "counterparty-1",
    "counterparty-2",
    "counterparty-3",
    "counterparty-4",
    "counterparty-5",
    "counterparty-6",
    "counterparty-7",
    "counterparty-8",
    "counterparty-9",
    "counterparty-10",
];

/// Starts [`CHANNELS`] counterparty daemons, gives `node` one coin per channel, opens a channel
/// from `node` to each counterparty, mines the funding transactions six deep and waits until
/// every channel is usable on both sides and `node` is synced to the tip. Returns the
/// counterparties, which must stay running for the channels to stay usable.
pub fn open_channels(chain: &Chain, node: &Daemon) -> Vec<Daemon> {
    let counterparties: Vec<Daemon> = COUNTERPARTIES
        .iter()
        .map(|name| Daemon::start(name, chain))
        .collect();

    // One confirmed coin per channel, so no funding transaction waits for another's change.
    node.wait_synced_to(chain.height());
    let coin = Amount::from_sat(CHANNEL_SATS * 3 / 2);
    let before = node.confirmed_sat();
    for _ in 0..CHANNELS {
        let txid = chain.fund(&node.new_address(), coin);
        chain.wait_in_mempool(&txid.to_string());
    }
    chain.mine(1);
    let funded = before + coin.to_sat() * CHANNELS as u64;
    wait_until(&format!("{} funded with {funded} sat", node.name), || {
        node.confirmed_sat() >= funded
    });

    let height = chain.height();
    for counterparty in &counterparties {
        counterparty.wait_synced_to(height);
    }
    node.wait_synced_to(height);
    for counterparty in &counterparties {
        let opened = node.json(&[
            "openchannel",
            &counterparty.uri(),
            &CHANNEL_SATS.to_string(),
        ]);
        chain.wait_in_mempool(opened["funding_txid"].as_str().expect("a funding txid"));
    }
    chain.mine(6);
    wait_until(
        &format!("{CHANNELS} channels usable on {}", node.name),
        || usable_channels(node) == CHANNELS,
    );
    for counterparty in &counterparties {
        wait_until(
            &format!("the channel usable on {}", counterparty.name),
            || usable_channels(counterparty) == 1,
        );
    }
    node.wait_synced_to(chain.height());
    counterparties
}

/// Channels `daemon` reports usable.
pub fn usable_channels(daemon: &Daemon) -> usize {
    daemon.json(&["getinfo"])["num_usable_channels"]
        .as_u64()
        .expect("a channel count") as usize
}

//! The `lightfilter` command line: daemon, client commands, regtest peer and playground.

use std::net::SocketAddr;

use anyhow::Context;
use clap::{Args, Parser, Subcommand};
use lightfilter::regtest::RegtestPeer;

/// A Lightning node whose only chain backend is an embedded BIP 157/158 compact-filter client.
#[derive(Debug, Parser)]
#[command(name = "lightfilter", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run an embedded regtest peer (miner, mempool, BIP 157 filters) until Ctrl-C.
    RegtestPeer(RegtestPeerArgs),
}

#[derive(Debug, Args)]
struct RegtestPeerArgs {
    /// Address to accept P2P connections on, as IP:PORT (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// Blocks to mine to the built-in faucet at start-up.
    #[arg(long, value_name = "N", default_value_t = 0)]
    blocks: u32,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("info")).init();
    let cli = Cli::parse();
    match cli.command {
        Command::RegtestPeer(args) => run_regtest_peer(args).await,
    }
}

async fn run_regtest_peer(args: RegtestPeerArgs) -> anyhow::Result<()> {
    let peer = RegtestPeer::start(args.listen)
        .await
        .with_context(|| format!("starting the regtest peer on {}", args.listen))?;
    if args.blocks > 0 {
        peer.mine(args.blocks, &peer.faucet_script());
    }
    let (height, hash) = peer.tip();
    // Scripts read this line to learn the port when 0 was asked for.
    println!(
        "regtest peer listening on {} at height {height} ({hash})",
        peer.addr()
    );
    tokio::signal::ctrl_c()
        .await
        .context("waiting for Ctrl-C")?;
    peer.shutdown();
    Ok(())
}

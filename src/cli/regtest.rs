//! The commands that run the embedded regtest peer: `regtest-peer` (a peer for scripts and
//! tests) and `playground` (a peer and two nodes, funded, opening a channel and paying).

use std::io::Write;
use std::time::{Duration, Instant};

use anyhow::Context;
use lightfilter::playground::Playground;
use lightfilter::regtest::{PeerLimits, RegtestPeer};
use log::info;

use super::args::RegtestPeerArgs;

/// `regtest-peer`: runs the peer until Ctrl-C, printing its address and tip.
pub async fn run_regtest_peer(args: RegtestPeerArgs) -> anyhow::Result<()> {
    let limits = PeerLimits {
        max_connections: usize::try_from(args.max_connections).unwrap_or(usize::MAX),
        handshake_timeout: Duration::from_secs(args.handshake_timeout),
        idle_timeout: Duration::from_secs(args.idle_timeout),
    };
    let peer = RegtestPeer::start_with_limits(args.listen, limits)
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

/// `playground`: starts the playground and runs its demo, then (with `keep_running`) keeps
/// it up, mining a block every 10 s, until Ctrl-C or a node stops.
pub async fn run_playground(keep_running: bool) -> anyhow::Result<()> {
    let started = Instant::now();
    let mut say = |line: &str| {
        println!("{line}");
        let _ = std::io::stdout().flush();
    };
    say("lightfilter playground: a regtest peer and two nodes (alice, bob) on 127.0.0.1");
    let playground = Playground::start(&mut say)
        .await
        .context("the playground could not start")?;
    let outcome = playground.run_demo(&mut say).await;
    let outcome = match outcome {
        Ok(outcome) => outcome,
        Err(err) => {
            playground.shutdown().await;
            return Err(err).context("the playground failed");
        }
    };
    say(&format!(
        "channel {} carried payment {}; total {:.1} s",
        outcome.channel_id,
        outcome.payment_hash,
        started.elapsed().as_secs_f64()
    ));
    let mut failure = None;
    if keep_running {
        let program = std::env::current_exe()
            .map(|path| path.display().to_string())
            .unwrap_or_else(|_| "lightfilter".to_string());
        say("");
        say(&format!(
            "The nodes keep running in {}; a block is mined every 10 s. Try:",
            playground.dir().display()
        ));
        for command in playground.cli_commands(&program) {
            say(&format!("  {command}"));
        }
        say("Press Ctrl-C to stop everything and remove the directory.");
        let mut ticker = tokio::time::interval(Duration::from_secs(10));
        ticker.tick().await;
        let node_stopped = playground.node_stopped();
        tokio::pin!(node_stopped);
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => break,
                (name, failed) = &mut node_stopped => {
                    match failed {
                        Some(failed) => {
                            say(&format!("{name} failed: {failed}"));
                            failure = Some(failed);
                        }
                        None => say(&format!("{name} was asked to stop")),
                    }
                    break;
                }
                _ = ticker.tick() => {
                    let height = playground.mine_block();
                    info!("mined block {height}");
                }
            }
        }
        say("stopping the playground");
    }
    playground.shutdown().await;
    match failure {
        Some(failure) => Err(failure).context("a playground node failed"),
        None => Ok(()),
    }
}

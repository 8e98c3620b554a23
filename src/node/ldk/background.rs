//! Background work: LDK's background processor (event handling, timers, persistence of the
//! channel manager, network graph, scorer and sweeper) and the hourly node announcement.

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use lightning::ln::msgs::SocketAddress;
use lightning_background_processor::{
    process_events_async_with_kv_store_sync, GossipSync as BackgroundGossipSync,
    NO_LIQUIDITY_MANAGER,
};
use log::info;
use tokio::sync::watch;

use crate::node::Node;
use crate::tasks::TaskFailure;

/// How often the node announcement is re-broadcast while the node has public channels.
const ANNOUNCE_INTERVAL: Duration = Duration::from_secs(3_600);
/// The name of the task running the background processor.
const BACKGROUND_PROCESSOR: &str = "background processor";
/// The colour announced with the node.
const NODE_COLOUR: [u8; 3] = [0x2b, 0x8a, 0x3e];

impl Node {
    /// Runs LDK's background processor until `stop` turns true; it persists everything once
    /// more before returning. If it stops on an error (it could not persist), the node
    /// fails.
    pub(in crate::node) fn spawn_background_processor(
        self: &Arc<Self>,
        stop: watch::Receiver<bool>,
    ) {
        let node = self.clone();
        let handler_node = self.clone();
        let event_handler = move |event| {
            let node = handler_node.clone();
            async move { node.handle_event(event) }
        };
        let sleeper = move |duration: Duration| {
            let mut stop = stop.clone();
            Box::pin(async move {
                tokio::select! {
                    _ = tokio::time::sleep(duration) => false,
                    _ = stop.wait_for(|s| *s) => true,
                }
            })
        };
        let supervisor = self.supervisor.clone();
        let task = self.supervisor.spawn(BACKGROUND_PROCESSOR, async move {
            let result = process_events_async_with_kv_store_sync(
                node.store.clone(),
                event_handler,
                node.chain_monitor.clone(),
                node.channel_manager.clone(),
                Some(node.onion_messenger.clone()),
                BackgroundGossipSync::p2p(node.gossip_sync.clone()),
                node.peer_manager.clone(),
                NO_LIQUIDITY_MANAGER,
                Some(node.sweeper.clone()),
                Arc::new(super::logger::LdkLogger::default()),
                Some(node.scorer.clone()),
                sleeper,
                false,
                || SystemTime::now().duration_since(UNIX_EPOCH).ok(),
            )
            .await;
            // It returns an error when it cannot persist: nothing would be saved from now on.
            if let Err(err) = result {
                supervisor.report(TaskFailure::Failed {
                    task: BACKGROUND_PROCESSOR,
                    reason: err.to_string(),
                });
            }
        });
        *self.background.lock().unwrap_or_else(|p| p.into_inner()) = Some(task);
    }
}

/// Broadcasts the node announcement now and then every hour while the node has public
/// channels, until `stop` turns true.
pub(in crate::node) async fn announce_regularly(node: Arc<Node>, mut stop: watch::Receiver<bool>) {
    let mut first = true;
    loop {
        let delay = if first {
            Duration::from_secs(60)
        } else {
            ANNOUNCE_INTERVAL
        };
        first = false;
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.changed() => {}
        }
        if *stop.borrow() {
            break;
        }
        let public = node
            .channel_manager
            .list_channels()
            .iter()
            .any(|c| c.is_announced && c.is_channel_ready);
        if !public {
            continue;
        }
        let mut alias = [0u8; 32];
        let bytes = node.config.alias.as_bytes();
        alias[..bytes.len().min(32)].copy_from_slice(&bytes[..bytes.len().min(32)]);
        let addresses = announced_addresses(node.ln_listen_addr, node.onion_address.as_deref());
        node.peer_manager
            .broadcast_node_announcement(NODE_COLOUR, alias, addresses);
        info!("broadcast the node announcement");
    }
}

/// The addresses the node announcement gives: the Lightning listener unless it listens on
/// every interface (no address to tell), and the onion service when there is one.
fn announced_addresses(
    listen: Option<std::net::SocketAddr>,
    onion: Option<&str>,
) -> Vec<SocketAddress> {
    listen
        .filter(|a| !a.ip().is_unspecified())
        .map(SocketAddress::from)
        .into_iter()
        .chain(onion.and_then(|onion| onion.parse::<SocketAddress>().ok()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_announcement_carries_the_listener_and_the_onion_service() {
        let onion = format!("{}.onion:9735", "a".repeat(56));
        let listen = "192.0.2.1:9735".parse().ok();
        let addresses = announced_addresses(listen, Some(&onion));
        assert_eq!(addresses.len(), 2, "{addresses:?}");
        assert_eq!(addresses[0].to_string(), "192.0.2.1:9735");
        assert!(
            matches!(addresses[1], SocketAddress::OnionV3 { port: 9735, .. }),
            "{addresses:?}"
        );
        // Listening on every interface gives nothing to announce but the onion service.
        let anywhere = "0.0.0.0:9735".parse().ok();
        let addresses = announced_addresses(anywhere, Some(&onion));
        assert_eq!(addresses.len(), 1, "{addresses:?}");
        assert!(announced_addresses(anywhere, None).is_empty());
    }
}

//! Waits the CLI shows while they last: the sync (`getinfo --wait-synced`), as a progress bar
//! with the time left on a terminal or a line per change otherwise, and a channel becoming
//! ready (`openchannel --wait-ready`), a line per change. Nothing is shown with `--json`.

use std::io::IsTerminal;
use std::time::Duration;

use lightfilter::api::render;
use lightfilter::api::types::{ChannelEntry, InfoResponse};
use lightfilter::api::Client;

use super::output::{progress, Failure};

/// Waits until the node is synced (giving up after `timeout`, if one is given), showing the
/// progress on standard error.
pub async fn wait_synced(
    client: &Client,
    json: bool,
    timeout: Option<Duration>,
) -> Result<InfoResponse, Failure> {
    let bar = (!json && std::io::stderr().is_terminal()).then(|| {
        let bar = indicatif::ProgressBar::new(1_000);
        bar.set_style(
            indicatif::ProgressStyle::with_template(
                "{spinner} [{bar:30}] {percent:>3}% {msg} (about {eta} left)",
            )
            .expect("a valid template")
            .progress_chars("=> "),
        );
        bar
    });
    let mut last = String::new();
    let mut phase = String::new();
    let synced = client
        .wait_synced(timeout, |info| {
            let status = render::sync_status(info);
            match &bar {
                Some(bar) => {
                    // Each phase has a progress of its own: the time left starts over.
                    if info.sync.phase != phase {
                        phase = info.sync.phase.clone();
                        bar.reset_eta();
                    }
                    bar.set_position((info.sync.progress * 1_000.0) as u64);
                    bar.set_message(status.clone());
                }
                None if status != last => progress(json, &status),
                None => {}
            }
            last = status;
        })
        .await;
    if let Some(bar) = &bar {
        match synced {
            Ok(_) => bar.finish_and_clear(),
            Err(_) => bar.abandon(),
        }
    }
    Ok(synced?)
}

/// Waits until the channel `channel_id` is ready (giving up after `timeout`), showing what it
/// waits for on standard error.
pub async fn wait_channel_ready(
    client: &Client,
    channel_id: &str,
    json: bool,
    timeout: Duration,
) -> Result<ChannelEntry, Failure> {
    let mut last = String::new();
    let channel = client
        .wait_channel_ready(channel_id, timeout, |channel| {
            let status = render::channel_waiting(channel.confirmations);
            if status != last {
                progress(json, &status);
                last = status;
            }
        })
        .await?;
    progress(json, render::CHANNEL_READY);
    Ok(channel)
}

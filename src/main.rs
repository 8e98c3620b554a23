//! The `lightfilter` command line: daemon, client commands, regtest peer and playground.

use std::io::{IsTerminal, Write};
#[cfg(feature = "regtest")]
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use bitcoin::Network;
use clap::{Args, CommandFactory, Parser, Subcommand};
use flexi_logger::{
    Cleanup, Criterion, DeferredNow, Duplicate, FileSpec, LogSpecification, Logger, LoggerHandle,
    Naming,
};
use lightfilter::api::types::{
    Balance, BumpFee, BumpFeeRequest, CancelInvoice, CancelInvoiceRequest, ChannelEntry, Channels,
    CloseChannel, CloseChannelRequest, Connect, ConnectRequest, CreateInvoice, CreateOffer,
    Disconnect, DisconnectRequest, Empty, ErrorBody, ErrorDetail, FeeRates, Forwards, GetInfo,
    HoldInvoice, HoldInvoiceRequest, InfoResponse, InvoiceRequest, Keysend, KeysendRequest,
    NewAddress, OfferRequest, OpenChannel, OpenChannelRequest, Pay, PayRequest, PaymentEntry,
    Payments, PaymentsRequest, Peers, SendAmountSpec, SendOnchain, SendRequest, SetChannelFee,
    SetChannelFeeRequest, SettleInvoice, SettleInvoiceRequest, SignMessage, SignMessageRequest,
    Stop, Transactions, Utxos, VerifyMessage, VerifyMessageRequest,
};
use lightfilter::api::{self, parse, render, Client, ClientError, Method};
use lightfilter::config::{
    default_data_dir, network_name, parse_network, resolve_network, Config, ConfigArgs,
};
use lightfilter::node::{Node, NodeHandle};
#[cfg(feature = "regtest")]
use lightfilter::playground::Playground;
#[cfg(feature = "regtest")]
use lightfilter::regtest::{PeerLimits, RegtestPeer};
use lightfilter::tasks;
use log::{info, warn};
use serde::Serialize;

/// A Lightning node whose only chain backend is an embedded BIP 157/158 compact-filter client.
#[derive(Debug, Parser)]
#[command(name = "lightfilter", version, about)]
struct Cli {
    /// Bitcoin network: regtest, signet, testnet, testnet4 or bitcoin [default: `network` in
    /// ~/.lightfilter/lightfilter.toml, else regtest].
    #[arg(long, global = true, env = "LIGHTFILTER_NETWORK", value_name = "NETWORK", value_parser = network_arg)]
    network: Option<Network>,
    /// Data directory [default: ~/.lightfilter/<network>].
    #[arg(long, global = true, env = "LIGHTFILTER_DATADIR", value_name = "DIR")]
    datadir: Option<PathBuf>,
    /// Print results (and errors) as JSON on standard output.
    #[arg(long, global = true)]
    json: bool,
    #[command(subcommand)]
    command: Command,
}

fn network_arg(text: &str) -> Result<Network, String> {
    parse_network(text).map_err(|err| err.to_string())
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the node until Ctrl-C, SIGTERM or `lightfilter stop`.
    #[command(name = "daemon")]
    Daemon(DaemonArgs),
    /// Node id, network, chain height, sync status, peers and channels.
    #[command(name = "getinfo")]
    GetInfo {
        /// Wait until headers, filters, wallet and channels are at the chain tip.
        #[arg(long)]
        wait_synced: bool,
        /// Seconds to wait with --wait-synced [default: as long as the sync takes].
        #[arg(long, value_name = "SECS")]
        timeout: Option<u64>,
    },
    /// A new on-chain receive address.
    #[command(name = "newaddress")]
    NewAddress,
    /// On-chain and Lightning balances.
    #[command(name = "balance")]
    Balance,
    /// Send on-chain: an amount in sat, or `all` of the confirmed balance (minus the fee).
    #[command(name = "send")]
    Send {
        /// Destination address.
        address: String,
        /// Amount in sat or with its unit (50000sat, 0.0005btc), or `all`.
        #[arg(value_name = "AMOUNT|all")]
        amount: String,
        /// Fee rate: 5sat/vb, 1250sat/kw, or a number of sat/vB [default: the node's estimate].
        #[arg(long, value_name = "RATE")]
        feerate: Option<String>,
        /// Send even if the fee rate is below what the Bitcoin peers accept.
        #[arg(long)]
        force: bool,
    },
    /// Unspent on-chain outputs of the wallet.
    #[command(name = "utxos")]
    Utxos,
    /// Connect to a Lightning peer (remembered and reconnected).
    #[command(name = "connect")]
    Connect {
        /// The peer as <pubkey>@<host>:<port>.
        #[arg(value_name = "PUBKEY@HOST:PORT")]
        peer: String,
    },
    /// Disconnect a Lightning peer.
    #[command(name = "disconnect")]
    Disconnect {
        /// The peer's public key.
        pubkey: String,
    },
    /// Lightning peers.
    #[command(name = "peers")]
    Peers,
    /// Open a channel: connects, negotiates and broadcasts the funding transaction.
    #[command(name = "openchannel")]
    OpenChannel {
        /// The peer as <pubkey>@<host>:<port>.
        #[arg(value_name = "PUBKEY@HOST:PORT")]
        peer: String,
        /// Channel capacity in sat, or with its unit (0.004btc).
        #[arg(value_name = "AMOUNT")]
        sats: String,
        /// Amount given to the peer at opening, in msat or with its unit (1000sat).
        #[arg(long, value_name = "AMOUNT")]
        push_msat: Option<String>,
        /// Announce the channel to the network.
        #[arg(long)]
        public: bool,
        /// Wait (showing confirmations) until the channel is ready.
        #[arg(long)]
        wait_ready: bool,
        /// Seconds to wait with --wait-ready.
        #[arg(long, value_name = "SECS", default_value_t = 7200)]
        timeout: u64,
        /// Open even if the funding's fee rate is below what the Bitcoin peers accept.
        #[arg(long)]
        force: bool,
    },
    /// Close a channel cooperatively, or unilaterally with --force.
    #[command(name = "closechannel")]
    CloseChannel {
        /// The channel id or short channel id (e.g. 103x1x0), as `channels` shows them.
        #[arg(value_name = "CHANNEL")]
        channel_id: String,
        /// Broadcast our latest commitment transaction without the peer.
        #[arg(long)]
        force: bool,
    },
    /// Channels and their balances.
    #[command(name = "channels")]
    Channels,
    /// Create a BOLT11 invoice for an amount in msat, or `any` amount.
    #[command(name = "invoice")]
    Invoice(InvoiceArgs),
    /// Pay a BOLT11 invoice or a BOLT12 offer.
    #[command(name = "pay")]
    Pay {
        /// The invoice or offer.
        #[arg(value_name = "BOLT11|OFFER")]
        destination: String,
        /// Amount in msat or with its unit, for invoices and offers without one.
        #[arg(long, value_name = "AMOUNT")]
        amount_msat: Option<String>,
        /// Seconds to wait for the outcome before reporting it pending.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
    /// Send a spontaneous payment to a node.
    #[command(name = "keysend")]
    Keysend {
        /// The recipient's public key.
        pubkey: String,
        /// Amount in msat or with its unit (50sat).
        #[arg(value_name = "AMOUNT")]
        msat: String,
        /// Seconds to wait for the outcome before reporting it pending.
        #[arg(long, value_name = "SECS", default_value_t = 60)]
        timeout: u64,
    },
    /// Payments sent and received, oldest first.
    #[command(name = "payments")]
    Payments {
        /// Skip this many of the oldest payments.
        #[arg(long, value_name = "N", default_value_t = 0)]
        offset: u64,
        /// Show at most this many payments (at least 1).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
        limit: Option<u64>,
    },
    /// Create a BOLT12 offer, for an amount in msat or any amount.
    #[command(name = "offer")]
    Offer {
        /// Amount in msat or with its unit [default: any amount].
        #[arg(value_name = "AMOUNT")]
        msat: Option<String>,
        /// Description shown to the payer.
        #[arg(long, default_value = "")]
        description: String,
    },
    /// Sign a message with the node key.
    #[command(name = "signmessage")]
    SignMessage {
        /// The message.
        message: String,
    },
    /// Check a message's signature against a node's public key.
    #[command(name = "verifymessage")]
    VerifyMessage {
        /// The message.
        message: String,
        /// The signature, as `signmessage` gives it.
        signature: String,
        /// The signer's public key.
        pubkey: String,
    },
    /// The node's fee estimates per target, where each comes from, and the peers' minimum.
    #[command(name = "feerates")]
    FeeRates,
    /// On-chain wallet history: amounts, fees and confirmations.
    #[command(name = "transactions")]
    Transactions,
    /// Replace one of the wallet's unconfirmed sends by one paying a higher fee rate (RBF).
    #[command(name = "bumpfee")]
    BumpFee {
        /// The unconfirmed transaction.
        txid: String,
        /// The new fee rate: 5sat/vb, 1250sat/kw, or a number of sat/vB.
        #[arg(long, value_name = "RATE")]
        feerate: String,
        /// Replace even if the new fee rate is below what the Bitcoin peers accept.
        #[arg(long)]
        force: bool,
    },
    /// Payments forwarded through the node, with the fees earned.
    #[command(name = "forwards")]
    Forwards,
    /// Set a channel's forwarding fees and CLTV delta (what is not given stays).
    #[command(name = "setchannelfee")]
    SetChannelFee {
        /// The channel id or short channel id.
        #[arg(value_name = "CHANNEL")]
        channel: String,
        /// Base fee per forwarded payment, in msat or with its unit (1sat).
        #[arg(long, value_name = "AMOUNT")]
        base_fee: Option<String>,
        /// Proportional fee, in millionths of the amount forwarded.
        #[arg(long, value_name = "PPM")]
        fee_ppm: Option<u32>,
        /// CLTV expiry delta, in blocks.
        #[arg(long, value_name = "BLOCKS")]
        cltv_delta: Option<u16>,
    },
    /// Create a hold invoice: a payment to it is held until `settleinvoice` or `cancelinvoice`.
    #[command(name = "holdinvoice")]
    HoldInvoice {
        /// The payment hash (64 hex digits) of a preimage only you know.
        payment_hash: String,
        #[command(flatten)]
        invoice: InvoiceArgs,
    },
    /// Claim a held payment with its preimage.
    #[command(name = "settleinvoice")]
    SettleInvoice {
        /// The preimage (64 hex digits).
        preimage: String,
    },
    /// Fail a held payment back to its sender.
    #[command(name = "cancelinvoice")]
    CancelInvoice {
        /// The payment hash (64 hex digits).
        payment_hash: String,
    },
    /// Print a shell completion script (e.g. `lightfilter completions bash > …`).
    #[command(name = "completions")]
    Completions {
        /// The shell.
        shell: clap_complete::Shell,
    },
    /// Stop the daemon.
    #[command(name = "stop")]
    Stop,
    /// Print the node's seed as 24 words (the daemon may be running or not).
    #[command(name = "seed")]
    Seed {
        /// As 24 BIP 39 words (the only form offered).
        #[arg(long, required = true)]
        words: bool,
    },
    /// Create a new data directory whose seed is given as 24 words.
    #[command(name = "init")]
    Init {
        /// File holding the 24 words, or `-` for standard input [default: standard input].
        #[arg(long, value_name = "FILE")]
        words_file: Option<PathBuf>,
    },
    /// Run an embedded regtest peer (miner, mempool, BIP 157 filters) until Ctrl-C.
    #[cfg(feature = "regtest")]
    #[command(name = "regtest-peer")]
    RegtestPeer(RegtestPeerArgs),
    /// Start a regtest peer and two nodes here, open a channel and pay an invoice.
    #[cfg(feature = "regtest")]
    #[command(name = "playground")]
    Playground {
        /// Stay up afterwards (mining a block every 10 s) until Ctrl-C, for the CLI.
        #[arg(long)]
        keep_running: bool,
    },
}

/// What `invoice` and `holdinvoice` take: the amount, the description and the expiry.
#[derive(Debug, Args)]
struct InvoiceArgs {
    /// Amount in msat or with its unit (50sat, 0.001btc), or `any`.
    #[arg(value_name = "AMOUNT|any")]
    amount: String,
    /// Description shown to the payer.
    #[arg(long, default_value = "")]
    description: String,
    /// Seconds until the invoice expires.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    expiry: u32,
}

impl InvoiceArgs {
    /// The invoice request these arguments describe.
    fn request(self) -> Result<InvoiceRequest, Failure> {
        let amount_msat = if self.amount == "any" {
            None
        } else {
            Some(parse::parse_msat("amount", &self.amount)?)
        };
        Ok(InvoiceRequest {
            amount_msat,
            description: self.description,
            expiry_secs: self.expiry,
        })
    }
}

#[derive(Debug, Args)]
struct DaemonArgs {
    /// Bitcoin P2P peer serving compact filters, as HOST:PORT (repeatable).
    #[arg(
        long = "bitcoin-peer",
        env = "LIGHTFILTER_BITCOIN_PEER",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    bitcoin_peers: Vec<String>,
    /// Use only the given Bitcoin peers (default on regtest); `false` also discovers peers.
    #[arg(long, env = "LIGHTFILTER_ONLY_BITCOIN_PEERS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    only_bitcoin_peers: Option<bool>,
    /// Lightning P2P listen address, or `none` [default: 0.0.0.0:9735; 127.0.0.1:0 on regtest].
    #[arg(long, env = "LIGHTFILTER_LN_LISTEN", value_name = "HOST:PORT")]
    ln_listen: Option<String>,
    /// Control API listen address [default: 127.0.0.1 on a per-network port].
    #[arg(long, env = "LIGHTFILTER_API_LISTEN", value_name = "HOST:PORT")]
    api_listen: Option<String>,
    /// Alias announced with the node (at most 32 bytes).
    #[arg(long, env = "LIGHTFILTER_ALIAS")]
    alias: Option<String>,
    /// Restoring a wallet from an existing seed: the height of a block mined before its first
    /// transaction (the wallet rescans from there; used only when the wallet is created).
    #[arg(long, env = "LIGHTFILTER_WALLET_BIRTHDAY", value_name = "HEIGHT")]
    wallet_birthday: Option<u32>,
    /// A block a new header chain may start from, besides the network's built-in start
    /// points: nothing below it is downloaded (used only when the chain database is new).
    #[arg(long, env = "LIGHTFILTER_CHECKPOINT", value_name = "HEIGHT:HASH")]
    checkpoint: Option<String>,
    /// A directory on other storage that mirrors every channel-state write (must exist).
    #[arg(long, env = "LIGHTFILTER_BACKUP_DIR", value_name = "DIR")]
    backup_dir: Option<PathBuf>,
    /// Take the channel state from this backup directory (into a data directory holding only
    /// the seed; needs --wallet-birthday).
    #[arg(long, value_name = "DIR")]
    restore_from: Option<PathBuf>,
}

#[cfg(feature = "regtest")]
#[derive(Debug, Args)]
struct RegtestPeerArgs {
    /// Address to accept P2P connections on, as IP:PORT (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    listen: SocketAddr,
    /// Blocks to mine to the built-in faucet at start-up.
    #[arg(long, value_name = "N", default_value_t = 0)]
    blocks: u32,
    /// Most P2P connections at once; further ones are closed at once.
    #[arg(long, value_name = "N", default_value_t = PeerLimits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    max_connections: u64,
    /// Seconds a connection has to complete the version handshake.
    #[arg(long, value_name = "SECS", default_value_t = PeerLimits::default().handshake_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    handshake_timeout: u64,
    /// Seconds a connection may send nothing before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = PeerLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    idle_timeout: u64,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    if let Command::Completions { shell } = cli.command {
        clap_complete::generate(
            shell,
            &mut Cli::command(),
            "lightfilter",
            &mut std::io::stdout(),
        );
        return ExitCode::SUCCESS;
    }
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(runtime) => runtime,
        Err(err) => {
            eprintln!("error: cannot start the async runtime: {err}");
            return ExitCode::FAILURE;
        }
    };
    let json = cli.json;
    let result = runtime.block_on(async move {
        match cli.command {
            Command::Daemon(args) => run_daemon(cli.network, cli.datadir, args).await,
            #[cfg(feature = "regtest")]
            Command::RegtestPeer(args) => {
                init_stderr_logging("info");
                run_regtest_peer(args).await
            }
            #[cfg(feature = "regtest")]
            Command::Playground { keep_running } => {
                init_stderr_logging("warn");
                tasks::install_fatal_panic_hook();
                run_playground(keep_running).await
            }
            command => {
                init_stderr_logging("warn");
                return run_client(cli.network, cli.datadir, json, command).await;
            }
        }
        .map(|()| ExitCode::SUCCESS)
    });
    match result {
        Ok(code) => code,
        Err(err) => {
            if err.downcast_ref::<AlreadyReported>().is_none() {
                eprintln!("error: {err:#}");
            }
            ExitCode::FAILURE
        }
    }
}

fn init_stderr_logging(default_level: &str) {
    env_logger::Builder::from_env(env_logger::Env::default().default_filter_or(default_level))
        .init();
}

// ---------------------------------------------------------------------------------------------
// daemon

/// Creates `dir` (and missing parents) readable by its owner only, as the node would.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder.create(dir)
}

/// The daemon's log file in the data directory; rotated files get a timestamp before `.log`.
const LOG_FILE: &str = "lightfilter.log";

/// Size at which the log file is rotated.
const LOG_ROTATE_BYTES: u64 = 10 * 1024 * 1024;

/// Rotated log files kept besides the current one; older ones are deleted.
const LOG_FILES_KEPT: usize = 4;

/// Logs to standard error and to `<datadir>/lightfilter.log`, rotated at
/// [`LOG_ROTATE_BYTES`] with [`LOG_FILES_KEPT`] old files kept. The handle must live as long
/// as the daemon.
fn init_daemon_logging(config: &Config) -> anyhow::Result<(PathBuf, LoggerHandle)> {
    let filter = std::env::var("RUST_LOG")
        .ok()
        .filter(|value| !value.trim().is_empty())
        .unwrap_or_else(|| config.log_level.clone());
    let spec = LogSpecification::parse(&filter).unwrap_or_else(|err| {
        eprintln!("warning: log filter {filter:?}: {err}; logging at info");
        LogSpecification::info()
    });
    let file = FileSpec::default()
        .directory(&config.data_dir)
        .basename("lightfilter")
        .suffix("log")
        .suppress_timestamp();
    let path = file.as_pathbuf(None);
    debug_assert_eq!(path, config.data_dir.join(LOG_FILE));
    let handle = Logger::with(spec)
        .log_to_file(file)
        .append()
        .rotate(
            Criterion::Size(LOG_ROTATE_BYTES),
            // The current file keeps its plain name; rotated ones are named by time.
            Naming::TimestampsCustomFormat {
                current_infix: Some(""),
                format: "%Y-%m-%d_%H-%M-%S",
            },
            Cleanup::KeepLogFiles(LOG_FILES_KEPT),
        )
        .duplicate_to_stderr(Duplicate::All)
        .format(log_line)
        .start()
        .with_context(|| format!("cannot open the log file {}", path.display()))?;
    Ok((path, handle))
}

/// `[time level target] message`, as env_logger writes it.
fn log_line(
    out: &mut dyn Write,
    now: &mut DeferredNow,
    record: &log::Record,
) -> std::io::Result<()> {
    write!(
        out,
        "[{} {:<5} {}] {}",
        now.now_utc_owned().format("%Y-%m-%dT%H:%M:%SZ"),
        record.level(),
        record.target(),
        record.args()
    )
}

async fn run_daemon(
    network: Option<Network>,
    data_dir: Option<PathBuf>,
    args: DaemonArgs,
) -> anyhow::Result<()> {
    let config = Config::load(&ConfigArgs {
        network,
        data_dir,
        bitcoin_peers: args.bitcoin_peers,
        only_bitcoin_peers: args.only_bitcoin_peers,
        ln_listen: args.ln_listen,
        api_listen: args.api_listen,
        alias: args.alias,
        wallet_birthday: args.wallet_birthday,
        checkpoint: args.checkpoint,
        backup_dir: args.backup_dir,
        restore_from: args.restore_from,
    })
    .context("invalid configuration")?;
    // Whatever the daemon creates (log files, LDK's and the wallet's files) is its owner's
    // only: the data directory holds keys and payment preimages.
    #[cfg(unix)]
    lightfilter::os::restrict_new_files();
    create_private_dir(&config.data_dir).with_context(|| {
        format!(
            "cannot create the data directory {}",
            config.data_dir.display()
        )
    })?;
    let (log_path, _log) = init_daemon_logging(&config)?;
    // A panic anywhere (LDK panics when it cannot persist channel state) ends the process at
    // once, logged: a half-dead daemon would go on answering without following the chain.
    tasks::install_fatal_panic_hook();
    // From here on failures go to the log (standard error and the log file) and are not
    // printed again by `main`.
    run_logged_daemon(config, log_path).await.map_err(|err| {
        log::error!("{err:#}");
        anyhow::Error::new(AlreadyReported)
    })
}

/// A failure that was already logged.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
struct AlreadyReported;

async fn run_logged_daemon(config: Config, log_path: PathBuf) -> anyhow::Result<()> {
    info!(
        "lightfilter {} starting on {} in {} (log also in {})",
        env!("CARGO_PKG_VERSION"),
        network_name(config.network),
        config.data_dir.display(),
        log_path.display()
    );
    #[cfg(unix)]
    match lightfilter::os::raise_open_file_limit() {
        Ok(limit) => info!(
            "open files limited to {} (hard limit {}); the control API holds at most {}",
            limit.soft,
            limit.hard,
            api::MAX_CONNECTIONS
        ),
        Err(err) => warn!("cannot raise the open-file limit: {err}"),
    }
    // The control API answers from the moment the data directory is open: while the chain
    // syncs it shows the progress and takes a stop; the rest waits for the node.
    let handle = NodeHandle::open(&config).context("cannot start the node")?;
    let server = api::serve(Arc::clone(&handle), config.api_listen, &config.data_dir)
        .await
        .context("cannot start the control API")?;
    info!("control API on {}; starting the node", server.addr());
    notify_ready();
    let started = tokio::select! {
        started = Node::start_with(config.clone(), &handle) => Some(started),
        _ = wait_for_stop_while_starting(&handle) => None,
    };
    let node = match started {
        Some(Ok(node)) => node,
        Some(Err(err)) => {
            shut_down_api(server).await;
            return Err(err).context("cannot start the node");
        }
        None => {
            // Everything the start wrote so far is durable: it resumes from there next time.
            info!("stopping before the node finished starting");
            notify_stopping();
            shut_down_api(server).await;
            if let Some(chain) = handle.chain() {
                chain.stop().await;
            }
            info!("stopped");
            return Ok(());
        }
    };
    info!("node {} running", node.node_id());
    #[cfg(debug_assertions)]
    inject_test_fault();
    wait_for_stop(&node).await;
    info!("stopping: no new API requests, then the node");
    notify_stopping();
    node.request_stop();
    shut_down_api(server).await;
    node.stop().await;
    if let Some(failure) = node.failure() {
        return Err(failure).context("the node stopped after a failure");
    }
    info!("stopped");
    Ok(())
}

/// Tells systemd (`Type=notify`) that the daemon is ready: its control API answers. Does
/// nothing when not started by systemd.
fn notify_ready() {
    #[cfg(unix)]
    if let Err(err) = sd_notify::notify(&[sd_notify::NotifyState::Ready]) {
        warn!("cannot tell systemd the daemon is ready: {err}");
    }
}

/// Tells systemd the daemon is stopping.
fn notify_stopping() {
    #[cfg(unix)]
    let _ = sd_notify::notify(&[sd_notify::NotifyState::Stopping]);
}

/// Injects the fault named by [`tasks::fault::FAULT_VAR`], if set: tests use it to make one
/// of the daemon's tasks panic or end while the daemon runs. Debug builds only.
#[cfg(debug_assertions)]
fn inject_test_fault() {
    let Ok(description) = std::env::var(tasks::fault::FAULT_VAR) else {
        return;
    };
    match description.parse() {
        Ok(fault) => tasks::fault::inject(fault),
        Err(err) => warn!("{err}"),
    }
}

async fn shut_down_api(server: api::ApiServer) {
    if let Err(err) = server.shutdown().await {
        warn!("{err}");
    }
}

/// Resolves on Ctrl-C, SIGTERM or a stop requested through the API while the node starts.
async fn wait_for_stop_while_starting(handle: &NodeHandle) {
    tokio::select! {
        _ = termination() => {}
        _ = handle.stop_requested() => info!("stop requested"),
    }
}

/// Resolves on Ctrl-C or SIGTERM.
async fn termination() {
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(err) => {
                warn!("cannot listen for SIGTERM: {err}");
                std::future::pending::<()>().await;
            }
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        result = tokio::signal::ctrl_c() => match result {
            Ok(()) => info!("interrupted"),
            Err(err) => {
                warn!("cannot listen for Ctrl-C: {err}");
                std::future::pending::<()>().await;
            }
        },
        _ = terminate => info!("terminated"),
    }
}

/// Resolves on Ctrl-C, SIGTERM, a stop requested through the API, or a failure of one of the
/// node's tasks.
async fn wait_for_stop(node: &Node) {
    tokio::select! {
        _ = termination() => {}
        _ = node.stopped() => info!("stop requested"),
        _ = node.failed() => {} // logged where it happened
    }
}

// ---------------------------------------------------------------------------------------------
// regtest peer and playground

#[cfg(feature = "regtest")]
async fn run_regtest_peer(args: RegtestPeerArgs) -> anyhow::Result<()> {
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

#[cfg(feature = "regtest")]
async fn run_playground(keep_running: bool) -> anyhow::Result<()> {
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

// ---------------------------------------------------------------------------------------------
// client commands

/// A command's failure: a stable code and a message.
struct Failure(ErrorDetail);

impl From<ClientError> for Failure {
    fn from(err: ClientError) -> Self {
        Failure(err.detail())
    }
}

impl From<parse::ParseError> for Failure {
    fn from(err: parse::ParseError) -> Self {
        Failure(ErrorDetail {
            code: "invalid_input".to_string(),
            message: err.to_string(),
        })
    }
}

/// What a command printed and how it ends.
struct Reply {
    json: serde_json::Value,
    human: String,
    success: bool,
}

impl Reply {
    fn new(value: &impl Serialize, human: String) -> Reply {
        Reply {
            json: serde_json::to_value(value).unwrap_or(serde_json::Value::Null),
            human,
            success: true,
        }
    }
}

async fn run_client(
    network: Option<Network>,
    data_dir: Option<PathBuf>,
    json: bool,
    command: Command,
) -> anyhow::Result<ExitCode> {
    let resolved = resolve_network(network).and_then(|network| {
        let data_dir = match data_dir {
            Some(dir) => dir,
            None => default_data_dir(network)?,
        };
        Ok((network, data_dir))
    });
    let outcome = match resolved {
        Ok((network, data_dir)) => run_command(&data_dir, network, json, command).await,
        Err(err) => Err(Failure(ErrorDetail {
            code: "invalid_input".into(),
            message: err.to_string(),
        })),
    };
    let mut stdout = std::io::stdout().lock();
    let code = match outcome {
        Ok(reply) => {
            if json {
                let text = serde_json::to_string_pretty(&reply.json).unwrap_or_default();
                let _ = writeln!(stdout, "{text}");
            } else {
                let _ = write!(stdout, "{}", reply.human);
            }
            if reply.success {
                ExitCode::SUCCESS
            } else {
                ExitCode::FAILURE
            }
        }
        Err(Failure(detail)) => {
            if json {
                let body = ErrorBody { error: detail };
                let text = serde_json::to_string_pretty(&body).unwrap_or_default();
                let _ = writeln!(stdout, "{text}");
            } else {
                eprintln!("error: {}", detail.message);
            }
            ExitCode::FAILURE
        }
    };
    let _ = stdout.flush();
    Ok(code)
}

/// Connects lazily, after the arguments were checked.
fn client(data_dir: &Path) -> Result<Client, Failure> {
    Ok(Client::from_data_dir(data_dir)?)
}

async fn call<M: Method>(client: &Client, request: &M::Request) -> Result<M::Response, Failure> {
    Ok(client.call::<M>(request).await?)
}

async fn run_command(
    data_dir: &Path,
    network: Network,
    json: bool,
    command: Command,
) -> Result<Reply, Failure> {
    match command {
        Command::GetInfo {
            wait_synced,
            timeout,
        } => {
            let client = client(data_dir)?;
            let info = if wait_synced {
                wait_synced_info(&client, json, timeout.map(Duration::from_secs)).await?
            } else {
                call::<GetInfo>(&client, &Empty {}).await?
            };
            Ok(Reply::new(&info, render::info(&info)))
        }
        Command::NewAddress => {
            let response = call::<NewAddress>(&client(data_dir)?, &Empty {}).await?;
            let human = format!("{}\n", response.address);
            Ok(Reply::new(&response, human))
        }
        Command::Balance => {
            let balance = call::<Balance>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&balance, render::balance(&balance)))
        }
        Command::Send {
            address,
            amount,
            feerate,
            force,
        } => {
            let amount = if amount == "all" {
                SendAmountSpec::All
            } else {
                SendAmountSpec::Sat(parse::parse_sat("amount", &amount)?)
            };
            let fee_rate_sat_per_kwu = feerate.as_deref().map(parse::parse_fee_rate).transpose()?;
            let request = SendRequest {
                address: address.clone(),
                amount,
                fee_rate_sat_per_kwu,
                fee_rate: None,
                force,
            };
            let sent = call::<SendOnchain>(&client(data_dir)?, &request).await?;
            let what = match amount {
                SendAmountSpec::Sat(sat) => format!("{sat} sat"),
                SendAmountSpec::All => "all confirmed funds".to_string(),
            };
            let human = format!(
                "sent {what} to {address} in transaction {}\n{}\n",
                sent.txid,
                render::propagation_line(sent.propagated, &sent.propagation)
            );
            Ok(Reply::new(&sent, human))
        }
        Command::Utxos => {
            let utxos = call::<Utxos>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&utxos, render::utxos(&utxos)))
        }
        Command::Connect { peer } => {
            let (node_id, address) = parse::parse_peer_uri(&peer)?;
            let request = ConnectRequest {
                node_id: node_id.to_string(),
                address,
            };
            let connected = call::<Connect>(&client(data_dir)?, &request).await?;
            let human = format!("connected to {}@{}\n", connected.node_id, connected.address);
            Ok(Reply::new(&connected, human))
        }
        Command::Disconnect { pubkey } => {
            let node_id = parse::parse_node_id(&pubkey)?;
            let request = DisconnectRequest {
                node_id: node_id.to_string(),
            };
            let done = call::<Disconnect>(&client(data_dir)?, &request).await?;
            let human = format!("disconnected from {}\n", done.node_id);
            Ok(Reply::new(&done, human))
        }
        Command::Peers => {
            let peers = call::<Peers>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&peers, render::peers(&peers)))
        }
        Command::OpenChannel {
            peer,
            sats,
            push_msat,
            public,
            wait_ready,
            timeout,
            force,
        } => {
            let (node_id, address) = parse::parse_peer_uri(&peer)?;
            let amount_sat = parse::parse_sat("channel amount", &sats)?;
            let push_msat = push_msat
                .as_deref()
                .map(|text| parse::parse_msat("push amount", text))
                .transpose()?
                .unwrap_or(0);
            let request = OpenChannelRequest {
                node_id: node_id.to_string(),
                address,
                amount_sat,
                push_msat,
                public,
                force,
            };
            let client = client(data_dir)?;
            let opened = call::<OpenChannel>(&client, &request).await?;
            let mut human = format!(
                "opening a {amount_sat} sat channel to {node_id}: channel id {}, funding transaction {}\n{}\n",
                opened.channel_id,
                opened.funding_txid,
                render::propagation_line(opened.propagated, &opened.propagation)
            );
            if !wait_ready {
                return Ok(Reply::new(&opened, human));
            }
            if !json {
                print!("{human}");
                human.clear();
            }
            let channel = wait_channel_ready(
                &client,
                &opened.channel_id,
                json,
                Duration::from_secs(timeout),
            )
            .await?;
            human.push_str(&render::channels(std::slice::from_ref(&channel)));
            Ok(Reply::new(&channel, human))
        }
        Command::CloseChannel { channel_id, force } => {
            parse::parse_channel_ref(&channel_id)?;
            let request = CloseChannelRequest { channel_id, force };
            let closed = call::<CloseChannel>(&client(data_dir)?, &request).await?;
            let how = if force { "force-closing" } else { "closing" };
            let human = format!(
                "{how} channel {}; the funds return to the on-chain wallet once the closing transaction confirms{}\n{}\n",
                closed.channel_id,
                if force { " and its time lock expires" } else { "" },
                match &closed.closing_txid {
                    Some(txid) => format!(
                        "closing transaction {txid}: {}",
                        render::propagation_line(closed.propagated, &closed.propagation)
                    ),
                    None => format!("{}.", closed.propagation),
                }
            );
            Ok(Reply::new(&closed, human))
        }
        Command::Channels => {
            let channels = call::<Channels>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&channels, render::channels(&channels)))
        }
        Command::Invoice(invoice) => {
            let request = invoice.request()?;
            let invoice = call::<CreateInvoice>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(
                &invoice,
                render::invoice(&invoice, request.amount_msat),
            ))
        }
        Command::Pay {
            destination,
            amount_msat,
            timeout,
        } => {
            let amount_msat = amount_msat
                .as_deref()
                .map(|text| parse::parse_msat("amount", text))
                .transpose()?;
            let request = PayRequest {
                destination: destination.trim().to_string(),
                amount_msat,
                timeout_secs: timeout,
            };
            let client = client(data_dir)?.with_timeout(payment_call_timeout(timeout));
            let payment = call::<Pay>(&client, &request).await?;
            Ok(payment_reply(&payment))
        }
        Command::Keysend {
            pubkey,
            msat,
            timeout,
        } => {
            let request = KeysendRequest {
                node_id: parse::parse_node_id(&pubkey)?.to_string(),
                amount_msat: parse::parse_msat("amount", &msat)?,
                timeout_secs: timeout,
            };
            let client = client(data_dir)?.with_timeout(payment_call_timeout(timeout));
            let payment = call::<Keysend>(&client, &request).await?;
            Ok(payment_reply(&payment))
        }
        Command::Payments { offset, limit } => {
            let request = PaymentsRequest { offset, limit };
            let payments = call::<Payments>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&payments, render::payments(&payments)))
        }
        Command::Offer { msat, description } => {
            let amount_msat = msat
                .as_deref()
                .map(|text| parse::parse_msat("amount", text))
                .transpose()?;
            let request = OfferRequest {
                amount_msat,
                description,
            };
            let offer = call::<CreateOffer>(&client(data_dir)?, &request).await?;
            let human = format!("{}\n", offer.offer);
            Ok(Reply::new(&offer, human))
        }
        Command::SignMessage { message } => {
            let signed =
                call::<SignMessage>(&client(data_dir)?, &SignMessageRequest { message }).await?;
            let human = format!("{}\n", signed.signature);
            Ok(Reply::new(&signed, human))
        }
        Command::VerifyMessage {
            message,
            signature,
            pubkey,
        } => {
            let request = VerifyMessageRequest {
                message,
                signature,
                node_id: parse::parse_node_id(&pubkey)?.to_string(),
            };
            let verified = call::<VerifyMessage>(&client(data_dir)?, &request).await?;
            let human = if verified.valid {
                format!("valid: signed by {}\n", request.node_id)
            } else {
                format!(
                    "NOT valid: not signed by {} over this message\n",
                    request.node_id
                )
            };
            Ok(Reply::new(&verified, human))
        }
        Command::Stop => {
            let stopped = call::<Stop>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&stopped, "the daemon is stopping\n".to_string()))
        }
        Command::FeeRates => {
            let rates = call::<FeeRates>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&rates, render::fee_rates(&rates)))
        }
        Command::Seed { .. } => seed_words(data_dir),
        Command::Init { words_file } => init_from_words(data_dir, network, words_file.as_deref()),
        Command::Transactions => {
            let list = call::<Transactions>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&list, render::transactions(&list)))
        }
        Command::BumpFee {
            txid,
            feerate,
            force,
        } => {
            parse::parse_txid(&txid)?;
            parse::parse_fee_rate(&feerate)?;
            let request = BumpFeeRequest {
                txid,
                fee_rate: feerate,
                force,
            };
            let bumped = call::<BumpFee>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&bumped, render::bumped(&bumped)))
        }
        Command::Forwards => {
            let list = call::<Forwards>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&list, render::forwards(&list)))
        }
        Command::SetChannelFee {
            channel,
            base_fee,
            fee_ppm,
            cltv_delta,
        } => {
            parse::parse_channel_ref(&channel)?;
            let request = SetChannelFeeRequest {
                channel,
                base_fee_msat: base_fee
                    .as_deref()
                    .map(parse::parse_base_fee_msat)
                    .transpose()?,
                fee_ppm,
                cltv_expiry_delta: cltv_delta,
            };
            let policy = call::<SetChannelFee>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&policy, render::channel_policy(&policy)))
        }
        Command::HoldInvoice {
            payment_hash,
            invoice,
        } => {
            parse::parse_hash("payment hash", &payment_hash)?;
            let InvoiceRequest {
                amount_msat,
                description,
                expiry_secs,
            } = invoice.request()?;
            let request = HoldInvoiceRequest {
                payment_hash,
                amount_msat,
                description,
                expiry_secs,
            };
            let invoice = call::<HoldInvoice>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&invoice, render::invoice(&invoice, amount_msat)))
        }
        Command::SettleInvoice { preimage } => {
            parse::parse_hash("preimage", &preimage)?;
            let request = SettleInvoiceRequest { preimage };
            let settled = call::<SettleInvoice>(&client(data_dir)?, &request).await?;
            let human = format!("claimed held payment {}\n", settled.payment_hash);
            Ok(Reply::new(&settled, human))
        }
        Command::CancelInvoice { payment_hash } => {
            parse::parse_hash("payment hash", &payment_hash)?;
            let request = CancelInvoiceRequest { payment_hash };
            let cancelled = call::<CancelInvoice>(&client(data_dir)?, &request).await?;
            let human = format!("failed held payment {} back\n", cancelled.payment_hash);
            Ok(Reply::new(&cancelled, human))
        }
        Command::Daemon(_) | Command::Completions { .. } => Err(not_a_client_command()),
        #[cfg(feature = "regtest")]
        Command::RegtestPeer(_) | Command::Playground { .. } => Err(not_a_client_command()),
    }
}

/// The HTTP timeout of a payment call: the payment's own timeout plus slack.
/// The failure of a command that runs here rather than in the daemon.
fn not_a_client_command() -> Failure {
    Failure(ErrorDetail {
        code: "invalid_input".into(),
        message: "not a client command".into(),
    })
}

fn payment_call_timeout(timeout_secs: u64) -> Duration {
    Duration::from_secs(timeout_secs.saturating_add(30))
}

/// A payment's reply; a failed payment ends the command with a non-zero exit status.
fn payment_reply(payment: &PaymentEntry) -> Reply {
    let mut reply = Reply::new(payment, render::payment(payment));
    reply.success = payment.status != "failed";
    if payment.status == "pending" {
        reply
            .human
            .push_str("still in flight: `lightfilter payments` shows how it ends\n");
    }
    reply
}

fn progress(json: bool, line: &str) {
    if !json {
        eprintln!("{line}");
    }
}

/// Polls `getinfo` until the node is synced, showing the progress on standard error: a
/// progress bar with the time left on a terminal, a line per change otherwise (none with
/// `--json`). Gives up after `timeout`, if one is given.
async fn wait_synced_info(
    client: &Client,
    json: bool,
    timeout: Option<Duration>,
) -> Result<InfoResponse, Failure> {
    let deadline = timeout.map(|timeout| Instant::now() + timeout);
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
    loop {
        let info = call::<GetInfo>(client, &Empty {}).await?;
        if info.synced {
            if let Some(bar) = &bar {
                bar.finish_and_clear();
            }
            return Ok(info);
        }
        let status = render::sync_status(&info);
        match &bar {
            Some(bar) => {
                bar.set_position((info.sync.progress * 1_000.0) as u64);
                bar.set_message(status.clone());
            }
            None if status != last => progress(json, &status),
            None => {}
        }
        last = status;
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) {
            if let Some(bar) = &bar {
                bar.abandon();
            }
            return Err(Failure(ErrorDetail {
                code: "timeout".into(),
                message: format!(
                    "not synced after {} s: {last}",
                    timeout.unwrap_or_default().as_secs()
                ),
            }));
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
}

async fn wait_channel_ready(
    client: &Client,
    channel_id: &str,
    json: bool,
    timeout: Duration,
) -> Result<ChannelEntry, Failure> {
    let deadline = Instant::now() + timeout;
    let mut last = String::new();
    loop {
        let channels = call::<Channels>(client, &Empty {}).await?;
        let channel = channels
            .into_iter()
            .find(|channel| channel.channel_id == channel_id)
            .ok_or_else(|| {
                Failure(ErrorDetail {
                    code: "unknown_channel".into(),
                    message: format!(
                        "channel {channel_id} disappeared while opening (the peer may have refused it; see the daemon's log)"
                    ),
                })
            })?;
        if channel.ready {
            progress(json, "channel ready");
            return Ok(channel);
        }
        let status = match channel.confirmations {
            Some(confirmations) => {
                format!("waiting for the funding transaction: {confirmations} confirmation(s)")
            }
            None => "waiting for the funding transaction to confirm".to_string(),
        };
        if status != last {
            progress(json, &status);
            last = status;
        }
        if Instant::now() >= deadline {
            return Err(Failure(ErrorDetail {
                code: "timeout".into(),
                message: format!(
                    "channel {channel_id} not ready after {} s: {last}",
                    timeout.as_secs()
                ),
            }));
        }
        tokio::time::sleep(Duration::from_secs(2)).await;
    }
}

// ---------------------------------------------------------------------------------------------
// seed words

/// `seed --words`: the seed file read directly, so a running daemon is not needed.
fn seed_words(data_dir: &Path) -> Result<Reply, Failure> {
    let words = lightfilter::node::seed_words_of(data_dir).map_err(node_failure)?;
    eprintln!(
        "warning: these 24 words are the keys to every coin and channel of this node; anyone \
         who sees them can take its funds. Write them on paper and keep it offline."
    );
    let numbered: Vec<String> = words
        .split(' ')
        .enumerate()
        .map(|(i, word)| format!("{:>2}. {word:<10}", i + 1))
        .collect();
    let human: String = numbered
        .chunks(4)
        .map(|row| format!("{}\n", row.join(" ").trim_end()))
        .collect();
    Ok(Reply::new(&serde_json::json!({ "words": words }), human))
}

/// `init --words-file FILE`: a new data directory whose seed is the words' (from standard
/// input when FILE is `-` or not given).
fn init_from_words(
    data_dir: &Path,
    network: Network,
    words_file: Option<&Path>,
) -> Result<Reply, Failure> {
    let input = |err: String| {
        Failure(ErrorDetail {
            code: "invalid_input".into(),
            message: err,
        })
    };
    let words = match words_file {
        Some(path) if path != Path::new("-") => std::fs::read_to_string(path)
            .map_err(|err| input(format!("cannot read {}: {err}", path.display())))?,
        _ => std::io::read_to_string(std::io::stdin())
            .map_err(|err| input(format!("cannot read standard input: {err}")))?,
    };
    let node_id =
        lightfilter::node::init_from_words(data_dir, network, &words).map_err(node_failure)?;
    let human = format!(
        "created {} with the seed of node {node_id}\nstart it with --wallet-birthday HEIGHT, and \
         --restore-from BACKUP_DIR to take its channels from a backup\n",
        data_dir.display()
    );
    Ok(Reply::new(
        &serde_json::json!({ "node_id": node_id.to_string(), "data_dir": data_dir }),
        human,
    ))
}

fn node_failure(err: lightfilter::node::NodeError) -> Failure {
    Failure(ErrorDetail {
        code: err.code().into(),
        message: err.to_string(),
    })
}

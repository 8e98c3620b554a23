//! The command line's arguments (clap): global options, the commands and what each takes.

#[cfg(feature = "regtest")]
use std::net::SocketAddr;
use std::path::PathBuf;

use bitcoin::Network;
use clap::{Args, Parser, Subcommand};
use lightfilter::api::parse::{self, ParseError};
use lightfilter::api::types::InvoiceRequest;
use lightfilter::config::{parse_network, ConfigArgs};
#[cfg(feature = "regtest")]
use lightfilter::regtest::PeerLimits;

/// A Lightning node whose only chain backend is an embedded BIP 157/158 compact-filter client.
#[derive(Debug, Parser)]
#[command(name = "lightfilter", version, about)]
pub struct Cli {
    /// Bitcoin network: regtest, signet, testnet, testnet4 or bitcoin [default: `network` in
    /// ~/.lightfilter/lightfilter.toml, else regtest].
    #[arg(long, global = true, env = "LIGHTFILTER_NETWORK", value_name = "NETWORK", value_parser = network_arg)]
    pub network: Option<Network>,
    /// Data directory [default: ~/.lightfilter/<network>].
    #[arg(long, global = true, env = "LIGHTFILTER_DATADIR", value_name = "DIR")]
    pub datadir: Option<PathBuf>,
    /// Print results (and errors) as JSON on standard output.
    #[arg(long, global = true)]
    pub json: bool,
    #[command(subcommand)]
    pub command: Command,
}

fn network_arg(text: &str) -> Result<Network, String> {
    parse_network(text).map_err(|err| err.to_string())
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the node until Ctrl-C, SIGTERM or `lightfilter stop`.
    #[command(name = "daemon")]
    Daemon(Box<DaemonArgs>),
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
    /// Send on-chain: an amount in sat, or `all` of the confirmed balance (minus the fee and
    /// the reserve kept for anchor channels).
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
        /// Send even if the fee rate is below what the Bitcoin peers accept, or if it spends
        /// the reserve kept for anchor channels' fees (with a warning).
        #[arg(long)]
        force: bool,
    },
    /// Unspent on-chain outputs of the wallet.
    #[command(name = "utxos")]
    Utxos,
    /// Connect to a Lightning peer (remembered and reconnected until `disconnect`).
    #[command(name = "connect")]
    Connect {
        /// The peer as <pubkey>@<host>:<port>.
        #[arg(value_name = "PUBKEY@HOST:PORT")]
        peer: String,
    },
    /// Disconnect a Lightning peer (and forget it, unless it has a channel with us).
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
        /// Replace even if the new fee rate is below what the Bitcoin peers accept, or if it
        /// spends the reserve kept for anchor channels' fees (with a warning).
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
    /// Move the stopped node's channel state and wallet between its data directory and
    /// PostgreSQL.
    #[command(name = "store", subcommand)]
    Store(StoreCommand),
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

/// `store`'s commands.
#[derive(Debug, Subcommand)]
pub enum StoreCommand {
    /// Copy the stopped node's state (every key LDK and the node persist, and the wallet)
    /// between its data directory's files and PostgreSQL, check the copy key by key, and mark
    /// the source as moved (a daemon no longer starts on it).
    #[command(name = "copy")]
    Copy(StoreCopyArgs),
}

/// Which way `store copy` goes.
#[derive(Debug, Args)]
#[group(required = true, multiple = false)]
pub struct StoreCopyArgs {
    /// From the data directory's files into PostgreSQL at this URL (holding none of the node's
    /// state yet).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub to: Option<String>,
    /// From PostgreSQL at this URL into the data directory (holding only the seed).
    #[arg(long, value_name = "URL", hide_env_values = true)]
    pub from: Option<String>,
}

/// What `invoice` and `holdinvoice` take: the amount, the description and the expiry.
#[derive(Debug, Args)]
pub struct InvoiceArgs {
    /// Amount in msat or with its unit (50sat, 0.001btc), or `any`.
    #[arg(value_name = "AMOUNT|any")]
    pub amount: String,
    /// Description shown to the payer.
    #[arg(long, default_value = "")]
    pub description: String,
    /// Seconds until the invoice expires.
    #[arg(long, value_name = "SECS", default_value_t = 3600)]
    pub expiry: u32,
}

impl InvoiceArgs {
    /// The invoice request these arguments describe.
    pub fn request(self) -> Result<InvoiceRequest, ParseError> {
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

// What `daemon` takes: the configuration's command-line part.
#[derive(Debug, Args)]
pub struct DaemonArgs {
    /// Bitcoin P2P peer serving compact filters, as HOST:PORT (repeatable).
    #[arg(
        long = "bitcoin-peer",
        env = "LIGHTFILTER_BITCOIN_PEER",
        value_name = "HOST:PORT",
        value_delimiter = ','
    )]
    pub bitcoin_peers: Vec<String>,
    /// Use only the given Bitcoin peers (default on regtest); `false` also discovers peers.
    #[arg(long, env = "LIGHTFILTER_ONLY_BITCOIN_PEERS", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub only_bitcoin_peers: Option<bool>,
    /// Lightning P2P listen address, or `none` [default: 0.0.0.0:9735; 127.0.0.1:0 on regtest].
    #[arg(long, env = "LIGHTFILTER_LN_LISTEN", value_name = "HOST:PORT")]
    pub ln_listen: Option<String>,
    /// Control API listen address [default: 127.0.0.1 on a per-network port].
    #[arg(long, env = "LIGHTFILTER_API_LISTEN", value_name = "HOST:PORT")]
    pub api_listen: Option<String>,
    /// Alias announced with the node (at most 32 bytes).
    #[arg(long, env = "LIGHTFILTER_ALIAS")]
    pub alias: Option<String>,
    /// Restoring a wallet from an existing seed: the height of a block mined before its first
    /// transaction (the wallet rescans from there; used only when the wallet is created).
    #[arg(long, env = "LIGHTFILTER_WALLET_BIRTHDAY", value_name = "HEIGHT")]
    pub wallet_birthday: Option<u32>,
    /// A block a new header chain may start from, besides the network's built-in start
    /// points: nothing below it is downloaded (used only when the chain database is new).
    #[arg(long, env = "LIGHTFILTER_CHECKPOINT", value_name = "HEIGHT:HASH")]
    pub checkpoint: Option<String>,
    /// A directory on other storage that mirrors every channel-state write (must exist).
    #[arg(long, env = "LIGHTFILTER_BACKUP_DIR", value_name = "DIR")]
    pub backup_dir: Option<PathBuf>,
    /// Take the channel state from this backup directory (into a data directory holding only
    /// the seed; needs --wallet-birthday).
    #[arg(long, value_name = "DIR")]
    pub restore_from: Option<PathBuf>,
    /// Keep the channel state and the wallet in PostgreSQL instead of the data directory, as
    /// postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (see the README's two-machine setup).
    #[arg(
        long,
        env = "LIGHTFILTER_STORE",
        value_name = "URL",
        hide_env_values = true
    )]
    pub store: Option<String>,
    /// With --store: wait until the node's writer (another daemon with the same seed and store)
    /// stops, then take over.
    #[arg(long)]
    pub standby: bool,
    /// SOCKS5 proxy for every outbound connection, Bitcoin and Lightning (Tor's SOCKS port,
    /// e.g. 127.0.0.1:9050): it resolves host names and reaches .onion addresses.
    #[arg(long, env = "LIGHTFILTER_PROXY", value_name = "IP:PORT")]
    pub proxy: Option<String>,
    /// Refuse to start unless every outbound connection goes through --proxy.
    #[arg(long, env = "LIGHTFILTER_TOR_ONLY", value_name = "BOOL", num_args = 0..=1, default_missing_value = "true")]
    pub tor_only: Option<bool>,
    /// Blocks fetched beside each block the wallet needs, from the same peer in one request,
    /// so that the peer cannot tell which one mattered [default: 0 on regtest, 2 elsewhere].
    #[arg(long, env = "LIGHTFILTER_DECOY_BLOCKS", value_name = "N")]
    pub decoy_blocks: Option<u32>,
    /// Tor's control port (e.g. 127.0.0.1:9051): the node creates an onion service for
    /// inbound Lightning connections, its key kept in the data directory.
    #[arg(long, env = "LIGHTFILTER_TOR_CONTROL", value_name = "IP:PORT")]
    pub tor_control: Option<String>,
    /// The control port's password (HashedControlPassword); without it, Tor's cookie file.
    #[arg(
        long,
        env = "LIGHTFILTER_TOR_CONTROL_PASSWORD",
        value_name = "PASSWORD"
    )]
    pub tor_control_password: Option<String>,
}

impl DaemonArgs {
    /// The configuration's command-line part: these arguments with the global `network` and
    /// `data_dir`.
    pub fn config_args(self, network: Option<Network>, data_dir: Option<PathBuf>) -> ConfigArgs {
        ConfigArgs {
            network,
            data_dir,
            bitcoin_peers: self.bitcoin_peers,
            only_bitcoin_peers: self.only_bitcoin_peers,
            ln_listen: self.ln_listen,
            api_listen: self.api_listen,
            alias: self.alias,
            wallet_birthday: self.wallet_birthday,
            checkpoint: self.checkpoint,
            backup_dir: self.backup_dir,
            restore_from: self.restore_from,
            store: self.store,
            standby: self.standby,
            proxy: self.proxy,
            tor_only: self.tor_only,
            decoy_blocks: self.decoy_blocks,
            tor_control: self.tor_control,
            tor_control_password: self.tor_control_password,
        }
    }
}

// What `regtest-peer` takes.
#[cfg(feature = "regtest")]
#[derive(Debug, Args)]
pub struct RegtestPeerArgs {
    /// Address to accept P2P connections on, as IP:PORT (port 0 picks a free one).
    #[arg(long, value_name = "HOST:PORT")]
    pub listen: SocketAddr,
    /// Blocks to mine to the built-in faucet at start-up.
    #[arg(long, value_name = "N", default_value_t = 0)]
    pub blocks: u32,
    /// Most P2P connections at once; further ones are closed at once.
    #[arg(long, value_name = "N", default_value_t = PeerLimits::default().max_connections as u64,
          value_parser = clap::value_parser!(u64).range(1..))]
    pub max_connections: u64,
    /// Seconds a connection has to complete the version handshake.
    #[arg(long, value_name = "SECS", default_value_t = PeerLimits::default().handshake_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub handshake_timeout: u64,
    /// Seconds a connection may send nothing before it is closed.
    #[arg(long, value_name = "SECS", default_value_t = PeerLimits::default().idle_timeout.as_secs(),
          value_parser = clap::value_parser!(u64).range(1..))]
    pub idle_timeout: u64,
}

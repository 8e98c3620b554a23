//! Node configuration: network, data directory, Bitcoin peers, listen addresses, alias and fee
//! overrides, read from a TOML file in the data directory and overridden by command-line
//! flags (which clap also fills from `LIGHTFILTER_*` environment variables).
//!
//! ```toml
//! # <datadir>/lightfilter.toml
//! bitcoin_peers = ["127.0.0.1:18444"]
//! only_bitcoin_peers = true
//! filter_quorum = 1
//! ln_listen = "0.0.0.0:9735"
//! api_listen = "127.0.0.1:9737"
//! alias = "my-node"
//! log_level = "info"
//! wallet_birthday = 800000   # only when restoring a wallet from an existing seed
//! checkpoint = "840000:0000000000000000000320283a032748cef8227873ff4872689bf23f1cda83a5"
//! fee_sample_interval = 144  # blocks between fee samples of an idle node (1 on regtest)
//! backup_dir = "/media/usb/lightfilter-backup"
//! store = "postgresql://lightfilter@db.lan/lightfilter"  # channel state and wallet in PostgreSQL
//! proxy = "127.0.0.1:9050"   # every outbound connection through this SOCKS5 proxy (Tor)
//! tor_only = true            # refuse to start unless every connection goes through it
//! tor_control = "127.0.0.1:9051"  # an onion service for inbound Lightning connections
//! decoy_blocks = 2           # blocks fetched beside each one the wallet needs (0 on regtest)
//! gossip_since_stored_graph = true  # ask peers only for gossip newer than the stored graph
//! max_graph_channels = 25000  # channels kept in the network graph (default 100,000)
//! gossip_peers = 1           # Lightning peers asked for gossip (default all; 0: no graph)
//!
//! [fee_overrides]          # a rate with its unit; a bare number is sat per 1000 weight units
//! urgent_on_chain_sweep = "20sat/vb"
//! output_spending = 1250
//! ```
//!
//! The network is chosen once for the daemon and the CLI alike: `--network` (or
//! `LIGHTFILTER_NETWORK`) if given, else `network` in the top-level configuration file
//! `~/.lightfilter/lightfilter.toml` (the base directory that holds the per-network data
//! directories), else regtest.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use bitcoin::Network;
use serde::Deserialize;

use crate::chain::config::default_decoy_blocks;
use crate::chain::fees::{parse_target, target_name, ALL_TARGETS};
use crate::chain::{Checkpoint, FeeOverrides, PeerAddress};
use crate::proxy::{is_onion, onion_v3_key, Route};

/// Name of the configuration file inside the data directory, and of the top-level one in the
/// base directory.
pub const CONFIG_FILE: &str = "lightfilter.toml";

/// The top-level configuration file's contents: what applies to every data directory.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct BaseConfig {
    network: Option<String>,
}

/// A fee override: a rate with its unit (`"5sat/vb"`, `"1250sat/kw"`) or a bare number of
/// sat per 1000 weight units.
#[derive(Debug, Deserialize)]
#[serde(untagged)]
enum FeeOverrideValue {
    SatPerKw(u32),
    WithUnit(String),
}

/// Why the configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is not valid TOML for this configuration.
    #[error("{} is not a valid configuration file: {reason}", path.display())]
    Parse {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// A value is malformed.
    #[error("invalid {what} {value:?}: {reason}")]
    Invalid {
        /// Which setting.
        what: &'static str,
        /// The value given.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// `tor_only` is set and a connection would leave without the proxy.
    #[error(
        "--tor-only refuses a direct connection to {refused}: give --proxy with Tor's SOCKS \
         port (e.g. --proxy 127.0.0.1:9050) so that every connection goes through Tor"
    )]
    TorOnlyWithoutProxy {
        /// The first address that would be connected to directly.
        refused: String,
    },
    /// No home directory to put the default data directory in.
    #[error("no data directory given and no home directory found; pass --datadir")]
    NoDataDir,
}

/// Values given on the command line (or through the environment); `None` means not given.
#[derive(Debug, Clone, Default)]
pub struct ConfigArgs {
    /// `--network`.
    pub network: Option<Network>,
    /// `--datadir`.
    pub data_dir: Option<PathBuf>,
    /// `--bitcoin-peer`, repeatable.
    pub bitcoin_peers: Vec<String>,
    /// `--only-bitcoin-peers`.
    pub only_bitcoin_peers: Option<bool>,
    /// `--ln-listen`.
    pub ln_listen: Option<String>,
    /// `--api-listen`.
    pub api_listen: Option<String>,
    /// `--alias`.
    pub alias: Option<String>,
    /// `--wallet-birthday`: for a wallet restored from an existing seed, the height of a block
    /// mined before its first transaction.
    pub wallet_birthday: Option<u32>,
    /// `--checkpoint HEIGHT:HASH`: a block a new header chain may start from.
    pub checkpoint: Option<String>,
    /// `--backup-dir`: the directory that mirrors the channel state.
    pub backup_dir: Option<PathBuf>,
    /// `--restore-from`: a backup directory to take the channel state from at this start.
    pub restore_from: Option<PathBuf>,
    /// `--store`: a PostgreSQL connection URL.
    pub store: Option<String>,
    /// `--standby`.
    pub standby: bool,
    /// `--proxy`: the SOCKS5 proxy every outbound connection goes through.
    pub proxy: Option<String>,
    /// `--tor-only`.
    pub tor_only: Option<bool>,
    /// `--decoy-blocks`.
    pub decoy_blocks: Option<u32>,
    /// `--tor-control`.
    pub tor_control: Option<String>,
    /// `--tor-control-password`.
    pub tor_control_password: Option<String>,
}

/// The configuration file's contents.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct FileConfig {
    network: Option<String>,
    bitcoin_peers: Option<Vec<String>>,
    only_bitcoin_peers: Option<bool>,
    filter_quorum: Option<u8>,
    ln_listen: Option<String>,
    api_listen: Option<String>,
    alias: Option<String>,
    log_level: Option<String>,
    wallet_birthday: Option<u32>,
    checkpoint: Option<String>,
    fee_sample_interval: Option<u32>,
    backup_dir: Option<PathBuf>,
    store: Option<String>,
    proxy: Option<String>,
    tor_only: Option<bool>,
    decoy_blocks: Option<u32>,
    tor_control: Option<String>,
    tor_control_password: Option<String>,
    gossip_since_stored_graph: Option<bool>,
    max_graph_channels: Option<usize>,
    gossip_peers: Option<usize>,
    fee_overrides: Option<std::collections::BTreeMap<String, FeeOverrideValue>>,
}

/// The node's configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The Bitcoin network.
    pub network: Network,
    /// Where the node keeps its data (seed, channel state, wallet, chain).
    pub data_dir: PathBuf,
    /// Bitcoin P2P peers serving compact filters.
    pub bitcoin_peers: Vec<PeerAddress>,
    /// Connect only to `bitcoin_peers` (default on regtest; elsewhere peers are also
    /// discovered).
    pub only_bitcoin_peers: bool,
    /// Peers that must agree on filter headers (default 1 on regtest, 2 elsewhere).
    pub filter_quorum: Option<u8>,
    /// Lightning P2P listen address (`None`: do not listen).
    pub ln_listen: Option<SocketAddr>,
    /// Control API listen address.
    pub api_listen: SocketAddr,
    /// Alias announced with the node.
    pub alias: String,
    /// Log level (`RUST_LOG` syntax) when `RUST_LOG` is not set.
    pub log_level: String,
    /// Fixed fee estimates.
    pub fee_overrides: FeeOverrides,
    /// For a wallet restored from an existing seed: the height of a block mined before its
    /// first transaction; the wallet rescans the chain's filters from there. Only used when
    /// the wallet file does not exist yet.
    pub wallet_birthday: Option<u32>,
    /// A block a new header chain may start from, besides the compiled-in start points of
    /// the network (see [`crate::chain::checkpoints`]). Only used when the chain database
    /// has no chain yet.
    pub checkpoint: Option<Checkpoint>,
    /// Blocks between the tip blocks an idle node downloads to sample fees; `None` for the
    /// network's default (see [`crate::chain::fees::default_idle_interval`]).
    pub fee_sample_interval: Option<u32>,
    /// A directory (on other storage) that mirrors every write of the channel state; see
    /// `node::backup`.
    pub backup_dir: Option<PathBuf>,
    /// A backup directory to take the channel state from, into a data directory that holds
    /// only the seed (flag only: a restore is done once).
    pub restore_from: Option<PathBuf>,
    /// Where the channel state and the wallet live: `None` for files in the data directory
    /// (the default), or a PostgreSQL connection URL (see [`crate::postgres`]).
    pub store: Option<String>,
    /// Wait to become the node's writer in the PostgreSQL store instead of refusing to start
    /// while another process is (flag only).
    pub standby: bool,
    /// A SOCKS5 proxy (Tor's SOCKS port) that every outbound connection goes through, Bitcoin
    /// and Lightning alike; it resolves host names and reaches `.onion` addresses.
    pub proxy: Option<SocketAddr>,
    /// Refuse to start unless every outbound connection goes through `proxy`.
    pub tor_only: bool,
    /// Blocks fetched beside each block the wallet needs, from the same peer in the same
    /// request, so that the peer cannot tell which one mattered (default 0 on regtest, 2
    /// elsewhere).
    pub decoy_blocks: u32,
    /// Tor's control port: the node asks it for an onion service forwarding to `ln_listen`.
    pub tor_control: Option<SocketAddr>,
    /// The control port's password; Tor's cookie file is used without one.
    pub tor_control_password: Option<String>,
    /// Ask Lightning peers only for gossip newer than the stored network graph, rather than
    /// for the whole graph at each start (see `node::ldk::gossip`).
    pub gossip_since_stored_graph: bool,
    /// Most channels kept in the network graph from gossip; `None` for the node's default
    /// (100,000: see `node::ldk::gossip`).
    pub max_graph_channels: Option<usize>,
    /// Most Lightning peers asked for gossip at once; `None` for all of them. Zero asks none,
    /// and the network graph then holds the node's own channels only (see
    /// `node::ldk::gossip`).
    pub gossip_peers: Option<usize>,
}

/// The network name used on the command line and in files: regtest, signet, testnet, bitcoin.
pub fn network_name(network: Network) -> &'static str {
    match network {
        Network::Bitcoin => "bitcoin",
        Network::Testnet => "testnet",
        Network::Testnet4 => "testnet4",
        Network::Signet => "signet",
        Network::Regtest => "regtest",
    }
}

/// Parses a network name (also accepts `mainnet`).
pub fn parse_network(name: &str) -> Result<Network, ConfigError> {
    match name {
        "bitcoin" | "mainnet" => Ok(Network::Bitcoin),
        "testnet" => Ok(Network::Testnet),
        "testnet4" => Ok(Network::Testnet4),
        "signet" => Ok(Network::Signet),
        "regtest" => Ok(Network::Regtest),
        other => Err(ConfigError::Invalid {
            what: "network",
            value: other.to_string(),
            reason: "expected regtest, signet, testnet, testnet4 or bitcoin".into(),
        }),
    }
}

/// The base directory holding the per-network data directories and the top-level
/// configuration file: `~/.lightfilter`.
pub fn base_dir() -> Result<PathBuf, ConfigError> {
    let home = std::env::var_os("HOME").ok_or(ConfigError::NoDataDir)?;
    Ok(Path::new(&home).join(".lightfilter"))
}

/// The default data directory for `network`: `~/.lightfilter/<network>`.
pub fn default_data_dir(network: Network) -> Result<PathBuf, ConfigError> {
    Ok(base_dir()?.join(network_name(network)))
}

/// The network to use: `flag` (`--network` or `LIGHTFILTER_NETWORK`) if given, else the
/// top-level configuration's `network` (`~/.lightfilter/lightfilter.toml`), else regtest.
pub fn resolve_network(flag: Option<Network>) -> Result<Network, ConfigError> {
    if let Some(network) = flag {
        return Ok(network);
    }
    let Ok(base) = base_dir() else {
        return Ok(Network::Regtest);
    };
    let path = base.join(CONFIG_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => return Ok(Network::Regtest),
        Err(source) => return Err(ConfigError::Read { path, source }),
    };
    let config: BaseConfig = toml::from_str(&text).map_err(|err| ConfigError::Parse {
        path: path.clone(),
        reason: err.to_string(),
    })?;
    match config.network {
        Some(name) => parse_network(&name).map_err(|err| ConfigError::Parse {
            path,
            reason: err.to_string(),
        }),
        None => Ok(Network::Regtest),
    }
}

/// The default control API address for `network`.
pub fn default_api_listen(network: Network) -> SocketAddr {
    let port = match network {
        Network::Bitcoin => 9737,
        Network::Testnet | Network::Testnet4 => 19737,
        Network::Signet => 39737,
        // Several regtest nodes often share a machine: let the system pick a port; the CLI
        // finds it in the data directory.
        _ => 0,
    };
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The default Lightning listen address for `network`.
pub fn default_ln_listen(network: Network) -> SocketAddr {
    match network {
        Network::Regtest => SocketAddr::from(([127, 0, 0, 1], 0)),
        _ => SocketAddr::from(([0, 0, 0, 0], 9735)),
    }
}

impl Config {
    /// Resolves the configuration: flags win over the data directory's `lightfilter.toml`,
    /// which wins over defaults. The network is chosen by [`resolve_network`].
    pub fn load(args: &ConfigArgs) -> Result<Config, ConfigError> {
        let network = resolve_network(args.network)?;
        let data_dir = match &args.data_dir {
            Some(dir) => dir.clone(),
            None => default_data_dir(network)?,
        };
        let file = read_file(&data_dir.join(CONFIG_FILE))?;
        if let Some(file_network) = &file.network {
            let file_network = parse_network(file_network)?;
            if file_network != network {
                return Err(ConfigError::Invalid {
                    what: "network",
                    value: network_name(network).into(),
                    reason: format!(
                        "{} says this data directory is for {}",
                        data_dir.join(CONFIG_FILE).display(),
                        network_name(file_network)
                    ),
                });
            }
        }
        let peers = if args.bitcoin_peers.is_empty() {
            file.bitcoin_peers.clone().unwrap_or_default()
        } else {
            args.bitcoin_peers.clone()
        };
        let bitcoin_peers = peers
            .iter()
            .map(|peer| {
                peer.parse::<PeerAddress>()
                    .map_err(|reason| ConfigError::Invalid {
                        what: "Bitcoin peer",
                        value: peer.clone(),
                        reason,
                    })
            })
            .collect::<Result<Vec<_>, _>>()?;
        let only_bitcoin_peers = args
            .only_bitcoin_peers
            .or(file.only_bitcoin_peers)
            .unwrap_or(network == Network::Regtest);
        let ln_listen = match args.ln_listen.as_ref().or(file.ln_listen.as_ref()) {
            Some(value) if value == "none" => None,
            Some(value) => Some(parse_socket("Lightning listen address", value)?),
            None => Some(default_ln_listen(network)),
        };
        let api_listen = match args.api_listen.as_ref().or(file.api_listen.as_ref()) {
            Some(value) => parse_socket("API listen address", value)?,
            None => default_api_listen(network),
        };
        let mut fee_overrides = FeeOverrides::new();
        for (name, value) in file.fee_overrides.iter().flatten() {
            let target = parse_target(name).ok_or_else(|| ConfigError::Invalid {
                what: "fee override target",
                value: name.clone(),
                reason: format!(
                    "expected one of {}",
                    ALL_TARGETS.map(target_name).join(", ")
                ),
            })?;
            let sat_per_kw = match value {
                FeeOverrideValue::SatPerKw(rate) => *rate,
                FeeOverrideValue::WithUnit(text) => crate::units::parse_fee_rate(text)
                    .ok()
                    .and_then(|rate| u32::try_from(rate).ok())
                    .ok_or_else(|| ConfigError::Invalid {
                        what: "fee override",
                        value: text.clone(),
                        reason: "expected a rate with its unit, e.g. \"5sat/vb\" or \
                                 \"1250sat/kw\", or a number of sat/kw"
                            .into(),
                    })?,
            };
            fee_overrides.set(target, sat_per_kw);
        }
        let alias = args
            .alias
            .clone()
            .or(file.alias)
            .unwrap_or_else(|| "lightfilter".to_string());
        if alias.len() > 32 {
            return Err(ConfigError::Invalid {
                what: "alias",
                value: alias,
                reason: "at most 32 bytes".into(),
            });
        }
        let checkpoint = args
            .checkpoint
            .clone()
            .or(file.checkpoint)
            .map(|value| {
                value
                    .parse::<Checkpoint>()
                    .map_err(|err| ConfigError::Invalid {
                        what: "checkpoint",
                        value,
                        reason: err.to_string(),
                    })
            })
            .transpose()?;
        if file.max_graph_channels == Some(0) {
            return Err(ConfigError::Invalid {
                what: "max_graph_channels",
                value: "0".into(),
                reason: "a number of channels, at least 1".into(),
            });
        }
        if file.fee_sample_interval == Some(0) {
            return Err(ConfigError::Invalid {
                what: "fee_sample_interval",
                value: "0".into(),
                reason: "a number of blocks, at least 1".into(),
            });
        }
        let backup_dir = args.backup_dir.clone().or(file.backup_dir);
        let store = args.store.clone().or(file.store);
        check_store(
            store.as_deref(),
            backup_dir.is_some(),
            args.restore_from.is_some(),
            args.standby,
        )?;
        let proxy = args
            .proxy
            .as_ref()
            .or(file.proxy.as_ref())
            .map(|value| parse_socket("proxy", value))
            .transpose()?;
        for peer in bitcoin_peers.iter().filter(|peer| is_onion(&peer.host)) {
            let reason = if onion_v3_key(&peer.host).is_none() {
                "not a valid v3 onion address (56 characters and a checksum, then .onion)"
            } else if proxy.is_none() {
                "an onion service is reachable only through Tor: give --proxy with Tor's SOCKS port"
            } else {
                continue;
            };
            return Err(ConfigError::Invalid {
                what: "Bitcoin peer",
                value: peer.to_string(),
                reason: reason.into(),
            });
        }
        let tor_only = args.tor_only.or(file.tor_only).unwrap_or(false);
        if tor_only && proxy.is_none() {
            let refused = match bitcoin_peers.first() {
                Some(peer) => format!("Bitcoin peer {peer}"),
                None => "the network's Bitcoin peers".to_string(),
            };
            return Err(ConfigError::TorOnlyWithoutProxy { refused });
        }
        let tor_control = args
            .tor_control
            .as_ref()
            .or(file.tor_control.as_ref())
            .map(|value| parse_socket("Tor control port", value))
            .transpose()?;
        if let (Some(control), None) = (tor_control, ln_listen) {
            return Err(ConfigError::Invalid {
                what: "Tor control port",
                value: control.to_string(),
                reason: "an onion service forwards to the Lightning listener: --ln-listen none \
                         leaves it nothing to forward to"
                    .into(),
            });
        }
        Ok(Config {
            network,
            data_dir,
            bitcoin_peers,
            only_bitcoin_peers,
            filter_quorum: file.filter_quorum,
            ln_listen,
            api_listen,
            alias,
            log_level: file.log_level.unwrap_or_else(|| "info".to_string()),
            fee_overrides,
            wallet_birthday: args.wallet_birthday.or(file.wallet_birthday),
            checkpoint,
            fee_sample_interval: file.fee_sample_interval,
            backup_dir,
            restore_from: args.restore_from.clone(),
            store,
            standby: args.standby,
            proxy,
            tor_only,
            decoy_blocks: args
                .decoy_blocks
                .or(file.decoy_blocks)
                .unwrap_or_else(|| default_decoy_blocks(network)),
            tor_control,
            tor_control_password: args
                .tor_control_password
                .clone()
                .or(file.tor_control_password),
            gossip_since_stored_graph: file.gossip_since_stored_graph.unwrap_or(false),
            max_graph_channels: file.max_graph_channels,
            gossip_peers: file.gossip_peers,
        })
    }

    /// How outbound connections leave the machine: through `proxy` when one is set.
    pub fn route(&self) -> Route {
        match self.proxy {
            Some(proxy) => Route::Socks5(proxy),
            None => Route::Direct,
        }
    }
}

/// Refuses a `store` that is not a PostgreSQL URL, and the options that only apply to the
/// files store (`backup_dir`, `--restore-from`) or only to PostgreSQL (`--standby`) given with
/// the other.
fn check_store(
    store: Option<&str>,
    backup_dir: bool,
    restore_from: bool,
    standby: bool,
) -> Result<(), ConfigError> {
    let invalid = |what: &'static str, value: &str, reason: &str| ConfigError::Invalid {
        what,
        value: value.to_string(),
        reason: reason.to_string(),
    };
    match store {
        Some(url) if !crate::postgres::is_postgres_url(url) => Err(invalid(
            "store",
            "(not shown: it may hold a password)",
            "expected a PostgreSQL URL, postgresql://USER@HOST:PORT/DATABASE; leave it out to \
             keep the channel state in the data directory",
        )),
        Some(_) if backup_dir => Err(invalid(
            "backup_dir",
            "(with store)",
            "the backup directory mirrors the files store; with the channel state in \
             PostgreSQL, replicate PostgreSQL instead (see the README): drop backup_dir / \
             --backup-dir or store / --store",
        )),
        Some(_) if restore_from => Err(invalid(
            "--restore-from",
            "(with store)",
            "a restore from a backup directory goes into the data directory: restore without \
             --store first, then move the node with `lightfilter store copy --to URL`",
        )),
        None if standby => Err(invalid(
            "--standby",
            "(without store)",
            "a standby waits for the node's writer lock in PostgreSQL: give --store \
             postgresql://… (the same as the writer's)",
        )),
        _ => Ok(()),
    }
}

fn read_file(path: &Path) -> Result<FileConfig, ConfigError> {
    match std::fs::read_to_string(path) {
        Ok(text) => toml::from_str(&text).map_err(|err| ConfigError::Parse {
            path: path.to_path_buf(),
            reason: err.to_string(),
        }),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(FileConfig::default()),
        Err(source) => Err(ConfigError::Read {
            path: path.to_path_buf(),
            source,
        }),
    }
}

fn parse_socket(what: &'static str, value: &str) -> Result<SocketAddr, ConfigError> {
    value.parse().map_err(|_| ConfigError::Invalid {
        what,
        value: value.to_string(),
        reason: "expected IP:PORT, e.g. 127.0.0.1:9735".into(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn network_names_are_the_ones_bitcoin_displays() {
        // The PostgreSQL store records a node's network by its Display name.
        for network in [
            Network::Bitcoin,
            Network::Testnet,
            Network::Testnet4,
            Network::Signet,
            Network::Regtest,
        ] {
            assert_eq!(network_name(network), network.to_string());
        }
    }

    #[test]
    fn flags_win_over_the_file_and_the_file_over_defaults() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "alias = \"from-file\"\nbitcoin_peers = [\"127.0.0.1:18444\"]\n[fee_overrides]\nurgent_on_chain_sweep = 7000\noutput_spending = \"5sat/vb\"\nanchor_channel = \"600sat/kw\"\n",
        )
        .unwrap();
        let mut args = ConfigArgs {
            // Named, so that no top-level configuration of the machine chooses it.
            network: Some(Network::Regtest),
            data_dir: Some(dir.path().to_path_buf()),
            ..ConfigArgs::default()
        };
        let config = Config::load(&args).unwrap();
        assert_eq!(config.alias, "from-file");
        assert_eq!(config.bitcoin_peers.len(), 1);
        assert!(
            config.only_bitcoin_peers,
            "regtest uses only the given peers"
        );
        assert_eq!(
            config
                .fee_overrides
                .get(lightning::chain::chaininterface::ConfirmationTarget::UrgentOnChainSweep),
            Some(7000)
        );
        assert_eq!(
            config
                .fee_overrides
                .get(lightning::chain::chaininterface::ConfirmationTarget::OutputSpendingFee),
            Some(1250)
        );
        assert_eq!(
            config
                .fee_overrides
                .get(lightning::chain::chaininterface::ConfirmationTarget::AnchorChannelFee),
            Some(600)
        );
        args.alias = Some("from-flag".into());
        assert_eq!(Config::load(&args).unwrap().alias, "from-flag");
    }

    #[test]
    fn tor_only_without_a_proxy_names_the_peer_it_refuses() {
        let dir = tempfile::tempdir().unwrap();
        let mut args = ConfigArgs {
            network: Some(Network::Regtest),
            data_dir: Some(dir.path().to_path_buf()),
            bitcoin_peers: vec!["127.0.0.1:18444".into()],
            tor_only: Some(true),
            ..ConfigArgs::default()
        };
        let err = Config::load(&args).unwrap_err();
        assert!(
            matches!(err, ConfigError::TorOnlyWithoutProxy { .. })
                && err.to_string().contains("127.0.0.1:18444")
                && err.to_string().contains("--proxy"),
            "{err}"
        );
        args.proxy = Some("127.0.0.1:9050".into());
        let config = Config::load(&args).unwrap();
        assert!(config.tor_only);
        assert_eq!(
            config.route(),
            Route::Socks5("127.0.0.1:9050".parse().unwrap())
        );
        let onion = "25njqamcweflpvkl73j4szahhihoc4xt3ktcgjnpaingr5yhkenl5sid.onion:38333";
        args.bitcoin_peers = vec![onion.into()];
        assert!(
            Config::load(&args).is_ok(),
            "an onion peer through the proxy"
        );
        args.tor_only = None;
        args.proxy = None;
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains(onion) && err.contains("--proxy"), "{err}");
        args.bitcoin_peers = vec![onion.replacen("25nj", "25nk", 1)];
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("not a valid v3 onion address"), "{err}");
        args.proxy = Some("localhost:9050".into());
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(
            err.contains("proxy") && err.contains("localhost:9050"),
            "{err}"
        );
    }

    #[test]
    fn bad_values_are_named() {
        let dir = tempfile::tempdir().unwrap();
        let args = ConfigArgs {
            // Named, so that no top-level configuration of the machine chooses it.
            network: Some(Network::Regtest),
            data_dir: Some(dir.path().to_path_buf()),
            bitcoin_peers: vec!["localhost".into()],
            ..ConfigArgs::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(
            err.contains("Bitcoin peer") && err.contains("localhost"),
            "{err}"
        );
        std::fs::write(dir.path().join(CONFIG_FILE), "colour = 3\n").unwrap();
        let args = ConfigArgs {
            // Named, so that no top-level configuration of the machine chooses it.
            network: Some(Network::Regtest),
            data_dir: Some(dir.path().to_path_buf()),
            ..ConfigArgs::default()
        };
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("colour"), "{err}");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "[fee_overrides]\noutput_spending = \"5 furlongs\"\n",
        )
        .unwrap();
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("5 furlongs"), "{err}");
        std::fs::write(
            dir.path().join(CONFIG_FILE),
            "max_graph_channels = 0
",
        )
        .unwrap();
        let err = Config::load(&args).unwrap_err().to_string();
        assert!(err.contains("max_graph_channels"), "{err}");
    }

    /// Loads the regtest configuration of a fresh data directory whose file holds `file`.
    fn loaded_with(file: &str) -> Result<Config, ConfigError> {
        let dir = tempfile::tempdir().unwrap();
        let args = ConfigArgs {
            // Named, so that no top-level configuration of the machine chooses it.
            network: Some(Network::Regtest),
            data_dir: Some(dir.path().to_path_buf()),
            ..ConfigArgs::default()
        };
        std::fs::write(dir.path().join(CONFIG_FILE), file).unwrap();
        Config::load(&args)
    }

    #[test]
    fn the_graph_bound_is_read_from_the_file() {
        assert_eq!(loaded_with("").unwrap().max_graph_channels, None);
        assert_eq!(
            loaded_with("max_graph_channels = 25000\n")
                .unwrap()
                .max_graph_channels,
            Some(25_000)
        );
    }

    #[test]
    fn the_gossip_peers_are_read_from_the_file() {
        assert_eq!(loaded_with("").unwrap().gossip_peers, None);
        for peers in [0, 1] {
            let config = loaded_with(&format!("gossip_peers = {peers}\n")).unwrap();
            assert_eq!(config.gossip_peers, Some(peers));
        }
        let err = loaded_with("gossip_peers = -1\n").unwrap_err().to_string();
        assert!(err.contains("gossip_peers"), "{err}");
    }
}

//! The `lightfilter` command line: parses the arguments and dispatches them to the daemon,
//! the client commands (calls to a running daemon's control API), the commands that work on
//! the data directory itself, and the regtest peer and playground. The arguments, the output
//! and the waits live in [`cli`]; the text of every reply in `lightfilter::api::render`.

mod cli;

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use bitcoin::Network;
use clap::{CommandFactory, Parser};
use lightfilter::api::types::{
    Balance, BumpFee, BumpFeeRequest, CancelInvoice, CancelInvoiceRequest, Channels, CloseChannel,
    CloseChannelRequest, Connect, ConnectRequest, CreateInvoice, CreateOffer, Disconnect,
    DisconnectRequest, Empty, FeeRates, Forwards, GetInfo, HoldInvoice, HoldInvoiceRequest,
    InvoiceRequest, Keysend, KeysendRequest, NewAddress, OfferRequest, OpenChannel,
    OpenChannelRequest, Pay, PayRequest, Payments, PaymentsRequest, Peers, SendAmountSpec,
    SendOnchain, SendRequest, SetChannelFee, SetChannelFeeRequest, SettleInvoice,
    SettleInvoiceRequest, SignMessage, SignMessageRequest, Stop, Transactions, Utxos,
    VerifyMessage, VerifyMessageRequest,
};
use lightfilter::api::{parse, render, Client, Method};
use lightfilter::config::{default_data_dir, resolve_network, Config};
use lightfilter::daemon::{self, Daemon, DaemonError, Host};
use lightfilter::tasks;

use cli::args::{Cli, Command, DaemonArgs, StoreCommand};
use cli::output::{Failure, Reply};
use cli::{local, output, progress};

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
            Command::Daemon(args) => run_daemon(cli.network, cli.datadir, *args).await,
            #[cfg(feature = "regtest")]
            Command::RegtestPeer(args) => {
                init_stderr_logging("info");
                cli::regtest::run_regtest_peer(args).await
            }
            #[cfg(feature = "regtest")]
            Command::Playground { keep_running } => {
                init_stderr_logging("warn");
                tasks::install_fatal_panic_hook();
                cli::regtest::run_playground(keep_running).await
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

async fn run_daemon(
    network: Option<Network>,
    data_dir: Option<PathBuf>,
    args: DaemonArgs,
) -> anyhow::Result<()> {
    let config =
        Config::load(&args.config_args(network, data_dir)).context("invalid configuration")?;
    daemon::prepare_data_dir(&config)?;
    let _log = daemon::init_logging(&config)?;
    // A panic anywhere (LDK panics when it cannot persist channel state) ends the process at
    // once, logged: a half-dead daemon would go on answering without following the chain.
    tasks::install_fatal_panic_hook();
    // From here on failures go to the log (standard error and the log file) and are not
    // printed again by `main`.
    run_logged_daemon(config).await.map_err(|err| {
        log::error!("{err:#}");
        anyhow::Error::new(AlreadyReported)
    })
}

/// A failure that was already logged.
#[derive(Debug, thiserror::Error)]
#[error("already reported")]
struct AlreadyReported;

/// Runs the daemon until Ctrl-C, SIGTERM, `lightfilter stop` or a failed task, then shuts
/// it down (see [`Daemon`] for the order).
async fn run_logged_daemon(config: Config) -> Result<(), DaemonError> {
    let daemon = Daemon::start(config, Host::Process).await?;
    daemon.wait_for_stop().await;
    daemon.shutdown().await
}

// ---------------------------------------------------------------------------------------------
// client commands

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
        Err(err) => Err(Failure::invalid(err.to_string())),
    };
    Ok(output::print(json, outcome))
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
                progress::wait_synced(&client, json, timeout.map(Duration::from_secs)).await?
            } else {
                call::<GetInfo>(&client, &Empty {}).await?
            };
            Ok(Reply::new(&info, render::info(&info)))
        }
        Command::NewAddress => {
            let response = call::<NewAddress>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&response, render::address(&response)))
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
            let human = render::sent(&sent, amount, &address);
            let warning = sent.warning.clone();
            Ok(Reply::new(&sent, human).with_warning(warning))
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
            Ok(Reply::new(&connected, render::connected(&connected)))
        }
        Command::Disconnect { pubkey } => {
            let node_id = parse::parse_node_id(&pubkey)?;
            let request = DisconnectRequest {
                node_id: node_id.to_string(),
            };
            let done = call::<Disconnect>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&done, render::disconnected(&done)))
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
            let mut human = render::opening(&opened, amount_sat, &request.node_id);
            if !wait_ready {
                return Ok(Reply::new(&opened, human));
            }
            if !json {
                print!("{human}");
                human.clear();
            }
            let channel = progress::wait_channel_ready(
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
            Ok(Reply::new(&closed, render::closing(&closed)))
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
            Ok(Reply::payment(&payment))
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
            Ok(Reply::payment(&payment))
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
            Ok(Reply::new(&offer, render::offer(&offer)))
        }
        Command::SignMessage { message } => {
            let signed =
                call::<SignMessage>(&client(data_dir)?, &SignMessageRequest { message }).await?;
            Ok(Reply::new(&signed, render::signature(&signed)))
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
            let human = render::verified(&verified, &request.node_id);
            Ok(Reply::new(&verified, human))
        }
        Command::Stop => {
            let stopped = call::<Stop>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&stopped, render::stopping(&stopped)))
        }
        Command::FeeRates => {
            let rates = call::<FeeRates>(&client(data_dir)?, &Empty {}).await?;
            Ok(Reply::new(&rates, render::fee_rates(&rates)))
        }
        Command::Seed { .. } => local::seed_words(data_dir),
        Command::Init { words_file } => {
            local::init_from_words(data_dir, network, words_file.as_deref())
        }
        Command::Store(StoreCommand::Copy(args)) => {
            local::store_copy(data_dir, network, args).await
        }
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
            let warning = bumped.warning.clone();
            Ok(Reply::new(&bumped, render::bumped(&bumped)).with_warning(warning))
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
            Ok(Reply::new(&settled, render::settled(&settled)))
        }
        Command::CancelInvoice { payment_hash } => {
            parse::parse_hash("payment hash", &payment_hash)?;
            let request = CancelInvoiceRequest { payment_hash };
            let cancelled = call::<CancelInvoice>(&client(data_dir)?, &request).await?;
            Ok(Reply::new(&cancelled, render::cancelled(&cancelled)))
        }
        Command::Daemon(_) | Command::Completions { .. } => Err(not_a_client_command()),
        #[cfg(feature = "regtest")]
        Command::RegtestPeer(_) | Command::Playground { .. } => Err(not_a_client_command()),
    }
}

/// The failure of a command that runs here rather than in the daemon.
fn not_a_client_command() -> Failure {
    Failure::invalid("not a client command".into())
}

/// The HTTP timeout of a payment call: the payment's own timeout plus slack.
fn payment_call_timeout(timeout_secs: u64) -> Duration {
    Duration::from_secs(timeout_secs.saturating_add(30))
}

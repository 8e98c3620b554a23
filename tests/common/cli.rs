//! Helpers for the tests that drive the real `lightfilter` binary: an embedded regtest peer on
//! its own runtime, daemons started as child processes on temporary data directories, and
//! CLI invocations whose output is parsed back.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;
use std::time::{Duration, Instant};

use bitcoin::{Address, Amount, FeeRate, Network, OutPoint, ScriptBuf, Txid};
use lightfilter::regtest::{Endpoint, RegtestPeer};
use serde_json::Value;

/// Generous limit for conditions that should hold within moments.
pub const TIMEOUT: Duration = Duration::from_secs(120);

/// The `lightfilter` binary under test.
pub fn lightfilter() -> Command {
    Command::new(env!("CARGO_BIN_EXE_lightfilter"))
}

/// The binary under test on regtest with `--datadir data_dir`, ready for a command.
pub fn lightfilter_in(data_dir: &Path) -> Command {
    let mut command = lightfilter();
    command
        .arg("--network")
        .arg("regtest")
        .arg("--datadir")
        .arg(data_dir);
    command
}

/// Polls `condition` every 200 ms until it holds; panics naming `what` after [`TIMEOUT`].
pub fn wait_until(what: &str, mut condition: impl FnMut() -> bool) {
    wait_for_value(what, || condition().then_some(()));
}

/// Polls `probe` every 200 ms until it gives a value, and returns that value: assert on it
/// rather than on a second read, which may already see a later state. Panics naming `what`
/// after [`TIMEOUT`].
pub fn wait_for_value<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "gave up after {} s waiting for {what}",
            TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// The embedded regtest peer, running on a runtime of its own so the test thread can block on
/// CLI processes.
pub struct Chain {
    runtime: tokio::runtime::Runtime,
    pub peer: RegtestPeer,
}

impl Chain {
    /// A regtest peer on 127.0.0.1 with 101 blocks mined to its faucet.
    pub fn start() -> Chain {
        let _ = env_logger::Builder::from_env(env_logger::Env::default().default_filter_or("warn"))
            .is_test(true)
            .try_init();
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .expect("a runtime for the regtest peer");
        let peer = runtime
            .block_on(RegtestPeer::start(SocketAddr::from(([127, 0, 0, 1], 0))))
            .expect("start the regtest peer");
        peer.mine(101, &peer.faucet_script());
        Chain { runtime, peer }
    }

    /// The peer's P2P address.
    pub fn addr(&self) -> SocketAddr {
        self.peer.addr()
    }

    /// Another endpoint of the peer (same chain and mempool, switches of its own) on
    /// 127.0.0.1: a second Bitcoin peer for a daemon.
    pub fn add_endpoint(&self) -> Endpoint {
        self.runtime
            .block_on(
                self.peer
                    .add_endpoint(SocketAddr::from(([127, 0, 0, 1], 0))),
            )
            .expect("another endpoint of the regtest peer")
    }

    /// Height of the tip.
    pub fn height(&self) -> u32 {
        self.peer.tip().0
    }

    /// Mines `n` blocks to the faucet.
    pub fn mine(&self, n: u32) {
        self.peer.mine(n, &self.peer.faucet_script());
    }

    /// Mines a block at a time (one a second) until `condition` holds; panics naming `what`
    /// after [`TIMEOUT`].
    pub fn mine_until(&self, what: &str, mut condition: impl FnMut() -> bool) {
        let deadline = Instant::now() + TIMEOUT;
        while !condition() {
            assert!(
                Instant::now() < deadline,
                "gave up after {} s of mining waiting for {what}",
                TIMEOUT.as_secs()
            );
            self.mine(1);
            std::thread::sleep(Duration::from_secs(1));
        }
    }

    /// Pays `amount` to `address` from the faucet (not mined).
    pub fn fund(&self, address: &str, amount: Amount) -> Txid {
        self.peer
            .fund(
                &regtest_script(address),
                amount,
                FeeRate::from_sat_per_vb_u32(2),
            )
            .expect("the faucet pays")
            .compute_txid()
    }

    /// Waits until `txid` is in the mempool.
    pub fn wait_in_mempool(&self, txid: &str) {
        let txid = Txid::from_str(txid).expect("a txid");
        wait_until(&format!("{txid} in the mempool"), || {
            self.peer.in_mempool(&txid)
        });
    }
}

/// The output script of a regtest address.
pub fn regtest_script(address: &str) -> ScriptBuf {
    Address::from_str(address)
        .expect("an address")
        .require_network(Network::Regtest)
        .expect("a regtest address")
        .script_pubkey()
}

/// A CLI run's outcome.
#[derive(Debug)]
pub struct Run {
    pub success: bool,
    pub stdout: String,
    pub stderr: String,
}

impl From<Output> for Run {
    fn from(output: Output) -> Run {
        Run {
            success: output.status.success(),
            stdout: String::from_utf8_lossy(&output.stdout).to_string(),
            stderr: String::from_utf8_lossy(&output.stderr).to_string(),
        }
    }
}

/// Runs `lightfilter init --words-file - --json` on `dir` with `words` on standard input.
pub fn init_with_words(dir: &Path, words: &str) -> Run {
    use std::io::Write;
    let mut child = lightfilter_in(dir)
        .args(["init", "--words-file", "-", "--json"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run lightfilter init");
    child
        .stdin
        .take()
        .unwrap()
        .write_all(words.as_bytes())
        .unwrap();
    child
        .wait_with_output()
        .expect("lightfilter init ends")
        .into()
}

/// Runs `lightfilter --network regtest --datadir <data_dir> <args>`.
pub fn cli_in(data_dir: &Path, args: &[&str]) -> Run {
    lightfilter_in(data_dir)
        .args(args)
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run lightfilter")
        .into()
}

/// A daemon running as a child process on a temporary data directory.
pub struct Daemon {
    pub name: &'static str,
    child: Child,
    dir: tempfile::TempDir,
}

impl Daemon {
    /// Starts `lightfilter daemon` against `chain` and waits until its API answers.
    pub fn start(name: &'static str, chain: &Chain) -> Daemon {
        Daemon::start_with(name, chain, &[])
    }

    /// Like [`Daemon::start`] with extra daemon flags.
    pub fn start_with(name: &'static str, chain: &Chain, extra: &[&str]) -> Daemon {
        Daemon::start_adjusted(name, chain, extra, |_| {})
    }

    /// Like [`Daemon::start_with`], letting `adjust` change the command (its environment,
    /// limits) before it is spawned.
    pub fn start_adjusted(
        name: &'static str,
        chain: &Chain,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Daemon {
        Daemon::start_on_adjusted(name, chain.addr(), extra, adjust)
    }

    /// Like [`Daemon::start_with`] with `peer` (e.g. a Bitcoin Core) as the Bitcoin peer.
    pub fn start_on(name: &'static str, peer: SocketAddr, extra: &[&str]) -> Daemon {
        Daemon::start_on_adjusted(name, peer, extra, |_| {})
    }

    /// Like [`Daemon::start`] on a data directory whose configuration file holds `config`.
    pub fn start_configured(name: &'static str, chain: &Chain, config: &str) -> Daemon {
        let dir = Daemon::new_data_dir(name);
        std::fs::write(dir.path().join("lightfilter.toml"), config).expect("write the config");
        Daemon::start_in(name, dir, chain, &[])
    }

    fn new_data_dir(name: &str) -> tempfile::TempDir {
        tempfile::Builder::new()
            .prefix(&format!("lightfilter-{name}-"))
            .tempdir()
            .expect("a temporary data directory")
    }

    fn start_on_adjusted(
        name: &'static str,
        peer: SocketAddr,
        extra: &[&str],
        adjust: impl FnOnce(&mut Command),
    ) -> Daemon {
        let dir = Daemon::new_data_dir(name);
        let mut command = daemon_command(dir.path(), peer, extra);
        adjust(&mut command);
        let child = command.spawn().expect("start lightfilter daemon");
        let mut daemon = Daemon { name, child, dir };
        daemon.wait_ready();
        daemon
    }

    /// Starts `lightfilter daemon` on the data directory `dir` (made by the test, e.g. with
    /// `init`) against `chain` and waits until its API answers.
    pub fn start_in(
        name: &'static str,
        dir: tempfile::TempDir,
        chain: &Chain,
        extra: &[&str],
    ) -> Daemon {
        Daemon::start_in_on(name, dir, chain.addr(), extra)
    }

    /// Like [`Daemon::start_in`] with `peer` (e.g. a Bitcoin Core) as the Bitcoin peer.
    pub fn start_in_on(
        name: &'static str,
        dir: tempfile::TempDir,
        peer: SocketAddr,
        extra: &[&str],
    ) -> Daemon {
        let child = spawn_daemon(dir.path(), peer, extra);
        let mut daemon = Daemon { name, child, dir };
        daemon.wait_ready();
        daemon
    }

    /// Like [`Daemon::start_in`] without waiting for anything.
    pub fn spawn_in(
        name: &'static str,
        dir: tempfile::TempDir,
        chain: &Chain,
        extra: &[&str],
    ) -> Daemon {
        let child = spawn_daemon(dir.path(), chain.addr(), extra);
        Daemon { name, child, dir }
    }

    /// Starts `lightfilter daemon` against `chain` without waiting for anything.
    pub fn spawn(name: &'static str, chain: &Chain, extra: &[&str]) -> Daemon {
        let dir = tempfile::Builder::new()
            .prefix(&format!("lightfilter-{name}-"))
            .tempdir()
            .expect("a temporary data directory");
        let child = spawn_daemon(dir.path(), chain.addr(), extra);
        Daemon { name, child, dir }
    }

    /// Kills the daemon with SIGKILL (no chance to clean up) and waits for it to be gone.
    pub fn kill_hard(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Starts the daemon again on the same data directory, with `extra` daemon flags, and
    /// waits until its API answers.
    pub fn restart(&mut self, chain: &Chain, extra: &[&str]) {
        self.kill_hard();
        self.child = spawn_daemon(self.dir.path(), chain.addr(), extra);
        self.wait_ready();
    }

    /// Stops the daemon with `stop`, waits for it to exit cleanly, and starts it again on the
    /// same data directory (a restart without a crash: [`Daemon::restart`] kills it).
    pub fn stop_and_start(&mut self, chain: &Chain, extra: &[&str]) {
        self.json(&["stop"]);
        assert!(self.wait_exit(), "{} stopped with a failure", self.name);
        self.child = spawn_daemon(self.dir.path(), chain.addr(), extra);
        self.wait_ready();
    }

    /// Like [`Daemon::restart`] with `peer` (e.g. a Bitcoin Core) as the Bitcoin peer.
    pub fn restart_on(&mut self, peer: SocketAddr, extra: &[&str]) {
        self.kill_hard();
        self.child = spawn_daemon(self.dir.path(), peer, extra);
        self.wait_ready();
    }

    /// Kills the daemon (SIGKILL) and starts it again on the same data directory without
    /// waiting for its API: for tests that act while it is still starting.
    pub fn respawn(&mut self, chain: &Chain, extra: &[&str]) {
        self.kill_hard();
        self.child = spawn_daemon(self.dir.path(), chain.addr(), extra);
    }

    /// The data directory.
    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// The control API address the daemon wrote to `api.addr`.
    pub fn api_addr(&self) -> SocketAddr {
        std::fs::read_to_string(self.data_dir().join("api.addr"))
            .expect("api.addr")
            .trim()
            .parse()
            .expect("an address in api.addr")
    }

    /// The daemon's process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits until the daemon's API answers; panics with its log if it exits first.
    pub fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!(
                    "{} exited with {status} while starting:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.data_dir().join("api.addr").exists() && self.is_started() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} did not answer within {} s:\n{}",
                self.name,
                TIMEOUT.as_secs(),
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Whether the API answers and the node finished starting (its chain synced once and
    /// its wallet and channel state are built).
    pub fn is_started(&self) -> bool {
        let run = self.cli(&["getinfo", "--json"]);
        run.success
            && serde_json::from_str::<Value>(&run.stdout)
                .is_ok_and(|info| info["state"] == "running")
    }

    /// Waits until the API answers, while the node may still be starting; panics with its
    /// log if it exits first.
    pub fn wait_api(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        while !(self.data_dir().join("api.addr").exists() && self.cli(&["getinfo"]).success) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("{} exited with {status}:\n{}", self.name, self.log_tail());
            }
            assert!(
                Instant::now() < deadline,
                "{} API did not answer",
                self.name
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Whether the process is still alive.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Waits for the process to exit; returns whether it exited successfully. (If it does
    /// not, the panic prints the log's tail as the daemon is dropped.)
    pub fn wait_exit(&mut self) -> bool {
        wait_for_exit(&mut self.child, self.name).success()
    }

    /// The end of the daemon's log file.
    pub fn log_tail(&self) -> String {
        let log =
            std::fs::read_to_string(self.data_dir().join("lightfilter.log")).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(40)..].join("\n")
    }

    /// The whole log file.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.data_dir().join("lightfilter.log")).unwrap_or_default()
    }

    /// Runs a CLI command against this daemon.
    pub fn cli(&self, args: &[&str]) -> Run {
        cli_in(self.data_dir(), args)
    }

    /// Starts a CLI command against this daemon without waiting for it (output piped).
    pub fn spawn_cli(&self, args: &[&str]) -> KillOnDrop {
        KillOnDrop::new(
            lightfilter_in(self.data_dir())
                .args(args)
                .env("RUST_LOG", "warn")
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run lightfilter"),
        )
    }

    /// Runs a CLI command with `--json`, asserts it succeeded, and parses its output.
    pub fn json(&self, args: &[&str]) -> Value {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.cli(&all);
        assert!(
            run.success,
            "{} {args:?} failed:\nstdout: {}\nstderr: {}\nlog:\n{}",
            self.name,
            run.stdout,
            run.stderr,
            self.log_tail()
        );
        serde_json::from_str(&run.stdout)
            .unwrap_or_else(|err| panic!("{args:?} printed no JSON ({err}): {}", run.stdout))
    }

    /// Runs a CLI command with `--json` that must fail; returns the error's code and message
    /// (checking the `{"error": {"code", "message"}}` shape).
    pub fn json_error(&self, args: &[&str]) -> (String, String) {
        let mut all = args.to_vec();
        all.push("--json");
        let run = self.cli(&all);
        assert!(!run.success, "{args:?} succeeded: {}", run.stdout);
        json_error_of(&run)
    }

    /// Runs a CLI command (human output) that must fail; returns its standard error.
    pub fn fails(&self, args: &[&str]) -> String {
        let run = self.cli(args);
        assert!(!run.success, "{args:?} succeeded: {}", run.stdout);
        assert!(
            run.stdout.is_empty(),
            "{args:?} printed to stdout: {}",
            run.stdout
        );
        assert!(
            run.stderr.starts_with("error: "),
            "{args:?}: {}",
            run.stderr
        );
        run.stderr
    }

    /// Node id.
    pub fn node_id(&self) -> String {
        self.json(&["getinfo"])["node_id"]
            .as_str()
            .expect("a node id")
            .to_string()
    }

    /// `<node id>@<Lightning listen address>`.
    pub fn uri(&self) -> String {
        let info = self.json(&["getinfo"]);
        format!(
            "{}@{}",
            info["node_id"].as_str().unwrap(),
            info["listen_addresses"][0]
                .as_str()
                .expect("a listen address")
        )
    }

    /// Waits until the node is synced to `height`.
    pub fn wait_synced_to(&self, height: u32) {
        wait_until(&format!("{} synced to {height}", self.name), || {
            let info = self.json(&["getinfo"]);
            info["synced"] == true && info["block_height"].as_u64() == Some(u64::from(height))
        });
    }

    /// A fresh address.
    pub fn new_address(&self) -> String {
        self.json(&["newaddress"])["address"]
            .as_str()
            .expect("an address")
            .to_string()
    }

    /// Confirmed on-chain balance.
    pub fn confirmed_sat(&self) -> u64 {
        self.json(&["balance"])["onchain_confirmed_sat"]
            .as_u64()
            .expect("a balance")
    }

    /// Funds the node with `amount` from the faucet and waits until it is confirmed.
    pub fn fund(&self, chain: &Chain, amount: Amount) {
        let before = self.confirmed_sat();
        let address = self.new_address();
        let txid = chain.fund(&address, amount);
        chain.wait_in_mempool(&txid.to_string());
        chain.mine(1);
        wait_until(&format!("{} funded", self.name), || {
            self.confirmed_sat() >= before + amount.to_sat()
        });
    }

    /// The channel with `channel_id`, if listed.
    pub fn channel(&self, channel_id: &str) -> Option<Value> {
        self.json(&["channels"])
            .as_array()
            .expect("a list")
            .iter()
            .find(|channel| channel["channel_id"] == channel_id)
            .cloned()
    }

    /// Opens a channel to `peer` of `sats`, mines 6 blocks and waits until both sides can use
    /// it; returns the channel id.
    pub fn open_usable_channel(&self, chain: &Chain, peer: &Daemon, sats: u64) -> String {
        let opened = self.json(&["openchannel", &peer.uri(), &sats.to_string()]);
        let channel_id = opened["channel_id"].as_str().unwrap().to_string();
        chain.wait_in_mempool(opened["funding_txid"].as_str().unwrap());
        chain.mine(6);
        for side in [self, peer] {
            wait_until(&format!("channel usable on {}", side.name), || {
                side.channel(&channel_id)
                    .is_some_and(|channel| channel["usable"] == true)
            });
        }
        channel_id
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("--- {} log ---\n{}", self.name, self.log_tail());
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts `lightfilter daemon` on `data_dir` with `peer` as its Bitcoin peer.
pub fn spawn_daemon(data_dir: &Path, peer: SocketAddr, extra: &[&str]) -> Child {
    daemon_command(data_dir, peer, extra)
        .spawn()
        .expect("start lightfilter daemon")
}

/// The command [`spawn_daemon`] runs, for a test to adjust before spawning it.
pub fn daemon_command(data_dir: &Path, peer: SocketAddr, extra: &[&str]) -> Command {
    let mut command = lightfilter_in(data_dir);
    command
        .arg("daemon")
        .arg("--bitcoin-peer")
        .arg(peer.to_string())
        .args(extra)
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
}

/// Waits (at most [`TIMEOUT`]) for `child` to exit and returns its status; panics naming
/// `what` if it keeps running.
pub fn wait_for_exit(child: &mut Child, what: &str) -> std::process::ExitStatus {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(status) = child.try_wait().expect("poll the child process") {
            return status;
        }
        assert!(
            Instant::now() < deadline,
            "{what} still running after {} s",
            TIMEOUT.as_secs()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// The `{"error": {"code", "message"}}` printed by a failed `--json` run.
pub fn json_error_of(run: &Run) -> (String, String) {
    let value: Value = serde_json::from_str(&run.stdout)
        .unwrap_or_else(|err| panic!("no JSON error ({err}): {}", run.stdout));
    let code = value["error"]["code"]
        .as_str()
        .unwrap_or_else(|| panic!("no error code: {value}"));
    let message = value["error"]["message"]
        .as_str()
        .unwrap_or_else(|| panic!("no error message: {value}"));
    (code.to_string(), message.to_string())
}

/// A local port that nothing listens on (bound, then released).
pub fn closed_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|listener| listener.local_addr())
        .map(|addr| addr.port())
        .expect("a free port")
}

/// Sends `signal` (e.g. "TERM", "INT") to process `pid`.
pub fn send_signal(pid: u32, signal: &str) {
    let status = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .status()
        .expect("run kill");
    assert!(status.success(), "kill -{signal} {pid} failed");
}

/// Kills a child process when dropped (a failing test leaves no process behind).
pub struct KillOnDrop(Option<Child>);

impl KillOnDrop {
    /// Guards `child`.
    pub fn new(child: Child) -> KillOnDrop {
        KillOnDrop(Some(child))
    }

    /// The child.
    pub fn child(&mut self) -> &mut Child {
        self.0.as_mut().expect("a guarded child")
    }

    /// The child, no longer guarded.
    pub fn release(mut self) -> Child {
        self.0.take().expect("a guarded child")
    }
}

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        if let Some(child) = self.0.as_mut() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// `lightfilter regtest-peer` running as a child process (killed when dropped).
pub struct PeerProcess {
    child: KillOnDrop,
    /// Where it listens.
    pub addr: SocketAddr,
    /// The line it printed on start (`regtest peer listening on ADDR at height H (HASH)`).
    pub first_line: String,
}

impl PeerProcess {
    /// Starts `lightfilter regtest-peer --listen 127.0.0.1:0 <extra>` and waits for the line
    /// saying where it listens.
    pub fn start(extra: &[&str]) -> PeerProcess {
        use std::io::{BufRead, BufReader};
        let mut child = lightfilter()
            .args(["regtest-peer", "--listen", "127.0.0.1:0"])
            .args(extra)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .spawn()
            .expect("start lightfilter regtest-peer");
        let stdout = child.stdout.take().expect("piped stdout");
        let child = KillOnDrop::new(child);
        let (lines_tx, lines) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if lines_tx.send(line).is_err() {
                    break;
                }
            }
        });
        let first_line = lines
            .recv_timeout(TIMEOUT)
            .expect("the peer announces where it listens");
        let addr = first_line
            .strip_prefix("regtest peer listening on ")
            .and_then(|rest| rest.split_whitespace().next())
            .and_then(|addr| addr.parse().ok())
            .unwrap_or_else(|| panic!("unexpected first line: {first_line}"));
        PeerProcess {
            child,
            addr,
            first_line,
        }
    }

    /// The process id.
    pub fn pid(&mut self) -> u32 {
        self.child.child().id()
    }

    /// The process.
    pub fn child(&mut self) -> &mut Child {
        self.child.child()
    }
}

/// The funding output of `node`'s channel `channel_id` of `sats`; panics if it is spent.
pub fn funding_outpoint(chain: &Chain, node: &Daemon, channel_id: &str, sats: u64) -> OutPoint {
    let funding: Txid = node.channel(channel_id).unwrap()["funding_txid"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    (0..2)
        .map(|vout| OutPoint::new(funding, vout))
        .find(|outpoint| {
            chain
                .peer
                .utxo(outpoint)
                .is_some_and(|o| o.value.to_sat() == sats)
        })
        .expect("the funding output is unspent")
}

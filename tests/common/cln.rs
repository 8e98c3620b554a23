//! Core Lightning for the tests that check the node against another implementation: found
//! through `LIGHTNINGD_EXE`, started on regtest in a temporary directory against a test's
//! Bitcoin Core (whose `bitcoin-cli`, next to `BITCOIND_EXE`, its `bcli` plugin drives),
//! listening on a free port of 127.0.0.1, and driven through `lightning-cli`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::bitcoind::{free_port, Bitcoind};
use super::cli::{wait_for_exit, KillOnDrop};

/// The `lightningd` binary named by `LIGHTNINGD_EXE`, if set.
pub fn lightningd_exe() -> Option<PathBuf> {
    std::env::var_os("LIGHTNINGD_EXE")
        .filter(|value| !value.is_empty())
        .map(PathBuf::from)
}

/// What a test that needs Core Lightning prints when `LIGHTNINGD_EXE` is not set.
pub const SKIPPED: &str = "SKIPPED (needs Core Lightning: set LIGHTNINGD_EXE to a lightningd \
                           binary, and BITCOIND_EXE to a bitcoind one)";

/// The `lightningd` binary named by `LIGHTNINGD_EXE`; when it is not set, says on standard
/// error that the calling test is skipped, the same way as
/// [`super::bitcoind::bitcoind_exe_or_skip`] (`.ci/run` counts these lines too).
pub fn lightningd_exe_or_skip() -> Option<PathBuf> {
    let exe = lightningd_exe();
    if exe.is_none() {
        super::say_skipped(SKIPPED);
    }
    exe
}

/// `lightning-cli` for `lightningd`: `LIGHTNING_CLI_EXE` if set, else the one installed
/// beside it, else the one of its build tree (`cli/lightning-cli` next to `lightningd/`).
fn lightning_cli_for(lightningd: &Path) -> PathBuf {
    if let Some(cli) = std::env::var_os("LIGHTNING_CLI_EXE").filter(|value| !value.is_empty()) {
        return PathBuf::from(cli);
    }
    let dir = lightningd.parent().unwrap_or(Path::new("."));
    let beside = dir.join("lightning-cli");
    if beside.exists() {
        return beside;
    }
    dir.join("..").join("cli").join("lightning-cli")
}

/// How long Core Lightning may take to start, stop or answer.
const TIMEOUT: Duration = Duration::from_secs(120);

/// A running `lightningd --network=regtest --developer`, killed when dropped (its log is
/// printed then if the test is failing).
pub struct Lightningd {
    /// A name for failure messages.
    pub name: &'static str,
    exe: PathBuf,
    cli: PathBuf,
    child: Option<Child>,
    dir: tempfile::TempDir,
    port: u16,
    bitcoin_args: Vec<String>,
}

impl Lightningd {
    /// Starts `exe` against `core` (RPC with Core's cookie) and waits until it answers and has
    /// caught up with Core's chain.
    pub fn start(name: &'static str, exe: &Path, core: &Bitcoind) -> Lightningd {
        let bitcoin_cli = crate::common::bitcoind::bitcoind_exe()
            .and_then(|bitcoind| bitcoind.parent().map(|dir| dir.join("bitcoin-cli")))
            .filter(|cli| cli.exists())
            .map(|cli| cli.display().to_string())
            .unwrap_or_else(|| "bitcoin-cli".to_string());
        let bitcoin_args = vec![
            format!("--bitcoin-cli={bitcoin_cli}"),
            format!("--bitcoin-datadir={}", core.datadir().display()),
            "--bitcoin-rpcconnect=127.0.0.1".to_string(),
            format!("--bitcoin-rpcport={}", core.rpc_port()),
        ];
        let dir = tempfile::Builder::new()
            .prefix(&format!("cln-{name}-"))
            .tempdir()
            .expect("a temporary directory");
        let mut node = Lightningd {
            name,
            exe: exe.to_path_buf(),
            cli: lightning_cli_for(exe),
            child: None,
            dir,
            port: free_port(),
            bitcoin_args,
        };
        node.spawn(&[]);
        node.wait_synced_to(core.block_count().expect("Core answers") as u32);
        node
    }

    fn spawn(&mut self, extra: &[&str]) {
        let child = Command::new(&self.exe)
            .arg("--network=regtest")
            .arg("--developer")
            .arg(format!("--lightning-dir={}", self.dir.path().display()))
            .arg(format!("--bind-addr=127.0.0.1:{}", self.port))
            .arg(format!("--log-file={}", self.log_path().display()))
            .arg("--log-level=debug")
            // New blocks and mempool within a second, not the default 30 s.
            .arg("--dev-bitcoind-poll=1")
            .arg("--dev-fast-reconnect")
            // The delay on the node's own outputs after it closes unilaterally: short, so
            // that its sweeps come within a few blocks.
            .arg("--watchtime-blocks=12")
            .args(&self.bitcoin_args)
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|error| panic!("cannot start {}: {error}", self.exe.display()));
        self.child = Some(child);
        self.wait_ready();
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Some(Ok(Some(status))) = self.child.as_mut().map(|child| child.try_wait()) {
                panic!(
                    "{} (lightningd) exited with {status} while starting:\n{}",
                    self.name,
                    self.log_tail()
                );
            }
            if self.rpc("getinfo", &[]).is_ok() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{} (lightningd) did not answer:\n{}",
                self.name,
                self.log_tail()
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Stops it with its `stop` command, waits for it to exit, and starts it again on the same
    /// directory and port with `extra` options.
    pub fn restart(&mut self, extra: &[&str]) {
        let _ = self.rpc("stop", &[]);
        if let Some(mut child) = self.child.take() {
            wait_for_exit(&mut child, self.name);
        }
        self.spawn(extra);
    }

    fn log_path(&self) -> PathBuf {
        self.dir.path().join("lightningd.log")
    }

    /// The end of its log.
    pub fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(self.log_path()).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(80)..].join("\n")
    }

    /// Its whole log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    fn cli_command(&self, method: &str, params: &[&str]) -> Command {
        let mut command = Command::new(&self.cli);
        command
            .arg(format!("--lightning-dir={}", self.dir.path().display()))
            .arg("--network=regtest")
            // Progress notifications would come before the JSON on standard output.
            .arg("--notifications=none")
            .arg("-k")
            .arg(method)
            .args(params)
            .stdin(Stdio::null());
        command
    }

    /// Calls `method` with `key=value` parameters; `Err` carries its error (or the failure to
    /// run `lightning-cli`).
    pub fn rpc(&self, method: &str, params: &[&str]) -> Result<Value, String> {
        let output = self
            .cli_command(method, params)
            .output()
            .map_err(|error| format!("cannot run {}: {error}", self.cli.display()))?;
        let stdout = String::from_utf8_lossy(&output.stdout);
        if !output.status.success() {
            return Err(format!(
                "{method} {params:?}: {stdout}{}",
                String::from_utf8_lossy(&output.stderr)
            ));
        }
        serde_json::from_str(&stdout).map_err(|error| format!("{method}: {error}: {stdout}"))
    }

    /// Like [`Lightningd::rpc`], panicking (with its log) on an error.
    pub fn call(&self, method: &str, params: &[&str]) -> Value {
        self.rpc(method, params).unwrap_or_else(|error| {
            panic!(
                "{} (lightningd): {error}\n--- its log ---\n{}",
                self.name,
                self.log_tail()
            )
        })
    }

    /// Starts `method` without waiting for its answer (e.g. a payment that is held).
    pub fn spawn_call(&self, method: &str, params: &[&str]) -> KillOnDrop {
        KillOnDrop::new(
            self.cli_command(method, params)
                .stdout(Stdio::piped())
                .stderr(Stdio::piped())
                .spawn()
                .expect("run lightning-cli"),
        )
    }

    /// Its node id.
    pub fn node_id(&self) -> String {
        self.call("getinfo", &[])["id"]
            .as_str()
            .expect("a node id")
            .to_string()
    }

    /// `<node id>@127.0.0.1:<port>`.
    pub fn uri(&self) -> String {
        format!("{}@127.0.0.1:{}", self.node_id(), self.port)
    }

    /// The height of the chain it has processed.
    pub fn block_height(&self) -> u32 {
        self.call("getinfo", &[])["blockheight"]
            .as_u64()
            .expect("a block height") as u32
    }

    /// Waits until it has processed the chain up to `height`.
    pub fn wait_synced_to(&self, height: u32) {
        crate::common::cli::wait_until(&format!("{} at height {height}", self.name), || {
            self.block_height() >= height
        });
    }

    /// A fresh P2WPKH address of its wallet.
    pub fn new_address(&self) -> String {
        self.call("newaddr", &["addresstype=bech32"])["bech32"]
            .as_str()
            .expect("an address")
            .to_string()
    }

    /// Its wallet's outputs, confirmed and not: `(confirmed sat, unconfirmed sat)`.
    pub fn wallet_sat(&self) -> (u64, u64) {
        let funds = self.call("listfunds", &[]);
        let mut confirmed = 0;
        let mut unconfirmed = 0;
        for output in funds["outputs"].as_array().expect("outputs") {
            let sat = output["amount_msat"].as_u64().expect("an amount") / 1000;
            match output["status"].as_str() {
                Some("confirmed") => confirmed += sat,
                Some("unconfirmed") => unconfirmed += sat,
                _ => {}
            }
        }
        (confirmed, unconfirmed)
    }

    /// Its channels (`listpeerchannels`).
    pub fn channels(&self) -> Vec<Value> {
        self.call("listpeerchannels", &[])["channels"]
            .as_array()
            .expect("channels")
            .clone()
    }

    /// The channel `channel_id`, if listed.
    pub fn channel(&self, channel_id: &str) -> Option<Value> {
        self.channels()
            .into_iter()
            .find(|channel| channel["channel_id"] == channel_id)
    }
}

impl Drop for Lightningd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
        if std::thread::panicking() {
            // The whole log is kept for the failure's investigation.
            let kept =
                std::env::temp_dir().join(format!("cln-{}-{}.log", self.name, std::process::id()));
            let _ = std::fs::copy(self.log_path(), &kept);
            eprintln!(
                "--- {} (lightningd) log, kept whole in {} ---\n{}",
                self.name,
                kept.display(),
                self.log_tail()
            );
        }
    }
}

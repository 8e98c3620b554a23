//! The onion service for inbound Lightning connections, against a real `tor` (Debian's
//! package) started by the test with its network off (`DisableNetwork 1`: nothing leaves the
//! machine), a control port and cookie authentication. The node creates its service, keeps
//! the key owner-only in its data directory, shows the address in `getinfo`, has the same
//! address after a restart, and adds the service again when Tor restarts. With password
//! authentication instead, the right password gets the service and a wrong one is named as
//! refused. Without `tor` installed the tests say they skipped.

use crate::common;

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::cli::{wait_for_value, Chain, Daemon};
use lightfilter::tor_control::{TorControl, TorControlError};

/// `TOR_EXE`, else `tor` on the `PATH`.
fn tor_exe() -> Option<PathBuf> {
    if let Some(exe) = std::env::var_os("TOR_EXE") {
        return Some(PathBuf::from(exe));
    }
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|dir| Path::new(dir).join("tor"))
        .find(|candidate| candidate.is_file())
}

/// A `tor` with its network off, its control port on an ephemeral port of 127.0.0.1 and
/// cookie authentication (or a password), in a temporary data directory; killed when
/// dropped.
struct Tor {
    child: Child,
    control: std::net::SocketAddr,
    exe: PathBuf,
    dir: tempfile::TempDir,
    auth: Vec<String>,
}

impl Tor {
    fn start(exe: &Path) -> Tor {
        Tor::start_with(exe, vec!["--CookieAuthentication".into(), "1".into()])
    }

    /// A `tor` that asks for `password` on its control port, and takes no cookie.
    fn start_with_password(exe: &Path, password: &str) -> Tor {
        let hashed = Command::new(exe)
            .args(["--quiet", "--hash-password", password])
            .output()
            .expect("tor hashes a password");
        let hashed = String::from_utf8(hashed.stdout).unwrap();
        let hashed = hashed
            .lines()
            .map(str::trim)
            .find(|line| line.starts_with("16:"))
            .expect("a hashed password")
            .to_string();
        Tor::start_with(exe, vec!["--HashedControlPassword".into(), hashed])
    }

    fn start_with(exe: &Path, auth: Vec<String>) -> Tor {
        let dir = tempfile::Builder::new()
            .prefix("lightfilter-tor-")
            .tempdir()
            .unwrap();
        let (child, control) = Tor::spawn(exe, dir.path(), "auto", &auth);
        Tor {
            child,
            control,
            exe: exe.to_path_buf(),
            dir,
            auth,
        }
    }

    /// Stops this `tor` and starts another on the same control port and data directory (a
    /// restart: the onion services it had are gone).
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let port = self.control.port().to_string();
        let (child, control) = Tor::spawn(&self.exe, self.dir.path(), &port, &self.auth);
        self.child = child;
        self.control = control;
    }

    fn spawn(exe: &Path, dir: &Path, port: &str, auth: &[String]) -> (Child, std::net::SocketAddr) {
        let port_file = dir.join("control.port");
        let _ = std::fs::remove_file(&port_file);
        // An empty torrc: everything is on the command line.
        let torrc = dir.join("torrc");
        std::fs::write(&torrc, "").unwrap();
        let child = Command::new(exe)
            .arg("-f")
            .arg(&torrc)
            .args(["--DisableNetwork", "1"])
            .args(["--SocksPort", "0"])
            .args(["--ControlPort", &format!("127.0.0.1:{port}")])
            .arg("--ControlPortWriteToFile")
            .arg(&port_file)
            .args(auth)
            .arg("--DataDirectory")
            .arg(dir.join("data"))
            .args(["--Log", "err stderr"])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start tor");
        // The file holds `PORT=127.0.0.1:NNNNN` once the control port listens.
        let control = wait_for_value("tor's control port", || {
            std::fs::read_to_string(&port_file)
                .ok()?
                .trim()
                .strip_prefix("PORT=")?
                .parse()
                .ok()
        });
        (child, control)
    }
}

impl Drop for Tor {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn onion_address(daemon: &Daemon) -> Option<String> {
    daemon.json(&["getinfo"])["listen_addresses"]
        .as_array()?
        .iter()
        .filter_map(|address| address.as_str())
        .find(|address| address.contains(".onion:"))
        .map(str::to_string)
}

#[test]
fn the_node_creates_its_onion_service_and_keeps_it_across_restarts_of_both() {
    let Some(exe) = tor_exe() else {
        eprintln!(
            "SKIPPED (needs tor: apt-get install tor, or TOR_EXE): \
             the_node_creates_its_onion_service_and_keeps_it_across_restarts_of_both"
        );
        return;
    };
    let tor = Tor::start(&exe);
    let chain = Chain::start();
    let control = tor.control.to_string();
    let mut daemon = Daemon::start_with("onion", &chain, &["--tor-control", &control]);
    let first = onion_address(&daemon).expect("an onion address in listen_addresses");
    let (host, port) = first.rsplit_once(':').unwrap();
    assert_eq!(port, "9735", "{first}");
    assert_eq!(host.len(), 56 + ".onion".len(), "{first}");
    assert!(
        lightfilter::proxy::onion_v3_key(host).is_some(),
        "a valid v3 onion address: {first}"
    );
    let key_file = daemon.data_dir().join("onion_service_key");
    let mode = std::fs::metadata(&key_file)
        .expect("the key is kept in the data directory")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600, "the key file is owner-only");
    let key = std::fs::read_to_string(&key_file).unwrap();
    assert!(key.starts_with("ED25519-V3:"), "{key}");

    daemon.restart(&chain, &["--tor-control", &control]);
    let again = onion_address(&daemon).expect("an onion address after the restart");
    assert_eq!(again, first, "the same address after a restart");
    assert_eq!(
        std::fs::read_to_string(&key_file).unwrap(),
        key,
        "the key was kept"
    );

    // Tor restarts: its services are gone, and the node adds its own again. Tor refuses a
    // second service with the same key while the node holds it.
    let mut tor = tor;
    tor.restart();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refusal = wait_for_value("the node's onion service back on the restarted tor", || {
        runtime.block_on(async {
            let mut control = TorControl::connect(tor.control, None).await.ok()?;
            let target = "127.0.0.1:9".parse().unwrap();
            match control.add_onion(Some(key.trim()), 9735, target).await {
                Err(err @ TorControlError::Refused { .. }) => Some(err.to_string()),
                // Not the node's yet: give it back, or the node cannot take it.
                _ => None,
            }
        })
    });
    assert!(
        refusal.contains("collision"),
        "the key is in use by the node's service: {refusal}"
    );
}

#[test]
fn a_password_opens_tor_to_the_node_and_a_wrong_one_is_named() {
    let Some(exe) = tor_exe() else {
        eprintln!(
            "SKIPPED (needs tor: apt-get install tor, or TOR_EXE): \
             a_password_opens_tor_to_the_node_and_a_wrong_one_is_named"
        );
        return;
    };
    let tor = Tor::start_with_password(&exe, "correct horse");
    let chain = Chain::start();
    let control = tor.control.to_string();
    let daemon = Daemon::start_with(
        "onion-password",
        &chain,
        &[
            "--tor-control",
            &control,
            "--tor-control-password",
            "correct horse",
        ],
    );
    let address = onion_address(&daemon).expect("an onion address in listen_addresses");
    assert!(address.ends_with(".onion:9735"), "{address}");

    // The same through the control client with a wrong password: Tor refuses, and the error
    // says so.
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let refused = runtime
        .block_on(TorControl::connect(tor.control, Some("wrong horse")))
        .expect_err("a wrong password is refused");
    assert!(
        refused.to_string().to_lowercase().contains("auth"),
        "the refusal names authentication: {refused}"
    );
}

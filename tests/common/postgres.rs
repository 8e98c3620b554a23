//! A throwaway PostgreSQL server for the tests of the PostgreSQL store: `initdb` on a temporary
//! directory, `pg_ctl` starting it on a free port on 127.0.0.1 (and a Unix socket in that
//! directory), trust authentication for a superuser named `lightfilter`. Debian's binaries
//! live under `/usr/lib/postgresql/<version>/bin`, off `PATH`; elsewhere the directory `initdb`
//! on `PATH` resolves to is used (`PG_BINDIR` names another directory). As
//! root the server runs as the `postgres` user that Debian's package creates (PostgreSQL
//! refuses to run as root).

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// What a test that needs PostgreSQL prints when its binaries are missing.
pub const SKIPPED: &str =
    "SKIPPED (needs PostgreSQL: install Debian's postgresql package, or set PG_BINDIR)";

/// The directory holding `initdb` and `pg_ctl`: `PG_BINDIR`, else the newest
/// `/usr/lib/postgresql/<version>/bin`, else the directory `initdb` on `PATH` resolves to
/// (past symbolic links, where `psql` is found beside it too).
pub fn bin_dir() -> Option<PathBuf> {
    if let Some(dir) = std::env::var_os("PG_BINDIR").filter(|dir| !dir.is_empty()) {
        return Some(PathBuf::from(dir));
    }
    debian_bin_dir().or_else(path_bin_dir)
}

/// The newest `/usr/lib/postgresql/<version>/bin` holding `initdb`.
fn debian_bin_dir() -> Option<PathBuf> {
    let mut versions: Vec<(u32, PathBuf)> = std::fs::read_dir("/usr/lib/postgresql")
        .ok()?
        .filter_map(Result::ok)
        .filter_map(|entry| {
            let version = entry.file_name().to_string_lossy().parse().ok()?;
            let bin = entry.path().join("bin");
            bin.join("initdb").exists().then_some((version, bin))
        })
        .collect();
    versions.sort();
    versions.pop().map(|(_, bin)| bin)
}

/// The directory of the `initdb` found on `PATH`, symbolic links resolved, if `pg_ctl` is
/// there too.
fn path_bin_dir() -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("initdb"))
        .find(|initdb| initdb.is_file())
        .and_then(|initdb| std::fs::canonicalize(initdb).ok())
        .and_then(|initdb| initdb.parent().map(Path::to_path_buf))
        .filter(|dir| dir.join("pg_ctl").is_file())
}

/// [`bin_dir`]; when there is none (or, as root, no `postgres` user to run the server as),
/// says on standard error that the calling test (named by its thread) is skipped, past the
/// harness's capture so every run shows it.
pub fn bin_dir_or_skip() -> Option<PathBuf> {
    let found = bin_dir().filter(|_| !is_root() || user_exists("postgres"));
    if found.is_none() {
        let test = std::thread::current()
            .name()
            .unwrap_or("a test")
            .to_string();
        let line = format!("\n{SKIPPED}: {test}\n");
        let _ = std::io::stderr().write_all(line.as_bytes());
    }
    found
}

fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

fn user_exists(name: &str) -> bool {
    Command::new("id")
        .arg("-u")
        .arg(name)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|status| status.success())
}

/// A PostgreSQL server of the test's own, stopped (immediately) and removed when dropped.
pub struct Postgres {
    dir: tempfile::TempDir,
    bin: PathBuf,
    port: u16,
}

impl Postgres {
    /// Initialises and starts a server; `None` (with the SKIPPED line) where PostgreSQL is
    /// missing.
    pub fn start() -> Option<Postgres> {
        let bin = bin_dir_or_skip()?;
        let dir = tempfile::Builder::new()
            .prefix("lightfilter-pg-")
            .tempdir()
            .expect("a temporary directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|listener| listener.local_addr())
            .map(|addr| addr.port())
            .expect("a free port");
        let server = Postgres { dir, bin, port };
        if is_root() {
            let status = Command::new("chown")
                .arg("postgres:postgres")
                .arg(server.dir.path())
                .status()
                .expect("run chown");
            assert!(status.success(), "chown the PostgreSQL directory");
        }
        server.run_as_owner(
            "initdb",
            &[
                "-D",
                &server.data().display().to_string(),
                "-U",
                "lightfilter",
                "--auth=trust",
                "--no-sync",
                "-E",
                "UTF8",
            ],
        );
        server.start_again();
        Some(server)
    }

    fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Runs one of the server's programs as the user that owns the server.
    fn run_as_owner(&self, program: &str, args: &[&str]) {
        let exe = self.bin.join(program);
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command.args(["-u", "postgres", "--"]).arg(&exe);
            command
        } else {
            Command::new(&exe)
        };
        let output = command
            .args(args)
            .current_dir(self.dir.path())
            .stdin(Stdio::null())
            .output()
            .unwrap_or_else(|err| panic!("run {}: {err}", exe.display()));
        assert!(
            output.status.success(),
            "{program} {args:?} failed:\n{}\n{}\nserver log:\n{}",
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr),
            self.log()
        );
    }

    /// Starts the server (again) and waits until it takes connections.
    pub fn start_again(&self) {
        let options = format!(
            "-c listen_addresses=127.0.0.1 -p {} -k {}",
            self.port,
            self.dir.path().display()
        );
        self.run_as_owner(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-l",
                &self.dir.path().join("server.log").display().to_string(),
                "-o",
                &options,
                "-w",
                "-t",
                "60",
                "start",
            ],
        );
    }

    /// Stops the server: `fast` ends every session at once (aborting their transactions),
    /// `immediate` as a crash would.
    pub fn stop(&self, mode: &str) {
        self.run_as_owner(
            "pg_ctl",
            &[
                "-D",
                &self.data().display().to_string(),
                "-m",
                mode,
                "-w",
                "stop",
            ],
        );
    }

    /// The connection URL (database `postgres`, user `lightfilter`).
    pub fn url(&self) -> String {
        format!("postgresql://lightfilter@127.0.0.1:{}/postgres", self.port)
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Runs `sql` with `psql` and returns its unaligned, tuples-only output.
    pub fn psql(&self, sql: &str) -> String {
        let output = Command::new(self.bin.join("psql"))
            .args([
                "-X",
                "-At",
                "-v",
                "ON_ERROR_STOP=1",
                "-h",
                "127.0.0.1",
                "-p",
            ])
            .arg(self.port.to_string())
            .args(["-U", "lightfilter", "-d", "postgres", "-c", sql])
            .stdin(Stdio::null())
            .output()
            .expect("run psql");
        assert!(
            output.status.success(),
            "psql {sql:?} failed: {}",
            String::from_utf8_lossy(&output.stderr)
        );
        String::from_utf8_lossy(&output.stdout).trim().to_string()
    }

    /// The server's log.
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }

    /// The server's directory.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Postgres {
    fn drop(&mut self) {
        let data = self.data().display().to_string();
        let mut command = if is_root() {
            let mut command = Command::new("runuser");
            command
                .args(["-u", "postgres", "--"])
                .arg(self.bin.join("pg_ctl"));
            command
        } else {
            Command::new(self.bin.join("pg_ctl"))
        };
        let _ = command
            .args(["-D", &data, "-m", "immediate", "-w", "stop"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
    }
}

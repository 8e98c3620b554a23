//! The network is chosen once: the CLI without `--network` follows `network` in the top-level
//! configuration file (`~/.lightfilter/lightfilter.toml`), here with `HOME` pointing at a
//! temporary directory.

use crate::common;

use std::path::Path;
use std::process::Stdio;

use common::cli::{
    json_error_of, lightfilter, spawn_daemon, wait_for_value, Chain, KillOnDrop, Run,
};
use serde_json::Value;

/// Runs `lightfilter --json <args>` with `home` as `HOME` and neither network nor data
/// directory given.
fn cli_at_home(home: &Path, args: &[&str]) -> Run {
    lightfilter()
        .args(args)
        .arg("--json")
        .env("HOME", home)
        .env_remove("LIGHTFILTER_NETWORK")
        .env_remove("LIGHTFILTER_DATADIR")
        .env("RUST_LOG", "warn")
        .stdin(Stdio::null())
        .output()
        .expect("run lightfilter")
        .into()
}

fn set_network(home: &Path, text: &str) {
    let base = home.join(".lightfilter");
    std::fs::create_dir_all(&base).unwrap();
    std::fs::write(base.join("lightfilter.toml"), text).unwrap();
}

#[test]
fn the_cli_follows_the_top_level_configuration() {
    let home = tempfile::tempdir().unwrap();

    // Nothing says otherwise: regtest.
    let run = cli_at_home(home.path(), &["getinfo"]);
    let (code, message) = json_error_of(&run);
    assert_eq!(code, "daemon_not_running");
    let regtest_dir = home.path().join(".lightfilter").join("regtest");
    assert!(
        message.contains(&regtest_dir.display().to_string()),
        "{message}"
    );

    // signet named, no daemon: the error names the signet data directory.
    set_network(home.path(), "network = \"signet\"\n");
    let run = cli_at_home(home.path(), &["getinfo"]);
    let (code, message) = json_error_of(&run);
    assert_eq!(code, "daemon_not_running");
    let signet_dir = home.path().join(".lightfilter").join("signet");
    assert!(
        message.contains(&signet_dir.display().to_string()),
        "{message}"
    );

    // A flag still wins over the file.
    let run = cli_at_home(home.path(), &["--network", "testnet4", "getinfo"]);
    let (_, message) = json_error_of(&run);
    assert!(message.contains("testnet4"), "{message}");

    // regtest named, with a daemon running in the regtest data directory: reached.
    let chain = Chain::start();
    let daemon = KillOnDrop::new(spawn_daemon(&regtest_dir, chain.addr(), &[]));
    set_network(home.path(), "network = \"regtest\"\n");
    let run = wait_for_value("the daemon's API", || {
        Some(cli_at_home(home.path(), &["getinfo"])).filter(|run| run.success)
    });
    let info: Value = serde_json::from_str(&run.stdout).unwrap();
    assert_eq!(info["network"], "regtest");
    assert_eq!(info["data_dir"], regtest_dir.display().to_string());
    drop(daemon);

    // A top-level file that names no known network is refused, naming the file.
    set_network(home.path(), "network = \"moon\"\n");
    let run = cli_at_home(home.path(), &["getinfo"]);
    assert!(!run.success);
    let (code, message) = json_error_of(&run);
    assert_eq!(code, "invalid_input");
    assert!(
        message.contains("lightfilter.toml") && message.contains("moon"),
        "{message}"
    );
}

//! The systemd unit in `contrib/`: it carries the hardening that lnd's and Core Lightning's
//! units ship, and `systemd-analyze security` rates its exposure as the README says (where
//! `systemd-analyze` is installed; the test says visibly when it is not).

use std::io::Write;
use std::path::Path;
use std::process::Command;

/// The exposure the README states for the unit, and the most this test accepts.
const MAX_EXPOSURE: f64 = 1.2;

fn unit() -> String {
    std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/lightfilter.service"),
    )
    .expect("read contrib/lightfilter.service")
}

#[test]
fn the_service_unit_is_hardened_and_documents_the_backup_directory() {
    let unit = unit();
    for directive in [
        "ProtectSystem=strict",
        "NoNewPrivileges=true",
        "MemoryDenyWriteExecute=true",
        "RestrictSUIDSGID=true",
        "ProtectClock=true",
        "ProtectKernelLogs=true",
        "ProtectHostname=true",
        "ProtectProc=invisible",
        "CapabilityBoundingSet=\n",
        "SystemCallFilter=@system-service",
        "RestrictAddressFamilies=AF_INET AF_INET6 AF_UNIX",
    ] {
        assert!(unit.contains(directive), "the unit lacks {directive:?}");
    }
    assert!(
        unit.contains("systemctl edit lightfilter") && unit.contains("#   ReadWritePaths="),
        "the unit does not say how to allow a backup directory"
    );
}

#[test]
fn systemd_rates_the_service_unit_exposure_as_the_readme_says() {
    let dir = tempfile::tempdir().unwrap();
    // systemd-analyze names the unit after its file.
    let file = dir.path().join("lightfilter.service");
    std::fs::write(&file, unit()).unwrap();
    let output = match Command::new("systemd-analyze")
        .args(["security", "--offline=true", "--no-pager"])
        .arg(&file)
        .output()
    {
        Ok(output) => output,
        Err(err) => {
            let line =
                format!("\nSKIPPED (needs systemd-analyze: {err}): the service unit's exposure\n");
            let _ = std::io::stderr().write_all(line.as_bytes());
            return;
        }
    };
    let text = String::from_utf8_lossy(&output.stdout);
    let exposure: f64 = text
        .lines()
        .find_map(|line| line.split("lightfilter.service: ").nth(1))
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|figure| figure.parse().ok())
        .unwrap_or_else(|| panic!("no exposure level in {text}"));
    assert!(
        exposure <= MAX_EXPOSURE,
        "systemd rates the unit's exposure {exposure}, above {MAX_EXPOSURE}:\n{text}"
    );
}

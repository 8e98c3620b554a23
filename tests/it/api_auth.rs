//! The control API's protection and protocol, against a running daemon: requests without the
//! token or with another one get 401 and do nothing (a refused `stop` leaves the daemon
//! running); the cookie is private; malformed requests get the documented errors.

use crate::common;

use std::time::Duration;

use common::cli::{cli_in, json_error_of, Chain, Daemon};
use common::http::{error_code, raw_request, raw_request_declaring, token};
use lightfilter::api::types::{Empty, GetInfo, NewAddress, Stop};
use lightfilter::api::{ApiToken, Client, ClientError, MAX_BODY_BYTES};

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn requests_without_the_token_get_401_and_do_nothing() {
    let chain = Chain::start();
    let mut daemon = Daemon::start("alice", &chain);
    let addr = daemon.api_addr();
    assert!(addr.ip().is_loopback(), "the API binds {addr} by default");
    let addresses_before = daemon.json(&["utxos"]);

    // No Authorization header, another scheme, a wrong token: 401 before anything happens.
    let right = token(&daemon);
    let wrong = ApiToken::generate();
    for auth in [
        String::new(),
        format!("Authorization: Basic {right}\r\n"),
        format!("Authorization: Bearer {}\r\n", wrong.as_str()),
        format!("Authorization: Bearer {}\r\n", &right[..63]),
    ] {
        for path in ["/v1/stop", "/v1/newaddress", "/v1/nonsense", "/"] {
            let head = format!("POST {path} HTTP/1.1\r\n{}", auth.trim_end());
            let (status, body) = raw_request(addr, head.trim_end(), "{}");
            assert_eq!(status, 401, "{path} with {auth:?}: {body}");
            assert_eq!(error_code(&body), "unauthorized");
        }
    }

    // The typed client with a wrong token.
    let runtime = runtime();
    let client = Client::new(addr, wrong.as_str());
    let err = runtime
        .block_on(client.call::<Stop>(&Empty {}))
        .unwrap_err();
    assert!(matches!(err, ClientError::Unauthorized { .. }), "{err}");
    assert_eq!(err.code(), "unauthorized");
    let err = runtime
        .block_on(client.call::<NewAddress>(&Empty {}))
        .unwrap_err();
    assert_eq!(err.code(), "unauthorized");

    // The CLI with a cookie that does not match: the daemon cannot prove it holds that token,
    // so the CLI does not send it.
    let other = tempfile::tempdir().unwrap();
    std::fs::copy(
        daemon.data_dir().join("api.addr"),
        other.path().join("api.addr"),
    )
    .unwrap();
    std::fs::write(other.path().join("api.cookie"), wrong.as_str()).unwrap();
    let run = cli_in(other.path(), &["stop"]);
    assert!(!run.success);
    assert!(
        run.stderr
            .contains("did not prove it is this data directory's daemon"),
        "{}",
        run.stderr
    );
    let run = cli_in(other.path(), &["stop", "--json"]);
    assert!(!run.success);
    assert_eq!(json_error_of(&run).0, "daemon_not_verified");

    // Nothing was done: the daemon runs, answers the right token, revealed no address.
    std::thread::sleep(Duration::from_millis(500));
    assert!(daemon.is_running(), "a refused stop stopped the daemon");
    let info = runtime
        .block_on(Client::new(addr, &right).call::<GetInfo>(&Empty {}))
        .unwrap();
    assert_eq!(info.network, "regtest");
    assert_eq!(daemon.json(&["utxos"]), addresses_before);
    let first = daemon.json(&["newaddress"]);
    let log = daemon.log();
    // 4 * 4 + 2 refusals: the first 10 of a minute are logged one by one, the rest
    // only counted (a flood of them must not fill the disk).
    assert_eq!(
        log.matches("unauthorized").count(),
        10,
        "the first 10 refused requests are logged once each:\n{log}"
    );
    assert!(first["address"].as_str().unwrap().starts_with("bcrt1"));
}

#[cfg(unix)]
#[test]
fn the_cookie_is_readable_by_its_owner_only() {
    use std::os::unix::fs::PermissionsExt;
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let cookie = daemon.data_dir().join("api.cookie");
    let mode = std::fs::metadata(&cookie).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "api.cookie mode {:o}", mode & 0o777);
    let token = token(&daemon);
    assert_eq!(token.len(), 64);
    assert!(token.bytes().all(|byte| byte.is_ascii_hexdigit()));
}

#[test]
fn malformed_requests_get_the_documented_errors() {
    let chain = Chain::start();
    let daemon = Daemon::start("alice", &chain);
    let addr = daemon.api_addr();
    let auth = format!("Authorization: Bearer {}", token(&daemon));

    let cases = [
        ("POST /v1/nonsense", "{}", 404, "unknown_method"),
        ("POST /v2/getinfo", "{}", 404, "unknown_method"),
        ("GET /v1/getinfo", "", 405, "method_not_allowed"),
        ("POST /v1/getinfo", "{not json", 400, "invalid_request"),
        ("POST /v1/getinfo", "{\"extra\": 1}", 400, "invalid_request"),
        (
            "POST /v1/invoice",
            "{\"amount_msat\": \"ten\"}",
            400,
            "invalid_request",
        ),
        (
            "POST /v1/closechannel",
            "{\"channel_id\": \"abab\"}",
            400,
            "invalid_input",
        ),
        (
            "POST /v1/send",
            "{\"address\": \"x\", \"amount\": {\"sat\": 2100000000000001}}",
            400,
            "invalid_input",
        ),
        (
            "POST /v1/pay",
            "{\"destination\": \"lnbcrt1x\", \"timeout_secs\": 0}",
            400,
            "invalid_input",
        ),
        ("POST /v1/payments", "{\"limit\": 0}", 400, "invalid_input"),
        ("POST /v1/payments", "{\"page\": 2}", 400, "invalid_request"),
    ];
    for (line, body, status, code) in cases {
        let (got_status, got_body) = raw_request(addr, &format!("{line} HTTP/1.1\r\n{auth}"), body);
        assert_eq!(got_status, status, "{line} {body}: {got_body}");
        assert_eq!(error_code(&got_body), code, "{line} {body}");
    }
    // A body declared larger than any request is refused before it is read.
    let (status, body) = raw_request_declaring(
        addr,
        &format!("POST /v1/signmessage HTTP/1.1\r\n{auth}"),
        MAX_BODY_BYTES + 1,
        "",
    );
    assert_eq!(status, 413, "{body}");
    assert_eq!(error_code(&body), "payload_too_large");

    // An empty body is an empty request; the answer is JSON.
    let (status, body) = raw_request(addr, &format!("POST /v1/getinfo HTTP/1.1\r\n{auth}"), "");
    assert_eq!(status, 200, "{body}");
    let info: serde_json::Value = serde_json::from_str(&body).unwrap();
    assert_eq!(info["network"], "regtest");
}

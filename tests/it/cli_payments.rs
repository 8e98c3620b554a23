//! `payments` pages through the record, oldest first, with `--offset` and `--limit`, through
//! the real binary; a limit of zero is refused.

use crate::common;

use common::cli::{Chain, Daemon};
use serde_json::Value;

fn hashes(list: &Value) -> Vec<String> {
    list.as_array()
        .expect("a list of payments")
        .iter()
        .map(|p| p["payment_hash"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn payments_come_in_pages() {
    let chain = Chain::start();
    let daemon = Daemon::start("pages", &chain);
    let mut created = Vec::new();
    for n in 1..=4 {
        let invoice = daemon.json(&["invoice", &format!("{n}000"), "--description", "page"]);
        created.push(invoice["payment_hash"].as_str().unwrap().to_string());
    }
    let all = hashes(&daemon.json(&["payments"]));
    assert_eq!(all.len(), 4);
    let mut sorted_created = created.clone();
    sorted_created.sort();
    let mut sorted_all = all.clone();
    sorted_all.sort();
    assert_eq!(sorted_all, sorted_created);

    let page = hashes(&daemon.json(&["payments", "--offset", "1", "--limit", "2"]));
    assert_eq!(page, all[1..3].to_vec());
    assert_eq!(
        hashes(&daemon.json(&["payments", "--offset", "3"])),
        all[3..].to_vec()
    );
    assert!(hashes(&daemon.json(&["payments", "--offset", "10"])).is_empty());

    let refused = daemon.fails(&["payments", "--limit", "0"]);
    assert!(refused.contains("--limit"), "{refused}");
    assert_eq!(hashes(&daemon.json(&["payments"])), all, "nothing changed");
}

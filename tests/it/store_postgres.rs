//! The PostgreSQL store on its own, against a real PostgreSQL: what LDK's key-value traits
//! promise (reads, writes, removals, lists; writes to a key in order), one writer at a time,
//! and fencing: a writer whose session was cut while a standby took over, or whose epoch is no
//! longer the node's, commits nothing more.

use crate::common;

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bitcoin::secp256k1::{PublicKey, Secp256k1, SecretKey};
use bitcoin::Network;
use common::postgres::Postgres;
use lightfilter::postgres::{PgError, PgOptions, PgStore, Role};
use lightning::util::persist::{KVStore, KVStoreSync, MigratableKVStore};

fn node(byte: u8) -> PublicKey {
    PublicKey::from_secret_key(
        &Secp256k1::new(),
        &SecretKey::from_slice(&[byte; 32]).unwrap(),
    )
}

fn options(server: &Postgres, node_id: PublicKey, standby: bool) -> PgOptions {
    PgOptions {
        url: server.url(),
        node_id,
        network: Network::Regtest,
        standby,
    }
}

/// Waits (at most 30 s) until `probe` gives a value, and returns it.
async fn wait_for<T>(what: &str, mut probe: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < deadline, "gave up waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_keeps_keys_as_ldk_expects() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let store = PgStore::open_and_wait(&options(&server, node(1), false))
        .await
        .unwrap();
    // Called from inside the runtime, as LDK's background processor and persister do.
    KVStoreSync::write(&store, "monitors", "", "a", vec![1, 2, 3]).unwrap();
    KVStoreSync::write(&store, "monitor_updates", "a", "1", vec![0xff, 0x00]).unwrap();
    KVStoreSync::write(&store, "", "", "manager", Vec::new()).unwrap();
    assert_eq!(
        KVStoreSync::read(&store, "monitors", "", "a").unwrap(),
        vec![1, 2, 3]
    );
    assert_eq!(
        KVStoreSync::read(&store, "", "", "manager").unwrap(),
        Vec::<u8>::new()
    );
    let missing = KVStoreSync::read(&store, "monitors", "", "b").unwrap_err();
    assert_eq!(missing.kind(), lightning::io::ErrorKind::NotFound);
    assert_eq!(
        KVStoreSync::list(&store, "monitor_updates", "a").unwrap(),
        vec!["1".to_string()]
    );
    assert!(KVStoreSync::list(&store, "nothing", "").unwrap().is_empty());
    KVStoreSync::remove(&store, "monitor_updates", "a", "1", false).unwrap();
    KVStoreSync::remove(&store, "monitor_updates", "a", "1", false).unwrap();
    assert!(KVStoreSync::list(&store, "monitor_updates", "a")
        .unwrap()
        .is_empty());
    let mut all = store.list_all_keys().unwrap();
    all.sort();
    assert_eq!(
        all,
        vec![
            ("".into(), "".into(), "manager".into()),
            ("monitors".into(), "".into(), "a".into())
        ]
    );

    // The asynchronous trait: writes to one key, issued in order and awaited out of order,
    // leave the last one.
    let writes: Vec<_> = (0..50u8)
        .map(|n| KVStore::write(&store, "", "", "counter", vec![n]))
        .collect();
    for write in writes.into_iter().rev() {
        write.await.unwrap();
    }
    assert_eq!(
        KVStore::read(&store, "", "", "counter").await.unwrap(),
        vec![49]
    );

    // Another node's keys are its own.
    drop(store);
    let other = PgStore::open_and_wait(&options(&server, node(2), false))
        .await
        .unwrap();
    assert!(other.list_all_keys().unwrap().is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_writer_and_a_standby_that_waits_for_it() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let primary = PgStore::open_and_wait(&options(&server, node(1), false))
        .await
        .unwrap();
    // A second writer is refused, naming the holder.
    let refused = PgStore::open_and_wait(&options(&server, node(1), false))
        .await
        .err()
        .expect("a second writer is refused");
    assert!(matches!(refused, PgError::Busy { .. }), "{refused}");
    assert!(refused.to_string().contains("--standby"), "{refused}");

    // A standby waits, saying for whom.
    let (status, opened) = PgStore::open(&options(&server, node(1), true)).unwrap();
    let standby = tokio::spawn(opened);
    let holder = wait_for("the standby waiting", || match status.status().role {
        Role::Waiting { holder } => Some(holder),
        _ => None,
    })
    .await;
    assert!(
        holder.contains(&format!("pid {}", std::process::id())),
        "{holder}"
    );
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert!(!standby.is_finished(), "the standby took over a held lock");

    // The writer stops: the standby takes over at the next epoch.
    KVStoreSync::write(&primary, "", "", "manager", vec![7]).unwrap();
    let first_epoch = match primary.status().role {
        Role::Writer { epoch } => epoch,
        other => panic!("{other:?}"),
    };
    drop(primary);
    let took_over = Instant::now();
    let standby = standby.await.unwrap().unwrap();
    assert!(took_over.elapsed() < Duration::from_secs(5));
    assert_eq!(
        standby.status().role,
        Role::Writer {
            epoch: first_epoch + 1
        }
    );
    assert_eq!(
        KVStoreSync::read(&standby, "", "", "manager").unwrap(),
        vec![7]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_writer_whose_session_was_cut_writes_nothing_more() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let primary = PgStore::open_and_wait(&options(&server, node(1), false))
        .await
        .unwrap();
    let told = Arc::new(AtomicUsize::new(0));
    let told_hook = told.clone();
    primary.on_lost(move |_| {
        told_hook.fetch_add(1, Ordering::SeqCst);
    });
    KVStoreSync::write(&primary, "monitors", "", "a", vec![1]).unwrap();
    let (_, opened) = PgStore::open(&options(&server, node(1), true)).unwrap();
    let standby = tokio::spawn(opened);

    // Cut the primary's session: the one holding the node's advisory lock (not the one the
    // standby may hold for a moment while it creates the tables).
    let key = lightfilter::postgres::writer::lock_key(&node(1));
    let cut = server.psql(&format!(
        "SELECT count(pg_terminate_backend(pid)) FROM pg_locks \
         WHERE locktype = 'advisory' AND granted AND objsubid = 1 \
         AND classid::bigint = {} AND objid::bigint = {}",
        (key >> 32) & 0xffff_ffff,
        key & 0xffff_ffff
    ));
    assert_eq!(cut, "1");
    let standby = standby.await.unwrap().unwrap();
    assert!(matches!(standby.status().role, Role::Writer { .. }));

    // The old writer's write is refused, it says it is lost, and the store holds the
    // standby's view.
    let refused = KVStoreSync::write(&primary, "monitors", "", "a", vec![2]).unwrap_err();
    assert!(refused.to_string().contains("lost"), "{refused}");
    assert!(matches!(primary.status().role, Role::Lost { .. }));
    assert!(KVStoreSync::remove(&primary, "monitors", "", "a", false).is_err());
    assert!(KVStore::write(&primary, "monitors", "", "a", vec![3])
        .await
        .is_err());
    assert_eq!(told.load(Ordering::SeqCst), 1, "the lost hook ran once");
    assert_eq!(
        KVStoreSync::read(&standby, "monitors", "", "a").unwrap(),
        vec![1]
    );
    KVStoreSync::write(&standby, "monitors", "", "a", vec![4]).unwrap();
    assert_eq!(
        server.psql("SELECT encode(value, 'hex') FROM lightfilter_kv WHERE key = 'a'"),
        "04"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_write_at_an_epoch_that_is_no_longer_the_nodes_is_refused() {
    let Some(server) = Postgres::start() else {
        return;
    };
    let primary = PgStore::open_and_wait(&options(&server, node(1), false))
        .await
        .unwrap();
    KVStoreSync::write(&primary, "", "", "manager", vec![1]).unwrap();
    // Another writer's raise of the epoch, done by hand: the session and its lock are still
    // there, but the fence in the write refuses it.
    server.psql("UPDATE lightfilter_writer SET epoch = epoch + 1");
    let refused = KVStoreSync::write(&primary, "", "", "manager", vec![2]).unwrap_err();
    assert!(refused.to_string().contains("epoch"), "{refused}");
    assert_eq!(
        server.psql("SELECT encode(value, 'hex') FROM lightfilter_kv WHERE key = 'manager'"),
        "01"
    );
    assert!(matches!(primary.status().role, Role::Lost { .. }));
}

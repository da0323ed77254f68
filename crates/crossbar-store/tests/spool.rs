//! The usage writer loses no record to load or to a store outage: what the queue cannot take
//! and what the store refuses goes to the spool file, which reaches the store once it takes
//! records again, or at the next start; exactly once each, while the process lives.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crossbar_store::{KeyRecord, SqlStore, Store, UsageRecord, UsageWriter, WriterSettings};
use futures::future::BoxFuture;

/// A store that refuses usage records while `down`.
struct Flaky {
    inner: SqlStore,
    down: AtomicBool,
}

type R<T> = crossbar_store::Result<T>;

impl Store for Flaky {
    fn backend(&self) -> &'static str {
        self.inner.backend()
    }
    fn insert_usage<'a>(&'a self, records: &'a [UsageRecord]) -> BoxFuture<'a, R<()>> {
        if self.down.load(Ordering::SeqCst) {
            return Box::pin(async {
                Err(crossbar_store::StoreError::Invalid(
                    "the store is down".into(),
                ))
            });
        }
        self.inner.insert_usage(records)
    }
    fn usage_since(&self, since_ms: i64, limit: u32) -> BoxFuture<'_, R<Vec<UsageRecord>>> {
        self.inner.usage_since(since_ms, limit)
    }
    fn key_spend_since<'a>(&'a self, key_id: &'a str, since_ms: i64) -> BoxFuture<'a, R<u64>> {
        self.inner.key_spend_since(key_id, since_ms)
    }
    fn delete_usage_before(&self, before_ms: i64, limit: u32) -> BoxFuture<'_, R<u64>> {
        self.inner.delete_usage_before(before_ms, limit)
    }
    fn create_key<'a>(&'a self, key: &'a KeyRecord) -> BoxFuture<'a, R<()>> {
        self.inner.create_key(key)
    }
    fn list_keys(&self) -> BoxFuture<'_, R<Vec<KeyRecord>>> {
        self.inner.list_keys()
    }
    fn key_by_hash<'a>(&'a self, hash: &'a str) -> BoxFuture<'a, R<Option<KeyRecord>>> {
        self.inner.key_by_hash(hash)
    }
    fn revoke_key<'a>(&'a self, id_or_name: &'a str, at_ms: i64) -> BoxFuture<'a, R<bool>> {
        self.inner.revoke_key(id_or_name, at_ms)
    }
    fn has_keys(&self) -> BoxFuture<'_, R<bool>> {
        self.inner.has_keys()
    }
}

fn record(i: usize) -> UsageRecord {
    UsageRecord {
        request_id: format!("req_{i}"),
        time_ms: i64::try_from(i).unwrap(),
        api: "chat".to_owned(),
        model: "gpt-4o".to_owned(),
        cost_pusd: 1_000,
        ..UsageRecord::default()
    }
}

async fn store(dir: &std::path::Path) -> Arc<Flaky> {
    let url = format!("sqlite://{}?mode=rwc", dir.join("usage.db").display());
    Arc::new(Flaky {
        inner: SqlStore::open(&url).await.unwrap(),
        down: AtomicBool::new(false),
    })
}

fn settings(dir: &std::path::Path, capacity: usize) -> WriterSettings {
    WriterSettings {
        capacity,
        batch: 8,
        spool: Some(dir.join("usage.spool")),
        ..WriterSettings::default()
    }
}

/// Every request id in the store, sorted, so a lost or doubled record shows.
async fn ids(store: &Flaky) -> Vec<String> {
    let mut ids: Vec<String> = store
        .usage_since(0, 100_000)
        .await
        .unwrap()
        .into_iter()
        .map(|r| r.request_id)
        .collect();
    ids.sort();
    ids
}

fn expected(n: usize) -> Vec<String> {
    let mut ids: Vec<String> = (0..n).map(|i| format!("req_{i}")).collect();
    ids.sort();
    ids
}

#[tokio::test]
async fn a_full_queue_spools_instead_of_dropping() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    let writer = UsageWriter::spawn(store.clone(), settings(dir.path(), 1));
    // A burst far past the queue's one slot, faster than the writer drains it.
    for i in 0..500 {
        assert!(writer.submit(record(i)));
    }
    assert_eq!(writer.dropped(), 0);
    assert!(writer.spooled() > 0, "the burst should have overflowed");
    writer.flush_and_stop().await;
    assert_eq!(ids(&store).await, expected(500));
}

#[tokio::test]
async fn records_wait_in_the_spool_while_the_store_is_down() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    store.down.store(true, Ordering::SeqCst);
    let writer = UsageWriter::spawn(store.clone(), settings(dir.path(), 1_000));
    for i in 0..50 {
        assert!(writer.submit(record(i)));
    }
    // The writer tries, fails (twice), and spools.
    for _ in 0..100 {
        if writer.spooled() == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(writer.spooled(), 50);
    assert!(ids(&store).await.is_empty());
    store.down.store(false, Ordering::SeqCst);
    for _ in 0..200 {
        if ids(&store).await.len() == 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(ids(&store).await, expected(50));
    assert_eq!(writer.spooled(), 0);
    writer.flush_and_stop().await;
    assert_eq!(writer.dropped(), 0);
}

#[tokio::test]
async fn a_spool_left_by_a_dead_process_is_written_at_the_next_start() {
    let dir = tempfile::tempdir().unwrap();
    let store = store(dir.path()).await;
    store.down.store(true, Ordering::SeqCst);
    let writer = UsageWriter::spawn(store.clone(), settings(dir.path(), 1_000));
    for i in 0..20 {
        assert!(writer.submit(record(i)));
    }
    // Stopping with the store still down keeps them on disk.
    writer.flush_and_stop().await;
    assert!(ids(&store).await.is_empty());
    assert!(
        std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("usage.spool"))
    );
    store.down.store(false, Ordering::SeqCst);
    let next = UsageWriter::spawn(store.clone(), settings(dir.path(), 1_000));
    next.flush_and_stop().await;
    assert_eq!(ids(&store).await, expected(20));
    assert!(
        !std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .any(|e| e.file_name().to_string_lossy().starts_with("usage.spool"))
    );
}

/// Two writers in one directory (replicas started in one working directory): each spools to
/// its own file, and neither takes the other's while the other lives; once it is gone, the
/// survivor writes its records back, each exactly once.
#[tokio::test]
async fn writers_sharing_a_directory_never_take_a_live_ones_spool() {
    let dir = tempfile::tempdir().unwrap();
    let down = store(dir.path()).await;
    down.down.store(true, Ordering::SeqCst);
    let up = Arc::new(Flaky {
        inner: down.inner.clone(),
        down: AtomicBool::new(false),
    });
    let first = UsageWriter::spawn(down.clone(), settings(dir.path(), 1_000));
    for i in 0..20 {
        assert!(first.submit(record(i)));
    }
    for _ in 0..100 {
        if first.spooled() == 20 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(first.spooled(), 20);
    // A second writer, whose store is up, starts beside the first and spools nothing of its own.
    let second = UsageWriter::spawn(up.clone(), settings(dir.path(), 1_000));
    second.submit(record(100));
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        ids(&up).await,
        ["req_100"],
        "the live writer's spool is its own"
    );
    second.flush_and_stop().await;
    // The first stops with its store still down: its records stay on disk, its lock is let go.
    first.flush_and_stop().await;
    assert_eq!(ids(&up).await, ["req_100"]);
    // The next writer to start finds them and writes them back once.
    let third = UsageWriter::spawn(up.clone(), settings(dir.path(), 1_000));
    third.flush_and_stop().await;
    let mut want = expected(20);
    want.push("req_100".to_owned());
    want.sort();
    assert_eq!(ids(&up).await, want);
    let left: Vec<String> = std::fs::read_dir(dir.path())
        .unwrap()
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("usage.spool"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}

//! One suite, run against SQLite (a fresh file per test) and, when
//! `CROSSBAR_TEST_POSTGRES_URL` names a server, against PostgreSQL (a fresh database per test).

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::sync::Arc;
use std::time::Duration;

use common::suite;
use crossbar_store::{
    AttemptRecord, KeyLimits, KeyRecord, ResponseStore as _, RetentionJob, SqlStore, Store,
    UsageRecord, UsageTags, UsageWriter, WriterSettings, now_ms, spawn_retention, stored_response,
};
use futures::future::BoxFuture;

async fn sqlite() -> SqlStore {
    common::sqlite("crossbar_store_test").await
}

async fn postgres() -> Option<SqlStore> {
    common::postgres("crossbar_test").await
}

fn record(request_id: &str, time_ms: i64, key: Option<&str>, cost_pusd: u64) -> UsageRecord {
    UsageRecord {
        request_id: request_id.to_owned(),
        time_ms,
        key_id: key.map(str::to_owned),
        api: "chat".to_owned(),
        model: "gpt-4o".to_owned(),
        route: Some("default".to_owned()),
        deployment: Some("gpt-4o@azure-eastus".to_owned()),
        provider: Some("azure-eastus".to_owned()),
        cloud: Some("azure".to_owned()),
        region: Some("eastus".to_owned()),
        stream: true,
        status: 200,
        error: None,
        input_tokens: 1200,
        cached_input_tokens: 1024,
        cache_write_tokens: 0,
        output_tokens: 300,
        reasoning_tokens: 64,
        cost_pusd,
        latency_ms: 812,
        ttft_ms: Some(140),
        overhead_ms: 2,
        attempts: vec![
            AttemptRecord {
                deployment: "gpt-4o@openai".to_owned(),
                provider: "openai".to_owned(),
                cloud: "openai".to_owned(),
                region: "global".to_owned(),
                outcome: "error".to_owned(),
                status: Some(429),
                latency_ms: 20,
                hedge: false,
                reason: Some("rate limited".to_owned()),
                cost_pusd: 0,
            },
            AttemptRecord {
                deployment: "gpt-4o@azure-eastus".to_owned(),
                provider: "azure-eastus".to_owned(),
                cloud: "azure".to_owned(),
                region: "eastus".to_owned(),
                outcome: "ok".to_owned(),
                status: None,
                latency_ms: 140,
                hedge: true,
                reason: None,
                cost_pusd,
            },
        ],
        tags: UsageTags {
            team_id: Some("team-payments".to_owned()),
            end_user: Some("user-42".to_owned()),
            cache_hit: false,
            guardrails: Some("email:mask:1".to_owned()),
        },
    }
}

fn key(id: &str, name: Option<&str>, hash: &str) -> KeyRecord {
    KeyRecord {
        id: id.to_owned(),
        name: name.map(str::to_owned),
        hash: hash.to_owned(),
        prefix: "cb-abcd".to_owned(),
        created_ms: 1_700_000_000_000,
        revoked_ms: None,
        models: vec!["gpt-4o*".to_owned()],
        routes: vec![],
        limits: KeyLimits {
            rpm: Some(60),
            tpm: None,
            budget_day_pusd: Some(5_000_000_000_000),
            budget_month_pusd: None,
            budget_total_pusd: Some(100_000_000_000_000),
        },
        team_id: None,
    }
}

suite!(
    usage_records_round_trip_every_field,
    spend_is_summed_exactly_per_key_and_window,
    keys_are_found_by_hash_listed_and_revoked,
    retention_deletes_only_old_records_in_batches,
    retention_expires_old_stored_responses_with_usage,
    writer_flushes_everything_queued_on_stop,
    a_request_is_recorded_once_however_often_it_is_written,
);

/// A spool replayed twice (a crash between the store's commit and the file's removal, or two
/// replicas claiming one file) writes each request once: the first copy stays.
async fn a_request_is_recorded_once_however_often_it_is_written(store: SqlStore) {
    let first = record("req_once", 1_000, Some("key_a"), 500);
    let mut again = first.clone();
    again.cost_pusd = 999;
    store
        .insert_usage(&[first.clone(), record("req_other", 2_000, Some("key_a"), 7)])
        .await
        .unwrap();
    // Again, alone and in one batch with itself and a new record.
    store
        .insert_usage(std::slice::from_ref(&again))
        .await
        .unwrap();
    store
        .insert_usage(&[
            again.clone(),
            record("req_new", 3_000, Some("key_a"), 11),
            again,
        ])
        .await
        .unwrap();
    let back = store.usage_since(0, 10).await.unwrap();
    let ids: Vec<&str> = back.iter().map(|r| r.request_id.as_str()).collect();
    assert_eq!(ids, ["req_once", "req_other", "req_new"]);
    assert_eq!(back[0], first);
    assert_eq!(
        store.key_spend_since("key_a", 0).await.unwrap(),
        500 + 7 + 11
    );
}

async fn usage_records_round_trip_every_field(store: SqlStore) {
    let mut failed = record("req_2", 2_000, None, 0);
    failed.status = 502;
    failed.error = Some("upstream closed the connection".to_owned());
    failed.ttft_ms = None;
    failed.stream = false;
    failed.deployment = None;
    failed.attempts.clear();
    let records = vec![record("req_1", 1_000, Some("key_a"), 4_812_500_000), failed];
    store.insert_usage(&records).await.unwrap();
    let back = store.usage_since(0, 10).await.unwrap();
    assert_eq!(back, records);
    assert_eq!(store.usage_since(1_500, 10).await.unwrap(), records[1..]);
    assert_eq!(store.usage_since(0, 1).await.unwrap(), records[..1]);
}

async fn spend_is_summed_exactly_per_key_and_window(store: SqlStore) {
    // Costs past 2^53 picodollars would lose precision as floats: sums must stay integers.
    let big = 9_007_199_254_740_993;
    store
        .insert_usage(&[
            record("a", 1_000, Some("key_a"), big),
            record("b", 2_000, Some("key_a"), 7),
            record("c", 3_000, Some("key_b"), 11),
            record("d", 4_000, None, 13),
        ])
        .await
        .unwrap();
    assert_eq!(store.key_spend_since("key_a", 0).await.unwrap(), big + 7);
    assert_eq!(store.key_spend_since("key_a", 1_500).await.unwrap(), 7);
    assert_eq!(store.key_spend_since("key_b", 0).await.unwrap(), 11);
    assert_eq!(store.key_spend_since("nobody", 0).await.unwrap(), 0);
}

async fn keys_are_found_by_hash_listed_and_revoked(store: SqlStore) {
    assert!(!store.has_keys().await.unwrap());
    let first = key("key_1", Some("ci"), "hash1");
    let second = key("key_2", None, "hash2");
    store.create_key(&first).await.unwrap();
    store.create_key(&second).await.unwrap();
    assert!(store.has_keys().await.unwrap());
    assert_eq!(
        store.key_by_hash("hash1").await.unwrap(),
        Some(first.clone())
    );
    assert_eq!(store.key_by_hash("nope").await.unwrap(), None);
    // A second key with the same hash is refused by the unique index.
    assert!(
        store
            .create_key(&key("key_3", None, "hash1"))
            .await
            .is_err()
    );
    assert!(store.revoke_key("ci", 42).await.unwrap());
    assert!(
        !store.revoke_key("ci", 43).await.unwrap(),
        "already revoked"
    );
    assert!(store.revoke_key("key_2", 44).await.unwrap());
    assert!(
        store.has_keys().await.unwrap(),
        "revoked keys still close the gateway"
    );
    let listed = store.list_keys().await.unwrap();
    assert_eq!(listed.len(), 2);
    assert_eq!(listed[0].revoked_ms, Some(42));
    assert_eq!(listed[1].revoked_ms, Some(44));
    assert_eq!(listed[0].limits, first.limits);
    assert_eq!(listed[0].models, first.models);
}

async fn retention_deletes_only_old_records_in_batches(store: SqlStore) {
    let old: Vec<_> = (0..7)
        .map(|i| record(&format!("old{i}"), i, None, 1))
        .collect();
    let fresh = record("fresh", now_ms(), None, 1);
    store.insert_usage(&old).await.unwrap();
    store
        .insert_usage(std::slice::from_ref(&fresh))
        .await
        .unwrap();
    // One statement deletes at most its batch.
    assert_eq!(store.delete_usage_before(1_000, 3).await.unwrap(), 3);
    // The background task finishes the rest and leaves the fresh record.
    let store: Arc<dyn Store> = Arc::new(store);
    let task = spawn_retention(
        vec![RetentionJob::usage(
            store.clone(),
            Duration::from_secs(3600),
        )],
        2,
        Duration::from_secs(3600),
    );
    for _ in 0..200 {
        if store.usage_since(0, 100).await.unwrap().len() == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    assert_eq!(store.usage_since(0, 100).await.unwrap(), vec![fresh]);
}

/// One retention task runs both jobs, each with its own age: responses past theirs go (in
/// batches), newer ones and usage records younger than theirs stay.
async fn retention_expires_old_stored_responses_with_usage(store: SqlStore) {
    let now = now_ms();
    let day_ms = 86_400_000;
    for (i, created_ms) in [1_000, 2_000, 3_000, now - 2 * day_ms, now]
        .into_iter()
        .enumerate()
    {
        let mut response = stored_response(
            &format!("resp_{i}"),
            "key_a",
            "{}".into(),
            "[]".into(),
            "[]".into(),
        );
        response.created_ms = created_ms;
        store.put_response(&response).await.unwrap();
    }
    // Two days old: past the responses' one-day age, within the usage records' three.
    let usage = record("recent", now - 2 * day_ms, None, 1);
    store
        .insert_usage(std::slice::from_ref(&usage))
        .await
        .unwrap();
    let store = Arc::new(store);
    let task = spawn_retention(
        vec![
            RetentionJob::usage(store.clone(), Duration::from_secs(3 * 86_400)),
            RetentionJob::responses(store.clone(), Duration::from_secs(86_400)),
        ],
        2,
        Duration::from_secs(3600),
    );
    let gone = |i: usize| {
        let store = store.clone();
        async move {
            store
                .get_response(&format!("resp_{i}"), "key_a")
                .await
                .unwrap()
                .is_none()
        }
    };
    for _ in 0..200 {
        if gone(3).await {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    task.abort();
    for i in 0..4 {
        assert!(gone(i).await, "resp_{i} is past its age");
    }
    assert!(!gone(4).await, "the new response stays");
    assert_eq!(store.usage_since(0, 100).await.unwrap(), vec![usage]);
}

async fn writer_flushes_everything_queued_on_stop(store: SqlStore) {
    let store: Arc<dyn Store> = Arc::new(store);
    let writer = UsageWriter::spawn(
        store.clone(),
        WriterSettings {
            capacity: 1000,
            batch: 16,
            ..WriterSettings::default()
        },
    );
    for i in 0..100 {
        assert!(writer.submit(record(&format!("r{i}"), i, None, 1)));
    }
    writer.flush_and_stop().await;
    assert_eq!(store.usage_since(0, 1000).await.unwrap().len(), 100);
    // After stopping, a record is refused and counted rather than lost silently.
    assert!(!writer.submit(record("late", 1, None, 1)));
    assert_eq!(writer.dropped(), 1);
}

/// A store whose writes wait until released, to fill the queue.
struct Stalled {
    release: tokio::sync::Semaphore,
    written: std::sync::Mutex<usize>,
}

impl Store for Stalled {
    fn backend(&self) -> &'static str {
        "stalled"
    }
    fn insert_usage<'a>(
        &'a self,
        records: &'a [UsageRecord],
    ) -> BoxFuture<'a, crossbar_store::Result<()>> {
        Box::pin(async move {
            let _permit = self.release.acquire().await.unwrap();
            *self.written.lock().unwrap() += records.len();
            Ok(())
        })
    }
    fn usage_since(
        &self,
        _: i64,
        _: u32,
    ) -> BoxFuture<'_, crossbar_store::Result<Vec<UsageRecord>>> {
        Box::pin(async { Ok(vec![]) })
    }
    fn key_spend_since<'a>(
        &'a self,
        _: &'a str,
        _: i64,
    ) -> BoxFuture<'a, crossbar_store::Result<u64>> {
        Box::pin(async { Ok(0) })
    }
    fn delete_usage_before(&self, _: i64, _: u32) -> BoxFuture<'_, crossbar_store::Result<u64>> {
        Box::pin(async { Ok(0) })
    }
    fn create_key<'a>(&'a self, _: &'a KeyRecord) -> BoxFuture<'a, crossbar_store::Result<()>> {
        Box::pin(async { Ok(()) })
    }
    fn list_keys(&self) -> BoxFuture<'_, crossbar_store::Result<Vec<KeyRecord>>> {
        Box::pin(async { Ok(vec![]) })
    }
    fn key_by_hash<'a>(
        &'a self,
        _: &'a str,
    ) -> BoxFuture<'a, crossbar_store::Result<Option<KeyRecord>>> {
        Box::pin(async { Ok(None) })
    }
    fn revoke_key<'a>(&'a self, _: &'a str, _: i64) -> BoxFuture<'a, crossbar_store::Result<bool>> {
        Box::pin(async { Ok(false) })
    }
    fn has_keys(&self) -> BoxFuture<'_, crossbar_store::Result<bool>> {
        Box::pin(async { Ok(false) })
    }
}

#[tokio::test]
async fn a_full_queue_refuses_and_counts_without_blocking() {
    let stalled = Arc::new(Stalled {
        release: tokio::sync::Semaphore::new(0),
        written: std::sync::Mutex::new(0),
    });
    let writer = UsageWriter::spawn(
        stalled.clone(),
        WriterSettings {
            capacity: 4,
            batch: 1,
            ..WriterSettings::default()
        },
    );
    let mut accepted: u64 = 0;
    for i in 0..20 {
        if writer.submit(record(&format!("r{i}"), i, None, 1)) {
            accepted += 1;
        }
    }
    // The drain task holds at most one batch in hand; the queue holds four.
    assert!((4..=5).contains(&accepted), "{accepted}");
    assert_eq!(writer.dropped(), 20 - accepted);
    stalled.release.add_permits(1000);
    writer.flush_and_stop().await;
    assert_eq!(*stalled.written.lock().unwrap(), accepted as usize);
}

#[tokio::test]
async fn sqlite_reopens_without_migrating_twice_and_uses_wal() {
    let path = common::sqlite_path("crossbar_store_test");
    let url = path.to_str().unwrap();
    let store = SqlStore::open(url).await.unwrap();
    store
        .insert_usage(&[record("kept", 1, None, 5)])
        .await
        .unwrap();
    let wal = std::path::PathBuf::from(format!("{url}-wal"));
    assert!(wal.exists(), "WAL journal at {}", wal.display());
    store.close().await;
    let again = SqlStore::open(url).await.unwrap();
    assert_eq!(again.usage_since(0, 10).await.unwrap().len(), 1);
    assert_eq!(again.backend(), "sqlite");
}

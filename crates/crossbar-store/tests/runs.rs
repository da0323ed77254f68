//! The agent run queue (`RunQueue`) on both engines: idempotent submits, claims with leases,
//! takeovers of expired leases, fencing of a worker that lost its run, cancel.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::time::Duration;

use common::suite;
use crossbar_store::{
    EventRecord, Heartbeat, JournalStore as _, QueueState, RunFilter, RunQueue as _, RunRecord,
    RunTotals, SqlStore, StoreError, now_ms,
};

async fn sqlite() -> SqlStore {
    common::sqlite("crossbar_runs_test").await
}

async fn postgres() -> Option<SqlStore> {
    common::postgres("crossbar_runs_test").await
}

fn run(id: &str, created_ms: i64) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        agent: "researcher".to_owned(),
        spec_path: "agents/researcher.toml".to_owned(),
        spec: "name = \"researcher\"".to_owned(),
        task: format!("task of {id}"),
        status: "queued".to_owned(),
        created_ms,
        updated_ms: created_ms,
        totals: RunTotals::default(),
        answer: None,
    }
}

fn owned(owner: &str, idempotency_key: Option<&str>) -> QueueState {
    QueueState {
        owner_key: owner.to_owned(),
        idempotency_key: idempotency_key.map(str::to_owned),
        limits: Some(r#"{"usd":0.5}"#.to_owned()),
        ..QueueState::default()
    }
}

fn event(run_id: &str, seq: u64) -> EventRecord {
    EventRecord {
        run_id: run_id.to_owned(),
        seq,
        time_ms: now_ms(),
        kind: "model_call".to_owned(),
        data: format!(r#"{{"kind":"model_call","step":{seq}}}"#),
    }
}

fn totals(steps: u64) -> RunTotals {
    RunTotals {
        steps,
        tokens: steps * 100,
        cost_pusd: steps * 1_000_000,
        elapsed_ms: steps * 10,
    }
}

/// One idempotency key per owner makes one run; another owner's same key is its own run.
async fn submits_are_idempotent_per_owner(store: SqlStore) {
    let (first, created) = store
        .submit(&run("run_a", 1), &owned("key_1", Some("idem-1")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(first.run.status, "queued");
    assert_eq!(first.queue.limits.as_deref(), Some(r#"{"usd":0.5}"#));
    // What the submit answers is the row as stored.
    assert_eq!(first, store.queued_run("run_a").await.unwrap().unwrap());
    let (again, created) = store
        .submit(&run("run_b", 2), &owned("key_1", Some("idem-1")))
        .await
        .unwrap();
    assert!(!created);
    assert_eq!(again.run.id, "run_a");
    assert!(store.run("run_b").await.unwrap().is_none());
    let (other, created) = store
        .submit(&run("run_c", 3), &owned("key_2", Some("idem-1")))
        .await
        .unwrap();
    assert!(created);
    assert_eq!(other.run.id, "run_c");
    // Without a key every submit is a run.
    for (i, id) in ["run_d", "run_e"].into_iter().enumerate() {
        let (made, created) = store
            .submit(
                &run(id, 4 + i64::try_from(i).unwrap()),
                &owned("key_1", None),
            )
            .await
            .unwrap();
        assert!(created);
        assert_eq!(made.run.id, id);
    }
    let mine = store
        .list_queued(&RunFilter {
            owners: Some(vec!["key_1".to_owned()]),
            limit: 10,
            ..RunFilter::default()
        })
        .await
        .unwrap();
    let ids: Vec<&str> = mine.iter().map(|r| r.run.id.as_str()).collect();
    assert_eq!(ids, ["run_e", "run_d", "run_a"]);
    let filter = |owners: Option<&[&str]>, status: Option<&str>| RunFilter {
        owners: owners.map(|o| o.iter().map(|s| (*s).to_owned()).collect()),
        status: status.map(str::to_owned),
        limit: 10,
        ..RunFilter::default()
    };
    let both = store
        .list_queued(&filter(Some(&["key_2", "key_1"]), None))
        .await
        .unwrap();
    assert_eq!(both.len(), 4, "run_b was run_a");
    assert!(
        store
            .list_queued(&filter(Some(&[]), None))
            .await
            .unwrap()
            .is_empty()
    );
    let everyone = store
        .list_queued(&filter(None, Some("queued")))
        .await
        .unwrap();
    assert_eq!(everyone.len(), 4);
    assert!(
        store
            .list_queued(&filter(None, Some("running")))
            .await
            .unwrap()
            .is_empty()
    );
}

/// Claims take queued runs oldest first, each once; an expired lease is taken over with a new
/// generation, and the old holder's writes are refused from then on.
async fn expired_leases_are_taken_over_and_the_old_holder_is_fenced(store: SqlStore) {
    for (i, id) in ["run_1", "run_2", "run_3"].into_iter().enumerate() {
        store
            .submit(&run(id, i64::try_from(i).unwrap()), &owned("", None))
            .await
            .unwrap();
    }
    let first = store.claim("worker-a", 60_000, 2).await.unwrap();
    let ids: Vec<&str> = first.iter().map(|c| c.run.id.as_str()).collect();
    assert_eq!(ids, ["run_1", "run_2"]);
    assert!(first.iter().all(|c| c.generation == 1 && !c.takeover));
    let second = store.claim("worker-b", 60_000, 5).await.unwrap();
    assert_eq!(second.len(), 1);
    assert_eq!(second[0].run.id, "run_3");
    assert!(store.claim("worker-c", 60_000, 5).await.unwrap().is_empty());

    // worker-a journals run_1 under its generation.
    store
        .append_fenced(&event("run_1", 0), "running", totals(1), None, 1)
        .await
        .unwrap();
    assert_eq!(
        store.heartbeat("run_1", 1, 1).await.unwrap(),
        Heartbeat::Held { cancel: false }
    );
    // Its lease (1 ms) runs out; worker-c takes the run over.
    tokio::time::sleep(Duration::from_millis(20)).await;
    let taken = store.claim("worker-c", 60_000, 5).await.unwrap();
    assert_eq!(taken.len(), 1);
    assert_eq!(taken[0].run.id, "run_1");
    assert_eq!(taken[0].generation, 2);
    assert!(taken[0].takeover);
    assert_eq!(taken[0].run.totals, totals(1));

    // worker-a comes back: its step, its status and its heartbeat are all refused.
    let late = store
        .append_fenced(&event("run_1", 1), "running", totals(2), None, 1)
        .await;
    assert!(matches!(late, Err(StoreError::Fenced(id)) if id == "run_1"));
    let late_end = store
        .append_fenced(&event("run_1", 1), "completed", totals(2), Some("late"), 1)
        .await;
    assert!(matches!(late_end, Err(StoreError::Fenced(_))));
    assert_eq!(
        store.heartbeat("run_1", 1, 60_000).await.unwrap(),
        Heartbeat::Lost
    );
    assert_eq!(store.events("run_1").await.unwrap().len(), 1);

    // worker-c ends it with its last step: status and answer in the same write, the lease
    // cleared, and it is never claimed again.
    store
        .append_fenced(&event("run_1", 1), "completed", totals(2), Some("done"), 2)
        .await
        .unwrap();
    let later = store.events_from("run_1", 1).await.unwrap();
    assert_eq!(later.iter().map(|e| e.seq).collect::<Vec<_>>(), [1]);
    assert!(store.events_from("run_1", 2).await.unwrap().is_empty());
    let ended = store.queued_run("run_1").await.unwrap().unwrap();
    assert_eq!(ended.run.status, "completed");
    assert_eq!(ended.run.answer.as_deref(), Some("done"));
    assert_eq!(ended.run.totals, totals(2));
    assert_eq!(ended.queue.worker.as_deref(), Some("worker-c"));
    assert_eq!(ended.queue.lease_until_ms, None);
    assert_eq!(ended.queue.takeovers, 1);
    let figures = store.queue_figures().await.unwrap();
    assert_eq!(figures.takeovers, 1);
    assert_eq!(
        figures.claim_latency_ms,
        (0, 0),
        "no run submitted in the last hour"
    );
    assert_eq!(
        figures.by_status,
        [("completed".to_owned(), 1), ("running".to_owned(), 2)]
    );
}

/// A worker stopping hands its run back: the next claim is not a takeover.
async fn released_runs_are_claimed_again(store: SqlStore) {
    // Submitted 1.5 s ago: the claim latency the queue reports.
    store
        .submit(&run("run_r", now_ms() - 1_500), &owned("", None))
        .await
        .unwrap();
    let claimed = store.claim("worker-a", 60_000, 1).await.unwrap();
    assert!(store.release("run_r", claimed[0].generation).await.unwrap());
    assert!(!store.release("run_r", claimed[0].generation).await.unwrap());
    let again = store.claim("worker-b", 60_000, 1).await.unwrap();
    assert_eq!(again.len(), 1);
    assert!(!again[0].takeover);
    assert_eq!(again[0].generation, 3);
    let (mean, most) = store.queue_figures().await.unwrap().claim_latency_ms;
    assert_eq!(mean, most, "one run");
    assert!((1_500..60_000).contains(&mean), "{mean} ms");
}

/// A queued run is cancelled at once; a running one is flagged for its worker's heartbeat.
async fn cancel_stops_queued_runs_and_flags_running_ones(store: SqlStore) {
    store
        .submit(&run("run_q", 1), &owned("", None))
        .await
        .unwrap();
    store
        .submit(&run("run_w", 2), &owned("", None))
        .await
        .unwrap();
    assert_eq!(
        store.cancel("run_q").await.unwrap().as_deref(),
        Some("cancelled")
    );
    let claimed = store.claim("worker-a", 60_000, 5).await.unwrap();
    assert_eq!(claimed.len(), 1, "a cancelled run is never claimed");
    assert_eq!(claimed[0].run.id, "run_w");
    assert_eq!(
        store.cancel("run_w").await.unwrap().as_deref(),
        Some("running")
    );
    assert_eq!(
        store.heartbeat("run_w", 1, 60_000).await.unwrap(),
        Heartbeat::Held { cancel: true }
    );
    assert_eq!(store.cancel("run_none").await.unwrap(), None);
}

suite!(
    submits_are_idempotent_per_owner,
    expired_leases_are_taken_over_and_the_old_holder_is_fenced,
    released_runs_are_claimed_again,
    cancel_stops_queued_runs_and_flags_running_ones,
);

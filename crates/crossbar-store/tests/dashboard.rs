//! The dashboard's reads, run against SQLite (a fresh file per test) and, when
//! `CROSSBAR_TEST_POSTGRES_URL` names a server, against PostgreSQL (a fresh database per test).

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::suite;
use crossbar_store::{
    AttemptRecord, DashboardStore, EventRecord, JournalStore, KeySpend, RequestFilter, RunRecord,
    RunTotals, SqlStore, StatusFilter, Store, UsageRecord,
};

async fn sqlite() -> SqlStore {
    common::sqlite("crossbar_dashboard_test").await
}

async fn postgres() -> Option<SqlStore> {
    common::postgres("crossbar_dash").await
}

fn attempt(deployment: &str, outcome: &str) -> AttemptRecord {
    AttemptRecord {
        deployment: deployment.to_owned(),
        provider: deployment.split('@').nth(1).unwrap().to_owned(),
        cloud: "c".to_owned(),
        region: "r".to_owned(),
        outcome: outcome.to_owned(),
        status: (outcome == "error").then_some(503),
        latency_ms: 5,
        hedge: false,
        reason: None,
        cost_pusd: 0,
    }
}

fn record(id: &str, time_ms: i64, key: Option<&str>, deployment: &str, status: u16) -> UsageRecord {
    UsageRecord {
        request_id: id.to_owned(),
        time_ms,
        key_id: key.map(str::to_owned),
        api: "chat".to_owned(),
        model: deployment.split('@').next().unwrap().to_owned(),
        deployment: Some(deployment.to_owned()),
        provider: Some(deployment.split('@').nth(1).unwrap().to_owned()),
        cloud: Some("c".to_owned()),
        status,
        input_tokens: 10,
        output_tokens: 5,
        cost_pusd: 1_000 + u64::try_from(time_ms).unwrap(),
        latency_ms: 40,
        ttft_ms: Some(12),
        overhead_ms: 1,
        attempts: vec![attempt(
            deployment,
            if status < 400 { "ok" } else { "error" },
        )],
        ..UsageRecord::default()
    }
}

/// Five requests: `b` failed over from `chat@bro_ken` (an underscore, which `LIKE` must not
/// treat as a wildcard) to `chat@azure`.
async fn seed(store: &SqlStore) -> Vec<UsageRecord> {
    let mut failover = record("b", 200, Some("k1"), "chat@azure", 200);
    failover
        .attempts
        .insert(0, attempt("chat@bro_ken", "error"));
    let mut broken_stream = record("d", 400, Some("k2"), "chat@azure", 200);
    broken_stream.error = Some("cut".to_owned());
    let records = vec![
        record("a", 100, Some("k1"), "chat@openai", 200),
        failover,
        record("c", 300, None, "embed@openai", 503),
        broken_stream,
        record("e", 500, Some("k2"), "chat@broXken", 200),
    ];
    store.insert_usage(&records).await.unwrap();
    records
}

fn ids(records: &[UsageRecord]) -> Vec<&str> {
    records.iter().map(|r| r.request_id.as_str()).collect()
}

suite!(
    points_are_the_newest_in_the_window,
    the_request_log_filters_on_every_field,
    spend_is_grouped_per_key,
    tool_calls_are_counted_per_run,
);

async fn points_are_the_newest_in_the_window(store: SqlStore) {
    seed(&store).await;
    let points = store.usage_points(200, 3).await.unwrap();
    let times: Vec<i64> = points.iter().map(|p| p.time_ms).collect();
    assert_eq!(times, [500, 400, 300]);
    assert!(points[1].failed, "a broken stream counts as failed");
    assert!(!points[0].failed);
    assert_eq!(points[2].status, 503);
    assert_eq!(points[2].key_id, None);
    assert_eq!(points[0].cost_pusd, 1_500);
    assert_eq!(points[0].ttft_ms, Some(12));
    assert_eq!(points[0].provider.as_deref(), Some("broXken"));
}

async fn the_request_log_filters_on_every_field(store: SqlStore) {
    let records = seed(&store).await;
    let all = |filter: RequestFilter| RequestFilter {
        limit: 100,
        ..filter
    };
    let found = store
        .requests(&all(RequestFilter::default()))
        .await
        .unwrap();
    assert_eq!(ids(&found), ["e", "d", "c", "b", "a"]);
    assert_eq!(
        found[3], records[1],
        "records come back whole, attempts included"
    );
    let query = |filter| {
        let store = store.clone();
        async move { store.requests(&all(filter)).await.unwrap() }
    };
    let by_key = query(RequestFilter {
        key_id: Some("k1".to_owned()),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&by_key), ["b", "a"]);
    let by_model = query(RequestFilter {
        model: Some("embed".to_owned()),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&by_model), ["c"]);
    let attempted = query(RequestFilter {
        deployment: Some("chat@bro_ken".to_owned()),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&attempted), ["b"], "matched by attempt, `_` literally");
    let failed = query(RequestFilter {
        status: Some(StatusFilter::Failed),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&failed), ["d", "c"]);
    let ok = query(RequestFilter {
        status: Some(StatusFilter::Ok),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&ok), ["e", "b", "a"]);
    let exact = query(RequestFilter {
        status: Some(StatusFilter::Exact(503)),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&exact), ["c"]);
    let window = query(RequestFilter {
        since_ms: Some(200),
        until_ms: Some(400),
        ..RequestFilter::default()
    })
    .await;
    assert_eq!(ids(&window), ["c", "b"]);
    let limited = store
        .requests(&RequestFilter {
            limit: 2,
            ..RequestFilter::default()
        })
        .await
        .unwrap();
    assert_eq!(ids(&limited), ["e", "d"]);

    assert_eq!(store.request("b").await.unwrap(), Some(records[1].clone()));
    assert_eq!(store.request("zz").await.unwrap(), None);
}

async fn spend_is_grouped_per_key(store: SqlStore) {
    seed(&store).await;
    let mut spend = store.spend_by_key(0).await.unwrap();
    spend.sort_by(|a, b| a.key_id.cmp(&b.key_id));
    assert_eq!(
        spend,
        [
            KeySpend {
                key_id: None,
                requests: 1,
                cost_pusd: 1_300,
                tokens: 15
            },
            KeySpend {
                key_id: Some("k1".to_owned()),
                requests: 2,
                cost_pusd: 1_100 + 1_200,
                tokens: 30
            },
            KeySpend {
                key_id: Some("k2".to_owned()),
                requests: 2,
                cost_pusd: 1_400 + 1_500,
                tokens: 30
            },
        ]
    );
    let recent = store.spend_by_key(450).await.unwrap();
    assert_eq!(recent.len(), 1);
    assert_eq!(recent[0].cost_pusd, 1_500);
}

fn run(id: &str, created_ms: i64) -> RunRecord {
    RunRecord {
        id: id.to_owned(),
        agent: "researcher".to_owned(),
        spec_path: "agent.toml".to_owned(),
        spec: String::new(),
        task: "count otters".to_owned(),
        status: "running".to_owned(),
        created_ms,
        updated_ms: created_ms,
        totals: RunTotals::default(),
        answer: None,
    }
}

async fn tool_calls_are_counted_per_run(store: SqlStore) {
    for (id, created) in [("old", 1), ("busy", 2), ("quiet", 3)] {
        store.create_run(&run(id, created)).await.unwrap();
    }
    let kinds = [
        ("busy", "model_call"),
        ("busy", "tool_started"),
        ("busy", "tool_result"),
        ("busy", "tool_started"),
        ("old", "tool_started"),
    ];
    for (seq, (id, kind)) in kinds.iter().enumerate() {
        let event = EventRecord {
            run_id: (*id).to_owned(),
            seq: seq as u64,
            time_ms: 10,
            kind: (*kind).to_owned(),
            data: "{}".to_owned(),
        };
        store
            .append_event(&event, "running", RunTotals::default())
            .await
            .unwrap();
    }
    let mut counts = store.tool_calls_by_run(10).await.unwrap();
    counts.sort();
    assert_eq!(counts, [("busy".to_owned(), 2), ("old".to_owned(), 1)]);
    // Only the newest runs: `old` is left out.
    assert_eq!(
        store.tool_calls_by_run(2).await.unwrap(),
        [("busy".to_owned(), 2)]
    );
}

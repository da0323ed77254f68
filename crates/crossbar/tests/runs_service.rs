//! Agents as a service with real processes on a real PostgreSQL: a gateway taking runs over
//! HTTP, and workers (`crossbar agent worker`) claiming them with leases. Workers are killed
//! with SIGKILL mid-run and paused with SIGSTOP past their lease: every run still completes
//! with the journal of an undisturbed run, no tool call's idempotency key is seen with two
//! different calls, and a paused worker never journals after its run was taken over.
//!
//! Skipped (saying so) without PostgreSQL's server binaries, unless `CROSSBAR_REQUIRE_POSTGRES`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command as StdCommand;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::http::HeaderMap;
use common::command;
use crossbar_store::{JournalStore as _, RunFilter, RunQueue as _, SqlStore};
use crossbar_testkit::process::{GatewayProcess, signal};
use crossbar_testkit::servers::Postgres;
use serde_json::{Value, json};

const KEY: &str = "sk-agent-test-key";

/// One call the tool server saw: its idempotency key and its body.
type Call = (Option<String>, Value);

/// Every call the tool server saw.
#[derive(Clone, Default)]
struct Calls(Arc<Mutex<Vec<Call>>>);

/// A tool with a side effect (recording an item) that takes `delay`, so runs are caught
/// mid-tool; it applies each idempotency key's effect once, as a careful API would.
async fn tool_server(delay: Duration) -> (String, Calls) {
    let calls = Calls::default();
    let seen = Calls::clone(&calls);
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let app = axum::Router::new().route(
        "/record",
        axum::routing::post(move |headers: HeaderMap, body: axum::Json<Value>| {
            let seen = Calls::clone(&seen);
            async move {
                let key = headers
                    .get("idempotency-key")
                    .and_then(|v| v.to_str().ok())
                    .map(str::to_owned);
                seen.0.lock().unwrap().push((key, body.0.clone()));
                tokio::time::sleep(delay).await;
                format!("recorded {}", body.0["item"].as_str().unwrap_or("?"))
            }
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    (format!("http://{addr}/record"), calls)
}

fn spec(url: &str) -> String {
    format!(
        r#"
name = "recorder"
instructions = "Record the items with your tools, then answer."
max_steps = 5

[models]
default = "smart"

[tools]
builtin = ["calculator"]

[[tools.http]]
name = "record"
description = "Records an item."
method = "POST"
url = "{url}"
idempotent = true
allow_private = true
parameters = {{ type = "object", properties = {{ item = {{ type = "string" }} }}, required = ["item"] }}
"#
    )
}

const TASK: &str = "Record the batch.
sim-step 1: record {\"item\": \"first\"}
sim-step 2: record {\"item\": \"second\"}
sim-step 2: calculator {\"expression\": \"6 * 7\"}";

fn config(store: &str) -> String {
    format!(
        "[server]\napi_keys = [\"{KEY}\"]\n{}\n[[models]]\nname = \"smart\"\n\
         deployments = [{{ provider = \"sim-openai\", target = \"gpt-4o\", price = {{ input = 2.5, output = 10.0 }} }}]\n\n\
         [store]\nurl = \"{store}\"\n\n[agents]\nspecs = \"agents\"\n",
        crossbar_testkit::sim_openai!()
    )
}

struct Service {
    _dir: tempfile::TempDir,
    _pg: Postgres,
    store_url: String,
    store: SqlStore,
    gateway: GatewayProcess,
    http: reqwest::Client,
}

impl Service {
    async fn start(tool_url: &str) -> Option<Self> {
        let dir = tempfile::tempdir().unwrap();
        // PostgreSQL runs as its own user: the directory must be reachable for it.
        let _ = StdCommand::new("chmod").arg("755").arg(dir.path()).status();
        let pg = Postgres::start(dir.path())?;
        let store_url = pg.url();
        std::fs::create_dir_all(dir.path().join("agents")).unwrap();
        std::fs::write(dir.path().join("agents/recorder.toml"), spec(tool_url)).unwrap();
        std::fs::write(dir.path().join("crossbar.toml"), config(&store_url)).unwrap();
        let gateway = GatewayProcess::spawn(command(dir.path()).args([
            "serve",
            "--config",
            "crossbar.toml",
            "--listen",
            "127.0.0.1:0",
        ]))
        .await;
        let store = SqlStore::open(&store_url).await.unwrap();
        Some(Self {
            _dir: dir,
            _pg: pg,
            store_url,
            store,
            gateway,
            http: reqwest::Client::new(),
        })
    }

    async fn worker(&self, id: &str, concurrency: &str) -> GatewayProcess {
        self.worker_with_grace(id, concurrency, "5").await
    }

    async fn worker_with_grace(
        &self,
        id: &str,
        concurrency: &str,
        grace_s: &str,
    ) -> GatewayProcess {
        let process = GatewayProcess::spawn(command(self._dir.path()).args([
            "agent",
            "worker",
            "--gateway",
            self.gateway.url(),
            "--key",
            KEY,
            "--store",
            &self.store_url,
            "--id",
            id,
            "--lease-s",
            "2",
            "--poll-ms",
            "100",
            "--concurrency",
            concurrency,
            "--grace-s",
            grace_s,
        ]))
        .await;
        assert!(
            process
                .line()
                .starts_with(&format!("crossbar worker {id} ready")),
            "{}",
            process.line()
        );
        process
    }

    async fn submit(&self, idempotency_key: &str) -> (u16, Value) {
        let response = self
            .http
            .post(format!("{}/v1/crossbar/runs", self.gateway.url()))
            .bearer_auth(KEY)
            .header("Idempotency-Key", idempotency_key)
            .json(&json!({ "agent": "recorder", "input": TASK }))
            .send()
            .await
            .unwrap();
        (response.status().as_u16(), response.json().await.unwrap())
    }

    /// Waits until every run in `ids` ended; panics after `limit`.
    async fn wait_ended(&self, ids: &[String], limit: Duration) {
        let start = Instant::now();
        loop {
            let mut open = 0;
            for id in ids {
                let run = self.store.run(id).await.unwrap().unwrap();
                if matches!(run.status.as_str(), "queued" | "running") {
                    open += 1;
                }
            }
            if open == 0 {
                return;
            }
            assert!(
                start.elapsed() < limit,
                "{open} run(s) still open after {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// A run's journal without start/resume markers and idempotency keys, each step's entries
    /// in a fixed order (tools run concurrently).
    async fn journal(&self, id: &str) -> Vec<Value> {
        let mut entries: Vec<Value> = self
            .store
            .events(id)
            .await
            .unwrap()
            .iter()
            .map(|e| serde_json::from_str::<Value>(&e.data).unwrap())
            .filter(|e| !matches!(e["kind"].as_str(), Some("started" | "resumed")))
            .map(|mut e| {
                e.as_object_mut().unwrap().remove("idempotency_key");
                e
            })
            .collect();
        entries.sort_by_key(|e| {
            let order = match e["kind"].as_str().unwrap() {
                "model_call" => 0,
                "tool_started" => 1,
                "tool_result" => 2,
                _ => 3,
            };
            (
                e["step"].as_u64().unwrap_or(u64::MAX),
                order,
                e["call_id"].as_str().unwrap_or_default().to_owned(),
            )
        });
        entries
    }

    /// Runs `worker` holds with a tool started and not finished.
    async fn mid_tool(&self, worker: &str) -> Vec<String> {
        let running = self
            .store
            .list_queued(&RunFilter {
                status: Some("running".to_owned()),
                limit: 200,
                ..RunFilter::default()
            })
            .await
            .unwrap();
        let mut found = Vec::new();
        for run in running
            .iter()
            .filter(|r| r.queue.worker.as_deref() == Some(worker))
        {
            let events = self.store.events(&run.run.id).await.unwrap();
            let started = events.iter().filter(|e| e.kind == "tool_started").count();
            let ended = events.iter().filter(|e| e.kind == "tool_result").count();
            if started > ended {
                found.push(run.run.id.clone());
            }
        }
        found
    }
}

/// Every call carried a key, and one key always came with one call (the same arguments);
/// returns the distinct keys and how many calls repeated a key.
fn keys_of(calls: &Calls) -> (BTreeMap<String, Value>, usize) {
    let calls = calls.0.lock().unwrap();
    let mut keys: BTreeMap<String, Value> = BTreeMap::new();
    let mut repeats = 0;
    for (key, body) in calls.iter() {
        let Some(key) = key.clone() else {
            panic!("a tool call without an Idempotency-Key: {body}");
        };
        match keys.get(&key) {
            Some(first) => {
                assert_eq!(first, body, "key {key} came with two different calls");
                repeats += 1;
            }
            None => {
                keys.insert(key, body.clone());
            }
        }
    }
    (keys, repeats)
}

#[tokio::test]
async fn fifty_runs_complete_through_killed_workers_with_undisturbed_journals() {
    let (tool_url, calls) = tool_server(Duration::from_millis(400)).await;
    let Some(service) = Service::start(&tool_url).await else {
        return;
    };
    let mut workers = vec![
        service.worker("w0", "4").await,
        service.worker("w1", "4").await,
        service.worker("w2", "4").await,
    ];

    // The reference: one run, nothing disturbed.
    let (status, reference) = service.submit("reference").await;
    assert_eq!(status, 201, "{reference}");
    assert_eq!(reference["status"], "queued");
    let reference_id = reference["id"].as_str().unwrap().to_owned();
    service
        .wait_ended(std::slice::from_ref(&reference_id), Duration::from_secs(60))
        .await;
    let reference_run = service.store.run(&reference_id).await.unwrap().unwrap();
    assert_eq!(reference_run.status, "completed");
    let reference_journal = service.journal(&reference_id).await;
    assert_eq!(
        reference_journal
            .iter()
            .filter(|e| e["kind"] == "tool_result")
            .count(),
        3
    );

    // The same submit again is the same run.
    let (status, again) = service.submit("reference").await;
    assert_eq!(status, 200);
    assert_eq!(again["id"], reference["id"]);

    let mut ids = Vec::new();
    for i in 0..50 {
        let (status, run) = service.submit(&format!("batch-{i}")).await;
        assert_eq!(status, 201, "{run}");
        ids.push(run["id"].as_str().unwrap().to_owned());
    }

    // Kill w0 while it holds a run mid-tool; then kill whoever took one of its runs over.
    let start = Instant::now();
    let victims = loop {
        let held = service.mid_tool("w0").await;
        if !held.is_empty() {
            break held;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "w0 never held a run mid-tool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    workers[0].kill_hard();
    let _ = workers[0].wait().await;
    let start = Instant::now();
    let (taker, taken) = loop {
        let mut found = None;
        for id in &victims {
            let run = service.store.queued_run(id).await.unwrap().unwrap();
            if run.queue.takeovers > 0 {
                found = run.queue.worker.clone().map(|w| (w, id.clone()));
                break;
            }
        }
        if let Some(found) = found {
            break found;
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "w0's runs were never taken over"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    let index = if taker == "w1" { 1 } else { 2 };
    workers[index].kill_hard();
    let _ = workers[index].wait().await;

    service.wait_ended(&ids, Duration::from_secs(180)).await;

    let mut takeovers = 0;
    for id in &ids {
        let run = service.store.queued_run(id).await.unwrap().unwrap();
        assert_eq!(run.run.status, "completed", "{id}");
        assert_eq!(run.run.answer, reference_run.answer, "{id}");
        assert_eq!(run.run.totals.tokens, reference_run.totals.tokens, "{id}");
        assert_eq!(
            run.run.totals.cost_pusd, reference_run.totals.cost_pusd,
            "{id}"
        );
        assert_eq!(run.run.totals.steps, reference_run.totals.steps, "{id}");
        assert_eq!(service.journal(id).await, reference_journal, "{id}");
        takeovers += run.queue.takeovers;
    }
    let taken_run = service.store.queued_run(&taken).await.unwrap().unwrap();
    assert!(taken_run.queue.takeovers >= 1);
    assert!(
        takeovers >= 2,
        "two workers died holding runs: {takeovers} takeovers"
    );

    // 51 runs × 2 calls of `record`: one key per call, repeated only by takeovers.
    let (keys, repeats) = keys_of(&calls);
    assert_eq!(keys.len(), 102, "{repeats} repeated calls");
    let per_run: HashMap<&str, usize> = keys.values().fold(HashMap::new(), |mut m, body| {
        *m.entry(body["item"].as_str().unwrap()).or_default() += 1;
        m
    });
    assert_eq!(per_run, HashMap::from([("first", 51), ("second", 51)]));
    eprintln!(
        "51 runs: {takeovers} takeovers, {repeats} tool calls repeated with their key after a kill"
    );

    // The runs API's view of one run, and its journal as server-sent events.
    let shown: Value = service
        .http
        .get(format!(
            "{}/v1/crossbar/runs/{}/events",
            service.gateway.url(),
            ids[0]
        ))
        .bearer_auth(KEY)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .map(|text| json!(text))
        .unwrap();
    let text = shown.as_str().unwrap();
    let journal = service.store.events(&ids[0]).await.unwrap();
    assert_eq!(
        text.matches("\nid: ").count() + usize::from(text.starts_with("id: ")),
        journal.len(),
        "{text}"
    );
    assert!(
        text.ends_with("event: end\ndata: {\"status\":\"completed\"}\n\n"),
        "{text}"
    );
    drop(workers);
}

#[tokio::test]
async fn a_paused_worker_never_journals_after_its_run_was_taken_over() {
    let (tool_url, calls) = tool_server(Duration::from_millis(3000)).await;
    let Some(service) = Service::start(&tool_url).await else {
        return;
    };
    let paused = service.worker("paused", "1").await;
    let (_, run) = service.submit("one").await;
    let id = run["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    while service.mid_tool("paused").await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never reached its tool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let before = service.store.events(&id).await.unwrap().len();
    // A partition: the worker stops (SIGSTOP) past its 2 s lease; another one takes over.
    signal(paused.id(), "-STOP");
    let other = service.worker("other", "1").await;
    service
        .wait_ended(std::slice::from_ref(&id), Duration::from_secs(60))
        .await;
    let after_takeover = service.store.events(&id).await.unwrap();
    assert!(after_takeover.len() > before);
    // The paused worker wakes with its tool call answered and tries to go on.
    signal(paused.id(), "-CONT");
    tokio::time::sleep(Duration::from_millis(3500)).await;
    let finally = service.store.events(&id).await.unwrap();
    assert_eq!(
        finally, after_takeover,
        "the paused worker journaled after the takeover"
    );
    let run = service.store.queued_run(&id).await.unwrap().unwrap();
    assert_eq!(run.run.status, "completed");
    assert_eq!(run.queue.worker.as_deref(), Some("other"));
    assert_eq!(run.queue.takeovers, 1);
    let seqs: Vec<u64> = finally.iter().map(|e| e.seq).collect();
    assert_eq!(
        seqs,
        (0..u64::try_from(finally.len()).unwrap()).collect::<Vec<_>>()
    );
    let (keys, _) = keys_of(&calls);
    assert_eq!(keys.len(), 2, "one key per call of `record`");
    drop(other);
}

#[tokio::test]
async fn a_stopping_worker_hands_back_the_run_it_cannot_finish() {
    let (tool_url, calls) = tool_server(Duration::from_millis(4000)).await;
    let Some(service) = Service::start(&tool_url).await else {
        return;
    };
    let mut leaving = service.worker_with_grace("leaving", "1", "1").await;
    let (_, run) = service.submit("one").await;
    let id = run["id"].as_str().unwrap().to_owned();
    let start = Instant::now();
    while service.mid_tool("leaving").await.is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "the run never reached its tool"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // SIGTERM mid-tool: the run cannot finish within the 1 s grace, so it goes back to the queue.
    leaving.terminate();
    let stopped = Instant::now();
    assert!(leaving.wait().await.success());
    assert!(
        stopped.elapsed() < Duration::from_secs(3),
        "{:?}",
        stopped.elapsed()
    );
    let handed = service.store.queued_run(&id).await.unwrap().unwrap();
    assert_eq!(handed.run.status, "queued");
    assert_eq!(handed.queue.lease_until_ms, None);
    // Another worker claims it at once (no lease to wait out) and finishes it.
    let staying = service.worker("staying", "1").await;
    service
        .wait_ended(std::slice::from_ref(&id), Duration::from_secs(60))
        .await;
    let done = service.store.queued_run(&id).await.unwrap().unwrap();
    assert_eq!(done.run.status, "completed");
    assert_eq!(done.queue.worker.as_deref(), Some("staying"));
    assert_eq!(done.queue.takeovers, 0, "handed back, not taken over");
    let kinds: Vec<String> = service
        .store
        .events(&id)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.kind)
        .collect();
    assert!(kinds.contains(&"resumed".to_owned()), "{kinds:?}");
    // The interrupted call ran again with its key.
    let (keys, repeats) = keys_of(&calls);
    assert_eq!((keys.len(), repeats), (2, 1));
    drop(staying);
}

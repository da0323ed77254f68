//! The runs API against the real binary (SQLite store, virtual keys): bad submits get a 4xx
//! naming the field and queue nothing; runs belong to the key that submitted them; an
//! `Idempotency-Key` makes one run per key; cancel; the journal as server-sent events,
//! resumable with `Last-Event-ID`.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test code: a failure fails the test"
)]

mod common;

use std::time::{Duration, Instant};

use common::{BIN, command};
use crossbar_testkit::process::GatewayProcess;
use serde_json::{Value, json};

const ADMIN: &str = "admin-secret-for-runs";

const TYPED: &str = r#"
name = "typed"
instructions = "Answer about the city."
max_steps = 3
input_schema = { type = "object", required = ["city"], properties = { city = { type = "string" } }, additionalProperties = false }

[models]
default = "smart"

[budget]
usd = 1.0
"#;

/// A spec whose MCP server never answers: its agent cannot be started anywhere.
const BROKEN: &str = r#"
name = "broken"
instructions = "Use the server's tools."

[models]
default = "smart"

[[mcp]]
name = "gone"
url = "http://127.0.0.1:9/mcp"
"#;

fn config(store: &str) -> String {
    format!(
        "{}\n[[models]]\nname = \"smart\"\n\
         deployments = [{{ provider = \"sim-openai\", target = \"gpt-4o\", price = {{ input = 2.5, output = 10.0 }} }}]\n\n\
         [store]\nurl = \"{store}\"\n\n[admin]\ntoken = \"{ADMIN}\"\n\n[agents]\nspecs = \"agents\"\n",
        crossbar_testkit::sim_openai!()
    )
}

/// `crossbar GROUP create --store STORE --json ARGS`: the secret it prints.
fn create(dir: &std::path::Path, group: &str, store: &str, args: &[&str]) -> String {
    let output = std::process::Command::new(BIN)
        .current_dir(dir)
        .args([group, "create", "--store", store, "--json"])
        .args(args)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let made: Value = serde_json::from_slice(&output.stdout).unwrap();
    ["key", "token", "secret"]
        .iter()
        .find_map(|field| made[*field].as_str())
        .unwrap_or_default()
        .to_owned()
}

struct Api {
    url: String,
    http: reqwest::Client,
}

impl Api {
    async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, String) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.url))
            .bearer_auth(token);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        (response.status().as_u16(), response.text().await.unwrap())
    }

    async fn json(
        &self,
        method: reqwest::Method,
        path: &str,
        token: &str,
        body: Option<Value>,
        headers: &[(&str, &str)],
    ) -> (u16, Value) {
        let (status, text) = self.send(method, path, token, body, headers).await;
        (
            status,
            serde_json::from_str(&text).unwrap_or_else(|_| panic!("{text}")),
        )
    }

    async fn submit(&self, token: &str, body: Value, idempotency: Option<&str>) -> (u16, Value) {
        let headers: Vec<(&str, &str)> = idempotency
            .map(|k| vec![("Idempotency-Key", k)])
            .unwrap_or_default();
        self.json(
            reqwest::Method::POST,
            "/v1/crossbar/runs",
            token,
            Some(body),
            &headers,
        )
        .await
    }

    async fn ids(&self, token: &str) -> Vec<String> {
        let (status, list) = self
            .json(reqwest::Method::GET, "/v1/crossbar/runs", token, None, &[])
            .await;
        assert_eq!(status, 200, "{list}");
        list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| r["id"].as_str().unwrap().to_owned())
            .collect()
    }
}

/// The refusal's status and `error.param`.
fn refused(answer: &(u16, Value)) -> (u16, &str) {
    (
        answer.0,
        answer.1["error"]["param"].as_str().unwrap_or("<none>"),
    )
}

#[tokio::test]
async fn runs_are_submitted_checked_scoped_cancelled_and_streamed() {
    let dir = tempfile::tempdir().unwrap();
    let store = format!("sqlite://{}?mode=rwc", dir.path().join("runs.db").display());
    std::fs::create_dir_all(dir.path().join("agents")).unwrap();
    std::fs::write(dir.path().join("agents/typed.toml"), TYPED).unwrap();
    std::fs::write(dir.path().join("agents/broken.toml"), BROKEN).unwrap();
    std::fs::write(dir.path().join("crossbar.toml"), config(&store)).unwrap();
    let small = create(
        dir.path(),
        "keys",
        &store,
        &["--name", "small", "--budget-total", "0.5"],
    );
    let other = create(dir.path(), "keys", &store, &["--name", "other"]);
    create(dir.path(), "teams", &store, &["research"]);
    let teamed = create(
        dir.path(),
        "keys",
        &store,
        &["--name", "teamed", "--team", "research"],
    );
    let viewer = create(dir.path(), "admin-tokens", &store, &["--role", "viewer"]);
    let lead = create(
        dir.path(),
        "admin-tokens",
        &store,
        &["--role", "team-admin", "--team", "research"],
    );
    assert!(
        viewer.starts_with("cbadm-") && lead.starts_with("cbadm-"),
        "{viewer} {lead}"
    );
    let gateway = GatewayProcess::spawn(command(dir.path()).args([
        "serve",
        "--config",
        "crossbar.toml",
        "--listen",
        "127.0.0.1:0",
    ]))
    .await;
    let api = Api {
        url: gateway.url().to_owned(),
        http: reqwest::Client::new(),
    };
    let paris = json!({ "agent": "typed", "input": { "city": "Paris" } });

    // Bad submits: each names its field; nothing is queued.
    let cases = [
        (json!({ "agent": "nobody", "input": "x" }), 404, "agent"),
        (json!({ "agent": "../typed", "input": "x" }), 400, "agent"),
        (
            json!({ "agent": "typed", "input": { "town": "Paris" } }),
            400,
            "input",
        ),
        (
            json!({ "agent": "typed", "input": { "city": 5 } }),
            400,
            "input.city",
        ),
        (
            json!({ "agent": "typed", "input": { "city": "Paris" }, "budget": { "usd": 2.0 } }),
            400,
            "budget.usd",
        ),
        (
            json!({ "agent": "typed", "input": { "city": "Paris" }, "budget": { "max_steps": 0 } }),
            400,
            "budget.max_steps",
        ),
        (json!({ "spec": "name = \"x\"", "input": "x" }), 400, "spec"),
        (
            json!({ "agent": "typed", "spec": "name = \"x\"", "input": "x" }),
            400,
            "spec",
        ),
        (json!({ "input": "x" }), 400, "agent"),
    ];
    for (body, status, param) in cases {
        let answer = api.submit(&other, body.clone(), None).await;
        assert_eq!(refused(&answer), (status, param), "{body} → {}", answer.1);
        assert!(answer.1["error"]["message"].as_str().unwrap().len() > 10);
    }
    // Within the spec's $1 but above the key's $0.50.
    let answer = api
        .submit(
            &small,
            json!({ "agent": "typed", "input": { "city": "Paris" }, "budget": { "usd": 0.8 } }),
            None,
        )
        .await;
    assert_eq!(refused(&answer), (400, "budget.usd"), "{}", answer.1);
    assert!(
        answer.1["error"]["message"]
            .as_str()
            .unwrap()
            .contains("this key's budget")
    );
    let (status, _) = api
        .send(
            reqwest::Method::POST,
            "/v1/crossbar/runs",
            &other,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 400, "an empty body");
    assert!(
        api.ids(ADMIN).await.is_empty(),
        "a refused submit queues nothing"
    );

    // One run per key and idempotency key.
    let (status, first) = api.submit(&small, paris.clone(), Some("job-1")).await;
    assert_eq!(status, 201, "{first}");
    assert_eq!(first["status"], "queued");
    assert_eq!(first["task"], r#"{"city":"Paris"}"#);
    let first_id = first["id"].as_str().unwrap().to_owned();
    let (status, again) = api.submit(&small, paris.clone(), Some("job-1")).await;
    assert_eq!(
        (status, again["id"].as_str()),
        (200, Some(first_id.as_str()))
    );
    let (status, theirs) = api.submit(&other, paris.clone(), Some("job-1")).await;
    assert_eq!(status, 201);
    let their_id = theirs["id"].as_str().unwrap().to_owned();
    assert_ne!(their_id, first_id);

    // Each key sees its own runs; the admin sees every run.
    assert_eq!(api.ids(&small).await, std::slice::from_ref(&first_id));
    assert_eq!(api.ids(&other).await, std::slice::from_ref(&their_id));
    assert_eq!(api.ids(ADMIN).await, [their_id.clone(), first_id.clone()]);
    let path = format!("/v1/crossbar/runs/{first_id}");
    let (status, hidden) = api
        .json(reqwest::Method::GET, &path, &other, None, &[])
        .await;
    assert_eq!(
        (status, hidden["error"]["code"].as_str()),
        (404, Some("run_not_found"))
    );
    let cancel = format!("{path}/cancel");
    let (status, _) = api
        .json(reqwest::Method::POST, &cancel, &other, None, &[])
        .await;
    assert_eq!(status, 404, "another key cannot cancel it");

    // Cancel a queued run: at once; a second cancel is refused.
    let (status, cancelled) = api
        .json(reqwest::Method::POST, &cancel, &small, None, &[])
        .await;
    assert_eq!(
        (status, cancelled["status"].as_str()),
        (200, Some("cancelled"))
    );
    let (status, twice) = api
        .json(reqwest::Method::POST, &cancel, &small, None, &[])
        .await;
    assert_eq!(
        (status, twice["error"]["code"].as_str()),
        (400, Some("run_ended"))
    );
    let (status, text) = api
        .send(
            reqwest::Method::GET,
            &format!("{path}/events"),
            &small,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(text, "event: end\ndata: {\"status\":\"cancelled\"}\n\n");

    // A worker runs the other key's run; its journal streams, and resumes after an id.
    let mut worker = GatewayProcess::spawn(command(dir.path()).args([
        "agent",
        "worker",
        "--config",
        "crossbar.toml",
        "--store",
        &store,
        "--id",
        "w",
        "--poll-ms",
        "50",
    ]))
    .await;
    let events_path = format!("/v1/crossbar/runs/{their_id}/events");
    let (status, text) = api
        .send(reqwest::Method::GET, &events_path, &other, None, &[])
        .await;
    assert_eq!(status, 200);
    let ids: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    let kinds: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("event: "))
        .collect();
    assert_eq!(kinds.first(), Some(&"started"), "{text}");
    assert_eq!(kinds[kinds.len() - 2..], ["finished", "end"], "{text}");
    assert_eq!(
        ids,
        (0..ids.len()).map(|i| i.to_string()).collect::<Vec<_>>()
    );
    assert!(
        text.ends_with("event: end\ndata: {\"status\":\"completed\"}\n\n"),
        "{text}"
    );
    let (_, rest) = api
        .send(
            reqwest::Method::GET,
            &events_path,
            &other,
            None,
            &[("Last-Event-ID", "0")],
        )
        .await;
    let resumed: Vec<&str> = rest
        .lines()
        .filter_map(|l| l.strip_prefix("id: "))
        .collect();
    assert_eq!(resumed, ids[1..]);
    let (status, bad) = api
        .json(
            reqwest::Method::GET,
            &events_path,
            &other,
            None,
            &[("Last-Event-ID", "x")],
        )
        .await;
    assert_eq!(
        refused(&(status, bad.clone())),
        (400, "Last-Event-ID"),
        "{bad}"
    );

    let (status, shown) = api
        .json(
            reqwest::Method::GET,
            &format!("/v1/crossbar/runs/{their_id}"),
            &other,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(shown["status"], "completed");
    assert_eq!(shown["worker"], "w");
    assert_eq!(shown["takeovers"], 0);
    assert!(shown["claimed_ms"].as_i64().unwrap() >= shown["created_ms"].as_i64().unwrap());
    assert_eq!(shown["per_step"].as_array().unwrap().len(), 1);
    assert!(shown["cost_usd"].as_f64().unwrap() > 0.0);

    // A run whose agent cannot be started ends `failed`, saying why (not retried forever).
    let (status, broken) = api
        .submit(&other, json!({ "agent": "broken", "input": "x" }), None)
        .await;
    assert_eq!(status, 201, "{broken}");
    let broken_path = format!("/v1/crossbar/runs/{}", broken["id"].as_str().unwrap());
    let start = Instant::now();
    let ended = loop {
        let (_, run) = api
            .json(reqwest::Method::GET, &broken_path, &other, None, &[])
            .await;
        if run["status"] != "queued" && run["status"] != "running" {
            break run;
        }
        assert!(start.elapsed() < Duration::from_secs(30), "{run}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    assert_eq!(ended["status"], "failed", "{ended}");
    let last = &ended["events"].as_array().unwrap().last().unwrap()["entry"];
    assert_eq!(last["kind"], "finished");
    let reason = last["reason"].as_str().unwrap();
    assert!(
        reason.starts_with("the agent could not be started: ") && reason.contains("gone"),
        "{reason}"
    );

    // The queue in /metrics.
    let (status, metrics) = api
        .send(reqwest::Method::GET, "/metrics", ADMIN, None, &[])
        .await;
    assert_eq!(status, 200);
    assert!(
        metrics.contains("crossbar_agent_runs{status=\"completed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crossbar_agent_runs{status=\"cancelled\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crossbar_agent_runs{status=\"failed\"} 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("crossbar_agent_runs_submitted_total{agent=\"typed\"} 2"),
        "{metrics}"
    );
    // Two runs claimed (one cancelled before): the gauge is there, in whole milliseconds.
    let latency = metrics
        .lines()
        .find_map(|l| l.strip_prefix("crossbar_agent_run_claim_latency_ms{stat=\"max\"} "))
        .unwrap_or_else(|| panic!("{metrics}"));
    assert!(latency.parse::<u64>().is_ok(), "{latency}");

    // Scoped admin tokens: a viewer reads every run and cancels none; a team admin sees the
    // runs of its team's keys only.
    let (status, research) = api.submit(&teamed, paris.clone(), None).await;
    assert_eq!(status, 201);
    let research_id = research["id"].as_str().unwrap().to_owned();
    assert_eq!(api.ids(&viewer).await.len(), 4);
    assert_eq!(api.ids(&lead).await, std::slice::from_ref(&research_id));
    let (status, _) = api
        .json(reqwest::Method::GET, &path, &lead, None, &[])
        .await;
    assert_eq!(status, 404, "another team's run");
    let (status, _) = api
        .json(
            reqwest::Method::GET,
            &format!("/v1/crossbar/runs/{research_id}"),
            &lead,
            None,
            &[],
        )
        .await;
    assert_eq!(status, 200);
    let research_cancel = format!("/v1/crossbar/runs/{research_id}/cancel");
    let (status, refused) = api
        .json(reqwest::Method::POST, &research_cancel, &viewer, None, &[])
        .await;
    assert_eq!(
        (status, refused["error"]["code"].as_str()),
        (403, Some("role_forbidden"))
    );
    let (status, _) = api
        .json(reqwest::Method::POST, &cancel, &lead, None, &[])
        .await;
    assert_eq!(status, 404, "a team admin cannot cancel another team's run");

    // SIGTERM: an idle worker stops at once.
    worker.terminate();
    let start = Instant::now();
    let status = worker.wait().await;
    assert!(status.success(), "{status}");
    assert!(start.elapsed() < Duration::from_secs(5));
}

/// The README's picture, runnable: the orchestration layer (runs API, store, workers) and the
/// model layer (a gateway) as separate services talking HTTP; a worker killed mid-way.
#[tokio::test]
async fn the_agents_service_example_runs_offline() {
    if std::process::Command::new("curl")
        .arg("--version")
        .output()
        .is_err()
    {
        assert!(
            std::env::var_os("CI").is_none(),
            "curl is missing (scripts/test installs it)"
        );
        eprintln!("skipped: curl is not installed");
        return;
    }
    let script = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/agents-service/run.sh"
    );
    let output = tokio::process::Command::new("bash")
        .arg(script)
        .env("CROSSBAR", BIN)
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(stdout.contains("completed: 4 of 4"), "{stdout}");
    assert_eq!(
        stdout.matches(" estimator  completed ").count(),
        4,
        "{stdout}"
    );
}

//! Black-box dashboard: known traffic through the real gateway (including a failing
//! deployment), then the JSON behind each page must show its exact numbers; `/ui` is served from
//! the binary and, once keys exist, only to the admin token.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

mod common;

use base64::Engine as _;
use common::{TestGateway, start, user};
use crossbar_store::{EventRecord, JournalStore, RunRecord, RunTotals, SqlStore, UsageRecord};
use crossbar_testkit::http::json_of;
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-dashboard-0123";

fn store_path() -> String {
    common::temp_db("dashboard").display().to_string()
}

/// Two clouds answering, one deployment that always fails with 503 (first choice: cheapest).
const PROVIDERS: &str = concat!(
    crossbar_testkit::sim_openai!(),
    crossbar_testkit::sim_azure!(),
    crossbar_testkit::broken_openai!(),
    r#"
[[models]]
name = "chat"
deployments = [
  { provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0 } },
]

[[models]]
name = "failover"
deployments = [
  { provider = "broken", target = "gpt-4o", price = { input = 1.0, output = 1.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 3.0, output = 12.0 } },
]
"#
);

async fn open_gateway() -> TestGateway {
    start(&format!("[store]\nurl = \"{}\"\n{PROVIDERS}", store_path())).await
}

async fn get_json(gw: &TestGateway, path: &str) -> Value {
    let response = gw.get(path).await;
    assert_eq!(response.status(), 200, "{path}");
    response.json().await.unwrap()
}

/// Sends 3 calls to `chat`, 2 to `failover` and 1 to an unknown model; returns the request
/// ids of the calls that were answered.
async fn known_traffic(gw: &TestGateway) -> Vec<String> {
    let mut ids = Vec::new();
    for model in ["chat", "chat", "chat", "failover", "failover"] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": model, "messages": [user("Tell me about otters")]}),
            )
            .await;
        assert_eq!(response.status(), 200);
        ids.push(
            response.headers()["x-request-id"]
                .to_str()
                .unwrap()
                .to_owned(),
        );
    }
    let missing = common::chat(gw, "nope", "hi").await;
    assert_eq!(missing.status(), 404);
    ids
}

fn find<'a>(list: &'a Value, name: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|g| g["name"] == name)
        .unwrap_or_else(|| panic!("no group `{name}` in {list}"))
}

/// Picodollars as the exact decimal string the API shows.
fn usd(pico: u64) -> String {
    crossbar_core::pricing::format_usd(pico)
}

#[tokio::test]
async fn the_overview_counts_known_traffic_by_provider_and_cloud() {
    let gw = open_gateway().await;
    known_traffic(&gw).await;
    let stored = common::usage_records(&gw, 6).await;
    let total: u64 = stored.iter().map(|r| r.cost_pusd).sum();
    let cost_of = |provider: &str| -> u64 {
        stored
            .iter()
            .filter(|r| r.provider.as_deref() == Some(provider))
            .map(|r| r.cost_pusd)
            .sum()
    };
    assert!(cost_of("sim-openai") > 0 && cost_of("sim-azure") > 0);

    let o = get_json(&gw, "/v1/crossbar/overview?window=5m&buckets=30").await;
    let totals = &o["totals"];
    assert_eq!(totals["requests"], 6);
    assert_eq!(totals["failed"], 1, "the unknown model");
    assert_eq!(totals["error_rate"], 0.167);
    assert_eq!(totals["cost"], usd(total));
    assert!(totals["latency_ms"]["p50"].as_u64().is_some());
    assert!(totals["ttft_ms"]["p95"].as_u64().is_some());
    assert!(totals["overhead_ms"]["p50"].as_u64().is_some());
    assert_eq!(o["requests_per_s"], 0.1, "6 requests in the last minute");

    let openai = find(&o["by_provider"], "sim-openai");
    assert_eq!(openai["requests"], 3);
    assert_eq!(openai["share"], 0.5);
    assert_eq!(openai["cost"], usd(cost_of("sim-openai")));
    let azure = find(&o["by_cloud"], "azure");
    assert_eq!(azure["requests"], 2);
    assert_eq!(azure["failed"], 0, "failover hid the broken deployment");
    assert_eq!(azure["cost"], usd(cost_of("sim-azure")));
    assert_eq!(find(&o["by_cloud"], "(no answer)")["failed"], 1);
    assert_eq!(
        find(&o["by_deployment"], "failover@sim-azure")["requests"],
        2
    );
    assert_eq!(find(&o["by_model"], "chat")["requests"], 3);

    let buckets = o["buckets"].as_array().unwrap();
    assert_eq!(buckets.len(), 30);
    let summed: u64 = buckets
        .iter()
        .map(|b| b["requests"].as_u64().unwrap())
        .sum();
    assert_eq!(summed, 6);
    let openai_in_buckets: u64 = buckets
        .iter()
        .filter_map(|b| b["by_provider"]["sim-openai"]["requests"].as_u64())
        .sum();
    assert_eq!(openai_in_buckets, 3);
}

#[tokio::test]
async fn the_request_log_filters_and_shows_attempts_tokens_and_cost() {
    let gw = open_gateway().await;
    let ids = known_traffic(&gw).await;
    let stored = common::usage_records(&gw, 6).await;

    let all = get_json(&gw, "/v1/crossbar/requests").await;
    let listed: Vec<&str> = all["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["request_id"].as_str().unwrap())
        .collect();
    assert_eq!(listed.len(), 6);
    assert_eq!(
        listed[1..],
        [ids[4].as_str(), &ids[3], &ids[2], &ids[1], &ids[0]],
        "newest first"
    );

    let failed = get_json(&gw, "/v1/crossbar/requests?status=error").await;
    assert_eq!(failed["data"].as_array().unwrap().len(), 1);
    assert_eq!(failed["data"][0]["model"], "nope");
    assert_eq!(failed["data"][0]["status"], 404);

    let by_model = get_json(&gw, "/v1/crossbar/requests?model=chat&limit=2").await;
    assert_eq!(by_model["data"].as_array().unwrap().len(), 2);

    // The failing deployment answered nothing, but its attempts find the requests it touched.
    let touched = get_json(&gw, "/v1/crossbar/requests?deployment=failover@broken").await;
    let touched = touched["data"].as_array().unwrap();
    assert!(!touched.is_empty());
    for request in touched {
        assert_eq!(request["deployment"], "failover@sim-azure");
        assert_eq!(request["attempts"][0]["deployment"], "failover@broken");
        assert_eq!(request["attempts"][0]["outcome"], "error");
        assert_eq!(request["attempts"][0]["status"], 503);
    }
    let none = get_json(&gw, "/v1/crossbar/requests?key=someone").await;
    assert_eq!(none["data"], json!([]));
    let bad = gw.get("/v1/crossbar/requests?status=teapot").await;
    assert_eq!(bad.status(), 400);

    // The first failover request tried the broken deployment, then azure answered.
    let id = &ids[3];
    let record = stored.iter().find(|r| &r.request_id == id).unwrap();
    let detail = get_json(&gw, &format!("/v1/crossbar/requests/{id}")).await;
    assert_eq!(detail["request_id"], id.as_str());
    assert_eq!(detail["input_tokens"], record.input_tokens);
    assert_eq!(detail["output_tokens"], record.output_tokens);
    assert_eq!(detail["cost"], usd(record.cost_pusd));
    assert_eq!(detail["retries"], 1);
    assert_eq!(detail["hedges"], 0);
    let attempts = detail["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 2);
    assert_eq!(attempts[1]["outcome"], "ok");
    assert_eq!(
        attempts[1]["cost"],
        usd(record.cost_pusd),
        "only the answer is billed"
    );
    assert_eq!(attempts[0]["start_ms"], 0);
    assert_eq!(attempts[1]["start_ms"], attempts[0]["end_ms"]);
    assert_eq!(
        attempts[1]["end_ms"].as_u64().unwrap() - attempts[1]["start_ms"].as_u64().unwrap(),
        record.attempts[1].latency_ms
    );

    let missing = gw.get("/v1/crossbar/requests/req_nope").await;
    assert_eq!(missing.status(), 404);
}

#[tokio::test]
async fn whatif_keys_runs_and_the_ui_are_served() {
    let gw = open_gateway().await;
    known_traffic(&gw).await;
    let stored = common::usage_records(&gw, 6).await;

    let whatif = get_json(&gw, "/v1/crossbar/whatif?since=1h").await;
    let rows = whatif["data"].as_array().unwrap();
    let deployments: Vec<&str> = rows
        .iter()
        .map(|r| r["deployment"].as_str().unwrap())
        .collect();
    assert_eq!(
        deployments,
        ["chat@sim-openai", "failover@broken", "failover@sim-azure"],
        "cheapest first per model"
    );
    let azure: Vec<&UsageRecord> = stored.iter().filter(|r| r.model == "failover").collect();
    let actual: u64 = azure.iter().map(|r| r.cost_pusd).sum();
    // At $1/M in and out the broken deployment would have cost exactly the tokens.
    let on_broken: u64 = azure
        .iter()
        .map(|r| (r.input_tokens + r.output_tokens) * 1_000_000)
        .sum();
    assert_eq!(rows[1]["cost_usd"], usd(on_broken));
    assert_eq!(rows[1]["actual_usd"], usd(actual));
    assert_eq!(rows[1]["served"], 0);
    assert_eq!(rows[2]["cost_usd"], usd(actual));
    assert_eq!(rows[2]["served"], 2);

    let keys = get_json(&gw, "/v1/crossbar/keys").await;
    assert_eq!(keys["data"], json!([]));
    assert_eq!(keys["unkeyed"]["total"]["requests"], 6);
    let total: u64 = stored.iter().map(|r| r.cost_pusd).sum();
    assert_eq!(keys["unkeyed"]["total"]["spent"], usd(total));

    let runs = get_json(&gw, "/v1/crossbar/runs").await;
    assert_eq!(runs["data"], json!([]));
    assert_eq!(gw.get("/v1/crossbar/runs/run_nope").await.status(), 404);

    let page = gw.get("/ui").await;
    assert_eq!(page.status(), 200);
    assert_eq!(page.headers()["content-type"], "text/html; charset=utf-8");
    assert!(
        page.headers()["content-security-policy"]
            .to_str()
            .unwrap()
            .contains("default-src 'none'")
    );
    let html = page.text().await.unwrap();
    assert!(html.contains("/ui/app.js"), "{html}");
    let script = gw.get("/ui/app.js").await;
    assert_eq!(script.status(), 200);
    assert!(
        script
            .text()
            .await
            .unwrap()
            .contains("/v1/crossbar/overview")
    );
    assert_eq!(gw.get("/ui/charts.js").await.status(), 200);
    let slash = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap()
        .get(format!("{}/ui/", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(slash.status(), 308);
    assert_eq!(slash.headers()["location"], "/ui");
    assert_eq!(gw.get("/ui/secret.toml").await.status(), 404);
}

#[tokio::test]
async fn without_a_store_the_history_pages_say_why() {
    let gw = start(PROVIDERS).await;
    let response = gw.get("/v1/crossbar/overview").await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "store_disabled");
    assert_eq!(gw.get("/ui/").await.status(), 200);
}

/// A run journaled the way the agent runtime writes it: a model call asking for two tools,
/// their results, a second model call, the end.
#[tokio::test]
async fn agent_runs_show_steps_tool_calls_and_cost_per_step() {
    let path = store_path();
    let gw = start(&format!("[store]\nurl = \"{path}\"\n{PROVIDERS}")).await;
    let journal = SqlStore::open(&path).await.unwrap();
    let run = RunRecord {
        id: "run_1".to_owned(),
        agent: "researcher".to_owned(),
        spec_path: "agent.toml".to_owned(),
        spec: String::new(),
        task: "How many otters?".to_owned(),
        status: "running".to_owned(),
        created_ms: 1_000,
        updated_ms: 1_000,
        totals: RunTotals::default(),
        answer: None,
    };
    journal.create_run(&run).await.unwrap();
    let entries = [
        json!({"kind": "started", "task": "How many otters?", "agent": "researcher"}),
        json!({"kind": "model_call", "step": 1, "role": "executor", "model": "chat",
            "deployment": "chat@sim-openai", "usage": {"input_tokens": 100, "output_tokens": 20},
            "cost_usd": 0.00045}),
        json!({"kind": "tool_started", "step": 1, "call_id": "c1", "name": "calculator"}),
        json!({"kind": "tool_started", "step": 1, "call_id": "c2", "name": "http_fetch"}),
        json!({"kind": "tool_result", "step": 1, "call_id": "c1", "name": "calculator", "is_error": false}),
        json!({"kind": "tool_result", "step": 1, "call_id": "c2", "name": "http_fetch", "is_error": true}),
        json!({"kind": "model_call", "step": 2, "role": "executor", "model": "chat",
            "deployment": "chat@sim-openai", "usage": {"input_tokens": 150, "output_tokens": 10},
            "cost_usd": 0.000475}),
        json!({"kind": "finished", "status": "completed", "answer": "Seven.", "reason": "answer"}),
    ];
    for (seq, entry) in entries.iter().enumerate() {
        let event = EventRecord {
            run_id: "run_1".to_owned(),
            seq: seq as u64,
            time_ms: 1_000 + seq as i64,
            kind: entry["kind"].as_str().unwrap().to_owned(),
            data: entry.to_string(),
        };
        let totals = RunTotals {
            steps: 2,
            tokens: 280,
            cost_pusd: 925_000_000,
            elapsed_ms: 1_500,
        };
        journal
            .append_event(&event, "completed", totals)
            .await
            .unwrap();
    }

    let runs = get_json(&gw, "/v1/crossbar/runs").await;
    let listed = &runs["data"][0];
    assert_eq!(listed["id"], "run_1");
    assert_eq!(listed["status"], "completed");
    assert_eq!(listed["steps"], 2);
    assert_eq!(listed["tool_calls"], 2);
    assert_eq!(listed["cost"], "0.000925");

    let detail = get_json(&gw, "/v1/crossbar/runs/run_1").await;
    assert_eq!(detail["events"].as_array().unwrap().len(), 8);
    let steps = detail["per_step"].as_array().unwrap();
    assert_eq!(steps.len(), 2);
    assert_eq!(steps[0]["input_tokens"], 100);
    assert_eq!(steps[0]["cost_usd"], 0.00045);
    assert_eq!(
        steps[0]["tools"][1],
        json!({"name": "http_fetch", "call_id": "c2", "is_error": true})
    );
    assert_eq!(steps[1]["output_tokens"], 10);
    assert_eq!(steps[1]["tools"], json!([]));
}

fn keyed_config(admin: bool) -> String {
    let admin = if admin {
        format!("[admin]\ntoken = \"{ADMIN}\"\n")
    } else {
        String::new()
    };
    format!(
        "[server]\napi_keys = [\"sk-static-gateway-key\"]\n[store]\nurl = \"{}\"\n{admin}{PROVIDERS}",
        store_path()
    )
}

fn basic(password: &str) -> String {
    let encoded = base64::engine::general_purpose::STANDARD.encode(format!("ops:{password}"));
    format!("Basic {encoded}")
}

#[tokio::test]
async fn with_keys_only_the_admin_token_opens_the_dashboard() {
    let gw = start(&keyed_config(true)).await;
    let client = gw.client();
    let get = |path: &str, auth: Option<String>| {
        let mut request = client.get(format!("{}{path}", gw.url));
        if let Some(auth) = auth {
            request = request.header("authorization", auth);
        }
        request.send()
    };

    // A virtual key with a daily budget, then traffic on it.
    let created = json_of(
        client
            .post(format!("{}/admin/keys", gw.url))
            .bearer_auth(ADMIN)
            .json(&json!({"name": "team-a", "budget_usd_day": 2.0, "rpm": 100})),
    )
    .await;
    let secret = created["key"].as_str().unwrap();
    for _ in 0..2 {
        let response = client
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(secret)
            .json(&json!({"model": "chat", "messages": [user("hello")]}))
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
    }
    let stored = common::usage_records(&gw, 2).await;
    let spent: u64 = stored.iter().map(|r| r.cost_pusd).sum();

    for path in [
        "/ui",
        "/ui/app.js",
        "/v1/crossbar/keys",
        "/v1/crossbar/overview",
    ] {
        let anonymous = get(path, None).await.unwrap();
        assert_eq!(anonymous.status(), 401, "{path}");
        assert!(
            anonymous.headers()["www-authenticate"]
                .to_str()
                .unwrap()
                .starts_with("Basic realm="),
            "{path}"
        );
        // A gateway key is not the admin token.
        let gateway_key = get(path, Some(format!("Bearer {secret}"))).await.unwrap();
        assert_eq!(gateway_key.status(), 401, "{path}");
        let wrong = get(path, Some(basic("admin-token-wrong"))).await.unwrap();
        assert_eq!(wrong.status(), 401, "{path}");
        let bearer = get(path, Some(format!("Bearer {ADMIN}"))).await.unwrap();
        assert_eq!(bearer.status(), 200, "{path}");
    }

    let keys: Value = get("/v1/crossbar/keys", Some(basic(ADMIN)))
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let key = &keys["data"][0];
    assert_eq!(key["name"], "team-a");
    assert_eq!(key["spend"]["day"]["spent"], usd(spent));
    assert_eq!(key["spend"]["day"]["requests"], 2);
    assert_eq!(key["spend"]["day"]["budget_usd"], 2.0);
    let used = (spent as f64 / 2e12 * 1000.0).round() / 1000.0;
    assert_eq!(key["spend"]["day"]["used"], used);
    assert_eq!(key["spend"]["total"]["budget_usd"], Value::Null);
    assert_eq!(key["last_minute"]["requests"], 2);
    assert_eq!(key["rpm"], 100);
    assert!(key.get("hash").is_none());

    // The router's live view opens to the admin token too (and still to gateway keys).
    let live = get("/v1/crossbar/deployments", Some(basic(ADMIN)))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let live = get("/v1/crossbar/deployments", Some(format!("Bearer {secret}")))
        .await
        .unwrap();
    assert_eq!(live.status(), 200);
    let live = get("/v1/crossbar/deployments", None).await.unwrap();
    assert_eq!(live.status(), 401);
}

#[tokio::test]
async fn with_keys_and_no_admin_token_there_is_no_dashboard() {
    let gw = start(&keyed_config(false)).await;
    for path in ["/ui", "/v1/crossbar/overview"] {
        let response = gw.get(path).await;
        assert_eq!(response.status(), 404, "{path}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["error"]["code"], "admin_disabled");
    }
}

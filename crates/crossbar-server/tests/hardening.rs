//! Attacks from issue 18 against the real handler on port 0: each test reproduces one and
//! asserts the gateway's answer (and that it stays available).

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use std::time::{Duration, Instant};

use common::{TWO_CLOUDS, start, user};
use crossbar_testkit::http::json_of;
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

/// A 19-byte header of stars took exponential time in the recursive matcher and pinned a core
/// per request; now it is refused with a 400 naming the header, and a long pattern of the
/// accepted shape answers at once.
#[tokio::test]
async fn starry_provider_patterns_are_refused_at_once() {
    let gw = start(TWO_CLOUDS).await;
    let started = Instant::now();
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-crossbar-provider", "*".repeat(19))
        .json(&json!({"model": "chat", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-crossbar-provider");
    assert_eq!(
        body["error"]["message"],
        "A provider pattern may hold at most 4 `*`."
    );
    // Four stars between literals that never match: linear, so instant.
    let response = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .header("x-crossbar-provider", format!("*{}*x*y*z", "s".repeat(100)))
        .json(&json!({"model": "chat", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404, "{:?}", response.text().await);
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "took {:?}",
        started.elapsed()
    );
}

/// Reads until the peer closes; `None` if it is still open after `within`.
async fn closed_within(tcp: &mut TcpStream, within: Duration) -> Option<Vec<u8>> {
    let mut seen = Vec::new();
    let read = async {
        let mut buf = [0u8; 4096];
        loop {
            match tcp.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => seen.extend_from_slice(&buf[..n]),
            }
        }
    };
    tokio::time::timeout(within, read).await.ok()?;
    Some(seen)
}

fn with_server(extra: &str) -> String {
    format!("[server]\n{extra}\n{TWO_CLOUDS}")
}

/// Slowloris: headers that never finish (or nothing at all, or half an HTTP/2 preface) held a
/// connection forever; with a 1 s header timeout each is closed, and the gateway still serves.
#[tokio::test]
async fn unfinished_headers_are_cut_off() {
    let gw = start(&with_server("header_read_timeout_s = 1")).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut partial = TcpStream::connect(&addr).await.unwrap();
    partial
        .write_all(b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\nX-Slow: ")
        .await
        .unwrap();
    let mut silent = TcpStream::connect(&addr).await.unwrap();
    let mut preface = TcpStream::connect(&addr).await.unwrap();
    preface.write_all(b"PRI * HTTP/2.0\r\n").await.unwrap();
    for (name, tcp) in [
        ("partial headers", &mut partial),
        ("silent", &mut silent),
        ("half a preface", &mut preface),
    ] {
        assert!(
            closed_within(tcp, Duration::from_secs(10)).await.is_some(),
            "{name}: still open after 10 s"
        );
    }
    // An idle keep-alive connection is closed too, after a request it was served.
    let mut idle = TcpStream::connect(&addr).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let answer = closed_within(&mut idle, Duration::from_secs(10))
        .await
        .expect("the idle connection is closed");
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer)
    );
    assert_eq!(gw.get("/healthz").await.status(), 200);
}

/// Past `max_connections`, a new connection gets a 503 with `Retry-After` in the gateway's
/// error shape instead of taking a descriptor forever; once one closes, service resumes.
#[tokio::test]
async fn connections_past_the_cap_are_shed_with_503() {
    let gw = start(&with_server(
        "max_connections = 2\nheader_read_timeout_s = 30",
    ))
    .await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let held_a = TcpStream::connect(&addr).await.unwrap();
    let mut held_b = TcpStream::connect(&addr).await.unwrap();
    held_b
        .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut first = [0u8; 12];
    held_b.read_exact(&mut first).await.unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    let response = reqwest::Client::new()
        .get(format!("{}/healthz", gw.url))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 503);
    assert_eq!(response.headers()["retry-after"], "1");
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["message"],
        "The gateway is serving its maximum number of connections; retry shortly."
    );
    assert_eq!(body["error"]["type"], "server_error");
    drop(held_a);
    drop(held_b);
    // The slots come back when the connections close.
    let mut status = 0;
    for _ in 0..50 {
        status = gw.get("/healthz").await.status().as_u16();
        if status == 200 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(status, 200);
}

/// A body that stops arriving is cut off after `body_read_timeout_s` with an error, instead of
/// holding the request forever.
#[tokio::test]
async fn stalled_bodies_time_out() {
    let gw = start(&with_server("body_read_timeout_s = 1")).await;
    let addr = gw.url.trim_start_matches("http://").to_owned();
    let mut tcp = TcpStream::connect(&addr).await.unwrap();
    tcp.write_all(
        b"POST /v1/chat/completions HTTP/1.1\r\nHost: localhost\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{\"model\":",
    )
    .await
    .unwrap();
    let answer = closed_within(&mut tcp, Duration::from_secs(10))
        .await
        .expect("the stalled request is answered and closed");
    let answer = String::from_utf8_lossy(&answer);
    assert!(answer.starts_with("HTTP/1.1 400 "), "{answer}");
    assert!(
        answer.contains("\"message\":\"Could not read the request body: Failed to buffer the request body: data was not received within the designated timeout\""),
        "{answer}"
    );
}

fn store_path(name: &str) -> String {
    let dir =
        std::env::temp_dir().join(format!("crossbar_hardening_{}_{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("usage.db").display().to_string()
}

/// The `[store]` (a fresh `name` directory) and `[admin]` sections of a keyed gateway.
fn keyed_store(name: &str) -> String {
    format!(
        "[store]\nurl = \"{}\"\n[admin]\ntoken = \"{ADMIN}\"\n",
        store_path(name)
    )
}

async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    (
        status,
        response.json::<Value>().await.unwrap()["error"].clone(),
    )
}

/// Sends `request`: the status and the `error` object of the answer.
async fn refusal(request: reqwest::RequestBuilder) -> (u16, Value) {
    error_of(request.send().await.unwrap()).await
}

/// An open gateway (no keys) was reachable from any web page the user had open: a `text/plain`
/// POST needs no CORS preflight, and a DNS-rebinding page (`Host: rebind.evil.example`) could
/// read the dashboard. Each is refused, and none of them leaves a usage row.
#[tokio::test]
async fn an_open_gateway_refuses_web_pages_and_rebinding() {
    let store = store_path("open");
    let gw = start(&format!("[store]\nurl = \"{store}\"\n{TWO_CLOUDS}")).await;
    let chat = || gw.client().post(format!("{}/v1/chat/completions", gw.url));
    let body = json!({"model": "chat", "messages": [user("spend my money")]}).to_string();
    let (status, error) = refusal(
        chat()
            .header("content-type", "text/plain")
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, 415);
    assert_eq!(error["param"], "content-type");
    assert_eq!(
        error["message"],
        "Request bodies must be JSON, sent with `content-type: application/json`."
    );
    let (status, error) = refusal(
        chat()
            .header("content-type", "application/json")
            .header("origin", "https://evil.example")
            .body(body.clone()),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error["code"], "open_gateway_foreign_origin");
    for path in ["/v1/crossbar/overview", "/v1/responses/resp_1", "/metrics"] {
        let response = gw
            .client()
            .get(format!("{}{path}", gw.url))
            .header("host", "rebind.evil.example:4000")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 403, "{path}");
    }
    let (status, error) = refusal(
        chat()
            .header("host", "rebind.evil.example")
            .json(&json!({"model": "chat", "messages": [user("hi")]})),
    )
    .await;
    assert_eq!(status, 403);
    assert_eq!(error["code"], "open_gateway_foreign_host");
    // The gateway's own pages and local tools still work.
    let ok = chat()
        .header("origin", "http://localhost:4000")
        .json(&json!({"model": "chat", "messages": [user("hi")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    // Records are written in order: the refused requests would have come first.
    let written = common::usage_records(&gw, 1).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].status, 200);
}

const ADMIN: &str = "admin-token-0123456789";

/// On a keyed gateway `/metrics` (per-key spend) was open to anyone who could reach the port;
/// it now needs the admin token. Requests without a valid key are counted, not recorded.
#[tokio::test]
async fn keyed_metrics_need_the_admin_token_and_strangers_leave_no_rows() {
    let gw = start(&format!("{}{TWO_CLOUDS}", keyed_store("keyed"))).await;
    let (key, id) = create_key(&gw, json!({"name": "team"})).await;
    let metrics = |token: Option<&str>| {
        let request = gw.client().get(format!("{}/metrics", gw.url));
        match token {
            Some(token) => request.bearer_auth(token),
            None => request,
        }
        .send()
    };
    assert_eq!(metrics(None).await.unwrap().status(), 401);
    let (status, error) = error_of(metrics(Some(&key)).await.unwrap()).await;
    assert_eq!(status, 401);
    assert_eq!(
        error["message"],
        "`/metrics` needs the admin token (`Authorization: Bearer <admin.token>`) once the gateway has keys."
    );
    let chat = |key: Option<&str>| {
        let request = gw
            .client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .json(&json!({"model": "chat", "messages": [user("hi")]}));
        match key {
            Some(key) => request.bearer_auth(key),
            None => request,
        }
        .send()
    };
    assert_eq!(chat(None).await.unwrap().status(), 401);
    assert_eq!(chat(Some("cb-not-a-key")).await.unwrap().status(), 401);
    assert_eq!(chat(Some(&key)).await.unwrap().status(), 200);
    let written = common::usage_records(&gw, 1).await;
    assert_eq!(written.len(), 1, "{written:?}");
    assert_eq!(written[0].key_id.as_deref(), Some(id.as_str()));
    let scraped = metrics(Some(ADMIN)).await.unwrap();
    assert_eq!(scraped.status(), 200);
    let text = scraped.text().await.unwrap();
    assert!(
        text.contains("crossbar_unauthenticated_rejections_total{reason=\"incorrect_key\"}"),
        "{text}"
    );
}

/// Creates a virtual key through the admin API: (secret, id).
async fn create_key(gw: &common::TestGateway, spec: Value) -> (String, String) {
    let created = json_of(
        gw.client()
            .post(format!("{}/admin/keys", gw.url))
            .bearer_auth(ADMIN)
            .json(&spec),
    )
    .await;
    (
        created["key"].as_str().unwrap().to_owned(),
        created["id"].as_str().unwrap().to_owned(),
    )
}

/// What the ledger says a key spent, in picodollars.
async fn spent_by(gw: &common::TestGateway, id: &str) -> u64 {
    gw.gateway.flush().await;
    gw.gateway
        .store
        .clone()
        .unwrap()
        .usage_since(0, 10_000)
        .await
        .unwrap()
        .iter()
        .filter(|r| r.key_id.as_deref() == Some(id))
        .map(|r| r.cost_pusd)
        .sum()
}

/// A continuation (`previous_response_id`) was reserved from its own small body, not from the
/// stored history replayed upstream: with a $1 budget, concurrent continuations of a large
/// stored response were all admitted and the key spent several dollars. The reservation now
/// prices the assembled request, so the ledger stays within the budget.
#[tokio::test]
async fn continuations_reserve_their_history_and_keep_to_the_budget() {
    let gw = start(&format!(
        r#"{}[[providers]]
name = "sim-slow"
kind = "sim"
dialect = "openai"
sim = {{ ttft_ms = 300 }}
[[models]]
name = "chat"
deployments = [{{ provider = "sim-slow", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]
"#,
        keyed_store("continuations")
    ))
    .await;
    let (key, id) = create_key(&gw, json!({"name": "capped", "budget_usd_total": 1.0})).await;
    let big = "lorem ".repeat(52_000);
    let first = json_of(
        gw.client()
            .post(format!("{}/v1/responses", gw.url))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "input": big, "max_output_tokens": 16})),
    )
    .await;
    let previous = first["id"].as_str().unwrap().to_owned();
    let one_call = spent_by(&gw, &id).await;
    assert!(
        one_call > 100_000_000_000,
        "the stored conversation costs over $0.10 a turn: {one_call}"
    );
    let calls = (0..20).map(|_| {
        gw.client()
            .post(format!("{}/v1/responses", gw.url))
            .bearer_auth(&key)
            .json(&json!({"model": "chat", "input": "and?", "previous_response_id": previous, "max_output_tokens": 16}))
            .send()
    });
    let statuses: Vec<u16> = futures::future::join_all(calls)
        .await
        .into_iter()
        .map(|r| r.unwrap().status().as_u16())
        .collect();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert!(refused >= 10, "{statuses:?}");
    let spent = spent_by(&gw, &id).await;
    assert!(
        spent <= 1_000_000_000_000,
        "the key spent ${} of its $1",
        spent as f64 / 1e12
    );
}

/// A key limited to one model was served by another through the route's fallbacks. Fallbacks
/// the key may not use are now dropped: the request fails over nowhere, and the other model's
/// provider never sees it. A key without limits still gets the fallback.
#[tokio::test]
async fn a_keys_model_list_holds_through_fallbacks() {
    let gw = start(&format!(
        r#"{}[[providers]]
name = "sim-mini"
kind = "sim"
dialect = "openai"
sim = {{ error_rate = 1.0, error_status = 503 }}
[[providers]]
name = "sim-big"
kind = "sim"
dialect = "openai"
[[models]]
name = "mini"
deployments = [{{ provider = "sim-mini", target = "gpt-4o-mini", price = {{ input = 0.15, output = 0.6 }} }}]
[[models]]
name = "big"
deployments = [{{ provider = "sim-big", target = "gpt-4o", price = {{ input = 3.0, output = 15.0 }} }}]
[routes.default]
fallbacks = ["big"]
"#,
        keyed_store("fallbacks")
    ))
    .await;
    let (limited, _) = create_key(&gw, json!({"name": "mini-only", "models": ["mini"]})).await;
    let (open, _) = create_key(&gw, json!({"name": "any"})).await;
    let chat = |key: &str| {
        gw.client()
            .post(format!("{}/v1/chat/completions", gw.url))
            .bearer_auth(key.to_owned())
            .json(&json!({"model": "mini", "messages": [user("hi")]}))
            .send()
    };
    let served = chat(&open).await.unwrap();
    assert_eq!(served.status(), 200);
    assert_eq!(served.headers()["x-crossbar-provider"], "sim-big");
    let before = gw.sim("sim-big").requests().len();
    let refused = chat(&limited).await.unwrap();
    assert_eq!(refused.status(), 503);
    assert_eq!(
        gw.sim("sim-big").requests().len(),
        before,
        "the fallback the key may not use was not called"
    );
}

/// Guardrails on the default route: an e-mail address is masked before it leaves (on every
/// ingress dialect), a payment card refuses the request with a 400 naming the rule in the
/// client's dialect and nothing reaches the provider; both are counted by name only.
#[tokio::test]
async fn guardrails_mask_or_block_what_leaves_for_the_provider() {
    let config = format!(
        "{TWO_CLOUDS}\n[routes.default]\nguardrails = {{ email = \"mask\", payment_card = \"block\", secret = \"block\" }}\n"
    );
    let gw = start(&config).await;
    let chat = |text: &str| json!({"model": "chat-azure", "messages": [user(text)]});

    let response = gw
        .post(
            "/v1/chat/completions",
            &chat("Mail jane.doe@example.com the summary."),
        )
        .await;
    assert_eq!(response.status(), 200);
    let sent = gw.requests("sim-azure");
    assert_eq!(sent.len(), 1);
    assert_eq!(
        sent[0].body.as_ref().unwrap()["messages"][0]["content"],
        "Mail [REDACTED:email] the summary."
    );

    for body in [
        chat("My card: 4111 1111 1111 1111"),
        chat("key AKIAIOSFODNN7EXAMPLE"),
    ] {
        let response = gw.post("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 400);
        let error: Value = response.json().await.unwrap();
        assert_eq!(error["error"]["type"], "invalid_request_error");
        assert_eq!(error["error"]["code"], "guardrail_blocked");
        let message = error["error"]["message"].as_str().unwrap();
        assert!(
            !message.contains("4111") && !message.contains("AKIA"),
            "{message}"
        );
    }
    // Anthropic Messages clients get their own error shape, naming the rule.
    let response = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(&json!({"model": "chat-azure", "max_tokens": 16,
            "messages": [{"role": "user", "content": "card 5555-5555-5555-4444"}]}))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(error["type"], "error");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    assert!(
        error["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("blocked by guardrail rule `payment_card`"),
        "{error}"
    );
    // Nothing blocked reached the provider.
    assert_eq!(gw.requests("sim-azure").len(), 1);

    let metrics = gw.get("/metrics").await.text().await.unwrap();
    for line in [
        r#"crossbar_guardrail_findings_total{detector="email",action="mask"} 1"#,
        r#"crossbar_guardrail_findings_total{detector="payment_card",action="block"} 2"#,
        r#"crossbar_guardrail_findings_total{detector="secret",action="block"} 1"#,
    ] {
        assert!(metrics.contains(line), "{line} missing from\n{metrics}");
    }
}

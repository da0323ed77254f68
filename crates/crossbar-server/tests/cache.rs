//! The response cache through the real gateway on a simulated provider: a deterministic
//! request is paid for once and then answered from the cache (answer and stream alike, with a
//! usage record marked as a hit at no cost), sampled requests are not cached unless forced, two
//! virtual keys never share an entry, and replicas on one Redis share entries.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use common::{TestGateway, chunks, sse_data, start, streamed_text, user};
use serde_json::{Value, json};

const ADMIN: &str = "admin-token-0123456789";

/// One simulated OpenAI provider serving `chat`, every route caching for 10 minutes.
fn config(extra: &str) -> String {
    format!(
        r#"
[admin]
token = "{ADMIN}"

[[providers]]
name = "sim"
kind = "sim"
dialect = "openai"

[[models]]
name = "chat"
deployments = [{{ provider = "sim", target = "gpt-4o", price = {{ input = 2.5, output = 10.0 }} }}]

[routes.default]
cache = {{ enabled = true, ttl_s = 600 }}

[routes.team]
models = ["chat"]
cache = {{ enabled = true, scope = "team" }}
{extra}
"#
    )
}

async fn gateway() -> TestGateway {
    let store = common::temp_db("cache");
    start(&config(&format!(
        "[store]\nurl = \"{}\"\n",
        store.display()
    )))
    .await
}

fn request(temperature: f64, stream: bool) -> Value {
    json!({
        "model": "chat",
        "temperature": temperature,
        "stream": stream,
        "messages": [user("Name three otters")],
    })
}

/// Posts `body` with `headers`: the response.
async fn post(gw: &TestGateway, body: &Value, headers: &[(&str, &str)]) -> reqwest::Response {
    let mut call = gw
        .client()
        .post(format!("{}/v1/chat/completions", gw.url))
        .json(body);
    for (name, value) in headers {
        call = call.header(*name, *value);
    }
    call.send().await.unwrap()
}

fn cache_header(response: &reqwest::Response) -> Option<String> {
    response
        .headers()
        .get("x-crossbar-cache")
        .map(|v| v.to_str().unwrap().to_owned())
}

/// A non-streamed answer: its `x-crossbar-cache` header and the message text.
async fn answer(
    gw: &TestGateway,
    body: &Value,
    headers: &[(&str, &str)],
) -> (Option<String>, Value) {
    let response = post(gw, body, headers).await;
    assert_eq!(response.status(), 200);
    let cache = cache_header(&response);
    (cache, response.json().await.unwrap())
}

fn text(answer: &Value) -> String {
    answer["choices"][0]["message"]["content"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_deterministic_request_is_paid_once_then_answered_from_the_cache() {
    let gw = gateway().await;
    let (first_cache, first) = answer(&gw, &request(0.0, false), &[]).await;
    let second = post(&gw, &request(0.0, false), &[]).await;
    assert_eq!(first_cache.as_deref(), Some("miss"));
    assert_eq!(cache_header(&second).as_deref(), Some("hit"));
    assert_eq!(second.headers()["age"], "0");
    assert_eq!(second.headers()["x-crossbar-attempts"], "0");
    assert_eq!(second.headers()["x-crossbar-route"], "default");
    let second: Value = second.json().await.unwrap();
    assert_eq!(second, first);
    assert_eq!(gw.requests("sim").len(), 1);

    let records = common::usage_records(&gw, 2).await;
    let paid = records.iter().find(|r| !r.tags.cache_hit).unwrap();
    let hit = records.iter().find(|r| r.tags.cache_hit).unwrap();
    let (prompt, completion) = common::chat_tokens(&first);
    assert_eq!(paid.cost_pusd, prompt * 2_500_000 + completion * 10_000_000);
    assert!(paid.cost_pusd > 0);
    assert_eq!(paid.deployment.as_deref(), Some("chat@sim"));
    assert_eq!(hit.cost_pusd, 0);
    assert_eq!(hit.deployment, None);
    assert!(hit.attempts.is_empty());
    assert_eq!((hit.input_tokens, hit.output_tokens), (prompt, completion));
    assert_eq!(hit.route.as_deref(), Some("default"));
    assert_eq!(hit.model, "chat");
    assert_eq!(hit.status, 200);

    let metrics = gw
        .client()
        .get(format!("{}/metrics", gw.url))
        .bearer_auth(ADMIN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    for result in ["hit", "miss", "store"] {
        assert!(
            metrics.contains(&format!("crossbar_cache_total{{result=\"{result}\"}}")),
            "{result} not counted"
        );
    }
}

#[tokio::test]
async fn a_streamed_hit_replays_the_cached_answer_and_the_same_bytes_each_time() {
    let gw = gateway().await;
    let (_, first) = answer(&gw, &request(0.0, false), &[]).await;
    let hit = post(&gw, &request(0.0, true), &[]).await;
    assert_eq!(cache_header(&hit).as_deref(), Some("hit"));
    let first_bytes = hit.text().await.unwrap();
    let again = post(&gw, &request(0.0, true), &[])
        .await
        .text()
        .await
        .unwrap();
    assert_eq!(again, first_bytes);
    assert!(first_bytes.ends_with("data: [DONE]\n\n"));
    let frames: Vec<String> = first_bytes
        .split("\n\n")
        .filter_map(|block| block.strip_prefix("data: "))
        .map(str::to_owned)
        .collect();
    assert_eq!(streamed_text(&chunks(&frames)), text(&first));
    assert_eq!(gw.requests("sim").len(), 1);
    let records = common::usage_records(&gw, 3).await;
    let hits: Vec<_> = records.iter().filter(|r| r.tags.cache_hit).collect();
    assert_eq!(hits.len(), 2);
    assert!(
        hits.iter()
            .all(|r| r.stream && r.cost_pusd == 0 && r.error.is_none())
    );
}

#[tokio::test]
async fn a_streamed_answer_is_kept_at_its_end_and_answers_the_next_request() {
    let gw = gateway().await;
    let streamed = post(&gw, &request(0.0, true), &[]).await;
    assert_eq!(cache_header(&streamed).as_deref(), Some("miss"));
    let (frames, ended) = sse_data(streamed).await;
    ended.unwrap();
    let streamed_text = streamed_text(&chunks(&frames));
    assert!(!streamed_text.is_empty());
    let (cache, hit) = answer(&gw, &request(0.0, false), &[]).await;
    assert_eq!(cache.as_deref(), Some("hit"));
    assert_eq!(text(&hit), streamed_text);
    assert_eq!(gw.requests("sim").len(), 1);
}

#[tokio::test]
async fn sampled_requests_are_not_cached_unless_the_caller_forces_it() {
    let gw = gateway().await;
    for _ in 0..2 {
        let (cache, _) = answer(&gw, &request(0.7, false), &[]).await;
        assert_eq!(cache, None);
    }
    // No temperature at all is sampling at the provider's default: not deterministic either.
    let unset = json!({"model": "chat", "messages": [user("Name three otters")]});
    assert_eq!(answer(&gw, &unset, &[]).await.0, None);
    assert_eq!(gw.requests("sim").len(), 3);

    let force = [("x-crossbar-cache", "force")];
    let (miss, first) = answer(&gw, &request(0.7, false), &force).await;
    let (hit, second) = answer(&gw, &request(0.7, false), &force).await;
    assert_eq!(
        (miss.as_deref(), hit.as_deref()),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(second, first);
    assert_eq!(gw.requests("sim").len(), 4);

    // `bypass` neither reads nor writes; `no-store` reads but keeps nothing new.
    let (bypass, _) = answer(&gw, &request(0.0, false), &[("x-crossbar-cache", "bypass")]).await;
    assert_eq!(bypass, None);
    let (no_store, _) = answer(
        &gw,
        &request(0.0, false),
        &[("x-crossbar-cache", "no-store")],
    )
    .await;
    assert_eq!(no_store.as_deref(), Some("miss"));
    let (after, _) = answer(&gw, &request(0.0, false), &[]).await;
    assert_eq!(after.as_deref(), Some("miss"));
    assert_eq!(gw.requests("sim").len(), 7);

    let bad = post(
        &gw,
        &request(0.0, false),
        &[("x-crossbar-cache", "sometimes")],
    )
    .await;
    assert_eq!(bad.status(), 400);
    let body: Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["param"], "x-crossbar-cache");
}

#[tokio::test]
async fn two_virtual_keys_never_share_an_entry() {
    let gw = gateway().await;
    let a = common::admin_key(&gw, ADMIN, &json!({"name": "a"})).await;
    let b = common::admin_key(&gw, ADMIN, &json!({"name": "b"})).await;
    let auth = |key: &str| format!("Bearer {key}");
    let (a1, first) = answer(&gw, &request(0.0, false), &[("authorization", &auth(&a))]).await;
    let (a2, _) = answer(&gw, &request(0.0, false), &[("authorization", &auth(&a))]).await;
    let (b1, _) = answer(&gw, &request(0.0, false), &[("authorization", &auth(&b))]).await;
    let (b2, second) = answer(&gw, &request(0.0, false), &[("authorization", &auth(&b))]).await;
    assert_eq!(
        [a1, a2, b1, b2].map(|c| c.unwrap()),
        ["miss", "hit", "miss", "hit"].map(str::to_owned)
    );
    assert_ne!(first["id"], second["id"]);
    assert_eq!(gw.requests("sim").len(), 2);
}

#[tokio::test]
async fn a_hit_still_counts_against_the_keys_rate_limit() {
    let gw = gateway().await;
    let key = common::admin_key(&gw, ADMIN, &json!({"name": "limited", "rpm": 2})).await;
    let auth = format!("Bearer {key}");
    let (miss, _) = answer(&gw, &request(0.0, false), &[("authorization", &auth)]).await;
    let (hit, _) = answer(&gw, &request(0.0, false), &[("authorization", &auth)]).await;
    assert_eq!(
        (miss.as_deref(), hit.as_deref()),
        (Some("miss"), Some("hit"))
    );
    // A third would be a hit too, but the key's two requests this minute are spent.
    let refused = post(&gw, &request(0.0, false), &[("authorization", &auth)]).await;
    assert_eq!(refused.status(), 429);
    assert_eq!(cache_header(&refused), None);
    assert_eq!(gw.requests("sim").len(), 1);
}

#[tokio::test]
async fn keys_of_one_team_share_entries_where_the_route_says_so() {
    let gw = gateway().await;
    let (status, _) = common::admin_call(
        &gw,
        ADMIN,
        reqwest::Method::POST,
        "/admin/teams",
        Some(json!({"name": "red"})),
    )
    .await;
    assert_eq!(status, 201);
    let a = common::admin_key(&gw, ADMIN, &json!({"name": "a", "team": "red"})).await;
    let b = common::admin_key(&gw, ADMIN, &json!({"name": "b", "team": "red"})).await;
    let c = common::admin_key(&gw, ADMIN, &json!({"name": "c"})).await;
    let mut body = request(0.0, false);
    body["model"] = json!("team");
    let mut seen = Vec::new();
    for key in [&a, &b, &c, &c] {
        let auth = format!("Bearer {key}");
        seen.push(
            answer(&gw, &body, &[("authorization", &auth)])
                .await
                .0
                .unwrap(),
        );
    }
    // b is served a's entry (same team); c, without a team, only its own.
    assert_eq!(seen, ["miss", "hit", "miss", "hit"]);
    assert_eq!(gw.requests("sim").len(), 2);
    // The default route's scope is the key: b does not see a's entry there.
    let default = [&a, &b].map(|key| format!("Bearer {key}"));
    let first = answer(&gw, &request(0.0, false), &[("authorization", &default[0])]).await;
    let second = answer(&gw, &request(0.0, false), &[("authorization", &default[1])]).await;
    assert_eq!(
        (first.0.as_deref(), second.0.as_deref()),
        (Some("miss"), Some("miss"))
    );
}

#[tokio::test]
async fn anthropic_messages_are_answered_from_the_cache_in_their_own_shape() {
    let gw = gateway().await;
    let body = json!({
        "model": "chat",
        "max_tokens": 50,
        "temperature": 0,
        "messages": [{"role": "user", "content": "Name three otters"}],
    });
    let send = || async {
        let response = gw
            .client()
            .post(format!("{}/v1/messages", gw.url))
            .header("anthropic-version", "2023-06-01")
            .json(&body)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        let cache = cache_header(&response);
        (cache, response.json::<Value>().await.unwrap())
    };
    let (miss, first) = send().await;
    let (hit, second) = send().await;
    assert_eq!(
        (miss.as_deref(), hit.as_deref()),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(second, first);
    assert_eq!(second["type"], "message");
    assert_eq!(second["content"][0]["text"], "You said: Name three otters");
    assert_eq!(gw.requests("sim").len(), 1);
    // Streamed: the replay in Anthropic's events.
    let mut streamed = body.clone();
    streamed["stream"] = json!(true);
    let text = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(&streamed)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(text.contains("event: message_stop"), "{text}");
    assert!(text.contains("You said: Name three otters"), "{text}");
    assert_eq!(gw.requests("sim").len(), 1);
}

static COUNTER: AtomicU32 = AtomicU32::new(0);

/// A private `redis-server` in its own temp dir, removed with it.
struct Redis {
    server: Option<crossbar_testkit::servers::Redis>,
    dir: PathBuf,
}

impl Redis {
    fn start() -> Option<Self> {
        let dir = std::env::temp_dir().join(format!(
            "crossbar_cache_redis_{}_{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let server = crossbar_testkit::servers::Redis::start(&dir)?;
        Some(Self {
            server: Some(server),
            dir,
        })
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        drop(self.server.take());
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test]
async fn a_replica_answers_from_the_entry_another_replica_kept() {
    let Some(redis) = Redis::start() else {
        assert!(
            std::env::var_os("CROSSBAR_REQUIRE_REDIS").is_none(),
            "redis-server is required"
        );
        eprintln!("skipped: no redis-server on the PATH");
        return;
    };
    let url = redis.server.as_ref().unwrap().url();
    let config = config(&format!("[redis]\nurl = \"{url}\"\n"));
    let a = start(&config).await;
    let b = start(&config).await;
    let (miss, first) = answer(&a, &request(0.0, false), &[]).await;
    let (hit, second) = answer(&b, &request(0.0, false), &[]).await;
    assert_eq!(
        (miss.as_deref(), hit.as_deref()),
        (Some("miss"), Some("hit"))
    );
    assert_eq!(second, first);
    assert_eq!(a.requests("sim").len() + b.requests("sim").len(), 1);
}

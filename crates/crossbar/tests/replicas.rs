//! Two or three `crossbar serve` processes behind one (imagined) load balancer, sharing a real
//! `redis-server`: an OpenAI Chat client talking to Claude with thinking and tools gets its
//! thinking blocks back whichever replica its next turn reaches, and a long prompt prefix stays
//! on the deployment that holds its cache. A replica without the shared store is the control.
//!
//! Needs `redis-server` on the PATH (CI installs it); without it the test says so and passes,
//! unless `CROSSBAR_REQUIRE_REDIS` is set, as CI does.

#![expect(clippy::unwrap_used, reason = "tests: a failure fails the test")]

use std::path::Path;

use crossbar_testkit::process::GatewayProcess;
use crossbar_testkit::servers::Redis;
use serde_json::{Value, json};

const BIN: &str = env!("CARGO_BIN_EXE_crossbar");

/// A private `redis-server` in `dir`, and its URL.
fn redis(dir: &Path) -> Option<(Redis, String)> {
    let redis = Redis::start(dir)?;
    let url = redis.url();
    Some((redis, url))
}

/// A replica on its own port and work directory; `redis` is its `[redis] url`, if any.
async fn replica(dir: &Path, name: &str, redis: Option<&str>) -> (GatewayProcess, String) {
    let home = dir.join(name);
    std::fs::create_dir_all(&home).unwrap();
    let shared = redis.map_or_else(String::new, |url| {
        format!("[redis]\nurl = \"{url}\"\nprefix = \"replicas-test\"\n")
    });
    std::fs::write(
        home.join("gateway.toml"),
        format!(
            r#"{shared}
[store]
enabled = false

[[providers]]
name = "anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[providers]]
name = "anthropic-eu"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[models]]
name = "claude"
deployments = [{{ provider = "anthropic", target = "claude-sonnet-4-20250514" }}]

[[models]]
name = "claude-cached"
deployments = [
  {{ provider = "anthropic", target = "claude-sonnet-4-20250514", price = {{ input = 3.0, output = 15.0 }} }},
  {{ provider = "anthropic-eu", target = "claude-sonnet-4-20250514", price = {{ input = 6.0, output = 30.0 }} }},
]

[routes.claude-cached]
objective = "cost"
explore = 0.0
"#
        ),
    )
    .unwrap();
    let replica = GatewayProcess::start_in(
        BIN,
        &home,
        &[
            "serve",
            "--listen",
            "127.0.0.1:0",
            "--config",
            "gateway.toml",
        ],
    )
    .await;
    let url = replica.url().to_owned();
    (replica, url)
}

fn tools() -> Value {
    json!([{"type": "function", "function": {"name": "get_weather",
        "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                       "required": ["city"], "additionalProperties": false}}}])
}

fn ask() -> Value {
    json!({"role": "user", "content": "Use get_weather for Lima"})
}

/// The first turn on `url`: Claude thinks, then calls the tool. Returns the call.
async fn first_turn(url: &str, stream: bool) -> Value {
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(
            &json!({"model": "claude", "messages": [ask()], "tools": tools(),
                      "reasoning_effort": "low", "stream": stream}),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    if !stream {
        let body: Value = response.json().await.unwrap();
        return body["choices"][0]["message"]["tool_calls"][0].clone();
    }
    let text = response.text().await.unwrap();
    let mut call = json!({"id": "", "type": "function", "function": {"name": "", "arguments": ""}});
    for chunk in text
        .lines()
        .filter_map(|line| line.strip_prefix("data: "))
        .filter(|data| *data != "[DONE]")
        .map(|data| serde_json::from_str::<Value>(data).unwrap())
    {
        let Some(fragment) = chunk["choices"]
            .get(0)
            .and_then(|c| c["delta"]["tool_calls"].get(0))
        else {
            continue;
        };
        if let Some(id) = fragment["id"].as_str() {
            call["id"] = json!(id);
            call["function"]["name"] = fragment["function"]["name"].clone();
        }
        let arguments = call["function"]["arguments"].as_str().unwrap().to_owned()
            + fragment["function"]["arguments"].as_str().unwrap_or("");
        call["function"]["arguments"] = json!(arguments);
    }
    call
}

/// The next turn on `url`, with the tool's result: the status and body.
async fn next_turn(url: &str, call: &Value) -> (u16, Value) {
    let id = call["id"].as_str().unwrap();
    let response = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(
            &json!({"model": "claude", "reasoning_effort": "low", "tools": tools(),
            "messages": [ask(), {"role": "assistant", "content": null, "tool_calls": [call]},
                         {"role": "tool", "tool_call_id": id, "content": "LIMA-19C"}]}),
        )
        .send()
        .await
        .unwrap();
    (
        response.status().as_u16(),
        response.json().await.unwrap_or(Value::Null),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn thinking_comes_back_on_whichever_replica_the_next_turn_reaches() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_redis, redis_url)) = redis(dir.path()) else {
        return;
    };
    let (_a, a) = replica(dir.path(), "a", Some(&redis_url)).await;
    let (_b, b) = replica(dir.path(), "b", Some(&redis_url)).await;
    let (_c, alone) = replica(dir.path(), "c", None).await;
    for stream in [false, true] {
        let call = first_turn(&a, stream).await;
        assert!(
            call["id"]
                .as_str()
                .is_some_and(|id| id.starts_with("toolu_")),
            "stream={stream}: {call}"
        );
        // Replica B never saw the first turn: Redis gives it the thinking blocks.
        let (status, body) = next_turn(&b, &call).await;
        assert_eq!(status, 200, "stream={stream}: {body}");
        let answer = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(answer.contains("LIMA-19C"), "{answer}");
        // A replica without the shared store has nothing to give back: Claude refuses.
        let (status, body) = next_turn(&alone, &call).await;
        assert_eq!(status, 400, "stream={stream}: {body}");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(message.contains("thinking"), "{message}");
    }
}

/// Sends a turn of a conversation with a long prefix (a cacheable system prompt and the first
/// question) to `url`, pinned to a provider if asked; returns the deployment that answered.
async fn cached_turn(url: &str, later: Option<&str>, pin: Option<&str>) -> String {
    let system = "You are a careful assistant for the Lima weather desk. ".repeat(120);
    let mut messages = vec![
        json!({"role": "system", "content": system}),
        json!({"role": "user", "content": "What is the weather?"}),
    ];
    if let Some(later) = later {
        messages.push(json!({"role": "assistant", "content": "Sunny, 19C."}));
        messages.push(json!({"role": "user", "content": later}));
    }
    let mut request = reqwest::Client::new()
        .post(format!("{url}/v1/chat/completions"))
        .json(&json!({"model": "claude-cached", "messages": messages}));
    if let Some(provider) = pin {
        request = request.header("x-crossbar-provider", provider);
    }
    let response = request.send().await.unwrap();
    assert_eq!(response.status(), 200);
    response.headers()["x-crossbar-deployment"]
        .to_str()
        .unwrap()
        .to_owned()
}

/// A prefix first served by the dearer deployment (pinned there on replica A) stays there on
/// replica B, which on its own would pick the cheaper one — as replica C without Redis does.
#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_prefix_stays_on_its_deployment_across_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_redis, redis_url)) = redis(dir.path()) else {
        return;
    };
    let (_a, a) = replica(dir.path(), "a", Some(&redis_url)).await;
    let (_b, b) = replica(dir.path(), "b", Some(&redis_url)).await;
    let (_c, alone) = replica(dir.path(), "c", None).await;
    let first = cached_turn(&a, None, Some("anthropic-eu")).await;
    assert_eq!(first, "claude-cached@anthropic-eu");
    assert_eq!(
        cached_turn(&b, Some("And tomorrow?"), None).await,
        "claude-cached@anthropic-eu"
    );
    assert_eq!(
        cached_turn(&alone, Some("And tomorrow?"), None).await,
        "claude-cached@anthropic"
    );
}

/// Twenty thinking-and-tool conversations at once over three replicas, each turn on the next
/// replica round the ring (half of them streamed): every one completes. The same second turns
/// sent to a replica without the shared store all fail, as they would behind a load balancer.
#[tokio::test(flavor = "multi_thread")]
async fn twenty_conversations_whose_turns_alternate_three_replicas_all_complete() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_redis, redis_url)) = redis(dir.path()) else {
        return;
    };
    let mut replicas = Vec::new();
    let mut urls = Vec::new();
    for name in ["a", "b", "c"] {
        let (process, url) = replica(dir.path(), name, Some(&redis_url)).await;
        replicas.push(process);
        urls.push(url);
    }
    let (_alone, alone) = replica(dir.path(), "alone", None).await;
    let conversations = (0..20_usize).map(|i| {
        let (first, second) = (urls[i % 3].clone(), urls[(i + 1) % 3].clone());
        let alone = alone.clone();
        tokio::spawn(async move {
            let call = first_turn(&first, i % 2 == 1).await;
            let (status, body) = next_turn(&second, &call).await;
            let completed = status == 200
                && body["choices"][0]["message"]["content"]
                    .as_str()
                    .is_some_and(|answer| answer.contains("LIMA-19C"));
            let (control, _) = next_turn(&alone, &call).await;
            (completed, control)
        })
    });
    let mut completed = 0;
    let mut control_refused = 0;
    for conversation in conversations.collect::<Vec<_>>() {
        let (done, control) = conversation.await.unwrap();
        completed += usize::from(done);
        control_refused += usize::from(control == 400);
    }
    eprintln!(
        "{completed} of 20 completed across replicas; {control_refused} of 20 refused without Redis"
    );
    assert_eq!(completed, 20);
    assert_eq!(control_refused, 20);
}

/// Three replicas: a prefix placed on one deployment stays there whichever replica its later
/// turns reach.
#[tokio::test(flavor = "multi_thread")]
async fn a_prompt_prefix_stays_put_over_three_replicas() {
    let dir = tempfile::tempdir().unwrap();
    let Some((_redis, redis_url)) = redis(dir.path()) else {
        return;
    };
    let (_a, a) = replica(dir.path(), "a", Some(&redis_url)).await;
    let (_b, b) = replica(dir.path(), "b", Some(&redis_url)).await;
    let (_c, c) = replica(dir.path(), "c", Some(&redis_url)).await;
    assert_eq!(
        cached_turn(&a, None, Some("anthropic-eu")).await,
        "claude-cached@anthropic-eu"
    );
    for (url, later) in [
        (&b, "And tomorrow?"),
        (&c, "And the day after?"),
        (&a, "And Sunday?"),
    ] {
        assert_eq!(
            cached_turn(url, Some(later), None).await,
            "claude-cached@anthropic-eu",
            "{url}"
        );
    }
}

//! A real gateway on 127.0.0.1:0 in front of its in-process simulators, built from a TOML
//! string, and the small readers the black-box suites use on its answers.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

use std::time::Duration;

use crossbar_core::config::Config;
use crossbar_server::{Gateway, ServeLimits, app, serve};
use crossbar_sim::{RecordedRequest, SimServer};
use serde_json::{Value, json};

/// A gateway serving on loopback; dropping it stops the server.
pub struct TestGateway {
    /// `http://127.0.0.1:PORT`, without a trailing slash.
    pub url: String,
    pub gateway: Gateway,
    shutdown: Option<tokio::sync::oneshot::Sender<()>>,
    pub task: tokio::task::JoinHandle<std::io::Result<()>>,
}

impl TestGateway {
    /// Starts `config` with a 5 s shutdown grace. A config without `[store]` gets none, rather
    /// than a `crossbar.db` in the crate.
    pub async fn start(config: &str) -> Self {
        Self::start_with_grace(config, Duration::from_secs(5)).await
    }

    pub async fn start_with_grace(config: &str, grace: Duration) -> Self {
        let config = if config.contains("[store]") {
            config.to_owned()
        } else {
            format!("{config}\n[store]\nenabled = false\n")
        };
        let config = Config::from_toml(&config, "test.toml").unwrap();
        let gateway = Gateway::build(&config).await.unwrap();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(serve(
            listener,
            app(gateway.state.clone()),
            async move {
                let _ = rx.await;
            },
            ServeLimits {
                grace,
                ..ServeLimits::of(&config.server)
            },
        ));
        Self {
            url,
            gateway,
            shutdown: Some(tx),
            task,
        }
    }

    /// The in-process simulator behind the provider named `provider` in the config.
    pub fn sim(&self, provider: &str) -> &SimServer {
        self.gateway
            .sims
            .get(provider)
            .unwrap_or_else(|| panic!("no simulated provider named {provider}"))
    }

    /// What the simulator behind `provider` has received so far, oldest first.
    pub fn requests(&self, provider: &str) -> Vec<RecordedRequest> {
        self.sim(provider).requests()
    }

    pub fn client(&self) -> reqwest::Client {
        reqwest::Client::new()
    }

    pub async fn post(&self, path: &str, body: &Value) -> reqwest::Response {
        self.client()
            .post(format!("{}{path}", self.url))
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn get(&self, path: &str) -> reqwest::Response {
        self.client()
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .unwrap()
    }

    /// Stops accepting and drains, like SIGTERM does.
    pub fn shutdown(&mut self) {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
    }
}

/// [`TestGateway::start`].
pub async fn start(config: &str) -> TestGateway {
    TestGateway::start(config).await
}

/// [`TestGateway::start_with_grace`].
pub async fn start_with_grace(config: &str, grace: Duration) -> TestGateway {
    TestGateway::start_with_grace(config, grace).await
}

/// An OpenAI Chat user message.
pub fn user(text: &str) -> Value {
    json!({"role": "user", "content": text})
}

/// Reads an SSE body into its `data:` payloads.
pub async fn sse_data(response: reqwest::Response) -> (Vec<String>, Result<(), String>) {
    let mut frames = Vec::new();
    let text = match response.text().await {
        Ok(text) => text,
        Err(e) => return (frames, Err(e.to_string())),
    };
    for block in text.split("\n\n") {
        for line in block.lines() {
            if let Some(data) = line.strip_prefix("data: ") {
                frames.push(data.to_owned());
            }
        }
    }
    (frames, Ok(()))
}

/// Two OpenAI Chat tools: `get_weather` (city, unit; strict) and `get_time` (city).
pub fn weather_tools() -> Value {
    json!([
        {"type": "function", "function": {"name": "get_weather", "description": "Current weather for a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}, "unit": {"type": "string", "enum": ["c", "f"]}},
                "required": ["city", "unit"], "additionalProperties": false}}},
        {"type": "function", "function": {"name": "get_time", "description": "Local time in a city",
            "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}
    ])
}

/// Waits until `check` holds, polling; panics after 10 s.
pub async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..200 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// The JSON chunks of an OpenAI stream's `data:` payloads, without `[DONE]`.
pub fn chunks(frames: &[String]) -> Vec<Value> {
    frames
        .iter()
        .filter(|f| f.as_str() != "[DONE]")
        .map(|f| serde_json::from_str(f).unwrap())
        .collect()
}

/// Tool calls reassembled from an OpenAI stream's chunks by index: (id, name, arguments). Only
/// a call's first fragment carries its id, `type` and name.
pub fn streamed_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for chunk in chunks {
        let Some(fragments) = chunk["choices"]
            .get(0)
            .and_then(|c| c["delta"]["tool_calls"].as_array())
        else {
            continue;
        };
        for fragment in fragments {
            let index = usize::try_from(fragment["index"].as_u64().unwrap()).unwrap();
            if let Some(id) = fragment["id"].as_str() {
                assert_eq!(index, calls.len());
                assert_eq!(fragment["type"], "function");
                calls.push((
                    id.to_owned(),
                    fragment["function"]["name"].as_str().unwrap().to_owned(),
                    String::new(),
                ));
            } else {
                assert!(
                    fragment.get("type").is_none() && fragment["function"].get("name").is_none()
                );
            }
            calls[index].2.push_str(
                fragment["function"]["arguments"]
                    .as_str()
                    .unwrap_or_default(),
            );
        }
    }
    calls
}

/// The text content of an OpenAI stream's chunks.
pub fn streamed_text(chunks: &[Value]) -> String {
    chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["content"].as_str())
        .collect()
}

/// The status and JSON body of an error answer, which must be JSON.
pub async fn error_of(response: reqwest::Response) -> (u16, Value) {
    let status = response.status().as_u16();
    assert_eq!(response.headers()["content-type"], "application/json");
    (status, response.json().await.unwrap())
}

/// A key over its requests per minute: a 429 with a `retry-after` within the minute and the
/// code `rate_limit_requests`.
pub async fn assert_rpm_limited(response: reqwest::Response) {
    assert_eq!(response.status(), 429);
    let retry: u64 = response.headers()["retry-after"]
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "rate_limit_requests");
}

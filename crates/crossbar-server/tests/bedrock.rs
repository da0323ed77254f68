//! Black-box tests: the gateway (OpenAI ingress) on port 0 in front of a simulated Bedrock
//! (Converse / ConverseStream) that checks SigV4's shape and validates like the real service.
//! Every request the gateway sent upstream is also checked against AWS's Smithy model, and
//! what clients get against OpenAI's OpenAPI spec.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{TestGateway, sse_data, start, streamed_text, user, weather_tools};
use crossbar_sim::SimConfig;
use crossbar_testkit::{openapi, smithy};
use serde_json::{Value, json};

const TARGET: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";
const ACCESS_KEY: &str = "AKIDEXAMPLE";

fn config() -> String {
    format!(
        r#"
[[providers]]
name = "sim-bedrock"
kind = "sim"
dialect = "bedrock"
cloud = "aws"
region = "eu-west-3"
aws = {{ access_key_id = "{ACCESS_KEY}", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }}
sim = {{ api_key = "{ACCESS_KEY}" }}

[[providers]]
name = "sim-bedrock-key"
kind = "sim"
dialect = "bedrock"
cloud = "aws"
region = "us-east-1"
api_key = "bedrock-api-key-123"
sim = {{ api_key = "bedrock-api-key-123" }}
{sim_openai}
[[models]]
name = "claude"
deployments = [{{ provider = "sim-bedrock", target = "{TARGET}" }}]

[[models]]
name = "claude-key"
deployments = [{{ provider = "sim-bedrock-key", target = "amazon.nova-pro-v1:0" }}]

[[models]]
name = "claude-or-gpt"
deployments = [
  {{ provider = "sim-bedrock", target = "{TARGET}" }},
  {{ provider = "sim-openai", target = "gpt-4o" }},
]
"#,
        sim_openai = crossbar_testkit::sim_openai!(),
    )
}

/// Rescripts the Bedrock simulator, keeping the key it checks.
fn script(gw: &TestGateway, config: SimConfig) {
    gw.sim("sim-bedrock").set_config(SimConfig {
        api_key: Some(ACCESS_KEY.to_owned()),
        ..config
    });
}

/// Every body the gateway sent Bedrock is a valid `ConverseRequest`.
fn check_upstream(gw: &TestGateway) -> Vec<Value> {
    let bodies: Vec<Value> = gw
        .sim("sim-bedrock")
        .requests()
        .into_iter()
        .map(|r| r.body.unwrap())
        .collect();
    for body in &bodies {
        smithy::check("ConverseRequest", body);
    }
    bodies
}

/// The stream's chunks, each checked against OpenAI's schema.
fn chunks(frames: &[String]) -> Vec<Value> {
    let chunks = common::chunks(frames);
    for chunk in chunks.iter().filter(|c| c.get("error").is_none()) {
        openapi::check("CreateChatCompletionStreamResponse", chunk);
    }
    chunks
}

async fn chat(gw: &TestGateway, body: &Value) -> Value {
    let response = gw.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    openapi::check("CreateChatCompletionResponse", &body);
    body
}

#[tokio::test]
async fn text_is_signed_with_sigv4_and_reports_the_target_model() {
    let gw = start(&config()).await;
    let body = chat(
        &gw,
        &json!({"model": "claude", "messages": [{"role": "system", "content": "Be brief."}, user("Tell me about otters")],
            "max_tokens": 100, "temperature": 0.5, "seed": 3}),
    )
    .await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("otters"), "{content}");
    assert_eq!(body["choices"][0]["finish_reason"], "stop");
    assert_eq!(
        body["model"], TARGET,
        "Bedrock names no model: the target is reported"
    );
    assert!(body["usage"]["prompt_tokens"].as_u64().unwrap() > 0);
    let requests = gw.sim("sim-bedrock").requests();
    let sent = &requests[0];
    assert_eq!(
        sent.path,
        "/model/anthropic.claude-3-5-sonnet-20240620-v1%3A0/converse"
    );
    let authorization = sent.header("authorization").unwrap();
    assert!(
        authorization.starts_with(&format!("AWS4-HMAC-SHA256 Credential={ACCESS_KEY}/")),
        "{authorization}"
    );
    assert!(authorization.contains("/eu-west-3/bedrock/aws4_request, SignedHeaders="));
    assert!(sent.header("x-amz-date").is_some());
    let upstream = check_upstream(&gw);
    assert_eq!(upstream[0]["system"], json!([{"text": "Be brief."}]));
    assert_eq!(
        upstream[0]["inferenceConfig"],
        json!({"maxTokens": 100, "temperature": 0.5})
    );
}

#[tokio::test]
async fn a_bedrock_api_key_is_sent_as_a_bearer_token() {
    let gw = start(&config()).await;
    chat(
        &gw,
        &json!({"model": "claude-key", "messages": [user("hello")]}),
    )
    .await;
    let sent = gw.sim("sim-bedrock-key").requests().pop().unwrap();
    assert_eq!(
        sent.header("authorization"),
        Some("Bearer bedrock-api-key-123")
    );
    assert!(sent.header("x-amz-date").is_none());
    assert_eq!(sent.path, "/model/amazon.nova-pro-v1%3A0/converse");
}

#[tokio::test]
async fn streams_with_include_usage_end_with_usage_then_done() {
    let gw = start(&config()).await;
    let body = json!({"model": "claude", "messages": [user("Stream about rivers")], "stream": true,
        "stream_options": {"include_usage": true}});
    let response = gw.post("/v1/chat/completions", &body).await;
    assert_eq!(response.status(), 200);
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    assert_eq!(frames.last().unwrap(), "[DONE]");
    let chunks = chunks(&frames);
    assert_eq!(chunks[0]["choices"][0]["delta"]["role"], "assistant");
    assert_eq!(streamed_text(&chunks), "You said: Stream about rivers");
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["stop"]);
    // Bedrock's metadata (after messageStop) becomes the usage chunk, last before [DONE].
    let usage = chunks.last().unwrap();
    assert_eq!(usage["choices"], json!([]));
    assert!(usage["usage"]["completion_tokens"].as_u64().unwrap() > 0);
    assert!(chunks.iter().all(|c| c["model"] == TARGET));
    let requests = gw.sim("sim-bedrock").requests();
    assert!(requests[0].path.ends_with("/converse-stream"));
    check_upstream(&gw);
}

/// Reassembles streamed tool calls by index.
fn tool_calls(chunks: &[Value]) -> Vec<(String, String, String)> {
    let mut calls: Vec<(String, String, String)> = Vec::new();
    for fragment in chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["delta"]["tool_calls"].as_array())
        .flatten()
    {
        let index = fragment["index"].as_u64().unwrap() as usize;
        if let Some(id) = fragment["id"].as_str() {
            assert_eq!(index, calls.len());
            calls.push((
                id.to_owned(),
                fragment["function"]["name"].as_str().unwrap().to_owned(),
                String::new(),
            ));
        }
        calls[index]
            .2
            .push_str(fragment["function"]["arguments"].as_str().unwrap_or(""));
    }
    calls
}

#[tokio::test]
async fn parallel_tool_calls_and_results_round_trip() {
    let gw = start(&config()).await;
    let ask = user("Use get_weather and get_time for Paris");
    let body =
        json!({"model": "claude", "messages": [ask], "tools": weather_tools(), "stream": true});
    let (frames, end) = sse_data(gw.post("/v1/chat/completions", &body).await).await;
    end.unwrap();
    let chunks = chunks(&frames);
    let calls = tool_calls(&chunks);
    let names: Vec<&str> = calls.iter().map(|c| c.1.as_str()).collect();
    assert_eq!(names, ["get_weather", "get_time"]);
    let weather: Value = serde_json::from_str(&calls[0].2).unwrap();
    assert!(weather["city"].is_string(), "{weather}");
    assert!(calls.iter().all(|c| c.0.starts_with("tooluse_")));
    let finish: Vec<&str> = chunks
        .iter()
        .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
        .collect();
    assert_eq!(finish, ["tool_calls"]);

    // The results go back as one user turn of toolResult blocks answering those ids; the
    // answer cites them. tool_choice "none" with tool history still sends a toolConfig.
    let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)|
        json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()});
    let messages = json!([ask, assistant,
        {"role": "tool", "tool_call_id": calls[0].0, "content": "{\"temp_c\": 21}"},
        {"role": "tool", "tool_call_id": calls[1].0, "content": "14:05"}]);
    let body = chat(
        &gw,
        &json!({"model": "claude", "messages": messages, "tools": weather_tools(), "tool_choice": "none"}),
    )
    .await;
    let content = body["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(
        content.contains("temp_c") && content.contains("14:05"),
        "{content}"
    );
    let upstream = check_upstream(&gw);
    let last = upstream.last().unwrap();
    let turns = last["messages"].as_array().unwrap();
    assert_eq!(turns.len(), 3);
    let results: Vec<&Value> = turns[2]["content"]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| &b["toolResult"]["toolUseId"])
        .collect();
    assert_eq!(results, [&json!(calls[0].0), &json!(calls[1].0)]);
    assert!(last["toolConfig"]["tools"].is_array());
    assert!(last["toolConfig"].get("toolChoice").is_none());

    // Non-streamed calls carry the same ids and JSON-text arguments.
    let body = chat(
        &gw,
        &json!({"model": "claude", "messages": [ask], "tools": weather_tools(), "tool_choice": {"type": "function", "function": {"name": "get_time"}}}),
    )
    .await;
    let message = &body["choices"][0]["message"];
    assert_eq!(message["content"], Value::Null);
    assert_eq!(message["tool_calls"][0]["function"]["name"], "get_time");
    let args: Value = serde_json::from_str(
        message["tool_calls"][0]["function"]["arguments"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(args["city"].is_string());
    assert_eq!(
        check_upstream(&gw).last().unwrap()["toolConfig"]["toolChoice"],
        json!({"tool": {"name": "get_time"}})
    );
}

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Serves one PNG at `/cat.png` on a loopback port.
async fn image_server() -> String {
    use base64::Engine as _;
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap();
    let app = axum::Router::new().route(
        "/cat.png",
        axum::routing::get(move || {
            let bytes = bytes.clone();
            async move { ([("content-type", "image/png")], bytes) }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/cat.png", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

#[tokio::test]
async fn images_reach_bedrock_inline() {
    let image = |url: &str| {
        json!({"model": "claude", "messages": [{"role": "user", "content": [
            {"type": "text", "text": "What is in this image?"},
            {"type": "image_url", "image_url": {"url": url, "detail": "low"}}]}]})
    };
    let gw = start(&config()).await;
    chat(&gw, &image(&format!("data:image/png;base64,{PNG}"))).await;
    let upstream = check_upstream(&gw);
    assert_eq!(
        upstream[0]["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": PNG}}})
    );
    // Bedrock takes no URLs: the gateway fetches them, and by default never from a private
    // address on a client's behalf.
    let url = image_server().await;
    let response = gw.post("/v1/chat/completions", &image(&url)).await;
    assert_eq!(response.status(), 400);
    let error: Value = response.json().await.unwrap();
    assert_eq!(
        error["error"]["param"],
        "messages[0].content[1].image_url.url"
    );
    assert_eq!(
        gw.sim("sim-bedrock").requests().len(),
        1,
        "nothing was sent"
    );
    // A provider allowed to fetch from the internal network sends the fetched bytes.
    let allowed = config().replace(
        "sim = { api_key = \"AKIDEXAMPLE\" }",
        "sim = { api_key = \"AKIDEXAMPLE\" }\nimage_fetch = { allow_private = true }",
    );
    let gw = start(&allowed).await;
    chat(&gw, &image(&url)).await;
    assert_eq!(
        check_upstream(&gw)[0]["messages"][0]["content"][1],
        json!({"image": {"format": "png", "source": {"bytes": PNG}}})
    );
}

#[tokio::test]
async fn json_schema_output_is_structured() {
    let gw = start(&config()).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer", "minimum": 0}},
        "required": ["name", "age"], "additionalProperties": false});
    let body = chat(
        &gw,
        &json!({"model": "claude", "messages": [user("Extract the person")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "person", "schema": schema, "strict": true}}}),
    )
    .await;
    let content: Value = common::content_json(&body);
    assert!(
        content["name"].is_string() && content["age"].as_i64().unwrap() >= 0,
        "{content}"
    );
    let sent = &check_upstream(&gw)[0]["outputConfig"]["textFormat"]["structure"]["jsonSchema"];
    let sent_schema: Value = serde_json::from_str(sent["schema"].as_str().unwrap()).unwrap();
    assert_eq!(sent_schema, schema);
}

#[tokio::test]
async fn throttling_fails_over_or_reaches_the_client_as_429() {
    let gw = start(&config()).await;
    script(
        &gw,
        SimConfig {
            rate_limit_rate: 1.0,
            ..SimConfig::default()
        },
    );
    for stream in [false, true] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "claude-or-gpt", "messages": [user("hi")], "stream": stream}),
            )
            .await;
        assert_eq!(response.status(), 200);
        assert_eq!(response.headers()["x-crossbar-provider"], "sim-openai");
    }
    assert!(!gw.sim("sim-bedrock").requests().is_empty());
    let error = refused_saying(
        common::chat(&gw, "claude", "hi").await,
        429,
        "Too many requests",
    )
    .await;
    assert_eq!(error["error"]["type"], "rate_limit_error");
    // A validation failure upstream is the client's 400, with Bedrock's message.
    script(&gw, SimConfig::default());
    let orphan = json!({"model": "claude", "messages": [user("hi"), {"role": "tool", "tool_call_id": "call_1", "content": "x"}]});
    let error = refused_saying(
        gw.post("/v1/chat/completions", &orphan).await,
        400,
        "exceeds the number of toolUse blocks of previous turn",
    )
    .await;
    assert_eq!(error["error"]["code"], "ValidationException");
}

#[tokio::test]
async fn a_mid_stream_exception_ends_with_an_error_event_not_done() {
    let gw = start(&config()).await;
    for (status, code) in [
        (429, "throttlingException"),
        (503, "modelStreamErrorException"),
    ] {
        script(
            &gw,
            SimConfig {
                stream_error_after_chunks: 3,
                error_status: status,
                ..SimConfig::default()
            },
        );
        let frames = long_stream(&gw).await;
        assert!(!frames.contains(&"[DONE]".to_owned()));
        let chunks = chunks(&frames);
        assert!(!streamed_text(&chunks).is_empty(), "content came first");
        let last = chunks.last().unwrap();
        assert_eq!(last["error"]["code"], code, "{last}");
        assert!(last["error"]["message"].is_string());
        // No fabricated finish reason.
        assert!(chunks.iter().all(|c| {
            c["choices"]
                .get(0)
                .is_none_or(|c| c["finish_reason"].is_null())
        }));
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_an_error_event_not_done() {
    let gw = start(&config()).await;
    script(
        &gw,
        SimConfig {
            cut_after_chunks: 4,
            ..SimConfig::default()
        },
    );
    let frames = long_stream(&gw).await;
    assert_ne!(frames.last().unwrap(), "[DONE]");
    let chunks = chunks(&frames);
    assert!(!streamed_text(&chunks).is_empty());
    let last = chunks.last().unwrap();
    assert!(last["error"]["message"].is_string(), "{last}");

    // A frame failing its CRC is upstream garbage: the stream ends with an error too.
    script(
        &gw,
        SimConfig {
            malformed_rate: 1.0,
            ..SimConfig::default()
        },
    );
    let response = gw.post("/v1/chat/completions", &long_stream_body()).await;
    let (frames, _) = sse_data(response).await;
    assert!(!frames.contains(&"[DONE]".to_owned()));
}

/// A streamed chat asking `claude` for a long answer.
fn long_stream_body() -> Value {
    json!({"model": "claude", "messages": [user("a long answer please about many things")], "stream": true})
}

/// Streams [`long_stream_body`], which must start (200) and end without a transport error:
/// its `data:` frames.
async fn long_stream(gw: &TestGateway) -> Vec<String> {
    let response = gw.post("/v1/chat/completions", &long_stream_body()).await;
    assert_eq!(response.status(), 200);
    let (frames, end) = sse_data(response).await;
    end.unwrap();
    frames
}

/// Checks `response` is a `status` error whose message contains `says`: the error body.
async fn refused_saying(response: reqwest::Response, status: u16, says: &str) -> Value {
    assert_eq!(response.status(), status);
    let error: Value = response.json().await.unwrap();
    assert!(
        error["error"]["message"].as_str().unwrap().contains(says),
        "{error}"
    );
    error
}

/// An Anthropic Messages call to the gateway.
async fn messages(gw: &TestGateway, body: &Value) -> reqwest::Response {
    gw.client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .json(body)
        .send()
        .await
        .unwrap()
}

fn anthropic_tools() -> Value {
    json!([{"name": "get_weather", "description": "Current weather for a city",
        "input_schema": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}])
}

/// The JSON payloads of an AWS event stream, every one of which must be whole JSON.
fn event_payloads(bytes: &[u8]) -> Vec<Value> {
    crossbar_testkit::http::event_payloads(bytes)
        .into_iter()
        .map(Result::unwrap)
        .collect()
}

/// The reasoning text and signature the simulator sent in its last answer, streamed or not.
fn sim_reasoning(gw: &TestGateway) -> (String, String) {
    let bytes = gw
        .sim("sim-bedrock")
        .requests()
        .pop()
        .unwrap()
        .response
        .unwrap();
    if let Ok(body) = serde_json::from_slice::<Value>(&bytes) {
        let reasoning =
            &body["output"]["message"]["content"][0]["reasoningContent"]["reasoningText"];
        return (
            reasoning["text"].as_str().unwrap().to_owned(),
            reasoning["signature"].as_str().unwrap().to_owned(),
        );
    }
    let (mut text, mut signature) = (String::new(), String::new());
    for payload in event_payloads(&bytes) {
        if let Some(reasoning) = payload["delta"].get("reasoningContent") {
            text.push_str(reasoning["text"].as_str().unwrap_or_default());
            signature.push_str(reasoning["signature"].as_str().unwrap_or_default());
        }
    }
    (text, signature)
}

/// Defect 3 of issue 14: Claude's reasoning on Bedrock reaches Messages clients as signed
/// `thinking` blocks, streamed and not, and goes back to Bedrock as the same `reasoningContent`.
#[tokio::test]
async fn anthropic_clients_get_claude_thinking_from_bedrock_and_send_it_back() {
    let gw = start(&config()).await;
    let ask = user("Use get_weather for Paris");
    let mut request = json!({"model": "claude", "max_tokens": 4096,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": anthropic_tools(), "messages": [ask]});
    let response = messages(&gw, &request).await;
    assert_eq!(response.status(), 200);
    let answer: Value = response.json().await.unwrap();
    let (text, signature) = sim_reasoning(&gw);
    assert!(!text.is_empty() && !signature.is_empty());
    assert_eq!(
        answer["content"][0],
        json!({"type": "thinking", "thinking": text, "signature": signature})
    );
    assert_eq!(answer["content"][1]["type"], "tool_use");
    assert_eq!(answer["stop_reason"], "tool_use");

    // The next turn gives the thinking back: Bedrock gets it first, with the same signature
    // (the simulator, like Claude, refuses a tool-use turn without it).
    let tool_id = answer["content"][1]["id"].as_str().unwrap();
    let history = json!([ask, {"role": "assistant", "content": answer["content"]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": "21C"}]}]);
    request["messages"] = history;
    let response = messages(&gw, &request).await;
    assert_eq!(response.status(), 200);
    let sent = check_upstream(&gw).pop().unwrap();
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
    );

    // Streamed: thinking_delta fragments then one signature_delta in block 0, as Anthropic
    // streams them.
    request["messages"] = json!([ask]);
    request["stream"] = json!(true);
    let (frames, end) = sse_data(messages(&gw, &request).await).await;
    end.unwrap();
    let events: Vec<Value> = frames
        .iter()
        .map(|f| serde_json::from_str(f).unwrap())
        .collect();
    let (text, signature) = sim_reasoning(&gw);
    let block0: Vec<&Value> = events.iter().filter(|e| e["index"] == 0).collect();
    assert_eq!(
        block0.first().unwrap()["content_block"],
        json!({"type": "thinking", "thinking": "", "signature": ""})
    );
    assert_eq!(block0.last().unwrap()["type"], "content_block_stop");
    let deltas: Vec<&Value> = block0.iter().map(|e| &e["delta"]).collect();
    let streamed: String = deltas
        .iter()
        .filter(|d| d["type"] == "thinking_delta")
        .map(|d| d["thinking"].as_str().unwrap())
        .collect();
    let signatures: Vec<&Value> = deltas
        .iter()
        .filter(|d| d["type"] == "signature_delta")
        .map(|d| &d["signature"])
        .collect();
    assert_eq!(streamed, text);
    assert_eq!(signatures, [&json!(signature)]);
    assert_eq!(
        deltas.iter().rev().find(|d| d.is_object()).unwrap()["type"],
        "signature_delta",
        "the signature closes the thinking block"
    );

    // The streamed turn goes back the same way.
    let start = events
        .iter()
        .find(|e| e["content_block"]["type"] == "tool_use")
        .unwrap();
    let index = &start["index"];
    let input: String = events
        .iter()
        .filter(|e| &e["index"] == index && e["delta"]["type"] == "input_json_delta")
        .map(|e| e["delta"]["partial_json"].as_str().unwrap())
        .collect();
    let tool_use = json!({"type": "tool_use", "id": start["content_block"]["id"],
        "name": start["content_block"]["name"], "input": serde_json::from_str::<Value>(&input).unwrap()});
    let thinking = json!({"type": "thinking", "thinking": streamed, "signature": signature});
    request["messages"] = json!([ask, {"role": "assistant", "content": [thinking, tool_use]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_use["id"], "content": "21C"}]}]);
    request["stream"] = json!(false);
    let response = messages(&gw, &request).await;
    assert_eq!(response.status(), 200);
    let sent = check_upstream(&gw).pop().unwrap();
    assert_eq!(
        sent["messages"][1]["content"][0],
        json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}})
    );
}

/// Bedrock takes at most 4 cache points: a request marking more is not Bedrock's to serve (its
/// 400 would not fail over), so it goes to the next deployment, or is a 400 naming the field.
#[tokio::test]
async fn more_than_four_cache_points_fail_over_from_bedrock() {
    let gw = start(&config()).await;
    let marked =
        |text: &str| json!({"type": "text", "text": text, "cache_control": {"type": "ephemeral"}});
    let request = |model: &str| {
        json!({"model": model, "max_tokens": 64,
            "system": [marked("Be brief.")],
            "messages": [
                {"role": "user", "content": [marked("a")]},
                {"role": "assistant", "content": [marked("b")]},
                {"role": "user", "content": [marked("c")]},
                {"role": "assistant", "content": [marked("d")]},
                {"role": "user", "content": "e"}]})
    };
    let response = messages(&gw, &request("claude-or-gpt")).await;
    assert_eq!(response.status(), 200);
    assert!(gw.sim("sim-bedrock").requests().is_empty());
    assert_eq!(gw.sim("sim-openai").requests().len(), 1);

    let response = messages(&gw, &request("claude")).await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"],
        json!({"type": "invalid_request_error",
            "message": "Bedrock takes at most 4 cache points in one request; this one marks 5."})
    );
    assert!(gw.sim("sim-bedrock").requests().is_empty());
}

/// OpenAI clients have no place for thinking: the gateway keeps Claude's (streamed fragments
/// assembled into one signed block) and gives it back to Bedrock before the tool calls.
#[tokio::test]
async fn openai_clients_continue_thinking_with_tools_on_bedrock() {
    let gw = start(&config()).await;
    let ask = user("Use get_weather for Paris");
    for stream in [true, false] {
        let body = json!({"model": "claude", "messages": [ask], "tools": weather_tools(),
            "reasoning_effort": "low", "stream": stream});
        let calls = if stream {
            let (frames, end) = sse_data(gw.post("/v1/chat/completions", &body).await).await;
            end.unwrap();
            tool_calls(&chunks(&frames))
        } else {
            let answer = chat(&gw, &body).await;
            answer["choices"][0]["message"]["tool_calls"]
                .as_array()
                .unwrap()
                .iter()
                .map(|c| {
                    (
                        c["id"].as_str().unwrap().to_owned(),
                        c["function"]["name"].as_str().unwrap().to_owned(),
                        c["function"]["arguments"].as_str().unwrap().to_owned(),
                    )
                })
                .collect()
        };
        let (text, signature) = sim_reasoning(&gw);
        let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)|
            json!({"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()});
        let mut messages = vec![ask.clone(), assistant];
        messages.extend(
            calls
                .iter()
                .map(|(id, _, _)| json!({"role": "tool", "tool_call_id": id, "content": "21C"})),
        );
        chat(
            &gw,
            &json!({"model": "claude", "messages": messages, "tools": weather_tools(), "reasoning_effort": "low"}),
        )
        .await;
        let sent = check_upstream(&gw).pop().unwrap();
        assert_eq!(
            sent["messages"][1]["content"][0],
            json!({"reasoningContent": {"reasoningText": {"text": text, "signature": signature}}}),
            "stream: {stream}"
        );
    }
}

//! The Bedrock Converse simulator over real HTTP: auth, the service's validation messages,
//! answers checked against AWS's Smithy model, binary event-stream frames parsed and
//! CRC-checked here by a decoder independent of the simulator's encoder, cache points, faults.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{eventually, start, user};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use crossbar_testkit::providers::{SIGNED, post_signed};
use crossbar_testkit::smithy;
use serde_json::{Value, json};

const MODEL: &str = "anthropic.claude-3-5-sonnet-20240620-v1:0";

async fn bedrock(config: SimConfig) -> SimServer {
    start(SimDialect::Bedrock, config).await
}

fn url(server: &SimServer, stream: bool) -> String {
    url_for(server, MODEL, stream)
}

fn url_for(server: &SimServer, model: &str, stream: bool) -> String {
    let model: String = model
        .bytes()
        .map(|b| match b {
            b':' => "%3A".to_owned(),
            _ => char::from(b).to_string(),
        })
        .collect();
    let action = if stream {
        "converse-stream"
    } else {
        "converse"
    };
    format!("{}/model/{model}/{action}", server.base_url())
}

async fn send(server: &SimServer, stream: bool, body: &Value) -> reqwest::Response {
    send_to(server, MODEL, stream, body).await
}

async fn send_to(server: &SimServer, model: &str, stream: bool, body: &Value) -> reqwest::Response {
    post_signed(&url_for(server, model, stream), body).await
}

fn text(words: &str) -> Value {
    json!({"role": "user", "content": [{"text": words}]})
}

async fn converse(server: &SimServer, body: &Value) -> Value {
    let response = send(server, false, body).await;
    assert_eq!(response.status(), 200);
    assert!(response.headers().contains_key("x-amzn-requestid"));
    let answer: Value = response.json().await.unwrap();
    smithy::check("ConverseResponse", &answer);
    answer
}

/// Status, the name from `x-amzn-ErrorType`, and the message.
async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let kind = response.headers()["x-amzn-errortype"]
        .to_str()
        .unwrap()
        .to_owned();
    assert!(
        kind.contains(":http://internal.amazon.com/coral/"),
        "{kind}"
    );
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    let name = kind.split(':').next().unwrap().to_owned();
    (status, name, body["message"].as_str().unwrap().to_owned())
}

/// CRC-32 (IEEE), written here so that frames are checked independently of the encoder.
fn crc32(bytes: &[u8]) -> u32 {
    let mut crc = !0u32;
    for byte in bytes {
        crc ^= u32::from(*byte);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xEDB8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

#[derive(Debug)]
struct Frame {
    headers: Vec<(String, String)>,
    payload: Value,
}

impl Frame {
    fn header(&self, name: &str) -> &str {
        self.headers
            .iter()
            .find(|(n, _)| n == name)
            .map_or("", |(_, v)| v.as_str())
    }
}

fn be32(bytes: &[u8]) -> u32 {
    u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]])
}

/// Parses `application/vnd.amazon.eventstream` (providers.md §5.6): both CRCs must hold and
/// every header must be a type-7 string. `Err` names the first frame that fails.
fn parse_frames(mut body: &[u8]) -> Result<Vec<Frame>, String> {
    let mut frames = Vec::new();
    while !body.is_empty() {
        let at = frames.len();
        if body.len() < 16 {
            return Err(format!("frame {at}: truncated prelude"));
        }
        let total = be32(body) as usize;
        let headers_len = be32(&body[4..]) as usize;
        if crc32(&body[..8]) != be32(&body[8..]) {
            return Err(format!("frame {at}: prelude CRC mismatch"));
        }
        if body.len() < total {
            return Err(format!("frame {at}: truncated"));
        }
        if crc32(&body[..total - 4]) != be32(&body[total - 4..]) {
            return Err(format!("frame {at}: message CRC mismatch"));
        }
        let mut headers = Vec::new();
        let mut raw = &body[12..12 + headers_len];
        while !raw.is_empty() {
            let name_len = raw[0] as usize;
            let name = String::from_utf8(raw[1..1 + name_len].to_vec()).unwrap();
            assert_eq!(raw[1 + name_len], 7, "header {name} is not a string");
            let value_len = usize::from(u16::from_be_bytes([raw[2 + name_len], raw[3 + name_len]]));
            let start = 4 + name_len;
            let value = String::from_utf8(raw[start..start + value_len].to_vec()).unwrap();
            headers.push((name, value));
            raw = &raw[start + value_len..];
        }
        let payload = serde_json::from_slice(&body[12 + headers_len..total - 4]).unwrap();
        frames.push(Frame { headers, payload });
        body = &body[total..];
    }
    Ok(frames)
}

async fn stream_frames(server: &SimServer, body: &Value) -> Vec<Frame> {
    let response = send(server, true, body).await;
    assert_eq!(response.status(), 200);
    assert_eq!(
        response.headers()["content-type"],
        "application/vnd.amazon.eventstream"
    );
    parse_frames(&response.bytes().await.unwrap()).unwrap()
}

/// The event payload as the Smithy model has it: without Bedrock's `"p"` padding.
fn check_event(frame: &Frame) {
    let shape = match frame.header(":event-type") {
        "messageStart" => "MessageStartEvent",
        "contentBlockStart" => "ContentBlockStartEvent",
        "contentBlockDelta" => "ContentBlockDeltaEvent",
        "contentBlockStop" => "ContentBlockStopEvent",
        "messageStop" => "MessageStopEvent",
        "metadata" => "ConverseStreamMetadataEvent",
        other => panic!("unexpected event {other}"),
    };
    let mut payload = frame.payload.clone();
    let padding = payload.as_object_mut().unwrap().remove("p");
    assert!(
        padding
            .as_ref()
            .and_then(Value::as_str)
            .is_some_and(|p| !p.is_empty()),
        "{shape} has no padding"
    );
    smithy::check(shape, &payload);
}

fn weather_tools() -> Value {
    json!({"tools": [
        {"toolSpec": {"name": "get_weather", "description": "Weather for a city", "inputSchema": {"json":
            {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}}},
        {"toolSpec": {"name": "get_time", "inputSchema": {"json":
            {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}}}
    ]})
}

#[tokio::test]
async fn converse_answers_from_the_prompt() {
    let server = bedrock(SimConfig::default()).await;
    let answer = converse(
        &server,
        &json!({"system": [{"text": "Be brief."}], "messages": [text("Tell me about otters")],
            "inferenceConfig": {"maxTokens": 100, "temperature": 0.3}}),
    )
    .await;
    let content = &answer["output"]["message"]["content"];
    assert!(content[0]["text"].as_str().unwrap().contains("otters"));
    assert_eq!(answer["stopReason"], "end_turn");
    let usage = &answer["usage"];
    assert_eq!(
        usage["totalTokens"].as_u64(),
        Some(usage["inputTokens"].as_u64().unwrap() + usage["outputTokens"].as_u64().unwrap())
    );
    assert!(
        usage.get("cacheReadInputTokens").is_none(),
        "no cache points, no cache fields"
    );
    // The path kept the model id as one percent-encoded segment.
    assert!(server.requests()[0].path.ends_with("v1%3A0/converse"));
}

#[tokio::test]
async fn authentication_is_required_and_scoped() {
    let server = bedrock(SimConfig {
        api_key: Some("AKIDEXAMPLE".into()),
        ..SimConfig::default()
    })
    .await;
    let body = json!({"messages": [text("hi")]});
    let client = reqwest::Client::new();
    let missing = client
        .post(url(&server, false))
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_of(missing).await,
        (
            403,
            "MissingAuthenticationTokenException".into(),
            "Missing Authentication Token".into()
        )
    );
    let other_key = client
        .post(url(&server, false))
        .header("authorization", SIGNED.replace("AKIDEXAMPLE", "AKIDOTHER"))
        .header("x-amz-date", "20150830T123600Z")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (status, name, _) = error_of(other_key).await;
    assert_eq!(
        (status, name.as_str()),
        (403, "UnrecognizedClientException")
    );
    let wrong_service = client
        .post(url(&server, false))
        .header(
            "authorization",
            SIGNED.replace("/bedrock/", "/bedrock-runtime/"),
        )
        .header("x-amz-date", "20150830T123600Z")
        .json(&body)
        .send()
        .await
        .unwrap();
    let (_, name, message) = error_of(wrong_service).await;
    assert_eq!(name, "InvalidSignatureException");
    assert!(message.contains("scoped to correct service: 'bedrock'"));
    let bearer = client
        .post(url(&server, false))
        .bearer_auth("AKIDEXAMPLE")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(bearer.status(), 200);
    assert_eq!(send(&server, false, &body).await.status(), 200);
}

#[tokio::test]
async fn validation_errors_use_the_service_messages() {
    let server = bedrock(SimConfig::default()).await;
    let call = |id: &str| json!({"toolUse": {"toolUseId": id, "name": "get_weather", "input": {"city": "Paris"}}});
    let result =
        |id: &str| json!({"toolResult": {"toolUseId": id, "content": [{"text": "sunny"}]}});
    let assistant = |blocks: Vec<Value>| json!({"role": "assistant", "content": blocks});
    let user_blocks = |blocks: Vec<Value>| json!({"role": "user", "content": blocks});
    let cases = [
        (
            json!({"messages": [assistant(vec![json!({"text": "hi"})]), text("x")]}),
            "A conversation must start with a user message. Try again with a conversation that starts with a user message.",
        ),
        (
            json!({"messages": [text("a"), text("b")]}),
            "A conversation must alternate between user and assistant roles. Make sure the conversation alternates between user and assistant roles and try again.",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![json!({"text": " "})]), text("b")]}),
            "The text field in the ContentBlock object at messages.1.content.0 is blank. Add text to the text field, and try again.",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![call("t1")]), user_blocks(vec![result("t1")])]}),
            "The toolConfig field must be defined when using toolUse and toolResult content blocks.",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![call("call|1")]), user_blocks(vec![result("call|1")])], "toolConfig": weather_tools()}),
            "1 validation error detected: Value 'call|1' at 'messages.2.member.content.1.member.toolUse.toolUseId' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_.:-]+",
        ),
        (
            json!({"messages": [text("a")], "toolConfig": {"tools": [{"toolSpec": {"name": "get weather", "inputSchema": {"json": {"type": "object"}}}}]}}),
            "1 validation error detected: Value 'get weather' at 'toolConfig.tools.1.member.toolSpec.name' failed to satisfy constraint: Member must satisfy regular expression pattern: [a-zA-Z0-9_-]+",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![call("t1"), call("t2")]), user_blocks(vec![result("t1"), json!({"text": "and?"})])], "toolConfig": weather_tools()}),
            "Expected toolResult blocks at messages.2.content for the following Ids: t2",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![call("t1")]), user_blocks(vec![result("t1"), result("t9")])], "toolConfig": weather_tools()}),
            "The number of toolResult blocks at messages.2.content exceeds the number of toolUse blocks of previous turn.",
        ),
        (
            json!({"messages": [text("a"), assistant(vec![call("t1")]), text("never mind")], "toolConfig": weather_tools()}),
            "Expected toolResult blocks at messages.2.content for the following Ids: t1",
        ),
        (
            json!({"messages": [text("a")], "inferenceConfig": {"temperature": 1.5}}),
            "1 validation error detected: Value '1.5' at 'inferenceConfig.temperature' failed to satisfy constraint: Member must have value less than or equal to 1",
        ),
        (
            json!({"messages": [{"role": "user", "content": []}]}),
            "The content field in the Message object at messages.0 is empty. Add a ContentBlock object to the content field and try again.",
        ),
    ];
    for (body, message) in cases {
        let (status, name, got) = error_of(send(&server, false, &body).await).await;
        assert_eq!(
            (status, name.as_str()),
            (400, "ValidationException"),
            "{body}"
        );
        assert_eq!(got, message, "{body}");
    }
    // Shapes the model does not have are refused too.
    for body in [
        json!({"messages": [text("a")], "temprature": 1}),
        json!({"messages": [{"role": "user", "content": [{"text": "a", "image": {}}]}]}),
        json!({"messages": [{"role": "user", "content": [{"image": {"format": "bmp", "source": {"bytes": "AAAA"}}}]}]}),
        json!({"messages": [text("a")], "outputConfig": {"textFormat": {"type": "json_schema", "structure": {"jsonSchema": {"schema": {"type": "object"}}}}}}),
    ] {
        let (status, name, _) = error_of(send(&server, false, &body).await).await;
        assert_eq!(
            (status, name.as_str()),
            (400, "ValidationException"),
            "{body}"
        );
    }
}

#[tokio::test]
async fn text_streams_as_bedrock_frames() {
    let server = bedrock(SimConfig::default()).await;
    let frames = stream_frames(
        &server,
        &json!({"messages": [text("Stream about rivers and lakes")]}),
    )
    .await;
    for frame in &frames {
        assert_eq!(frame.header(":message-type"), "event");
        assert_eq!(frame.header(":content-type"), "application/json");
        check_event(frame);
    }
    let events: Vec<&str> = frames.iter().map(|f| f.header(":event-type")).collect();
    assert_eq!(events.first(), Some(&"messageStart"));
    // Text gets no contentBlockStart; messageStop then metadata close the stream.
    assert!(!events.contains(&"contentBlockStart"));
    assert_eq!(
        &events[events.len() - 3..],
        ["contentBlockStop", "messageStop", "metadata"]
    );
    let streamed: String = frames
        .iter()
        .filter_map(|f| f.payload["delta"]["text"].as_str())
        .collect();
    assert_eq!(streamed, "You said: Stream about rivers and lakes");
    assert!(
        frames
            .iter()
            .filter(|f| f.header(":event-type") == "contentBlockDelta")
            .count()
            > 3
    );
    let metadata = &frames.last().unwrap().payload;
    assert!(metadata["usage"]["outputTokens"].as_u64().unwrap() > 0);
    assert!(metadata["metrics"]["latencyMs"].is_u64());
}

#[tokio::test]
async fn tool_calls_stream_in_fragments_and_results_are_cited() {
    let server = bedrock(SimConfig::default()).await;
    let ask = json!({"messages": [text("Use get_weather and get_time for Paris")], "toolConfig": weather_tools()});
    let frames = stream_frames(&server, &ask).await;
    frames.iter().for_each(check_event);
    let starts: Vec<&Value> = frames
        .iter()
        .filter(|f| f.header(":event-type") == "contentBlockStart")
        .map(|f| &f.payload)
        .collect();
    assert_eq!(starts.len(), 2);
    let mut calls = Vec::new();
    for start in starts {
        let index = start["contentBlockIndex"].as_u64().unwrap();
        let tool = &start["start"]["toolUse"];
        let input: String = frames
            .iter()
            .filter(|f| f.payload["contentBlockIndex"].as_u64() == Some(index))
            .filter_map(|f| f.payload["delta"]["toolUse"]["input"].as_str())
            .collect();
        let fragments = frames
            .iter()
            .filter(|f| {
                f.payload["contentBlockIndex"].as_u64() == Some(index)
                    && f.payload["delta"]["toolUse"].is_object()
            })
            .count();
        assert!(fragments > 1, "tool input arrives in pieces");
        let id = tool["toolUseId"].as_str().unwrap().to_owned();
        assert!(id.starts_with("tooluse_"));
        let args: Value = serde_json::from_str(&input).unwrap();
        calls.push((id, tool["name"].as_str().unwrap().to_owned(), args));
    }
    let stop = frames
        .iter()
        .find(|f| f.header(":event-type") == "messageStop")
        .unwrap();
    assert_eq!(stop.payload["stopReason"], "tool_use");
    assert_eq!(calls[0].1, "get_weather");
    assert!(calls[0].2["city"].is_string());
    // The non-streamed answer to the same request makes the same calls.
    let answer = converse(&server, &ask).await;
    assert_eq!(answer["stopReason"], "tool_use");
    assert_eq!(
        answer["output"]["message"]["content"][1]["toolUse"]["toolUseId"],
        calls[1].0.as_str()
    );
    // Answering both calls gets an answer that cites the results.
    let uses: Vec<Value> = calls
        .iter()
        .map(|(id, name, args)| json!({"toolUse": {"toolUseId": id, "name": name, "input": args}}))
        .collect();
    let results: Vec<Value> = calls
        .iter()
        .zip(["sunny, 21C", "10:00"])
        .map(|((id, _, _), out)| json!({"toolResult": {"toolUseId": id, "content": [{"text": out}]}}))
        .collect();
    let follow_up = json!({"messages": [text("Use get_weather and get_time for Paris"),
        {"role": "assistant", "content": uses}, {"role": "user", "content": results}], "toolConfig": weather_tools()});
    let answer = converse(&server, &follow_up).await;
    assert_eq!(
        answer["output"]["message"]["content"][0]["text"],
        "Based on get_weather: sunny, 21C; get_time: 10:00."
    );
}

#[tokio::test]
async fn json_schema_output_follows_the_schema() {
    let server = bedrock(SimConfig::default()).await;
    let schema = json!({"type": "object", "properties": {"name": {"type": "string"}, "age": {"type": "integer"}}, "required": ["name", "age"]});
    let answer = converse(
        &server,
        &json!({"messages": [text("Describe Alice")], "outputConfig": {"textFormat": {"type": "json_schema",
            "structure": {"jsonSchema": {"schema": schema.to_string(), "name": "person"}}}}}),
    )
    .await;
    let document: Value = serde_json::from_str(
        answer["output"]["message"]["content"][0]["text"]
            .as_str()
            .unwrap(),
    )
    .unwrap();
    assert!(
        document["name"].is_string() && document["age"].is_i64(),
        "{document}"
    );
}

#[tokio::test]
async fn cache_points_write_then_read_the_prefix() {
    let server = bedrock(SimConfig::default()).await;
    let long = "All work and no play makes a dull model. ".repeat(120);
    let body = |question: &str| json!({"system": [{"text": long}, {"cachePoint": {"type": "default"}}], "messages": [text(question)]});
    let first = converse(&server, &body("first question")).await["usage"].clone();
    let written = first["cacheWriteInputTokens"].as_u64().unwrap();
    assert!(written >= 1024, "{first}");
    assert_eq!(first["cacheReadInputTokens"], 0);
    let second = converse(&server, &body("another question")).await["usage"].clone();
    assert_eq!(second["cacheReadInputTokens"].as_u64(), Some(written));
    assert_eq!(second["cacheWriteInputTokens"], 0);
    // inputTokens excludes what the cache served.
    assert!(second["inputTokens"].as_u64().unwrap() < 64, "{second}");
    // A prefix too short to cache is neither written nor read.
    let short = json!({"system": [{"text": "short"}, {"cachePoint": {"type": "default"}}], "messages": [text("q")]});
    let usage = converse(&server, &short).await["usage"].clone();
    assert_eq!(
        (
            usage["cacheReadInputTokens"].as_u64(),
            usage["cacheWriteInputTokens"].as_u64()
        ),
        (Some(0), Some(0))
    );
}

#[tokio::test]
async fn faults_take_bedrock_shapes() {
    let server = bedrock(SimConfig {
        rate_limit_rate: 1.0,
        ..SimConfig::default()
    })
    .await;
    let body = json!({"messages": [text("one two three four five six")]});
    assert_eq!(
        error_of(send(&server, false, &body).await).await,
        (
            429,
            "ThrottlingException".into(),
            "Too many requests, please wait before trying again.".into()
        )
    );
    for (status, name) in [
        (503, "ServiceUnavailableException"),
        (500, "InternalServerException"),
    ] {
        server.set_config(SimConfig {
            error_rate: 1.0,
            error_status: status,
            ..SimConfig::default()
        });
        let (got, kind, _) = error_of(send(&server, true, &body).await).await;
        assert_eq!((got, kind.as_str()), (status, name));
    }
    // In-stream exceptions: throttling for a 429 script, the model's own failure otherwise.
    for (status, exception) in [
        (429, "throttlingException"),
        (503, "modelStreamErrorException"),
    ] {
        server.set_config(SimConfig {
            stream_error_after_chunks: 3,
            error_status: status,
            ..SimConfig::default()
        });
        let frames = stream_frames(&server, &body).await;
        assert_eq!(frames.len(), 4);
        let last = frames.last().unwrap();
        assert_eq!(last.header(":message-type"), "exception");
        assert_eq!(last.header(":exception-type"), exception);
        assert!(last.payload["message"].is_string());
        smithy::check(
            if status == 429 {
                "ThrottlingException"
            } else {
                "ModelStreamErrorException"
            },
            &last.payload,
        );
    }
    // A cut stream breaks the connection after whole frames.
    server.set_config(SimConfig {
        cut_after_chunks: 2,
        ..SimConfig::default()
    });
    let response = send(&server, true, &body).await;
    assert!(response.bytes().await.is_err());
    // A malformed stream has a frame whose CRC fails; a malformed answer is cut JSON.
    server.set_config(SimConfig {
        malformed_rate: 1.0,
        ..SimConfig::default()
    });
    let response = send(&server, true, &body).await;
    let bytes = response.bytes().await.unwrap();
    assert_eq!(
        parse_frames(&bytes).unwrap_err(),
        "frame 1: message CRC mismatch"
    );
    let response = send(&server, false, &body).await;
    assert!(serde_json::from_slice::<Value>(&response.bytes().await.unwrap()).is_err());
    let stats = server.stats();
    assert!(
        eventually(|| server.stats().in_flight == 0).await,
        "{stats:?}"
    );
}

#[tokio::test]
async fn unknown_operations_are_404() {
    let server = bedrock(SimConfig::default()).await;
    let response = reqwest::Client::new()
        .post(format!("{}/model/m/frobnicate", server.base_url()))
        .header("authorization", SIGNED)
        .json(&user("x"))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 404);
}

/// Claude 4-generation model on Bedrock (the newer image limits apply).
const CLAUDE_4: &str = "us.anthropic.claude-sonnet-4-5-20250929-v1:0";
const NOVA: &str = "amazon.nova-pro-v1:0";

fn thinking(mut body: Value) -> Value {
    body["additionalModelRequestFields"] =
        json!({"thinking": {"type": "enabled", "budget_tokens": 1024}});
    body["inferenceConfig"] = json!({"maxTokens": 4096});
    body
}

/// 400 `ValidationException` with Claude's own message behind Bedrock's prefix.
async fn model_error(response: reqwest::Response, message: &str) {
    assert_eq!(
        error_of(response).await,
        (
            400,
            "ValidationException".to_owned(),
            format!("The model returned the following errors: {message}")
        )
    );
}

#[tokio::test]
async fn thinking_answers_carry_signed_reasoning_content() {
    let server = bedrock(SimConfig::default()).await;
    let body = thinking(json!({"messages": [text("What is 2+2?")]}));
    let answer = converse(&server, &body).await;
    let content = answer["output"]["message"]["content"].as_array().unwrap();
    let reasoning = &content[0]["reasoningContent"]["reasoningText"];
    let thought = reasoning["text"].as_str().unwrap();
    let signature = reasoning["signature"].as_str().unwrap();
    assert_eq!(
        thought,
        "Let me work out what the user needs before answering."
    );
    assert!(signature.starts_with("sim-sig-"), "{signature}");
    assert!(content[1]["text"].is_string());

    // Streamed: text fragments, then the signature, in block 0; the answer follows in block 1.
    let frames = stream_frames(&server, &body).await;
    frames.iter().for_each(check_event);
    let (mut streamed, mut signatures) = (String::new(), Vec::new());
    for frame in &frames {
        if let Some(delta) = frame.payload["delta"].get("reasoningContent") {
            assert_eq!(frame.payload["contentBlockIndex"], 0);
            streamed.push_str(delta["text"].as_str().unwrap_or_default());
            signatures.extend(delta["signature"].as_str().map(str::to_owned));
        }
    }
    assert_eq!(streamed, thought);
    assert_eq!(signatures, [signature]);
    assert!(
        frames
            .iter()
            .any(|f| f.payload["contentBlockIndex"] == 1 && f.payload["delta"]["text"].is_string())
    );

    // Without thinking there is no reasoning.
    let plain = converse(&server, &json!({"messages": [text("What is 2+2?")]})).await;
    assert!(plain["output"]["message"]["content"][0]["text"].is_string());
}

#[tokio::test]
async fn reasoning_sent_back_needs_its_signature() {
    let server = bedrock(SimConfig::default()).await;
    let answer = converse(&server, &thinking(json!({"messages": [text("Hi")]}))).await;
    let reasoning = answer["output"]["message"]["content"][0]["reasoningContent"].clone();
    let thought = reasoning["reasoningText"]["text"].clone();
    let history = |block: Value| {
        thinking(json!({"messages": [text("Hi"),
            {"role": "assistant", "content": [block, {"text": "Hello."}]}, text("Again")]}))
    };
    // As the model gave it: accepted.
    converse(&server, &history(json!({"reasoningContent": reasoning}))).await;
    let unsigned = history(json!({"reasoningContent": {"reasoningText": {"text": thought}}}));
    model_error(
        send(&server, false, &unsigned).await,
        "messages.1.content.0.thinking.signature: Field required",
    )
    .await;
    let forged = history(
        json!({"reasoningContent": {"reasoningText": {"text": "Other thoughts.", "signature": reasoning["reasoningText"]["signature"]}}}),
    );
    model_error(
        send(&server, false, &forged).await,
        "messages.1.content.0: Invalid `signature` in `thinking` block",
    )
    .await;
    // Redacted reasoning has no signature; models other than Claude take unsigned reasoning.
    converse(
        &server,
        &history(json!({"reasoningContent": {"redactedContent": "cmVkYWN0ZWQ="}})),
    )
    .await;
    let response = send_to(&server, NOVA, false, &unsigned).await;
    assert_eq!(response.status(), 200);
}

#[tokio::test]
async fn claude_thinking_needs_reasoning_before_a_final_tool_use() {
    let server = bedrock(SimConfig::default()).await;
    let mut tools = thinking(
        json!({"messages": [text("Use get_weather for Paris")], "toolConfig": weather_tools()}),
    );
    let answer = converse(&server, &tools).await;
    let content = answer["output"]["message"]["content"].as_array().unwrap();
    let reasoning = content[0].clone();
    let call = content[1].clone();
    let id = call["toolUse"]["toolUseId"].clone();
    let result = json!({"role": "user", "content": [{"toolResult": {"toolUseId": id, "content": [{"text": "21C"}]}}]});
    let ask = text("Use get_weather for Paris");

    tools["messages"] = json!([ask, {"role": "assistant", "content": [call]}, result]);
    model_error(
        send(&server, false, &tools).await,
        "messages.1.content.0.type: Expected `thinking` or `redacted_thinking`, but found \
         `tool_use`. When `thinking` is enabled, a final `assistant` message must start with a \
         thinking block (preceeding the lastmost set of `tool_use` and `tool_result` blocks). We \
         recommend you include thinking blocks from previous turns. To avoid this requirement, \
         disable `thinking`. Please consult our documentation at \
         https://docs.claude.com/en/docs/build-with-claude/extended-thinking",
    )
    .await;
    let with_text =
        json!([ask, {"role": "assistant", "content": [{"text": "Checking."}, call]}, result]);
    tools["messages"] = with_text.clone();
    let (_, _, message) = error_of(send(&server, false, &tools).await).await;
    assert!(message.contains("but found `text`"), "{message}");

    // With its reasoning first it goes through; so does the same history without thinking,
    // and an earlier (not final) tool turn without reasoning.
    tools["messages"] = json!([ask, {"role": "assistant", "content": [reasoning, call]}, result]);
    converse(&server, &tools).await;
    let mut plain = tools.clone();
    plain
        .as_object_mut()
        .unwrap()
        .remove("additionalModelRequestFields");
    plain["messages"] = with_text;
    converse(&server, &plain).await;
    let mut earlier = tools.clone();
    earlier["messages"] = json!([ask, {"role": "assistant", "content": [call]}, result,
        {"role": "assistant", "content": [{"text": "It is 21C."}]}, text("Thanks")]);
    converse(&server, &earlier).await;
}

#[tokio::test]
async fn at_most_four_cache_points() {
    let server = bedrock(SimConfig::default()).await;
    let point = json!({"cachePoint": {"type": "default"}});
    let mut tools = weather_tools();
    tools["tools"].as_array_mut().unwrap().push(point.clone());
    let body = |points: usize| {
        let mut turn = vec![json!({"text": "Hello"})];
        turn.extend(std::iter::repeat_n(point.clone(), points - 2));
        json!({"system": [{"text": "Be brief."}, point], "toolConfig": tools,
            "messages": [{"role": "user", "content": turn}]})
    };
    converse(&server, &body(4)).await;
    model_error(
        send(&server, false, &body(5)).await,
        "A maximum of 4 blocks with cache_control may be provided. Found 5.",
    )
    .await;
}

/// The first bytes of a PNG of `width` × `height` pixels (all the simulator reads).
fn png(width: u32, height: u32) -> String {
    use base64::Engine as _;
    let mut bytes = b"\x89PNG\r\n\x1a\n\0\0\0\x0dIHDR".to_vec();
    bytes.extend(width.to_be_bytes());
    bytes.extend(height.to_be_bytes());
    bytes.extend([8, 6, 0, 0, 0]);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn image(data: &str) -> Value {
    json!({"image": {"format": "png", "source": {"bytes": data}}})
}

fn images(count: usize, data: &str) -> Value {
    let mut content: Vec<Value> = (0..count).map(|_| image(data)).collect();
    content.push(json!({"text": "Describe them."}));
    json!({"messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn image_size_and_count_limits() {
    use base64::Engine as _;
    let server = bedrock(SimConfig::default()).await;
    // 3.75 MiB of image is 5 MiB of base64, Claude's limit; one byte more is refused.
    let big =
        base64::engine::general_purpose::STANDARD.encode(vec![0u8; 3 * 1024 * 1024 * 5 / 4 + 1]);
    model_error(
        send(&server, false, &images(1, &big)).await,
        "messages.0.content.0.image.source.bytes: image exceeds 5 MB maximum: 5242884 bytes > \
         5242880 bytes",
    )
    .await;
    converse(&server, &images(1, &png(8000, 10))).await;
    model_error(
        send(&server, false, &images(1, &png(10, 8001))).await,
        "messages.0.content.0.image.source.bytes: At least one of the image dimensions exceed \
         max allowed size: 8000 pixels",
    )
    .await;
    // Claude 3 takes 20 images at most; newer Claude takes more, each at most 2000 px a side.
    converse(&server, &images(20, &png(10, 10))).await;
    model_error(
        send(&server, false, &images(21, &png(10, 10))).await,
        "too many images and documents: 21 + 0 > 20",
    )
    .await;
    let response = send_to(&server, CLAUDE_4, false, &images(21, &png(2000, 2000))).await;
    assert_eq!(response.status(), 200);
    model_error(
        send_to(&server, CLAUDE_4, false, &images(21, &png(2001, 10))).await,
        "messages.0.content.0.image.source.bytes: At least one of the image dimensions exceed \
         max allowed size for many-image requests: 2000 pixels",
    )
    .await;
}

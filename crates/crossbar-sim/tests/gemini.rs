//! The Gemini API and Vertex AI simulators over HTTP: answers, both stream framings, the
//! service's validation messages, thought signatures, auth, Google-shaped faults, embeddings.

mod common;

use std::time::Duration;

use common::{post, post_json, post_unparsable, start};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use serde_json::{Value, json};

const MODEL: &str = "gemini-2.5-flash";

fn url(server: &SimServer, method: &str) -> String {
    match server.dialect() {
        SimDialect::Vertex => format!(
            "{}/projects/p1/locations/us-central1/publishers/google/models/{MODEL}:{method}",
            server.base_url()
        ),
        _ => format!("{}/models/{MODEL}:{method}", server.base_url()),
    }
}

async fn both() -> [SimServer; 2] {
    [
        start(SimDialect::Gemini, SimConfig::default()).await,
        start(SimDialect::Vertex, SimConfig::default()).await,
    ]
}

fn user(text: &str) -> Value {
    json!({"role": "user", "parts": [{"text": text}]})
}

fn tools() -> Value {
    json!([{"functionDeclarations": [
        {"name": "get_weather", "description": "Weather for a city", "parameters": {
            "type": "OBJECT", "properties": {"city": {"type": "STRING"}, "unit": {"type": "STRING", "enum": ["c", "f"]}},
            "required": ["city", "unit"]}},
        {"name": "get_time", "parameters": {"type": "object", "properties": {"zone": {"type": "string"}}, "required": ["zone"]}}
    ]}])
}

/// The chunks of an `alt=sse` body, checking Gemini's framing: `data:` only, CRLF CRLF.
#[expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helper: an unexpected answer fails the test"
)]
fn sse_chunks(body: &str) -> Vec<Value> {
    assert!(
        body.ends_with("\r\n\r\n"),
        "frames end with CRLF CRLF: {body:?}"
    );
    assert!(!body.contains("[DONE]"));
    body.trim_end_matches("\r\n\r\n")
        .split("\r\n\r\n")
        .map(|event| {
            let data = event
                .strip_prefix("data: ")
                .unwrap_or_else(|| panic!("not a data-only event: {event:?}"));
            serde_json::from_str(data).unwrap()
        })
        .collect()
}

/// The parts of each chunk's first candidate, in order.
fn parts(chunks: &[Value]) -> Vec<Value> {
    chunks
        .iter()
        .flat_map(|c| {
            c["candidates"][0]["content"]["parts"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .collect()
}

fn text_of(chunks: &[Value]) -> String {
    parts(chunks)
        .into_iter()
        .filter(|p| p.get("thought").is_none())
        .filter_map(|p| p["text"].as_str().map(str::to_owned))
        .collect()
}

fn error_of(body: &Value) -> (&str, &str) {
    (
        body["error"]["status"].as_str().unwrap_or_default(),
        body["error"]["message"].as_str().unwrap_or_default(),
    )
}

#[tokio::test]
async fn generate_content_answers_from_the_prompt_on_both_apis() {
    for server in both().await {
        let (status, body) = post_json(
            &url(&server, "generateContent"),
            &json!({"contents": [user("Tell me about otters")], "systemInstruction": {"parts": [{"text": "Be brief."}]}}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let candidate = &body["candidates"][0];
        assert_eq!(candidate["content"]["role"], "model");
        assert_eq!(candidate["finishReason"], "STOP");
        assert!(text_of(std::slice::from_ref(&body)).contains("otters"));
        assert_eq!(body["modelVersion"], MODEL);
        assert!(body["responseId"].as_str().unwrap().len() > 10);
        let usage = &body["usageMetadata"];
        let (prompt, output) = (
            usage["promptTokenCount"].as_u64().unwrap(),
            usage["candidatesTokenCount"].as_u64().unwrap(),
        );
        assert!(prompt > 0 && output > 0);
        assert_eq!(usage["totalTokenCount"].as_u64().unwrap(), prompt + output);
        assert_eq!(
            body.get("createTime").is_some(),
            server.dialect() == SimDialect::Vertex
        );
    }
}

#[tokio::test]
async fn sse_streams_use_crlf_frames_running_usage_and_no_sentinel() {
    for server in both().await {
        let body = json!({"contents": [user("Stream a few words about rivers please")]});
        let (_, whole) = post_json(&url(&server, "generateContent"), &body).await;
        let response = post(
            &format!("{}?alt=sse", url(&server, "streamGenerateContent")),
            &body,
        )
        .await;
        assert_eq!(response.status(), 200);
        crossbar_testkit::http::assert_content_type(&response, "text/event-stream");
        let chunks = sse_chunks(&response.text().await.unwrap());
        assert!(chunks.len() > 3);
        assert_eq!(text_of(&chunks), text_of(std::slice::from_ref(&whole)));
        let counts: Vec<u64> = chunks
            .iter()
            .map(|c| c["usageMetadata"]["candidatesTokenCount"].as_u64().unwrap())
            .collect();
        assert!(
            counts.windows(2).all(|w| w[0] <= w[1]),
            "a running snapshot: {counts:?}"
        );
        let last = chunks.last().unwrap();
        assert_eq!(last["candidates"][0]["finishReason"], "STOP");
        assert_eq!(
            last["usageMetadata"], whole["usageMetadata"],
            "the final snapshot is authoritative"
        );
        let finishes = chunks
            .iter()
            .filter(|c| c["candidates"][0].get("finishReason").is_some())
            .count();
        assert_eq!(finishes, 1);
    }
}

#[tokio::test]
async fn without_alt_sse_the_stream_is_one_json_array() {
    let server = start(SimDialect::Gemini, SimConfig::default()).await;
    let body = json!({"contents": [user("Stream a few words about lakes")]});
    let response = post(&url(&server, "streamGenerateContent"), &body).await;
    assert_eq!(response.status(), 200);
    crossbar_testkit::http::assert_content_type(&response, "application/json");
    let text = response.text().await.unwrap();
    assert!(text.starts_with("[{") && text.ends_with("\n]"), "{text}");
    assert!(text.contains("\n,\r\n"));
    let chunks: Vec<Value> = serde_json::from_str(&text).unwrap();
    let sse = post(
        &format!("{}?alt=sse", url(&server, "streamGenerateContent")),
        &body,
    )
    .await;
    let sse = sse_chunks(&sse.text().await.unwrap());
    assert_eq!(chunks.len(), sse.len());
    assert_eq!(text_of(&chunks), text_of(&sse));
}

#[tokio::test]
async fn some_streams_carry_empty_text_parts() {
    let server = start(SimDialect::Gemini, SimConfig::default()).await;
    let mut empty_parts = 0;
    for topic in ["rivers", "lakes", "seas", "ponds", "oceans", "brooks"] {
        let body = json!({"contents": [user(&format!("Talk about {topic} at length"))]});
        let response = post(
            &format!("{}?alt=sse", url(&server, "streamGenerateContent")),
            &body,
        )
        .await;
        let chunks = sse_chunks(&response.text().await.unwrap());
        empty_parts += parts(&chunks).iter().filter(|p| p["text"] == "").count();
    }
    assert!(
        empty_parts > 0,
        "clients must see spurious empty text parts"
    );
}

#[tokio::test]
async fn parallel_function_calls_come_whole_in_one_chunk_without_ids_and_end_with_stop() {
    for server in both().await {
        let body =
            json!({"contents": [user("Use get_weather and get_time for Paris")], "tools": tools()});
        let response = post(
            &format!("{}?alt=sse", url(&server, "streamGenerateContent")),
            &body,
        )
        .await;
        let chunks = sse_chunks(&response.text().await.unwrap());
        assert_eq!(chunks.len(), 1);
        let candidate = &chunks[0]["candidates"][0];
        assert_eq!(candidate["finishReason"], "STOP");
        let parts = candidate["content"]["parts"].as_array().unwrap();
        assert_eq!(parts.len(), 2);
        let weather = &parts[0]["functionCall"];
        assert_eq!(weather["name"], "get_weather");
        assert!(weather.get("id").is_none());
        assert!(weather["args"]["city"].is_string());
        assert!(["c", "f"].contains(&weather["args"]["unit"].as_str().unwrap()));
        assert!(parts[1]["functionCall"]["args"]["zone"].is_string());
        assert!(
            parts[0].get("thoughtSignature").is_none(),
            "no thinking, no signatures"
        );
    }
}

#[tokio::test]
async fn function_results_are_answered_and_counted() {
    let server = start(SimDialect::Gemini, SimConfig::default()).await;
    let call = |name: &str| json!({"functionCall": {"name": name, "args": {"city": "Paris"}}});
    let result = |name: &str, response: Value| json!({"functionResponse": {"name": name, "response": response}});
    let contents = json!([
        user("weather and time in Paris?"),
        {"role": "model", "parts": [call("get_weather"), call("get_time")]},
        {"role": "user", "parts": [result("get_weather", json!({"output": "sunny"})), result("get_time", json!({"time": "noon"}))]}
    ]);
    let (status, body) = post_json(
        &url(&server, "generateContent"),
        &json!({"contents": contents, "tools": tools()}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let text = text_of(std::slice::from_ref(&body));
    assert!(
        text.contains("get_weather: sunny") && text.contains("noon"),
        "{text}"
    );

    let mut short = contents.clone();
    short[2]["parts"].as_array_mut().unwrap().pop();
    let (status, body) = post_json(
        &url(&server, "generateContent"),
        &json!({"contents": short}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&body),
        (
            "INVALID_ARGUMENT",
            "Please ensure that the number of function response parts is equal to the number of function call parts of the function call turn."
        )
    );
}

#[tokio::test]
async fn validation_errors_use_the_services_messages_and_shapes() {
    let server = start(SimDialect::Gemini, SimConfig::default()).await;
    let generate = url(&server, "generateContent");
    let (status, body) = post_json(
        &generate,
        &json!({"contents": [{"role": "assistant", "parts": [{"text": "hi"}]}]}),
    )
    .await;
    assert_eq!(
        (status, error_of(&body)),
        (
            400,
            ("INVALID_ARGUMENT", "Please use a valid role: user, model.")
        )
    );

    let strict = json!({"contents": [user("hi")], "tools": [{"functionDeclarations": [{"name": "f", "parameters": {
        "type": "object", "properties": {"a": {"type": "string"}}, "additionalProperties": false}}]}]});
    let (status, body) = post_json(&generate, &strict).await;
    assert_eq!(status, 400);
    let expected = "Invalid JSON payload received. Unknown name \"additionalProperties\" at 'tools[0].function_declarations[0].parameters': Cannot find field.";
    assert_eq!(error_of(&body), ("INVALID_ARGUMENT", expected));
    let violation = &body["error"]["details"][0];
    assert_eq!(
        violation["@type"],
        "type.googleapis.com/google.rpc.BadRequest"
    );
    assert_eq!(
        violation["fieldViolations"][0]["field"],
        "tools[0].function_declarations[0].parameters"
    );
    assert_eq!(violation["fieldViolations"][0]["description"], expected);

    let string_result = json!({"contents": [user("q"),
        {"role": "model", "parts": [{"functionCall": {"name": "f", "args": {}}}]},
        {"role": "user", "parts": [{"functionResponse": {"name": "f", "response": "sunny"}}]}]});
    let (status, body) = post_json(&generate, &string_result).await;
    assert_eq!(status, 400);
    assert_eq!(
        error_of(&body).1,
        "Invalid value at 'contents[2].parts[0].function_response.response' (type.googleapis.com/google.protobuf.Struct), \"sunny\""
    );

    let (status, body) = post_unparsable(&generate).await;
    assert_eq!(status, 400);
    assert!(
        error_of(&body)
            .1
            .starts_with("Invalid JSON payload received.")
    );

    let (status, body) = post_json(&url(&server, "countEverything"), &json!({})).await;
    assert_eq!((status, error_of(&body).0), (404, "NOT_FOUND"));
    // Google's error bodies are pretty-printed.
    let raw = post(&generate, &json!({"contents": []}))
        .await
        .text()
        .await
        .unwrap();
    assert!(
        raw.starts_with("{\n  \"error\": {\n    \"code\": 400,"),
        "{raw}"
    );
}

#[tokio::test]
async fn thought_signatures_are_issued_with_thinking_and_required_back() {
    for server in both().await {
        let thinking = json!({"thinkingConfig": {"thinkingBudget": 1024, "includeThoughts": true}});
        let question = user("What is the weather in Paris? use get_weather");
        let (status, body) = post_json(
            &url(&server, "generateContent"),
            &json!({"contents": [question], "tools": tools(), "generationConfig": thinking}),
        )
        .await;
        assert_eq!(status, 200, "{body}");
        let parts = body["candidates"][0]["content"]["parts"]
            .as_array()
            .unwrap()
            .clone();
        assert_eq!(
            parts[0]["thought"], true,
            "includeThoughts adds a summary part"
        );
        let call_part = parts
            .iter()
            .find(|p| p.get("functionCall").is_some())
            .unwrap()
            .clone();
        let signature = call_part["thoughtSignature"].as_str().unwrap().to_owned();
        assert!(
            body["usageMetadata"]["thoughtsTokenCount"]
                .as_u64()
                .unwrap()
                > 0
        );

        let replay = |call: Value| {
            json!({"contents": [question, {"role": "model", "parts": [call]},
                {"role": "user", "parts": [{"functionResponse": {"name": "get_weather", "response": {"output": "sunny"}}}]}],
                "tools": tools(), "generationConfig": thinking})
        };
        let mut unsigned = call_part.clone();
        unsigned.as_object_mut().unwrap().remove("thoughtSignature");
        let (status, body) = post_json(&url(&server, "generateContent"), &replay(unsigned)).await;
        assert_eq!(status, 400);
        assert!(
            error_of(&body)
                .1
                .starts_with("Function call is missing a thought_signature in functionCall parts."),
            "{body}"
        );
        let (status, body) = post_json(&url(&server, "generateContent"), &replay(call_part)).await;
        assert_eq!(status, 200, "{body}");
        assert!(text_of(std::slice::from_ref(&body)).contains("sunny"));
        assert!(!signature.is_empty());
    }
}

/// `generateContent` on `model` with `thinkingBudget = budget`: the status and, for a refusal,
/// the error's status and message.
async fn budget(server: &SimServer, model: &str, budget: i64) -> (u16, String, String) {
    let url = match server.dialect() {
        SimDialect::Vertex => format!(
            "{}/projects/p1/locations/us-central1/publishers/google/models/{model}:generateContent",
            server.base_url()
        ),
        _ => format!("{}/models/{model}:generateContent", server.base_url()),
    };
    let body = json!({"contents": [user("hi")],
        "generationConfig": {"thinkingConfig": {"thinkingBudget": budget}}});
    let (status, body) = post_json(&url, &body).await;
    let (kind, message) = error_of(&body);
    (status, kind.to_owned(), message.to_owned())
}

fn accepted() -> (u16, String, String) {
    (200, String::new(), String::new())
}

fn refused(message: &str) -> (u16, String, String) {
    (400, "INVALID_ARGUMENT".to_owned(), message.to_owned())
}

/// A model, its budget range's low end on the Gemini API and on Vertex AI and its high end,
/// budgets out of the range, budgets both APIs accept.
type BudgetRange = (
    &'static str,
    (i64, i64, i64),
    &'static [i64],
    &'static [i64],
);

/// Each model's thinking budgets: those refused, in the Gemini API's and Vertex AI's words, and
/// those both accept. 2.5 Pro cannot turn thinking off, and each model has its own range.
#[tokio::test]
async fn thinking_budgets_follow_each_models_range() {
    let [gemini, vertex] = both().await;
    assert_eq!(
        budget(&gemini, "gemini-2.5-pro", 0).await,
        refused("Budget 0 is invalid. This model only works in thinking mode.")
    );
    assert_eq!(
        budget(&vertex, "gemini-2.5-pro", 0).await,
        refused("The model does not support setting thinking_budget to 0.")
    );
    let cases: [BudgetRange; 3] = [
        (
            "gemini-2.5-pro",
            (128, 128, 32_768),
            &[127, 32_769],
            &[-1, 128, 32_768],
        ),
        (
            "gemini-2.5-flash",
            (0, 1, 24_576),
            &[24_577],
            &[-1, 0, 1, 24_576],
        ),
        (
            "gemini-2.5-flash-lite",
            (512, 512, 24_576),
            &[128, 24_577],
            &[-1, 0, 512, 24_576],
        ),
    ];
    for (model, (gemini_low, vertex_low, high), out_of_range, fine) in cases {
        for &value in out_of_range {
            assert_eq!(
                budget(&gemini, model, value).await,
                refused(&format!(
                    "The thinking budget {value} is invalid. Please choose a value between {gemini_low} and {high}."
                )),
                "{model} {value}"
            );
            assert_eq!(
                budget(&vertex, model, value).await,
                refused(&format!(
                    "thinking_budget is out of range; supported values are integers from {vertex_low} to {high}"
                )),
                "{model} {value}"
            );
        }
        for server in [&gemini, &vertex] {
            for &value in fine {
                assert_eq!(
                    budget(server, model, value).await,
                    accepted(),
                    "{model} {value}"
                );
            }
        }
    }
}

#[expect(
    clippy::unwrap_used,
    reason = "test helper: an unexpected answer fails the test"
)]
async fn send(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(url)
        .json(&json!({"contents": [user("hi")]}));
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// A simulator of `dialect` that wants the key `key`, and its `generateContent` URL.
async fn keyed(dialect: SimDialect, key: &str) -> (SimServer, String) {
    let config = SimConfig {
        api_key: Some(key.to_owned()),
        ..SimConfig::default()
    };
    let server = start(dialect, config).await;
    let generate = url(&server, "generateContent");
    (server, generate)
}

#[tokio::test]
async fn gemini_takes_the_key_in_a_header_or_the_query() {
    let (_server, generate) = keyed(SimDialect::Gemini, "AIza-sim").await;
    let (status, body) = send(&generate, &[]).await;
    assert_eq!((status, error_of(&body).0), (403, "PERMISSION_DENIED"));
    let (status, body) = send(&generate, &[("x-goog-api-key", "AIza-wrong")]).await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"));
    assert_eq!(body["error"]["details"][0]["reason"], "API_KEY_INVALID");
    assert!(
        !body.to_string().contains("AIza-wrong"),
        "keys are never echoed"
    );
    assert_eq!(
        send(&generate, &[("x-goog-api-key", "AIza-sim")]).await.0,
        200
    );
    assert_eq!(send(&format!("{generate}?key=AIza-sim"), &[]).await.0, 200);
    assert_eq!(
        send(&generate, &[("authorization", "Bearer AIza-sim")])
            .await
            .0,
        403
    );
}

#[tokio::test]
async fn vertex_takes_a_bearer_token_and_also_guards_hosted_claude() {
    let (server, generate) = keyed(SimDialect::Vertex, "ya29.sim").await;
    let (status, body) = send(&generate, &[]).await;
    assert_eq!((status, error_of(&body).0), (401, "UNAUTHENTICATED"));
    assert_eq!(body["error"]["details"][0]["reason"], "CREDENTIALS_MISSING");
    let (status, _) = send(&generate, &[("authorization", "Bearer ya29.other")]).await;
    assert_eq!(status, 401);
    assert_eq!(
        send(&generate, &[("authorization", "Bearer ya29.sim")])
            .await
            .0,
        200
    );

    let claude = format!(
        "{}/projects/p1/locations/us-east5/publishers/anthropic/models/claude-sonnet-4@20250514:rawPredict",
        server.base_url()
    );
    let anthropic_body = json!({"anthropic_version": "vertex-2023-10-16", "max_tokens": 16, "messages": [{"role": "user", "content": "hi"}]});
    let unauthenticated = post(&claude, &anthropic_body).await;
    assert_eq!(unauthenticated.status(), 401);
    let authorized = reqwest::Client::new()
        .post(&claude)
        .bearer_auth("ya29.sim")
        .json(&anthropic_body)
        .send()
        .await
        .unwrap();
    assert!(
        ![401, 404].contains(&authorized.status().as_u16()),
        "passed on to the Anthropic simulator: {}",
        authorized.status()
    );
}

#[tokio::test]
async fn rate_limits_carry_retry_info_on_gemini_and_nothing_on_vertex() {
    let config = SimConfig {
        rate_limit_rate: 1.0,
        retry_after_s: 3,
        ..SimConfig::default()
    };
    let gemini = start(SimDialect::Gemini, config.clone()).await;
    let response = post(
        &url(&gemini, "generateContent"),
        &json!({"contents": [user("x")]}),
    )
    .await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
    let body: Value = response.json().await.unwrap();
    assert_eq!(error_of(&body).0, "RESOURCE_EXHAUSTED");
    let details = body["error"]["details"].as_array().unwrap();
    let retry = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.RetryInfo")
        .unwrap();
    assert_eq!(retry["retryDelay"], "3s");
    let quota = details
        .iter()
        .find(|d| d["@type"] == "type.googleapis.com/google.rpc.QuotaFailure")
        .unwrap();
    assert!(
        quota["violations"][0]["quotaId"]
            .as_str()
            .unwrap()
            .contains("PerMinute")
    );

    let vertex = start(SimDialect::Vertex, config).await;
    let (status, body) = post_json(
        &url(&vertex, "generateContent"),
        &json!({"contents": [user("x")]}),
    )
    .await;
    assert_eq!((status, error_of(&body).0), (429, "RESOURCE_EXHAUSTED"));
    assert!(body["error"].get("details").is_none());
}

#[tokio::test]
async fn server_errors_have_google_statuses() {
    for (status, name) in [
        (503, "UNAVAILABLE"),
        (500, "INTERNAL"),
        (504, "DEADLINE_EXCEEDED"),
    ] {
        let config = SimConfig {
            error_rate: 1.0,
            error_status: status,
            ..SimConfig::default()
        };
        let server = start(SimDialect::Gemini, config).await;
        let (got, body) = post_json(
            &url(&server, "generateContent"),
            &json!({"contents": [user("x")]}),
        )
        .await;
        assert_eq!((got, error_of(&body).0), (status, name));
    }
}

#[tokio::test]
async fn broken_streams_error_in_band_cut_or_garble() {
    let long = json!({"contents": [user("a long answer about many different things please")]});
    let stream_url =
        |server: &SimServer| format!("{}?alt=sse", url(server, "streamGenerateContent"));

    let config = SimConfig {
        stream_error_after_chunks: 2,
        ..SimConfig::default()
    };
    let server = start(SimDialect::Gemini, config).await;
    let chunks = sse_chunks(
        &post(&stream_url(&server), &long)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(chunks.len(), 3);
    let (status, _) = error_of(&chunks[2]);
    assert_eq!(status, "INTERNAL");
    assert!(
        chunks
            .iter()
            .all(|c| c["candidates"][0].get("finishReason").is_none())
    );

    let config = SimConfig {
        cut_after_chunks: 2,
        ..SimConfig::default()
    };
    let server = start(SimDialect::Gemini, config).await;
    let cut = post(&stream_url(&server), &long).await.text().await;
    if let Ok(text) = cut {
        assert!(
            !text.contains("finishReason"),
            "a cut stream never finishes: {text}"
        );
    }

    let config = SimConfig {
        malformed_rate: 1.0,
        ..SimConfig::default()
    };
    let server = start(SimDialect::Gemini, config).await;
    let text = post(&stream_url(&server), &long)
        .await
        .text()
        .await
        .unwrap();
    let garbled = text
        .trim_end_matches("\r\n\r\n")
        .split("\r\n\r\n")
        .filter(|e| serde_json::from_str::<Value>(e.trim_start_matches("data: ")).is_err())
        .count();
    assert_eq!(garbled, 1);

    let config = SimConfig {
        hang_rate: 1.0,
        ..SimConfig::default()
    };
    let server = start(SimDialect::Gemini, config).await;
    let hung = reqwest::Client::new()
        .post(url(&server, "generateContent"))
        .json(&long)
        .timeout(Duration::from_millis(200))
        .send()
        .await;
    assert!(hung.unwrap_err().is_timeout());
}

#[tokio::test]
async fn embeddings_single_and_batched() {
    let config = SimConfig {
        embedding_dimensions: 16,
        ..SimConfig::default()
    };
    let server = start(SimDialect::Gemini, config).await;
    let embed = format!(
        "{}/models/text-embedding-004:embedContent",
        server.base_url()
    );
    let (status, body) = post_json(
        &embed,
        &json!({"content": {"parts": [{"text": "otters swim"}]}}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["embedding"]["values"].as_array().unwrap().len(), 16);

    let batch = format!(
        "{}/models/text-embedding-004:batchEmbedContents",
        server.base_url()
    );
    let request = |model: &str, text: &str| json!({"model": model, "content": {"parts": [{"text": text}]}, "outputDimensionality": 8});
    let (status, body) = post_json(
        &batch,
        &json!({"requests": [request("models/text-embedding-004", "a"), request("models/text-embedding-004", "b")]}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let embeddings = body["embeddings"].as_array().unwrap();
    assert_eq!(embeddings.len(), 2);
    assert_eq!(embeddings[0]["values"].as_array().unwrap().len(), 8);
    assert_ne!(embeddings[0], embeddings[1]);
    let (status, body) =
        post_json(&batch, &json!({"requests": [request("models/other", "a")]})).await;
    assert_eq!((status, error_of(&body).0), (400, "INVALID_ARGUMENT"));
}

//! The gateway (OpenAI ingress) in front of simulated Gemini API and Vertex AI providers.

mod common;

use common::{
    TestGateway, chunks, error_of, sse_data, start, streamed_calls, streamed_text, user,
    weather_tools,
};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
name = "sim-gemini"
kind = "sim"
dialect = "gemini"
api_key = "AIza-gateway"
sim = { api_key = "AIza-gateway", embedding_dimensions = 8 }

[[providers]]
name = "sim-vertex"
kind = "sim"
dialect = "vertex"
project = "proj-1"
location = "europe-west4"
api_key = "ya29.gateway"
sim = { api_key = "ya29.gateway" }

[[models]]
name = "gemini"
deployments = [{ provider = "sim-gemini", target = "gemini-2.5-flash" }]

[[models]]
name = "vertex"
deployments = [{ provider = "sim-vertex", target = "gemini-2.5-pro" }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-gemini", target = "text-embedding-004" }]

[[models]]
name = "embed-vertex"
deployments = [{ provider = "sim-vertex", target = "text-embedding-005" }]
"#;

/// `(logical model, provider)` for both APIs.
const BOTH: [(&str, &str); 2] = [("gemini", "sim-gemini"), ("vertex", "sim-vertex")];

/// The upstream request bodies a simulator received.
fn upstream(gw: &TestGateway, provider: &str) -> Vec<Value> {
    gw.sim(provider)
        .requests()
        .into_iter()
        .filter_map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn text_reaches_both_apis_with_their_urls_and_auth() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let body = json!({"model": model, "messages": [
            {"role": "system", "content": "Be brief."}, user("Tell me about otters")]});
        let response = gw.post("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200, "{model}");
        let body: Value = response.json().await.unwrap();
        assert_eq!(body["object"], "chat.completion");
        assert!(
            body["choices"][0]["message"]["content"]
                .as_str()
                .unwrap()
                .contains("otters")
        );
        assert_eq!(body["choices"][0]["finish_reason"], "stop");
        assert!(body["usage"]["completion_tokens"].as_u64().unwrap() > 0);
        let request = &gw.sim(provider).requests()[0];
        let sent = request.body.as_ref().unwrap();
        assert_eq!(sent["systemInstruction"]["parts"][0]["text"], "Be brief.");
        assert_eq!(sent["contents"][0]["role"], "user");
        match provider {
            "sim-gemini" => {
                assert_eq!(
                    request.path,
                    "/v1beta/models/gemini-2.5-flash:generateContent"
                );
                assert_eq!(request.header("x-goog-api-key"), Some("AIza-gateway"));
                assert!(request.header("authorization").is_none());
            }
            _ => {
                assert_eq!(
                    request.path,
                    "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/gemini-2.5-pro:generateContent"
                );
                assert_eq!(request.header("authorization"), Some("Bearer ya29.gateway"));
                assert!(request.header("x-goog-api-key").is_none());
            }
        }
    }
}

#[tokio::test]
async fn streams_report_the_final_usage_snapshot_never_a_sum() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let messages = json!([user("Stream a long answer about rivers and their deltas")]);
        let whole: Value =
            common::chat_answer(&gw, &json!({"model": model, "messages": messages})).await;
        let body = json!({"model": model, "messages": messages, "stream": true, "stream_options": {"include_usage": true}});
        let (frames, end) = sse_data(gw.post("/v1/chat/completions", &body).await).await;
        end.unwrap();
        assert_eq!(frames.last().unwrap(), "[DONE]");
        let chunks = chunks(&frames);
        assert_eq!(
            streamed_text(&chunks),
            whole["choices"][0]["message"]["content"].as_str().unwrap()
        );
        let usage: Vec<&Value> = chunks
            .iter()
            .filter(|c| c["choices"] == json!([]))
            .map(|c| &c["usage"])
            .collect();
        assert_eq!(usage.len(), 1);
        assert_eq!(
            *usage[0], whole["usage"],
            "{model}: the stream's usage is the last snapshot"
        );
        let finish: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
            .collect();
        assert_eq!(finish, ["stop"]);
        let stream_request = gw.sim(provider).requests().into_iter().last().unwrap();
        assert!(
            stream_request.path.ends_with(":streamGenerateContent"),
            "{}",
            stream_request.path
        );
        assert_eq!(stream_request.query.as_deref(), Some("alt=sse"));
    }
}

#[tokio::test]
async fn parallel_tool_calls_and_results_round_trip_with_names_recovered() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let question = user("Use get_weather and get_time for Paris");
        let body = json!({"model": model, "messages": [question], "tools": weather_tools(), "stream": true});
        let (frames, end) = sse_data(gw.post("/v1/chat/completions", &body).await).await;
        end.unwrap();
        let chunks = chunks(&frames);
        assert_eq!(chunks[0]["choices"][0]["delta"]["content"], Value::Null);
        let calls = streamed_calls(&chunks);
        assert_eq!(
            calls.iter().map(|c| c.1.as_str()).collect::<Vec<_>>(),
            ["get_weather", "get_time"]
        );
        assert_ne!(calls[0].0, calls[1].0, "generated ids are distinct");
        let weather: Value = serde_json::from_str(&calls[0].2).unwrap();
        assert!(weather["city"].is_string() && weather["unit"].is_string());
        let finish: Vec<&str> = chunks
            .iter()
            .filter_map(|c| c["choices"].get(0)?["finish_reason"].as_str())
            .collect();
        assert_eq!(
            finish,
            ["tool_calls"],
            "STOP with function calls is tool_calls"
        );
        // The tool schema lost what Gemini rejects (the simulator would have answered 400).
        let sent = &upstream(&gw, provider)[0];
        assert!(
            sent["tools"][0]["functionDeclarations"][0]["parameters"]
                .get("additionalProperties")
                .is_none()
        );

        // Results come back in the other order and without function names.
        let assistant = json!({"role": "assistant", "content": null, "tool_calls": calls.iter().map(|(id, name, args)| json!(
            {"id": id, "type": "function", "function": {"name": name, "arguments": args}})).collect::<Vec<_>>()});
        let messages = json!([question, assistant,
            {"role": "tool", "tool_call_id": calls[1].0, "content": "noon"},
            {"role": "tool", "tool_call_id": calls[0].0, "content": "{\"sky\": \"sunny\"}"}]);
        let response = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": model, "messages": messages, "tools": weather_tools()}),
            )
            .await;
        assert_eq!(response.status(), 200, "{model}");
        let body: Value = response.json().await.unwrap();
        let content = body["choices"][0]["message"]["content"].as_str().unwrap();
        assert!(
            content.contains("get_weather") && content.contains("noon"),
            "{content}"
        );
        let sent = upstream(&gw, provider).pop().unwrap();
        assert_eq!(
            sent["contents"][2],
            json!({"role": "user", "parts": [
                {"functionResponse": {"name": "get_weather", "response": {"sky": "sunny"}}},
                {"functionResponse": {"name": "get_time", "response": {"output": "noon"}}}
            ]}),
            "{model}: grouped in one turn, in call order, named, without our synthetic ids"
        );
    }
}

/// What the simulator signs an answer with: `sim-thought:<responseId>:` and the response id
/// repeated, 300 bytes in all (see crossbar-sim's Gemini `Render::signature`).
fn sim_signature(response_id: &str) -> String {
    use base64::Engine as _;
    let mut bytes = format!("sim-thought:{response_id}:").into_bytes();
    while bytes.len() < 300 {
        bytes.extend_from_slice(response_id.as_bytes());
    }
    bytes.truncate(300);
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

/// A follow-up turn answering `call` (an OpenAI tool call) with "sunny".
fn follow_up(model: &str, question: &Value, call: &Value) -> Value {
    json!({"model": model, "tools": weather_tools(), "reasoning_effort": "low", "messages": [question,
        {"role": "assistant", "content": null, "tool_calls": [call]},
        {"role": "tool", "tool_call_id": call["id"], "content": "sunny"}]})
}

/// Sends `body` and checks the answer uses the tool result.
#[expect(
    clippy::unwrap_used,
    reason = "test helper: an unexpected answer fails the test"
)]
async fn answers_with_the_result(gw: &TestGateway, body: &Value) {
    let response = gw.post("/v1/chat/completions", body).await;
    assert_eq!(response.status(), 200, "{body}");
    let answer: Value = response.json().await.unwrap();
    let content = answer["choices"][0]["message"]["content"].as_str().unwrap();
    assert!(content.contains("sunny"), "{content}");
}

/// Asks `model` for the weather in Paris with the weather tools and low reasoning effort: the
/// question, and the answer (a tool call).
async fn ask_the_weather(gw: &TestGateway, model: &str) -> (Value, Value) {
    let question = user("What is the weather in Paris? use get_weather");
    let body = json!({"model": model, "messages": [question], "tools": weather_tools(), "reasoning_effort": "low"});
    let response = common::chat_answer(gw, &body).await;
    (question, response)
}

#[tokio::test]
async fn thinking_tool_call_ids_fit_openai_and_their_signatures_come_back() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let (question, response) = ask_the_weather(&gw, model).await;
        let call = response["choices"][0]["message"]["tool_calls"][0].clone();
        let id = call["id"].as_str().unwrap();
        // OpenAI rejects `tool_calls[].id` over 40 characters: the signature is not in the id.
        assert!(
            id.starts_with("call_gemini_") && id.len() == 28,
            "{model}: {id}"
        );
        assert!(
            response["usage"]["completion_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
        assert_eq!(
            upstream(&gw, provider)[0]["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": 1024}),
            "reasoning_effort low → the shared 1024-token budget"
        );
        let signature = sim_signature(response["id"].as_str().unwrap());

        // The next turn, with nothing but the short id, reaches Gemini with the exact signature.
        answers_with_the_result(&gw, &follow_up(model, &question, &call)).await;
        let sent = upstream(&gw, provider).pop().unwrap();
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"],
            json!(signature),
            "{model}"
        );

        // Streamed, the same: short ids, and the signature kept for the next turn.
        let streamed = json!({"model": model, "messages": [question], "tools": weather_tools(),
            "reasoning_effort": "low", "stream": true});
        let (frames, end) = sse_data(gw.post("/v1/chat/completions", &streamed).await).await;
        end.unwrap();
        let chunks = chunks(&frames);
        let calls = streamed_calls(&chunks);
        assert!(calls.iter().all(|c| c.0.len() <= 40), "{calls:?}");
        let call = json!({"id": calls[0].0, "type": "function",
            "function": {"name": calls[0].1, "arguments": calls[0].2}});
        answers_with_the_result(&gw, &follow_up(model, &question, &call)).await;
        let sent = upstream(&gw, provider).pop().unwrap();
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"],
            json!(sim_signature(chunks[0]["id"].as_str().unwrap())),
            "{model}: streamed"
        );
    }
}

#[tokio::test]
async fn a_lost_signature_becomes_googles_documented_dummy_not_an_error() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let (question, response) = ask_the_weather(&gw, model).await;
        // An id the gateway's memory never saw (expired, or kept by another replica).
        let mut call = response["choices"][0]["message"]["tool_calls"][0].clone();
        call["id"] = json!("call_gemini_0000000000000000");
        answers_with_the_result(&gw, &follow_up(model, &question, &call)).await;
        let sent = upstream(&gw, provider).pop().unwrap();
        assert_eq!(
            sent["contents"][1]["parts"][0]["thoughtSignature"], "skip_thought_signature_validator",
            "{model}"
        );
        assert_eq!(
            sent["contents"][1]["parts"][0]["functionCall"]["name"],
            "get_weather"
        );
    }
}

#[tokio::test]
async fn responses_clients_get_short_call_ids_too() {
    let gw = start(CONFIG).await;
    let tools = json!([{"type": "function", "name": "get_weather", "description": "Current weather for a city",
        "parameters": {"type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]);
    let body = json!({"model": "gemini", "input": "What is the weather in Paris? use get_weather",
        "tools": tools, "reasoning": {"effort": "low"}});
    let response = gw.post("/v1/responses", &body).await;
    assert_eq!(response.status(), 200);
    let response: Value = response.json().await.unwrap();
    let call = response["output"]
        .as_array()
        .unwrap()
        .iter()
        .find(|item| item["type"] == "function_call")
        .unwrap()
        .clone();
    let call_id = call["call_id"].as_str().unwrap();
    assert!(call_id.len() <= 40, "{call_id}");
    let next = json!({"model": "gemini", "tools": tools, "reasoning": {"effort": "low"}, "input": [
        {"role": "user", "content": "What is the weather in Paris? use get_weather"},
        {"type": "function_call", "call_id": call_id, "name": "get_weather", "arguments": call["arguments"]},
        {"type": "function_call_output", "call_id": call_id, "output": "sunny"}]});
    let answer = gw.post("/v1/responses", &next).await;
    assert_eq!(answer.status(), 200);
    let sent = upstream(&gw, "sim-gemini").pop().unwrap();
    let signature = sent["contents"][1]["parts"][0]["thoughtSignature"]
        .as_str()
        .unwrap();
    assert!(
        signature.len() > 100,
        "the real signature, not the dummy: {signature}"
    );
}

/// Remote image URLs are the gateway's to fetch (see `images.rs`); a URL that still reaches this
/// dialect is a 400 (unit-tested in crossbar-core).
#[tokio::test]
async fn image_data_urls_go_inline() {
    let gw = start(CONFIG).await;
    for (model, provider) in BOTH {
        let image = |url: &str| {
            json!({"model": model, "messages": [{"role": "user", "content": [
                {"type": "text", "text": "Describe this picture"},
                {"type": "image_url", "image_url": {"url": url}}]}]})
        };
        let response = gw
            .post(
                "/v1/chat/completions",
                &image("data:image/png;base64,iVBORw0KGgo="),
            )
            .await;
        assert_eq!(response.status(), 200);
        let sent = upstream(&gw, provider).pop().unwrap();
        assert_eq!(
            sent["contents"][0]["parts"][1],
            json!({"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}})
        );
    }
}

#[tokio::test]
async fn json_schema_output_is_requested_and_honoured() {
    let gw = start(CONFIG).await;
    let schema = json!({"type": "object", "properties": {"city": {"type": "string"}, "population": {"type": "integer"}},
        "required": ["city", "population"], "additionalProperties": false});
    for (model, provider) in BOTH {
        let body = json!({"model": model, "messages": [user("Describe Paris")],
            "response_format": {"type": "json_schema", "json_schema": {"name": "city", "schema": schema, "strict": true}}});
        let response: Value = common::chat_answer(&gw, &body).await;
        let content: Value = common::content_json(&response);
        assert!(
            content["city"].is_string() && content["population"].is_i64(),
            "{content}"
        );
        let config = &upstream(&gw, provider)[0]["generationConfig"];
        assert_eq!(config["responseMimeType"], "application/json");
        assert_eq!(
            config["responseJsonSchema"], schema,
            "the full JSON Schema, unsanitized"
        );
    }
}

/// [`common::flaky`] on a Google dialect.
fn faulty(dialect: &str, sim: &str) -> String {
    common::flaky(dialect, "gemini-2.5-flash", sim, "")
}

#[tokio::test]
async fn rate_limit_retry_info_becomes_retry_after() {
    let gw = start(&faulty(
        "gemini",
        "rate_limit_rate = 1.0, retry_after_s = 7",
    ))
    .await;
    let body = common::rate_limited_for_7s(&gw).await;
    assert_eq!(body["error"]["code"], "RESOURCE_EXHAUSTED");

    // Vertex's shared-capacity 429 says nothing about when: no Retry-After is invented.
    let gw = start(&faulty(
        "vertex",
        "rate_limit_rate = 1.0, retry_after_s = 7",
    ))
    .await;
    let response = common::chat(&gw, "m", "x").await;
    assert_eq!(response.status(), 429);
    assert!(response.headers().get("retry-after").is_none());
}

#[tokio::test]
async fn broken_streams_end_with_an_openai_error_event() {
    for dialect in ["gemini", "vertex"] {
        for fault in ["stream_error_after_chunks = 2", "cut_after_chunks = 2"] {
            let gw = start(&faulty(dialect, fault)).await;
            let body = json!({"model": "m", "stream": true, "messages": [user("a long answer about many different things")]});
            let response = gw.post("/v1/chat/completions", &body).await;
            assert_eq!(response.status(), 200);
            let (frames, end) = sse_data(response).await;
            end.unwrap();
            assert!(!frames.contains(&"[DONE]".to_owned()), "{dialect} {fault}");
            let last: Value = serde_json::from_str(frames.last().unwrap()).unwrap();
            assert!(
                last["error"]["message"].as_str().unwrap().contains("flaky"),
                "{last}"
            );
            assert!(streamed_text(&chunks(&frames[..frames.len() - 1])).starts_with("You said:"));
        }
    }
}

#[tokio::test]
async fn upstream_statuses_map_precisely() {
    // A wrong Gemini key (a 400 API_KEY_INVALID upstream) is in the conformance matrix.
    for (status, expected) in [(503, 503), (500, 500)] {
        let gw = start(&faulty(
            "vertex",
            &format!("error_rate = 1.0, error_status = {status}"),
        ))
        .await;
        let (got, _) = error_of(common::chat(&gw, "m", "x").await).await;
        assert_eq!(got, expected);
    }
    let gw = start(&faulty("gemini", "malformed_rate = 1.0")).await;
    let (status, _) = error_of(common::chat(&gw, "m", "x").await).await;
    assert_eq!(status, 502);
}

#[tokio::test]
async fn embeddings_on_the_gemini_api_and_on_vertex() {
    let gw = start(CONFIG).await;
    let response = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed", "input": ["otters swim", "rivers flow"]}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let body: Value = response.json().await.unwrap();
    let data = body["data"].as_array().unwrap();
    assert_eq!(data.len(), 2);
    assert_eq!(data[0]["embedding"].as_array().unwrap().len(), 8);
    // Gemini names no model and reports no usage: the deployment's target, and an estimate.
    assert_eq!(body["model"], "text-embedding-004");
    assert!(
        body["usage"]["prompt_tokens"].as_u64().unwrap() > 0,
        "{body}"
    );
    let request = &gw.sim("sim-gemini").requests()[0];
    assert_eq!(
        request.path,
        "/v1beta/models/text-embedding-004:batchEmbedContents"
    );

    // Vertex AI embeds through `:predict` on the publisher model (tests/media.rs checks the
    // vectors and usage).
    let response = gw
        .post(
            "/v1/embeddings",
            &json!({"model": "embed-vertex", "input": "x"}),
        )
        .await;
    assert_eq!(response.status(), 200);
    let request = &gw.sim("sim-vertex").requests()[0];
    assert_eq!(
        request.path,
        "/v1/projects/proj-1/locations/europe-west4/publishers/google/models/text-embedding-005:predict"
    );
}

/// 2.5 Pro cannot stop thinking (its API answers a zero budget with a 400): effort `none` gets
/// its least budget there, and still turns thinking off on Flash.
#[tokio::test]
async fn reasoning_effort_none_fits_what_each_model_accepts() {
    let gw = start(CONFIG).await;
    for (model, provider, budget) in [("gemini", "sim-gemini", 0), ("vertex", "sim-vertex", 128)] {
        let body = json!({"model": model, "messages": [user("hi")], "reasoning_effort": "none"});
        let response = gw.post("/v1/chat/completions", &body).await;
        assert_eq!(response.status(), 200, "{model}");
        assert_eq!(
            upstream(&gw, provider).pop().unwrap()["generationConfig"]["thinkingConfig"],
            json!({"thinkingBudget": budget}),
            "{model}"
        );
    }
}

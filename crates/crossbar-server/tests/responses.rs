//! Black-box `/v1/responses`: the Responses API served by OpenAI- and Anthropic-dialect
//! deployments, streamed and not; stored responses continued with `previous_response_id`,
//! fetched and deleted, scoped to the key that made them; errors and cut streams.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: a failure fails the test"
)]

mod common;

use common::{TestGateway, start};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
name = "sim-openai"
kind = "sim"
dialect = "openai"

[[providers]]
name = "sim-anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[providers]]
name = "sim-cut"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"
sim = { cut_after_chunks = 4 }

[[models]]
name = "gpt"
deployments = [{ provider = "sim-openai", target = "gpt-4o" }]

[[models]]
name = "claude"
deployments = [{ provider = "sim-anthropic", target = "claude-sonnet-4-20250514" }]

[[models]]
name = "cut"
deployments = [{ provider = "sim-cut", target = "claude-sonnet-4-20250514" }]
"#;

const MODELS: [&str; 2] = ["gpt", "claude"];

fn tools() -> Value {
    json!([
        {"type": "function", "name": "get_weather", "description": "Current weather for a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false},
         "strict": true},
        {"type": "function", "name": "get_time", "description": "Local time in a city",
         "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                        "required": ["city"], "additionalProperties": false},
         "strict": true}
    ])
}

async fn create(gw: &TestGateway, key: Option<&str>, body: &Value) -> (u16, Value) {
    let mut request = gw
        .client()
        .post(format!("{}/v1/responses", gw.url))
        .json(body);
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn call(
    gw: &TestGateway,
    method: reqwest::Method,
    key: Option<&str>,
    path: &str,
) -> (u16, Value) {
    let mut request = gw.client().request(method, format!("{}{path}", gw.url));
    if let Some(key) = key {
        request = request.bearer_auth(key);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

/// The SSE events of a Responses stream: `(event name, data)`, checking they agree.
async fn sse_events(response: reqwest::Response) -> Vec<(String, Value)> {
    assert_eq!(response.status(), 200);
    crossbar_testkit::http::assert_content_type(&response, "text/event-stream");
    let text = response.text().await.unwrap();
    common::responses_events(&text)
}

/// `GET /v1/responses/{id}` with no key.
async fn fetch(gw: &TestGateway, id: &str) -> (u16, Value) {
    call(
        gw,
        reqwest::Method::GET,
        None,
        &format!("/v1/responses/{id}"),
    )
    .await
}

fn function_calls(response: &Value) -> Vec<&Value> {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "function_call")
        .collect()
}

fn output_text(response: &Value) -> String {
    response["output"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|item| item["type"] == "message")
        .flat_map(|item| item["content"].as_array().unwrap())
        .filter_map(|part| part["text"].as_str())
        .collect()
}

#[tokio::test]
async fn a_tool_loop_continued_from_the_stored_response_on_two_dialects() {
    let gw = start(CONFIG).await;
    for model in MODELS {
        let (status, first) = create(
            &gw,
            None,
            &json!({"model": model, "instructions": "Be brief.",
                    "input": "Use get_weather for Paris.", "tools": tools()}),
        )
        .await;
        assert_eq!(status, 200, "{first}");
        assert_eq!(first["object"], "response");
        assert_eq!(first["status"], "completed");
        assert!(first["id"].as_str().unwrap().starts_with("resp_"));
        assert_eq!(first["instructions"], "Be brief.");
        assert_eq!(first["tools"][0]["name"], "get_weather");
        let calls = function_calls(&first);
        assert_eq!(calls.len(), 1, "{first}");
        assert_eq!(calls[0]["name"], "get_weather");
        let arguments: Value =
            serde_json::from_str(calls[0]["arguments"].as_str().unwrap()).unwrap();
        assert!(arguments["city"].is_string(), "{arguments}");
        assert!(calls[0]["id"].as_str().unwrap().starts_with("fc_"));
        assert_ne!(calls[0]["call_id"], calls[0]["id"]);
        let usage = &first["usage"];
        assert!(usage["input_tokens"].as_u64().unwrap() > 0);
        assert!(usage["output_tokens"].as_u64().unwrap() > 0);
        assert_eq!(
            usage["total_tokens"].as_u64().unwrap(),
            usage["input_tokens"].as_u64().unwrap() + usage["output_tokens"].as_u64().unwrap()
        );
        assert!(usage["input_tokens_details"]["cached_tokens"].is_u64());
        assert!(usage["output_tokens_details"]["reasoning_tokens"].is_u64());

        // Only the tool's output is sent: the gateway has the rest of the conversation.
        let (status, second) = create(
            &gw,
            None,
            &json!({"model": model, "previous_response_id": first["id"], "tools": tools(),
                    "input": [{"type": "function_call_output", "call_id": calls[0]["call_id"],
                               "output": "sunny, 21 C"}]}),
        )
        .await;
        assert_eq!(status, 200, "{second}");
        assert_eq!(second["previous_response_id"], first["id"]);
        assert!(function_calls(&second).is_empty());
        assert!(output_text(&second).contains("sunny, 21 C"), "{second}");
        // The upstream saw the whole conversation, the original question included.
        let sim = if model == "gpt" {
            "sim-openai"
        } else {
            "sim-anthropic"
        };
        let seen = gw
            .sim(sim)
            .requests()
            .last()
            .unwrap()
            .body
            .clone()
            .unwrap()
            .to_string();
        assert!(seen.contains("Use get_weather for Paris."), "{seen}");

        let (status, fetched) = fetch(&gw, second["id"].as_str().unwrap()).await;
        assert_eq!(status, 200);
        assert_eq!(fetched["id"], second["id"]);
        assert_eq!(fetched["output"], second["output"]);
    }
}

#[tokio::test]
async fn streams_the_event_sequence_and_stores_the_result() {
    let gw = start(CONFIG).await;
    for model in MODELS {
        let response = gw
            .post(
                "/v1/responses",
                &json!({"model": model, "input": "Use get_weather and get_time for Oslo.",
                        "tools": tools(), "stream": true}),
            )
            .await;
        let events = sse_events(response).await;
        let kinds: Vec<&str> = events.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(kinds[..2], ["response.created", "response.in_progress"]);
        assert_eq!(*kinds.last().unwrap(), "response.completed");
        for (i, (_, data)) in events.iter().enumerate() {
            assert_eq!(data["sequence_number"], i, "{kinds:?}");
        }
        assert!(kinds.contains(&"response.output_item.added"));
        assert!(kinds.contains(&"response.function_call_arguments.delta"));
        let done: Vec<&Value> = events
            .iter()
            .filter(|(k, _)| k == "response.function_call_arguments.done")
            .map(|(_, d)| d)
            .collect();
        assert_eq!(done.len(), 2, "parallel calls: {kinds:?}");
        let names: Vec<&str> = done.iter().map(|d| d["name"].as_str().unwrap()).collect();
        assert_eq!(names, ["get_weather", "get_time"]);
        let completed = &events.last().unwrap().1["response"];
        assert_eq!(completed["status"], "completed");
        assert!(completed["usage"]["output_tokens"].as_u64().unwrap() > 0);
        // The deltas add up to the final arguments.
        let streamed: String = events
            .iter()
            .filter(|(k, _)| k == "response.function_call_arguments.delta")
            .filter(|(_, d)| d["item_id"] == done[0]["item_id"])
            .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(streamed, done[0]["arguments"].as_str().unwrap());
        let id = completed["id"].as_str().unwrap();
        let (status, fetched) = fetch(&gw, id).await;
        assert_eq!(status, 200);
        assert_eq!(function_calls(&fetched), function_calls(completed));

        // A text answer streams as output_text deltas that add up to the final text.
        let response = gw
            .post(
                "/v1/responses",
                &json!({"model": model, "input": "Say something.", "stream": true,
                        "store": false}),
            )
            .await;
        let events = sse_events(response).await;
        let text: String = events
            .iter()
            .filter(|(k, _)| k == "response.output_text.delta")
            .map(|(_, d)| d["delta"].as_str().unwrap().to_owned())
            .collect();
        let completed = &events.last().unwrap().1["response"];
        assert!(!text.is_empty());
        assert_eq!(output_text(completed), text);
        let id = completed["id"].as_str().unwrap();
        let (status, _) = fetch(&gw, id).await;
        assert_eq!(status, 404, "store: false keeps nothing");
    }
}

#[tokio::test]
async fn a_cut_stream_ends_with_response_failed() {
    let gw = start(CONFIG).await;
    let response = gw
        .post(
            "/v1/responses",
            &json!({"model": "cut", "input": "a long answer please about many things", "stream": true}),
        )
        .await;
    let events = sse_events(response).await;
    let (kind, last) = events.last().unwrap();
    assert_eq!(kind, "response.failed", "{events:?}");
    assert_eq!(last["response"]["status"], "failed");
    assert!(last["response"]["error"]["message"].is_string());
    assert!(!events.iter().any(|(k, _)| k == "response.completed"));
    // A failed stream is not stored.
    let id = last["response"]["id"].as_str().unwrap();
    let (status, _) = fetch(&gw, id).await;
    assert_eq!(status, 404);
}

#[tokio::test]
async fn client_errors_name_the_field() {
    let gw = start(CONFIG).await;
    for (body, param) in [
        (
            json!({"model": "gpt", "input": "x", "frobnicate": true}),
            "frobnicate",
        ),
        (
            json!({"model": "gpt", "input": "x", "previous_response_id": "resp_nope"}),
            "previous_response_id",
        ),
        (
            json!({"model": "gpt", "input": [{"type": "function_call_output", "output": "x"}]}),
            "input[0].call_id",
        ),
        (
            json!({"model": "gpt", "input": "x", "tools": [{"type": "file_search"}]}),
            "tools[0].type",
        ),
        (json!({"model": "gpt"}), "input"),
    ] {
        let (status, error) = create(&gw, None, &body).await;
        assert_eq!(status, 400, "{error}");
        assert_eq!(error["error"]["param"], param, "{error}");
        assert_eq!(error["error"]["type"], "invalid_request_error");
    }
    let (status, error) = create(&gw, None, &json!({"model": "nope", "input": "x"})).await;
    assert_eq!(status, 404, "{error}");
    let (status, error) = call(
        &gw,
        reqwest::Method::DELETE,
        None,
        "/v1/responses/resp_nope",
    )
    .await;
    assert_eq!(status, 404);
    assert_eq!(error["error"]["type"], "invalid_request_error");
}

const ADMIN: &str = "admin-token-0123456789";

/// A gateway storing responses in a fresh SQLite file, with the virtual keys `alice` and `bob`.
struct Stored {
    gw: TestGateway,
    /// The configuration, to start another gateway on the same store.
    config: String,
    path: std::path::PathBuf,
    alice: String,
    bob: String,
}

async fn with_store_and_two_keys() -> Stored {
    let path = common::temp_db("responses");
    let config = format!(
        "[store]\nurl = \"{}\"\n\n[admin]\ntoken = \"{ADMIN}\"\n{CONFIG}",
        path.display()
    );
    let gw = start(&config).await;
    let alice = common::admin_key(&gw, ADMIN, &json!({"name": "alice"})).await;
    let bob = common::admin_key(&gw, ADMIN, &json!({"name": "bob"})).await;
    Stored {
        gw,
        config,
        path,
        alice,
        bob,
    }
}

#[tokio::test]
async fn stored_responses_live_in_the_store_and_each_key_sees_only_its_own() {
    let Stored {
        gw,
        config,
        path: store_path,
        alice,
        bob,
    } = with_store_and_two_keys().await;
    let (status, made) = create(
        &gw,
        Some(&alice),
        &json!({"model": "claude", "input": "Remember the word heliotrope."}),
    )
    .await;
    assert_eq!(status, 200, "{made}");
    let id = made["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/responses/{id}");
    let (status, _) = call(&gw, reqwest::Method::GET, Some(&alice), &path).await;
    assert_eq!(status, 200);
    // Bob can neither read, continue nor delete Alice's response.
    let (status, _) = call(&gw, reqwest::Method::GET, Some(&bob), &path).await;
    assert_eq!(status, 404);
    let (status, error) = create(
        &gw,
        Some(&bob),
        &json!({"model": "claude", "input": "and?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "previous_response_id");
    let (status, _) = call(&gw, reqwest::Method::DELETE, Some(&bob), &path).await;
    assert_eq!(status, 404);
    // Without a key: refused outright.
    let (status, _) = call(&gw, reqwest::Method::GET, None, &path).await;
    assert_eq!(status, 401);

    // The response outlives the gateway: a new one on the same store still has it.
    gw.gateway.flush().await;
    drop(gw);
    let gw = start(&config).await;
    let (status, fetched) = call(&gw, reqwest::Method::GET, Some(&alice), &path).await;
    assert_eq!(status, 200);
    assert_eq!(fetched["output"], made["output"]);
    let (status, continued) = create(
        &gw,
        Some(&alice),
        &json!({"model": "claude", "input": "Which word?", "previous_response_id": id}),
    )
    .await;
    assert_eq!(status, 200, "{continued}");
    let seen = gw
        .sim("sim-anthropic")
        .requests()
        .last()
        .unwrap()
        .body
        .clone()
        .unwrap()
        .to_string();
    assert!(seen.contains("heliotrope"), "{seen}");
    let (status, deleted) = call(&gw, reqwest::Method::DELETE, Some(&alice), &path).await;
    assert_eq!(status, 200);
    assert_eq!(
        deleted,
        json!({"id": id, "object": "response.deleted", "deleted": true})
    );
    let (status, _) = call(&gw, reqwest::Method::GET, Some(&alice), &path).await;
    assert_eq!(status, 404);
    // Each create is metered as one `responses` record of its key, with its tokens; reads and
    // deletes are not.
    let store = gw.gateway.store.clone().unwrap();
    let mut records = Vec::new();
    for _ in 0..400 {
        records = store.usage_since(0, 1000).await.unwrap();
        if records.len() >= 3 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(25)).await;
    }
    let created: Vec<_> = records.iter().filter(|r| r.api == "responses").collect();
    assert_eq!(created.len(), 3, "{records:?}");
    assert!(created.iter().all(|r| r.key_id.is_some()));
    let mut statuses: Vec<u16> = created.iter().map(|r| r.status).collect();
    statuses.sort_unstable();
    assert_eq!(statuses, [200, 200, 400], "Bob's continuation was refused");
    for ok in created.iter().filter(|r| r.status == 200) {
        assert_eq!(ok.model, "claude");
        assert!(ok.input_tokens > 0 && ok.output_tokens > 0);
    }
    let _ = std::fs::remove_file(&store_path);
}

/// `GET /v1/responses/{id}/input_items`: a response's own input items (not those of the
/// response it continues), with ids stable across calls, paged with `limit`/`after` in either
/// `order`, scoped to the key that made it, valid against OpenAI's `ResponseItemList`.
#[tokio::test]
async fn input_items_are_listed_paged_and_scoped() {
    use crossbar_testkit::openapi::check;
    let Stored {
        gw,
        path: store_path,
        alice,
        bob,
        ..
    } = with_store_and_two_keys().await;
    let input = json!([
        {"role": "developer", "content": "Answer in one line."},
        {"role": "user", "content": "weather in Rome?"},
        {"type": "function_call", "id": "fc_client", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
        {"type": "function_call_output", "call_id": "call_1", "output": "25 C"},
        {"role": "user", "content": [{"type": "input_text", "text": "and in one word?"}]}
    ]);
    let (status, first) = create(
        &gw,
        Some(&alice),
        &json!({"model": "gpt", "input": input, "tools": tools()}),
    )
    .await;
    assert_eq!(status, 200, "{first}");
    let id = first["id"].as_str().unwrap().to_owned();
    let list = |query: &str, key: &str| {
        let path = format!("/v1/responses/{id}/input_items{query}");
        let gw = &gw;
        let key = key.to_owned();
        async move { call(gw, reqwest::Method::GET, Some(&key), &path).await }
    };

    // Everything, oldest first: the request's items, in order, with their fields.
    let (status, all) = list("?order=asc", &alice).await;
    assert_eq!(status, 200, "{all}");
    check("ResponseItemList", &all);
    let items = all["data"].as_array().unwrap().clone();
    let kinds: Vec<&str> = items.iter().map(|i| i["type"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "message",
            "message",
            "function_call",
            "function_call_output",
            "message"
        ]
    );
    assert_eq!(items[0]["role"], "developer");
    assert_eq!(
        items[1]["content"],
        json!([{"type": "input_text", "text": "weather in Rome?"}])
    );
    assert_eq!(items[2]["id"], "fc_client", "a client's id is kept");
    assert_eq!(items[3]["output"], "25 C");
    assert_eq!(items[4]["content"][0]["text"], "and in one word?");
    let ids: Vec<String> = items
        .iter()
        .map(|i| i["id"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        ids[0].starts_with("msg_") && ids[3].starts_with("fco_"),
        "{ids:?}"
    );
    let unique: std::collections::HashSet<_> = ids.iter().collect();
    assert_eq!(unique.len(), 5, "{ids:?}");
    assert_eq!(all["first_id"], ids[0].as_str());
    assert_eq!(all["last_id"], ids[4].as_str());
    assert_eq!(all["has_more"], false);

    // Default order is newest first; ids are the same on every call.
    let (_, newest) = list("", &alice).await;
    let mut reversed = items.clone();
    reversed.reverse();
    assert_eq!(newest["data"], json!(reversed));

    // Pages of two, chained with `after`, in both orders.
    for (order, expected) in [
        ("asc", ids.clone()),
        ("desc", ids.iter().rev().cloned().collect()),
    ] {
        let mut seen = Vec::new();
        let mut after = String::new();
        let mut pages = 0;
        loop {
            let (status, page) = list(&format!("?limit=2&order={order}{after}"), &alice).await;
            assert_eq!(status, 200, "{page}");
            check("ResponseItemList", &page);
            pages += 1;
            let data = page["data"].as_array().unwrap();
            assert!(data.len() <= 2);
            seen.extend(data.iter().map(|i| i["id"].as_str().unwrap().to_owned()));
            if page["has_more"] == false {
                break;
            }
            after = format!("&after={}", page["last_id"].as_str().unwrap());
        }
        assert_eq!(pages, 3, "{order}");
        assert_eq!(seen, expected, "{order}");
    }

    // A continued response lists only its own input (here the tool results the first one
    // asked for, or a plain message), not the earlier response's.
    let mut outputs: Vec<Value> = function_calls(&first)
        .iter()
        .map(|call| json!({"type": "function_call_output", "call_id": call["call_id"], "output": "25 C"}))
        .collect();
    if outputs.is_empty() {
        outputs.push(json!({"role": "user", "content": "Thanks!"}));
    }
    let (status, second) = create(
        &gw,
        Some(&alice),
        &json!({"model": "gpt", "input": outputs, "previous_response_id": id, "tools": tools()}),
    )
    .await;
    assert_eq!(status, 200, "{second}");
    let path = format!(
        "/v1/responses/{}/input_items?order=asc",
        second["id"].as_str().unwrap()
    );
    let (status, own) = call(&gw, reqwest::Method::GET, Some(&alice), &path).await;
    assert_eq!(status, 200, "{own}");
    check("ResponseItemList", &own);
    let own = own["data"].as_array().unwrap();
    assert_eq!(own.len(), outputs.len(), "{own:?}");
    for (listed, sent) in own.iter().zip(&outputs) {
        assert_eq!(
            listed["type"],
            sent.get("type").unwrap_or(&json!("message")).clone()
        );
        assert!(!ids.contains(&listed["id"].as_str().unwrap().to_owned()));
    }

    // Another key sees nothing; bad parameters are a 400 naming them.
    let (status, error) = list("", &bob).await;
    assert_eq!(status, 404, "{error}");
    assert_eq!(error["error"]["type"], "invalid_request_error");
    for (query, param) in [
        ("?limit=0", "limit"),
        ("?limit=101", "limit"),
        ("?order=up", "order"),
        ("?after=nope", "after"),
        ("?page=2", "page"),
    ] {
        let (status, error) = list(query, &alice).await;
        assert_eq!(status, 400, "{query}: {error}");
        assert_eq!(error["error"]["param"], param, "{query}: {error}");
        check("ErrorResponse", &error);
    }
    let (status, _) = list("?include[]=message.input_image.image_url", &alice).await;
    assert_eq!(status, 200, "include is accepted");
    let _ = std::fs::remove_file(&store_path);
}

/// Every request sent here, and every `Response` object and stream event that comes back,
/// validates against OpenAI's published schemas (`CreateResponse`, `Response`,
/// `ResponseStreamEvent`).
#[tokio::test]
async fn traffic_matches_the_openai_spec() {
    use crossbar_testkit::openapi::check;
    let gw = start(CONFIG).await;
    let mut checked = 0;
    for model in MODELS {
        let first = json!({"model": model, "instructions": "Be brief.", "input": "Use get_weather and get_time for Rome.",
                           "tools": tools(), "tool_choice": "auto", "parallel_tool_calls": true,
                           "max_output_tokens": 200, "temperature": 0.5, "metadata": {"k": "v"}});
        let schema = json!({"type": "object", "properties": {"title": {"type": "string"}},
                            "required": ["title"], "additionalProperties": false});
        let requests = [
            first.clone(),
            json!({"model": model, "input": [
                {"role": "user", "content": "weather in Rome?"},
                {"type": "function_call", "call_id": "call_1", "name": "get_weather", "arguments": "{\"city\":\"Rome\"}"},
                {"type": "function_call_output", "call_id": "call_1", "output": "25 C"}], "tools": tools()}),
            json!({"model": model, "input": "Make a title",
                   "text": {"format": {"type": "json_schema", "name": "doc", "schema": schema, "strict": true}}}),
            json!({"model": model, "input": "Write a long story about the sea", "max_output_tokens": 16}),
        ];
        for request in requests {
            for stream in [false, true] {
                let mut body = request.clone();
                body["stream"] = json!(stream);
                check("CreateResponse", &body);
                let response = gw.post("/v1/responses", &body).await;
                if stream {
                    for (kind, event) in sse_events(response).await {
                        check_event(&kind, &event);
                        checked += 1;
                    }
                } else {
                    assert_eq!(response.status(), 200);
                    check("Response", &response.json().await.unwrap());
                }
            }
        }
    }
    assert!(checked > 50, "{checked}");
    // A failed stream's terminal event too.
    let response = gw
        .post(
            "/v1/responses",
            &json!({"model": "cut", "input": "a long answer please about many things", "stream": true}),
        )
        .await;
    let events = sse_events(response).await;
    assert_eq!(events.last().unwrap().0, "response.failed");
    for (kind, event) in events {
        check_event(&kind, &event);
    }
}

/// Checks an event against its own schema (the `ResponseStreamEvent` union only says "none
/// matched"), and the `Response` inside it.
fn check_event(kind: &str, event: &Value) {
    use crossbar_testkit::openapi::check;
    let schema = match kind {
        "response.created" => "ResponseCreatedEvent",
        "response.in_progress" => "ResponseInProgressEvent",
        "response.output_item.added" => "ResponseOutputItemAddedEvent",
        "response.output_item.done" => "ResponseOutputItemDoneEvent",
        "response.content_part.added" => "ResponseContentPartAddedEvent",
        "response.content_part.done" => "ResponseContentPartDoneEvent",
        "response.output_text.delta" => "ResponseTextDeltaEvent",
        "response.output_text.done" => "ResponseTextDoneEvent",
        "response.refusal.delta" => "ResponseRefusalDeltaEvent",
        "response.refusal.done" => "ResponseRefusalDoneEvent",
        "response.function_call_arguments.delta" => "ResponseFunctionCallArgumentsDeltaEvent",
        "response.function_call_arguments.done" => "ResponseFunctionCallArgumentsDoneEvent",
        "response.completed" => "ResponseCompletedEvent",
        "response.incomplete" => "ResponseIncompleteEvent",
        "response.failed" => "ResponseFailedEvent",
        other => panic!("unexpected event {other}"),
    };
    if let Some(response) = event.get("response") {
        check("Response", response);
    }
    check(schema, event);
    check("ResponseStreamEvent", event);
}

/// OpenAI and Azure deployments configured with `api = "responses"`: a reasoning model's
/// reasoning items are carried back with its tool calls, whichever API the client speaks (the
/// simulator refuses a function call without its reasoning item, as OpenAI does).
#[tokio::test]
async fn responses_upstreams_get_their_reasoning_items_back() {
    let config = r#"
[[providers]]
name = "openai-responses"
kind = "sim"
dialect = "openai"
api = "responses"

[[providers]]
name = "azure-responses"
kind = "sim"
dialect = "azure"
api = "responses"
api_key = "azure-key"
sim = { api_key = "azure-key" }

[[models]]
name = "o-openai"
deployments = [{ provider = "openai-responses", target = "o3" }]

[[models]]
name = "o-azure"
deployments = [{ provider = "azure-responses", target = "o3-prod" }]
"#;
    let gw = start(config).await;
    let chat_tools = common::weather_tools();
    for (model, sim) in [
        ("o-openai", "openai-responses"),
        ("o-azure", "azure-responses"),
    ] {
        for stream in [false, true] {
            // Chat Completions client: it cannot carry reasoning; the gateway does.
            let ask = json!({"model": model, "reasoning_effort": "low", "tools": chat_tools,
                             "messages": [common::user("Use get_weather for Paris.")]});
            let mut first = ask.clone();
            first["stream"] = json!(stream);
            let response = gw.post("/v1/chat/completions", &first).await;
            assert_eq!(response.status(), 200);
            let calls: Vec<Value> =
                if stream {
                    let (frames, end) = common::sse_data(response).await;
                    end.unwrap();
                    let chunks = common::chunks(&frames);
                    let mut call = json!({"type": "function", "function": {"arguments": ""}});
                    for chunk in &chunks {
                        for fragment in chunk["choices"][0]["delta"]["tool_calls"]
                            .as_array()
                            .into_iter()
                            .flatten()
                        {
                            if let Some(id) = fragment["id"].as_str() {
                                call["id"] = json!(id);
                                call["function"]["name"] = fragment["function"]["name"].clone();
                            }
                            let args = call["function"]["arguments"].as_str().unwrap().to_owned()
                                + fragment["function"]["arguments"]
                                    .as_str()
                                    .unwrap_or_default();
                            call["function"]["arguments"] = json!(args);
                        }
                    }
                    assert!(chunks.iter().any(|c| c["usage"].is_object()
                        || c["choices"][0]["finish_reason"] == "tool_calls"));
                    vec![call]
                } else {
                    let body: Value = response.json().await.unwrap();
                    assert!(
                        body["usage"]["completion_tokens_details"]["reasoning_tokens"]
                            .as_u64()
                            .unwrap()
                            > 0,
                        "{body}"
                    );
                    body["choices"][0]["message"]["tool_calls"]
                        .as_array()
                        .unwrap()
                        .clone()
                };
            assert_eq!(calls[0]["function"]["name"], "get_weather");
            let upstream = gw.sim(sim).requests().last().unwrap().clone();
            assert!(upstream.path.ends_with("/responses"), "{}", upstream.path);

            let mut second = ask.clone();
            second["messages"] = json!([
                common::user("Use get_weather for Paris."),
                {"role": "assistant", "content": null, "tool_calls": calls},
                {"role": "tool", "tool_call_id": calls[0]["id"], "content": "sunny, 21 C"}
            ]);
            let response = gw.post("/v1/chat/completions", &second).await;
            let status = response.status();
            let body: Value = response.json().await.unwrap();
            assert_eq!(status, 200, "{body}");
            assert!(
                body["choices"][0]["message"]["content"]
                    .as_str()
                    .unwrap()
                    .contains("sunny, 21 C")
            );
            let sent = gw.sim(sim).requests().last().unwrap().body.clone().unwrap();
            let kinds: Vec<&str> = sent["input"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|i| i["type"].as_str())
                .collect();
            assert!(
                kinds
                    .windows(2)
                    .any(|w| w == ["reasoning", "function_call"]),
                "{sent}"
            );
        }
        // Responses client, continuing from the stored response.
        let (status, first) = create(
            &gw,
            None,
            &json!({"model": model, "input": "Use get_weather for Rome.",
            "tools": tools(), "reasoning": {"effort": "low"}}),
        )
        .await;
        assert_eq!(status, 200, "{first}");
        assert!(
            first["usage"]["output_tokens_details"]["reasoning_tokens"]
                .as_u64()
                .unwrap()
                > 0
        );
        let call = function_calls(&first)[0].clone();
        let (status, second) = create(&gw, None, &json!({"model": model, "previous_response_id": first["id"],
            "tools": tools(), "reasoning": {"effort": "low"},
            "input": [{"type": "function_call_output", "call_id": call["call_id"], "output": "cloudy"}]})).await;
        assert_eq!(status, 200, "{second}");
        assert!(output_text(&second).contains("cloudy"));
    }
    // Stop sequences cannot be expressed in the Responses API: refused, naming the field.
    let response = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "o-openai", "stop": ["x"], "messages": [common::user("hi")]}),
        )
        .await;
    let (status, error) = common::error_of(response).await;
    assert_eq!(status, 400);
    assert_eq!(error["error"]["param"], "stop");
}

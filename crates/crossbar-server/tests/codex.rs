//! Codex (`wire_api = "responses"`) through `/v1/responses`: the request Codex 0.169 sends is
//! served, streamed, by a Responses API upstream and by an Anthropic one. Before the Responses
//! ingress knew `client_metadata`, both answered `400 Unrecognized request argument supplied:
//! client_metadata`.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

mod common;

use common::{TestGateway, start};
use serde_json::{Value, json};

const CONFIG: &str = r#"
[[providers]]
name = "openai-responses"
kind = "sim"
dialect = "openai"
api = "responses"

[[providers]]
name = "sim-anthropic"
kind = "sim"
dialect = "anthropic"
api_key = "sk-ant"

[[models]]
name = "codex-gpt"
deployments = [{ provider = "openai-responses", target = "o3" }]

[[models]]
name = "codex-claude"
deployments = [{ provider = "sim-anthropic", target = "claude-sonnet-4-20250514" }]

[routes.lenient]
hosted_tools = "drop"
unknown_fields = "pass"
"#;

/// The fields only the Responses API (or OpenAI) knows, which must never reach another dialect.
const OPENAI_ONLY: [&str; 6] = [
    "client_metadata",
    "include",
    "prompt_cache_key",
    "store",
    "reasoning",
    "instructions",
];

/// A Codex 0.169 turn, as it posts it, minus its hosted `web_search` tool (refused by name, see
/// `codex_hosted_tools_are_refused_by_name`) and its `namespace` tool group (see
/// `codex_namespace_tools_are_called_by_namespace_and_name`).
fn codex_body(model: &str) -> Value {
    json!({
        "model": model,
        "instructions": "You are Codex, a coding agent. Be concise.",
        "input": [
            {"type": "message", "role": "developer",
             "content": [{"type": "input_text", "text": "<permissions>read-only</permissions>"}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "<environment_context>cwd=/tmp</environment_context>"}]},
            {"type": "message", "role": "user",
             "content": [{"type": "input_text", "text": "Say hello"}]}
        ],
        "tools": [
            {"type": "function", "name": "exec_command", "description": "Runs a command.",
             "strict": false,
             "parameters": {"type": "object", "properties": {"cmd": {"type": "string"}},
                            "required": ["cmd"], "additionalProperties": false}},
            {"type": "function", "name": "update_plan", "description": "Updates the plan.",
             "strict": false,
             "parameters": {"type": "object", "properties": {"plan": {"type": "array",
                            "items": {"type": "string"}}}, "required": ["plan"],
                            "additionalProperties": false}}
        ],
        "tool_choice": "auto",
        "parallel_tool_calls": false,
        "reasoning": {"effort": "medium", "summary": "auto"},
        "store": false,
        "stream": true,
        "include": ["reasoning.encrypted_content"],
        "prompt_cache_key": "019ae3c1-5b5e-7a31-9c0e-2f6d1e0c4b21",
        "client_metadata": {"x-codex-installation-id": "5d0c6b2e-4f1a-4b8e-9a43-0c1f2e3d4a5b"}
    })
}

async fn codex_post(gw: &TestGateway, body: &Value) -> reqwest::Response {
    gw.client()
        .post(format!("{}/v1/responses", gw.url))
        .header("session_id", "019ae3c1-5b5e-7a31-9c0e-2f6d1e0c4b21")
        .header("originator", "codex_exec")
        .header("version", "0.169.0")
        .header("user-agent", "codex_exec/0.169.0 (Linux; x86_64) xterm")
        .json(body)
        .send()
        .await
        .unwrap()
}

/// The SSE events of a Responses stream: `(event name, data)`, checking they agree.
async fn sse_events(response: reqwest::Response) -> Vec<(String, Value)> {
    let status = response.status();
    let text = response.text().await.unwrap();
    assert_eq!(status, 200, "{text}");
    common::responses_events(&text)
}

/// The last request the simulator behind `provider` received.
fn last_request(gw: &TestGateway, provider: &str) -> crossbar_sim::RecordedRequest {
    gw.requests(provider).pop().unwrap()
}

/// The names of the tools in a request body sent upstream.
fn tool_names(sent: &Value) -> Vec<&str> {
    sent["tools"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t["name"].as_str().unwrap())
        .collect()
}

/// Codex's session headers stay with the gateway: none is among the upstream's `headers`.
fn assert_session_headers_stayed(headers: &[(String, String)]) {
    for header in ["session_id", "originator", "version"] {
        assert!(
            !headers.iter().any(|(name, _)| name == header),
            "{header} reached the upstream"
        );
    }
}

/// A well-formed stream: created first, completed last, sequence numbers counting from 0, and
/// the completed response echoing `store: false` and the reasoning settings.
fn assert_well_formed(events: &[(String, Value)]) -> &Value {
    let names: Vec<&str> = events.iter().map(|(name, _)| name.as_str()).collect();
    assert_eq!(names.first(), Some(&"response.created"), "{names:?}");
    assert_eq!(names.last(), Some(&"response.completed"), "{names:?}");
    assert!(names.contains(&"response.output_item.done"), "{names:?}");
    for (i, (_, data)) in events.iter().enumerate() {
        assert_eq!(data["sequence_number"], json!(i));
    }
    let response = &events.last().unwrap().1["response"];
    assert_eq!(response["status"], "completed");
    assert_eq!(response["store"], false);
    assert_eq!(
        response["reasoning"],
        json!({"effort": "medium", "summary": "auto"})
    );
    assert_eq!(response["parallel_tool_calls"], false);
    // The simulated model answers with a call of one of Codex's tools.
    let output = response["output"].as_array().unwrap();
    assert!(!output.is_empty(), "{response}");
    for item in output.iter().filter(|item| item["type"] == "function_call") {
        assert!(
            ["exec_command", "update_plan", "read"].contains(&item["name"].as_str().unwrap()),
            "{item}"
        );
    }
    response
}

#[tokio::test]
async fn a_codex_turn_streams_from_a_responses_upstream() {
    let gw = start(CONFIG).await;
    let events = sse_events(codex_post(&gw, &codex_body("codex-gpt")).await).await;
    let response = assert_well_formed(&events);
    assert_eq!(response["model"], "o3");
    let upstream = last_request(&gw, "openai-responses");
    assert!(upstream.path.ends_with("/responses"), "{}", upstream.path);
    let sent = upstream.body.unwrap();
    assert_eq!(sent["include"], json!(["reasoning.encrypted_content"]));
    assert_eq!(sent["store"], false);
    assert_eq!(sent["stream"], true);
    assert_eq!(sent["reasoning"]["effort"], "medium");
    assert_eq!(sent["parallel_tool_calls"], false);
    assert_eq!(tool_names(&sent), ["exec_command", "update_plan"]);
    // The client's own Responses fields reach a Responses upstream verbatim.
    assert_eq!(
        sent["client_metadata"],
        json!({"x-codex-installation-id": "5d0c6b2e-4f1a-4b8e-9a43-0c1f2e3d4a5b"})
    );
    assert_eq!(
        sent["prompt_cache_key"],
        "019ae3c1-5b5e-7a31-9c0e-2f6d1e0c4b21"
    );
    // Codex's session headers stay with the gateway.
    assert_session_headers_stayed(&upstream.headers);
}

#[tokio::test]
async fn a_codex_turn_streams_from_an_anthropic_upstream() {
    let gw = start(CONFIG).await;
    let events = sse_events(codex_post(&gw, &codex_body("codex-claude")).await).await;
    let response = assert_well_formed(&events);
    assert_eq!(response["model"], "claude-sonnet-4-20250514");
    let upstream = last_request(&gw, "sim-anthropic");
    assert!(upstream.path.ends_with("/v1/messages"), "{}", upstream.path);
    let sent = upstream.body.unwrap();
    for field in OPENAI_ONLY {
        assert_eq!(sent.get(field), None, "{field} reached Anthropic: {sent}");
    }
    assert_eq!(sent["stream"], true);
    assert_eq!(tool_names(&sent), ["exec_command", "update_plan"]);
    assert_session_headers_stayed(&upstream.headers);
}

/// Codex's hosted `web_search` tool goes to a Responses upstream as sent; another dialect cannot
/// run it, so the request is refused by naming the tool, unless the route says to drop it.
#[tokio::test]
async fn codex_hosted_tools_reach_responses_upstreams_and_are_refused_or_dropped_elsewhere() {
    let gw = start(CONFIG).await;
    let with_search = |model: &str| {
        let mut body = codex_body(model);
        body["tools"]
            .as_array_mut()
            .unwrap()
            .push(json!({"type": "web_search", "external_web_access": false}));
        body
    };
    let events = sse_events(codex_post(&gw, &with_search("codex-gpt")).await).await;
    assert_well_formed(&events);
    let sent = last_request(&gw, "openai-responses").body.unwrap();
    assert_eq!(
        sent["tools"][2],
        json!({"type": "web_search", "external_web_access": false})
    );
    let (status, error) =
        common::error_of(codex_post(&gw, &with_search("codex-claude")).await).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "tools[2].type");
    let message = error["error"]["message"].as_str().unwrap();
    assert!(
        message.contains(
            "The hosted tool 'web_search' (tools[2]) runs only on its own provider's servers; \
             this model is served by the anthropic dialect."
        ),
        "{message}"
    );
    assert!(gw.sim("sim-anthropic").requests().is_empty());
    let response = gw
        .client()
        .post(format!("{}/v1/responses", gw.url))
        .header("x-crossbar-route", "lenient")
        .json(&with_search("codex-claude"))
        .send()
        .await
        .unwrap();
    let events = sse_events(response).await;
    assert_well_formed(&events);
    let sent = last_request(&gw, "sim-anthropic").body.unwrap();
    assert_eq!(tool_names(&sent), ["exec_command", "update_plan"]);
}

/// A field the gateway does not know is refused in OpenAI's words by default; a route that
/// passes unknown fields sends it on to a Responses upstream, which judges it itself, and no
/// other dialect serves it.
#[tokio::test]
async fn unknown_fields_are_refused_or_passed_by_the_route() {
    let gw = start(CONFIG).await;
    let mut body = codex_body("codex-gpt");
    body["stream"] = json!(false);
    body["frobnicate"] = json!(1);
    let (status, error) = common::error_of(codex_post(&gw, &body).await).await;
    assert_eq!(status, 400);
    assert_eq!(
        error["error"]["message"],
        "Unrecognized request argument supplied: frobnicate"
    );
    assert!(gw.sim("openai-responses").requests().is_empty());
    let passed = |body: &Value| {
        gw.client()
            .post(format!("{}/v1/responses", gw.url))
            .header("x-crossbar-route", "lenient")
            .json(body)
            .send()
    };
    let (status, error) = common::error_of(passed(&body).await.unwrap()).await;
    assert_eq!(status, 400, "{error}");
    let sent = last_request(&gw, "openai-responses").body.unwrap();
    assert_eq!(sent["frobnicate"], 1);
    body["model"] = json!("codex-claude");
    let (status, error) = common::error_of(passed(&body).await.unwrap()).await;
    assert_eq!(status, 400, "{error}");
    assert_eq!(error["error"]["param"], "frobnicate");
    assert!(gw.sim("sim-anthropic").requests().is_empty());
}

/// A `namespace` tool group reaches every upstream as plain functions named
/// `{namespace}__{name}`; the model's call of one comes back to Codex as `namespace` and `name`.
#[tokio::test]
async fn codex_namespace_tools_are_called_by_namespace_and_name() {
    let gw = start(CONFIG).await;
    for (model, sim) in [
        ("codex-gpt", "openai-responses"),
        ("codex-claude", "sim-anthropic"),
    ] {
        let mut body = codex_body(model);
        // First, so the simulated model calls it.
        body["tools"].as_array_mut().unwrap().insert(
            0,
            json!({
                "type": "namespace", "name": "mcp__files", "description": "File tools.",
                "tools": [{"type": "function", "name": "read", "description": "Reads a file.",
                           "strict": false,
                           "parameters": {"type": "object", "properties": {"path": {"type": "string"}},
                                          "required": ["path"], "additionalProperties": false}}]
            }),
        );
        let events = sse_events(codex_post(&gw, &body).await).await;
        let response = assert_well_formed(&events);
        let call = response["output"]
            .as_array()
            .unwrap()
            .iter()
            .find(|item| item["type"] == "function_call")
            .unwrap();
        assert_eq!(call["namespace"], "mcp__files", "{call}");
        assert_eq!(call["name"], "read", "{call}");
        let sent = gw.sim(sim).requests().last().unwrap().body.clone().unwrap();
        let names: Vec<&str> = sent["tools"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t["name"].as_str().unwrap())
            .collect();
        assert_eq!(names, ["mcp__files__read", "exec_command", "update_plan"]);

        // The next turn hands the call back as Codex keeps it: namespace and name.
        let mut next = codex_body(model);
        next["tools"] = body["tools"].clone();
        let input = next["input"].as_array_mut().unwrap();
        input.push(json!({"type": "function_call", "call_id": call["call_id"],
                          "namespace": "mcp__files", "name": "read",
                          "arguments": call["arguments"]}));
        input.push(
            json!({"type": "function_call_output", "call_id": call["call_id"],
                          "output": "MARKER-7f3a"}),
        );
        let events = sse_events(codex_post(&gw, &next).await).await;
        assert_eq!(events.last().unwrap().0, "response.completed");
        let sent = gw.sim(sim).requests().last().unwrap().body.clone().unwrap();
        assert!(sent.to_string().contains("mcp__files__read"), "{sent}");
    }
}

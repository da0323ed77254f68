//! The Anthropic Messages simulator over real HTTP: the auth forms and versions the API (and
//! its newest SDK) uses, and each validation rule answered with the API's status and body.

#![expect(
    clippy::unwrap_used,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::start;
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use serde_json::{Value, json};

const KEY: &str = "sk-ant-sim";
const THINKING_DOCS: &str = "Please consult our documentation at https://docs.claude.com/en/docs/build-with-claude/extended-thinking#important-considerations-when-using-extended-thinking";

async fn anthropic() -> SimServer {
    start(
        SimDialect::Anthropic,
        SimConfig {
            api_key: Some(KEY.to_owned()),
            ..SimConfig::default()
        },
    )
    .await
}

/// Sends with the given headers; returns status and body.
async fn send(server: &SimServer, headers: &[(&str, &str)], body: &Value) -> (u16, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}/v1/messages", server.base_url()))
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    (response.status().as_u16(), response.json().await.unwrap())
}

async fn post(server: &SimServer, body: &Value) -> (u16, Value) {
    send(
        server,
        &[("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        body,
    )
    .await
}

/// The message of an Anthropic error body of this status and type, asserting the whole shape.
fn error_message(status: u16, body: &Value, want_status: u16, kind: &str) -> String {
    assert_eq!(status, want_status, "{body}");
    assert_eq!(body["type"], "error", "{body}");
    assert_eq!(body["error"]["type"], kind, "{body}");
    assert_eq!(body["error"].as_object().unwrap().len(), 2, "{body}");
    body["error"]["message"].as_str().unwrap().to_owned()
}

async fn refused(server: &SimServer, body: &Value) -> String {
    let (status, answer) = post(server, body).await;
    error_message(status, &answer, 400, "invalid_request_error")
}

async fn accepted(server: &SimServer, body: &Value) {
    let (status, answer) = post(server, body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "message");
}

fn hello() -> Value {
    json!({"model": "claude-sonnet-4-20250514", "max_tokens": 100,
        "messages": [{"role": "user", "content": "hi"}]})
}

fn with(mut body: Value, field: &str, value: Value) -> Value {
    body[field] = value;
    body
}

fn thinking() -> Value {
    json!({"model": "claude-sonnet-4-20250514", "max_tokens": 2048,
        "thinking": {"type": "enabled", "budget_tokens": 1024},
        "tools": [{"name": "f", "input_schema": {"type": "object"}}],
        "messages": [{"role": "user", "content": "hi"}]})
}

#[tokio::test]
async fn bearer_keys_and_the_newest_sdk_version_are_accepted() {
    let server = anthropic().await;
    for headers in [
        [
            ("authorization", "Bearer sk-ant-sim"),
            ("anthropic-version", "2026-10-21"),
        ],
        [("x-api-key", KEY), ("anthropic-version", "2026-10-21")],
        [("x-api-key", KEY), ("anthropic-version", "2023-06-01")],
        [
            ("authorization", "Bearer sk-ant-sim"),
            ("anthropic-version", "2023-01-01"),
        ],
        // A version newer than any known one: a newer SDK may send it.
        [("x-api-key", KEY), ("anthropic-version", "2027-03-01")],
    ] {
        let (status, body) = send(&server, &headers, &hello()).await;
        assert_eq!(status, 200, "{headers:?}: {body}");
    }
}

/// Headers sent, then the status, error type and message expected.
type Case = (
    &'static [(&'static str, &'static str)],
    u16,
    &'static str,
    &'static str,
);

#[tokio::test]
async fn missing_or_wrong_credentials_and_versions_get_the_apis_errors() {
    let server = anthropic().await;
    let cases: [Case; 7] = [
        (
            &[("anthropic-version", "2023-06-01")],
            401,
            "authentication_error",
            "x-api-key header is required",
        ),
        (
            &[
                ("x-api-key", "sk-wrong"),
                ("anthropic-version", "2023-06-01"),
            ],
            401,
            "authentication_error",
            "invalid x-api-key",
        ),
        (
            &[
                ("authorization", "Bearer sk-wrong"),
                ("anthropic-version", "2026-10-21"),
            ],
            401,
            "authentication_error",
            "Invalid bearer token",
        ),
        (
            &[("x-api-key", KEY)],
            400,
            "invalid_request_error",
            "anthropic-version: header is required",
        ),
        // Dates the API never published are refused, as are non-dates.
        (
            &[("x-api-key", KEY), ("anthropic-version", "2023-10-01")],
            400,
            "invalid_request_error",
            "anthropic-version: \"2023-10-01\" is not a valid version",
        ),
        (
            &[("x-api-key", KEY), ("anthropic-version", "latest")],
            400,
            "invalid_request_error",
            "anthropic-version: \"latest\" is not a valid version",
        ),
        (
            &[
                ("x-api-key", KEY),
                ("anthropic-version", "2023-06-01, 2023-06-01"),
            ],
            400,
            "invalid_request_error",
            "anthropic-version: \"2023-06-01, 2023-06-01\" is not a valid version",
        ),
    ];
    for (headers, status, kind, message) in cases {
        let (got, body) = send(&server, headers, &hello()).await;
        assert_eq!(
            error_message(got, &body, status, kind),
            message,
            "{headers:?}"
        );
    }
}

#[tokio::test]
async fn sampling_parameters_are_range_checked() {
    let server = anthropic().await;
    for (field, value, message) in [
        ("temperature", json!(1.5), "temperature: range: 0..1"),
        ("temperature", json!(-0.1), "temperature: range: 0..1"),
        ("top_p", json!(1.2), "top_p: range: 0..1"),
        (
            "top_k",
            json!(-1),
            "top_k: Input should be greater than or equal to 0",
        ),
        (
            "top_k",
            json!(2.5),
            "top_k: Input should be a valid integer",
        ),
        (
            "max_tokens",
            json!(0),
            "max_tokens: Input should be greater than or equal to 1",
        ),
        (
            "max_tokens",
            json!("ten"),
            "max_tokens: Input should be a valid integer",
        ),
    ] {
        assert_eq!(
            refused(&server, &with(hello(), field, value)).await,
            message
        );
    }
    let mut edges = with(hello(), "temperature", json!(1.0));
    edges["top_p"] = json!(0);
    edges["top_k"] = json!(0);
    edges["max_tokens"] = json!(1);
    accepted(&server, &edges).await;
}

#[tokio::test]
async fn thinking_refuses_forced_tools_and_non_default_sampling() {
    let server = anthropic().await;
    let forced = "Thinking may not be enabled when tool_choice forces tool use.";
    for (field, value, message) in [
        ("tool_choice", json!({"type": "any"}), forced.to_owned()),
        (
            "tool_choice",
            json!({"type": "tool", "name": "f"}),
            forced.to_owned(),
        ),
        (
            "temperature",
            json!(0.5),
            format!("`temperature` may only be set to 1 when thinking is enabled. {THINKING_DOCS}"),
        ),
        (
            "top_k",
            json!(5),
            format!("`top_k` must be unset when thinking is enabled. {THINKING_DOCS}"),
        ),
        (
            "top_p",
            json!(0.9),
            format!(
                "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled. {THINKING_DOCS}"
            ),
        ),
    ] {
        assert_eq!(
            refused(&server, &with(thinking(), field, value)).await,
            message
        );
    }
    for (field, value) in [
        ("tool_choice", json!({"type": "auto"})),
        ("tool_choice", json!({"type": "none"})),
        ("temperature", json!(1)),
        ("top_p", json!(0.95)),
    ] {
        accepted(&server, &with(thinking(), field, value)).await;
    }
    // The same sampling without thinking is fine.
    let mut plain = with(hello(), "temperature", json!(0.5));
    plain["top_k"] = json!(5);
    plain["top_p"] = json!(0.5);
    accepted(&server, &plain).await;
}

fn tool_turns(tool_use: Value, answer: Value) -> Value {
    with(
        hello(),
        "messages",
        json!([
            {"role": "user", "content": "weather?"},
            {"role": "assistant", "content": [tool_use]},
            {"role": "user", "content": answer}]),
    )
}

#[tokio::test]
async fn tool_use_blocks_need_an_object_input_and_a_name() {
    let server = anthropic().await;
    let result = json!([{"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"}]);
    assert_eq!(
        refused(
            &server,
            &tool_turns(
                json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": "{}"}),
                result.clone()
            )
        )
        .await,
        "messages.1.content.0.tool_use.input: Input should be a valid dictionary"
    );
    assert_eq!(
        refused(
            &server,
            &tool_turns(
                json!({"type": "tool_use", "id": "toolu_1", "input": {}}),
                result.clone()
            )
        )
        .await,
        "messages.1.content.0.tool_use.name: Field required"
    );
    accepted(
        &server,
        &tool_turns(
            json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}}),
            result,
        ),
    )
    .await;
}

#[tokio::test]
async fn tool_results_come_first_in_their_user_message() {
    let server = anthropic().await;
    let call = json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}});
    let result = json!({"type": "tool_result", "tool_use_id": "toolu_1", "content": "sunny"});
    let text = json!({"type": "text", "text": "and now?"});
    assert_eq!(
        refused(&server, &tool_turns(call.clone(), json!([text, result]))).await,
        "messages.2: Did not find 1 `tool_result` block(s) at the beginning of this message. Messages following `tool_use` blocks must begin with a matching number of `tool_result` blocks."
    );
    accepted(&server, &tool_turns(call, json!([result, text]))).await;
}

#[tokio::test]
async fn input_schemas_must_be_object_schemas() {
    let server = anthropic().await;
    for (schema, message) in [
        (
            json!("x"),
            "tools.0.custom.input_schema: Input should be a valid dictionary",
        ),
        (
            json!({}),
            "tools.0.custom.input_schema.type: Field required",
        ),
        (
            json!({"type": "string"}),
            "tools.0.custom.input_schema.type: Input should be 'object'",
        ),
    ] {
        let body = with(
            hello(),
            "tools",
            json!([{"name": "f", "input_schema": schema}]),
        );
        assert_eq!(refused(&server, &body).await, message);
    }
    let body = with(
        hello(),
        "tools",
        json!([{"name": "f", "input_schema": {"type": "object", "properties": {}}}]),
    );
    accepted(&server, &body).await;
}

#[tokio::test]
async fn null_content_and_unknown_block_fields_are_refused() {
    let server = anthropic().await;
    let body = with(
        hello(),
        "messages",
        json!([{"role": "user", "content": null}]),
    );
    assert_eq!(
        refused(&server, &body).await,
        "messages.0.content: Input should be a valid list"
    );
    let body = with(
        hello(),
        "messages",
        json!([{"role": "user", "content": [{"type": "text", "text": "hi", "name": "x"}]}]),
    );
    assert_eq!(
        refused(&server, &body).await,
        "messages.0.content.0.text.name: Extra inputs are not permitted"
    );
    let call = json!({"type": "tool_use", "id": "toolu_1", "name": "f", "input": {}});
    let nested = json!([{"type": "tool_result", "tool_use_id": "toolu_1",
        "content": [{"type": "text", "text": "sunny", "id": "x"}]}]);
    assert_eq!(
        refused(&server, &tool_turns(call, nested)).await,
        "messages.2.content.0.tool_result.content.0.text.id: Extra inputs are not permitted"
    );
    // Fields the API does take (citations from an earlier answer, cache_control) pass.
    let body = with(
        hello(),
        "messages",
        json!([{"role": "user", "content": [{"type": "text", "text": "hi", "citations": null,
            "cache_control": {"type": "ephemeral"}}]}]),
    );
    accepted(&server, &body).await;
}

#[tokio::test]
async fn image_media_types_are_the_four_the_api_reads() {
    let server = anthropic().await;
    let image = |media_type: &str| {
        with(
            hello(),
            "messages",
            json!([{"role": "user", "content": [{"type": "text", "text": "what is it"},
                {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": "iVBORw0KGgo="}}]}]),
        )
    };
    assert_eq!(
        refused(&server, &image("image/bmp")).await,
        "messages.0.content.1.image.source.base64.media_type: Input should be 'image/jpeg', 'image/png', 'image/gif' or 'image/webp'"
    );
    for media_type in ["image/jpeg", "image/png", "image/gif", "image/webp"] {
        accepted(&server, &image(media_type)).await;
    }
}

#[tokio::test]
async fn at_most_four_cache_breakpoints() {
    let server = anthropic().await;
    let marked = |n: usize| {
        let blocks: Vec<Value> = (0..n)
            .map(|i| json!({"type": "text", "text": format!("part {i}"), "cache_control": {"type": "ephemeral"}}))
            .collect();
        let mut body = with(
            hello(),
            "messages",
            json!([{"role": "user", "content": blocks}]),
        );
        body["system"] =
            json!([{"type": "text", "text": "be brief", "cache_control": {"type": "ephemeral"}}]);
        body
    };
    accepted(&server, &marked(3)).await;
    assert_eq!(
        refused(&server, &marked(4)).await,
        "A maximum of 4 blocks with cache_control may be provided. Found 5."
    );
}

/// Thinking as each Claude generation takes it: budgets up to 4.6, adaptive from 4.6, only
/// adaptive from Opus 4.7; `display: "omitted"` leaves the thinking text out but signs it.
#[tokio::test]
async fn thinking_modes_follow_the_models_generation() {
    let server = anthropic().await;
    let adaptive = |model: &str| {
        json!({"model": model, "max_tokens": 2048,
            "thinking": {"type": "adaptive", "display": "omitted"},
            "output_config": {"effort": "xhigh"},
            "context_management": {"edits": [{"type": "clear_thinking_20251015", "keep": "all"}]},
            "messages": [{"role": "user", "content": "hi"}]})
    };
    assert_eq!(
        refused(&server, &adaptive("claude-sonnet-4-20250514")).await,
        "\"thinking.type.adaptive\" is not supported for this model. Use \"thinking.type.enabled\" and \"thinking.budget_tokens\" instead."
    );
    for model in ["claude-sonnet-4-6", "claude-opus-4-7", "claude-opus-5-5"] {
        let (status, answer) = post(&server, &adaptive(model)).await;
        assert_eq!(status, 200, "{model}: {answer}");
        assert_eq!(answer["content"][0]["type"], "thinking");
        assert_eq!(answer["content"][0]["thinking"], "");
        assert!(
            answer["content"][0]["signature"]
                .as_str()
                .unwrap()
                .starts_with("sim-sig-")
        );
    }
    let enabled = with(thinking(), "model", json!("claude-opus-4-7"));
    assert_eq!(
        refused(&server, &enabled).await,
        "\"thinking.type.enabled\" is not supported for this model. Use \"thinking.type.adaptive\" and \"output_config.effort\" to control thinking behavior."
    );
    accepted(
        &server,
        &with(thinking(), "model", json!("claude-sonnet-4-6")),
    )
    .await;
    let bad_effort = with(
        adaptive("claude-opus-4-7"),
        "output_config",
        json!({"effort": "extreme"}),
    );
    assert_eq!(
        refused(&server, &bad_effort).await,
        "output_config.effort: Input should be 'low', 'medium', 'high', 'xhigh' or 'max' (got 'extreme')"
    );
}

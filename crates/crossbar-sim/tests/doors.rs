//! The clouds' own doors over real HTTP: Bedrock Mantle (OpenAI Responses and Chat, Anthropic
//! Messages), Bedrock Runtime's OpenAI Chat and Vertex AI's OpenAI Responses and Chat. Each
//! checks the path, the auth scheme and SigV4 signing service, the version header and the
//! door's model ids, with the refusals the services answer.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers: an unexpected response fails the test"
)]

mod common;

use common::{start, user};
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use serde_json::{Value, json};

/// SigV4 headers of the right shape for `service`; the simulators check the scope, not the
/// signature.
fn signed(service: &str) -> String {
    format!(
        "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/{service}/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=8a39f4f2883c173b42111ca4517ce7c8896b7487418a8102c680bb207de78a01"
    )
}

async fn send(
    server: &SimServer,
    path: &str,
    headers: &[(&str, &str)],
    body: &Value,
) -> (u16, reqwest::header::HeaderMap, Value) {
    let mut request = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .header("x-amz-date", "20150830T123600Z")
        .json(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let headers = response.headers().clone();
    let text = response.text().await.unwrap();
    let json = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{e}: {text}"));
    (status, headers, json)
}

fn responses_body(model: &str) -> Value {
    json!({"model": model, "input": "Tell me about lighthouses", "store": false})
}

fn chat_body(model: &str) -> Value {
    json!({"model": model, "messages": [user("Tell me about lighthouses")]})
}

#[tokio::test]
async fn mantle_checks_auth_service_and_model_ids() {
    let mantle = start(SimDialect::BedrockMantle, SimConfig::default()).await;
    let own = signed("bedrock-mantle");
    let auth = [("authorization", own.as_str())];
    let (status, _, body) = send(
        &mantle,
        "/openai/v1/responses",
        &auth,
        &responses_body("openai.gpt-5.4"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["model"], "openai.gpt-5.4");
    let (status, _, body) = send(
        &mantle,
        "/v1/chat/completions",
        &auth,
        &chat_body("qwen.qwen3-32b-v1:0"),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    // A scope for another service is refused with 401, naming Mantle's.
    let other = signed("bedrock-runtime");
    let (status, _, body) = send(
        &mantle,
        "/openai/v1/responses",
        &[("authorization", other.as_str())],
        &responses_body("openai.gpt-5.4"),
    )
    .await;
    assert_eq!(status, 401);
    assert_eq!(
        body["error"]["message"],
        "Credential should be scoped to correct service: 'bedrock-mantle'. "
    );
    assert_eq!(body["error"]["code"], "InvalidSignatureException");
    let (status, _, body) = send(
        &mantle,
        "/openai/v1/responses",
        &[],
        &responses_body("openai.gpt-5.4"),
    )
    .await;
    assert_eq!(
        (status, &body["error"]["code"]),
        (401, &json!("MissingAuthenticationTokenException"))
    );
    // OpenAI's own models only under /openai/v1, and by their Bedrock ids.
    for (path, body) in [
        ("/openai/v1/responses", responses_body("gpt-5.4")),
        ("/v1/chat/completions", chat_body("openai.gpt-5.4")),
        (
            "/v1/chat/completions",
            chat_body("anthropic.claude-haiku-4-5"),
        ),
    ] {
        let (status, _, answer) = send(&mantle, path, &auth, &body).await;
        assert_eq!(status, 404, "{path} {body}: {answer}");
        assert_eq!(answer["error"]["code"], "model_not_found");
    }
}

#[tokio::test]
async fn mantle_messages_need_the_version_and_a_claude_id() {
    let key = "bedrock-api-key";
    let mantle = start(
        SimDialect::BedrockMantle,
        SimConfig {
            api_key: Some(key.to_owned()),
            ..SimConfig::default()
        },
    )
    .await;
    let bearer = format!("Bearer {key}");
    let body = json!({"model": "anthropic.claude-haiku-4-5", "max_tokens": 32,
                      "messages": [user("Tell me about lighthouses")]});
    let version = ("anthropic-version", "2023-06-01");
    let auth = ("authorization", bearer.as_str());
    let (status, _, answer) =
        send(&mantle, "/anthropic/v1/messages", &[auth, version], &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["type"], "message");
    let (status, _, answer) = send(&mantle, "/anthropic/v1/messages", &[auth], &body).await;
    assert_eq!(status, 400);
    assert_eq!(
        answer["error"]["message"],
        "anthropic-version: header is required"
    );
    let (status, _, answer) = send(
        &mantle,
        "/anthropic/v1/messages",
        &[("authorization", "Bearer other"), version],
        &body,
    )
    .await;
    assert_eq!(
        (status, &answer["error"]["code"]),
        (401, &json!("AccessDeniedException"))
    );
    let mut openai = body.clone();
    openai["model"] = json!("openai.gpt-5.4");
    let (status, _, answer) =
        send(&mantle, "/anthropic/v1/messages", &[auth, version], &openai).await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["type"], "not_found_error");
}

#[tokio::test]
async fn the_runtime_openai_chat_refuses_a_mantle_signature() {
    let runtime = start(SimDialect::Bedrock, SimConfig::default()).await;
    let path = "/openai/v1/chat/completions";
    let body = chat_body("openai.gpt-oss-120b-1:0");
    let own = signed("bedrock");
    let (status, _, answer) = send(&runtime, path, &[("authorization", own.as_str())], &body).await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["object"], "chat.completion");
    let mantle = signed("bedrock-mantle");
    let (status, headers, answer) =
        send(&runtime, path, &[("authorization", mantle.as_str())], &body).await;
    assert_eq!(status, 403);
    assert_eq!(
        answer,
        json!({"message": "Credential should be scoped to correct service: 'bedrock'. "})
    );
    assert!(
        headers["x-amzn-errortype"]
            .to_str()
            .unwrap()
            .starts_with("InvalidSignatureException:")
    );
    let (status, _, answer) = send(
        &runtime,
        path,
        &[("authorization", own.as_str())],
        &chat_body("gpt-oss-120b"),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert_eq!(answer["error"]["code"], "model_not_found");
}

#[tokio::test]
async fn vertex_openai_doors_check_the_path_token_and_model() {
    let vertex = start(
        SimDialect::Vertex,
        SimConfig {
            api_key: Some("ya29.token".to_owned()),
            ..SimConfig::default()
        },
    )
    .await;
    let token = [("authorization", "Bearer ya29.token")];
    let scope = "/projects/p1/locations/global";
    let (status, _, answer) = send(
        &vertex,
        &format!("{scope}/publishers/openai/v1/responses"),
        &token,
        &responses_body("gpt-5.4"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    let (status, _, answer) = send(
        &vertex,
        &format!("{scope}/endpoints/openapi/chat/completions"),
        &token,
        &chat_body("google/gemini-2.5-flash"),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    // Only the openai publisher has the Responses API; self-deployed endpoints are not here.
    for path in [
        format!("{scope}/publishers/google/v1/responses"),
        format!("{scope}/endpoints/1234/chat/completions"),
    ] {
        let (status, _, answer) = send(&vertex, &path, &token, &chat_body("x/y")).await;
        assert_eq!(status, 404, "{path}: {answer}");
        assert_eq!(answer["error"]["status"], "NOT_FOUND");
    }
    let (status, _, answer) = send(
        &vertex,
        &format!("{scope}/endpoints/openapi/chat/completions"),
        &token,
        &chat_body("gemini-2.5-flash"),
    )
    .await;
    assert_eq!(status, 400, "{answer}");
    assert_eq!(answer["error"]["status"], "INVALID_ARGUMENT");
    let (status, _, answer) = send(
        &vertex,
        &format!("{scope}/publishers/openai/v1/responses"),
        &[("authorization", "Bearer wrong")],
        &responses_body("gpt-5.4"),
    )
    .await;
    assert_eq!(status, 401, "{answer}");
    assert_eq!(answer["error"]["status"], "UNAUTHENTICATED");
}

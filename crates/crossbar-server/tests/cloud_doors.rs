//! The clouds' own doors (issue 16): Bedrock Mantle (OpenAI Responses, OpenAI Chat, Anthropic
//! Messages), Bedrock Runtime's OpenAI Chat and Vertex AI's OpenAI Responses and Chat, each
//! reached at its own path with its own auth, through simulators that check both. A door that
//! speaks only the Responses API serves Chat, Messages and Responses clients alike, and one
//! logical model spread over two clouds fails over between them.

#![expect(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test harness: failures fail the test"
)]

use crossbar_sim::RecordedRequest;
use crossbar_testkit::gateway::{TestGateway, error_of, user};
use crossbar_testkit::providers::{self, SimProvider};
use serde_json::{Value, json};

/// A gateway with one provider `p` and the logical model `m` on `target`.
async fn gateway(provider: SimProvider, target: &str) -> TestGateway {
    let config = format!(
        "[store]\nenabled = false\n\n{}\n[[models]]\nname = \"m\"\ndeployments = [{{ provider = \"p\", target = \"{target}\" }}]\n",
        provider.toml("p")
    );
    TestGateway::start(&config).await
}

/// Sends `m` one Chat Completions, one Messages and one Responses request; each must succeed.
async fn every_client(gw: &TestGateway) {
    let chat = gw
        .post(
            "/v1/chat/completions",
            &json!({"model": "m", "messages": [user("Hello from Chat")]}),
        )
        .await;
    assert_eq!(chat.status(), 200);
    let messages = gw
        .client()
        .post(format!("{}/v1/messages", gw.url))
        .header("anthropic-version", "2023-06-01")
        .header("anthropic-beta", "context-management-2025-06-27")
        .json(&json!({"model": "m", "max_tokens": 64, "messages": [user("Hello from Messages")]}))
        .send()
        .await
        .unwrap();
    assert_eq!(messages.status(), 200);
    let responses = gw
        .post(
            "/v1/responses",
            &json!({"model": "m", "input": "Hello from Responses", "store": false}),
        )
        .await;
    assert_eq!(responses.status(), 200);
}

/// The SigV4 credential scope of a recorded request (`AKID/date/region/service/aws4_request`).
fn scope(request: &RecordedRequest) -> String {
    let authorization = request.header("authorization").unwrap_or_default();
    let credential = authorization
        .strip_prefix("AWS4-HMAC-SHA256 Credential=")
        .unwrap_or_else(|| panic!("not SigV4: {authorization}"));
    let scope = credential.split(',').next().unwrap();
    // Drop the date, which is today's.
    let parts: Vec<&str> = scope.split('/').collect();
    format!("{}/{}/{}/{}", parts[0], parts[2], parts[3], parts[4])
}

fn bodies_name(requests: &[RecordedRequest], model: &str) {
    for request in requests {
        assert_eq!(
            request.body.as_ref().unwrap()["model"],
            model,
            "{request:?}"
        );
    }
}

#[tokio::test]
async fn bedrock_mantle_serves_openai_models_through_responses_to_every_client() {
    let gw = gateway(providers::BEDROCK_MANTLE_RESPONSES, "openai.gpt-5.4").await;
    every_client(&gw).await;
    let requests = gw.requests("p");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.path, "/openai/v1/responses");
        assert_eq!(
            scope(request),
            "AKIDEXAMPLE/us-east-2/bedrock-mantle/aws4_request"
        );
        assert!(request.header("x-amz-date").is_some());
        assert_eq!(request.header("anthropic-beta"), None);
    }
    bodies_name(&requests, "openai.gpt-5.4");
}

#[tokio::test]
async fn bedrock_mantle_chat_takes_a_bedrock_api_key() {
    let gw = gateway(providers::BEDROCK_MANTLE_CHAT, "qwen.qwen3-32b-v1:0").await;
    every_client(&gw).await;
    let requests = gw.requests("p");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.path, "/v1/chat/completions");
        assert_eq!(
            request.header("authorization"),
            Some("Bearer bedrock-api-key-mantle")
        );
        assert_eq!(request.header("x-amz-date"), None);
    }
    // An open-weight server takes `max_tokens`.
    assert_eq!(requests[1].body.as_ref().unwrap()["max_tokens"], 64);
}

#[tokio::test]
async fn bedrock_mantle_serves_claude_through_messages() {
    let gw = gateway(
        providers::BEDROCK_MANTLE_ANTHROPIC,
        "anthropic.claude-haiku-4-5",
    )
    .await;
    every_client(&gw).await;
    let requests = gw.requests("p");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.path, "/anthropic/v1/messages");
        assert_eq!(
            scope(request),
            "AKIDEXAMPLE/us-east-1/bedrock-mantle/aws4_request"
        );
        assert_eq!(request.header("anthropic-version"), Some("2023-06-01"));
        // A Messages client's betas stay with the gateway, as on Foundry.
        assert_eq!(request.header("anthropic-beta"), None);
        assert_eq!(request.header("x-api-key"), None);
    }
    bodies_name(&requests, "anthropic.claude-haiku-4-5");
}

#[tokio::test]
async fn bedrock_runtime_chat_signs_for_bedrock() {
    let gw = gateway(providers::BEDROCK_RUNTIME_CHAT, "openai.gpt-oss-120b-1:0").await;
    every_client(&gw).await;
    let requests = gw.requests("p");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(request.path, "/openai/v1/chat/completions");
        assert_eq!(scope(request), "AKIDEXAMPLE/us-west-2/bedrock/aws4_request");
    }
    bodies_name(&requests, "openai.gpt-oss-120b-1:0");
}

#[tokio::test]
async fn vertex_serves_openai_models_and_its_openai_compatible_chat() {
    let gw = gateway(providers::VERTEX_OPENAI_RESPONSES, "gpt-5.4").await;
    every_client(&gw).await;
    for request in gw.requests("p") {
        assert_eq!(
            request.path,
            "/v1/projects/proj-1/locations/global/publishers/openai/v1/responses"
        );
        assert_eq!(
            request.header("authorization"),
            Some("Bearer ya29.test-token")
        );
    }
    let gw = gateway(providers::VERTEX_OPENAI_CHAT, "google/gemini-2.5-flash").await;
    every_client(&gw).await;
    let requests = gw.requests("p");
    assert_eq!(requests.len(), 3);
    for request in &requests {
        assert_eq!(
            request.path,
            "/v1/projects/proj-1/locations/us-central1/endpoints/openapi/chat/completions"
        );
        assert_eq!(
            request.header("authorization"),
            Some("Bearer ya29.test-token")
        );
    }
    bodies_name(&requests, "google/gemini-2.5-flash");
}

/// Model ids are the door's own: Mantle's OpenAI path knows `openai.gpt-5.4`, not OpenAI's
/// `gpt-5.4`, and answers 404 `model_not_found` as the OpenAI-compatible APIs do.
#[tokio::test]
async fn a_model_id_of_another_door_is_not_found() {
    let gw = gateway(providers::BEDROCK_MANTLE_RESPONSES, "gpt-5.4").await;
    let (status, body) = error_of(
        gw.post(
            "/v1/chat/completions",
            &json!({"model": "m", "messages": [user("Hi")]}),
        )
        .await,
    )
    .await;
    let upstream: Value =
        serde_json::from_slice(gw.requests("p")[0].response.as_deref().unwrap()).unwrap();
    assert_eq!(upstream["error"]["code"], "model_not_found", "{upstream}");
    assert_eq!(status, 404, "{body}");
}

/// One logical OpenAI model on Bedrock Mantle and on Vertex AI: when Mantle fails, Vertex
/// answers.
#[tokio::test]
async fn one_model_on_two_clouds_fails_over() {
    let config = format!(
        "[store]\nenabled = false\n\n{}\nsim = {{ error_rate = 1.0, error_status = 503 }}\n\n{}\n[[models]]\nname = \"gpt\"\ndeployments = [\n  {{ provider = \"mantle\", target = \"openai.gpt-5.4\" }},\n  {{ provider = \"vertex\", target = \"gpt-5.4\" }},\n]\n",
        providers::BEDROCK_MANTLE_RESPONSES.toml("mantle"),
        providers::VERTEX_OPENAI_RESPONSES.toml("vertex"),
    );
    let gw = TestGateway::start(&config).await;
    for _ in 0..3 {
        let reply = gw
            .post(
                "/v1/chat/completions",
                &json!({"model": "gpt", "messages": [user("Which cloud?")]}),
            )
            .await;
        assert_eq!(reply.status(), 200);
    }
    assert_eq!(gw.requests("vertex").len(), 3);
    assert!(!gw.requests("mantle").is_empty(), "Mantle was never tried");
    assert!(
        gw.requests("mantle")
            .iter()
            .all(|r| r.path == "/openai/v1/responses")
    );
}

//! Amazon Bedrock Mantle (`https://bedrock-mantle.{region}.api.aws`): OpenAI's own models
//! through the Responses API under `/openai/v1` (the path the `openai` SDK's bedrock provider
//! builds), open-weight models through OpenAI Chat Completions and Responses under `/v1`, and
//! Claude through the Anthropic Messages API under `/anthropic/v1`.
//!
//! AWS authenticates first: a Bedrock API key as `Authorization: Bearer`, or SigV4 whose
//! credential scope names Mantle's service. The `openai` SDK signs for `bedrock-mantle`; a test
//! against the real endpoint (BerriAI/litellm#31476) found `bedrock` accepted as well and any
//! other service refused with 401 "Credential should be scoped to correct service:
//! 'bedrock-mantle'.", so both are accepted here and nothing else. The refusal's body is not
//! published; it is rendered in OpenAI's error shape, as Mantle's other errors are.
//!
//! Model ids are Bedrock's (`openai.gpt-5.4`, `anthropic.claude-haiku-4-5`,
//! `qwen.qwen3-32b-v1:0`): OpenAI's own models only under `/openai/v1`, Claude only under
//! `/anthropic`, and any id without a provider prefix is unknown.

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;

use crate::SimDialect;
use crate::error::{ErrorKind, SimError};
use crate::openai::{Operation, Target};
use crate::state::App;

/// Services a Mantle SigV4 scope may name; the first is the one a refusal names.
const SERVICES: &[&str] = &["bedrock-mantle", "bedrock"];

pub(crate) fn router(app: App) -> Router {
    let routes = Router::new()
        .route("/openai/v1/responses", post(openai_responses))
        .route("/v1/chat/completions", post(open_chat))
        .route("/v1/responses", post(open_responses))
        .route("/anthropic/v1/messages", post(anthropic_messages))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    crate::served(routes, &app, app.clone(), not_found)
}

fn target() -> Target {
    Target {
        dialect: SimDialect::BedrockMantle,
        operation: Operation::Chat,
        deployment_model: None,
        api_version: None,
    }
}

/// AWS's check, shared with Bedrock Runtime; a refusal is a 401 here.
async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    match check(request.headers(), app.config().api_key.as_deref()) {
        Ok(()) => next.run(request).await,
        Err(error) => crate::openai::render_error(SimDialect::BedrockMantle, &error),
    }
}

fn check(headers: &HeaderMap, expected_key: Option<&str>) -> Result<(), SimError> {
    crate::bedrock::check_auth(headers, expected_key, SERVICES).map_err(|refused| {
        SimError::new(
            StatusCode::UNAUTHORIZED,
            ErrorKind::Authentication,
            refused.message,
        )
        .code(refused.name)
    })
}

async fn not_found(method: Method, uri: Uri) -> Response {
    let error = SimError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!("Invalid URL ({method} {})", uri.path()),
    );
    crate::openai::render_error(SimDialect::BedrockMantle, &error)
}

/// The body's `model`, when the body is a JSON object that has one.
pub(crate) fn body_model(body: &[u8]) -> Option<String> {
    let value: serde_json::Value = serde_json::from_slice(body).ok()?;
    value.get("model")?.as_str().map(str::to_owned)
}

/// A Bedrock model id: a provider, a dot, the model (`openai.gpt-oss-120b-1:0`), optionally
/// behind a cross-region prefix (`us.`).
pub(crate) fn bedrock_model_id(model: &str) -> bool {
    model
        .split_once('.')
        .is_some_and(|(provider, rest)| !provider.is_empty() && !rest.is_empty())
        && model
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_' | b':'))
}

/// The 404 OpenAI-compatible endpoints answer for a model they do not serve.
pub(crate) fn model_not_found(dialect: SimDialect, model: &str) -> Response {
    let error = SimError::new(
        StatusCode::NOT_FOUND,
        ErrorKind::NotFound,
        format!("The model `{model}` does not exist or you do not have access to it."),
    )
    .code("model_not_found");
    crate::openai::render_error(dialect, &error)
}

/// The provider part of a Bedrock id, past a cross-region prefix.
fn provider_of(model: &str) -> &str {
    let mut parts = model.split('.');
    let first = parts.next().unwrap_or_default();
    match first {
        "us" | "eu" | "apac" | "jp" | "au" | "global" => parts.next().unwrap_or_default(),
        _ => first,
    }
}

/// Checks the body's model for a route: `openai` says whether the route is OpenAI's own.
fn wrong_model(body: &[u8], openai: bool) -> Option<Response> {
    let model = body_model(body)?;
    let fits = bedrock_model_id(&model)
        && match provider_of(&model) {
            "openai" => openai || model.contains("gpt-oss"),
            "anthropic" => false,
            _ => !openai,
        };
    (!fits).then(|| model_not_found(SimDialect::BedrockMantle, &model))
}

async fn openai_responses(State(app): State<App>, body: Bytes) -> Response {
    if let Some(refused) = wrong_model(&body, true) {
        return refused;
    }
    crate::openai::responses::handle(&app, &target(), &body).await
}

async fn open_chat(State(app): State<App>, body: Bytes) -> Response {
    if let Some(refused) = wrong_model(&body, false) {
        return refused;
    }
    crate::openai::chat(&app, &target(), &body).await
}

async fn open_responses(State(app): State<App>, body: Bytes) -> Response {
    if let Some(refused) = wrong_model(&body, false) {
        return refused;
    }
    crate::openai::responses::handle(&app, &target(), &body).await
}

/// The Messages API with its `anthropic-version` check, for Claude's Bedrock ids only.
async fn anthropic_messages(State(app): State<App>, headers: HeaderMap, body: Bytes) -> Response {
    if let Err(error) = crate::anthropic::check_version(&headers) {
        return error.into_response();
    }
    if let Some(model) = body_model(&body)
        && !(bedrock_model_id(&model) && provider_of(&model) == "anthropic")
    {
        return crate::anthropic::ApiError {
            status: StatusCode::NOT_FOUND,
            kind: "not_found_error",
            message: format!("model: {model}"),
            retry_after_s: None,
        }
        .into_response();
    }
    crate::anthropic::mantle_messages(app, body).await
}

#[cfg(test)]
mod tests {
    use axum::http::HeaderValue;
    use axum::http::header::AUTHORIZATION;

    use super::*;

    const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-2/bedrock-mantle/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=8a39f4f2883c173b42111ca4517ce7c8896b7487418a8102c680bb207de78a01";

    fn headers(authorization: &str) -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(AUTHORIZATION, HeaderValue::from_str(authorization).unwrap());
        headers.insert("x-amz-date", HeaderValue::from_static("20150830T123600Z"));
        headers
    }

    #[test]
    fn mantle_takes_its_own_scope_and_bedrock_and_refuses_others_with_401() {
        assert_eq!(check(&headers(SIGNED), Some("AKIDEXAMPLE")), Ok(()));
        let bedrock = SIGNED.replace("/bedrock-mantle/", "/bedrock/");
        assert_eq!(check(&headers(&bedrock), None), Ok(()));
        let refused = check(
            &headers(&SIGNED.replace("/bedrock-mantle/", "/mantle/")),
            None,
        )
        .unwrap_err();
        assert_eq!(refused.status, StatusCode::UNAUTHORIZED);
        assert_eq!(
            refused.message,
            "Credential should be scoped to correct service: 'bedrock-mantle'. "
        );
        assert_eq!(refused.code.as_deref(), Some("InvalidSignatureException"));
        let key = check(&headers("Bearer wrong"), Some("right")).unwrap_err();
        assert_eq!(key.status, StatusCode::UNAUTHORIZED);
        assert_eq!(key.code.as_deref(), Some("AccessDeniedException"));
        assert_eq!(check(&headers("Bearer right"), Some("right")), Ok(()));
    }

    #[test]
    fn model_ids_per_route() {
        let body = |model: &str| format!(r#"{{"model":"{model}"}}"#).into_bytes();
        assert!(wrong_model(&body("openai.gpt-5.4"), true).is_none());
        assert!(wrong_model(&body("gpt-5.4"), true).is_some());
        assert!(wrong_model(&body("anthropic.claude-haiku-4-5"), true).is_some());
        assert!(wrong_model(&body("qwen.qwen3-32b-v1:0"), false).is_none());
        assert!(wrong_model(&body("openai.gpt-oss-120b"), false).is_none());
        assert!(wrong_model(&body("openai.gpt-5.4"), false).is_some());
        assert!(wrong_model(&body("us.anthropic.claude-haiku-4-5"), false).is_some());
        // No model at all is the dialect's own error, not ours.
        assert!(wrong_model(b"{}", true).is_none());
        assert!(bedrock_model_id("openai.gpt-oss-120b-1:0"));
        assert!(!bedrock_model_id("gpt-4o"));
    }
}

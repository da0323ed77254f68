//! The Anthropic Messages dialect (`POST /v1/messages`), also served by Vertex AI for
//! Vertex-hosted Claude (`:rawPredict` / `:streamRawPredict`). Requests are validated the way the
//! API does, with its messages (tool_use / tool_result adjacency, id pattern, non-empty text,
//! thinking signatures), and answered from the neutral behaviour.

mod request;
mod response;

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use serde_json::json;

use crate::faults::{self, Fault, Pacing};
use crate::state::{App, Quota};
use crate::{behaviour, http, ids};

pub(crate) fn router(app: App) -> Router {
    let routes = Router::new()
        .route("/v1/messages", post(messages))
        .route("/v1/messages/count_tokens", post(count_tokens))
        // Claude in Microsoft Foundry: the same API under the resource's `/anthropic`.
        .route("/anthropic/v1/messages", post(messages))
        .route("/anthropic/v1/messages/count_tokens", post(count_tokens))
        .route_layer(middleware::from_fn_with_state(app.clone(), authenticate));
    crate::served(routes, &app, app.clone(), not_found)
}

/// An Anthropic API error: status, `error.type` and message.
#[derive(Clone, Debug)]
pub(crate) struct ApiError {
    pub status: StatusCode,
    pub kind: &'static str,
    pub message: String,
    pub retry_after_s: Option<u64>,
}

impl ApiError {
    pub fn invalid(message: impl Into<String>) -> Self {
        Self {
            status: StatusCode::BAD_REQUEST,
            kind: "invalid_request_error",
            message: message.into(),
            retry_after_s: None,
        }
    }

    fn body(&self) -> String {
        json!({"type": "error", "error": {"type": self.kind, "message": self.message}, "request_id": "req_sim"}).to_string()
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let mut response = http::json_body(self.status, self.body());
        if let Some(seconds) = self.retry_after_s
            && let Ok(value) = HeaderValue::from_str(&seconds.to_string())
        {
            response.headers_mut().insert("retry-after", value);
        }
        response
    }
}

/// `anthropic-version` values the API is known to accept: the two published ones, and the one
/// the newest official SDK (anthropic 2.16) sends.
const KNOWN_VERSIONS: &[&str] = &["2023-01-01", "2023-06-01", "2026-10-21"];

/// Whether the API takes this `anthropic-version`. It refuses dates it never published (e.g.
/// `2023-10-01`) and anything not a date. A well-formed date after the newest known version is
/// accepted: a newer SDK may send it, and the simulator must not be stricter than the service.
fn version_accepted(version: &str) -> bool {
    if KNOWN_VERSIONS.contains(&version) {
        return true;
    }
    let parts: Vec<&str> = version.split('-').collect();
    let date_shaped = matches!(parts.as_slice(), [y, m, d]
        if y.len() == 4 && m.len() == 2 && d.len() == 2
            && [y, m, d].iter().all(|p| p.bytes().all(|b| b.is_ascii_digit())))
        && matches!(parts[1].parse::<u8>(), Ok(1..=12))
        && matches!(parts[2].parse::<u8>(), Ok(1..=31));
    let newest = KNOWN_VERSIONS.iter().max().copied().unwrap_or_default();
    date_shaped && version > newest
}

/// A key in `x-api-key` or, as the newest SDKs send it, `Authorization: Bearer`; and an
/// `anthropic-version` the API accepts.
async fn authenticate(State(app): State<App>, request: Request, next: Next) -> Response {
    let headers = request.headers();
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let bearer = header("authorization").and_then(|v| {
        v.strip_prefix("Bearer ")
            .or_else(|| v.strip_prefix("bearer "))
    });
    let denied = |message: &str| ApiError {
        status: StatusCode::UNAUTHORIZED,
        kind: "authentication_error",
        message: message.to_owned(),
        retry_after_s: None,
    };
    let expected = app.config().api_key;
    match (header("x-api-key"), bearer) {
        (None, None) => return denied("x-api-key header is required").into_response(),
        (Some(key), _) if expected.as_deref().is_some_and(|e| e != key) => {
            return denied("invalid x-api-key").into_response();
        }
        (None, Some(token)) if expected.as_deref().is_some_and(|e| e != token) => {
            return denied("Invalid bearer token").into_response();
        }
        _ => {}
    }
    match check_version(headers) {
        Ok(()) => next.run(request).await,
        Err(error) => error.into_response(),
    }
}

/// An `anthropic-version` header the API accepts; Bedrock Mantle's Messages door checks it
/// too, after its own auth.
pub(crate) fn check_version(headers: &HeaderMap) -> Result<(), ApiError> {
    let version = headers.get("anthropic-version");
    match version.map(|v| v.to_str()) {
        None => Err(ApiError::invalid("anthropic-version: header is required")),
        Some(Ok(version)) if version_accepted(version) => Ok(()),
        Some(version) => Err(ApiError::invalid(format!(
            "anthropic-version: {} is not a valid version",
            serde_json::Value::from(version.unwrap_or_default())
        ))),
    }
}

async fn not_found(method: Method, uri: Uri) -> Response {
    ApiError {
        status: StatusCode::NOT_FOUND,
        kind: "not_found_error",
        message: format!("Not found: {method} {}", uri.path()),
        retry_after_s: None,
    }
    .into_response()
}

async fn messages(State(app): State<App>, body: Bytes) -> Response {
    respond(&app, &body, request::Flavor::Anthropic, None).await
}

/// Bedrock Mantle's `/anthropic/v1/messages`: the Messages API itself, once Mantle has
/// authenticated the caller and [`check_version`] passed.
pub(crate) async fn mantle_messages(app: App, body: Bytes) -> Response {
    respond(&app, &body, request::Flavor::Anthropic, None).await
}

/// Vertex AI's `publishers/anthropic/models/{model}:rawPredict` (`stream = false`) and
/// `:streamRawPredict` (`stream = true`): the Messages body without `model`, with
/// `anthropic_version: "vertex-2023-10-16"`. The Vertex router authenticates, then calls this.
pub(crate) async fn vertex_raw_predict(
    app: App,
    model: String,
    stream: bool,
    body: Bytes,
) -> Response {
    respond(&app, &body, request::Flavor::Vertex { model }, Some(stream)).await
}

async fn count_tokens(body: Bytes) -> Response {
    match request::parse(&body, &request::Flavor::CountTokens, None) {
        Ok(parsed) => {
            let tokens: u64 = parsed
                .conversation
                .prompt_segments()
                .iter()
                .map(|s| s.tokens)
                .sum();
            http::json_body(StatusCode::OK, json!({"input_tokens": tokens}).to_string())
        }
        Err(error) => error.into_response(),
    }
}

async fn respond(
    app: &App,
    body: &[u8],
    flavor: request::Flavor,
    stream: Option<bool>,
) -> Response {
    let config = app.config();
    let quota = app.take_quota(&config);
    if let Some(quota) = quota.filter(|q| !q.admitted) {
        let mut response = ApiError {
            status: StatusCode::TOO_MANY_REQUESTS,
            kind: "rate_limit_error",
            message:
                "This request would exceed your organization's rate limit of requests per minute."
                    .to_owned(),
            retry_after_s: Some(quota.retry_after_s()),
        }
        .into_response();
        rate_limit_headers(response.headers_mut(), 0, Some(quota));
        return response;
    }
    let fault = app.decide_fault(&config);
    match fault {
        Fault::RateLimit => {
            let mut response = ApiError {
                status: StatusCode::TOO_MANY_REQUESTS,
                kind: "rate_limit_error",
                message: "Number of request tokens has exceeded your per-minute rate limit"
                    .to_owned(),
                retry_after_s: Some(config.retry_after_s),
            }
            .into_response();
            rate_limit_headers(response.headers_mut(), 0, quota);
            return response;
        }
        Fault::Error => return scripted(config.error_status).into_response(),
        Fault::Hang => return std::future::pending().await,
        Fault::None | Fault::Malformed => {}
    }
    let parsed = match request::parse(body, &flavor, stream) {
        Ok(parsed) => parsed,
        Err(error) => return error.into_response(),
    };
    let mut answer = behaviour::answer(&parsed.conversation);
    if parsed.cache_breakpoint {
        answer.usage.cached_tokens = app.cached_tokens(&parsed.conversation.prompt_segments());
    }
    let render = response::Render::new(&parsed, app.next_sequence());
    let malformed = fault == Fault::Malformed;
    let mut response = if parsed.stream {
        faults::stream_answer(&config, render.stream(&answer, malformed)).await
    } else {
        let pacing = Pacing::new(&config);
        tokio::time::sleep(pacing.total(answer.usage.completion_tokens)).await;
        faults::json_answer(render.message(&answer).to_string(), malformed)
    };
    let headers = response.headers_mut();
    rate_limit_headers(headers, 999, quota);
    let mut rng = ids::rng(app.next_sequence(), 0x7265_7169);
    if let Ok(value) = HeaderValue::from_str(&format!("req_{}", ids::alphanumeric(&mut rng, 24))) {
        headers.insert("request-id", value);
    }
    response
}

fn scripted(status: u16) -> ApiError {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let (kind, message) = match status.as_u16() {
        529 => ("overloaded_error", "Overloaded"),
        429 => ("rate_limit_error", "Rate limited"),
        504 => ("timeout_error", "Request timed out"),
        400..=499 => ("invalid_request_error", "Invalid request"),
        _ => ("api_error", "Internal server error"),
    };
    ApiError {
        status,
        kind,
        message: message.to_owned(),
        retry_after_s: None,
    }
}

/// `anthropic-ratelimit-*` with RFC 3339 resets, as the API sends on every answer: a large
/// account's (`remaining` requests of 1,000), or the configured quota's state.
fn rate_limit_headers(headers: &mut HeaderMap, remaining: u64, quota: Option<Quota>) {
    let fixed = "2026-01-01T00:00:30Z";
    let (limit, remaining, requests_reset) = match quota {
        Some(q) => {
            let now = std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let at = i64::try_from(now.saturating_add(u128::from(q.reset_ms))).unwrap_or(0);
            let at = aws_smithy_types::DateTime::from_millis(at)
                .fmt(aws_smithy_types::date_time::Format::DateTime)
                .unwrap_or_else(|_| fixed.to_owned());
            (q.limit, q.remaining, at)
        }
        None => (1000, remaining, fixed.to_owned()),
    };
    for (name, value) in [
        ("anthropic-ratelimit-requests-limit", limit.to_string()),
        (
            "anthropic-ratelimit-requests-remaining",
            remaining.to_string(),
        ),
        ("anthropic-ratelimit-requests-reset", requests_reset.clone()),
        (
            "anthropic-ratelimit-tokens-limit",
            (limit * 400).to_string(),
        ),
        (
            "anthropic-ratelimit-tokens-remaining",
            (remaining * 400).to_string(),
        ),
        ("anthropic-ratelimit-tokens-reset", requests_reset),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.entry(name).or_insert(value);
        }
    }
}

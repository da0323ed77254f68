//! Ingress routes, one file per API.

pub(crate) mod cache;
pub(crate) mod chat_like;
pub(crate) mod config;
pub(crate) mod crossbar;
pub(crate) mod dashboard;
pub(crate) mod embeddings;
pub(crate) mod messages;
pub(crate) mod models;
pub(crate) mod payload_log;
pub(crate) mod ready;
pub(crate) mod responses;
pub mod runs;
mod stream;

use axum::Json;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use crossbar_core::chat::{ChatRequest, ChatResponse};
use crossbar_core::config::{HostedTools, UnknownFields};
use crossbar_core::guardrails::{OnError, Webhook, WebhookOutcome};
use crossbar_core::router::{
    Deployment, MAX_COST_HEADER, PROVIDER_HEADER, Policies, Preferences, ROUTE_HEADER, Routed,
};
use crossbar_core::{ChatStream, Error};

use self::cache::Lookup;
use self::payload_log::PayloadLog;
use crate::app::AppState;
use crate::error::ApiError;
use crate::metering::Meter;

/// The header naming the end user inside the caller's key; it wins over the body's field.
pub(crate) const USER_HEADER: &str = "x-crossbar-user";

pub(crate) async fn health() -> Json<crate::openapi::Health> {
    Json(crate::openapi::Health { status: "ok" })
}

pub(crate) async fn not_found(method: Method, uri: Uri) -> ApiError {
    ApiError::at_path(
        uri.path(),
        Error::not_found(format!("Unknown request URL: {method} {}.", uri.path()))
            .with_code("unknown_url"),
    )
}

pub(crate) async fn method_not_allowed(method: Method, uri: Uri) -> Response {
    let error = Error::invalid_request(format!(
        "Method {method} is not allowed for {}.",
        uri.path()
    ));
    let mut response = ApiError::at_path(uri.path(), error).into_response();
    *response.status_mut() = StatusCode::METHOD_NOT_ALLOWED;
    response
}

/// The request body, with an oversized one turned into our 413 rather than axum's plain text.
pub(crate) fn body(body: Result<Bytes, BytesRejection>, limit: usize) -> Result<Bytes, Error> {
    body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            Error::payload_too_large(limit)
        } else {
            Error::invalid_request(format!("Could not read the request body: {rejection}"))
        }
    })
}

/// Bodies at least this large are decoded on the blocking pool.
const OFFLOAD_DECODE_BYTES: usize = 256 * 1024;

/// Decodes a request body; a large one on the blocking pool, so that parsing megabytes of JSON
/// never holds a runtime worker thread (health checks and other clients keep being served).
pub(crate) async fn decode<T: Send + 'static>(
    raw: Bytes,
    decode: fn(&[u8]) -> Result<T, Error>,
) -> Result<T, Error> {
    if raw.len() < OFFLOAD_DECODE_BYTES {
        return decode(&raw);
    }
    tokio::task::spawn_blocking(move || decode(&raw))
        .await
        .map_err(|e| Error::internal(format!("decoding the request failed: {e}")))?
}

/// Applies the route's policies to what a client sent beyond the canonical request: a field the
/// gateway does not know is refused in the client's own words (`unknown`) unless the route passes
/// it on (`unknown_fields = "pass"`), and provider-run tools may be left behind for other dialects
/// (`hosted_tools = "drop"`); last, the guardrails, whose findings the `meter` notes. Gives the
/// policies for what follows (the response cache, the answer's guardrails).
pub(crate) fn checked_policies(
    state: &AppState,
    request: &mut ChatRequest,
    preferences: &Preferences,
    unknown: fn(&str) -> Error,
    meter: &Meter,
) -> Result<Policies, Error> {
    let mut policies = state.router.policies_for(&request.model, preferences)?;
    if !state.callers.is_empty() {
        let (key, team) = meter.caller_names();
        state
            .callers
            .apply(&mut policies, key.as_deref(), team.as_deref());
    }
    if policies.unknown_fields == UnknownFields::Reject
        && let Some(key) = request.passthrough.required.first()
    {
        return Err(unknown(key));
    }
    request.passthrough.drop_hosted_tools = policies.hosted_tools == HostedTools::Drop;
    // Last, on the request as it will be sent: masked text is what leaves.
    match policies.guardrails.check_request(request) {
        Ok(findings) => {
            count_findings(&findings);
            meter.guardrails(&findings);
            Ok(policies)
        }
        Err(blocked) => {
            count_findings(&blocked.findings);
            meter.guardrails(&blocked.findings);
            tracing::info!(
                rule = blocked.detector.name(),
                "request blocked by a guardrail"
            );
            Err(blocked.into())
        }
    }
}

/// Asks the route's guardrail webhook, if it has one, about `request` (as the detectors left
/// it): `deny` refuses it (400 `guardrail_blocked` with the webhook's reason), `rewrite`
/// replaces it (all but the model, `stream` and the caller's scope, which the gateway keeps),
/// and a webhook that cannot answer is the route's `on_error` (a refusal is a 503
/// `guardrail_unavailable`).
pub(crate) async fn webhook_request(
    policies: &Policies,
    request: &mut ChatRequest,
    meter: &Meter,
) -> Result<(), Error> {
    let Some(webhook) = &policies.guardrails.webhook else {
        return Ok(());
    };
    match webhook.check_request(&policies.route, request).await {
        WebhookOutcome::Allow => webhook_decided(meter, "allow"),
        WebhookOutcome::Deny { reason } => {
            webhook_decided(meter, "deny");
            return Err(webhook_denied(reason, "request"));
        }
        WebhookOutcome::Rewrite(mut rewritten) => {
            webhook_decided(meter, "rewrite");
            rewritten.model = std::mem::take(&mut request.model);
            rewritten.stream = request.stream;
            rewritten.scope = request.scope.take();
            *request = *rewritten;
        }
        WebhookOutcome::Failed { error } => webhook_failed(webhook, meter, &error)?,
    }
    Ok(())
}

/// The route's guardrails on a whole (non-streamed) answer: the detectors mask it in place or
/// block it (403 `guardrail_blocked`), then the webhook, when it asks for answers, may deny
/// (403) or rewrite it. Streams go through [`stream::guarded`] instead.
pub(crate) async fn check_answer(
    policies: &Policies,
    request: &ChatRequest,
    answer: &mut ChatResponse,
    meter: &Meter,
) -> Result<(), Error> {
    let rules = &policies.guardrails;
    match rules.check_answer(answer) {
        Ok(findings) => {
            count_findings(&findings);
            meter.guardrails(&findings);
        }
        Err(blocked) => {
            count_findings(&blocked.findings);
            meter.guardrails(&blocked.findings);
            tracing::info!(
                rule = blocked.detector.name(),
                "answer blocked by a guardrail"
            );
            return Err(blocked.answer_error());
        }
    }
    let Some(webhook) = rules.webhook.as_ref().filter(|w| w.answers) else {
        return Ok(());
    };
    match webhook.check_answer(&policies.route, request, answer).await {
        WebhookOutcome::Allow => webhook_decided(meter, "allow"),
        WebhookOutcome::Deny { reason } => {
            webhook_decided(meter, "deny");
            return Err(webhook_denied(reason, "answer"));
        }
        WebhookOutcome::Rewrite(rewritten) => {
            webhook_decided(meter, "rewrite");
            *answer = *rewritten;
        }
        WebhookOutcome::Failed { error } => webhook_failed(webhook, meter, &error)?,
    }
    Ok(())
}

/// A fresh whole answer on its way to the client, whatever the dialect: the route's guardrails
/// ([`check_answer`]), then the payload log and the response cache get it as the client will
/// (masked, and only if no rule blocked it).
pub(crate) async fn checked_answer(
    policies: &Policies,
    request: &ChatRequest,
    answer: &mut ChatResponse,
    meter: &Meter,
    log: Option<&mut PayloadLog>,
    lookup: Option<&Lookup>,
) -> Result<(), Error> {
    check_answer(policies, request, answer, meter).await?;
    if let Some(log) = log {
        log.answer(answer);
    }
    if let Some(lookup) = lookup {
        lookup.put(answer).await;
    }
    Ok(())
}

/// A fresh stream on its way to the client, whatever the dialect: the route's guardrails
/// ([`stream::guarded`]), then the response cache and the payload log keep what the client
/// gets, and the meter notes its usage and how it ended.
pub(crate) fn checked_stream(
    events: ChatStream,
    policies: &Policies,
    meter: &Meter,
    lookup: Option<Lookup>,
    log: Option<PayloadLog>,
) -> ChatStream {
    let mut events = stream::guarded(
        events,
        std::sync::Arc::clone(&policies.guardrails),
        meter.clone(),
    );
    if let Some(lookup) = lookup {
        events = lookup.storing(events);
    }
    if let Some(log) = log {
        events = log.streaming(events);
    }
    meter.observe(events)
}

/// A JSON answer's response.
pub(crate) fn json_body(body: Vec<u8>) -> Response {
    (
        [(
            axum::http::header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The end user inside the caller's key: `x-crossbar-user`, else the request's own field
/// (OpenAI and Responses `user`, Anthropic `metadata.user_id`).
pub(crate) fn end_user(headers: &HeaderMap, request: &ChatRequest) -> Option<String> {
    headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| request.user.clone())
}

/// `crossbar_guardrail_webhook_total{result}` and the usage record's note.
fn webhook_decided(meter: &Meter, result: &'static str) {
    metrics::counter!("crossbar_guardrail_webhook_total", "result" => result).increment(1);
    meter.webhook(result);
}

/// A webhook's `deny`: a request is refused as a 400, an answer (the request was fine) as a 403;
/// both `guardrail_blocked`, with the webhook's reason.
fn webhook_denied(reason: Option<String>, what: &str) -> Error {
    let reason = reason.map_or_else(String::new, |r| format!(": {r}"));
    let message = format!("the {what} was denied by the route's guardrail webhook{reason}");
    if what == "request" {
        Error::invalid_request(message).with_code("guardrail_blocked")
    } else {
        Error::permission_denied(message, "guardrail_blocked")
    }
}

/// A webhook that could not answer: its `on_error` decides (`fail_open` or `fail_closed`).
fn webhook_failed(webhook: &Webhook, meter: &Meter, error: &str) -> Result<(), Error> {
    tracing::warn!(url = %webhook.url, "guardrail webhook failed: {error}");
    match webhook.on_error {
        OnError::Allow => {
            webhook_decided(meter, "fail_open");
            Ok(())
        }
        OnError::Deny => {
            webhook_decided(meter, "fail_closed");
            Err(Error::overloaded(
                "The route's guardrail webhook could not be reached, and the route refuses \
                 requests it cannot check.",
            )
            .with_code("guardrail_unavailable"))
        }
    }
}

/// `crossbar_guardrail_findings_total{detector, action}`: names and counts, never the text.
pub(crate) fn count_findings(findings: &crossbar_core::guardrails::Findings) {
    for (detector, (action, n)) in &findings.0 {
        metrics::counter!(
            "crossbar_guardrail_findings_total",
            "detector" => detector.name(),
            "action" => action.name()
        )
        .increment(u64::try_from(*n).unwrap_or(u64::MAX));
    }
}

/// Tells the client which deployment answered (useful when debugging failover).
pub(crate) fn deployment_headers(response: &mut Response, deployment: &Deployment) {
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&deployment.provider.name) {
        headers.insert("x-crossbar-provider", value);
    }
    if let Ok(value) = HeaderValue::from_str(&deployment.id()) {
        headers.insert("x-crossbar-deployment", value);
    }
}

/// What the caller asked of the router: `x-crossbar-route`, `x-crossbar-provider` (pin, or
/// exclude with `!`) and `x-crossbar-max-cost-usd`. Virtual keys (issue 5) will set
/// `Preferences::key` here, from the authenticated key.
pub(crate) fn preferences(headers: &HeaderMap) -> Result<Preferences, Error> {
    let get = |name: &str| -> Result<Option<&str>, Error> {
        headers
            .get(name)
            .map(|v| {
                v.to_str().map_err(|_| {
                    Error::invalid_field(name, format!("`{name}` must be visible ASCII."))
                })
            })
            .transpose()
    };
    Preferences::from_headers(
        get(ROUTE_HEADER)?,
        get(PROVIDER_HEADER)?,
        get(MAX_COST_HEADER)?,
    )
}

/// The router's decision: which deployment answered, after how many upstream calls (hedges
/// included), under which route, and what it cost when that is known (not for streams, whose
/// cost is known only at their end).
pub(crate) fn routed_headers<T>(response: &mut Response, routed: &Routed<T>) {
    deployment_headers(response, &routed.deployment);
    let headers = response.headers_mut();
    headers.insert(
        "x-crossbar-attempts",
        HeaderValue::from(routed.attempts.len()),
    );
    if let Ok(value) = HeaderValue::from_str(&routed.route) {
        headers.insert("x-crossbar-route", value);
    }
    // Exact picodollars in the usage records' format, so the header, the record and the key's
    // budget agree to the picodollar.
    if let Some(cost) = routed.cost_pico
        && let Ok(value) = HeaderValue::from_str(&crossbar_core::pricing::format_usd(cost))
    {
        headers.insert("x-crossbar-cost-usd", value);
    }
}

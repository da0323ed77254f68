//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, served
//! by any deployment of any provider, so Anthropic SDK clients (and Claude Code) work unchanged.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::dialects::anthropic::{self, StreamEncoder};
use crossbar_core::dialects::rules;
use crossbar_core::router::Prompt;

use super::{apply_policies, body, decode, preferences, routed_headers, stream};
use crate::app::AppState;
use crate::error::ApiError;
use crate::metering::Meter;

pub async fn create(
    State(state): State<AppState>,
    meter: Meter,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes).map_err(ApiError::anthropic)?;
    let mut request = decode(raw, anthropic::decode_request)
        .await
        .map_err(ApiError::anthropic)?
        .request;
    if let Some(betas) = headers.get("anthropic-beta").and_then(|v| v.to_str().ok()) {
        anthropic::pass_betas(&mut request, betas);
    }
    // Routing headers narrow the route; the caller's virtual key narrows it further.
    let mut preferences = preferences(&headers).map_err(ApiError::anthropic)?;
    apply_policies(
        &state.router,
        &mut request,
        &preferences,
        anthropic::unknown_field_error,
    )
    .map_err(ApiError::anthropic)?;
    let max_tokens = request.max_tokens.map(u64::from);
    meter
        .admit(
            &state.router,
            &request.model,
            request.stream,
            || Prompt::of_chat(&request),
            max_tokens,
            &mut preferences,
        )
        .await
        .map_err(ApiError::anthropic)?;
    if !request.stream {
        let routed = state
            .router
            .chat_with(&request, &preferences)
            .await
            .map_err(ApiError::anthropic)?;
        meter.routed(&routed, routed.value.usage);
        let body = anthropic::encode_response(&routed.value).map_err(ApiError::anthropic)?;
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            body,
        )
            .into_response();
        routed_headers(&mut response, &routed);
        return Ok(response);
    }
    let estimate = rules::estimate_tokens(&request);
    let mut routed = state
        .router
        .chat_stream_with(&request, &preferences)
        .await
        .map_err(ApiError::anthropic)?;
    meter.routed(&routed, None);
    let events = meter.observe(std::mem::replace(
        &mut routed.value,
        Box::pin(futures::stream::empty()),
    ));
    let mut response = stream::response(events, StreamEncoder::new(&request.model, estimate));
    routed_headers(&mut response, &routed);
    Ok(response)
}

/// The prompt tokens the router estimates for the request, exactly what a budget reserves for
/// it (the largest estimate among the deployments it may use): counted locally, since upstreams
/// other than Anthropic have no count endpoint, and consistent with what the key is charged
/// against before the call.
pub async fn count_tokens(
    State(state): State<AppState>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes).map_err(ApiError::anthropic)?;
    let request = decode(raw, anthropic::decode_count_tokens)
        .await
        .map_err(ApiError::anthropic)?;
    let preferences = preferences(&headers).map_err(ApiError::anthropic)?;
    let tokens = state
        .router
        .prompt_tokens(&request.model, &preferences, &Prompt::of_chat(&request))
        .map_err(ApiError::anthropic)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        anthropic::encode_count(tokens),
    )
        .into_response())
}

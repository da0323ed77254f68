//! `POST /v1/messages` and `POST /v1/messages/count_tokens`: the Anthropic Messages API, served
//! by any deployment of any provider, so Anthropic SDK clients (and Claude Code) work unchanged.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use crossbar_core::dialects::anthropic::{self, StreamEncoder};
use crossbar_core::dialects::rules;
use crossbar_core::router::Preferences;
use futures::StreamExt;

use super::{body, deployment_headers};
use crate::app::AppState;
use crate::error::ApiError;
use crate::metering::Meter;

pub async fn create(
    State(state): State<AppState>,
    meter: Meter,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes).map_err(ApiError::anthropic)?;
    let request = anthropic::decode_request(&raw)
        .map_err(ApiError::anthropic)?
        .request;
    // The caller's virtual key narrows routing (its routes, its remaining budget).
    let mut preferences = Preferences::default();
    let max_tokens = request.max_tokens.map(u64::from);
    meter
        .admit(
            &state.router,
            &request.model,
            request.stream,
            raw.len(),
            max_tokens,
            &mut preferences,
        )
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
        deployment_headers(&mut response, &routed.deployment);
        return Ok(response);
    }
    let estimate = rules::estimate_tokens(&request);
    let mut routed = state
        .router
        .chat_stream_with(&request, &preferences)
        .await
        .map_err(ApiError::anthropic)?;
    meter.routed(&routed, None);
    let mut events = meter.observe(std::mem::replace(
        &mut routed.value,
        Box::pin(futures::stream::empty()),
    ));
    let mut encoder = StreamEncoder::new(&request.model, estimate);
    let frames = async_stream::stream! {
        let mut buffer = BytesMut::new();
        while let Some(event) = events.next().await {
            let encoded = event.and_then(|event| encoder.event(event, &mut buffer));
            if let Err(error) = encoded {
                tracing::warn!(status = error.status(), "stream broke after the first byte: {}", error.message);
                encoder.error(&error, &mut buffer);
                yield Ok::<_, std::convert::Infallible>(buffer.split().freeze());
                return;
            }
            if !buffer.is_empty() {
                yield Ok(buffer.split().freeze());
            }
        }
        encoder.end(&mut buffer);
        yield Ok(buffer.split().freeze());
    };
    let mut response = Response::new(Body::from_stream(frames));
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    deployment_headers(&mut response, &routed.deployment);
    Ok(response)
}

/// A local estimate: upstreams other than Anthropic have no count endpoint, and the router does
/// not pick a deployment for a count.
pub async fn count_tokens(
    State(state): State<AppState>,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes).map_err(ApiError::anthropic)?;
    let counted = anthropic::count_tokens(&raw).map_err(ApiError::anthropic)?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        counted,
    )
        .into_response())
}

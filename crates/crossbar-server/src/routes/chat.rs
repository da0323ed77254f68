//! `POST /v1/chat/completions`, streamed and not.

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use crossbar_core::dialects::openai::{self, StreamEncoder};
use futures::StreamExt;

use super::{body, preferences, routed_headers};
use crate::app::AppState;
use crate::error::ApiError;
use crate::metering::Meter;

pub async fn completions(
    State(state): State<AppState>,
    meter: Meter,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes)?;
    let ingress = openai::decode_chat_request(&raw)?;
    let request = ingress.request;
    let mut preferences = preferences(&headers)?;
    let max_tokens = request.max_tokens.map(u64::from);
    meter.admit(
        &state.router,
        &request.model,
        request.stream,
        raw.len(),
        max_tokens,
        &mut preferences,
    )?;
    if !request.stream {
        let routed = state.router.chat_with(&request, &preferences).await?;
        meter.routed(&routed, routed.value.usage);
        let mut response = (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            openai::encode_chat_response(&routed.value)?,
        )
            .into_response();
        routed_headers(&mut response, &routed);
        return Ok(response);
    }
    let mut routed = state
        .router
        .chat_stream_with(&request, &preferences)
        .await?;
    // The events go into the body; the rest of `routed` still says who answered.
    let events = std::mem::replace(&mut routed.value, Box::pin(futures::stream::empty()));
    meter.routed(&routed, None);
    let mut events = meter.observe(events);
    let mut encoder = StreamEncoder::new(ingress.include_usage);
    // Each upstream event is encoded and sent as it arrives: memory stays flat however long the
    // answer, and dropping this body (client gone) drops the upstream request with it.
    let frames = async_stream::stream! {
        let mut buffer = BytesMut::new();
        while let Some(event) = events.next().await {
            match event {
                Ok(event) => encoder.event(event, &mut buffer),
                Err(error) => {
                    tracing::warn!(status = error.status(), "stream broke after the first byte: {}", error.message);
                    encoder.error(&error, &mut buffer);
                    yield Ok::<_, std::convert::Infallible>(buffer.split().freeze());
                    return;
                }
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
    // Tell buffering proxies (nginx) to pass chunks through as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    routed_headers(&mut response, &routed);
    Ok(response)
}

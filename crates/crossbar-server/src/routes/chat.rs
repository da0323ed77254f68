//! `POST /v1/chat/completions`, streamed and not.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::dialects::openai::{self, StreamEncoder};
use crossbar_core::router::Prompt;

use super::{body, decode, preferences, routed_headers, stream};
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
    let ingress = decode(raw, openai::decode_chat_request).await?;
    let request = ingress.request;
    let mut preferences = preferences(&headers)?;
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
        .await?;
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
    let events = meter.observe(events);
    let mut response = stream::response(events, StreamEncoder::new(ingress.include_usage));
    routed_headers(&mut response, &routed);
    Ok(response)
}

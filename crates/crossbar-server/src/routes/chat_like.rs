//! The chat operation for every ingress dialect ([`ChatIngress`]): decode, the route's policies
//! on what the client sent beyond the canonical request, admission (keys, limits, budgets),
//! routing, then the answer or the stream written in the client's dialect. Mounting a dialect is
//! `post(chat_like::serve::<Dialect>)`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::ingress::ChatIngress;
use crossbar_core::router::Prompt;

use super::{apply_policies, body, decode, preferences, routed_headers, stream};
use crate::app::AppState;
use crate::auth::CallerKey;
use crate::error::ApiError;
use crate::metering::Meter;

pub(crate) async fn serve<I: ChatIngress>(
    State(state): State<AppState>,
    meter: Meter,
    caller: Option<Extension<CallerKey>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fail = ApiError::of::<I>;
    let raw = body(raw, state.max_body_bytes).map_err(fail)?;
    let mut decoded = decode(raw, I::decode).await.map_err(fail)?;
    I::headers(&mut decoded, &headers);
    // What the gateway remembers of the conversation stays with the caller's key.
    I::request_mut(&mut decoded).scope = caller.map(|Extension(CallerKey(id))| id);
    // Routing headers narrow the route; the caller's virtual key narrows it further.
    let mut preferences = preferences(&headers).map_err(fail)?;
    let request = I::request(&decoded);
    meter
        .admit(
            &state.router,
            &request.model,
            request.stream,
            || Prompt::of_chat(request),
            request.max_tokens.map(u64::from),
            &mut preferences,
        )
        .await
        .map_err(fail)?;
    // After admission, so the route is chosen (and a 404 worded) within the caller's key.
    apply_policies(
        &state.router,
        I::request_mut(&mut decoded),
        &preferences,
        I::unknown_field_error,
    )
    .map_err(fail)?;
    let request = I::request(&decoded);
    if !request.stream {
        let routed = state
            .router
            .chat_with(request, &preferences)
            .await
            .map_err(fail)?;
        meter.routed(&routed, routed.value.usage);
        let body = I::encode_response(&decoded, &routed.value).map_err(fail)?;
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
    let mut routed = state
        .router
        .chat_stream_with(request, &preferences)
        .await
        .map_err(fail)?;
    // The events go into the body; the rest of `routed` still says who answered.
    let events = std::mem::replace(&mut routed.value, Box::pin(futures::stream::empty()));
    meter.routed(&routed, None);
    let events = meter.observe(events);
    let mut response = stream::response(events, I::stream_encoder(&decoded));
    routed_headers(&mut response, &routed);
    Ok(response)
}

//! The chat operation for every ingress dialect ([`ChatIngress`]): decode, the route's policies
//! on what the client sent beyond the canonical request, admission (keys, limits, budgets),
//! the response cache, routing, then the answer or the stream written in the client's dialect.
//! Mounting a dialect is `post(chat_like::serve::<Dialect>)`.

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::HeaderMap;
use axum::response::Response;
use crossbar_core::ingress::ChatIngress;
use crossbar_core::router::Prompt;

use super::cache::{self, Hit, Lookup};
use super::payload_log::PayloadLog;
use super::{
    body, checked_answer, checked_policies, checked_stream, decode, end_user, json_body,
    preferences, routed_headers, stream, webhook_request,
};
use crate::app::AppState;
use crate::auth::CallerKey;
use crate::error::ApiError;
use crate::metering::Meter;
use crate::request_id::RequestId;

pub(crate) async fn serve<I: ChatIngress>(
    State(state): State<AppState>,
    meter: Meter,
    caller: Option<Extension<CallerKey>>,
    request_id: Option<Extension<RequestId>>,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let fail = ApiError::of::<I>;
    let raw = body(raw, state.max_body_bytes).map_err(fail)?;
    let mut decoded = decode(raw, I::decode).await.map_err(fail)?;
    I::headers(&mut decoded, &headers);
    let key_id = caller.map(|Extension(CallerKey(id))| id);
    // What the gateway remembers of the conversation stays with the caller's key.
    I::request_mut(&mut decoded).scope = key_id.clone();
    let directive = cache::directive(&headers).map_err(fail)?;
    // Routing headers narrow the route; the caller's virtual key narrows it further.
    let mut preferences = preferences(&headers).map_err(fail)?;
    let request = I::request(&decoded);
    meter.end_user(end_user(&headers, request));
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
    let policies = checked_policies(
        &state,
        I::request_mut(&mut decoded),
        &preferences,
        I::unknown_field_error,
        &meter,
    )
    .map_err(fail)?;
    webhook_request(&policies, I::request_mut(&mut decoded), &meter)
        .await
        .map_err(fail)?;
    let request = I::request(&decoded);
    let mut log = PayloadLog::new(
        state.payloads.as_ref(),
        &policies,
        request,
        request_id.map(|Extension(RequestId(id))| id),
        key_id.as_deref(),
    );
    // Keyed by the request as it leaves (masked, rewritten), so a hit answers what was sent.
    let lookup = Lookup::new(
        &state.caches,
        &policies,
        request,
        directive,
        key_id.as_deref(),
        meter.team_id().as_deref(),
    );
    if let Some(lookup) = &lookup
        && let Some((hit, age)) = lookup
            .answer(request, &policies, &meter, &mut log)
            .await
            .map_err(fail)?
    {
        let mut response = match hit {
            Hit::Whole(answer) => json_body(I::encode_response(&decoded, &answer).map_err(fail)?),
            Hit::Stream(events) => stream::response(events, I::stream_encoder(&decoded)),
        };
        cache::hit_headers(&mut response, &policies.route, age);
        return Ok(response);
    }
    let mut response = if !request.stream {
        let mut routed = state
            .router
            .chat_with(request, &preferences)
            .await
            .map_err(fail)?;
        meter.routed(&routed, routed.value.usage);
        checked_answer(
            &policies,
            request,
            &mut routed.value,
            &meter,
            log.as_mut(),
            lookup.as_ref(),
        )
        .await
        .map_err(fail)?;
        let body = I::encode_response(&decoded, &routed.value).map_err(fail)?;
        let mut response = json_body(body);
        routed_headers(&mut response, &routed);
        response
    } else {
        let mut routed = state
            .router
            .chat_stream_with(request, &preferences)
            .await
            .map_err(fail)?;
        // The events go into the body; the rest of `routed` still says who answered.
        let events = std::mem::replace(&mut routed.value, Box::pin(futures::stream::empty()));
        meter.routed(&routed, None);
        let events = checked_stream(events, &policies, &meter, lookup.clone(), log);
        let mut response = stream::response(events, I::stream_encoder(&decoded));
        routed_headers(&mut response, &routed);
        response
    };
    if lookup.is_some() {
        cache::headers(&mut response, false, None);
    }
    Ok(response)
}

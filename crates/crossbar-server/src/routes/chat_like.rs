//! The chat operation for every ingress dialect ([`ChatIngress`]): decode, the route's policies
//! on what the client sent beyond the canonical request, admission (keys, limits, budgets),
//! the response cache, routing, then the answer or the stream written in the client's dialect.
//! Mounting a dialect is `post(chat_like::serve::<Dialect>)`.

use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::cache::{Cached, replay};
use crossbar_core::chat::ChatRequest;
use crossbar_core::ingress::ChatIngress;
use crossbar_core::router::{Policies, Prompt};

use super::cache::{self, Lookup};
use super::payload_log::PayloadLog;
use super::{
    body, check_answer, checked_policies, decode, preferences, routed_headers, stream,
    webhook_request,
};
use crate::app::AppState;
use crate::auth::CallerKey;
use crate::error::ApiError;
use crate::metering::Meter;
use crate::request_id::RequestId;

/// The header naming the end user inside the caller's key; it wins over the body's field.
pub(crate) const USER_HEADER: &str = "x-crossbar-user";

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
        &state.router,
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
        && let Some(hit) = lookup.get().await
    {
        let age = hit.age_s(lookup.cache.now_ms());
        meter.cache_hit(&policies.route, hit.usage());
        let mut response = answer_hit::<I>(&decoded, &meter, &policies, hit, log)
            .await
            .map_err(fail)?;
        cache::headers(&mut response, true, Some(age));
        return Ok(response);
    }
    let mut response = if !request.stream {
        let mut routed = state
            .router
            .chat_with(request, &preferences)
            .await
            .map_err(fail)?;
        meter.routed(&routed, routed.value.usage);
        check_answer(&policies, request, &mut routed.value, &meter)
            .await
            .map_err(fail)?;
        if let Some(log) = &mut log {
            log.answer(&routed.value);
        }
        // Kept as the client gets it: masked, and only if no rule blocked it.
        if let Some(lookup) = &lookup {
            lookup.put(&routed.value).await;
        }
        let body = I::encode_response(&decoded, &routed.value).map_err(fail)?;
        let mut response = json(body);
        routed_headers(&mut response, &routed);
        response
    } else {
        let mut routed = state
            .router
            .chat_stream_with(request, &preferences)
            .await
            .map_err(fail)?;
        // The events go into the body; the rest of `routed` still says who answered.
        let mut events = std::mem::replace(&mut routed.value, Box::pin(futures::stream::empty()));
        meter.routed(&routed, None);
        events = stream::guarded(events, Arc::clone(&policies.guardrails), meter.clone());
        if let Some(lookup) = lookup.clone() {
            events = lookup.storing(events);
        }
        if let Some(log) = log {
            events = log.streaming(events);
        }
        let events = meter.observe(events);
        let mut response = stream::response(events, I::stream_encoder(&decoded));
        routed_headers(&mut response, &routed);
        response
    };
    if lookup.is_some() {
        cache::headers(&mut response, false, None);
    }
    Ok(response)
}

/// A cached answer in the client's dialect: the answer, or its replay as a stream.
/// The route's guardrails apply to it as to a fresh one (the rules may have changed since).
async fn answer_hit<I: ChatIngress>(
    decoded: &I::Decoded,
    meter: &Meter,
    policies: &Policies,
    mut hit: Cached,
    log: Option<PayloadLog>,
) -> Result<Response, crossbar_core::Error> {
    let request = I::request(decoded);
    let mut response = if request.stream {
        let events = replay(&hit.response).into_iter().map(Ok);
        let events = Box::pin(futures::stream::iter(events));
        let mut events = stream::guarded(events, Arc::clone(&policies.guardrails), meter.clone());
        if let Some(log) = log {
            events = log.streaming(events);
        }
        stream::response(meter.observe(events), I::stream_encoder(decoded))
    } else {
        check_answer(policies, request, &mut hit.response, meter).await?;
        if let Some(mut log) = log {
            log.answer(&hit.response);
        }
        json(I::encode_response(decoded, &hit.response)?)
    };
    if let Ok(value) = HeaderValue::from_str(&policies.route) {
        response.headers_mut().insert("x-crossbar-route", value);
    }
    response
        .headers_mut()
        .insert("x-crossbar-attempts", HeaderValue::from(0));
    Ok(response)
}

fn json(body: Vec<u8>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        body,
    )
        .into_response()
}

/// The end user inside the caller's key: `x-crossbar-user`, else the request's own field
/// (OpenAI `user`, Anthropic `metadata.user_id`).
fn end_user(headers: &HeaderMap, request: &ChatRequest) -> Option<String> {
    headers
        .get(USER_HEADER)
        .and_then(|v| v.to_str().ok())
        .map(str::trim)
        .filter(|v| !v.is_empty())
        .map(str::to_owned)
        .or_else(|| request.user.clone())
}

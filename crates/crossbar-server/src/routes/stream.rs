//! Streamed answers, for every ingress dialect: each upstream event is encoded and sent as it
//! arrives, so memory stays flat however long the answer, and dropping the body (client gone)
//! drops the upstream request with it. A stream that breaks ends with the dialect's error event.

use std::sync::Arc;

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::BytesMut;
use crossbar_core::ChatStream;
use crossbar_core::chat::StreamEvent;
use crossbar_core::guardrails::{Blocked, Findings, Rules, StreamGuard};
use crossbar_core::ingress::StreamEncode;
use futures::StreamExt;

use crate::metering::Meter;

/// A `text/event-stream` response playing `events` through `encoder`.
pub(crate) fn response(mut events: ChatStream, mut encoder: impl StreamEncode) -> Response {
    let frames = async_stream::stream! {
        let mut buffer = BytesMut::new();
        while let Some(event) = events.next().await {
            if let Err(error) = event.and_then(|event| encoder.event(event, &mut buffer)) {
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
    // Tell buffering proxies (nginx) to pass chunks through as they come.
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

/// Passes a streamed answer's text through the route's guardrails ([`StreamGuard`]): masked
/// text leaves a window behind the upstream; held text is released before any other event and
/// at the end; a `block` ends the stream with an error (the dialect's error event, never a
/// clean end). What was found is counted and noted on the usage record.
pub(crate) fn guarded(mut events: ChatStream, rules: Arc<Rules>, meter: Meter) -> ChatStream {
    if rules.detectors.is_empty() {
        return events;
    }
    Box::pin(async_stream::stream! {
        let mut guard = StreamGuard::new(rules);
        let checked = |outcome: Result<(String, Findings), Blocked>| match outcome {
            Ok((text, findings)) => {
                super::count_findings(&findings);
                meter.guardrails(&findings);
                Ok(text)
            }
            Err(blocked) => {
                super::count_findings(&blocked.findings);
                meter.guardrails(&blocked.findings);
                tracing::info!(rule = blocked.detector.name(), "answer blocked by a guardrail");
                Err(blocked.answer_error())
            }
        };
        while let Some(event) = events.next().await {
            let released = match event {
                Ok(StreamEvent::TextDelta(delta)) => {
                    match checked(guard.push(&delta)) {
                        Ok(text) if text.is_empty() => continue,
                        Ok(text) => Ok(StreamEvent::TextDelta(text)),
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    }
                }
                Err(error) => {
                    yield Err(error);
                    return;
                }
                Ok(other) => {
                    match checked(guard.flush()) {
                        Ok(text) if text.is_empty() => {}
                        Ok(text) => yield Ok(StreamEvent::TextDelta(text)),
                        Err(error) => {
                            yield Err(error);
                            return;
                        }
                    }
                    Ok(other)
                }
            };
            yield released;
        }
        match checked(guard.flush()) {
            Ok(text) if text.is_empty() => {}
            Ok(text) => yield Ok(StreamEvent::TextDelta(text)),
            Err(error) => yield Err(error),
        }
    })
}

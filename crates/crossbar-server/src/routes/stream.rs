//! Streamed answers, for every ingress dialect: each upstream event is encoded and sent as it
//! arrives, so memory stays flat however long the answer, and dropping the body (client gone)
//! drops the upstream request with it. A stream that breaks ends with the dialect's error event.

use axum::body::Body;
use axum::http::{HeaderValue, header};
use axum::response::Response;
use bytes::BytesMut;
use crossbar_core::ChatStream;
use crossbar_core::ingress::StreamEncode;
use futures::StreamExt;

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

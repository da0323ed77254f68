//! Dialect-independent HTTP plumbing: request recording, request lifecycle counting, and
//! streamed responses.

use std::io;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::CONTENT_TYPE;
use axum::http::{HeaderValue, StatusCode, request};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use futures::{Stream, StreamExt};

use crate::RecordedRequest;
use crate::error::{ErrorKind, SimError};
use crate::state::{App, RequestGuard};

/// Largest request body accepted (the size of OpenAI's request limit, enough for images).
const MAX_BODY_BYTES: usize = 32 * 1024 * 1024;

/// Marks a response whose body is a live stream, so that its end (not the handler's return)
/// completes the request.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Streamed;

/// Outermost middleware: records every request (unless recording is off) and counts it as completed or cancelled.
pub(crate) async fn observe(State(app): State<App>, request: Request, next: Next) -> Response {
    let guard = app.begin();
    let (parts, body) = request.into_parts();
    let Ok(bytes) = axum::body::to_bytes(body, MAX_BODY_BYTES).await else {
        app.record(|| recorded(&parts, &Bytes::new()));
        guard.finish();
        let error = SimError::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            ErrorKind::InvalidRequest,
            format!("Request body too large: the limit is {MAX_BODY_BYTES} bytes."),
        );
        return crate::openai::render_error(app.dialect, &error);
    };
    let index = app.record(|| recorded(&parts, &bytes));
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    if parts.extensions.get::<Streamed>().is_none() {
        // Answers are built in memory, so buffering them to record costs nothing observable.
        let body = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        app.record_response(index, &body);
        guard.finish();
        return Response::from_parts(parts, Body::from(body));
    }
    Response::from_parts(parts, Body::from_stream(guarded(body, guard, app, index)))
}

fn recorded(parts: &request::Parts, body: &Bytes) -> RecordedRequest {
    RecordedRequest {
        method: parts.method.to_string(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                let value = String::from_utf8_lossy(value.as_bytes()).into_owned();
                (name.as_str().to_owned(), value)
            })
            .collect(),
        body: serde_json::from_slice(body).ok(),
        response: None,
    }
}

/// Forwards a response body and completes the request at its end (or at a scripted cut); if
/// the server drops it earlier, the client went away and the guard counts a cancellation.
fn guarded(
    body: Body,
    guard: RequestGuard,
    app: App,
    index: Option<usize>,
) -> impl Stream<Item = Result<Bytes, axum::Error>> + Send + 'static {
    async_stream::stream! {
        let mut data = body.into_data_stream();
        while let Some(item) = data.next().await {
            match &item {
                Ok(bytes) => app.record_response(index, bytes),
                Err(_) => {
                    // A scripted cut: the server is done even though the client gets an error.
                    guard.finish();
                    yield item;
                    return;
                }
            }
            yield item;
        }
        guard.finish();
    }
}

/// A `text/event-stream` response playing `frames`.
pub(crate) fn event_stream(
    frames: impl Stream<Item = io::Result<Bytes>> + Send + 'static,
) -> Response {
    let mut response = Body::from_stream(frames).into_response();
    let headers = response.headers_mut();
    headers.insert(
        CONTENT_TYPE,
        HeaderValue::from_static("text/event-stream; charset=utf-8"),
    );
    headers.insert("cache-control", HeaderValue::from_static("no-cache"));
    response.extensions_mut().insert(Streamed);
    response
}

/// A JSON response from an already encoded (possibly deliberately broken) body.
pub(crate) fn json_body(status: StatusCode, body: impl Into<Bytes>) -> Response {
    let mut response = (status, body.into()).into_response();
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

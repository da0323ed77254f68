//! Gives every response an `x-request-id`, so a client report can be matched to our logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use tracing::Instrument;

/// The request's id, for the layers inside (the usage record carries it).
#[derive(Clone, Debug)]
pub(crate) struct RequestId(pub String);

pub(crate) async fn layer(mut request: Request, next: Next) -> Response {
    let id = format!("req_{:024x}", rand::rng().random::<u128>() >> 32);
    request.extensions_mut().insert(RequestId(id.clone()));
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

//! Gives every response an `x-request-id`, so a client report can be matched to our logs.

use axum::extract::Request;
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use rand::Rng;
use tracing::Instrument;

pub async fn layer(request: Request, next: Next) -> Response {
    let id = format!("req_{:024x}", rand::rng().random::<u128>() >> 32);
    let span = tracing::info_span!("request", id = %id, method = %request.method(), path = %request.uri().path());
    let mut response = next.run(request).instrument(span).await;
    if let Ok(value) = HeaderValue::from_str(&id) {
        response.headers_mut().insert("x-request-id", value);
    }
    response
}

//! `POST /v1/embeddings`.

use axum::body::Bytes;
use axum::extract::State;
use axum::extract::rejection::BytesRejection;
use axum::http::{HeaderMap, HeaderValue, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::dialects::openai;
use crossbar_core::router::Prompt;

use super::{body, decode, preferences, routed_headers};
use crate::app::AppState;
use crate::error::ApiError;
use crate::metering::Meter;

pub(crate) async fn create(
    State(state): State<AppState>,
    meter: Meter,
    headers: HeaderMap,
    raw: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    let raw = body(raw, state.max_body_bytes)?;
    let ingress = decode(raw, openai::decode_embedding_request).await?;
    let mut preferences = preferences(&headers)?;
    meter
        .admit(
            &state.router,
            &ingress.request.model,
            false,
            || Prompt::of_embedding(&ingress.request),
            Some(0),
            &mut preferences,
        )
        .await?;
    let routed = state
        .router
        .embed_with(&ingress.request, &preferences)
        .await?;
    meter.routed(
        &routed,
        Some(crossbar_core::chat::Usage {
            input_tokens: routed.value.input_tokens,
            ..Default::default()
        }),
    );
    let expected = ingress.request.input.len();
    if routed.value.vectors.len() != expected {
        return Err(ApiError::from(crossbar_core::Error::bad_upstream(format!(
            "Provider `{}` returned {} vectors for {expected} inputs.",
            routed.deployment.provider.name,
            routed.value.vectors.len()
        ))));
    }
    let mut response = (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        openai::encode_embedding_response(&routed.value, ingress.base64)?,
    )
        .into_response();
    routed_headers(&mut response, &routed);
    Ok(response)
}

//! The admin API, guarded by `admin.token` (`Authorization: Bearer <token>`) and absent
//! without one: `POST /admin/keys` creates a virtual key and shows its secret once,
//! `GET /admin/keys` lists keys (never secrets nor hashes), `DELETE /admin/keys/{id}` revokes
//! a key by id or name.

use std::sync::Arc;

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_store::{KeyRecord, now_ms};
use serde_json::json;

use crate::app::AppState;
use crate::auth::constant_time_eq;
use crate::error::ApiError;
use crate::keys::{self, NewKey, VirtualKeys};

/// A key as the admin API shows it: budgets in USD, no hash.
pub fn key_json(record: &KeyRecord) -> serde_json::Value {
    let usd = |p: Option<u64>| p.map(crossbar_core::pricing::pico_to_usd);
    json!({
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_ms": record.created_ms,
        "revoked_ms": record.revoked_ms,
        "models": record.models,
        "routes": record.routes,
        "rpm": record.limits.rpm,
        "tpm": record.limits.tpm,
        "budget_usd_day": usd(record.limits.budget_day_pusd),
        "budget_usd_month": usd(record.limits.budget_month_pusd),
        "budget_usd_total": usd(record.limits.budget_total_pusd),
    })
}

/// The admin token checked, then the key registry.
fn authorize(state: &AppState, headers: &HeaderMap) -> Result<Arc<VirtualKeys>, ApiError> {
    let Some(token) = state.admin_token.as_deref() else {
        return Err(
            Error::not_found("The admin API is disabled: set `admin.token`.")
                .with_code("admin_disabled")
                .into(),
        );
    };
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return Err(Error::authentication("Incorrect or missing admin token.").into());
    }
    state.virtual_keys.clone().ok_or_else(|| {
        Error::invalid_request("Virtual keys need a store: `store.enabled` is false.").into()
    })
}

pub async fn create_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = authorize(&state, &headers)?;
    let new: NewKey = if body.is_empty() {
        NewKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::invalid_request(format!("Invalid key request: {e}")))?
    };
    let (secret, record) = keys::create(keys.store().as_ref(), new).await?;
    keys.invalidate();
    tracing::info!(key = %record.id, "virtual key created");
    let mut shown = key_json(&record);
    shown["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

pub async fn list_keys(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let keys = authorize(&state, &headers)?;
    let records = keys
        .store()
        .list_keys()
        .await
        .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
    let data: Vec<_> = records.iter().map(key_json).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

pub async fn revoke_key(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = authorize(&state, &headers)?;
    let revoked = keys
        .store()
        .revoke_key(&id, now_ms())
        .await
        .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
    keys.invalidate();
    if !revoked {
        return Err(Error::not_found(format!("No live key `{id}`.")).into());
    }
    tracing::info!(key = %id, "virtual key revoked");
    Ok(Json(json!({ "id": id, "revoked": true })).into_response())
}

//! The admin API, guarded by `admin.token` (`Authorization: Bearer <token>`) and absent
//! without one: `POST /admin/keys` creates a virtual key and shows its secret once,
//! `GET /admin/keys` lists keys (never secrets nor hashes), `DELETE /admin/keys/{id}` revokes
//! a key by id or name, `GET /admin/audit` lists the audit log (newest first; `action`,
//! `target`, `before_id` and `limit` narrow it). Every change is recorded in the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};
use axum::{Json, Router as HttpRouter};
use crossbar_core::Error;
use crossbar_store::{AuditQuery, key_json, now_ms};
use serde::Deserialize;
use serde_json::json;

use crate::app::AppState;
use crate::audit::{self, Who};
use crate::auth::constant_time_eq;
use crate::error::ApiError;
use crate::keys::{self, NewKey, VirtualKeys};

/// The admin API's routes, each behind the admin token. Other paths under `/admin/` are
/// unknown URLs, answered without asking for a gateway key: the admin API's callers hold the
/// admin token, not a key.
pub(crate) fn routes(state: &AppState) -> HttpRouter<AppState> {
    HttpRouter::new()
        .route("/admin/keys", post(create_key).get(list_keys))
        .route("/admin/keys/{id}", delete(revoke_key))
        .route("/admin/audit", get(list_audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
        .route("/admin/{*rest}", any(crate::routes::not_found))
}

/// Admits the admin token; without one configured the admin API does not exist.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    let Some(token) = state.admin_token.as_deref() else {
        return ApiError::from(
            Error::not_found("The admin API is disabled: set `admin.token`.")
                .with_code("admin_disabled"),
        )
        .into_response();
    };
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .unwrap_or_default();
    if !constant_time_eq(presented.as_bytes(), token.as_bytes()) {
        return ApiError::from(Error::authentication("Incorrect or missing admin token."))
            .into_response();
    }
    next.run(request).await
}

/// The key registry, which needs a store.
fn registry(state: &AppState) -> Result<Arc<VirtualKeys>, ApiError> {
    state.virtual_keys.clone().ok_or_else(|| {
        Error::invalid_request("Virtual keys need a store: `store.enabled` is false.").into()
    })
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

async fn create_key(
    State(state): State<AppState>,
    peer: Peer,
    body: Bytes,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let new: NewKey = if body.is_empty() {
        NewKey::default()
    } else {
        serde_json::from_slice(&body)
            .map_err(|e| Error::invalid_request(format!("Invalid key request: {e}")))?
    };
    let (secret, record) = keys::create(keys.store().as_ref(), new).await?;
    keys.invalidate();
    tracing::info!(key = %record.id, "virtual key created");
    let view = key_json(&record);
    audit::record(
        &state,
        Who::admin(peer),
        "key.create",
        &record.id,
        None,
        Some(view),
    )
    .await;
    let mut shown = key_json(&record);
    shown["key"] = json!(secret);
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn list_keys(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let records = keys
        .store()
        .list_keys()
        .await
        .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
    let data: Vec<_> = records.iter().map(key_json).collect();
    Ok(Json(json!({ "data": data })).into_response())
}

async fn revoke_key(
    State(state): State<AppState>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let unavailable = |e: crossbar_store::StoreError| {
        Error::internal(format!("The key store is unavailable: {e}"))
    };
    // The key as it was, for the audit log: the live one the id or name names.
    let before = keys
        .store()
        .list_keys()
        .await
        .map_err(unavailable)?
        .into_iter()
        .find(|k| k.revoked_ms.is_none() && (k.id == id || k.name.as_deref() == Some(&id)));
    let at = now_ms();
    let revoked = keys
        .store()
        .revoke_key(&id, at)
        .await
        .map_err(unavailable)?;
    keys.invalidate();
    if !revoked {
        return Err(Error::not_found(format!("No live key `{id}`.")).into());
    }
    tracing::info!(key = %id, "virtual key revoked");
    if let Some(before) = before {
        let mut after = before.clone();
        after.revoked_ms = Some(at);
        audit::record(
            &state,
            Who::admin(peer),
            "key.revoke",
            &before.id,
            Some(key_json(&before)),
            Some(key_json(&after)),
        )
        .await;
    }
    Ok(Json(json!({ "id": id, "revoked": true })).into_response())
}

/// `GET /admin/audit` query: all optional.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    action: Option<String>,
    target: Option<String>,
    before_id: Option<i64>,
    /// Default 100, at most 1,000.
    limit: Option<u32>,
}

pub(crate) async fn list_audit(
    State(state): State<AppState>,
    params: Result<Query<AuditParams>, axum::extract::rejection::QueryRejection>,
) -> Result<Response, ApiError> {
    let Query(params) =
        params.map_err(|e| Error::invalid_request(format!("Invalid audit query: {e}")))?;
    let Some(audit) = &state.audit else {
        return Err(Error::invalid_request(
            "The audit log needs a store: `store.enabled` is false.",
        )
        .into());
    };
    let query = AuditQuery {
        action: params.action,
        target: params.target,
        before_id: params.before_id,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
    };
    let entries = audit
        .list_audit(&query)
        .await
        .map_err(|e| Error::internal(format!("The audit log is unavailable: {e}")))?;
    Ok(Json(json!({ "data": entries })).into_response())
}

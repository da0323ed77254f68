//! `/readyz`: whether this replica can take traffic, for a load balancer or a Kubernetes
//! readiness probe, as distinct from `/healthz` (the process is alive). A replica whose
//! configuration loaded and whose providers were built serves; Redis or the store being out of
//! reach degrades it (limits fall back to this replica's share, usage records to the spool)
//! without taking it out of rotation, and the answer says so.

use std::time::Duration;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use schemars::JsonSchema;
use serde::Serialize;

use crate::state::AppState;

/// How long a dependency may take to answer a readiness check.
const PROBE_TIMEOUT: Duration = Duration::from_millis(500);

/// What `/readyz` answers (with 200, or 503 when `not_ready`).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Readiness {
    /// `ready`, `degraded` (serving without Redis or the store) or `not_ready`.
    #[schemars(extend("enum" = ["ready", "degraded", "not_ready"]))]
    status: &'static str,
    /// Deployments the router has.
    deployments: usize,
    /// Redis: `ok`, `unreachable`, or `off` when not configured.
    #[schemars(extend("enum" = ["ok", "unreachable", "off"]))]
    shared_state: &'static str,
    /// The store, as `shared_state`.
    #[schemars(extend("enum" = ["ok", "unreachable", "off"]))]
    store: &'static str,
    /// Usage records waiting in the spool for the store.
    spooled_usage_records: u64,
}

/// `ok`, `unreachable`, or `off` when not configured.
async fn probe<E>(check: Option<impl Future<Output = Result<(), E>>>) -> &'static str {
    let Some(check) = check else {
        return "off";
    };
    match tokio::time::timeout(PROBE_TIMEOUT, check).await {
        Ok(Ok(())) => "ok",
        _ => "unreachable",
    }
}

pub(crate) async fn ready(State(state): State<AppState>) -> Response {
    let deployments = state.router.deployments().count();
    let shared = probe(state.shared.as_ref().map(|shared| shared.ping())).await;
    let store = probe(
        state
            .virtual_keys
            .as_ref()
            .map(|keys| async move { keys.store().has_keys().await.map(|_| ()) }),
    )
    .await;
    let spooled = state
        .metering
        .writer()
        .map_or(0, crossbar_store::UsageWriter::spooled);
    let degraded = shared == "unreachable" || store == "unreachable";
    let (status, code) = if deployments == 0 {
        ("not_ready", StatusCode::SERVICE_UNAVAILABLE)
    } else if degraded {
        ("degraded", StatusCode::OK)
    } else {
        ("ready", StatusCode::OK)
    };
    let body = Readiness {
        status,
        deployments,
        shared_state: shared,
        store,
        spooled_usage_records: spooled,
    };
    (code, Json(body)).into_response()
}

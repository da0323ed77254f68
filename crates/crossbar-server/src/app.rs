//! Assembles routes and layers: the one place the gateway's request path is put together.

use std::sync::Arc;

use axum::Router as HttpRouter;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{delete, get, post};
use crossbar_core::ingress::{AnthropicMessages, OpenAiChat};
use crossbar_core::router::Router;
use crossbar_store::DashboardStore;

use crate::keys::VirtualKeys;
use crate::metering::Metering;
use crate::{admin, auth, metering, metrics, request_id, routes};

#[derive(Clone)]
pub struct AppState {
    pub router: Arc<Router>,
    /// Gateway keys; empty means open.
    pub keys: Arc<Vec<String>>,
    pub max_body_bytes: usize,
    /// Where usage records go.
    pub metering: Arc<Metering>,
    /// Keys from the store; `None` without a store.
    pub virtual_keys: Option<Arc<VirtualKeys>>,
    /// Guards `/admin/...`; `None` disables it.
    pub admin_token: Option<Arc<str>>,
    /// Stored Responses API answers: the store's table, or process memory without a store.
    pub responses: Arc<dyn crossbar_store::ResponseStore>,
    /// The dashboard's reads (the same store as `virtual_keys`); `None` without a store.
    pub dashboard: Option<Arc<dyn DashboardStore>>,
}

pub fn app(state: AppState) -> HttpRouter {
    HttpRouter::new()
        .route(
            "/v1/chat/completions",
            post(routes::chat_like::serve::<OpenAiChat>),
        )
        .route("/v1/embeddings", post(routes::embeddings::create))
        .route(
            "/v1/messages",
            post(routes::chat_like::serve::<AnthropicMessages>),
        )
        .route(
            "/v1/messages/count_tokens",
            post(routes::messages::count_tokens),
        )
        .route(
            "/v1/crossbar/deployments",
            get(routes::crossbar::deployments),
        )
        .merge(routes::dashboard::routes(&state))
        .route("/v1/responses", post(routes::responses::create))
        .route(
            "/v1/responses/{id}",
            get(routes::responses::retrieve).delete(routes::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(routes::responses::input_items),
        )
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{id}", get(routes::models::retrieve))
        .route("/healthz", get(routes::health))
        .route("/metrics", get(metrics::render))
        .route("/admin/keys", post(admin::create_key).get(admin::list_keys))
        .route("/admin/keys/{id}", delete(admin::revoke_key))
        .fallback(routes::not_found)
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        .layer(middleware::from_fn_with_state(state.clone(), auth::layer))
        .layer(middleware::from_fn(request_id::layer))
        // Outermost: times the whole request and sees its `x-request-id`.
        .layer(middleware::from_fn_with_state(
            state.clone(),
            metering::layer,
        ))
        .with_state(state)
}

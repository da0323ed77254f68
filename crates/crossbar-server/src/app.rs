//! Assembles routes and layers: the one place the gateway's request path is put together.
//!
//! Routes come in groups, and each group carries its own layers: who may call it (an
//! [`auth::Gate`]) and, for the model APIs that spend money, the meter with the API's name.
//! A wrong method on a route answers 405 behind the same layers as the route (as it always
//! has); an unknown URL answers 404 behind the gateway keys.

use axum::Router as HttpRouter;
use axum::extract::DefaultBodyLimit;
use axum::middleware;
use axum::routing::{MethodRouter, get, post};
use crossbar_core::ingress::{AnthropicMessages, OpenAiChat};

pub use crate::state::AppState;

use crate::auth::Gate;
use crate::{admin, auth, metering, metrics, openapi, request_id, routes};

pub fn app(state: AppState) -> HttpRouter {
    let s = &state;
    let model_apis = HttpRouter::new()
        .route(
            "/v1/messages/count_tokens",
            post(routes::messages::count_tokens),
        )
        .route(
            "/v1/responses/{id}",
            get(routes::responses::retrieve).delete(routes::responses::delete),
        )
        .route(
            "/v1/responses/{id}/input_items",
            get(routes::responses::input_items),
        )
        .route("/v1/models", get(routes::models::list))
        .route("/v1/models/{id}", get(routes::models::retrieve));
    // Built once (it is static), before the first request asks for it.
    openapi::document();
    let groups = groups()
        .into_iter()
        .fold(HttpRouter::new(), |router, (gate, table)| {
            router.merge(gated(s, gate, openapi::mount(table)))
        });
    HttpRouter::new()
        .merge(metered(
            s,
            "chat",
            "/v1/chat/completions",
            post(routes::chat_like::serve::<OpenAiChat>),
        ))
        .merge(metered(
            s,
            "messages",
            "/v1/messages",
            post(routes::chat_like::serve::<AnthropicMessages>),
        ))
        .merge(metered(
            s,
            "embeddings",
            "/v1/embeddings",
            post(routes::embeddings::create),
        ))
        .merge(metered(
            s,
            "responses",
            "/v1/responses",
            post(routes::responses::create),
        ))
        .merge(gated(s, Gate::Keys, model_apis))
        .merge(groups)
        // Both check the admin token themselves.
        .merge(gated(s, Gate::Open, routes::dashboard::routes(s)))
        // With `/admin/reload` among them.
        .merge(gated(s, Gate::Open, admin::routes(s)))
        // Open to load balancers too.
        .route("/healthz", get(routes::health))
        .route("/readyz", get(routes::ready::ready))
        // Crossbar's own API described (no secrets in it).
        .route("/openapi.json", get(openapi::serve))
        // Any other URL: the gateway keys, then 404.
        .merge(
            HttpRouter::new()
                .fallback(routes::not_found)
                .layer(middleware::from_fn_with_state(
                    (state.clone(), Gate::Keys),
                    auth::layer,
                )),
        )
        .method_not_allowed_fallback(routes::method_not_allowed)
        .layer(DefaultBodyLimit::max(state.max_body_bytes))
        // Outermost: every answer, refusals included, carries its `x-request-id`.
        .layer(middleware::from_fn(request_id::layer))
        .with_state(state)
}

/// The app's groups of routes with their gates, each row described for `/openapi.json`.
pub(crate) fn groups() -> Vec<(Gate, Vec<openapi::Endpoint>)> {
    vec![
        // The router's live view and the config's version: for gateway keys, and for the
        // dashboard (admin token).
        (Gate::KeysOrAdmin, routes::crossbar::endpoints()),
        // Agent runs: a key's own, or everyone's for the admin.
        (Gate::KeysOrAdmin, routes::runs::endpoints()),
        // Per-key spend: the admin's, like the admin API.
        (
            Gate::Metrics,
            vec![(
                "GET",
                "/metrics",
                get(metrics::render),
                openapi::Doc::text(
                    "Prometheus metrics (per-key spend among them: the admin token once keys \
                     exist).",
                    "text/plain",
                )
                .errors(&[401]),
            )],
        ),
    ]
}

/// `routes` behind `gate`, their wrong methods too.
fn gated(state: &AppState, gate: Gate, routes: HttpRouter<AppState>) -> HttpRouter<AppState> {
    routes
        .method_not_allowed_fallback(routes::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), gate),
            auth::layer,
        ))
}

/// A model API that spends money: the gateway keys, inside a meter that records each request
/// as `api` (the meter is outermost, so refusals are counted and rate limits apply).
fn metered(
    state: &AppState,
    api: &'static str,
    path: &str,
    methods: MethodRouter<AppState>,
) -> HttpRouter<AppState> {
    gated(state, Gate::Keys, HttpRouter::new().route(path, methods)).route_layer(
        middleware::from_fn_with_state((state.clone(), api), metering::layer),
    )
}

//! The web dashboard: static assets embedded in the binary at `/ui`, and the JSON endpoints
//! behind its pages under `/v1/crossbar/...` (the same data, for scripts).
//!
//! Who may look: an open gateway (no keys) serves its own machine, as it does for the API; once
//! keys exist, only the admin token opens it, as `Authorization: Bearer <token>` or as the
//! password of HTTP Basic auth (any user name), which lets a browser ask for it once and send it
//! with every poll. With keys but no admin token the dashboard does not exist.

mod api;
mod overview;
mod ui;

use axum::Router as HttpRouter;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use crossbar_core::Error;

use crate::app::AppState;
use crate::auth::admin_presented;
use crate::error::ApiError;

const REALM: &str = "Basic realm=\"crossbar dashboard\", charset=\"UTF-8\"";

/// The dashboard's routes, each behind its guard (the app mounts them behind the open
/// gateway's rule too).
pub(crate) fn routes(state: &AppState) -> HttpRouter<AppState> {
    HttpRouter::new()
        .route("/ui", get(ui::index))
        .route("/ui/", get(ui::to_index))
        .route("/ui/{file}", get(ui::asset))
        .route("/v1/crossbar/overview", get(api::overview))
        .route("/v1/crossbar/requests", get(api::requests))
        .route("/v1/crossbar/requests/{id}", get(api::request))
        .route("/v1/crossbar/keys", get(api::keys))
        .route("/v1/crossbar/whatif", get(api::whatif))
        .route("/v1/crossbar/runs", get(api::runs))
        .route("/v1/crossbar/runs/{id}", get(api::run))
        // The admin API's list, for the dashboard's audit page (behind the dashboard's guard).
        .route("/v1/crossbar/audit", get(crate::admin::list_audit))
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
}

/// Admits the admin, or anyone on this machine while the gateway has no keys.
async fn guard(State(state): State<AppState>, request: Request, next: Next) -> Response {
    if admin_presented(&state, request.headers()) {
        return next.run(request).await;
    }
    let encode = crate::error::encoder_of_path(request.uri().path());
    let reject = |error: Error| ApiError { error, encode }.into_response();
    let keyed = match &state.virtual_keys {
        Some(keys) => match keys.any_keys().await {
            Ok(live) => live,
            Err(error) => return reject(error),
        },
        None => false,
    } || !state.keys.is_empty();
    if !keyed {
        // The same rule as the API's (the app's auth layer applies it first): this machine
        // only, by a loopback name, not for a foreign page.
        return match crate::auth::open_gateway_admits(&request) {
            Ok(()) => next.run(request).await,
            Err((error, _)) => reject(error),
        };
    }
    if state.admin_token.is_none() {
        return reject(
            Error::not_found("The dashboard needs `admin.token` once keys exist.")
                .with_code("admin_disabled"),
        );
    }
    let mut response = reject(Error::authentication(
        "The dashboard needs the admin token (Bearer, or as the Basic-auth password).",
    ));
    // Lets a browser ask for the token once and then send it with every request.
    response
        .headers_mut()
        .insert(header::WWW_AUTHENTICATE, HeaderValue::from_static(REALM));
    debug_assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    response
}

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
use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use base64::Engine as _;
use crossbar_core::Error;

use crate::app::AppState;
use crate::auth::constant_time_eq;
use crate::error::ApiError;

/// The JSON endpoints this module serves; each checks the admin token itself.
const API_PATHS: &[&str] = &[
    "/v1/crossbar/overview",
    "/v1/crossbar/requests",
    "/v1/crossbar/keys",
    "/v1/crossbar/whatif",
    "/v1/crossbar/runs",
];

/// The router's live view, also open to gateway keys (see `routes::crossbar`).
const DEPLOYMENTS_PATH: &str = "/v1/crossbar/deployments";

const REALM: &str = "Basic realm=\"crossbar dashboard\", charset=\"UTF-8\"";

pub fn routes(state: &AppState) -> HttpRouter<AppState> {
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
        .route_layer(middleware::from_fn_with_state(state.clone(), guard))
}

fn is_dashboard_path(path: &str) -> bool {
    path == "/ui"
        || path.starts_with("/ui/")
        || API_PATHS
            .iter()
            .any(|p| path == *p || path.strip_prefix(p).is_some_and(|r| r.starts_with('/')))
}

/// Whether the gateway-key check steps aside: for the dashboard's own paths (guarded here),
/// and for the deployments view when the admin token is presented, so the dashboard can show it.
pub(crate) fn skips_gateway_keys(state: &AppState, request: &Request) -> bool {
    let path = request.uri().path();
    is_dashboard_path(path)
        || (path == DEPLOYMENTS_PATH && admin_presented(state, request.headers()))
}

/// The admin token, as a bearer token or a Basic-auth password.
pub(crate) fn admin_presented(state: &AppState, headers: &HeaderMap) -> bool {
    let Some(token) = state.admin_token.as_deref() else {
        return false;
    };
    let Some(value) = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let presented = if let Some(bearer) = value.strip_prefix("Bearer ") {
        bearer.trim().to_owned()
    } else if let Some(basic) = value.strip_prefix("Basic ") {
        let decoded = base64::engine::general_purpose::STANDARD
            .decode(basic.trim())
            .ok()
            .and_then(|bytes| String::from_utf8(bytes).ok())
            .unwrap_or_default();
        match decoded.split_once(':') {
            Some((_, password)) => password.to_owned(),
            None => return false,
        }
    } else {
        return false;
    };
    constant_time_eq(presented.as_bytes(), token.as_bytes())
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
        // The same rule as the API's (the auth layer applies it first): this machine only, by
        // a loopback name, not for a foreign page.
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

#[cfg(test)]
mod tests {
    use super::is_dashboard_path;

    #[test]
    fn only_the_dashboard_paths_guard_themselves() {
        for path in [
            "/ui",
            "/ui/",
            "/ui/app.js",
            "/v1/crossbar/overview",
            "/v1/crossbar/requests/req_1",
            "/v1/crossbar/runs",
        ] {
            assert!(is_dashboard_path(path), "{path}");
        }
        for path in [
            "/uix",
            "/v1/crossbar/deployments",
            "/v1/crossbar/overviews",
            "/v1/crossbar/keysmith",
            "/v1/chat/completions",
        ] {
            assert!(!is_dashboard_path(path), "{path}");
        }
    }
}

//! The web dashboard: static assets embedded in the binary at `/ui`, and the JSON endpoints
//! behind its pages under `/v1/crossbar/...` (the same data, for scripts).
//!
//! Who may look: an open gateway (no keys) serves its own machine, as it does for the API; once
//! keys exist, only an admin token opens it (the root `admin.token` or a scoped one from the
//! store), as `Authorization: Bearer <token>` or as the password of HTTP Basic auth (any user
//! name), which lets a browser ask for it once and send it with every poll. With keys but no
//! admin token the dashboard does not exist. A scoped token sees what its role may
//! ([`crate::auth::allowed`]): a team admin its own team's keys, usage, requests and audit
//! entries; `GET /v1/crossbar/whoami` tells the page which role it has.

mod api;
mod overview;
mod ui;

use std::sync::Arc;

use axum::Router as HttpRouter;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, get};
use crossbar_core::Error;

use crate::app::AppState;
use crate::auth::{Access, Principal, Rule};
use crate::error::ApiError;
use crate::openapi::Doc;

const REALM: &str = "Basic realm=\"crossbar dashboard\", charset=\"UTF-8\"";

/// Every dashboard endpoint with its rule: the list the router and the guard are built from.
pub(crate) fn endpoints() -> Vec<(Rule, MethodRouter<AppState>)> {
    documented()
        .into_iter()
        .map(|(rule, methods, _)| (rule, methods))
        .collect()
}

/// [`endpoints`] with each one's description, for `/openapi.json`.
pub(crate) fn documented() -> Vec<(Rule, MethodRouter<AppState>, Doc)> {
    let read = |path, access| Rule {
        method: "GET",
        path,
        access,
    };
    // Bad query; no admin token; a role that may not; the dashboard disabled or an object
    // that is not there (or not the caller's); the store out of reach.
    const ERRORS: &[u16] = &[400, 401, 403, 404, 500];
    let json = |doc: Doc| doc.errors(ERRORS);
    vec![
        (
            read("/ui", Access::TeamRead),
            get(ui::index),
            Doc::text("The dashboard's page.", "text/html").errors(&[401, 403, 404]),
        ),
        (
            read("/ui/", Access::TeamRead),
            get(ui::to_index),
            Doc::redirect("Redirects to `/ui`.").errors(&[401, 403, 404]),
        ),
        (
            read("/ui/{file}", Access::TeamRead),
            get(ui::asset),
            Doc::text("One of the dashboard's files (script, style, icon).", "*/*")
                .errors(&[401, 403, 404]),
        ),
        (
            read("/v1/crossbar/overview", Access::TeamRead),
            get(api::overview),
            json(
                Doc::answers::<overview::Overview>(
                    "Totals, groups and a time series over a recent window.",
                )
                .query::<api::OverviewQuery>(),
            ),
        ),
        (
            read("/v1/crossbar/requests", Access::TeamRead),
            get(api::requests),
            json(
                Doc::answers::<api::Requests>("Recorded requests, newest first, filtered.")
                    .query::<api::RequestsQuery>(),
            ),
        ),
        (
            read("/v1/crossbar/requests/{id}", Access::TeamRead),
            get(api::request),
            json(Doc::answers::<api::RequestView>(
                "One recorded request, its attempts on a timeline, and its bodies when kept.",
            )),
        ),
        (
            read("/v1/crossbar/keys", Access::TeamRead),
            get(api::keys),
            json(Doc::answers::<api::Keys>(
                "Each key's limits and spend (today, this month, in total, last minute).",
            )),
        ),
        (
            read("/v1/crossbar/whatif", Access::TeamRead),
            get(api::whatif),
            json(
                Doc::answers::<api::Whatif>(
                    "The recorded traffic re-priced on every deployment of its model.",
                )
                .query::<api::WhatifQuery>(),
            ),
        ),
        // The admin API's list, for the dashboard's audit page (behind the dashboard's guard).
        (
            read("/v1/crossbar/audit", Access::TeamRead),
            get(crate::admin::list_audit),
            json(
                Doc::answers::<crate::admin::Data<crossbar_store::AuditEntry>>(
                    "The audit log, newest first.",
                )
                .query::<crate::admin::AuditParams>(),
            ),
        ),
        (
            read("/v1/crossbar/teams", Access::TeamRead),
            get(api::teams),
            json(Doc::answers::<api::Teams>(
                "Each team with its limits and what its keys spent.",
            )),
        ),
        (
            read("/v1/crossbar/whoami", Access::TeamRead),
            get(api::whoami),
            json(Doc::answers::<api::Whoami>(
                "The caller's role and team, for the page.",
            )),
        ),
        // Shadow traffic's figures beside their primaries' (the gateway's whole traffic).
        (
            read("/v1/crossbar/shadow", Access::Read),
            get(crate::shadow::list),
            json(Doc::answers::<crate::shadow::Shadows>(
                "Each shadow deployment's figures beside its primary's.",
            )),
        ),
    ]
}

/// The dashboard's routes, each behind its guard (the app mounts them behind the open
/// gateway's rule too).
pub(crate) fn routes(state: &AppState) -> HttpRouter<AppState> {
    let table = endpoints();
    let rules: Arc<[Rule]> = table.iter().map(|(rule, _)| *rule).collect();
    table
        .into_iter()
        .fold(HttpRouter::new(), |router, (rule, methods)| {
            router.route(rule.path, methods)
        })
        .route_layer(middleware::from_fn_with_state(
            (state.clone(), rules),
            guard,
        ))
}

/// Admits an admin token as its role allows, or anyone on this machine while the gateway has
/// no keys (as the root admin).
async fn guard(
    State((state, rules)): State<(AppState, Arc<[Rule]>)>,
    request: Request,
    next: Next,
) -> Response {
    let encode = crate::error::encoder_of_path(request.uri().path());
    let reject = |error: Error| ApiError { error, encode }.into_response();
    match crate::auth::admin_principal(&state, request.headers()).await {
        Ok(Some(principal)) => {
            return crate::auth::authorize(principal, &rules, request, next).await;
        }
        Ok(None) => {}
        Err(error) => return reject(error),
    }
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
            Ok(()) => crate::auth::authorize(Principal::root(), &rules, request, next).await,
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

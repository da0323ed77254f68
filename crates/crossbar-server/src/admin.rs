//! The admin API, guarded by `admin.token` (`Authorization: Bearer <token>`) or a scoped admin
//! token from the store, and absent without `admin.token`:
//!
//! - keys: `POST /admin/keys` creates a virtual key (in a `team` when given) and shows its
//!   secret once, `GET /admin/keys` lists keys (never secrets nor hashes),
//!   `DELETE /admin/keys/{id}` revokes a key by id or name;
//! - teams: `POST /admin/teams`, `GET /admin/teams`, `GET|PATCH|DELETE /admin/teams/{id}`;
//! - scoped tokens: `POST /admin/tokens` (secret shown once), `GET /admin/tokens`,
//!   `DELETE /admin/tokens/{id}`;
//! - `GET /admin/audit` lists the audit log (newest first; `action`, `target`, `before_id`
//!   and `limit` narrow it); `POST /admin/reload` reloads the configuration.
//!
//! Each endpoint is declared once, with its [`Rule`]: the guard lets a token's role through
//! only as [`crate::auth::allowed`] says, and a team admin sees its own team's objects only
//! (another team's are 404s). Every change is recorded in the audit log.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Extension;
use axum::body::Bytes;
use axum::extract::{ConnectInfo, Path, Query, Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{MethodRouter, any, delete, get, patch, post};
use axum::{Json, Router as HttpRouter};
use crossbar_core::Error;
use crossbar_store::{AuditEntry, AuditQuery, KeyView, key_json};
use schemars::JsonSchema;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::app::AppState;
use crate::audit;
use crate::auth::{Access, Principal, Rule};
use crate::error::ApiError;
use crate::keys::teams::{self, NewTeam, TeamPatch, TeamView, team_json};
use crate::keys::tokens::{self, NewToken, TokenView, token_json};
use crate::keys::{self, NewKey, VirtualKeys};
use crate::openapi::Doc;

/// Every admin endpoint with its rule: the one list the router and the guard are built from.
pub(crate) fn endpoints() -> Vec<(Rule, MethodRouter<AppState>)> {
    documented()
        .into_iter()
        .map(|(rule, methods, _)| (rule, methods))
        .collect()
}

/// [`endpoints`] with each one's description, for `/openapi.json`.
pub(crate) fn documented() -> Vec<(Rule, MethodRouter<AppState>, Doc)> {
    let rule = |method, path, access| Rule {
        method,
        path,
        access,
    };
    // Every admin endpoint can answer these (bad input; no or a wrong token; a role that may
    // not; the admin API disabled, or an object that is not there or not the caller's; the
    // store out of reach).
    const ERRORS: &[u16] = &[400, 401, 403, 404, 500];
    let doc = |doc: Doc| doc.errors(ERRORS);
    vec![
        (
            rule("POST", "/admin/keys", Access::TeamWrite),
            post(create_key),
            doc(Doc::answers::<CreatedKey>(
                "Creates a virtual key; its secret is in this answer only.",
            )
            .body::<NewKey>()
            .ok(&[201])),
        ),
        (
            rule("GET", "/admin/keys", Access::TeamRead),
            get(list_keys),
            doc(Doc::answers::<Data<KeyView>>(
                "Lists the keys (a team admin's team's only), never secrets.",
            )),
        ),
        (
            rule("DELETE", "/admin/keys/{id}", Access::TeamWrite),
            delete(revoke_key),
            doc(Doc::answers::<Revoked>("Revokes a live key by id or name.")),
        ),
        (
            rule("POST", "/admin/teams", Access::Write),
            post(create_team),
            doc(Doc::answers::<TeamView>("Creates a team.")
                .body::<NewTeam>()
                .ok(&[201])),
        ),
        (
            rule("GET", "/admin/teams", Access::TeamRead),
            get(list_teams),
            doc(Doc::answers::<Data<TeamView>>("Lists the teams.")),
        ),
        (
            rule("GET", "/admin/teams/{id}", Access::TeamRead),
            get(show_team),
            doc(Doc::answers::<TeamWithKeys>(
                "One team (by id or name) with its keys.",
            )),
        ),
        (
            rule("PATCH", "/admin/teams/{id}", Access::Write),
            patch(update_team),
            doc(Doc::answers::<TeamView>(
                "Changes a team: absent fields stay, `null` clears a limit.",
            )
            .body::<TeamPatch>()),
        ),
        (
            rule("DELETE", "/admin/teams/{id}", Access::Write),
            delete(delete_team),
            doc(Doc::answers::<Deleted>(
                "Deletes a team that has no live keys.",
            )),
        ),
        (
            rule("POST", "/admin/tokens", Access::Write),
            post(create_token),
            doc(Doc::answers::<CreatedToken>(
                "Creates a scoped admin token; its secret is in this answer only.",
            )
            .body::<NewToken>()
            .ok(&[201])),
        ),
        (
            rule("GET", "/admin/tokens", Access::Read),
            get(list_tokens),
            doc(Doc::answers::<Data<TokenView>>(
                "Lists the scoped admin tokens.",
            )),
        ),
        (
            rule("DELETE", "/admin/tokens/{id}", Access::Write),
            delete(revoke_token),
            doc(Doc::answers::<Revoked>(
                "Revokes a live admin token by id or name.",
            )),
        ),
        (
            rule("GET", "/admin/audit", Access::TeamRead),
            get(list_audit),
            doc(
                Doc::answers::<Data<AuditEntry>>("The audit log, newest first.")
                    .query::<AuditParams>(),
            ),
        ),
        // The handler also asks for the root token itself.
        (
            rule("POST", "/admin/reload", Access::Write),
            post(crate::routes::config::reload),
            doc(Doc::answers::<crate::routes::config::ReloadView>(
                "Reloads the configuration file now (the root admin token only); a file that \
                 does not validate changes nothing and answers 400 saying why.",
            )),
        ),
    ]
}

/// A list: `{"data": [...]}`.
#[derive(Debug, Serialize, JsonSchema)]
#[schemars(rename = "{T}Data")]
pub(crate) struct Data<T> {
    pub data: Vec<T>,
}

/// A new key, with its secret (shown this once).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CreatedKey {
    #[serde(flatten)]
    view: KeyView,
    /// The secret: the store keeps only its hash.
    key: String,
}

/// A new admin token, with its secret (shown this once).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct CreatedToken {
    #[serde(flatten)]
    view: TokenView,
    /// The secret: the store keeps only its hash.
    token: String,
}

/// A team with its keys (revoked ones included).
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct TeamWithKeys {
    #[serde(flatten)]
    team: TeamView,
    keys: Vec<KeyView>,
}

/// What a revocation answers: the id or name asked for.
#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Revoked {
    id: String,
    revoked: bool,
}

#[derive(Debug, Serialize, JsonSchema)]
pub(crate) struct Deleted {
    id: String,
    deleted: bool,
}

/// The admin API's routes, each behind the guard. Other paths under `/admin/` are unknown
/// URLs, answered without asking for a gateway key: the admin API's callers hold an admin
/// token, not a key.
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
        .route("/admin/{*rest}", any(crate::routes::not_found))
}

/// Admits the root admin token or a live scoped token whose role the endpoint's rule allows;
/// without `admin.token` configured the admin API does not exist.
async fn guard(
    State((state, rules)): State<(AppState, Arc<[Rule]>)>,
    request: Request,
    next: Next,
) -> Response {
    if state.admin_token.is_none() {
        return ApiError::from(
            Error::not_found("The admin API is disabled: set `admin.token`.")
                .with_code("admin_disabled"),
        )
        .into_response();
    }
    match crate::auth::admin_principal(&state, request.headers()).await {
        Ok(Some(principal)) => crate::auth::authorize(principal, &rules, request, next).await,
        Ok(None) => ApiError::from(Error::authentication("Incorrect or missing admin token."))
            .into_response(),
        Err(error) => ApiError::from(error).into_response(),
    }
}

/// The key registry, which needs a store.
fn registry(state: &AppState) -> Result<Arc<VirtualKeys>, ApiError> {
    state.virtual_keys.clone().ok_or_else(|| {
        Error::invalid_request("Virtual keys need a store: `store.enabled` is false.").into()
    })
}

fn unavailable(error: crossbar_store::StoreError) -> ApiError {
    Error::internal(format!("The key store is unavailable: {error}")).into()
}

type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

/// Appends an audit entry for a change `principal` made from `peer`.
async fn record_change(
    state: &AppState,
    principal: &Principal,
    peer: Peer,
    action: &str,
    target: &str,
    before: Option<Value>,
    after: Option<Value>,
) {
    let source = peer.map_or_else(
        || "unknown".to_owned(),
        |Extension(ConnectInfo(addr))| addr.ip().to_string(),
    );
    audit::record_as(
        state,
        principal.actor.clone(),
        source,
        action,
        target,
        before,
        after,
    )
    .await;
}

/// A JSON body, or the default for an empty one.
fn body<T: DeserializeOwned + Default>(body: &Bytes, what: &str) -> Result<T, ApiError> {
    if body.is_empty() {
        return Ok(T::default());
    }
    serde_json::from_slice(body)
        .map_err(|e| Error::invalid_request(format!("Invalid {what} request: {e}")).into())
}

/// Another team's object, to a team admin: as if it did not exist.
fn hidden(what: &str, id: &str) -> ApiError {
    Error::not_found(format!("No {what} `{id}`.")).into()
}

async fn create_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let mut new: NewKey = body(&bytes, "key")?;
    if let Some(own) = principal.confined() {
        match new.team.as_deref() {
            None => new.team = Some(own.to_owned()),
            Some(named) => {
                let team = teams::get(keys.store().as_ref(), named).await?;
                if team.is_none_or(|t| t.id != own) {
                    return Err(Error::permission_denied(
                        format!("A team admin creates keys in its own team (`{own}`) only."),
                        "role_forbidden",
                    )
                    .with_param("team")
                    .into());
                }
            }
        }
    }
    let (secret, record) = keys::create(keys.store().as_ref(), new).await?;
    keys.invalidate();
    tracing::info!(key = %record.id, "virtual key created");
    let view = key_json(&record);
    record_change(
        &state,
        &principal,
        peer,
        "key.create",
        &record.id,
        None,
        Some(view),
    )
    .await;
    let shown = CreatedKey {
        view: KeyView::from(&record),
        key: secret,
    };
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn list_keys(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let records = keys.store().list_keys().await.map_err(unavailable)?;
    let data = records
        .iter()
        .filter(|k| principal.sees(k.team_id.as_deref()))
        .map(KeyView::from)
        .collect();
    Ok(Json(Data { data }).into_response())
}

async fn revoke_key(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    // The key as it was, for the audit log: the live one the id or name names (and that the
    // caller may see).
    let Some(before) = keys
        .store()
        .list_keys()
        .await
        .map_err(unavailable)?
        .into_iter()
        .find(|k| {
            k.revoked_ms.is_none()
                && (k.id == id || k.name.as_deref() == Some(&id))
                && principal.sees(k.team_id.as_deref())
        })
    else {
        return Err(Error::not_found(format!("No live key `{id}`.")).into());
    };
    let at = crossbar_store::now_ms();
    let revoked = keys
        .store()
        .revoke_key(&before.id, at)
        .await
        .map_err(unavailable)?;
    keys.invalidate();
    if !revoked {
        return Err(Error::not_found(format!("No live key `{id}`.")).into());
    }
    tracing::info!(key = %before.id, "virtual key revoked");
    let mut after = before.clone();
    after.revoked_ms = Some(at);
    record_change(
        &state,
        &principal,
        peer,
        "key.revoke",
        &before.id,
        Some(key_json(&before)),
        Some(key_json(&after)),
    )
    .await;
    Ok(Json(Revoked { id, revoked: true }).into_response())
}

async fn create_team(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let new: NewTeam = if bytes.is_empty() {
        return Err(Error::invalid_field("name", "A team needs `name`.").into());
    } else {
        body(&bytes, "team")?
    };
    let team = teams::create(keys.store().as_ref(), new).await?;
    tracing::info!(team = %team.id, "team created");
    record_change(
        &state,
        &principal,
        peer,
        "team.create",
        &team.id,
        None,
        Some(team_json(&team)),
    )
    .await;
    Ok((StatusCode::CREATED, Json(TeamView::from(&team))).into_response())
}

async fn list_teams(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let Some(org) = keys.store().org() else {
        return Ok(Json(Data::<TeamView> { data: Vec::new() }).into_response());
    };
    let data = org
        .list_teams()
        .await
        .map_err(unavailable)?
        .iter()
        .filter(|t| principal.sees(Some(&t.id)))
        .map(TeamView::from)
        .collect();
    Ok(Json(Data { data }).into_response())
}

async fn show_team(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let team = teams::get(keys.store().as_ref(), &id)
        .await?
        .filter(|t| principal.sees(Some(&t.id)))
        .ok_or_else(|| hidden("team", &id))?;
    let members = keys
        .store()
        .list_keys()
        .await
        .map_err(unavailable)?
        .iter()
        .filter(|k| k.team_id.as_deref() == Some(&team.id))
        .map(KeyView::from)
        .collect();
    Ok(Json(TeamWithKeys {
        team: TeamView::from(&team),
        keys: members,
    })
    .into_response())
}

async fn update_team(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let patch: TeamPatch = body(&bytes, "team")?;
    let (before, after) = teams::update(keys.store().as_ref(), &id, patch).await?;
    // Keys look their team up again on their next request here (other replicas within the
    // key cache's few seconds).
    keys.invalidate();
    record_change(
        &state,
        &principal,
        peer,
        "team.update",
        &after.id,
        Some(team_json(&before)),
        Some(team_json(&after)),
    )
    .await;
    Ok(Json(TeamView::from(&after)).into_response())
}

async fn delete_team(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let team = teams::delete(keys.store().as_ref(), &id).await?;
    keys.invalidate();
    record_change(
        &state,
        &principal,
        peer,
        "team.delete",
        &team.id,
        Some(team_json(&team)),
        None,
    )
    .await;
    Ok(Json(Deleted {
        id: team.id,
        deleted: true,
    })
    .into_response())
}

async fn create_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    bytes: Bytes,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let new: NewToken = body(&bytes, "token")?;
    let (secret, token) = tokens::create(keys.store().as_ref(), new).await?;
    tracing::info!(token = %token.id, role = %token.role, "admin token created");
    record_change(
        &state,
        &principal,
        peer,
        "token.create",
        &token.id,
        None,
        Some(token_json(&token)),
    )
    .await;
    let shown = CreatedToken {
        view: TokenView::from(&token),
        token: secret,
    };
    Ok((StatusCode::CREATED, Json(shown)).into_response())
}

async fn list_tokens(State(state): State<AppState>) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let Some(org) = keys.store().org() else {
        return Ok(Json(Data::<TokenView> { data: Vec::new() }).into_response());
    };
    let data = org
        .list_admin_tokens()
        .await
        .map_err(unavailable)?
        .iter()
        .map(TokenView::from)
        .collect();
    Ok(Json(Data { data }).into_response())
}

async fn revoke_token(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    peer: Peer,
    Path(id): Path<String>,
) -> Result<Response, ApiError> {
    let keys = registry(&state)?;
    let (before, after) = tokens::revoke(keys.store().as_ref(), &id).await?;
    record_change(
        &state,
        &principal,
        peer,
        "token.revoke",
        &before.id,
        Some(token_json(&before)),
        Some(token_json(&after)),
    )
    .await;
    Ok(Json(Revoked {
        id: before.id,
        revoked: true,
    })
    .into_response())
}

/// `GET /admin/audit` query: all optional.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct AuditParams {
    action: Option<String>,
    target: Option<String>,
    before_id: Option<i64>,
    /// Default 100, at most 1,000.
    limit: Option<u32>,
}

/// The audit log, newest first; a team admin's holds the entries about its team only.
pub(crate) async fn list_audit(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
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
        team: principal.confined().map(str::to_owned),
        before_id: params.before_id,
        limit: params.limit.unwrap_or(100).clamp(1, 1000),
    };
    let entries = audit
        .list_audit(&query)
        .await
        .map_err(|e| Error::internal(format!("The audit log is unavailable: {e}")))?;
    Ok(Json(Data { data: entries }).into_response())
}

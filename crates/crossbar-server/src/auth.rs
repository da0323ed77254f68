//! Who may call what. Each group of routes is mounted behind a [`Gate`] (see [`crate::app`]).
//! An open gateway (no keys) serves its own machine at every gate alike. Once keys exist, the
//! model APIs need `Authorization: Bearer <key>` (or Anthropic-style `x-api-key`, Azure-style
//! `api-key`): a gateway key, or a virtual key from the store (see [`crate::keys`]), which
//! carries limits. `/healthz` is mounted without a gate.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::{HeaderMap, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use crossbar_core::Error;

use tokio::time::Instant;

use crate::app::AppState;
use crate::error::ApiError;
use crate::keys::KeyState;
use crate::metering::Meter;

/// What a group of routes asks of a caller once the gateway has keys.
#[derive(Clone, Copy, Debug)]
pub(crate) enum Gate {
    /// A gateway key or a live virtual key: the model APIs, and unknown URLs.
    Keys,
    /// A key as for `Keys`, or the admin token (the dashboard shows the deployments view).
    KeysOrAdmin,
    /// The admin token: `/metrics` shows per-key spend.
    Metrics,
    /// Nothing more: the routes behind it check the admin token themselves.
    Open,
}

/// The auth layer: applies the open gateway's rule, or `gate` once the gateway has keys.
pub(crate) async fn layer(
    State((state, gate)): State<(AppState, Gate)>,
    mut request: Request,
    next: Next,
) -> Response {
    let encode = crate::error::encoder_of_path(request.uri().path());
    let meter = request.extensions().get::<Meter>().cloned();
    let refuse = |error: Error, reason: &'static str| {
        if let Some(meter) = &meter {
            meter.refuse_unauthenticated(reason);
        }
        ApiError { error, encode }.into_response()
    };
    // Virtual keys close the gateway as soon as one live key exists.
    let virtual_keys = match &state.virtual_keys {
        Some(keys) => match keys.any_keys().await {
            Ok(true) => Some(keys),
            // The cached "no keys" may predate a key made since (by `crossbar keys create`,
            // another process): a credential presented meanwhile is looked up, so that a
            // valid key is never served as an anonymous, uncharged call.
            // (With gateway keys configured the gateway is closed anyway: nothing to ask.)
            Ok(false) => match presented_key(request.headers()) {
                Some(key) if state.keys.is_empty() => {
                    match keys.authenticate(key).await {
                        Ok(Some(_)) => {
                            keys.saw_key();
                            Some(keys)
                        }
                        // Unknown, or the store cannot say: as open as it was.
                        Ok(None) | Err(_) => None,
                    }
                }
                _ => None,
            },
            Err(error) => return ApiError { error, encode }.into_response(),
        },
        None => None,
    };
    if state.keys.is_empty() && virtual_keys.is_none() {
        // Open: this machine's clients only, and not a web page one of them has open.
        return match open_gateway_admits(&request) {
            Ok(()) => next.run(request).await,
            Err((error, reason)) => refuse(error, reason),
        };
    }
    // A scoped admin token opens what the root one does here, as its role allows: reads of
    // the deployments view, the config version and the runs API for every role (the runs
    // handlers narrow a team admin to its team's keys' runs), cancelling a run for admins
    // and team admins (never another write), `/metrics` (every key's spend) for admins and
    // viewers.
    let reads = matches!(*request.method(), Method::GET | Method::HEAD)
        || (*request.method() == Method::POST
            && request.uri().path().starts_with("/v1/crossbar/runs/")
            && request.uri().path().ends_with("/cancel"));
    let scoped = match gate {
        Gate::KeysOrAdmin | Gate::Metrics if reads => admin_principal(&state, request.headers())
            .await
            .ok()
            .flatten()
            .map(|p| p.role),
        Gate::KeysOrAdmin | Gate::Metrics | Gate::Keys | Gate::Open => None,
    };
    match gate {
        Gate::Open => return next.run(request).await,
        Gate::Metrics => {
            return if admin_presented(&state, request.headers())
                || matches!(scoped, Some(Role::Admin | Role::Viewer))
            {
                next.run(request).await
            } else {
                refuse(
                    Error::authentication(
                        "`/metrics` needs the admin token (`Authorization: Bearer <admin.token>`) once the gateway has keys.",
                    ),
                    "metrics",
                )
            };
        }
        Gate::KeysOrAdmin if admin_presented(&state, request.headers()) || scoped.is_some() => {
            return next.run(request).await;
        }
        Gate::KeysOrAdmin | Gate::Keys => {}
    }
    let reject = |error: Error| ApiError { error, encode }.into_response();
    let presented = presented_key(request.headers()).map(str::to_owned);
    match presented.as_deref() {
        None => refuse(
            Error::authentication(
                "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'.",
            ),
            "no_key",
        ),
        Some(key)
            if state
                .keys
                .iter()
                .any(|k| constant_time_eq(k.as_bytes(), key.as_bytes())) =>
        {
            next.run(request).await
        }
        Some(key) => {
            let found = match virtual_keys {
                Some(keys) => keys.authenticate(key).await,
                None => Ok(None),
            };
            match found {
                Ok(Some(key)) => {
                    request.extensions_mut().insert(CallerKey(key.id()));
                    request
                        .extensions_mut()
                        .insert(CallerScope(Arc::clone(&key)));
                    // Requests per minute count metered API calls only (those with a meter).
                    if let Some(meter) = request.extensions().get::<Meter>() {
                        if let Err(error) = key.admit_request(Instant::now()).await {
                            crate::metrics::limit_rejected(&key.id(), "rate_limit_requests");
                            meter.set_key(key);
                            return reject(error);
                        }
                        meter.set_key(key);
                    }
                    next.run(request).await
                }
                // Never echo the presented key: it may be a real key sent to the wrong place.
                Ok(None) => refuse(
                    Error::authentication("Incorrect API key provided."),
                    "incorrect_key",
                ),
                Err(error) => reject(error),
            }
        }
    }
}

/// The credential a client presents: a bearer token, `x-api-key` or Azure's `api-key`;
/// `None` when absent or blank.
fn presented_key(headers: &HeaderMap) -> Option<&str> {
    headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(str::trim)
        .filter(|v| !v.is_empty())
}

/// The admin token, as a bearer token or a Basic-auth password (which lets a browser ask for
/// it once and send it with every poll of the dashboard).
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

/// What an admin token may do: everything, one team's objects, or read everything.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub(crate) enum Role {
    Admin,
    TeamAdmin,
    Viewer,
}

impl Role {
    pub(crate) const ALL: [Self; 3] = [Self::Admin, Self::TeamAdmin, Self::Viewer];

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Self::Admin => "admin",
            Self::TeamAdmin => "team-admin",
            Self::Viewer => "viewer",
        }
    }

    pub(crate) fn parse(text: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == text)
    }
}

/// Who holds the admin token a request presented: the root (`admin.token`, or anyone on this
/// machine while an open gateway has no keys) or a scoped token from the store.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Principal {
    pub role: Role,
    /// The team a `team-admin` manages.
    pub team: Option<String>,
    /// For the audit log: `admin`, or `token:<id>`.
    pub actor: String,
}

impl Principal {
    pub(crate) fn root() -> Self {
        Self {
            role: Role::Admin,
            team: None,
            actor: "admin".to_owned(),
        }
    }

    /// The team this principal is confined to: `Some` for a team admin only.
    pub(crate) fn confined(&self) -> Option<&str> {
        match self.role {
            Role::TeamAdmin => self.team.as_deref(),
            Role::Admin | Role::Viewer => None,
        }
    }

    /// Whether an object of `team` is one this principal may see; a team admin's is its own.
    pub(crate) fn sees(&self, team: Option<&str>) -> bool {
        self.confined().is_none_or(|own| team == Some(own))
    }
}

/// Whether an endpoint reads or changes, and whether it is about a team's objects.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Access {
    /// Reads what a team admin may see narrowed to its team (keys, usage, requests, audit).
    TeamRead,
    /// Changes a team's objects (its keys): a team admin's own team only.
    TeamWrite,
    /// Reads about the whole gateway (tokens, agent runs, the config): admins and viewers.
    Read,
    /// Changes beyond one team's keys (teams, tokens, reloads): the admin role only.
    Write,
}

/// One admin or dashboard endpoint and what it takes.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Rule {
    pub method: &'static str,
    pub path: &'static str,
    pub access: Access,
}

/// The one authorization decision: may `role` use an endpoint of this access? (Objects are
/// narrowed to a team admin's team by the handlers, through [`Principal::sees`]: another
/// team's object is a 404, as if it did not exist.)
pub(crate) fn allowed(role: Role, access: Access) -> bool {
    match (role, access) {
        (Role::Admin, _) => true,
        (Role::Viewer, Access::TeamRead | Access::Read) => true,
        (Role::Viewer, Access::TeamWrite | Access::Write) => false,
        (Role::TeamAdmin, Access::TeamRead | Access::TeamWrite) => true,
        (Role::TeamAdmin, Access::Read | Access::Write) => false,
    }
}

/// Every admin API and dashboard endpoint, `(method, path, roles that may use it)`, read from
/// the tables their routers are built from (so a new endpoint comes with its rule): for the
/// table-driven role tests and the docs.
pub fn access_table() -> Vec<(&'static str, &'static str, Vec<&'static str>)> {
    crate::admin::endpoints()
        .into_iter()
        .chain(crate::routes::dashboard::endpoints())
        .map(|(rule, _)| {
            let roles = Role::ALL
                .into_iter()
                .filter(|role| allowed(*role, rule.access))
                .map(Role::as_str)
                .collect();
            (rule.method, rule.path, roles)
        })
        .collect()
}

/// The admin token a request presents (bearer, or a Basic-auth password), if any.
fn presented_admin_token(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    if let Some(bearer) = value.strip_prefix("Bearer ") {
        return Some(bearer.trim().to_owned()).filter(|t| !t.is_empty());
    }
    let basic = value.strip_prefix("Basic ")?;
    let decoded = base64::engine::general_purpose::STANDARD
        .decode(basic.trim())
        .ok()
        .and_then(|bytes| String::from_utf8(bytes).ok())?;
    decoded
        .split_once(':')
        .map(|(_, password)| password.to_owned())
        .filter(|p| !p.is_empty())
}

/// The principal behind the request's admin token: the root token, or a live scoped token
/// from the store; `None` when neither.
pub(crate) async fn admin_principal(
    state: &AppState,
    headers: &HeaderMap,
) -> Result<Option<Principal>, Error> {
    if admin_presented(state, headers) {
        return Ok(Some(Principal::root()));
    }
    let Some(token) = presented_admin_token(headers) else {
        return Ok(None);
    };
    // Scoped tokens are `cbadm-...`: other secrets (a virtual key) are not looked up.
    if !token.starts_with(crate::keys::tokens::PREFIX) {
        return Ok(None);
    }
    let Some(org) = state.virtual_keys.as_ref().and_then(|k| k.store().org()) else {
        return Ok(None);
    };
    let found = org
        .admin_token_by_hash(&crate::keys::hash_secret(&token))
        .await
        .map_err(|e| Error::internal(format!("The key store is unavailable: {e}")))?;
    Ok(found.filter(|t| t.revoked_ms.is_none()).and_then(|t| {
        Some(Principal {
            role: Role::parse(&t.role)?,
            team: t.team_id,
            actor: format!("token:{}", t.id),
        })
    }))
}

/// The rule for a request's method and matched route, from `rules`.
pub(crate) fn rule_for<'a>(rules: &'a [Rule], request: &Request) -> Option<&'a Rule> {
    let path = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map(axum::extract::MatchedPath::as_str)?;
    let method = request.method().as_str();
    rules
        .iter()
        .find(|r| r.path == path && (r.method == method || (r.method == "GET" && method == "HEAD")))
}

/// Lets `principal` through to the endpoint if its rule allows the role: a route without a
/// rule is the root admin's alone. The principal rides along for the handler to narrow by.
pub(crate) async fn authorize(
    principal: Principal,
    rules: &[Rule],
    mut request: Request,
    next: Next,
) -> Response {
    let encode = crate::error::encoder_of_path(request.uri().path());
    let permitted = match rule_for(rules, &request) {
        Some(rule) => allowed(principal.role, rule.access),
        None => principal.role == Role::Admin,
    };
    if !permitted {
        return ApiError {
            error: Error::permission_denied(
                format!(
                    "Your admin token's role (`{}`) may not use {} {}.",
                    principal.role.as_str(),
                    request.method(),
                    request.uri().path()
                ),
                "role_forbidden",
            ),
            encode,
        }
        .into_response();
    }
    request.extensions_mut().insert(principal);
    next.run(request).await
}

/// The id of the virtual key that authenticated a request, for routes that scope what they
/// show to its owner (stored responses).
#[derive(Clone, Debug)]
pub(crate) struct CallerKey(pub String);

/// The virtual key that authenticated a request, for routes that show only what it may use
/// (`/v1/models`, which is not metered and so has no [`Meter`] holding the key).
#[derive(Clone, Debug)]
pub(crate) struct CallerScope(pub Arc<KeyState>);

/// What an open gateway (no keys) serves: clients on this machine, addressing it by a loopback
/// name, not on behalf of a foreign web page. Without these checks any page in the user's browser
/// could spend provider money (a `text/plain` POST needs no CORS preflight), and a DNS-rebinding
/// page (`Host: rebind.evil.example`) could read the dashboard and stored responses.
pub(crate) fn open_gateway_admits(request: &Request) -> Result<(), (Error, &'static str)> {
    if !is_local(request) {
        return Err((
            Error::permission_denied(
                "This gateway has no keys, so it serves clients on its own machine only. Create one with `crossbar keys create` or set `server.api_keys`.",
                "open_gateway_loopback_only",
            ),
            "remote_client",
        ));
    }
    let headers = request.headers();
    let host = headers
        .get(header::HOST)
        .and_then(|v| v.to_str().ok())
        .or_else(|| request.uri().authority().map(|a| a.as_str()));
    if let Some(host) = host
        && !is_loopback_authority(host)
    {
        return Err((
            Error::permission_denied(
                "This gateway has no keys, so it answers only to loopback host names (localhost, 127.0.0.1, [::1]).",
                "open_gateway_foreign_host",
            ),
            "foreign_host",
        ));
    }
    if let Some(origin) = headers.get(header::ORIGIN) {
        let loopback = origin
            .to_str()
            .ok()
            .and_then(|o| o.split_once("://"))
            .is_some_and(|(scheme, authority)| {
                matches!(scheme, "http" | "https") && is_loopback_authority(authority)
            });
        if !loopback {
            return Err((
                Error::permission_denied(
                    "This gateway has no keys, so it refuses requests sent by web pages of other origins.",
                    "open_gateway_foreign_origin",
                ),
                "foreign_origin",
            ));
        }
    }
    let has_body = headers.contains_key(header::TRANSFER_ENCODING)
        || headers
            .get(header::CONTENT_LENGTH)
            .is_some_and(|length| length.as_bytes() != b"0");
    if has_body && !is_json(headers.get(header::CONTENT_TYPE)) {
        return Err((
            Error::unsupported_media_type(
                "Request bodies must be JSON, sent with `content-type: application/json`.",
            ),
            "not_json",
        ));
    }
    Ok(())
}

/// `application/json`, or any `+json` type, parameters allowed.
fn is_json(content_type: Option<&axum::http::HeaderValue>) -> bool {
    let Some(essence) = content_type
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(';').next())
        .map(|v| v.trim().to_ascii_lowercase())
    else {
        return false;
    };
    essence == "application/json"
        || essence
            .strip_prefix("application/")
            .is_some_and(|subtype| subtype.ends_with("+json"))
}

/// Whether a `Host` (or an origin's authority) names this machine: `localhost` and its
/// subdomains, 127.0.0.0/8, `[::1]`, with any port.
fn is_loopback_authority(authority: &str) -> bool {
    let host = if let Some(rest) = authority.strip_prefix('[') {
        match rest.split_once(']') {
            Some((host, _)) => host,
            None => return false,
        }
    } else {
        authority
            .rsplit_once(':')
            .map_or(authority, |(host, _port)| host)
    };
    let host = host.trim_end_matches('.').to_ascii_lowercase();
    host == "localhost"
        || host.ends_with(".localhost")
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.to_canonical().is_loopback())
}

/// Whether the client is on this machine (or unknown: the app served without peer addresses,
/// as in-process tests do).
pub(crate) fn is_local(request: &Request) -> bool {
    request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .is_none_or(|ConnectInfo(peer)| peer.ip().to_canonical().is_loopback())
}

/// Compares without an early exit, so timing does not reveal how much of a key matched.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::{constant_time_eq, is_json, is_loopback_authority};

    #[test]
    fn loopback_authorities_only() {
        for ok in [
            "localhost",
            "localhost:4000",
            "LOCALHOST.:4000",
            "app.localhost:80",
            "127.0.0.1",
            "127.8.9.10:4000",
            "[::1]:4000",
            "[::ffff:127.0.0.1]:1",
        ] {
            assert!(is_loopback_authority(ok), "{ok}");
        }
        for bad in [
            "rebind.evil.example",
            "rebind.evil.example:4000",
            "localhost.evil.example",
            "10.0.0.1:4000",
            "0.0.0.0:4000",
            "[::]:4000",
            "[::1",
            "",
            "127.0.0.1.evil.example",
        ] {
            assert!(!is_loopback_authority(bad), "{bad}");
        }
    }

    #[test]
    fn json_content_types() {
        let of = |v: &'static str| Some(axum::http::HeaderValue::from_static(v));
        assert!(is_json(of("application/json").as_ref()));
        assert!(is_json(of("Application/JSON; charset=utf-8").as_ref()));
        assert!(is_json(of("application/merge-patch+json").as_ref()));
        assert!(!is_json(of("text/plain").as_ref()));
        assert!(!is_json(of("application/x-www-form-urlencoded").as_ref()));
        assert!(!is_json(of("multipart/form-data; boundary=x").as_ref()));
        assert!(!is_json(None));
    }

    #[test]
    fn one_decision_per_role_and_access() {
        use super::{Access, Role, allowed};
        let accesses = [
            Access::TeamRead,
            Access::TeamWrite,
            Access::Read,
            Access::Write,
        ];
        let table: Vec<(&str, Vec<bool>)> = Role::ALL
            .into_iter()
            .map(|role| {
                let row = accesses.iter().map(|a| allowed(role, *a)).collect();
                (role.as_str(), row)
            })
            .collect();
        assert_eq!(
            table,
            [
                ("admin", vec![true, true, true, true]),
                ("team-admin", vec![true, true, false, false]),
                ("viewer", vec![true, false, true, false]),
            ]
        );
        assert_eq!(Role::parse("team-admin"), Some(Role::TeamAdmin));
        assert_eq!(Role::parse("root"), None);
    }

    #[test]
    fn compares_exactly() {
        assert!(constant_time_eq(b"sk-abc", b"sk-abc"));
        assert!(!constant_time_eq(b"sk-abc", b"sk-abd"));
        assert!(!constant_time_eq(b"sk-abc", b"sk-ab"));
    }

    #[test]
    fn an_open_gateway_serves_loopback_peers_only() {
        let from = |peer: Option<&str>| {
            let mut request = axum::extract::Request::new(axum::body::Body::empty());
            if let Some(peer) = peer {
                let addr: std::net::SocketAddr = peer.parse().unwrap();
                request
                    .extensions_mut()
                    .insert(axum::extract::ConnectInfo(addr));
            }
            super::is_local(&request)
        };
        assert!(from(Some("127.0.0.1:5000")));
        assert!(from(Some("[::1]:5000")));
        assert!(from(Some("[::ffff:127.0.0.1]:5000")));
        assert!(!from(Some("10.0.0.5:5000")));
        assert!(!from(Some("[2001:db8::1]:5000")));
        assert!(from(None), "in-process, without peer addresses");
    }
}

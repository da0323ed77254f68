//! Gateway keys: when any are configured, every API route needs `Authorization: Bearer <key>`
//! (or Anthropic-style `x-api-key`, Azure-style `api-key`). Health checks stay open. Virtual
//! keys from the store (see [`crate::keys`]) work the same way, and carry limits.

use std::net::SocketAddr;

use axum::extract::{ConnectInfo, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use crossbar_core::Error;
use crossbar_core::error::{ErrorKind, Origin};

use tokio::time::Instant;

use crate::app::AppState;
use crate::error::{ApiError, Ingress};
use crate::metering::Meter;

pub async fn layer(State(state): State<AppState>, mut request: Request, next: Next) -> Response {
    let path = request.uri().path();
    // Health and metrics stay open; the admin API checks its own token.
    if path == "/healthz" || path == "/metrics" || path.starts_with("/admin/") {
        return next.run(request).await;
    }
    // The dashboard checks the admin token itself (see `routes::dashboard`).
    if crate::routes::dashboard::skips_gateway_keys(&state, &request) {
        return next.run(request).await;
    }
    let ingress = Ingress::of_path(path);
    let reject = |error: Error| ApiError { error, ingress }.into_response();
    // Virtual keys close the gateway as soon as one live key exists.
    let virtual_keys = match &state.virtual_keys {
        Some(keys) => match keys.any_keys().await {
            Ok(live) => live.then_some(keys),
            Err(error) => return reject(error),
        },
        None => None,
    };
    if state.keys.is_empty() && virtual_keys.is_none() {
        if !is_local(&request) {
            return reject(Error {
                kind: ErrorKind::PermissionDenied,
                origin: Origin::Client,
                retryable: false,
                message: "This gateway has no keys, so it serves clients on its own machine only. Create one with `crossbar keys create` or set `server.api_keys`.".to_owned(),
                param: None,
                code: Some("open_gateway_loopback_only".to_owned()),
                upstream_status: None,
                retry_after: None,
            });
        }
        return next.run(request).await;
    }
    let headers = request.headers();
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            v.strip_prefix("Bearer ")
                .or_else(|| v.strip_prefix("bearer "))
        })
        .or_else(|| headers.get("x-api-key").and_then(|v| v.to_str().ok()))
        .or_else(|| headers.get("api-key").and_then(|v| v.to_str().ok()))
        .map(|v| v.trim().to_owned());
    match presented.as_deref() {
        None | Some("") => reject(Error::authentication(
            "You didn't provide an API key. Provide it as 'Authorization: Bearer YOUR_KEY' or 'x-api-key: YOUR_KEY'.",
        )),
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
                    // Requests per minute count API calls only (the metered paths).
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
                Ok(None) => reject(Error::authentication("Incorrect API key provided.")),
                Err(error) => reject(error),
            }
        }
    }
}

/// The id of the virtual key that authenticated a request, for routes that scope what they
/// show to its owner (stored responses).
#[derive(Clone, Debug)]
pub struct CallerKey(pub String);

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
    use super::constant_time_eq;

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

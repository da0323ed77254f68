//! Serving on a bound listener, hardened against slow and numerous clients, with a bounded
//! drain: on shutdown, stop accepting, let in-flight requests finish, and give up on stragglers
//! after the grace period.
//!
//! `axum::serve` runs hyper without a timer, so a client that never finishes its headers held a
//! connection forever, and enough of them exhausted the process's file descriptors. Here hyper
//! gets a timer and a header-read timeout (which also closes idle keep-alive connections), request
//! bodies a read timeout, and the number of connections a cap past which new ones get a 503.

use std::convert::Infallible;
use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::response::IntoResponse as _;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::{TcpListener, TcpStream};
use tower::ServiceExt as _;

/// Limits on connections and how long a client may take; `[server]` settings.
#[derive(Clone, Copy, Debug)]
pub struct ServeLimits {
    /// How long in-flight requests may run after shutdown begins.
    pub grace: Duration,
    /// Time allowed for a request's headers to arrive, counted from the connection's start or
    /// from the end of the previous response (so it is also the keep-alive idle timeout).
    pub header_read_timeout: Duration,
    /// Longest wait for the next piece of a request body.
    pub body_read_timeout: Duration,
    /// Connections served at once; past it, new connections are answered 503 and closed.
    pub max_connections: usize,
}

impl ServeLimits {
    /// The defaults of `[server]` with this grace period.
    pub fn with_grace(grace: Duration) -> Self {
        Self {
            grace,
            ..Self::of(&crossbar_core::config::ServerConfig::default())
        }
    }

    /// The limits a config asks for.
    pub fn of(server: &crossbar_core::config::ServerConfig) -> Self {
        Self {
            grace: Duration::from_secs(server.shutdown_grace_s()),
            header_read_timeout: Duration::from_secs(server.header_read_timeout_s()),
            body_read_timeout: Duration::from_secs(server.body_read_timeout_s()),
            max_connections: server.max_connections(),
        }
    }
}

/// Connections refused with a 503 at once, at most; beyond this a new connection is closed
/// without an answer, so shedding itself cannot exhaust descriptors.
const MAX_SHEDDING: usize = 256;
/// How long a shed connection may take to send its request before it is closed.
const SHED_HEADER_TIMEOUT: Duration = Duration::from_secs(2);
/// After a failed accept (out of descriptors, say), wait before the next so the loop does not
/// spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// Counts a live connection for as long as it is held.
struct Slot(Arc<AtomicUsize>);

impl Slot {
    /// A slot if fewer than `max` are held.
    fn take(count: &Arc<AtomicUsize>, max: usize) -> Option<Self> {
        count
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < max).then_some(n + 1)
            })
            .ok()
            .map(|_| Self(count.clone()))
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::AcqRel);
    }
}

/// Serves `app` until `shutdown` resolves, then drains for at most `limits.grace`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    limits: ServeLimits,
) -> std::io::Result<()> {
    let app = app.layer(tower_http::timeout::RequestBodyTimeoutLayer::new(
        limits.body_read_timeout,
    ));
    let mut builder = Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(limits.header_read_timeout)
        .keep_alive_timeout(limits.header_read_timeout);
    let builder = Arc::new(builder);
    let connections = Arc::new(AtomicUsize::new(0));
    let shedding = Arc::new(AtomicUsize::new(0));
    let graceful = GracefulShutdown::new();
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let (tcp, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        // Streams are many small writes: without TCP_NODELAY, Nagle's algorithm meets the
        // client's delayed ACK and a chunk waits ~40 ms.
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
        let Some(slot) = Slot::take(&connections, limits.max_connections) else {
            shed(tcp, &shedding);
            continue;
        };
        // Peer addresses let an open gateway (no keys) serve this machine's clients only.
        let service = app
            .clone()
            .map_request(move |request: axum::http::Request<Incoming>| {
                let mut request = request.map(Body::new);
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            });
        let builder = builder.clone();
        let watcher = graceful.watcher();
        let header_read_timeout = limits.header_read_timeout;
        tokio::spawn(async move {
            // hyper's timer starts once it knows the protocol; a client that sends nothing (or
            // half an HTTP/2 preface) is timed here.
            match tokio::time::timeout(header_read_timeout, protocol_known(&tcp)).await {
                Ok(Ok(true)) => {}
                _ => return,
            }
            let connection = builder
                .serve_connection_with_upgrades(
                    TokioIo::new(tcp),
                    TowerToHyperService::new(service),
                )
                .into_owned();
            if let Err(error) = watcher.watch(connection).await {
                tracing::trace!(%error, "connection ended with an error");
            }
            drop(slot);
        });
    }
    drop(listener);
    tracing::info!(
        "shutting down: draining in-flight requests for up to {:?}",
        limits.grace
    );
    if tokio::time::timeout(limits.grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("grace period over: dropping the requests still in flight");
    }
    Ok(())
}

/// What an HTTP/2 client sends first; anything else is HTTP/1.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";

/// Waits until the first bytes tell HTTP/1 from HTTP/2 (as hyper's protocol detection needs);
/// false if the client closed first.
async fn protocol_known(tcp: &TcpStream) -> std::io::Result<bool> {
    let mut first = [0u8; H2_PREFACE.len()];
    loop {
        let n = tcp.peek(&mut first).await?;
        if n == 0 {
            return Ok(false);
        }
        if n == first.len() || first[..n] != H2_PREFACE[..n] {
            return Ok(true);
        }
        // Part of the preface: peeking again would see the same bytes at once.
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// Answers a connection over the cap with a 503 and closes it, or closes it at once when too
/// many are being shed already.
fn shed(tcp: TcpStream, shedding: &Arc<AtomicUsize>) {
    metrics::counter!("crossbar_connections_shed_total").increment(1);
    let Some(slot) = Slot::take(shedding, MAX_SHEDDING) else {
        return;
    };
    tokio::spawn(async move {
        let mut builder = hyper::server::conn::http1::Builder::new();
        builder
            .timer(TokioTimer::new())
            .header_read_timeout(SHED_HEADER_TIMEOUT)
            .keep_alive(false);
        let service = hyper::service::service_fn(|_: axum::http::Request<Incoming>| async {
            Ok::<_, Infallible>(overloaded())
        });
        if let Err(error) = builder.serve_connection(TokioIo::new(tcp), service).await {
            tracing::trace!(%error, "shed connection ended with an error");
        }
        drop(slot);
    });
}

/// The answer to a connection over the cap: the gateway's own error shape, `Retry-After: 1`.
fn overloaded() -> axum::response::Response {
    let mut response = crate::error::ApiError::from(crossbar_core::error::Error::overloaded(
        "The gateway is serving its maximum number of connections; retry shortly.",
    ))
    .into_response();
    response.headers_mut().insert(
        axum::http::header::RETRY_AFTER,
        axum::http::HeaderValue::from_static("1"),
    );
    response.headers_mut().insert(
        axum::http::header::CONNECTION,
        axum::http::HeaderValue::from_static("close"),
    );
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slots_are_capped_and_released() {
        let count = Arc::new(AtomicUsize::new(0));
        let a = Slot::take(&count, 2);
        let b = Slot::take(&count, 2);
        assert!(a.is_some() && b.is_some());
        assert!(Slot::take(&count, 2).is_none());
        drop(a);
        assert_eq!(count.load(Ordering::Acquire), 1);
        assert!(Slot::take(&count, 2).is_some());
    }
}

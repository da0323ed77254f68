//! Serving on a bound listener with a bounded drain: on shutdown, stop accepting, let in-flight
//! requests finish, and give up on stragglers after the grace period.

use std::future::Future;
use std::time::Duration;

use axum::serve::ListenerExt as _;
use tokio::net::TcpListener;
use tokio::sync::oneshot;

/// Serves `app` until `shutdown` resolves, then drains for at most `grace`.
pub async fn serve(
    listener: TcpListener,
    app: axum::Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
    grace: Duration,
) -> std::io::Result<()> {
    let (draining_tx, draining_rx) = oneshot::channel::<()>();
    // Peer addresses let an open gateway (no keys) serve this machine's clients only.
    let app = app.into_make_service_with_connect_info::<std::net::SocketAddr>();
    // Streams are many small writes: without TCP_NODELAY, Nagle's algorithm meets the client's
    // delayed ACK and a chunk waits ~40 ms.
    let listener = listener.tap_io(|tcp| {
        if let Err(error) = tcp.set_nodelay(true) {
            tracing::debug!(%error, "could not set TCP_NODELAY");
        }
    });
    let server = axum::serve(listener, app).with_graceful_shutdown(async move {
        shutdown.await;
        tracing::info!("shutting down: draining in-flight requests for up to {grace:?}");
        let _ = draining_tx.send(());
    });
    let deadline = async move {
        if draining_rx.await.is_ok() {
            tokio::time::sleep(grace).await;
        } else {
            std::future::pending::<()>().await;
        }
    };
    tokio::select! {
        result = server => result,
        () = deadline => {
            tracing::warn!("grace period over: dropping the requests still in flight");
            Ok(())
        }
    }
}

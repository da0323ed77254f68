//! Serving on a bound listener with a bounded drain: on shutdown, stop accepting, let in-flight
//! requests finish, and give up on stragglers after the grace period.

use std::future::Future;
use std::time::Duration;

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

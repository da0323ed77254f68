//! An OTLP/HTTP JSON trace collector on an ephemeral loopback port, for the suites that check
//! the spans the gateway and the agent export.

#![expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]

use std::sync::{Arc, Mutex};

use serde_json::Value;

/// Starts a collector keeping every batch posted to `/v1/traces`; returns its base URL (the
/// `otlp_endpoint` to configure) and the batches received so far.
pub async fn collector() -> (String, Arc<Mutex<Vec<Value>>>) {
    let received: Arc<Mutex<Vec<Value>>> = Arc::default();
    let sink = Arc::clone(&received);
    let app = axum::Router::new().route(
        "/v1/traces",
        axum::routing::post(move |axum::Json(body): axum::Json<Value>| {
            let sink = Arc::clone(&sink);
            async move {
                sink.lock().unwrap().push(body);
                "{}"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, received)
}

//! Image URLs for providers that only take inline bytes (Bedrock, Gemini): the gateway fetches
//! them, refusing private addresses unless the provider's `image_fetch` allows them.

mod common;

use axum::http::header;
use base64::Engine as _;
use common::start;
use serde_json::{Value, json};

const PNG: &str = "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==";

/// Serves a PNG, a text file and a large image on loopback.
#[expect(clippy::unwrap_used, reason = "test helper")]
async fn image_server() -> String {
    let png = base64::engine::general_purpose::STANDARD
        .decode(PNG)
        .unwrap();
    let big = vec![0u8; 64 * 1024];
    let app = axum::Router::new()
        .route(
            "/cat.png",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "image/png")], png.clone())
            }),
        )
        .route(
            "/big.png",
            axum::routing::get(move || async move {
                ([(header::CONTENT_TYPE, "image/png")], big.clone())
            }),
        )
        .route(
            "/notes.txt",
            axum::routing::get(|| async { ([(header::CONTENT_TYPE, "text/plain")], "hello") }),
        );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn config(allow_private: bool) -> String {
    format!(
        r#"
[[providers]]
name = "bedrock"
kind = "sim"
dialect = "bedrock"
region = "us-east-1"
aws = {{ access_key_id = "AKIDEXAMPLE", secret_access_key = "secret" }}
image_fetch = {{ allow_private = {allow_private}, max_bytes = 32768 }}

[[providers]]
name = "gemini"
kind = "sim"
dialect = "gemini"
api_key = "k"
image_fetch = {{ allow_private = {allow_private}, max_bytes = 32768 }}

[[models]]
name = "on-bedrock"
deployments = [{{ provider = "bedrock", target = "amazon.nova-pro-v1:0" }}]

[[models]]
name = "on-gemini"
deployments = [{{ provider = "gemini", target = "gemini-2.5-flash" }}]
"#
    )
}

fn with_image(model: &str, url: &str) -> Value {
    json!({"model": model, "messages": [{"role": "user", "content": [
        {"type": "text", "text": "What is this?"}, {"type": "image_url", "image_url": {"url": url}}]}]})
}

#[tokio::test]
async fn image_urls_are_fetched_and_inlined_for_providers_that_need_bytes() {
    let images = image_server().await;
    let gw = start(&config(true)).await;
    for (model, sim) in [("on-bedrock", "bedrock"), ("on-gemini", "gemini")] {
        let response = gw
            .post(
                "/v1/chat/completions",
                &with_image(model, &format!("{images}/cat.png")),
            )
            .await;
        assert_eq!(
            response.status(),
            200,
            "{model}: {}",
            response.text().await.unwrap()
        );
        let sent = gw
            .sim(sim)
            .requests()
            .pop()
            .unwrap()
            .body
            .unwrap()
            .to_string();
        assert!(
            sent.contains(PNG),
            "{model}: the image bytes reached the provider"
        );
        for (path, why) in [("notes.txt", "not an image"), ("big.png", "larger than")] {
            let response = gw
                .post(
                    "/v1/chat/completions",
                    &with_image(model, &format!("{images}/{path}")),
                )
                .await;
            assert_eq!(response.status(), 400);
            let body: Value = response.json().await.unwrap();
            assert!(
                body["error"]["message"].as_str().unwrap().contains(why),
                "{body}"
            );
        }
    }
}

#[tokio::test]
async fn private_addresses_are_refused_unless_configured() {
    let images = image_server().await;
    let gw = start(&config(false)).await;
    let before = gw.sim("gemini").requests().len();
    let response = gw
        .post(
            "/v1/chat/completions",
            &with_image("on-gemini", &format!("{images}/cat.png")),
        )
        .await;
    assert_eq!(response.status(), 400);
    let body: Value = response.json().await.unwrap();
    assert_eq!(
        body["error"]["param"],
        "messages[0].content[1].image_url.url"
    );
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("private")
    );
    assert_eq!(
        gw.sim("gemini").requests().len(),
        before,
        "nothing was sent upstream"
    );
}

//! Image URLs for providers that only take inline bytes (Bedrock, Gemini): the gateway fetches
//! them, refusing private addresses unless the provider's `image_fetch` allows them.

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::Path;
use axum::http::header;
use base64::Engine as _;
use common::{error_of, start};
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

/// A loopback image server whose `/img/{n}` answers `n` bytes of PNG, counting hits per path.
#[expect(clippy::unwrap_used, reason = "test helper")]
async fn counting_image_server() -> (String, Arc<Mutex<HashMap<String, usize>>>) {
    let hits: Arc<Mutex<HashMap<String, usize>>> = Arc::default();
    let counted = Arc::clone(&hits);
    let app = axum::Router::new().route(
        "/img/{size}",
        axum::routing::get(move |Path(size): Path<usize>| {
            let counted = Arc::clone(&counted);
            async move {
                *counted
                    .lock()
                    .unwrap()
                    .entry(format!("/img/{size}"))
                    .or_default() += 1;
                ([(header::CONTENT_TYPE, "image/png")], vec![7u8; size])
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await });
    (url, hits)
}

/// Two Gemini deployments of `twice`, the first always failing with 503; `once` on the second.
fn failover_config(image_fetch: &str) -> String {
    format!(
        r#"
[[providers]]
name = "gemini-down"
kind = "sim"
dialect = "gemini"
api_key = "k"
image_fetch = {image_fetch}
sim = {{ error_rate = 1.0, error_status = 503 }}

[[providers]]
name = "gemini"
kind = "sim"
dialect = "gemini"
api_key = "k"
image_fetch = {image_fetch}

[[models]]
name = "twice"
deployments = [
  {{ provider = "gemini-down", target = "gemini-2.5-flash" }},
  {{ provider = "gemini", target = "gemini-2.5-flash" }},
]

[[models]]
name = "once"
deployments = [{{ provider = "gemini", target = "gemini-2.5-flash" }}]

[routes.default]
objective = "order"
"#
    )
}

fn with_images(model: &str, urls: &[String]) -> Value {
    let mut content = vec![json!({"type": "text", "text": "What are these?"})];
    content.extend(
        urls.iter()
            .map(|url| json!({"type": "image_url", "image_url": {"url": url}})),
    );
    json!({"model": model, "messages": [{"role": "user", "content": content}]})
}

#[tokio::test]
async fn images_are_fetched_once_for_all_the_attempts_of_a_request() {
    let (images, hits) = counting_image_server().await;
    let gw = start(&failover_config("{ allow_private = true }")).await;
    let urls = [format!("{images}/img/100"), format!("{images}/img/200")];
    let response = gw
        .post("/v1/chat/completions", &with_images("twice", &urls))
        .await;
    assert_eq!(response.status(), 200, "{}", response.text().await.unwrap());
    assert_eq!(gw.sim("gemini-down").requests().len(), 1, "first attempt");
    assert_eq!(gw.sim("gemini").requests().len(), 1, "second attempt");
    assert_eq!(
        *hits.lock().unwrap(),
        HashMap::from([("/img/100".to_owned(), 1), ("/img/200".to_owned(), 1)]),
        "one fetch per image for both attempts"
    );
    let sent = gw.sim("gemini").requests().pop().unwrap().body.unwrap();
    let expected = base64::engine::general_purpose::STANDARD.encode(vec![7u8; 200]);
    assert!(
        sent.to_string().contains(&expected),
        "the bytes reached the provider"
    );
}

#[tokio::test]
async fn too_many_images_are_refused_before_any_fetch() {
    let (images, hits) = counting_image_server().await;
    let gw = start(&failover_config("{ allow_private = true }")).await;
    let urls: Vec<String> = (0..21)
        .map(|i| format!("{images}/img/{}", 10 + i))
        .collect();
    let response = gw
        .post("/v1/chat/completions", &with_images("once", &urls))
        .await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(
        body["error"]["param"],
        "messages[0].content[21].image_url.url"
    );
    assert_eq!(
        body["error"]["message"],
        "The request names 21 image URLs; at most 20 are fetched per request."
    );
    assert!(hits.lock().unwrap().is_empty(), "nothing was fetched");
    assert!(gw.sim("gemini").requests().is_empty(), "nothing was sent");
}

#[tokio::test]
async fn the_images_of_a_request_are_capped_in_bytes_together() {
    let (images, _hits) = counting_image_server().await;
    let gw = start(&failover_config(
        "{ allow_private = true, max_total_bytes = 100000 }",
    ))
    .await;
    let fits = [format!("{images}/img/40000"), format!("{images}/img/50000")];
    let response = gw
        .post("/v1/chat/completions", &with_images("once", &fits))
        .await;
    assert_eq!(response.status(), 200);
    let over = [
        format!("{images}/img/40000"),
        format!("{images}/img/50000"),
        format!("{images}/img/20000"),
    ];
    let response = gw
        .post("/v1/chat/completions", &with_images("once", &over))
        .await;
    let (status, body) = error_of(response).await;
    assert_eq!(status, 400, "{body}");
    assert_eq!(body["error"]["param"], "messages");
    assert_eq!(
        body["error"]["message"],
        "The request's images add up to more than 100000 bytes; at most that much is fetched per request."
    );
    assert_eq!(
        gw.sim("gemini").requests().len(),
        1,
        "only the first was sent"
    );
}

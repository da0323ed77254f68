//! What the suites do with a request again and again.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use serde_json::Value;

/// Sends `request` and reads its answer, whatever its status, as JSON.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// Asserts that `response`'s `content-type` begins with `prefix`.
pub fn assert_content_type(response: &reqwest::Response, prefix: &str) {
    let found = response.headers()["content-type"].to_str().unwrap();
    assert!(found.starts_with(prefix), "content-type: {found}");
}

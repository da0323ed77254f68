//! What the suites do with a request again and again.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use serde_json::Value;

/// Sends `request` and reads its answer, whatever its status, as JSON.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

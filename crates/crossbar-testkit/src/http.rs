//! What the suites do with a request again and again.

#![expect(clippy::unwrap_used, reason = "test helpers: a failure fails the test")]

use serde_json::Value;

/// Sends `request` and reads its answer, whatever its status, as JSON.
pub async fn json_of(request: reqwest::RequestBuilder) -> Value {
    request.send().await.unwrap().json().await.unwrap()
}

/// The payloads of an AWS event stream (prelude, headers, payload, CRC per message), each as
/// JSON or why not; a message cut short ends the list with an error.
pub fn event_payloads(mut bytes: &[u8]) -> Vec<Result<Value, String>> {
    let be32 = |b: &[u8]| u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
    let mut out = Vec::new();
    while bytes.len() >= 16 {
        let total = be32(bytes);
        let headers = be32(&bytes[4..]);
        if total > bytes.len() || 12 + headers + 4 > total {
            out.push(Err(format!(
                "a message cut short: {total} bytes announced, {} left",
                bytes.len()
            )));
            break;
        }
        out.push(
            serde_json::from_slice(&bytes[12 + headers..total - 4]).map_err(|e| e.to_string()),
        );
        bytes = &bytes[total..];
    }
    out
}

/// Asserts that `response`'s `content-type` begins with `prefix`.
pub fn assert_content_type(response: &reqwest::Response, prefix: &str) {
    let found = response.headers()["content-type"].to_str().unwrap();
    assert!(found.starts_with(prefix), "content-type: {found}");
}

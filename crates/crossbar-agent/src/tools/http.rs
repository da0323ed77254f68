//! HTTP tools declared in the spec: a method, a URL template whose `{placeholders}` are filled
//! from the arguments (URL-encoded), headers from the environment, and the remaining arguments
//! as a query string (GET, DELETE) or a JSON body (POST, PUT, PATCH). The same address checks
//! as `http_fetch` apply, so a model cannot steer a tool onto the internal network.

use std::time::Duration;

use crossbar_core::chat;
use futures::future::BoxFuture;
use serde_json::{Map, Value};

use super::Tool;
use super::builtin::{checked_address, pinned_client, read_capped};
use crate::spec::{HttpToolSpec, placeholders};

const MAX_BODY: usize = 256 * 1024;

pub struct HttpTool {
    pub spec: HttpToolSpec,
}

fn encode_component(text: &str) -> String {
    let mut out = String::new();
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || matches!(byte, b'-' | b'_' | b'.' | b'~') {
            out.push(char::from(byte));
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

fn as_text(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

impl Tool for HttpTool {
    fn definition(&self) -> chat::Tool {
        chat::Tool {
            name: self.spec.name.clone(),
            description: self.spec.description.clone(),
            parameters: Some(self.spec.parameters.clone()),
            strict: None,
        }
    }

    fn idempotent(&self) -> bool {
        self.spec.idempotent
    }

    fn timeout(&self) -> Option<Duration> {
        Some(Duration::from_secs(self.spec.timeout_s))
    }

    fn call(&self, arguments: Value) -> BoxFuture<'_, Result<String, String>> {
        Box::pin(async move {
            let mut rest: Map<String, Value> = match arguments {
                Value::Object(map) => map,
                _ => Map::new(),
            };
            let mut url = self.spec.url.clone();
            for name in placeholders(&self.spec.url) {
                let value = rest
                    .remove(&name)
                    .ok_or_else(|| format!("missing argument `{name}`"))?;
                url = url.replace(&format!("{{{name}}}"), &encode_component(&as_text(&value)));
            }
            let mut url = reqwest::Url::parse(&url).map_err(|e| format!("invalid URL: {e}"))?;
            let body_method = matches!(
                self.spec.method,
                reqwest::Method::POST | reqwest::Method::PUT | reqwest::Method::PATCH
            );
            if !body_method && !rest.is_empty() {
                let mut pairs = url.query_pairs_mut();
                for (key, value) in &rest {
                    pairs.append_pair(key, &as_text(value));
                }
            }
            let addr = checked_address(&url, self.spec.allow_private).await?;
            // A second longer than the toolbox's deadline, so that one reports the timeout.
            let client = pinned_client(&url, addr, Duration::from_secs(self.spec.timeout_s + 1))?;
            let mut request = client.request(self.spec.method.clone(), url);
            for (name, value) in &self.spec.headers {
                request = request.header(name, value);
            }
            // The same key for the same call however many times it is sent (a takeover).
            if let Some(key) = super::idempotency_key() {
                request = request.header("Idempotency-Key", key);
            }
            if body_method {
                request = request.json(&Value::Object(rest));
            }
            let response = request
                .send()
                .await
                .map_err(|e| format!("request failed: {}", e.without_url()))?;
            let status = response.status();
            let (body, cut) = read_capped(response, MAX_BODY).await?;
            let mut text = String::from_utf8_lossy(&body).into_owned();
            if cut {
                text.push_str("\n[truncated]");
            }
            if status.is_success() {
                Ok(text)
            } else {
                Err(format!("HTTP {}: {text}", status.as_u16()))
            }
        })
    }
}

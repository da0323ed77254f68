//! The external guardrail: the canonical request (and, with `answers = true`, the answer) is
//! POSTed as JSON to a URL the route names, which answers `{"action":"allow"}`,
//! `{"action":"deny","reason":"..."}` or `{"action":"rewrite","request":{...}}` (for an
//! answer: `"answer":{...}`). No answer in time, a failed call or an unreadable answer is the
//! route's `on_error`: `allow` (fail open) or `deny` (fail closed).

use std::sync::LazyLock;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::chat::{ChatRequest, ChatResponse};

/// `webhook = { url, timeout_ms, on_error, answers }`.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(try_from = "Spec")]
pub struct Webhook {
    pub url: String,
    pub timeout: Duration,
    pub on_error: OnError,
    /// Whether answers are sent too (non-streamed ones: a stream's text has left by its end).
    pub answers: bool,
}

/// What a webhook that cannot answer means.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OnError {
    /// Fail open: the request goes on unchecked.
    #[default]
    Allow,
    /// Fail closed: the request is refused (503 `guardrail_unavailable`).
    Deny,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Spec {
    url: String,
    #[serde(default = "default_timeout_ms")]
    timeout_ms: u64,
    #[serde(default)]
    on_error: OnError,
    #[serde(default)]
    answers: bool,
}

fn default_timeout_ms() -> u64 {
    1000
}

/// The longest a request may wait on its guardrail.
const MAX_TIMEOUT_MS: u64 = 60_000;

impl TryFrom<Spec> for Webhook {
    type Error = String;

    fn try_from(spec: Spec) -> Result<Self, String> {
        let url = reqwest::Url::parse(&spec.url)
            .map_err(|e| format!("guardrails.webhook.url `{}`: {e}", spec.url))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "guardrails.webhook.url must be http or https, not `{}`",
                url.scheme()
            ));
        }
        if !(1..=MAX_TIMEOUT_MS).contains(&spec.timeout_ms) {
            return Err(format!(
                "guardrails.webhook.timeout_ms must be 1 to {MAX_TIMEOUT_MS}"
            ));
        }
        Ok(Self {
            url: spec.url,
            timeout: Duration::from_millis(spec.timeout_ms),
            on_error: spec.on_error,
            answers: spec.answers,
        })
    }
}

/// What the webhook decided.
#[derive(Clone, Debug, PartialEq)]
pub enum WebhookOutcome<T> {
    Allow,
    Deny {
        reason: Option<String>,
    },
    /// The body to use instead (the request, or the answer).
    Rewrite(Box<T>),
    /// No usable answer (timeout, connection, status, body); `on_error` decides.
    Failed {
        error: String,
    },
}

impl<T> WebhookOutcome<T> {
    /// The metric label: `allow`, `deny`, `rewrite`, `error`.
    pub fn label(&self) -> &'static str {
        match self {
            Self::Allow => "allow",
            Self::Deny { .. } => "deny",
            Self::Rewrite(_) => "rewrite",
            Self::Failed { .. } => "error",
        }
    }
}

#[derive(Serialize)]
struct Call<'a> {
    /// `request` or `answer`.
    kind: &'static str,
    route: &'a str,
    request: &'a ChatRequest,
    #[serde(skip_serializing_if = "Option::is_none")]
    answer: Option<&'a ChatResponse>,
}

#[derive(Deserialize)]
struct Reply {
    action: String,
    #[serde(default)]
    reason: Option<String>,
    #[serde(default)]
    request: Option<Value>,
    #[serde(default)]
    answer: Option<Value>,
}

/// One client for every webhook: connections are reused across requests.
static CLIENT: LazyLock<reqwest::Client> = LazyLock::new(reqwest::Client::new);

impl Webhook {
    /// Asks about `request` on `route`.
    pub async fn check_request(
        &self,
        route: &str,
        request: &ChatRequest,
    ) -> WebhookOutcome<ChatRequest> {
        let call = Call {
            kind: "request",
            route,
            request,
            answer: None,
        };
        self.call(&call, |reply| reply.request).await
    }

    /// Asks about `answer` to `request` on `route`.
    pub async fn check_answer(
        &self,
        route: &str,
        request: &ChatRequest,
        answer: &ChatResponse,
    ) -> WebhookOutcome<ChatResponse> {
        let call = Call {
            kind: "answer",
            route,
            request,
            answer: Some(answer),
        };
        self.call(&call, |reply| reply.answer).await
    }

    async fn call<T: serde::de::DeserializeOwned>(
        &self,
        call: &Call<'_>,
        rewritten: fn(Reply) -> Option<Value>,
    ) -> WebhookOutcome<T> {
        let failed = |error: String| WebhookOutcome::Failed { error };
        let sent = CLIENT
            .post(&self.url)
            .timeout(self.timeout)
            .json(call)
            .send()
            .await;
        let response = match sent {
            Ok(response) if response.status().is_success() => response,
            Ok(response) => return failed(format!("answered {}", response.status())),
            Err(e) if e.is_timeout() => {
                return failed(format!("no answer within {} ms", self.timeout.as_millis()));
            }
            Err(e) => return failed(crate::error::error_chain(&e)),
        };
        let reply: Reply = match response.json().await {
            Ok(reply) => reply,
            Err(e) => return failed(format!("unreadable answer: {e}")),
        };
        match reply.action.as_str() {
            "allow" => WebhookOutcome::Allow,
            "deny" => WebhookOutcome::Deny {
                reason: reply.reason,
            },
            "rewrite" => match rewritten(reply).map(serde_json::from_value::<T>) {
                Some(Ok(body)) => WebhookOutcome::Rewrite(Box::new(body)),
                Some(Err(e)) => failed(format!("unreadable rewrite: {e}")),
                None => failed("a rewrite without its body".to_owned()),
            },
            other => failed(format!("unknown action `{other}`")),
        }
    }
}

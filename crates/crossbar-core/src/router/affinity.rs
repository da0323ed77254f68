//! Prompt-cache affinity: providers bill cached input at a fraction, and a cache lives on the
//! deployment that saw the prefix. Requests sharing a long prefix (system + tools + first
//! message) go back to the deployment that served it, for a while, unless health or
//! constraints say otherwise.

use std::collections::HashMap;
use std::hash::{DefaultHasher, Hash, Hasher};
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

use crate::chat::{ChatRequest, ContentPart, ImageSource, Role, WireDialect};
use crate::config::AffinityConfig;
use crate::router::lock;

/// Remembered prefixes; beyond this, expired ones are dropped, then the oldest.
const CAPACITY: usize = 10_000;

#[derive(Clone, Copy, Debug)]
pub struct AffinitySettings {
    pub ttl: Duration,
    pub min_prefix_tokens: u64,
}

impl AffinitySettings {
    /// `None` when affinity is off (`ttl_s = 0`).
    pub fn from_config(config: Option<&AffinityConfig>) -> Option<Self> {
        let ttl = config.and_then(|c| c.ttl_s).unwrap_or(300);
        (ttl > 0).then(|| Self {
            ttl: Duration::from_secs(ttl),
            min_prefix_tokens: config.and_then(|c| c.min_prefix_tokens).unwrap_or(1024),
        })
    }
}

/// The client's own cache key (OpenAI's `prompt_cache_key`, from a Chat Completions or
/// Responses client): requests that share it are meant to share a cache, however short.
fn client_cache_key(request: &ChatRequest) -> Option<&str> {
    request
        .passthrough
        .of(WireDialect::Responses)
        .and_then(|p| p.fields.get("prompt_cache_key"))
        .or_else(|| request.openai_passthrough.get("prompt_cache_key"))
        .and_then(serde_json::Value::as_str)
        .filter(|key| !key.is_empty())
}

/// The cacheable prefix of a request, hashed; `None` when it is too short to be cached. A
/// client's `prompt_cache_key` stands for the prefix (Codex sends its session id there).
pub fn prefix_key(request: &ChatRequest, min_tokens: u64) -> Option<u64> {
    let mut hasher = DefaultHasher::new();
    if let Some(key) = client_cache_key(request) {
        request.model.hash(&mut hasher);
        "prompt_cache_key".hash(&mut hasher);
        key.hash(&mut hasher);
        return Some(hasher.finish());
    }
    let mut bytes = 0usize;
    request.model.hash(&mut hasher);
    let mut text = |text: &str, hasher: &mut DefaultHasher| {
        bytes += text.len();
        text.hash(hasher);
    };
    for tool in &request.tools {
        text(&tool.name, &mut hasher);
        text(tool.description.as_deref().unwrap_or(""), &mut hasher);
        if let Some(parameters) = &tool.parameters {
            text(&parameters.to_string(), &mut hasher);
        }
    }
    // Instructions, then the first message after them.
    let leading = request
        .messages
        .iter()
        .take_while(|m| matches!(m.role, Role::System | Role::Developer))
        .count();
    for message in request.messages.iter().take(leading + 1) {
        (message.role as u8).hash(&mut hasher);
        for part in &message.content {
            match part {
                ContentPart::Text { text: t } => text(t, &mut hasher),
                ContentPart::Image { source, .. } => match source {
                    ImageSource::Url(url) => url.hash(&mut hasher),
                    ImageSource::Base64 { data, .. } => data.hash(&mut hasher),
                },
                ContentPart::Document { data, .. } | ContentPart::Audio { data, .. } => {
                    data.hash(&mut hasher)
                }
            }
        }
    }
    // About four bytes a token: exact counts do not matter for a threshold.
    (bytes as u64 / 4 >= min_tokens).then(|| hasher.finish())
}

#[derive(Debug)]
struct Entry {
    deployment: usize,
    expires: Instant,
}

/// Prefix hash → the deployment (by index) that last served it.
#[derive(Debug, Default)]
pub struct Affinity {
    entries: Mutex<HashMap<u64, Entry>>,
}

impl Affinity {
    pub fn lookup(&self, key: u64, now: Instant) -> Option<usize> {
        let entries = lock(&self.entries);
        entries
            .get(&key)
            .filter(|e| e.expires > now)
            .map(|e| e.deployment)
    }

    pub fn remember(&self, key: u64, deployment: usize, now: Instant, ttl: Duration) {
        let mut entries = lock(&self.entries);
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.retain(|_, e| e.expires > now);
            if entries.len() >= CAPACITY
                && let Some(oldest) = entries
                    .iter()
                    .min_by_key(|(_, e)| e.expires)
                    .map(|(k, _)| *k)
            {
                entries.remove(&oldest);
            }
        }
        entries.insert(
            key,
            Entry {
                deployment,
                expires: now + ttl,
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::chat::Message;

    fn request(system: &str, question: &str, later: &str) -> ChatRequest {
        ChatRequest::new(
            "m",
            vec![
                Message::text(Role::System, system),
                Message::text(Role::User, question),
                Message::text(Role::Assistant, "ok"),
                Message::text(Role::User, later),
            ],
        )
    }

    #[test]
    fn key_covers_instructions_and_first_message_only() {
        let long = "You are a careful assistant. ".repeat(200);
        let a = prefix_key(&request(&long, "q", "first"), 1024).unwrap();
        let b = prefix_key(&request(&long, "q", "second"), 1024).unwrap();
        assert_eq!(a, b, "later turns do not change the prefix");
        let c = prefix_key(&request(&long, "other question", "first"), 1024).unwrap();
        assert_ne!(a, c);
        assert_eq!(prefix_key(&request("short", "q", "x"), 1024), None);
    }

    /// A client's `prompt_cache_key` keys affinity whatever the prefix, per model.
    #[test]
    fn a_client_cache_key_stands_for_the_prefix() {
        let mut short = request("short", "q", "x");
        assert_eq!(prefix_key(&short, 1024), None);
        short.passthrough.dialect = Some(WireDialect::Responses);
        short
            .passthrough
            .fields
            .insert("prompt_cache_key".into(), serde_json::json!("session-1"));
        let keyed = prefix_key(&short, 1024).unwrap();
        let mut other = request("different instructions", "other", "y");
        other
            .openai_passthrough
            .insert("prompt_cache_key".into(), serde_json::json!("session-1"));
        assert_eq!(prefix_key(&other, 1024), Some(keyed));
        other
            .openai_passthrough
            .insert("prompt_cache_key".into(), serde_json::json!("session-2"));
        assert_ne!(prefix_key(&other, 1024), Some(keyed));
        other.model = "another".into();
        other
            .openai_passthrough
            .insert("prompt_cache_key".into(), serde_json::json!("session-1"));
        assert_ne!(prefix_key(&other, 1024), Some(keyed));
    }

    #[tokio::test(start_paused = true)]
    async fn entries_expire() {
        let affinity = Affinity::default();
        let now = Instant::now();
        affinity.remember(7, 2, now, Duration::from_secs(10));
        assert_eq!(affinity.lookup(7, now), Some(2));
        tokio::time::advance(Duration::from_secs(10)).await;
        assert_eq!(affinity.lookup(7, Instant::now()), None);
    }
}

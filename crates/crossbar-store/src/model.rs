//! The rows: what one request cost and how it was served, and a virtual key.

use serde::{Deserialize, Serialize};

/// One gateway request. Money is in picodollars (1e-12 USD) so that sums are exact: a few
/// tokens of a cheap embedding model cost far less than a micro-dollar.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageRecord {
    pub request_id: String,
    /// When the request arrived, ms since the Unix epoch.
    pub time_ms: i64,
    /// The virtual key's id; `None` for an open gateway or a static `server.api_keys` key.
    pub key_id: Option<String>,
    /// `chat`, `messages` or `embeddings`.
    pub api: String,
    /// The logical model the client asked for (empty when the body never parsed).
    pub model: String,
    pub route: Option<String>,
    /// The deployment that answered, `model@provider`.
    pub deployment: Option<String>,
    pub provider: Option<String>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    pub stream: bool,
    /// The HTTP status sent to the client.
    pub status: u16,
    /// Why the request failed, or why its stream broke.
    pub error: Option<String>,
    /// Canonical usage (providers.md §7.3): input includes cached and cache-write tokens,
    /// output includes reasoning.
    pub input_tokens: u64,
    pub cached_input_tokens: u64,
    pub cache_write_tokens: u64,
    pub output_tokens: u64,
    pub reasoning_tokens: u64,
    /// Every attempt's cost: the answer's from its usage, a cancelled hedge's estimated.
    pub cost_pusd: u64,
    pub latency_ms: u64,
    /// Time to the first byte of the answer sent to the client.
    pub ttft_ms: Option<u64>,
    /// Time spent in the gateway rather than waiting on upstreams.
    pub overhead_ms: u64,
    pub attempts: Vec<AttemptRecord>,
    /// Who the call was for beyond the key, and what the gateway did on the way.
    pub tags: UsageTags,
}

/// A usage record's notes beyond the call itself (migration 9).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct UsageTags {
    /// The team of the caller's key, when it has one.
    pub team_id: Option<String>,
    /// The end user inside the key: the request's `user` field or `x-crossbar-user`.
    pub end_user: Option<String>,
    /// Answered from the response cache: no upstream call, no upstream cost.
    pub cache_hit: bool,
    /// What the guardrails found and did, e.g. `email:mask:2,secret:block:1` (names and
    /// counts, never the text).
    pub guardrails: Option<String>,
}

/// One upstream call made for a request.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct AttemptRecord {
    pub deployment: String,
    pub provider: String,
    pub cloud: String,
    pub region: String,
    /// `ok`, `error` or `cancelled`.
    pub outcome: String,
    /// The status the attempt's error maps to; `None` for a success or a cancellation.
    pub status: Option<u16>,
    /// Time to its answer (or first token for streams), or to its failure.
    pub latency_ms: u64,
    pub hedge: bool,
    /// Why it ended, when it failed.
    pub reason: Option<String>,
    pub cost_pusd: u64,
}

/// A virtual key: its secret is stored only as a SHA-256 hash.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyRecord {
    pub id: String,
    pub name: Option<String>,
    /// Hex SHA-256 of the secret.
    #[serde(skip_serializing)]
    pub hash: String,
    /// The secret's first characters, so a user can tell keys apart.
    pub prefix: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// Logical models (globs) the key may call; empty allows all.
    pub models: Vec<String>,
    /// Routes the key may use; empty allows all.
    pub routes: Vec<String>,
    pub limits: KeyLimits,
    /// The team the key belongs to: its limits and allow-lists apply too.
    pub team_id: Option<String>,
}

/// A key's limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KeyLimits {
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    /// USD budgets in picodollars, per UTC day, per UTC month and over the key's life.
    pub budget_day_pusd: Option<u64>,
    pub budget_month_pusd: Option<u64>,
    pub budget_total_pusd: Option<u64>,
}

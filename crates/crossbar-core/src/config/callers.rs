//! `[teams.NAME]` and `[keys.NAME]`: policies of the callers themselves, by the name of a
//! virtual key's team or of the key, on top of their routes'. Budgets and limits of teams and
//! keys live in the store (managed at runtime); what their requests may send and what is kept
//! of them is policy, reviewed and versioned with the routes in this file.

use serde::Deserialize;

/// A team's or a key's policy.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CallerPolicy {
    /// Replaces the route's guardrails for this caller's requests (a key's replaces its
    /// team's): a team that handles personal data can block what other teams mask.
    pub guardrails: Option<crate::guardrails::Rules>,
    /// Keeps request and answer bodies for this caller's requests (on top of routes with
    /// `payload_log = true`).
    #[serde(default)]
    pub payload_log: bool,
}

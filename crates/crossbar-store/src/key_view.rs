//! A key as people see it (the admin API, `crossbar keys`, the dashboard): budgets in USD,
//! never the secret nor its hash.

use crossbar_core::pricing::pico_to_usd;
use schemars::JsonSchema;
use serde::Serialize;
use serde_json::Value;

use crate::KeyRecord;

/// A key as the admin API, the dashboard and the CLI show it.
#[derive(Clone, Debug, Serialize, JsonSchema)]
pub struct KeyView {
    pub id: String,
    pub name: Option<String>,
    /// The secret's first characters, so a user can tell keys apart.
    pub prefix: String,
    pub created_ms: i64,
    pub revoked_ms: Option<i64>,
    /// Logical models (globs) the key may call; empty allows all.
    pub models: Vec<String>,
    /// Routes the key may use; empty allows all.
    pub routes: Vec<String>,
    pub rpm: Option<u64>,
    pub tpm: Option<u64>,
    pub budget_usd_day: Option<f64>,
    pub budget_usd_month: Option<f64>,
    pub budget_usd_total: Option<f64>,
    /// The team's id.
    pub team: Option<String>,
}

impl From<&KeyRecord> for KeyView {
    fn from(record: &KeyRecord) -> Self {
        let usd = |p: Option<u64>| p.map(pico_to_usd);
        Self {
            id: record.id.clone(),
            name: record.name.clone(),
            prefix: record.prefix.clone(),
            created_ms: record.created_ms,
            revoked_ms: record.revoked_ms,
            models: record.models.clone(),
            routes: record.routes.clone(),
            rpm: record.limits.rpm,
            tpm: record.limits.tpm,
            budget_usd_day: usd(record.limits.budget_day_pusd),
            budget_usd_month: usd(record.limits.budget_month_pusd),
            budget_usd_total: usd(record.limits.budget_total_pusd),
            team: record.team_id.clone(),
        }
    }
}

/// [`KeyView`] as JSON, for the CLI and the audit log's before/after.
pub fn key_json(record: &KeyRecord) -> Value {
    // A struct of strings and numbers always serializes.
    serde_json::to_value(KeyView::from(record)).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::KeyLimits;

    #[test]
    fn a_key_shows_its_limits_in_usd_and_never_its_hash() {
        let record = KeyRecord {
            id: "key_1".to_owned(),
            name: Some("n".to_owned()),
            hash: "secret-hash".to_owned(),
            prefix: "cb-12".to_owned(),
            created_ms: 5,
            revoked_ms: Some(6),
            models: vec!["m*".to_owned()],
            routes: vec!["r".to_owned()],
            limits: KeyLimits {
                rpm: Some(1),
                tpm: Some(2),
                budget_day_pusd: Some(3_000_000),
                budget_month_pusd: None,
                budget_total_pusd: Some(0),
            },
            team_id: Some("team_1".to_owned()),
        };
        assert_eq!(
            key_json(&record),
            json!({
                "id": "key_1", "name": "n", "prefix": "cb-12", "created_ms": 5,
                "revoked_ms": 6, "models": ["m*"], "routes": ["r"], "rpm": 1, "tpm": 2,
                "budget_usd_day": 0.000003, "budget_usd_month": null, "budget_usd_total": 0.0,
                "team": "team_1",
            })
        );
    }
}

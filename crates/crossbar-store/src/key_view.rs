//! A key as people see it (the admin API, `crossbar keys`, the dashboard): budgets in USD,
//! never the hash.

use crossbar_core::pricing::pico_to_usd;
use serde_json::{Value, json};

use crate::KeyRecord;

/// A key as the admin API shows it: budgets in USD, no hash.
pub fn key_json(record: &KeyRecord) -> Value {
    let usd = |p: Option<u64>| p.map(pico_to_usd);
    json!({
        "id": record.id,
        "name": record.name,
        "prefix": record.prefix,
        "created_ms": record.created_ms,
        "revoked_ms": record.revoked_ms,
        "models": record.models,
        "routes": record.routes,
        "rpm": record.limits.rpm,
        "tpm": record.limits.tpm,
        "budget_usd_day": usd(record.limits.budget_day_pusd),
        "budget_usd_month": usd(record.limits.budget_month_pusd),
        "budget_usd_total": usd(record.limits.budget_total_pusd),
        "team": record.team_id,
    })
}

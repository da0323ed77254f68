//! `[store]`, `[admin]`, `[redis]` and `[telemetry]`: where records, keys and shared state live
//! and where traces go.

use serde::Deserialize;
use toml::Spanned;

use super::Secret;

/// Without `store.url`: a SQLite file in the working directory.
pub const DEFAULT_STORE_URL: &str = "sqlite://crossbar.db?mode=rwc";

/// `[store]`: the usage ledger and the virtual keys.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// `postgres://...`, `sqlite://FILE` or a bare file path. May hold a password, so secret.
    pub url: Option<Spanned<Secret>>,
    /// `false` keeps no records (and allows no virtual keys).
    pub enabled: Option<bool>,
    /// Records older than this many days are deleted in the background; 0 keeps them forever.
    pub retention_days: Option<Spanned<u64>>,
    /// Stored Responses API answers (`store: true`) older than this many days are deleted in
    /// the background, as OpenAI keeps them 30 days; 0 keeps them forever.
    pub responses_retention_days: Option<Spanned<u64>>,
    /// Audit log entries older than this many days are deleted (default 400: a year and a
    /// review period); 0 keeps them forever.
    pub audit_retention_days: Option<Spanned<u64>>,
    /// Payload logs (request and answer bodies of routes with `payload_log = true`) older than
    /// this many days are deleted (default 7); 0 keeps them forever.
    pub payload_retention_days: Option<Spanned<u64>>,
    /// Records waiting to be written beyond this many are dropped (counted and logged).
    pub queue_capacity: Option<Spanned<usize>>,
    /// Records written per transaction at most.
    pub batch_size: Option<Spanned<usize>>,
}

impl StoreConfig {
    pub fn enabled(&self) -> bool {
        self.enabled.unwrap_or(true)
    }

    pub fn url(&self) -> &str {
        self.url
            .as_ref()
            .map_or(DEFAULT_STORE_URL, |u| u.get_ref().0.as_str())
    }

    pub fn retention_days(&self) -> u64 {
        self.retention_days.as_ref().map_or(90, |d| *d.get_ref())
    }

    pub fn responses_retention_days(&self) -> u64 {
        self.responses_retention_days
            .as_ref()
            .map_or(30, |d| *d.get_ref())
    }

    pub fn audit_retention_days(&self) -> u64 {
        self.audit_retention_days
            .as_ref()
            .map_or(400, |d| *d.get_ref())
    }

    pub fn payload_retention_days(&self) -> u64 {
        self.payload_retention_days
            .as_ref()
            .map_or(7, |d| *d.get_ref())
    }

    pub fn queue_capacity(&self) -> usize {
        self.queue_capacity
            .as_ref()
            .map_or(10_000, |c| *c.get_ref())
    }

    pub fn batch_size(&self) -> usize {
        self.batch_size.as_ref().map_or(256, |b| *b.get_ref())
    }
}

/// `[admin]`: the token that guards `/admin/...` (`Authorization: Bearer <token>`).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AdminConfig {
    pub token: Option<Spanned<Secret>>,
}

/// `[redis]`: where replicas share rate-limit counters, budget spend, breaker states and
/// latency statistics.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RedisConfig {
    /// `redis://[user:password@]host:port[/db]`; may hold a password, so secret.
    pub url: Option<Spanned<Secret>>,
    /// Prefix of every key, so several gateways can share one Redis.
    pub prefix: Option<String>,
    /// How often a replica publishes its deployments' health and reads the others'.
    pub sync_interval_ms: Option<Spanned<u64>>,
}

impl RedisConfig {
    pub fn prefix(&self) -> &str {
        self.prefix.as_deref().unwrap_or("crossbar")
    }

    pub fn sync_interval(&self) -> std::time::Duration {
        std::time::Duration::from_millis(
            self.sync_interval_ms
                .as_ref()
                .map_or(500, |ms| (*ms.get_ref()).max(10)),
        )
    }
}

/// `[telemetry]`: where to send traces (OTLP over HTTP, JSON encoding).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    /// The collector's base URL, e.g. `http://localhost:4318`; spans go to `/v1/traces`.
    pub otlp_endpoint: Option<Spanned<String>>,
    /// `service.name` of the spans; default `crossbar`.
    pub service_name: Option<String>,
}

#[cfg(test)]
mod tests {
    use crate::config::{Config, DEFAULT_STORE_URL};

    #[test]
    fn store_and_admin_sections_are_validated_with_locations() {
        let config = Config::from_toml("", "c.toml").unwrap();
        assert!(config.store.enabled());
        assert_eq!(config.store.url(), DEFAULT_STORE_URL);
        assert_eq!(config.store.retention_days(), 90);
        let source = "[store]\nurl = \"postgres://u@h/db\"\nretention_days = 7\n[admin]\ntoken = \"0123456789abcdef\"\n";
        let config = Config::from_toml(source, "c.toml").unwrap();
        assert_eq!(config.store.url(), "postgres://u@h/db");
        assert_eq!(config.store.retention_days(), 7);
        assert_eq!(config.store.responses_retention_days(), 30);
        let config =
            Config::from_toml("[store]\nresponses_retention_days = 0\n", "c.toml").unwrap();
        assert_eq!(config.store.responses_retention_days(), 0);
        assert_eq!(config.store.retention_days(), 90);
        for (bad, message) in [
            ("-1", "invalid value: integer, expected u64"),
            ("\"30\"", "invalid type: string, expected u64"),
            ("1.5", "invalid type: floating point, expected u64"),
        ] {
            let source = format!("[store]\n\nresponses_retention_days = {bad}\n");
            let err = Config::from_toml(&source, "c.toml").unwrap_err().0;
            assert_eq!(
                err,
                format!("c.toml:3: store.responses_retention_days: {message}")
            );
        }
        let err = Config::from_toml("[store]\nurl = \"mysql://h\"\n", "c.toml")
            .unwrap_err()
            .0;
        assert!(err.starts_with("c.toml:2: store.url: "), "{err}");
        let err = Config::from_toml("[store]\n\nqueue_capacity = 0\n", "c.toml")
            .unwrap_err()
            .0;
        assert_eq!(err, "c.toml:3: store.queue_capacity: must be at least 1");
        let err = Config::from_toml("[admin]\ntoken = \"short\"\n", "c.toml")
            .unwrap_err()
            .0;
        assert_eq!(err, "c.toml:2: admin.token: must be at least 16 characters");
    }
}

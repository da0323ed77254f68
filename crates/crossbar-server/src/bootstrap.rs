//! Turns a configuration into a running gateway: starts the simulators that `kind = "sim"`
//! providers need, builds the router, and keeps both alive together.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use crossbar_core::config::{Config, ConfigError, ProviderConfig, ProviderKind};
use crossbar_core::router::Router;
use crossbar_sim::{SimConfig, SimDialect, SimServer};
use crossbar_store::{
    AuditStore, DashboardStore, MemoryResponses, PayloadStore, ResponseStore, RetentionJob,
    SqlStore, Store, UsageWriter, WriterSettings, spawn_retention,
};

use crate::app::AppState;
use crate::keys::VirtualKeys;
use crate::metering::{Background, Metering};
use crate::routes::cache::Caches;
use crate::shared::Shared;
use crate::telemetry::Telemetry;

/// Retention deletes this many records per statement, and looks for more this often.
const RETENTION_BATCH: u32 = 1000;
const RETENTION_INTERVAL: Duration = Duration::from_secs(600);
/// Stored responses kept in memory by a gateway without a store: at most this many, and this
/// many bytes of JSON.
const MEMORY_RESPONSES: usize = 10_000;
const MEMORY_RESPONSE_BYTES: usize = 256 * 1024 * 1024;

/// A built gateway: the router, and the in-process simulators it talks to.
pub struct Gateway {
    pub router: Arc<Router>,
    /// Simulators by provider name; they stop when the gateway is dropped.
    pub sims: HashMap<String, SimServer>,
    pub state: AppState,
    /// The usage and key store; `None` with `store.enabled = false`.
    pub store: Option<Arc<dyn Store>>,
    /// Deletes old usage records while the gateway lives.
    pub retention: Option<Background>,
    /// State shared with other replicas through Redis; `None` without `[redis]`.
    pub shared: Option<Arc<Shared>>,
    /// Publishes and reads deployment health in Redis while the gateway lives.
    pub health_sync: Option<Background>,
}

impl Gateway {
    pub async fn build(config: &Config) -> Result<Self, ConfigError> {
        let (sims, endpoints) = start_sims(config, &HashMap::new()).await?;
        let router = Arc::new(Router::from_config(config, &endpoints)?);
        let sims = sims
            .into_iter()
            .map(|(name, (_, sim))| (name, sim))
            .collect();
        crate::metrics::install();
        let (store, dashboard, audit, responses, writer, retention, runs, payloads) =
            open_store(config).await?;
        let shared = match &config.redis.url {
            Some(url) => Some(Arc::new(
                Shared::connect(&url.get_ref().0, config.redis.prefix())
                    .await
                    .map_err(|e| ConfigError(format!("{}: {e}", config.origin)))?,
            )),
            None => None,
        };
        if let Some(shared) = &shared {
            router.share_state(Arc::clone(shared) as _);
        }
        let health_sync = shared.as_ref().map(|shared| {
            tracing::info!(
                replica = shared.replica(),
                "sharing limits and deployment health through Redis"
            );
            shared.spawn_health_sync(Arc::clone(&router), config.redis.sync_interval())
        });
        let state = AppState {
            router: router.clone(),
            keys: Arc::new(gateway_keys(config)),
            max_body_bytes: config.server.max_body_bytes(),
            metering: Arc::new(Metering::new(writer, telemetry(config))),
            virtual_keys: store.as_ref().map(|s| {
                let keys = VirtualKeys::new(Arc::clone(s));
                Arc::new(match &shared {
                    Some(shared) => keys.with_shared(Arc::clone(shared)),
                    None => keys,
                })
            }),
            admin_token: admin_token(config),
            dashboard,
            audit,
            responses,
            caches: Arc::new(Caches::build(&router, shared.as_ref(), None)),
            shared: shared.clone(),
            callers: Arc::new(crate::callers::Callers::from_config(config)),
            runs: runs.map(|store| crate::routes::runs::Runs { store, specs: None }),
            payloads,
            reload: None,
        };
        // Shadow copies' answers go to the ledger, flagged.
        if let Some(writer) = state.metering.writer() {
            crate::shadow::record_answers(&router, writer.clone());
        }
        Ok(Self {
            router,
            sims,
            state,
            store,
            retention,
            shared,
            health_sync,
        })
    }

    /// Writes every queued usage record: call after the server's drain, before exit.
    pub async fn flush(&self) {
        self.state.metering.flush().await;
    }
}

/// In-process simulators by provider name, each with the settings it was started from (see
/// [`sim_settings`]), so that a reload keeps the ones whose settings did not change.
pub(crate) type Sims = HashMap<String, (String, SimServer)>;

/// What a `kind = "sim"` provider's in-process simulator is started from: its dialect and its
/// `sim` table. `None` for providers that need none (other kinds, or a sim with an endpoint).
pub(crate) fn sim_settings(provider: &ProviderConfig) -> Option<String> {
    if provider.kind != ProviderKind::Sim || provider.endpoint.is_some() {
        return None;
    }
    let dialect = provider.dialect.as_ref().map(|d| d.get_ref().as_str());
    let table = provider
        .sim
        .as_ref()
        .map(|t| toml::Value::Table(t.get_ref().clone()).to_string());
    Some(format!("{dialect:?} {table:?}"))
}

/// Starts the simulators `config`'s `kind = "sim"` providers need, except those `running`
/// already has with the same settings. Returns the ones started, and every simulated
/// provider's endpoint (started or running) for the router.
pub(crate) async fn start_sims(
    config: &Config,
    running: &Sims,
) -> Result<(Sims, HashMap<String, String>), ConfigError> {
    let mut sims = HashMap::new();
    let mut endpoints = HashMap::new();
    for (i, provider) in config.providers.iter().enumerate() {
        let Some(settings) = sim_settings(provider) else {
            continue;
        };
        let name = provider.name.get_ref().clone();
        if let Some((running_settings, sim)) = running.get(&name)
            && *running_settings == settings
        {
            endpoints.insert(name, sim.base_url());
            continue;
        }
        let dialect: SimDialect = match &provider.dialect {
            // The simulator of the kind the dialect stands for (the provider table's row).
            Some(d) => crossbar_core::kinds::simulated(d.get_ref())
                .ok_or_else(|| format!("unknown dialect `{}`", d.get_ref()))
                .and_then(|row| row.simulator.parse().map_err(|e| format!("{e}")))
                .map_err(|e| config.error_at(d, &format!("providers[{i}].dialect"), e))?,
            None => {
                return Err(ConfigError(format!(
                    "provider `{name}`: dialect is required"
                )));
            }
        };
        let sim_config: SimConfig = match &provider.sim {
            Some(table) => toml::Value::Table(table.get_ref().clone())
                .try_into()
                .map_err(|e| config.error_at(table, &format!("providers[{i}].sim"), e))?,
            None => SimConfig::default(),
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| ConfigError(format!("provider `{name}`: starting its simulator: {e}")))?;
        let sim = SimServer::start(listener, dialect, sim_config)
            .await
            .map_err(|e| ConfigError(format!("provider `{name}`: starting its simulator: {e}")))?;
        tracing::info!(provider = %name, dialect = %dialect, url = %sim.base_url(), "simulated provider started");
        endpoints.insert(name.clone(), sim.base_url());
        sims.insert(name, (settings, sim));
    }
    Ok((sims, endpoints))
}

/// `old` with what a reloaded `config` changes: the router (and the routes' response caches,
/// kept where a route's settings did not change), the gateway keys, the body limit and the
/// admin token. The store, the meter and the shared state stay (they need a restart).
pub(crate) fn reloaded_state(old: &AppState, config: &Config, router: Arc<Router>) -> AppState {
    AppState {
        caches: Arc::new(Caches::build(
            &router,
            old.shared.as_ref(),
            Some(&old.caches),
        )),
        router,
        callers: Arc::new(crate::callers::Callers::from_config(config)),
        keys: Arc::new(gateway_keys(config)),
        max_body_bytes: config.server.max_body_bytes(),
        admin_token: admin_token(config),
        ..old.clone()
    }
}

fn gateway_keys(config: &Config) -> Vec<String> {
    config
        .server
        .api_keys
        .iter()
        .map(|k| k.get_ref().0.clone())
        .collect()
}

fn admin_token(config: &Config) -> Option<Arc<str>> {
    config
        .admin
        .token
        .as_ref()
        .map(|t| Arc::from(t.get_ref().0.as_str()))
}

/// The trace exporter, when `telemetry.otlp_endpoint` is set.
fn telemetry(config: &Config) -> Option<Telemetry> {
    let endpoint = config.telemetry.otlp_endpoint.as_ref()?;
    let service = config.telemetry.service_name.as_deref();
    Some(Telemetry::start(
        endpoint.get_ref(),
        service.unwrap_or("crossbar"),
    ))
}

/// The store (also as the dashboard's reads), its writer and its retention task, each absent
/// without a store.
type OpenedStore = (
    Option<Arc<dyn Store>>,
    Option<Arc<dyn DashboardStore>>,
    Option<Arc<dyn AuditStore>>,
    Arc<dyn ResponseStore>,
    Option<UsageWriter>,
    Option<Background>,
    Option<Arc<dyn crate::routes::runs::RunStore>>,
    Option<Arc<dyn PayloadStore>>,
);

/// Where usage records wait when the store cannot take them: beside a SQLite file
/// (`crossbar.db` → `crossbar.db.usage.spool`), in the working directory for PostgreSQL, none
/// for an in-memory database (it cannot outlive the process anyway).
fn spool_path(url: &str) -> Option<std::path::PathBuf> {
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Some("crossbar-usage.spool".into());
    };
    let file = rest.trim_start_matches("//");
    let file = file.split('?').next().unwrap_or_default();
    if file.is_empty() || file.starts_with(":memory:") || url.contains("mode=memory") {
        return None;
    }
    Some(format!("{file}.usage.spool").into())
}

/// Opens the store (migrating it), starts its writer and, with a retention age, the task that
/// deletes old records and old stored responses.
async fn open_store(config: &Config) -> Result<OpenedStore, ConfigError> {
    if !config.store.enabled() {
        // Without a store, `store: true` responses live in memory (bounded, this process only).
        let responses = Arc::new(MemoryResponses::new(
            MEMORY_RESPONSES,
            MEMORY_RESPONSE_BYTES,
        ));
        return Ok((None, None, None, responses, None, None, None, None));
    }
    let sql = Arc::new(
        SqlStore::open(config.store.url())
            .await
            .map_err(|e| ConfigError(format!("{}: store: {e}", config.origin)))?,
    );
    let dashboard: Arc<dyn DashboardStore> = Arc::clone(&sql) as _;
    let responses: Arc<dyn ResponseStore> = Arc::clone(&sql) as _;
    let audit: Arc<dyn AuditStore> = Arc::clone(&sql) as _;
    let runs: Arc<dyn crate::routes::runs::RunStore> = Arc::clone(&sql) as _;
    let payloads: Arc<dyn PayloadStore> = Arc::clone(&sql) as _;
    let store: Arc<dyn Store> = sql;
    tracing::info!(backend = store.backend(), "usage store open");
    let writer = UsageWriter::spawn(
        Arc::clone(&store),
        WriterSettings {
            capacity: config.store.queue_capacity(),
            batch: config.store.batch_size(),
            spool: spool_path(config.store.url()),
            ..WriterSettings::default()
        },
    );
    let days = |n: u64| Duration::from_secs(n.saturating_mul(86_400));
    let mut jobs = Vec::new();
    if config.store.retention_days() > 0 {
        jobs.push(RetentionJob::usage(
            Arc::clone(&store),
            days(config.store.retention_days()),
        ));
    }
    if config.store.responses_retention_days() > 0 {
        jobs.push(RetentionJob::responses(
            Arc::clone(&responses),
            days(config.store.responses_retention_days()),
        ));
    }
    if config.store.audit_retention_days() > 0 {
        jobs.push(RetentionJob::audit(
            Arc::clone(&audit),
            days(config.store.audit_retention_days()),
        ));
    }
    if config.store.payload_retention_days() > 0 {
        jobs.push(RetentionJob::payloads(
            Arc::clone(&payloads),
            days(config.store.payload_retention_days()),
        ));
    }
    let retention = (!jobs.is_empty())
        .then(|| Background(spawn_retention(jobs, RETENTION_BATCH, RETENTION_INTERVAL)));
    Ok((
        Some(store),
        Some(dashboard),
        Some(audit),
        responses,
        Some(writer),
        retention,
        Some(runs),
        Some(payloads),
    ))
}

#[cfg(test)]
mod spool_tests {
    use super::spool_path;

    #[test]
    fn the_spool_sits_beside_the_database() {
        for (url, spool) in [
            (
                "sqlite://crossbar.db?mode=rwc",
                Some("crossbar.db.usage.spool"),
            ),
            (
                "sqlite:///var/lib/crossbar/u.db",
                Some("/var/lib/crossbar/u.db.usage.spool"),
            ),
            ("sqlite::memory:", None),
            ("sqlite://x.db?mode=memory&cache=shared", None),
            ("postgres://u:p@db/crossbar", Some("crossbar-usage.spool")),
        ] {
            assert_eq!(
                spool_path(url).map(|p| p.display().to_string()),
                spool.map(str::to_owned),
                "{url}"
            );
        }
    }
}

//! Turns a configuration into a running gateway: starts the simulators that `kind = "sim"`
//! providers need, builds the router, and keeps both alive together.

use std::collections::HashMap;
use std::sync::Arc;

use crossbar_core::config::{Config, ConfigError, ProviderKind};
use crossbar_core::router::Router;
use crossbar_sim::{SimConfig, SimDialect, SimServer};

use crate::app::AppState;

/// A built gateway: the router, and the in-process simulators it talks to.
pub struct Gateway {
    pub router: Arc<Router>,
    /// Simulators by provider name; they stop when the gateway is dropped.
    pub sims: HashMap<String, SimServer>,
    pub state: AppState,
}

impl Gateway {
    pub async fn build(config: &Config) -> Result<Self, ConfigError> {
        let mut sims = HashMap::new();
        let mut endpoints = HashMap::new();
        for (i, provider) in config.providers.iter().enumerate() {
            if provider.kind != ProviderKind::Sim || provider.endpoint.is_some() {
                continue;
            }
            let name = provider.name.get_ref().clone();
            let dialect: SimDialect = match &provider.dialect {
                // Vertex serves Claude beside Gemini, from the same simulated endpoint.
                Some(d) if d.get_ref() == "vertex-anthropic" => SimDialect::Vertex,
                Some(d) => d
                    .get_ref()
                    .parse()
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
                .map_err(|e| {
                    ConfigError(format!("provider `{name}`: starting its simulator: {e}"))
                })?;
            let sim = SimServer::start(listener, dialect, sim_config)
                .await
                .map_err(|e| {
                    ConfigError(format!("provider `{name}`: starting its simulator: {e}"))
                })?;
            tracing::info!(provider = %name, dialect = %dialect, url = %sim.base_url(), "simulated provider started");
            endpoints.insert(name.clone(), sim.base_url());
            sims.insert(name, sim);
        }
        let router = Arc::new(Router::from_config(config, &endpoints)?);
        let state = AppState {
            router: router.clone(),
            keys: Arc::new(
                config
                    .server
                    .api_keys
                    .iter()
                    .map(|k| k.get_ref().0.clone())
                    .collect(),
            ),
            max_body_bytes: config.server.max_body_bytes(),
        };
        Ok(Self {
            router,
            sims,
            state,
        })
    }
}

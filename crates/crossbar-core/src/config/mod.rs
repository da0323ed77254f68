//! The `crossbar.toml` model: providers, logical models with their deployments and prices, and
//! routes. Validated at load, with errors naming the file, line and key, so a typo fails at start
//! rather than on the first request. `${ENV}` is expanded after parsing, in the fields that take
//! it, so a secret never appears in a parse error's quoted source line.
//!
//! One file per seam: the sections' schemas (`server`, `providers`, `models`, `routes`, `store`),
//! `validate`, `env` (expansion), `discover` (providers from the environment) and `toml_file`
//! (reading, parsing and `file:line: key: message` placement, shared with agent specs).

use std::collections::BTreeMap;
use std::fmt;
use std::path::Path;

use serde::Deserialize;
use toml::Spanned;

mod callers;
mod discover;
mod env;
mod models;
mod providers;
mod routes;
mod server;
mod store;
mod toml_file;
mod validate;

pub use callers::CallerPolicy;
pub use env::expand_vars;
pub use models::{DeploymentConfig, ModelConfig, Price};
pub(crate) use providers::{
    AwsAuth, AzureSettings, BedrockSettings, GoogleAuth, OpenAiOptions, VertexSettings,
};
pub use providers::{
    AwsCredentials, AzureAuth, MaxTokensFieldConfig, OpenAiApi, ProviderConfig, ProviderKind,
    Timeouts,
};
pub use routes::{
    AffinityConfig, BackoffConfig, BreakerConfig, Constraints, HedgeAfter, HedgeConfig,
    HostedTools, MAX_ALIAS_STARS, Objective, RouteConfig, RouteTimeouts, UnknownFields,
};
pub use server::{DEFAULT_LISTEN, ServerConfig};
pub use store::{AdminConfig, DEFAULT_STORE_URL, RedisConfig, StoreConfig, TelemetryConfig};
pub use toml_file::{TomlSource, read_toml};

/// A configuration problem, with its location in the message.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct ConfigError(pub String);

/// The built-in catalog used when no file and no provider keys are given: everything runs on
/// simulated providers, offline.
pub const BUILTIN_SIM: &str = include_str!("../../config/builtin-sim.toml");

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub server: ServerConfig,
    #[serde(default)]
    pub providers: Vec<ProviderConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub routes: BTreeMap<String, Spanned<RouteConfig>>,
    /// Model ids clients ask for (exact, or `*` patterns) mapped to a logical model or a route
    /// name, so coding agents' own ids (`claude-opus-5-5`, `gpt-5.5`) reach a configured model.
    #[serde(default)]
    pub aliases: BTreeMap<String, Spanned<String>>,
    /// Where usage records and virtual keys live.
    #[serde(default)]
    pub store: StoreConfig,
    /// The admin HTTP API (`/admin/...`), closed unless a token is set.
    #[serde(default)]
    pub admin: AdminConfig,
    /// OpenTelemetry traces; nothing is sent anywhere without an endpoint.
    #[serde(default)]
    pub telemetry: TelemetryConfig,
    /// State shared by replicas (limits, budgets, breakers, latency); in memory without it.
    #[serde(default)]
    pub redis: RedisConfig,
    /// Policies of the virtual keys of a team, by the team's name (guardrails, payload logs).
    #[serde(default)]
    pub teams: BTreeMap<String, CallerPolicy>,
    /// Policies of one virtual key, by its name (over its team's).
    #[serde(default)]
    pub keys: BTreeMap<String, CallerPolicy>,
    /// Agent runs submitted over HTTP; without it `POST /v1/crossbar/runs` is refused.
    #[serde(default)]
    pub agents: Option<crate::runs::AgentsConfig>,
    /// Where this configuration came from, for messages.
    #[serde(skip)]
    pub origin: String,
    #[serde(skip)]
    source: SourceText,
}

/// The file's text, kept to turn spans into line numbers; never printed, as it may hold keys.
#[derive(Default)]
struct SourceText(String);

impl fmt::Debug for SourceText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "<{} bytes>", self.0.len())
    }
}

/// A string that is never printed: `Debug` shows `[redacted]`.
#[derive(Clone, Default, Deserialize, PartialEq, Eq)]
#[serde(transparent)]
pub struct Secret(pub String);

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("[redacted]")
    }
}

/// For `${VAR}` expansion, which reads and replaces the text.
impl AsRef<str> for Secret {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl From<String> for Secret {
    fn from(text: String) -> Self {
        Self(text)
    }
}

impl Config {
    /// Parses, expands `${ENV}` and validates a configuration.
    pub fn from_toml(source: &str, origin: &str) -> Result<Self, ConfigError> {
        let mut config: Config = TomlSource::new(source, origin).parse()?;
        config.origin = origin.to_owned();
        config.source = SourceText(source.to_owned());
        config.expand_env()?;
        config.validate()?;
        Ok(config)
    }

    pub fn load(path: &Path) -> Result<Self, ConfigError> {
        let source = read_toml(path)?;
        Self::from_toml(&source, &path.display().to_string())
    }

    pub fn listen(&self) -> &str {
        self.server.listen.as_deref().unwrap_or(DEFAULT_LISTEN)
    }

    /// The file this configuration was read from, to place messages.
    fn toml_source(&self) -> TomlSource<'_> {
        TomlSource::new(&self.source.0, &self.origin)
    }

    /// The 1-based line of a byte offset in the source, for messages.
    pub fn line_of(&self, offset: usize) -> usize {
        self.toml_source().line_of(offset)
    }

    /// A message located at a spanned value.
    pub fn error_at<T>(
        &self,
        at: &Spanned<T>,
        key: &str,
        message: impl fmt::Display,
    ) -> ConfigError {
        self.toml_source().error_at(at, key, message)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;

    use super::*;

    #[test]
    fn builtin_config_is_valid_and_offline() {
        let config = Config::from_toml(BUILTIN_SIM, "builtin").unwrap();
        assert!(config.providers.iter().all(|p| p.kind == ProviderKind::Sim));
        for model in ["gpt-4o", "gpt-4o-mini", "text-embedding-3-small"] {
            let found = config
                .models
                .iter()
                .find(|m| m.name.get_ref() == model)
                .unwrap();
            let clouds: HashSet<_> = found
                .deployments
                .iter()
                .map(|d| {
                    let p = config
                        .providers
                        .iter()
                        .find(|p| p.name.get_ref() == d.provider.get_ref())
                        .unwrap();
                    p.cloud.clone()
                })
                .collect();
            assert_eq!(clouds.len(), 2, "{model} should be on two clouds");
        }
    }

    #[test]
    fn secrets_are_redacted_in_debug() {
        let source =
            "[[providers]]\nname = \"a\"\nkind = \"openai\"\napi_key = \"sk-very-secret\"\n";
        let config = Config::from_toml(source, "s.toml").unwrap();
        assert!(!format!("{config:?}").contains("sk-very-secret"));
    }
}

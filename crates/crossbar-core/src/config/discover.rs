//! The configuration used when no file is given: every model of the catalog
//! (`crate::catalog`) that the environment's credentials reach, each on every cloud that
//! serves it, routed by the default objective; else the built-in simulated catalog runs
//! offline. Which variables count as credentials, and the `CROSSBAR_ENDPOINT_<KIND>` endpoint
//! override, are in `crate::catalog::reach`.

use super::{BUILTIN_SIM, Config, ConfigError};
use crate::catalog::{Catalog, reach};

impl Config {
    /// With no file: providers and models from the catalog and the environment's credentials,
    /// or else the built-in simulated providers.
    pub fn discover() -> Result<Self, ConfigError> {
        let catalog = Catalog::load().map_err(|e| ConfigError(e.to_string()))?;
        Self::discover_with(&catalog, &reach::process_env)
    }

    /// [`Config::discover`] for a given catalog and environment.
    pub fn discover_with(catalog: &Catalog, env: reach::Env<'_>) -> Result<Self, ConfigError> {
        let offers = reach::reach(catalog, env);
        match reach::config_source(&offers) {
            Some(source) => Self::from_toml(&source, "<discovered from environment>"),
            None => Self::from_toml(BUILTIN_SIM, "<built-in simulated providers>"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ProviderKind;

    #[test]
    fn no_credentials_run_the_simulated_catalog() {
        let catalog = Catalog::builtin();
        let config = Config::discover_with(&catalog, &|_| None).unwrap();
        assert_eq!(config.origin, "<built-in simulated providers>");
        assert!(config.providers.iter().all(|p| p.kind == ProviderKind::Sim));
    }

    #[test]
    fn an_openai_key_offers_the_catalogs_openai_models() {
        let catalog = Catalog::builtin();
        // `${OPENAI_API_KEY}` is expanded from the process environment when the configuration
        // loads, so this looks only at what discovery wrote.
        let offers = reach::reach(&catalog, &|name| {
            (name == "OPENAI_API_KEY").then(|| "sk-test".to_owned())
        });
        let source = reach::config_source(&offers).unwrap();
        let parsed: toml::Table = toml::from_str(&source).unwrap();
        let models: Vec<&str> = parsed["models"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| m["name"].as_str().unwrap())
            .collect();
        assert_eq!(
            models,
            [
                "gpt-5.5",
                "gpt-5.4",
                "gpt-4.1",
                "gpt-4.1-mini",
                "gpt-4o",
                "gpt-4o-mini",
                "o4-mini",
                "text-embedding-3-small",
                "text-embedding-3-large",
            ]
        );
        let providers = parsed["providers"].as_array().unwrap();
        assert_eq!(providers.len(), 1);
        assert_eq!(providers[0]["name"].as_str(), Some("openai"));
        assert_eq!(
            providers[0]["endpoint"].as_str(),
            Some("${OPENAI_BASE_URL:-https://api.openai.com/v1}")
        );
    }
}

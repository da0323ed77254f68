//! The configuration used when no file is given: `OPENAI_API_KEY` / `AZURE_OPENAI_*` become
//! providers with a list of known models, else the built-in simulated catalog runs offline.

use super::{BUILTIN_SIM, Config, ConfigError};

impl Config {
    /// With no file: providers from the usual environment variables, or else the built-in
    /// simulated providers.
    pub fn discover() -> Result<Self, ConfigError> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut providers = Vec::new();
        if env("OPENAI_API_KEY").is_some() {
            providers.push(
                "[[providers]]\nname = \"openai\"\nkind = \"openai\"\n\
                 endpoint = \"${OPENAI_BASE_URL:-https://api.openai.com/v1}\"\n\
                 api_key = \"${OPENAI_API_KEY}\"\ncloud = \"openai\"\nregion = \"global\"\n",
            );
        }
        if env("AZURE_OPENAI_API_KEY").is_some() && env("AZURE_OPENAI_ENDPOINT").is_some() {
            providers.push(
                "[[providers]]\nname = \"azure\"\nkind = \"azure-openai\"\n\
                 endpoint = \"${AZURE_OPENAI_ENDPOINT}\"\napi_key = \"${AZURE_OPENAI_API_KEY}\"\n\
                 api_version = \"2024-10-21\"\ncloud = \"azure\"\n",
            );
        }
        if providers.is_empty() {
            return Self::from_toml(BUILTIN_SIM, "<built-in simulated providers>");
        }
        let names: Vec<&str> = providers
            .iter()
            .map(|p| {
                if p.contains("\"azure\"") {
                    "azure"
                } else {
                    "openai"
                }
            })
            .collect();
        let mut source = providers.concat();
        for (model, price) in DISCOVERED_MODELS {
            source.push_str(&format!(
                "\n[[models]]\nname = \"{model}\"\ndeployments = [\n"
            ));
            for name in &names {
                // Azure deployments are assumed to be named after the model they serve.
                source.push_str(&format!(
                    "  {{ provider = \"{name}\", target = \"{model}\", price = {price} }},\n"
                ));
            }
            source.push_str("]\n");
        }
        Self::from_toml(&source, "<discovered from environment>")
    }
}

/// Logical models registered for providers discovered from the environment, with list prices.
const DISCOVERED_MODELS: &[(&str, &str)] = &[
    (
        "gpt-4o",
        "{ input = 2.50, output = 10.00, cached_input = 1.25 }",
    ),
    (
        "gpt-4o-mini",
        "{ input = 0.15, output = 0.60, cached_input = 0.075 }",
    ),
    (
        "gpt-4.1",
        "{ input = 2.00, output = 8.00, cached_input = 0.50 }",
    ),
    (
        "gpt-4.1-mini",
        "{ input = 0.40, output = 1.60, cached_input = 0.10 }",
    ),
    (
        "o4-mini",
        "{ input = 1.10, output = 4.40, cached_input = 0.275 }",
    ),
    ("text-embedding-3-small", "{ input = 0.02, output = 0.0 }"),
    ("text-embedding-3-large", "{ input = 0.13, output = 0.0 }"),
];

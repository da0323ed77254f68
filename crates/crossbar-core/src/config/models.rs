//! `[[models]]`: the logical models clients ask for, each with its deployments and prices.

use serde::Deserialize;
use toml::Spanned;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: Spanned<String>,
    pub deployments: Vec<DeploymentConfig>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeploymentConfig {
    pub provider: Spanned<String>,
    /// The provider's own id for the model (an Azure deployment name, a Bedrock model id...).
    pub target: String,
    #[serde(default)]
    pub price: Price,
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    pub cached_input: Option<f64>,
    pub cache_write: Option<f64>,
}

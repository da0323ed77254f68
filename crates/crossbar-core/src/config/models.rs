//! `[[models]]`: the logical models clients ask for, each with its deployments and prices.

use serde::{Deserialize, Serialize};
use toml::Spanned;

use crate::catalog::Capabilities;

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
    /// What the deployment accepts (`["tools", "vision", ...]`); replaces the catalog's.
    pub capabilities: Option<Capabilities>,
    /// Prompt tokens its context window holds; replaces the catalog's.
    pub context: Option<u64>,
    /// The most output tokens a request may ask for; replaces the catalog's.
    pub max_output: Option<u64>,
}

/// USD per million tokens.
#[derive(Clone, Copy, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Price {
    #[serde(default)]
    pub input: f64,
    #[serde(default)]
    pub output: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cached_input: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache_write: Option<f64>,
}

//! The model catalog, shipped as data (`catalog.toml`): for each logical model, the
//! deployments that serve it on each cloud, with target ids, regions, prices, context and
//! output limits and capabilities. With no configuration file, `Config::discover` offers every
//! catalog model the environment's credentials reach ([`reach`]); the router reads a
//! deployment's limits and capabilities from here when its `[[models]]` entry does not say
//! (a configuration entry always overrides the catalog).
//!
//! Prices change faster than releases: `crossbar catalog import` writes a local override
//! ([`OVERRIDE_FILE`], or the file `CROSSBAR_CATALOG` names) from LiteLLM's price list
//! ([`litellm`]), and [`Catalog::load`] lays it over the built-in data.

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

use crate::config::{Price, ProviderKind};

pub mod litellm;
pub mod reach;

/// The built-in catalog.
pub const BUILTIN: &str = include_str!("catalog.toml");

/// The local override read by default, in the working directory (beside `crossbar.toml` and
/// `crossbar.db`).
pub const OVERRIDE_FILE: &str = "crossbar-catalog.toml";

/// Names another override file.
pub const OVERRIDE_ENV: &str = "CROSSBAR_CATALOG";

/// Something a request may need of a deployment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Capability {
    Tools,
    /// Image input.
    Vision,
    /// PDF document input.
    Documents,
    /// Audio input.
    Audio,
    Reasoning,
    PromptCaching,
}

impl Capability {
    pub const ALL: [Capability; 6] = [
        Self::Tools,
        Self::Vision,
        Self::Documents,
        Self::Audio,
        Self::Reasoning,
        Self::PromptCaching,
    ];

    /// The name in the catalog and in configuration.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Tools => "tools",
            Self::Vision => "vision",
            Self::Documents => "documents",
            Self::Audio => "audio",
            Self::Reasoning => "reasoning",
            Self::PromptCaching => "prompt_caching",
        }
    }

    /// What a request needing it asks for, for messages.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Tools => "tool calling",
            Self::Vision => "image input",
            Self::Documents => "PDF document input",
            Self::Audio => "audio input",
            Self::Reasoning => "reasoning",
            Self::PromptCaching => "prompt caching",
        }
    }

    fn bit(self) -> u8 {
        1 << (self as u8)
    }
}

/// A set of capabilities; written as a list of names.
#[derive(Clone, Copy, Default, PartialEq, Eq, Deserialize, Serialize)]
#[serde(from = "Vec<Capability>", into = "Vec<Capability>")]
pub struct Capabilities(u8);

impl Capabilities {
    pub fn has(self, capability: Capability) -> bool {
        self.0 & capability.bit() != 0
    }

    pub fn with(self, capability: Capability) -> Self {
        Self(self.0 | capability.bit())
    }

    pub fn iter(self) -> impl Iterator<Item = Capability> {
        Capability::ALL.into_iter().filter(move |c| self.has(*c))
    }
}

impl From<Vec<Capability>> for Capabilities {
    fn from(list: Vec<Capability>) -> Self {
        list.into_iter().fold(Self::default(), Self::with)
    }
}

impl From<Capabilities> for Vec<Capability> {
    fn from(set: Capabilities) -> Self {
        set.iter().collect()
    }
}

impl<const N: usize> From<[Capability; N]> for Capabilities {
    fn from(list: [Capability; N]) -> Self {
        list.into_iter().fold(Self::default(), Self::with)
    }
}

impl fmt::Debug for Capabilities {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_set().entries(self.iter()).finish()
    }
}

/// What a deployment accepts; a `None` limit is not known, so not enforced.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    pub capabilities: Capabilities,
    /// Prompt tokens the deployment's context window holds.
    pub context: Option<u64>,
    /// The most output tokens a request may ask for.
    pub max_output: Option<u64>,
}

/// The file's shape.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct CatalogFile {
    #[serde(default)]
    models: Vec<ModelEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ModelEntry {
    name: String,
    context: Option<u64>,
    max_output: Option<u64>,
    #[serde(default)]
    capabilities: Capabilities,
    #[serde(default)]
    deployments: Vec<DeploymentEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct DeploymentEntry {
    kind: ProviderKind,
    target: String,
    #[serde(default)]
    regions: Vec<String>,
    price: Price,
    context: Option<u64>,
    max_output: Option<u64>,
    capabilities: Option<Capabilities>,
}

/// One deployment of a logical model, everything decided.
#[derive(Clone, Debug, PartialEq)]
pub struct CatalogDeployment {
    pub model: String,
    pub kind: ProviderKind,
    pub target: String,
    /// Where it is served; empty: wherever the credential points.
    pub regions: Vec<String>,
    pub price: Price,
    pub limits: Limits,
}

/// The catalog: deployments in file order, models in first-seen order.
#[derive(Clone, Debug, Default)]
pub struct Catalog {
    pub deployments: Vec<CatalogDeployment>,
}

/// A problem with catalog data, naming its origin.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct CatalogError(pub String);

impl Catalog {
    /// The built-in catalog. It is checked by this crate's tests, so failing to parse it is a
    /// build defect; an empty catalog is returned (and logged) rather than a panic.
    pub fn builtin() -> Self {
        Self::parse(BUILTIN, "<built-in catalog>").unwrap_or_else(|error| {
            tracing::error!(%error, "the built-in model catalog does not parse");
            Self::default()
        })
    }

    /// The catalog the router reads limits from: [`Catalog::load`] once per process, or the
    /// built-in one (logged) if the override cannot be read.
    pub fn shared() -> &'static Catalog {
        static SHARED: OnceLock<Catalog> = OnceLock::new();
        SHARED.get_or_init(|| {
            Self::load().unwrap_or_else(|error| {
                tracing::warn!(%error, "the catalog override is not used");
                Self::builtin()
            })
        })
    }

    /// The built-in catalog with the local override (if any) laid over it.
    pub fn load() -> Result<Self, CatalogError> {
        let mut catalog = Self::builtin();
        if let Some(path) = override_path() {
            let text = std::fs::read_to_string(&path)
                .map_err(|e| CatalogError(format!("{}: {e}", path.display())))?;
            let overrides = Overrides::parse(&text, &path.display().to_string())?;
            catalog.apply(&overrides);
        }
        Ok(catalog)
    }

    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        let file: CatalogFile =
            toml::from_str(text).map_err(|e| CatalogError(format!("{origin}: {e}")))?;
        let mut deployments = Vec::new();
        for model in file.models {
            for d in model.deployments {
                deployments.push(CatalogDeployment {
                    model: model.name.clone(),
                    kind: d.kind,
                    target: d.target,
                    regions: d.regions,
                    price: d.price,
                    limits: Limits {
                        capabilities: d.capabilities.unwrap_or(model.capabilities),
                        context: d.context.or(model.context),
                        max_output: d.max_output.or(model.max_output),
                    },
                });
            }
        }
        Ok(Self { deployments })
    }

    /// The logical models, in catalog order.
    pub fn models(&self) -> Vec<&str> {
        let mut names: Vec<&str> = Vec::new();
        for d in &self.deployments {
            if !names.contains(&d.model.as_str()) {
                names.push(&d.model);
            }
        }
        names
    }

    /// The deployment a provider kind serves under a target id, if the catalog knows it.
    pub fn find(&self, kind: ProviderKind, target: &str) -> Option<&CatalogDeployment> {
        self.deployments
            .iter()
            .find(|d| d.kind == kind && d.target == target)
    }

    /// Lays an override's entries over the matching deployments (by kind and target); an
    /// entry naming a model adds the deployment when none matches.
    pub fn apply(&mut self, overrides: &Overrides) {
        for entry in &overrides.deployments {
            let found = self
                .deployments
                .iter_mut()
                .find(|d| d.kind == entry.kind && d.target == entry.target);
            match (found, &entry.model) {
                (Some(deployment), _) => entry.update(deployment),
                (None, Some(model)) => {
                    let mut deployment = CatalogDeployment {
                        model: model.clone(),
                        kind: entry.kind,
                        target: entry.target.clone(),
                        regions: Vec::new(),
                        price: Price::default(),
                        limits: Limits::default(),
                    };
                    entry.update(&mut deployment);
                    self.deployments.push(deployment);
                }
                (None, None) => {}
            }
        }
    }
}

/// Where the local override is read from: `CROSSBAR_CATALOG`, else `./crossbar-catalog.toml`
/// if it exists.
pub fn override_path() -> Option<PathBuf> {
    match std::env::var(OVERRIDE_ENV).ok().filter(|v| !v.is_empty()) {
        Some(path) => Some(PathBuf::from(path)),
        None => Some(PathBuf::from(OVERRIDE_FILE)).filter(|p| p.exists()),
    }
}

/// The file `crossbar catalog import` writes to: `CROSSBAR_CATALOG`, else
/// `./crossbar-catalog.toml`.
pub fn override_target() -> PathBuf {
    std::env::var(OVERRIDE_ENV)
        .ok()
        .filter(|v| !v.is_empty())
        .map_or_else(|| PathBuf::from(OVERRIDE_FILE), PathBuf::from)
}

/// A local override: deployments keyed by kind and target, each field replacing the catalog's.
#[derive(Clone, Debug, Default, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct Overrides {
    #[serde(default)]
    pub deployments: Vec<OverrideEntry>,
}

#[derive(Clone, Debug, PartialEq, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct OverrideEntry {
    #[serde(with = "kind_name")]
    pub kind: ProviderKind,
    pub target: String,
    /// The logical model, for a deployment the catalog does not have.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub price: Option<Price>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_output: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub capabilities: Option<Capabilities>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub regions: Option<Vec<String>>,
}

impl OverrideEntry {
    fn update(&self, deployment: &mut CatalogDeployment) {
        if let Some(price) = self.price {
            deployment.price = price;
        }
        if let Some(context) = self.context {
            deployment.limits.context = Some(context);
        }
        if let Some(max_output) = self.max_output {
            deployment.limits.max_output = Some(max_output);
        }
        if let Some(capabilities) = self.capabilities {
            deployment.limits.capabilities = capabilities;
        }
        if let Some(regions) = &self.regions {
            deployment.regions.clone_from(regions);
        }
    }
}

impl Overrides {
    pub fn parse(text: &str, origin: &str) -> Result<Self, CatalogError> {
        toml::from_str(text).map_err(|e| CatalogError(format!("{origin}: {e}")))
    }

    pub fn read(path: &Path) -> Result<Self, CatalogError> {
        match std::fs::read_to_string(path) {
            Ok(text) => Self::parse(&text, &path.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::default()),
            Err(e) => Err(CatalogError(format!("{}: {e}", path.display()))),
        }
    }

    /// Replaces the entry for the same kind and target, or adds it.
    pub fn upsert(&mut self, entry: OverrideEntry) {
        match self
            .deployments
            .iter_mut()
            .find(|e| e.kind == entry.kind && e.target == entry.target)
        {
            Some(existing) => *existing = entry,
            None => self.deployments.push(entry),
        }
    }

    pub fn to_toml(&self) -> Result<String, CatalogError> {
        let body = toml::to_string(self).map_err(|e| CatalogError(e.to_string()))?;
        Ok(format!(
            "# Crossbar catalog override, written by `crossbar catalog import`; read by \
             `crossbar serve` and `crossbar models`\n# from the working directory (or the file \
             {OVERRIDE_ENV} names). Prices: USD per million tokens.\n\n{body}"
        ))
    }
}

/// A provider kind's name in configuration (`bedrock-mantle-responses`).
pub fn kind_str(kind: ProviderKind) -> String {
    let debug = format!("{kind:?}");
    let mut name = String::with_capacity(debug.len() + 4);
    for (i, c) in debug.chars().enumerate() {
        if c.is_ascii_uppercase() {
            if i > 0 {
                name.push('-');
            }
            name.push(c.to_ascii_lowercase());
        } else {
            name.push(c);
        }
    }
    name
}

/// Serializes a provider kind by its configuration name (the kind derives only `Deserialize`).
mod kind_name {
    use serde::{Deserialize, Deserializer, Serializer};

    use crate::config::ProviderKind;

    pub fn serialize<S: Serializer>(kind: &ProviderKind, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::kind_str(*kind))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<ProviderKind, D::Error> {
        ProviderKind::deserialize(d)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_catalog_parses_with_exact_entries() {
        let catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        assert_eq!(
            catalog.models(),
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
                "claude-opus-4-5",
                "claude-sonnet-4-5",
                "claude-haiku-4-5",
                "gemini-2.5-pro",
                "gemini-2.5-flash",
            ]
        );
        let mantle = catalog
            .find(ProviderKind::BedrockMantleResponses, "openai.gpt-5.4")
            .unwrap();
        assert_eq!(mantle.model, "gpt-5.4");
        assert_eq!(mantle.regions, ["us-east-2", "us-west-2"]);
        assert_eq!(
            mantle.price,
            Price {
                input: 2.75,
                output: 16.50,
                cached_input: Some(0.275),
                cache_write: None
            }
        );
        // The deployment's own limits replace the model's; what it does not say, it inherits.
        assert_eq!(mantle.limits.context, Some(272_000));
        assert_eq!(mantle.limits.max_output, Some(128_000));
        assert_eq!(
            mantle.limits.capabilities,
            Capabilities::from([
                Capability::Tools,
                Capability::Vision,
                Capability::Reasoning,
                Capability::PromptCaching
            ])
        );
        let openai = catalog.find(ProviderKind::Openai, "gpt-5.4").unwrap();
        assert_eq!(openai.limits.context, Some(1_050_000));
        assert!(openai.limits.capabilities.has(Capability::Documents));
        let sonnet = catalog
            .find(ProviderKind::VertexAnthropic, "claude-sonnet-4-5@20250929")
            .unwrap();
        assert_eq!(sonnet.price.cache_write, Some(3.75));
        assert!(!sonnet.limits.capabilities.has(Capability::Audio));
        let flash = catalog
            .find(ProviderKind::Gemini, "gemini-2.5-flash")
            .unwrap();
        assert!(flash.limits.capabilities.has(Capability::Audio));
        // Every model's deployments are on distinct doors.
        for d in &catalog.deployments {
            assert_eq!(
                catalog
                    .deployments
                    .iter()
                    .filter(|o| o.kind == d.kind && o.target == d.target)
                    .count(),
                1,
                "{d:?}"
            );
        }
    }

    #[test]
    fn kind_names_are_the_configuration_names() {
        assert_eq!(kind_str(ProviderKind::Openai), "openai");
        assert_eq!(kind_str(ProviderKind::AzureOpenai), "azure-openai");
        assert_eq!(
            kind_str(ProviderKind::BedrockMantleResponses),
            "bedrock-mantle-responses"
        );
        assert_eq!(
            kind_str(ProviderKind::VertexOpenaiChat),
            "vertex-openai-chat"
        );
    }

    #[test]
    fn an_override_replaces_only_what_it_says_and_can_add_a_deployment() {
        let mut catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        let overrides = Overrides::parse(
            r#"
[[deployments]]
kind = "bedrock-mantle-responses"
target = "openai.gpt-5.4"
price = { input = 3.0, output = 18.0 }

[[deployments]]
kind = "openai"
target = "gpt-6"
model = "gpt-6"
context = 2000000
capabilities = ["tools"]

[[deployments]]
kind = "openai"
target = "unknown-without-model"
"#,
            "o.toml",
        )
        .unwrap();
        let before = catalog.deployments.len();
        catalog.apply(&overrides);
        assert_eq!(catalog.deployments.len(), before + 1);
        let mantle = catalog
            .find(ProviderKind::BedrockMantleResponses, "openai.gpt-5.4")
            .unwrap();
        assert_eq!(mantle.price.input, 3.0);
        assert_eq!(mantle.price.cached_input, None);
        assert_eq!(mantle.limits.context, Some(272_000));
        let added = catalog.find(ProviderKind::Openai, "gpt-6").unwrap();
        assert_eq!(added.model, "gpt-6");
        assert_eq!(added.limits.context, Some(2_000_000));
        assert_eq!(
            added.limits.capabilities,
            Capabilities::from([Capability::Tools])
        );
        // Written and read back unchanged.
        let text = overrides.to_toml().unwrap();
        assert_eq!(Overrides::parse(&text, "again").unwrap(), overrides);
    }
}

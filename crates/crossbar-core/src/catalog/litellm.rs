//! Reads LiteLLM's `model_prices_and_context_window.json` (the de facto price list: model key
//! to `input_cost_per_token`, `output_cost_per_token`, `cache_read_input_token_cost`,
//! `cache_creation_input_token_cost`, `max_input_tokens`, `max_output_tokens` and `supports_*`
//! flags) into override entries for the catalog's deployments, so prices refresh without a
//! release. Only deployments the catalog has are updated: a LiteLLM key says nothing about
//! which logical model it serves.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::{Capability, Catalog, CatalogDeployment, CatalogError, OverrideEntry, Overrides};
use crate::config::{Price, ProviderKind};

/// One entry of the file; every field is optional there.
#[derive(Debug, Default, Deserialize)]
struct Entry {
    litellm_provider: Option<String>,
    input_cost_per_token: Option<f64>,
    output_cost_per_token: Option<f64>,
    cache_read_input_token_cost: Option<f64>,
    cache_creation_input_token_cost: Option<f64>,
    max_input_tokens: Option<u64>,
    max_output_tokens: Option<u64>,
    supports_function_calling: Option<bool>,
    supports_vision: Option<bool>,
    supports_pdf_input: Option<bool>,
    supports_audio_input: Option<bool>,
    supports_reasoning: Option<bool>,
    supports_prompt_caching: Option<bool>,
}

/// What an import changed.
#[derive(Debug, Default, PartialEq)]
pub struct Report {
    /// `model kind target` of each deployment updated, with the LiteLLM key used.
    pub updated: Vec<(String, String)>,
    /// `model kind target` of each catalog deployment LiteLLM has no entry for.
    pub unmatched: Vec<String>,
}

/// The keys LiteLLM may list a door's target under, and the `litellm_provider` prefix its
/// entry must have.
fn keys(kind: ProviderKind, target: &str) -> (Vec<String>, &'static [&'static str]) {
    let prefixed = |prefixes: &[&str]| -> Vec<String> {
        prefixes
            .iter()
            .map(|p| {
                if p.is_empty() {
                    target.to_owned()
                } else {
                    format!("{p}/{target}")
                }
            })
            .collect()
    };
    match kind {
        ProviderKind::Openai => (prefixed(&["", "openai"]), &["openai"]),
        ProviderKind::AzureOpenai => (prefixed(&["azure"]), &["azure"]),
        ProviderKind::Anthropic => (prefixed(&["", "anthropic"]), &["anthropic"]),
        ProviderKind::FoundryAnthropic => (prefixed(&["azure_ai"]), &["azure_ai"]),
        ProviderKind::Bedrock
        | ProviderKind::BedrockMantleResponses
        | ProviderKind::BedrockMantleChat
        | ProviderKind::BedrockMantleAnthropic
        | ProviderKind::BedrockRuntimeChat => {
            (prefixed(&["", "bedrock", "bedrock_mantle"]), &["bedrock"])
        }
        ProviderKind::Vertex => (prefixed(&["", "vertex_ai"]), &["vertex_ai"]),
        ProviderKind::VertexAnthropic
        | ProviderKind::VertexOpenaiResponses
        | ProviderKind::VertexOpenaiChat => {
            (prefixed(&["vertex_ai", "vertex_ai/openai"]), &["vertex_ai"])
        }
        ProviderKind::Gemini => (prefixed(&["gemini"]), &["gemini"]),
        ProviderKind::OpenaiCompatible | ProviderKind::Sim => (Vec::new(), &[]),
    }
}

/// USD per token to USD per million tokens, without the float noise of the product.
fn per_million(per_token: f64) -> f64 {
    (per_token * 1e12).round() / 1e6
}

/// The override entry LiteLLM's `entry` makes of `deployment`: prices and limits it gives, and
/// the capabilities with each flag it sets applied over the catalog's.
fn entry_for(deployment: &CatalogDeployment, entry: &Entry) -> OverrideEntry {
    let price = match (entry.input_cost_per_token, entry.output_cost_per_token) {
        (None, None) => None,
        (input, output) => Some(Price {
            input: input.map_or(deployment.price.input, per_million),
            output: output.map_or(deployment.price.output, per_million),
            cached_input: entry
                .cache_read_input_token_cost
                .map(per_million)
                .or(deployment.price.cached_input),
            cache_write: entry
                .cache_creation_input_token_cost
                .map(per_million)
                .or(deployment.price.cache_write),
        }),
    };
    let flags = [
        (Capability::Tools, entry.supports_function_calling),
        (Capability::Vision, entry.supports_vision),
        (Capability::Documents, entry.supports_pdf_input),
        (Capability::Audio, entry.supports_audio_input),
        (Capability::Reasoning, entry.supports_reasoning),
        (Capability::PromptCaching, entry.supports_prompt_caching),
    ];
    let mut capabilities = deployment.limits.capabilities;
    let mut any_flag = false;
    for (capability, flag) in flags {
        if let Some(on) = flag {
            any_flag = true;
            capabilities = if on {
                capabilities.with(capability)
            } else {
                super::Capabilities(capabilities.0 & !capability.bit())
            };
        }
    }
    OverrideEntry {
        kind: deployment.kind,
        target: deployment.target.clone(),
        model: None,
        price,
        context: entry.max_input_tokens,
        max_output: entry.max_output_tokens,
        capabilities: any_flag.then_some(capabilities),
        regions: None,
    }
}

/// Updates `overrides` from LiteLLM's JSON for every catalog deployment it lists.
pub fn import(
    catalog: &Catalog,
    json: &str,
    overrides: &mut Overrides,
) -> Result<Report, CatalogError> {
    let raw: BTreeMap<String, serde_json::Value> = serde_json::from_str(json)
        .map_err(|e| CatalogError(format!("not LiteLLM's price list: {e}")))?;
    let mut report = Report::default();
    for deployment in &catalog.deployments {
        let (candidates, providers) = keys(deployment.kind, &deployment.target);
        let found = candidates.iter().find_map(|key| {
            let value = raw.get(key)?;
            let entry: Entry = serde_json::from_value(value.clone()).ok()?;
            let provider = entry.litellm_provider.as_deref().unwrap_or_default();
            providers
                .iter()
                .any(|p| provider.starts_with(p))
                .then_some((key, entry))
        });
        let label = format!(
            "{} {} {}",
            deployment.model,
            super::kind_str(deployment.kind),
            deployment.target
        );
        match found {
            Some((key, entry)) => {
                overrides.upsert(entry_for(deployment, &entry));
                report.updated.push((label, key.clone()));
            }
            None => report.unmatched.push(label),
        }
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::catalog::{BUILTIN, Capabilities};

    const SAMPLE: &str = r#"{
  "sample_spec": {"litellm_provider": "one of https://docs.litellm.ai/docs/providers", "max_tokens": "LEGACY"},
  "gpt-5.4": {
    "litellm_provider": "openai", "mode": "chat",
    "input_cost_per_token": 2.6e-06, "output_cost_per_token": 1.6e-05,
    "cache_read_input_token_cost": 2.6e-07,
    "max_input_tokens": 1050000, "max_output_tokens": 128000,
    "supports_pdf_input": false, "supports_vision": true
  },
  "bedrock/openai.gpt-5.4": {
    "litellm_provider": "bedrock_mantle", "mode": "responses",
    "input_cost_per_token": 2.75e-06, "output_cost_per_token": 1.65e-05,
    "max_input_tokens": 272000
  },
  "gemini/gemini-2.5-flash": {
    "litellm_provider": "vertex_ai-language-models",
    "input_cost_per_token": 9e-06
  }
}"#;

    #[test]
    fn litellm_prices_become_override_entries_for_catalog_deployments() {
        let catalog = Catalog::parse(BUILTIN, "builtin").unwrap();
        let mut overrides = Overrides::default();
        let report = import(&catalog, SAMPLE, &mut overrides).unwrap();
        assert_eq!(
            report.updated,
            [
                ("gpt-5.4 openai gpt-5.4".to_owned(), "gpt-5.4".to_owned()),
                (
                    "gpt-5.4 bedrock-mantle-responses openai.gpt-5.4".to_owned(),
                    "bedrock/openai.gpt-5.4".to_owned()
                ),
            ]
        );
        // The Gemini API key's entry names another provider, so it is not taken.
        assert!(
            report
                .unmatched
                .contains(&"gemini-2.5-flash gemini gemini-2.5-flash".to_owned())
        );
        let openai = &overrides.deployments[0];
        assert_eq!(
            openai.price,
            Some(Price {
                input: 2.6,
                output: 16.0,
                cached_input: Some(0.26),
                cache_write: None
            })
        );
        assert_eq!(openai.context, Some(1_050_000));
        // `supports_pdf_input: false` clears documents; what LiteLLM does not say stays.
        assert_eq!(
            openai.capabilities,
            Some(Capabilities::from([
                Capability::Tools,
                Capability::Vision,
                Capability::Reasoning,
                Capability::PromptCaching
            ]))
        );
        let mantle = &overrides.deployments[1];
        // No cache price in LiteLLM: the catalog's stays.
        assert_eq!(
            mantle.price,
            Some(Price {
                input: 2.75,
                output: 16.5,
                cached_input: Some(0.275),
                cache_write: None
            })
        );
        assert_eq!(mantle.capabilities, None);
        // Importing again replaces, never duplicates.
        import(&catalog, SAMPLE, &mut overrides).unwrap();
        assert_eq!(overrides.deployments.len(), 2);
        assert!(import(&catalog, "[1, 2]", &mut overrides).is_err());
    }
}

//! The provider table: one row per provider kind, holding everything the gateway needs to know
//! about it — its names in the configuration, the settings it requires, the simulator that
//! speaks its wire format, the tokenizer that estimates its prompts, its OpenTelemetry system
//! name and how its egress, endpoint and auth are built. Configuration checks, the router, the
//! simulators' start-up and telemetry all read it; adding a native provider is one row here and
//! its dialect module.

use crate::config::{OpenAiApi, ProviderConfig, ProviderKind};
use crate::dialects::openai::doors;
use crate::dialects::{self, Parts};
use crate::router::Tokenizer;

/// A provider setting a kind cannot do without.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Setting {
    ApiKey,
    Endpoint,
    ApiVersion,
    Region,
    Project,
    Location,
}

impl Setting {
    /// The key in a `[[providers]]` table.
    pub fn key(self) -> &'static str {
        match self {
            Self::ApiKey => "api_key",
            Self::Endpoint => "endpoint",
            Self::ApiVersion => "api_version",
            Self::Region => "region",
            Self::Project => "project",
            Self::Location => "location",
        }
    }

    fn is_set(self, config: &ProviderConfig) -> bool {
        match self {
            Self::ApiKey => config.api_key.is_some(),
            Self::Endpoint => config.endpoint.is_some(),
            Self::ApiVersion => config.api_version.is_some(),
            Self::Region => config.region.is_some(),
            Self::Project => config.project.is_some(),
            Self::Location => config.location.is_some(),
        }
    }
}

/// One provider kind.
pub struct Kind {
    pub kind: ProviderKind,
    /// `dialect = "..."` of a simulated provider (`kind = "sim"`) that stands for this kind.
    pub sim_dialect: &'static str,
    /// The crossbar-sim dialect that serves it (`SimDialect`'s name).
    pub simulator: &'static str,
    /// Settings a real provider of this kind must have; a simulated one gets them made up.
    pub required: &'static [Setting],
    /// How prompts are counted for routing and budgets before the upstream says.
    pub tokenizer: Tokenizer,
    /// OpenTelemetry `gen_ai.system`.
    pub system: &'static str,
    /// Whether `api = "responses"` applies (the OpenAI services only).
    pub responses_api: bool,
    /// Builds the egress, endpoint and auth; `endpoint` is the configured or simulator one.
    pub(crate) parts: fn(&ProviderConfig, Option<String>) -> Result<Parts, String>,
}

/// `gen_ai.system` of a simulated provider.
const SIM_SYSTEM: &str = "crossbar.sim";

/// The table.
pub static KINDS: &[Kind] = &[
    Kind {
        kind: ProviderKind::Openai,
        sim_dialect: "openai",
        simulator: "openai",
        required: &[Setting::ApiKey],
        tokenizer: Tokenizer::OpenAi,
        system: "openai",
        responses_api: true,
        parts: |config, endpoint| {
            dialects::openai::provider_parts(config, endpoint, dialects::openai::Service::OpenAi)
        },
    },
    Kind {
        kind: ProviderKind::AzureOpenai,
        sim_dialect: "azure",
        simulator: "azure",
        required: &[Setting::Endpoint, Setting::ApiVersion, Setting::ApiKey],
        tokenizer: Tokenizer::OpenAi,
        system: "az.ai.openai",
        responses_api: true,
        parts: |config, endpoint| {
            dialects::openai::provider_parts(config, endpoint, dialects::openai::Service::Azure)
        },
    },
    Kind {
        kind: ProviderKind::OpenaiCompatible,
        sim_dialect: "openai-compatible",
        simulator: "openai",
        required: &[Setting::Endpoint],
        tokenizer: Tokenizer::OpenAi,
        system: "openai",
        responses_api: true,
        parts: |config, endpoint| {
            dialects::openai::provider_parts(
                config,
                endpoint,
                dialects::openai::Service::Compatible,
            )
        },
    },
    Kind {
        kind: ProviderKind::Anthropic,
        sim_dialect: "anthropic",
        simulator: "anthropic",
        required: &[Setting::ApiKey],
        tokenizer: Tokenizer::Approximate,
        system: "anthropic",
        responses_api: false,
        parts: |config, endpoint| {
            dialects::anthropic::provider_parts(
                config,
                endpoint,
                dialects::anthropic::Door::Anthropic,
            )
        },
    },
    Kind {
        kind: ProviderKind::Bedrock,
        sim_dialect: "bedrock",
        simulator: "bedrock",
        required: &[Setting::Region],
        tokenizer: Tokenizer::Approximate,
        system: "aws.bedrock",
        responses_api: false,
        parts: dialects::bedrock::provider_parts,
    },
    Kind {
        kind: ProviderKind::Gemini,
        sim_dialect: "gemini",
        simulator: "gemini",
        required: &[Setting::ApiKey],
        tokenizer: Tokenizer::Approximate,
        system: "gcp.gemini",
        responses_api: false,
        parts: |config, endpoint| dialects::gemini::provider_parts(config, endpoint, false),
    },
    Kind {
        kind: ProviderKind::Vertex,
        sim_dialect: "vertex",
        simulator: "vertex",
        required: &[Setting::Project, Setting::Location],
        tokenizer: Tokenizer::Approximate,
        system: "gcp.vertex_ai",
        responses_api: false,
        parts: |config, endpoint| dialects::gemini::provider_parts(config, endpoint, true),
    },
    Kind {
        kind: ProviderKind::VertexAnthropic,
        sim_dialect: "vertex-anthropic",
        // Vertex serves Claude beside Gemini, from the same simulated endpoint.
        simulator: "vertex",
        required: &[Setting::Project, Setting::Location],
        tokenizer: Tokenizer::Approximate,
        system: "gcp.vertex_ai",
        responses_api: false,
        parts: |config, endpoint| {
            dialects::anthropic::provider_parts(config, endpoint, dialects::anthropic::Door::Vertex)
        },
    },
    Kind {
        kind: ProviderKind::FoundryAnthropic,
        sim_dialect: "foundry-anthropic",
        simulator: "anthropic",
        required: &[Setting::Endpoint, Setting::ApiKey],
        tokenizer: Tokenizer::Approximate,
        system: "az.ai.inference",
        responses_api: false,
        parts: |config, endpoint| {
            dialects::anthropic::provider_parts(
                config,
                endpoint,
                dialects::anthropic::Door::Foundry,
            )
        },
    },
    // The clouds' own doors to OpenAI's dialects (`dialects::openai::doors`) and to Claude.
    Kind {
        kind: ProviderKind::BedrockMantleResponses,
        sim_dialect: "bedrock-mantle-responses",
        simulator: "bedrock-mantle",
        required: &[Setting::Region],
        tokenizer: Tokenizer::OpenAi,
        system: "aws.bedrock",
        responses_api: false,
        parts: |config, endpoint| {
            doors::provider_parts(config, endpoint, doors::Door::MantleResponses)
        },
    },
    Kind {
        kind: ProviderKind::BedrockMantleChat,
        sim_dialect: "bedrock-mantle-chat",
        simulator: "bedrock-mantle",
        required: &[Setting::Region],
        tokenizer: Tokenizer::OpenAi,
        system: "aws.bedrock",
        responses_api: false,
        parts: |config, endpoint| doors::provider_parts(config, endpoint, doors::Door::MantleChat),
    },
    Kind {
        kind: ProviderKind::BedrockMantleAnthropic,
        sim_dialect: "bedrock-mantle-anthropic",
        simulator: "bedrock-mantle",
        required: &[Setting::Region],
        tokenizer: Tokenizer::Approximate,
        system: "aws.bedrock",
        responses_api: false,
        parts: |config, endpoint| {
            dialects::anthropic::provider_parts(
                config,
                endpoint,
                dialects::anthropic::Door::BedrockMantle,
            )
        },
    },
    Kind {
        kind: ProviderKind::BedrockRuntimeChat,
        sim_dialect: "bedrock-runtime-chat",
        // Bedrock Runtime serves it beside Converse, from the same simulated endpoint.
        simulator: "bedrock",
        required: &[Setting::Region],
        tokenizer: Tokenizer::OpenAi,
        system: "aws.bedrock",
        responses_api: false,
        parts: |config, endpoint| doors::provider_parts(config, endpoint, doors::Door::RuntimeChat),
    },
    Kind {
        kind: ProviderKind::VertexOpenaiResponses,
        sim_dialect: "vertex-openai-responses",
        simulator: "vertex",
        required: &[Setting::Project, Setting::Location],
        tokenizer: Tokenizer::OpenAi,
        system: "gcp.vertex_ai",
        responses_api: false,
        parts: |config, endpoint| {
            doors::provider_parts(config, endpoint, doors::Door::VertexResponses)
        },
    },
    Kind {
        kind: ProviderKind::VertexOpenaiChat,
        sim_dialect: "vertex-openai-chat",
        simulator: "vertex",
        required: &[Setting::Project, Setting::Location],
        tokenizer: Tokenizer::Approximate,
        system: "gcp.vertex_ai",
        responses_api: false,
        parts: |config, endpoint| doors::provider_parts(config, endpoint, doors::Door::VertexChat),
    },
];

/// The row of a real provider kind; `None` for `sim`, which stands for another kind.
pub fn row(kind: ProviderKind) -> Option<&'static Kind> {
    KINDS.iter().find(|row| row.kind == kind)
}

/// The row a simulated provider's `dialect` stands for.
pub fn simulated(dialect: &str) -> Option<&'static Kind> {
    KINDS.iter().find(|row| row.sim_dialect == dialect)
}

/// The `dialect` names a simulated provider may take.
pub fn sim_dialects() -> Vec<&'static str> {
    KINDS.iter().map(|row| row.sim_dialect).collect()
}

/// The row a configured provider is built from: its kind's, or for `kind = "sim"` the row of
/// the dialect it simulates.
pub fn of(config: &ProviderConfig) -> Result<&'static Kind, String> {
    let row = match config.kind {
        ProviderKind::Sim => {
            let dialect = config.dialect.as_ref().map(|d| d.get_ref().as_str());
            dialect
                .and_then(simulated)
                .ok_or_else(|| format!("no simulated dialect {dialect:?}"))?
        }
        kind => row(kind).ok_or_else(|| format!("no provider kind {kind:?}"))?,
    };
    if config.api == Some(OpenAiApi::Responses) && !row.responses_api {
        return Err(
            "`api = \"responses\"` applies to OpenAI and Azure OpenAI providers only".to_owned(),
        );
    }
    Ok(row)
}

/// The first setting a real provider lacks, if any (simulated ones need none).
pub fn missing_setting(config: &ProviderConfig) -> Option<Setting> {
    if config.kind == ProviderKind::Sim {
        return None;
    }
    row(config.kind)?
        .required
        .iter()
        .copied()
        .find(|setting| !setting.is_set(config))
}

/// `gen_ai.system` of a provider kind.
pub fn system(kind: ProviderKind) -> &'static str {
    row(kind).map_or(SIM_SYSTEM, |row| row.system)
}

/// The prompt tokenizer of a configured provider (a simulated one counts as what it simulates).
pub fn tokenizer(config: &ProviderConfig) -> Tokenizer {
    of(config).map_or(Tokenizer::Approximate, |row| row.tokenizer)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every kind but `sim` has exactly one row, and no two rows share a simulated dialect name.
    #[test]
    fn one_row_per_kind_and_per_simulated_dialect() {
        let kinds = [
            ProviderKind::Openai,
            ProviderKind::AzureOpenai,
            ProviderKind::OpenaiCompatible,
            ProviderKind::Anthropic,
            ProviderKind::Bedrock,
            ProviderKind::Gemini,
            ProviderKind::Vertex,
            ProviderKind::VertexAnthropic,
            ProviderKind::FoundryAnthropic,
            ProviderKind::BedrockMantleResponses,
            ProviderKind::BedrockMantleChat,
            ProviderKind::BedrockMantleAnthropic,
            ProviderKind::BedrockRuntimeChat,
            ProviderKind::VertexOpenaiResponses,
            ProviderKind::VertexOpenaiChat,
        ];
        for kind in kinds {
            assert_eq!(
                KINDS.iter().filter(|row| row.kind == kind).count(),
                1,
                "{kind:?}"
            );
        }
        assert_eq!(KINDS.len(), kinds.len());
        assert!(row(ProviderKind::Sim).is_none());
        let mut names = sim_dialects();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), KINDS.len());
        assert_eq!(system(ProviderKind::Sim), "crossbar.sim");
        assert_eq!(system(ProviderKind::AzureOpenai), "az.ai.openai");
    }
}

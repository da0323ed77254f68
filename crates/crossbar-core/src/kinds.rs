//! The provider table: one row per provider kind, holding everything the gateway needs to know
//! about it — its names in the configuration, the settings it requires, the simulator that
//! speaks its wire format, the tokenizer that estimates its prompts, its OpenTelemetry system
//! name and how its egress, endpoint and auth are built. Configuration checks, the router, the
//! simulators' start-up and telemetry all read it; adding a native provider is one row here and
//! its dialect module.
//!
//! `Config::validate` turns each provider's raw settings into its kind's typed ones
//! ([`ProviderSettings`]) once; the rows' builders take those and check nothing again.

use std::sync::Arc;

use aws_credential_types::Credentials;

use crate::auth::Authorize;
use crate::auth::google::GoogleAuthorizer;
use crate::auth::sigv4::SigV4;
use serde::Deserialize;

use crate::config::{
    AwsAuth, AzureSettings, BedrockSettings, GoogleAuth, OpenAiApi, OpenAiOptions, ProviderConfig,
    VertexSettings,
};
use crate::dialects::openai::{Service, doors};
use crate::dialects::{self, Parts};
use crate::router::Tokenizer;

/// A provider kind, as `kind = "..."` names it in `[[providers]]`. Each has its row in
/// [`KINDS`]: adding a provider is a variant here and a row below.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProviderKind {
    Openai,
    AzureOpenai,
    OpenaiCompatible,
    Anthropic,
    Bedrock,
    Gemini,
    Vertex,
    /// Claude on Vertex AI: the Anthropic dialect at a Vertex publisher URL with Google auth.
    VertexAnthropic,
    /// Claude in Microsoft Foundry: the Anthropic dialect under a Foundry resource.
    FoundryAnthropic,
    /// Bedrock Mantle, OpenAI's own models: the Responses API under `/openai/v1`.
    BedrockMantleResponses,
    /// Bedrock Mantle, open-weight models: OpenAI Chat Completions under `/v1`.
    BedrockMantleChat,
    /// Bedrock Mantle, Claude: the Anthropic Messages API under `/anthropic`.
    BedrockMantleAnthropic,
    /// Bedrock Runtime's OpenAI-compatible Chat Completions under `/openai/v1`.
    BedrockRuntimeChat,
    /// Vertex AI, OpenAI's models: the Responses API under `publishers/openai/v1`.
    VertexOpenaiResponses,
    /// Vertex AI's OpenAI-compatible Chat Completions (`endpoints/openapi`).
    VertexOpenaiChat,
    Sim,
}

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

/// Builds a kind's egress, endpoint and auth from its typed settings, the OpenAI dialects'
/// options and the configured or simulator endpoint.
pub(crate) type Build<S> = fn(&S, &OpenAiOptions, Option<String>) -> Result<Parts, String>;

/// Which typed settings a kind takes (what `Config::validate` makes of its raw ones), and how it
/// is built from them.
#[derive(Clone, Copy)]
pub(crate) enum Builder {
    /// Nothing beyond an optional key and endpoint.
    Plain(Build<()>),
    Azure(Build<AzureSettings>),
    Bedrock(Build<BedrockSettings>),
    Vertex(Build<VertexSettings>),
}

/// A provider's settings as its kind uses them, with its builder: made once by
/// `Config::validate`, so building the provider checks nothing again.
#[derive(Clone, Debug)]
pub(crate) struct ProviderSettings {
    pub(crate) access: Access,
    pub(crate) options: OpenAiOptions,
}

/// A [`Builder`] with the settings it takes.
#[derive(Clone, Debug)]
pub(crate) enum Access {
    Plain(Build<()>),
    Azure(AzureSettings, Build<AzureSettings>),
    Bedrock(BedrockSettings, Build<BedrockSettings>),
    Vertex(VertexSettings, Build<VertexSettings>),
}

impl ProviderSettings {
    /// The egress, endpoint and auth; `endpoint` is the configured or simulator one.
    pub(crate) fn parts(&self, endpoint: Option<String>) -> Result<Parts, String> {
        let options = &self.options;
        match &self.access {
            Access::Plain(build) => build(&(), options, endpoint),
            Access::Azure(settings, build) => build(settings, options, endpoint),
            Access::Bedrock(settings, build) => build(settings, options, endpoint),
            Access::Vertex(settings, build) => build(settings, options, endpoint),
        }
    }
}

/// The parts of a checked provider (one `Config::from_toml` made).
pub(crate) fn parts(config: &ProviderConfig, endpoint: Option<String>) -> Result<Parts, String> {
    config
        .settings
        .as_ref()
        .ok_or("its settings were never checked (Config::from_toml checks them)")?
        .parts(endpoint)
}

/// How a Bedrock row authenticates: the header `api_key` goes in, if any, and the signer for
/// `service`, if any.
pub(crate) type BedrockAuth = (Option<&'static str>, Option<Arc<dyn Authorize>>);

impl BedrockSettings {
    pub(crate) fn authorize(&self, service: &'static str) -> Result<BedrockAuth, String> {
        let signer = match &self.auth {
            AwsAuth::ApiKey => return Ok((Some("authorization"), None)),
            AwsAuth::Simulated => SigV4::with_credentials(
                Credentials::new(
                    "AKIDSIMULATED",
                    "simulated-secret-access-key",
                    None,
                    None,
                    "crossbar-sim",
                ),
                &self.region,
            ),
            AwsAuth::SigV4(aws) => SigV4::from_config(aws.as_ref(), &self.region)?,
        };
        Ok((None, Some(Arc::new(signer.for_service(service)))))
    }
}

impl VertexSettings {
    /// Google's token source, unless `api_key` is the token or a simulator checks none.
    pub(crate) fn authorizer(&self) -> Result<Option<Arc<dyn Authorize>>, String> {
        Ok(match &self.auth {
            GoogleAuth::Token | GoogleAuth::Simulated => None,
            GoogleAuth::Google { credentials } => {
                Some(Arc::new(GoogleAuthorizer::new(credentials.as_deref())?))
            }
        })
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
    /// The typed settings it takes and how its egress, endpoint and auth are built from them.
    pub(crate) build: Builder,
}

/// `gen_ai.system` of a simulated provider.
const SIM_SYSTEM: &str = "crossbar.sim";

/// OpenAI's own API; Azure OpenAI and OpenAI-compatible servers are the same dialect elsewhere.
const OPENAI: Kind = Kind {
    kind: ProviderKind::Openai,
    sim_dialect: "openai",
    simulator: "openai",
    required: &[Setting::ApiKey],
    tokenizer: Tokenizer::OpenAi,
    system: "openai",
    responses_api: true,
    build: Builder::Plain(|_, options, endpoint| {
        dialects::openai::provider_parts(Service::OpenAi, options, endpoint)
    }),
};

/// Anthropic's own API; the clouds' Claude doors differ in where and how they authenticate.
const ANTHROPIC: Kind = Kind {
    kind: ProviderKind::Anthropic,
    sim_dialect: "anthropic",
    simulator: "anthropic",
    required: &[Setting::ApiKey],
    tokenizer: Tokenizer::Approximate,
    system: "anthropic",
    responses_api: false,
    build: Builder::Plain(|_, _, endpoint| {
        dialects::anthropic::provider_parts(dialects::anthropic::Door::Anthropic, endpoint)
    }),
};

/// Bedrock Converse; its doors share its region, auth and telemetry name.
const BEDROCK: Kind = Kind {
    kind: ProviderKind::Bedrock,
    sim_dialect: "bedrock",
    simulator: "bedrock",
    required: &[Setting::Region],
    tokenizer: Tokenizer::Approximate,
    system: "aws.bedrock",
    responses_api: false,
    build: Builder::Bedrock(|bedrock, _, endpoint| {
        dialects::bedrock::provider_parts(bedrock, endpoint)
    }),
};

/// Bedrock Mantle's Responses door; its other doors share its simulator.
const BEDROCK_MANTLE: Kind = Kind {
    kind: ProviderKind::BedrockMantleResponses,
    sim_dialect: "bedrock-mantle-responses",
    simulator: "bedrock-mantle",
    tokenizer: Tokenizer::OpenAi,
    build: Builder::Bedrock(|bedrock, options, endpoint| {
        doors::provider_parts(doors::Door::MantleResponses(bedrock), options, endpoint)
    }),
    ..BEDROCK
};

/// Gemini on Vertex AI; Vertex's other doors share its project, location, auth, simulator and
/// telemetry name.
const VERTEX: Kind = Kind {
    kind: ProviderKind::Vertex,
    sim_dialect: "vertex",
    simulator: "vertex",
    required: &[Setting::Project, Setting::Location],
    tokenizer: Tokenizer::Approximate,
    system: "gcp.vertex_ai",
    responses_api: false,
    build: Builder::Vertex(|vertex, _, endpoint| {
        dialects::gemini::provider_parts(Some(vertex), endpoint)
    }),
};

/// The table. A row that is another's door (struct update from it) names only what differs.
pub static KINDS: &[Kind] = &[
    OPENAI,
    Kind {
        kind: ProviderKind::AzureOpenai,
        sim_dialect: "azure",
        simulator: "azure",
        required: &[Setting::Endpoint, Setting::ApiVersion, Setting::ApiKey],
        system: "az.ai.openai",
        build: Builder::Azure(|azure, options, endpoint| {
            dialects::openai::provider_parts(Service::Azure(azure), options, endpoint)
        }),
        ..OPENAI
    },
    Kind {
        kind: ProviderKind::OpenaiCompatible,
        sim_dialect: "openai-compatible",
        required: &[Setting::Endpoint],
        build: Builder::Plain(|_, options, endpoint| {
            dialects::openai::provider_parts(Service::Compatible, options, endpoint)
        }),
        ..OPENAI
    },
    ANTHROPIC,
    BEDROCK,
    Kind {
        kind: ProviderKind::Gemini,
        sim_dialect: "gemini",
        simulator: "gemini",
        required: &[Setting::ApiKey],
        tokenizer: Tokenizer::Approximate,
        system: "gcp.gemini",
        responses_api: false,
        build: Builder::Plain(|_, _, endpoint| dialects::gemini::provider_parts(None, endpoint)),
    },
    VERTEX,
    // Vertex serves Claude beside Gemini, from the same simulated endpoint.
    Kind {
        kind: ProviderKind::VertexAnthropic,
        sim_dialect: "vertex-anthropic",
        build: Builder::Vertex(|vertex, _, endpoint| {
            dialects::anthropic::provider_parts(dialects::anthropic::Door::Vertex(vertex), endpoint)
        }),
        ..VERTEX
    },
    Kind {
        kind: ProviderKind::FoundryAnthropic,
        sim_dialect: "foundry-anthropic",
        required: &[Setting::Endpoint, Setting::ApiKey],
        system: "az.ai.inference",
        build: Builder::Azure(|azure, _, endpoint| {
            let door = dialects::anthropic::Door::Foundry(azure.auth);
            dialects::anthropic::provider_parts(door, endpoint)
        }),
        ..ANTHROPIC
    },
    // The clouds' own doors to OpenAI's dialects (`dialects::openai::doors`) and to Claude.
    BEDROCK_MANTLE,
    Kind {
        kind: ProviderKind::BedrockMantleChat,
        sim_dialect: "bedrock-mantle-chat",
        build: Builder::Bedrock(|bedrock, options, endpoint| {
            doors::provider_parts(doors::Door::MantleChat(bedrock), options, endpoint)
        }),
        ..BEDROCK_MANTLE
    },
    Kind {
        kind: ProviderKind::BedrockMantleAnthropic,
        sim_dialect: "bedrock-mantle-anthropic",
        tokenizer: Tokenizer::Approximate,
        build: Builder::Bedrock(|bedrock, _, endpoint| {
            let door = dialects::anthropic::Door::BedrockMantle(bedrock);
            dialects::anthropic::provider_parts(door, endpoint)
        }),
        ..BEDROCK_MANTLE
    },
    // Bedrock Runtime serves it beside Converse, from the same simulated endpoint.
    Kind {
        kind: ProviderKind::BedrockRuntimeChat,
        sim_dialect: "bedrock-runtime-chat",
        tokenizer: Tokenizer::OpenAi,
        build: Builder::Bedrock(|bedrock, options, endpoint| {
            doors::provider_parts(doors::Door::RuntimeChat(bedrock), options, endpoint)
        }),
        ..BEDROCK
    },
    Kind {
        kind: ProviderKind::VertexOpenaiResponses,
        sim_dialect: "vertex-openai-responses",
        tokenizer: Tokenizer::OpenAi,
        build: Builder::Vertex(|vertex, options, endpoint| {
            doors::provider_parts(doors::Door::VertexResponses(vertex), options, endpoint)
        }),
        ..VERTEX
    },
    Kind {
        kind: ProviderKind::VertexOpenaiChat,
        sim_dialect: "vertex-openai-chat",
        build: Builder::Vertex(|vertex, options, endpoint| {
            doors::provider_parts(doors::Door::VertexChat(vertex), options, endpoint)
        }),
        ..VERTEX
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

//! `[[providers]]`: the upstreams, their kind, endpoint, credentials and deadlines, as written
//! and (`ProviderSettings`'s pieces) as their kind uses them once checked. What each kind requires
//! is in the provider table (`crate::kinds`); `validate` turns the one into the other.

use std::collections::BTreeMap;

use serde::Deserialize;
use toml::Spanned;

use super::Secret;

/// Defined beside the provider table, so a new kind is added in one file.
pub use crate::kinds::ProviderKind;

/// How an Azure deployment authenticates: `api-key` header or an Entra ID bearer token.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum AzureAuth {
    ApiKey,
    Bearer,
}

/// The OpenAI API a provider's chat goes through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum OpenAiApi {
    #[default]
    Chat,
    Responses,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MaxTokensFieldConfig {
    MaxTokens,
    MaxCompletionTokens,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub name: Spanned<String>,
    pub kind: ProviderKind,
    pub endpoint: Option<Spanned<String>>,
    pub api_key: Option<Spanned<Secret>>,
    pub api_version: Option<String>,
    pub auth: Option<AzureAuth>,
    #[serde(default)]
    pub headers: BTreeMap<String, Spanned<Secret>>,
    pub cloud: Option<String>,
    pub region: Option<String>,
    /// For `kind = "sim"`: the wire format the simulated provider speaks.
    pub dialect: Option<Spanned<String>>,
    /// For `kind = "sim"`: the simulator's latency and fault settings.
    pub sim: Option<Spanned<toml::Table>>,
    pub max_tokens_field: Option<MaxTokensFieldConfig>,
    /// OpenAI and Azure OpenAI: which API chat goes through upstream (`chat` by default;
    /// `responses` for reasoning models whose reasoning items must be carried between turns).
    pub api: Option<OpenAiApi>,
    /// Vertex AI: the Google Cloud project.
    pub project: Option<String>,
    /// Vertex AI: the location (`us-central1`, `global`...).
    pub location: Option<String>,
    /// Bedrock (Converse, Runtime and Mantle doors): explicit AWS credentials; without them the
    /// standard AWS chain is used.
    pub aws: Option<AwsCredentials>,
    /// Vertex AI: a service-account JSON file; without it Google application-default
    /// credentials are used.
    pub google_credentials: Option<String>,
    /// How image URLs are fetched for providers that only take inline images.
    #[serde(default)]
    pub image_fetch: crate::images::ImageFetch,
    #[serde(default)]
    pub timeouts: Timeouts,
    /// The settings as the kind uses them, made by `Config::validate`.
    #[serde(skip)]
    pub(crate) settings: Option<crate::kinds::ProviderSettings>,
}

#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AwsCredentials {
    pub access_key_id: Option<Spanned<Secret>>,
    pub secret_access_key: Option<Spanned<Secret>>,
    pub session_token: Option<Spanned<Secret>>,
    pub profile: Option<String>,
}

/// Per-provider deadlines, in milliseconds.
#[derive(Clone, Copy, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Timeouts {
    pub connect_ms: Option<u64>,
    /// Until the response headers arrive.
    pub first_byte_ms: Option<u64>,
    /// Between two chunks of a stream.
    pub idle_ms: Option<u64>,
    pub total_ms: Option<u64>,
}

/// The OpenAI dialects' options (`api`, `max_tokens_field`); other dialects have none.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(crate) struct OpenAiOptions {
    pub api: OpenAiApi,
    /// `None`: the service's own default.
    pub max_tokens_field: Option<MaxTokensFieldConfig>,
}

/// An Azure resource's settings: Azure OpenAI (its `api-version`) and Claude in Microsoft
/// Foundry (which has none).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct AzureSettings {
    pub api_version: String,
    pub auth: AzureAuth,
}

/// A Bedrock provider's settings (Converse and the Mantle and Runtime doors).
#[derive(Clone, Debug)]
pub(crate) struct BedrockSettings {
    /// An AWS region name: it goes into the host name and the signature's scope.
    pub region: String,
    pub auth: AwsAuth,
}

/// How a Bedrock provider authenticates.
#[derive(Clone, Debug)]
pub(crate) enum AwsAuth {
    /// `api_key` is a Bedrock API key, sent as `Authorization: Bearer`.
    ApiKey,
    /// SigV4 with the `aws` keys or profile, or else the standard AWS chain.
    SigV4(Option<AwsCredentials>),
    /// A simulated provider with neither signs with fixed placeholder keys: no simulator needs
    /// real ones, and looking for them (IMDS) would stall a test machine.
    Simulated,
}

/// A Vertex AI provider's settings (Gemini, Claude and the OpenAI doors).
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct VertexSettings {
    pub project: String,
    pub location: String,
    pub auth: GoogleAuth,
}

/// How a Vertex AI provider authenticates.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum GoogleAuth {
    /// `api_key` is a bearer token, sent as is.
    Token,
    /// OAuth tokens from a service-account file, or else application-default credentials.
    Google { credentials: Option<String> },
    /// A simulator without a key checks none; asking Google would only make offline setups
    /// fail.
    Simulated,
}

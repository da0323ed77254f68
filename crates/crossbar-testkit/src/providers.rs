//! Named simulated providers, as the suites configure them again and again.
//!
//! Two forms. The `[[providers]]` blocks are macros that expand to string literals, so a
//! suite's configuration stays one `const` built with `concat!`; each block ends inside its
//! table, so settings written after it (an `api_key`, a `sim = { ... }`) belong to it. The
//! [`SimProvider`]s are one provider per dialect with the credentials the gateway holds and the
//! simulator checks, for tables that run the same case against every dialect.

/// `sim-openai`: OpenAI's dialect on the `openai` cloud, region `us`, no key.
#[macro_export]
macro_rules! sim_openai {
    () => {
        r#"
[[providers]]
name = "sim-openai"
kind = "sim"
dialect = "openai"
cloud = "openai"
region = "us"
"#
    };
}

/// `sim-azure`: Azure OpenAI's dialect on the `azure` cloud, region `eastus`, no key.
#[macro_export]
macro_rules! sim_azure {
    () => {
        r#"
[[providers]]
name = "sim-azure"
kind = "sim"
dialect = "azure"
cloud = "azure"
region = "eastus"
"#
    };
}

/// `sim-anthropic`: Anthropic's dialect on the `anthropic` cloud, region `us`, with the key
/// `sk-ant-simulated` (which the simulator does not check).
#[macro_export]
macro_rules! sim_anthropic {
    () => {
        r#"
[[providers]]
name = "sim-anthropic"
kind = "sim"
dialect = "anthropic"
cloud = "anthropic"
region = "us"
api_key = "sk-ant-simulated"
"#
    };
}

/// `broken`: OpenAI's dialect on the `aws` cloud, region `us-east-1`, failing every request
/// with a 503.
#[macro_export]
macro_rules! broken_openai {
    () => {
        r#"
[[providers]]
name = "broken"
kind = "sim"
dialect = "openai"
cloud = "aws"
region = "us-east-1"
sim = { error_rate = 1.0, error_status = 503 }
"#
    };
}

/// The agents' catalog: [`sim_openai!`] and [`sim_anthropic!`], with `smart` (GPT-4o),
/// `cheap` (Claude Haiku) and `embed` (embeddings) one deployment each, so which provider
/// answers never depends on live statistics; no store.
#[macro_export]
macro_rules! agent_catalog {
    () => {
        concat!(
            $crate::sim_openai!(),
            $crate::sim_anthropic!(),
            r#"
[[models]]
name = "smart"
deployments = [{ provider = "sim-openai", target = "gpt-4o", price = { input = 2.5, output = 10.0 } }]

[[models]]
name = "cheap"
deployments = [{ provider = "sim-anthropic", target = "claude-haiku", price = { input = 0.25, output = 1.25 } }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-openai", target = "text-embedding-3-small", price = { input = 0.02, output = 0.0 } }]

[store]
enabled = false
"#
        )
    };
}

/// [`agent_catalog!`] as a constant.
pub const AGENT_CATALOG: &str = agent_catalog!();

/// One simulated provider of one dialect, with the credentials the gateway holds.
#[derive(Clone, Copy, Debug)]
pub struct SimProvider {
    /// The provider's settings after its `name` (kind, dialect, credentials), the simulator
    /// set to accept exactly those credentials.
    pub settings: &'static str,
    /// A model id the provider serves.
    pub target: &'static str,
    /// The credentials the gateway sends, which no answer may ever show.
    pub secrets: &'static [&'static str],
}

impl SimProvider {
    /// The provider as a `[[providers]]` block named `name`.
    pub fn toml(&self, name: &str) -> String {
        format!("[[providers]]\nname = \"{name}\"\n{}\n", self.settings)
    }
}

/// OpenAI Chat Completions, no key.
pub const OPENAI: SimProvider = SimProvider {
    settings: r#"kind = "sim"
dialect = "openai""#,
    target: "gpt-4o",
    secrets: &[],
};

/// A provider of `dialect` with `extra` settings (each line ending in a newline) and the key
/// `key`, which its simulator requires.
macro_rules! keyed {
    ($dialect:literal, $extra:literal, $key:literal, $target:literal) => {
        SimProvider {
            settings: concat!(
                "kind = \"sim\"\ndialect = \"",
                $dialect,
                "\"\n",
                $extra,
                "api_key = \"",
                $key,
                "\"\nsim = { api_key = \"",
                $key,
                "\" }"
            ),
            target: $target,
            secrets: &[$key],
        }
    };
}

/// Azure OpenAI, its `api-key`.
pub const AZURE: SimProvider = keyed!("azure", "", "azure-key", "gpt4o-prod");

/// Anthropic Messages, its `x-api-key`.
pub const ANTHROPIC: SimProvider =
    keyed!("anthropic", "", "sk-ant-test", "claude-sonnet-4-20250514");

/// Bedrock Converse in `us-east-1`, SigV4 with AWS's documentation example credentials.
pub const BEDROCK: SimProvider = SimProvider {
    settings: r#"kind = "sim"
dialect = "bedrock"
region = "us-east-1"
aws = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }"#,
    target: "us.anthropic.claude-3-7-sonnet-20250219-v1:0",
    secrets: &["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"],
};

/// Gemini's API, its `x-goog-api-key`.
pub const GEMINI: SimProvider = keyed!("gemini", "", "gemini-key", "gemini-2.5-flash");

/// Gemini on Vertex AI (`proj-1`, `us-central1`), a bearer token.
pub const VERTEX: SimProvider = keyed!(
    "vertex",
    "project = \"proj-1\"\nlocation = \"us-central1\"\n",
    "ya29.test-token",
    "gemini-2.5-pro"
);

/// Claude in Microsoft Foundry, the resource key as `x-api-key`.
pub const FOUNDRY_ANTHROPIC: SimProvider = keyed!(
    "foundry-anthropic",
    "",
    "foundry-resource-key",
    "claude-sonnet-4-20250514"
);

/// Claude on Vertex AI (`proj-1`, `us-east5`), a bearer token.
pub const VERTEX_ANTHROPIC: SimProvider = keyed!(
    "vertex-anthropic",
    "project = \"proj-1\"\nlocation = \"us-east5\"\n",
    "ya29.test-token",
    "claude-sonnet-4@20250514"
);

/// AWS's documentation example keys, which the Bedrock doors below sign with.
macro_rules! aws_example_keys {
    () => {
        r#"aws = { access_key_id = "AKIDEXAMPLE", secret_access_key = "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY" }"#
    };
}

/// A SigV4 `authorization` header for `bedrock` in `us-east-1` with AWS's documentation example
/// key, dated [`SIGNED_AT`]: the shape the simulators check (the scope, not the signature).
pub const SIGNED: &str = "AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20150830/us-east-1/bedrock/aws4_request, SignedHeaders=content-type;host;x-amz-date, Signature=1c91d22c6dfb49efad9e8de45bc4dde894ea14c06a0f4b54d7682ee99e1cd6d6";

/// The `x-amz-date` that goes with [`SIGNED`].
pub const SIGNED_AT: &str = "20150830T123600Z";

/// Posts `body` to a Bedrock simulator's `url` signed with [`SIGNED`].
#[expect(clippy::unwrap_used, reason = "test helper: a failure fails the test")]
pub async fn post_signed(url: &str, body: &serde_json::Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(url)
        .header("authorization", SIGNED)
        .header("x-amz-date", SIGNED_AT)
        .json(body)
        .send()
        .await
        .unwrap()
}

/// OpenAI's own models on Bedrock Mantle (`us-east-2`): the Responses API under `/openai/v1`,
/// SigV4 for `bedrock-mantle`.
pub const BEDROCK_MANTLE_RESPONSES: SimProvider = SimProvider {
    settings: concat!(
        "kind = \"sim\"\ndialect = \"bedrock-mantle-responses\"\nregion = \"us-east-2\"\n",
        aws_example_keys!()
    ),
    target: "openai.gpt-5.4",
    secrets: &["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"],
};

/// An open-weight model on Bedrock Mantle (`us-west-2`): Chat Completions under `/v1`, a Bedrock
/// API key.
pub const BEDROCK_MANTLE_CHAT: SimProvider = keyed!(
    "bedrock-mantle-chat",
    "region = \"us-west-2\"\n",
    "bedrock-api-key-mantle",
    "qwen.qwen3-32b-v1:0"
);

/// Claude on Bedrock Mantle (`us-east-1`): Messages under `/anthropic`, SigV4 for
/// `bedrock-mantle`.
pub const BEDROCK_MANTLE_ANTHROPIC: SimProvider = SimProvider {
    settings: concat!(
        "kind = \"sim\"\ndialect = \"bedrock-mantle-anthropic\"\nregion = \"us-east-1\"\n",
        aws_example_keys!()
    ),
    target: "anthropic.claude-haiku-4-5",
    secrets: &["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"],
};

/// Bedrock Runtime's OpenAI-compatible Chat Completions (`us-west-2`), SigV4 for `bedrock`.
pub const BEDROCK_RUNTIME_CHAT: SimProvider = SimProvider {
    settings: concat!(
        "kind = \"sim\"\ndialect = \"bedrock-runtime-chat\"\nregion = \"us-west-2\"\n",
        aws_example_keys!()
    ),
    target: "openai.gpt-oss-120b-1:0",
    secrets: &["wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY"],
};

/// OpenAI's models on Vertex AI (`proj-1`, `global`): the Responses API under
/// `publishers/openai/v1`, a bearer token.
pub const VERTEX_OPENAI_RESPONSES: SimProvider = keyed!(
    "vertex-openai-responses",
    "project = \"proj-1\"\nlocation = \"global\"\n",
    "ya29.test-token",
    "gpt-5.4"
);

/// Vertex AI's OpenAI-compatible Chat Completions (`proj-1`, `us-central1`), a bearer token.
pub const VERTEX_OPENAI_CHAT: SimProvider = keyed!(
    "vertex-openai-chat",
    "project = \"proj-1\"\nlocation = \"us-central1\"\n",
    "ya29.test-token",
    "google/gemini-2.5-flash"
);

//! The kit's in-process gateway (`start`, `TestGateway`) and answer readers, and this suite's
//! two-cloud catalog.

pub use crossbar_testkit::gateway::*;

/// Two simulated clouds (OpenAI and Azure dialects) serving `chat` and `embed`, with no latency.
#[allow(dead_code, reason = "each test binary uses part of this module")]
pub const TWO_CLOUDS: &str = concat!(
    crossbar_testkit::sim_openai!(),
    crossbar_testkit::sim_azure!(),
    r#"api_key = "azure-secret-key"
sim = { api_key = "azure-secret-key" }

[[models]]
name = "chat"
deployments = [
  { provider = "sim-openai", target = "gpt-4o-2024-08-06", price = { input = 2.5, output = 10.0 } },
  { provider = "sim-azure", target = "gpt4o-prod", price = { input = 2.5, output = 10.0 } },
]

[[models]]
name = "chat-azure"
deployments = [{ provider = "sim-azure", target = "gpt4o-prod" }]

[[models]]
name = "embed"
deployments = [{ provider = "sim-openai", target = "text-embedding-3-small" }]
"#
);

//! Helpers shared by the black-box test suites of several crates. Test-only: no production crate
//! depends on this one.
//!
//! - [`openapi`] and [`smithy`]: bodies checked against the providers' published specs.
//! - [`http`]: a request's answer as JSON.
//! - [`providers`]: named simulated providers as the suites configure them again and again.
//! - [`otlp`]: an OTLP/HTTP JSON trace collector on loopback.
//! - [`process`]: the real `crossbar` binary as a child process ([`process::GatewayProcess`]).
//! - [`servers`]: a private `redis-server` and PostgreSQL cluster a test may kill and restart.
//! - [`gateway`] (feature `gateway`): a gateway in-process on loopback ([`gateway::TestGateway`]).

#[cfg(feature = "gateway")]
pub mod gateway;
pub mod http;
pub mod openapi;
pub mod otlp;
pub mod process;
pub mod providers;
pub mod servers;
pub mod smithy;

#[cfg(test)]
mod tests {
    use super::providers;

    /// The per-dialect fixtures spell their settings exactly as the suites did before the kit.
    #[test]
    fn keyed_providers_spell_their_settings() {
        assert_eq!(
            providers::AZURE.settings,
            "kind = \"sim\"\ndialect = \"azure\"\napi_key = \"azure-key\"\nsim = { api_key = \"azure-key\" }"
        );
        assert_eq!(
            providers::VERTEX.settings,
            "kind = \"sim\"\ndialect = \"vertex\"\nproject = \"proj-1\"\nlocation = \"us-central1\"\napi_key = \"ya29.test-token\"\nsim = { api_key = \"ya29.test-token\" }"
        );
        assert_eq!(providers::VERTEX.secrets, ["ya29.test-token"]);
    }
}

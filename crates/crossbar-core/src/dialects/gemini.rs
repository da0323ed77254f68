//! The Google Gemini API and Vertex AI generateContent dialect.

use crate::config::ProviderConfig;
use crate::provider::Parts;

/// This dialect's row of the provider table.
pub(crate) fn provider_parts(
    _config: &ProviderConfig,
    _endpoint: Option<String>,
    _vertex: bool,
) -> Result<Parts, String> {
    Err("the gemini dialect is not implemented yet".to_owned())
}

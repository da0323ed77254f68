//! The AWS Bedrock Converse / ConverseStream dialect.

use crate::config::ProviderConfig;
use crate::provider::Parts;

/// This dialect's row of the provider table.
pub(crate) fn provider_parts(
    _config: &ProviderConfig,
    _endpoint: Option<String>,
) -> Result<Parts, String> {
    Err("the bedrock dialect is not implemented yet".to_owned())
}

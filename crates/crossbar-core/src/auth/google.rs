//! Google OAuth bearer tokens for Vertex AI, from a service-account file or application-default
//! credentials. `gcp_auth` caches each token for its lifetime and fetches a new one when it
//! expires, so every request just asks it for the current token.
//!
//! A Vertex provider configured with `api_key` does not use this: the key is sent as a static
//! `Authorization: Bearer` token (an access token minted elsewhere, or a simulator's key).

use std::path::PathBuf;
use std::sync::Arc;

use futures::future::BoxFuture;
use gcp_auth::{CustomServiceAccount, TokenProvider};
use reqwest::header::{AUTHORIZATION, HeaderValue};
use tokio::sync::OnceCell;

use super::Authorize;
use crate::error::{Error, Result};

const CLOUD_PLATFORM: &str = "https://www.googleapis.com/auth/cloud-platform";

/// Adds `Authorization: Bearer <access token>` for scope `cloud-platform`.
pub struct GoogleAuthorizer {
    /// Set at construction for a service-account file; found on first use for
    /// application-default credentials (their discovery is asynchronous and may need the
    /// metadata server), and retried on the next request if that failed.
    provider: OnceCell<Arc<dyn TokenProvider>>,
}

impl std::fmt::Debug for GoogleAuthorizer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAuthorizer")
            .field("initialized", &self.provider.initialized())
            .finish()
    }
}

impl GoogleAuthorizer {
    /// From a service-account JSON file (read and checked now, so a bad path fails at start),
    /// or application-default credentials when `credentials` is `None`.
    pub fn new(credentials: Option<&str>) -> Result<Self, String> {
        let provider = match credentials {
            None => OnceCell::new(),
            Some(path) => {
                let account =
                    CustomServiceAccount::from_file(PathBuf::from(path)).map_err(|e| {
                        format!("google_credentials: cannot use service-account file `{path}`: {e}")
                    })?;
                let provider: Arc<dyn TokenProvider> = Arc::new(account);
                OnceCell::new_with(Some(provider))
            }
        };
        Ok(Self { provider })
    }

    async fn token(&self) -> Result<String> {
        let provider = self
            .provider
            .get_or_try_init(|| async { gcp_auth::provider().await })
            .await
            .map_err(|e| token_error(&e))?;
        let token = provider
            .token(&[CLOUD_PLATFORM])
            .await
            .map_err(|e| token_error(&e))?;
        Ok(token.as_str().to_owned())
    }
}

/// Not getting a token is our side's problem, and another deployment may still work.
fn token_error(error: &gcp_auth::Error) -> Error {
    Error::upstream_connect(format!(
        "Could not obtain a Google access token for Vertex AI: {}",
        crate::error::error_chain(error)
    ))
}

impl Authorize for GoogleAuthorizer {
    fn authorize<'a>(&'a self, request: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>> {
        Box::pin(async move {
            let token = self.token().await?;
            let mut value = HeaderValue::from_str(&format!("Bearer {token}")).map_err(|_| {
                Error::upstream_connect("The Google access token is not a valid header value.")
            })?;
            value.set_sensitive(true);
            request.headers_mut().insert(AUTHORIZATION, value);
            Ok(())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_service_account_file_fails_at_start_naming_the_key() {
        let err = GoogleAuthorizer::new(Some("/nonexistent/crossbar-sa.json")).unwrap_err();
        assert!(err.starts_with("google_credentials:"), "{err}");
        assert!(err.contains("/nonexistent/crossbar-sa.json"), "{err}");
        // Application-default credentials are looked up lazily, never at construction.
        let adc = GoogleAuthorizer::new(None).unwrap();
        assert!(!adc.provider.initialized());
    }
}

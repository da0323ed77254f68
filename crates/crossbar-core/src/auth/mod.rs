//! Per-request authorization for providers whose credentials are not a static header: SigV4
//! signs each request's body, OAuth tokens expire and are refreshed.

use futures::future::BoxFuture;

use crate::error::Result;

pub trait Authorize: Send + Sync {
    /// Adds credentials to a fully built request (URL, headers and body are final).
    fn authorize<'a>(&'a self, request: &'a mut reqwest::Request) -> BoxFuture<'a, Result<()>>;
}

pub mod google;
pub mod sigv4;

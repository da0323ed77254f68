//! Fetching image URLs for providers that only take inline bytes (Bedrock, Gemini). The gateway
//! fetches on a client's behalf, so it refuses private, loopback and link-local addresses unless
//! configured, pins the address it checked (no DNS rebinding), follows no redirects, and caps
//! size and time.

use std::borrow::Cow;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::Deserialize;

use crate::chat::{ChatRequest, ContentPart, ImageSource};
use crate::error::{Error, Result};

/// How a provider fetches image URLs it cannot pass on (`image_fetch` in a provider's config).
#[derive(Clone, Copy, Debug, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFetch {
    /// Allow private, loopback and link-local addresses (for images on an internal network).
    pub allow_private: bool,
    pub max_bytes: usize,
    pub timeout_ms: u64,
}

impl Default for ImageFetch {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 5 * 1024 * 1024,
            timeout_ms: 10_000,
        }
    }
}

/// Whether an address is one a gateway must not fetch from on a client's behalf.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                // Carrier-grade NAT, 100.64.0.0/10.
                || (a == 100 && (64..128).contains(&b))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            v6.is_loopback()
                || v6.is_unspecified()
                // Unique local fc00::/7 and link-local fe80::/10.
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || v6.to_ipv4_mapped().is_some_and(|v4| is_private(IpAddr::V4(v4)))
        }
    }
}

impl ImageFetch {
    /// The request with every URL image replaced by its bytes; borrowed when there were none.
    pub async fn inline<'a>(&self, request: &'a ChatRequest) -> Result<Cow<'a, ChatRequest>> {
        let has_urls = request.messages.iter().flat_map(|m| &m.content).any(|p| {
            matches!(
                p,
                ContentPart::Image {
                    source: ImageSource::Url(_),
                    ..
                }
            )
        });
        if !has_urls {
            return Ok(Cow::Borrowed(request));
        }
        let mut owned = request.clone();
        for (i, message) in owned.messages.iter_mut().enumerate() {
            for (j, part) in message.content.iter_mut().enumerate() {
                if let ContentPart::Image {
                    source: source @ ImageSource::Url(_),
                    ..
                } = part
                    && let ImageSource::Url(url) = &*source
                {
                    let param = format!("messages[{i}].content[{j}].image_url.url");
                    *source = self.fetch(url, &param).await?;
                }
            }
        }
        Ok(Cow::Owned(owned))
    }

    async fn fetch(&self, url: &str, param: &str) -> Result<ImageSource> {
        let refuse =
            |why: String| Error::invalid_field(param, format!("Could not fetch the image: {why}"));
        let parsed = reqwest::Url::parse(url).map_err(|e| refuse(format!("invalid URL ({e})")))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(refuse("only http(s) URLs can be fetched".into()));
        }
        let host = parsed
            .host_str()
            .ok_or_else(|| refuse("the URL has no host".into()))?
            .to_owned();
        let port = parsed.port_or_known_default().unwrap_or(443);
        let lookup_host = host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_owned();
        let addrs: Vec<SocketAddr> = tokio::net::lookup_host((lookup_host.as_str(), port))
            .await
            .map_err(|e| refuse(format!("cannot resolve {host} ({e})")))?
            .collect();
        let addr = addrs
            .first()
            .copied()
            .ok_or_else(|| refuse(format!("{host} has no address")))?;
        if !self.allow_private && addrs.iter().any(|a| is_private(a.ip())) {
            return Err(refuse(format!(
                "{host} is a private, loopback or link-local address"
            )));
        }
        // Pin the checked address so a second lookup cannot point elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .timeout(Duration::from_millis(self.timeout_ms))
            .build()
            .map_err(|e| Error::internal(format!("image client: {e}")))?;
        let mut response = client
            .get(parsed)
            .send()
            .await
            .map_err(|e| refuse(e.without_url().to_string()))?;
        if !response.status().is_success() {
            return Err(refuse(format!(
                "the server answered HTTP {}",
                response.status().as_u16()
            )));
        }
        let media_type = response
            .headers()
            .get(reqwest::header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .map(|v| {
                v.split(';')
                    .next()
                    .unwrap_or_default()
                    .trim()
                    .to_ascii_lowercase()
            })
            .filter(|v| v.starts_with("image/"))
            .ok_or_else(|| refuse("the response is not an image".into()))?;
        let mut bytes = Vec::new();
        while let Some(chunk) = response
            .chunk()
            .await
            .map_err(|e| refuse(e.without_url().to_string()))?
        {
            if bytes.len() + chunk.len() > self.max_bytes {
                return Err(refuse(format!(
                    "the image is larger than {} bytes",
                    self.max_bytes
                )));
            }
            bytes.extend_from_slice(&chunk);
        }
        Ok(ImageSource::Base64 {
            media_type,
            data: BASE64.encode(bytes),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn private_addresses_are_recognized() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00::1",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
        for ip in ["8.8.8.8", "1.1.1.1", "2606:4700::1111"] {
            assert!(!is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[tokio::test]
    async fn loopback_urls_are_refused_by_default() {
        let request = ChatRequest::new(
            "m",
            vec![crate::chat::Message::new(
                crate::chat::Role::User,
                vec![ContentPart::Image {
                    source: ImageSource::Url("http://127.0.0.1:9/cat.png".into()),
                    detail: None,
                }],
            )],
        );
        let err = ImageFetch::default().inline(&request).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.param.as_deref(),
            Some("messages[0].content[0].image_url.url")
        );
        assert!(err.message.contains("private"), "{}", err.message);
    }
}

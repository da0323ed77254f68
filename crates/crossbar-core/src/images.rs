//! Fetching image URLs for providers that only take inline bytes (Bedrock, Gemini). The gateway
//! fetches on a client's behalf, so it refuses private, loopback and link-local addresses unless
//! configured, pins the address it checked (no DNS rebinding), follows no redirects, and caps
//! size and time. A request's images are capped in number and in bytes together, fetched a few
//! at a time, and fetched once for all the attempts of the request (see [`fetched_once`]).

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as BASE64;
use futures::{StreamExt as _, TryStreamExt as _};
use serde::Deserialize;
use tokio::sync::OnceCell;

use crate::chat::{ChatRequest, ContentPart, ImageSource};
use crate::error::{Error, Result};

/// How a provider fetches image URLs it cannot pass on (`image_fetch` in a provider's config).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ImageFetch {
    /// Allow private, loopback and link-local addresses (for images on an internal network).
    pub allow_private: bool,
    /// Bytes one image may have.
    pub max_bytes: usize,
    pub timeout_ms: u64,
    /// Image URLs one request may name: each becomes bytes in the upstream body.
    pub max_images: usize,
    /// Bytes fetched for one request's images together.
    pub max_total_bytes: usize,
}

impl Default for ImageFetch {
    fn default() -> Self {
        Self {
            allow_private: false,
            max_bytes: 5 * 1024 * 1024,
            timeout_ms: 10_000,
            max_images: 20,
            max_total_bytes: 20 * 1024 * 1024,
        }
    }
}

/// Images fetched at once for one request, at most.
const FETCH_CONCURRENCY: usize = 4;

/// One fetched image, base64-encoded.
#[derive(Debug)]
struct Image {
    media_type: String,
    data: String,
    /// Its size as fetched.
    bytes: usize,
}

/// What fetching one URL under one policy gave: an image, or why not (refusals are kept too, so
/// that another attempt does not try the URL again).
type Outcome = std::result::Result<Arc<Image>, Error>;

/// One URL's outcome, filled by whichever attempt asks first while the others wait for it.
type Slot = Arc<OnceCell<Outcome>>;

/// The images fetched for one request, by policy and URL, shared by its attempts.
#[derive(Clone, Default)]
struct Fetched(Arc<Mutex<HashMap<(ImageFetch, String), Slot>>>);

impl Fetched {
    fn cell(&self, policy: ImageFetch, url: &str) -> Slot {
        let mut cells = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        Arc::clone(cells.entry((policy, url.to_owned())).or_default())
    }
}

tokio::task_local! {
    static FETCHED: Fetched;
}

/// Runs the attempts of one request so that they share what they fetch: an image URL is
/// fetched once per request, not again for each retry, fallback or hedge. The images are
/// dropped when `attempts` ends.
pub async fn fetched_once<F: Future>(attempts: F) -> F::Output {
    FETCHED.scope(Fetched::default(), attempts).await
}

/// The request's images together passed `max_total_bytes`; not kept, since it depends on the
/// other images.
struct TotalExceeded;

/// An IPv4 range in CIDR form.
struct V4Range {
    net: Ipv4Addr,
    prefix: u32,
}

impl V4Range {
    const fn new(a: u8, b: u8, c: u8, d: u8, prefix: u32) -> Self {
        Self {
            net: Ipv4Addr::new(a, b, c, d),
            prefix,
        }
    }

    fn contains(&self, ip: Ipv4Addr) -> bool {
        let mask = u32::MAX.checked_shl(32 - self.prefix).unwrap_or(0);
        u32::from(ip) & mask == u32::from(self.net) & mask
    }
}

/// Every IPv4 range that is not globally reachable, all refused: the IANA IPv4 Special-Purpose
/// Address Registry's entries marked so (`192.0.0.0/24` whole: its two anycast exceptions
/// answer from nearby, often on-premises, servers), and multicast.
const V4_REFUSED: &[V4Range] = &[
    // "This network" (RFC 791), 0.0.0.0 included.
    V4Range::new(0, 0, 0, 0, 8),
    // Private-Use (RFC 1918).
    V4Range::new(10, 0, 0, 0, 8),
    // Shared Address Space, carrier-grade NAT (RFC 6598).
    V4Range::new(100, 64, 0, 0, 10),
    // Loopback (RFC 1122).
    V4Range::new(127, 0, 0, 0, 8),
    // Link Local, where cloud metadata services live (RFC 3927).
    V4Range::new(169, 254, 0, 0, 16),
    // Private-Use (RFC 1918).
    V4Range::new(172, 16, 0, 0, 12),
    // IETF Protocol Assignments (RFC 6890).
    V4Range::new(192, 0, 0, 0, 24),
    // Documentation, TEST-NET-1 (RFC 5737).
    V4Range::new(192, 0, 2, 0, 24),
    // Deprecated 6to4 Relay Anycast (RFC 7526).
    V4Range::new(192, 88, 99, 0, 24),
    // Private-Use (RFC 1918).
    V4Range::new(192, 168, 0, 0, 16),
    // Benchmarking (RFC 2544).
    V4Range::new(198, 18, 0, 0, 15),
    // Documentation, TEST-NET-2 (RFC 5737).
    V4Range::new(198, 51, 100, 0, 24),
    // Documentation, TEST-NET-3 (RFC 5737).
    V4Range::new(203, 0, 113, 0, 24),
    // Multicast (RFC 5771, IANA IPv4 Multicast Address Space Registry).
    V4Range::new(224, 0, 0, 0, 4),
    // Reserved (RFC 1112), the limited broadcast 255.255.255.255 included.
    V4Range::new(240, 0, 0, 0, 4),
];

/// What an IPv6 range means for a fetch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum V6Verdict {
    Refused,
    Allowed,
    /// Reaches the IPv4 address embedded at this bit offset: decided by that address.
    Embeds(u32),
}

/// An IPv6 range in CIDR form, with its verdict.
struct V6Range {
    net: u128,
    prefix: u32,
    verdict: V6Verdict,
}

impl V6Range {
    const fn new(net: u128, prefix: u32, verdict: V6Verdict) -> Self {
        Self {
            net,
            prefix,
            verdict,
        }
    }

    fn contains(&self, ip: u128) -> bool {
        let mask = u128::MAX.checked_shl(128 - self.prefix).unwrap_or(0);
        ip & mask == self.net & mask
    }
}

/// The IPv6 table; the longest matching prefix decides. The IANA IPv6 Address Space Registry
/// allocates only `2000::/3` to global unicast, so everything else is refused; within it and
/// around it, the IANA IPv6 Special-Purpose Address Registry's ranges that are not globally
/// reachable are refused, its globally reachable exceptions inside `2001::/23` allowed (but not
/// the PCP, TURN and DNS-SD anycast addresses `2001:1::1-3`, as for IPv4), and the ranges
/// that carry an IPv4 address are judged by it.
const V6_TABLE: &[V6Range] = {
    use V6Verdict::{Allowed, Embeds, Refused};
    &[
        // Reserved by the IETF (IPv6 Address Space Registry): all but global unicast.
        V6Range::new(0, 0, Refused),
        // Global Unicast (IPv6 Address Space Registry).
        V6Range::new(0x2000 << 112, 3, Allowed),
        // Unspecified (RFC 4291).
        V6Range::new(0, 128, Refused),
        // Loopback (RFC 4291).
        V6Range::new(1, 128, Refused),
        // IPv4-compatible, deprecated (RFC 4291): refused whatever it carries.
        V6Range::new(0, 96, Refused),
        // IPv4-mapped (RFC 4291).
        V6Range::new(0xffff << 32, 96, Embeds(96)),
        // IPv4-IPv6 Translation, NAT64's well-known prefix (RFC 6052): DNS64 networks reach
        // every IPv4 host through it, so it is judged by the IPv4 address it carries.
        V6Range::new(0x0064_ff9b << 96, 96, Embeds(96)),
        // Local-Use IPv4/IPv6 Translation (RFC 8215).
        V6Range::new(0x0064_ff9b_0001 << 80, 48, Refused),
        // Discard-Only (RFC 6666).
        V6Range::new(0x0100 << 112, 64, Refused),
        // Dummy IPv6 Prefix (RFC 9780).
        V6Range::new(0x0100_0000_0000_0001 << 64, 64, Refused),
        // IETF Protocol Assignments (RFC 2928), with the PCP, TURN and DNS-SD anycasts.
        V6Range::new(0x2001 << 112, 23, Refused),
        // TEREDO (RFC 4380): carries an obfuscated IPv4 address.
        V6Range::new(0x2001_0000 << 96, 32, Refused),
        // Benchmarking (RFC 5180).
        V6Range::new(0x2001_0002_0000 << 80, 48, Refused),
        // AMT (RFC 7450), globally reachable.
        V6Range::new(0x2001_0003 << 96, 32, Allowed),
        // AS112-v6 (RFC 7535), globally reachable.
        V6Range::new(0x2001_0004_0112 << 80, 48, Allowed),
        // Deprecated ORCHID (RFC 4843).
        V6Range::new(0x2001_0010 << 96, 28, Refused),
        // ORCHIDv2 (RFC 7343), globally reachable.
        V6Range::new(0x2001_0020 << 96, 28, Allowed),
        // Drone Remote ID Protocol Entity Tags (RFC 9374), globally reachable.
        V6Range::new(0x2001_0030 << 96, 28, Allowed),
        // Documentation (RFC 3849).
        V6Range::new(0x2001_0db8 << 96, 32, Refused),
        // 6to4 (RFC 3056): the IPv4 address of the site follows the prefix.
        V6Range::new(0x2002 << 112, 16, Embeds(16)),
        // Documentation (RFC 9637).
        V6Range::new(0x3fff << 112, 20, Refused),
        // Segment Routing SIDs (RFC 9602).
        V6Range::new(0x5f00 << 112, 16, Refused),
        // Unique-Local (RFC 4193).
        V6Range::new(0xfc00 << 112, 7, Refused),
        // Link-Local Unicast (RFC 4291).
        V6Range::new(0xfe80 << 112, 10, Refused),
        // Site-Local, deprecated (RFC 3879).
        V6Range::new(0xfec0 << 112, 10, Refused),
        // Multicast (RFC 4291).
        V6Range::new(0xff00 << 112, 8, Refused),
    ]
};

/// Whether an address is one a gateway must not fetch from on a client's behalf: anything not
/// globally reachable (private, loopback, link-local, reserved, documentation, multicast...),
/// also when dressed as an IPv6 address that carries it. Used for image URLs and the agent's
/// `http_fetch`.
pub fn is_private(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => V4_REFUSED.iter().any(|range| range.contains(v4)),
        IpAddr::V6(v6) => {
            let bits = u128::from(v6);
            let verdict = V6_TABLE
                .iter()
                .filter(|range| range.contains(bits))
                .max_by_key(|range| range.prefix)
                .map_or(V6Verdict::Refused, |range| range.verdict);
            match verdict {
                V6Verdict::Refused => true,
                V6Verdict::Allowed => false,
                V6Verdict::Embeds(offset) => {
                    // The 32 bits at `offset`: truncating is the point.
                    let v4 = (bits >> (128 - 32 - offset)) as u32;
                    is_private(IpAddr::V4(Ipv4Addr::from(v4)))
                }
            }
        }
    }
}

impl ImageFetch {
    /// The request with every URL image replaced by its bytes; borrowed when there were none.
    /// Within [`fetched_once`], what an earlier attempt of the request fetched is reused.
    pub async fn inline<'a>(&self, request: &'a ChatRequest) -> Result<Cow<'a, ChatRequest>> {
        let urls: Vec<(usize, usize, &str)> = request
            .messages
            .iter()
            .enumerate()
            .flat_map(|(i, message)| {
                message
                    .content
                    .iter()
                    .enumerate()
                    .filter_map(move |(j, part)| match part {
                        ContentPart::Image {
                            source: ImageSource::Url(url),
                            ..
                        } => Some((i, j, url.as_str())),
                        _ => None,
                    })
            })
            .collect();
        if urls.is_empty() {
            return Ok(Cow::Borrowed(request));
        }
        if let Some(&(i, j, _)) = urls.get(self.max_images) {
            return Err(Error::invalid_field(
                image_param(i, j),
                format!(
                    "The request names {} image URLs; at most {} are fetched per request.",
                    urls.len(),
                    self.max_images
                ),
            ));
        }
        let fetched = FETCHED.try_with(Clone::clone).unwrap_or_default();
        let spent = AtomicUsize::new(0);
        // Made before they run, so that no closure is held across the awaits.
        let jobs: Vec<_> = urls
            .into_iter()
            .map(|(i, j, url)| {
                let (fetched, spent) = (&fetched, &spent);
                async move {
                    let image = self.fetch_once(fetched, url, i, j, spent).await?;
                    Ok::<_, Error>((i, j, image))
                }
            })
            .collect();
        let images: Vec<(usize, usize, Arc<Image>)> = futures::stream::iter(jobs)
            .buffer_unordered(FETCH_CONCURRENCY)
            .try_collect()
            .await?;
        let mut owned = request.clone();
        for (i, j, image) in images {
            if let Some(ContentPart::Image { source, .. }) = owned
                .messages
                .get_mut(i)
                .and_then(|message| message.content.get_mut(j))
            {
                *source = ImageSource::Base64 {
                    media_type: image.media_type.clone(),
                    data: image.data.clone(),
                };
            }
        }
        Ok(Cow::Owned(owned))
    }

    /// The image at `url`, fetched unless this request already did, and counted in `spent`.
    async fn fetch_once(
        &self,
        fetched: &Fetched,
        url: &str,
        i: usize,
        j: usize,
        spent: &AtomicUsize,
    ) -> Result<Arc<Image>> {
        let cell = fetched.cell(*self, url);
        let fresh = AtomicBool::new(false);
        let outcome = cell
            .get_or_try_init(|| async {
                fresh.store(true, Ordering::Relaxed);
                match self.fetch(url, &image_param(i, j), spent).await {
                    Err(Fetch::TotalExceeded) => Err(TotalExceeded),
                    Err(Fetch::Refused(error)) => Ok(Err(error)),
                    Ok(image) => Ok(Ok(Arc::new(image))),
                }
            })
            .await;
        match outcome {
            Err(TotalExceeded) => Err(self.total_exceeded()),
            Ok(Err(error)) => Err(error.clone()),
            Ok(Ok(image)) => {
                // Fetched just now, it was counted as it came; by an earlier attempt, not yet.
                if !fresh.load(Ordering::Relaxed) {
                    self.charge(spent, image.bytes)
                        .map_err(|TotalExceeded| self.total_exceeded())?;
                }
                Ok(Arc::clone(image))
            }
        }
    }

    /// Counts `bytes` more fetched for the request.
    fn charge(&self, spent: &AtomicUsize, bytes: usize) -> Result<(), TotalExceeded> {
        let total = spent
            .fetch_add(bytes, Ordering::Relaxed)
            .saturating_add(bytes);
        if total > self.max_total_bytes {
            Err(TotalExceeded)
        } else {
            Ok(())
        }
    }

    fn total_exceeded(&self) -> Error {
        Error::invalid_field(
            "messages",
            format!(
                "The request's images add up to more than {} bytes; at most that much is fetched \
                 per request.",
                self.max_total_bytes
            ),
        )
    }

    /// Fetches one image, counting its bytes in `spent` as they come.
    async fn fetch(
        &self,
        url: &str,
        param: &str,
        spent: &AtomicUsize,
    ) -> std::result::Result<Image, Fetch> {
        let refuse = |why: String| {
            Fetch::Refused(Error::invalid_field(
                param,
                format!("Could not fetch the image: {why}"),
            ))
        };
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
                "{host} is a private, loopback, link-local or otherwise reserved address"
            )));
        }
        // Pin the checked address so a second lookup cannot point elsewhere.
        let client = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .resolve(&host, addr)
            .timeout(Duration::from_millis(self.timeout_ms))
            .build()
            .map_err(|e| Fetch::Refused(Error::internal(format!("image client: {e}"))))?;
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
            self.charge(spent, chunk.len())
                .map_err(|TotalExceeded| Fetch::TotalExceeded)?;
            bytes.extend_from_slice(&chunk);
        }
        Ok(Image {
            media_type,
            data: BASE64.encode(&bytes),
            bytes: bytes.len(),
        })
    }
}

/// Why an image was not fetched.
enum Fetch {
    /// Because of the URL or what it answered: the same for every attempt.
    Refused(Error),
    TotalExceeded,
}

fn image_param(i: usize, j: usize) -> String {
    format!("messages[{i}].content[{j}].image_url.url")
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The first and last address of every range that is not globally reachable.
    const REFUSED: &[(&str, &str)] = &[
        ("0.0.0.0", "0.255.255.255"),
        ("10.0.0.0", "10.255.255.255"),
        ("100.64.0.0", "100.127.255.255"),
        ("127.0.0.0", "127.255.255.255"),
        ("169.254.0.0", "169.254.255.255"),
        ("172.16.0.0", "172.31.255.255"),
        ("192.0.0.0", "192.0.0.255"),
        ("192.0.2.0", "192.0.2.255"),
        ("192.88.99.0", "192.88.99.255"),
        ("192.168.0.0", "192.168.255.255"),
        ("198.18.0.0", "198.19.255.255"),
        ("198.51.100.0", "198.51.100.255"),
        ("203.0.113.0", "203.0.113.255"),
        ("224.0.0.0", "239.255.255.255"),
        ("240.0.0.0", "255.255.255.255"),
        ("::", "::"),
        ("::1", "::1"),
        ("::", "::ffff:ffff"),
        ("::ffff:0.0.0.0", "::ffff:255.255.255.255"),
        ("64:ff9b::", "64:ff9b::ffff:ffff"),
        ("64:ff9b:1::", "64:ff9b:1:ffff:ffff:ffff:ffff:ffff"),
        ("100::", "100::ffff:ffff:ffff:ffff"),
        ("100:0:0:1::", "100::1:ffff:ffff:ffff:ffff"),
        ("2001::", "2001:1ff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001::", "2001:0:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:2::", "2001:2:0:ffff:ffff:ffff:ffff:ffff"),
        ("2001:10::", "2001:1f:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2001:db8::", "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("2002::", "2002:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("3fff::", "3fff:fff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("5f00::", "5f00:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fc00::", "fdff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fe80::", "febf:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("fec0::", "feff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("ff00::", "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        // Outside 2000::/3, global unicast.
        ("4000::", "5eff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
        ("e000::", "fbff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"),
    ];

    #[test]
    fn every_special_purpose_range_is_refused_from_first_to_last_address() {
        for (first, last) in REFUSED {
            for ip in [first, last] {
                assert!(is_private(ip.parse().unwrap()), "{ip}");
            }
        }
        // Addresses that carry an IPv4 one are judged by it.
        for ip in [
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
            "64:ff9b::10.0.0.1",
            "64:ff9b::127.0.0.1",
            "2002:7f00:1::1",
            "2002:a9fe:a9fe::",
            "::127.0.0.1",
            "::8.8.8.8",
            "2001:1::1",
            "2001:1::3",
            "192.0.0.9",
        ] {
            assert!(is_private(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn globally_reachable_addresses_are_allowed() {
        for ip in [
            "8.8.8.8",
            "1.1.1.1",
            "100.63.255.255",
            "100.128.0.0",
            "172.32.0.0",
            "198.17.255.255",
            "198.20.0.0",
            "223.255.255.255",
            "2606:4700::1111",
            "2000::",
            "3ffe:ffff::1",
            "2001:200::",
            "2001:3::1",
            "2001:4:112::1",
            "2001:20::1",
            "2001:3f:ffff::1",
            "2001:db9::1",
            "::ffff:8.8.8.8",
            "64:ff9b::8.8.8.8",
            "2002:808:808::1",
        ] {
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

    /// A loopback image server: `/N.png` answers N bytes of image; the first `gather` requests
    /// are held until all of them arrived (2 s at most). Counts hits per path and the most
    /// requests it saw in flight at once.
    #[derive(Clone, Default)]
    struct Server {
        hits: Arc<Mutex<HashMap<String, usize>>>,
        arrivals: Arc<AtomicUsize>,
        in_flight: Arc<AtomicUsize>,
        most_in_flight: Arc<AtomicUsize>,
    }

    impl Server {
        async fn start(gather: usize) -> (Self, String) {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let server = Self::default();
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            let base = format!("http://{}", listener.local_addr().unwrap());
            let state = server.clone();
            tokio::spawn(async move {
                loop {
                    let (mut socket, _) = listener.accept().await.unwrap();
                    let state = state.clone();
                    tokio::spawn(async move {
                        let mut head = Vec::new();
                        let mut byte = [0u8; 1];
                        while !head.ends_with(b"\r\n\r\n") {
                            if socket.read(&mut byte).await.unwrap_or(0) == 0 {
                                return;
                            }
                            head.push(byte[0]);
                        }
                        let head = String::from_utf8_lossy(&head).into_owned();
                        let path = head.split(' ').nth(1).unwrap_or_default().to_owned();
                        *lock(&state.hits).entry(path.clone()).or_default() += 1;
                        let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
                        state.most_in_flight.fetch_max(now, Ordering::SeqCst);
                        if state.arrivals.fetch_add(1, Ordering::SeqCst) < gather {
                            for _ in 0..200 {
                                if state.arrivals.load(Ordering::SeqCst) >= gather {
                                    break;
                                }
                                tokio::time::sleep(Duration::from_millis(10)).await;
                            }
                        }
                        let size: usize = path
                            .trim_start_matches('/')
                            .trim_end_matches(".png")
                            .parse()
                            .unwrap_or(1);
                        let body = vec![7u8; size];
                        let answer = format!(
                            "HTTP/1.1 200 OK\r\ncontent-type: image/png\r\ncontent-length: {size}\r\nconnection: close\r\n\r\n"
                        );
                        let _ = socket.write_all(answer.as_bytes()).await;
                        let _ = socket.write_all(&body).await;
                        state.in_flight.fetch_sub(1, Ordering::SeqCst);
                    });
                }
            });
            (server, base)
        }

        fn hits(&self) -> HashMap<String, usize> {
            lock(&self.hits).clone()
        }
    }

    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        mutex.lock().unwrap()
    }

    fn with_images(urls: &[String]) -> ChatRequest {
        let parts = urls
            .iter()
            .map(|url| ContentPart::Image {
                source: ImageSource::Url(url.clone()),
                detail: None,
            })
            .collect();
        ChatRequest::new(
            "m",
            vec![crate::chat::Message::new(crate::chat::Role::User, parts)],
        )
    }

    fn loopback() -> ImageFetch {
        ImageFetch {
            allow_private: true,
            ..ImageFetch::default()
        }
    }

    #[tokio::test]
    async fn more_images_than_the_cap_are_refused_before_any_fetch() {
        let (server, base) = Server::start(1).await;
        let urls: Vec<String> = (0..21).map(|i| format!("{base}/{}.png", 100 + i)).collect();
        let err = loopback().inline(&with_images(&urls)).await.unwrap_err();
        assert_eq!(err.status(), 400);
        assert_eq!(
            err.param.as_deref(),
            Some("messages[0].content[20].image_url.url")
        );
        assert_eq!(
            err.message,
            "The request names 21 image URLs; at most 20 are fetched per request."
        );
        assert!(server.hits().is_empty());
        let twenty = with_images(&urls[..20]);
        let inlined = loopback().inline(&twenty).await.unwrap();
        assert_eq!(server.hits().len(), 20);
        assert!(matches!(
            &inlined.messages[0].content[19],
            ContentPart::Image { source: ImageSource::Base64 { data, .. }, .. } if data.len() == 160
        ));
    }

    #[tokio::test]
    async fn each_url_is_fetched_once_per_request_whatever_the_attempts() {
        let (server, base) = Server::start(1).await;
        let urls = [
            format!("{base}/10.png"),
            format!("{base}/20.png"),
            format!("{base}/10.png"),
        ];
        let request = with_images(&urls);
        let policy = loopback();
        // Two attempts of one request (a retry, a fallback to another provider).
        let (first, second) = fetched_once(async {
            let first = policy.inline(&request).await.unwrap().into_owned();
            let second = policy.inline(&request).await.unwrap().into_owned();
            (first, second)
        })
        .await;
        assert_eq!(first, second);
        assert_eq!(
            server.hits(),
            HashMap::from([("/10.png".to_owned(), 1), ("/20.png".to_owned(), 1)])
        );
        // Another request fetches again.
        fetched_once(policy.inline(&request)).await.unwrap();
        assert_eq!(server.hits()["/10.png"], 2);
    }

    #[tokio::test]
    async fn the_images_of_a_request_are_capped_in_bytes_together() {
        let (server, base) = Server::start(1).await;
        let policy = ImageFetch {
            max_total_bytes: 2500,
            ..loopback()
        };
        let two = [format!("{base}/1000.png"), format!("{base}/1001.png")];
        assert!(policy.inline(&with_images(&two)).await.is_ok());
        let three = [
            format!("{base}/1000.png"),
            format!("{base}/1001.png"),
            format!("{base}/1002.png"),
        ];
        for attempt in 0..2 {
            let err = fetched_once(policy.inline(&with_images(&three)))
                .await
                .unwrap_err();
            assert_eq!(err.status(), 400, "{attempt}");
            assert_eq!(err.param.as_deref(), Some("messages"));
            assert_eq!(
                err.message,
                "The request's images add up to more than 2500 bytes; at most that much is fetched per request."
            );
        }
        // The same URL named three times counts three times: each copy goes upstream.
        let same = [
            format!("{base}/1000.png"),
            format!("{base}/1000.png"),
            format!("{base}/1000.png"),
        ];
        let err = policy.inline(&with_images(&same)).await.unwrap_err();
        assert_eq!(err.param.as_deref(), Some("messages"));
        assert!(server.hits()["/1000.png"] >= 2);
    }

    #[tokio::test]
    async fn images_are_fetched_a_few_at_a_time() {
        // The server holds the first answers until four requests arrived: never more.
        let (server, base) = Server::start(FETCH_CONCURRENCY).await;
        let urls: Vec<String> = (0..12).map(|i| format!("{base}/{}.png", 10 + i)).collect();
        loopback().inline(&with_images(&urls)).await.unwrap();
        assert_eq!(server.hits().len(), 12);
        assert_eq!(
            server.most_in_flight.load(Ordering::SeqCst),
            FETCH_CONCURRENCY
        );
    }
}

//! Inline media as the services check it: base64 that must decode, and a document that must be
//! a PDF where one is promised.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

/// The bytes of standard base64 (padded), or `None` when the text is not that.
pub(crate) fn decode(data: &str) -> Option<Vec<u8>> {
    STANDARD.decode(data).ok().filter(|bytes| !bytes.is_empty())
}

/// Whether `bytes` open as a PDF does (`%PDF-`).
pub(crate) fn is_pdf(bytes: &[u8]) -> bool {
    bytes.starts_with(b"%PDF-")
}

/// A `data:<type>;base64,<data>` URL split into its type and decoded bytes: `Err(None)` when it
/// is no base64 data URL, `Err(Some(type))` when its data does not decode.
pub(crate) fn data_url(url: &str) -> Result<(&str, Vec<u8>), Option<&str>> {
    let (media_type, data) = url
        .strip_prefix("data:")
        .and_then(|rest| rest.split_once(";base64,"))
        .ok_or(None)?;
    decode(data)
        .map(|bytes| (media_type, bytes))
        .ok_or(Some(media_type))
}

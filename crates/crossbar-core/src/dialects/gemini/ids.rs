//! Tool-call ids for a provider that often sends none, and thought signatures that must come
//! back on the call they were issued with.
//!
//! - A `functionCall` without `id` gets `call_gemini_<16 hex>`, a hash of the response id and
//!   the call's position, so one response always maps to the same ids (a retried decode, a
//!   replayed log). Such ids are ours and never sent back to Gemini.
//! - A call's `thoughtSignature` rides in its id: `<id>__ts_<signature as unpadded base64url>`.
//!   Clients that speak a dialect without reasoning blocks (OpenAI Chat Completions) echo tool
//!   call ids verbatim, so the signature returns with the call and Gemini 3's check passes; the
//!   id keeps to `[A-Za-z0-9_-]`, the strictest tool-id charset of the other dialects
//!   (Anthropic). The signature is also kept as a `Reasoning` block for dialects that carry them.

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Marks ids we made up, which Gemini never saw.
pub(super) const SYNTHETIC_PREFIX: &str = "call_gemini_";
const SIGNATURE_SEPARATOR: &str = "__ts_";

/// FNV-1a: specified and stable, so ids do not change with the toolchain.
pub(super) fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| {
        (hash ^ u64::from(*byte)).wrapping_mul(0x0000_0100_0000_01b3)
    })
}

/// The id of the `index`-th function call (counting calls only) of a response.
pub(super) fn synthetic_call_id(response_id: &str, index: usize, name: &str) -> String {
    let key = format!("{response_id}\u{1f}{index}\u{1f}{name}");
    format!("{SYNTHETIC_PREFIX}{:016x}", fnv1a(key.as_bytes()))
}

/// The canonical id of a call: its own (or synthetic) id, with its signature appended when the
/// signature is canonical base64 (else it only travels as a reasoning block).
pub(super) fn with_signature(id: String, signature: Option<&str>) -> String {
    let Some(signature) = signature else {
        return id;
    };
    if id.contains(SIGNATURE_SEPARATOR) {
        return id;
    }
    match STANDARD.decode(signature) {
        Ok(bytes) if STANDARD.encode(&bytes) == signature => {
            format!("{id}{SIGNATURE_SEPARATOR}{}", URL_SAFE_NO_PAD.encode(bytes))
        }
        _ => id,
    }
}

/// Splits a canonical id into the id Gemini knows (if any) and the signature it carried.
pub(super) fn split(id: &str) -> (&str, Option<String>) {
    let Some((base, encoded)) = id.split_once(SIGNATURE_SEPARATOR) else {
        return (id, None);
    };
    match URL_SAFE_NO_PAD.decode(encoded) {
        Ok(bytes) if !bytes.is_empty() => (base, Some(STANDARD.encode(bytes))),
        _ => (id, None),
    }
}

/// The `id` to send back in `functionCall` / `functionResponse`: only ids Gemini itself issued
/// (or a client chose), never ours, and never to Vertex AI, whose v1 `FunctionCall` has no id.
pub(super) fn wire_id(base: &str, vertex: bool) -> Option<String> {
    (!vertex && !base.starts_with(SYNTHETIC_PREFIX) && !base.is_empty()).then(|| base.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_ride_in_ids_and_come_back_exactly() {
        let signature = "CiQB0e2Kb+/x9w==";
        let id = with_signature(synthetic_call_id("resp", 0, "f"), Some(signature));
        assert!(id.starts_with(SYNTHETIC_PREFIX), "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'),
            "{id}"
        );
        let (base, back) = split(&id);
        assert_eq!(back.as_deref(), Some(signature));
        assert_eq!(base, synthetic_call_id("resp", 0, "f"));
        assert_eq!(wire_id(base, false), None);
        // A signature that is not canonical base64 is not embedded (it stays in reasoning).
        assert_eq!(with_signature("x".into(), Some("not base64!")), "x");
        // Ids that merely look similar are left alone.
        assert_eq!(split("a__ts_!!"), ("a__ts_!!", None));
        assert_eq!(wire_id("call_abc", false).as_deref(), Some("call_abc"));
        assert_eq!(wire_id("call_abc", true), None);
    }

    #[test]
    fn synthetic_ids_are_stable_per_response_and_position() {
        assert_eq!(
            synthetic_call_id("r", 1, "f"),
            synthetic_call_id("r", 1, "f")
        );
        assert_ne!(
            synthetic_call_id("r", 1, "f"),
            synthetic_call_id("r", 2, "f")
        );
        assert_ne!(
            synthetic_call_id("r", 1, "f"),
            synthetic_call_id("s", 1, "f")
        );
    }
}

//! Tool-call ids for a provider that often sends none, and what stands in for a thought
//! signature that was lost.
//!
//! - A `functionCall` without a usable `id` gets `call_gemini_<16 hex>` (28 characters), a
//!   hash of the response id and the call's position, so one response always maps to the same
//!   ids (a retried decode, a replayed log). Such ids are ours and never sent back to Gemini.
//!   Gemini's own ids are kept when they fit every ingress dialect: at most 40 characters
//!   (OpenAI rejects longer `tool_calls[].id`) of `[A-Za-z0-9_-]` (Anthropic's tool-id charset).
//! - Signatures never ride in ids: they are `Reasoning` blocks keyed by the call's id, which
//!   `reasoning_memory` keeps for clients whose dialect has no place for them (OpenAI Chat
//!   Completions, Responses) and gives back on their next turn. Ids of the older form
//!   `<id>__ts_<signature as unpadded base64url>` are still understood when clients replay them.
//! - When a call's signature is gone (memory expired, another replica, a call from another
//!   model), the first call of the turn carries [`DUMMY_SIGNATURE`], the value Google documents
//!   for replaying calls it did not sign; without one, Gemini 3 answers 400 "Function call is
//!   missing a thought_signature".

use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

/// Marks ids we made up, which Gemini never saw.
pub(super) const SYNTHETIC_PREFIX: &str = "call_gemini_";
const SIGNATURE_SEPARATOR: &str = "__ts_";
/// The longest tool-call id OpenAI accepts (`tool_calls[].id`, `call_id`).
pub(super) const MAX_ID_LEN: usize = 40;
/// Google's documented stand-in signature ("skip_thought_signature_validator"; the other
/// documented value is "context_engineering_is_the_way_to_go").
pub(super) const DUMMY_SIGNATURE: &str = "skip_thought_signature_validator";

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

/// The canonical id of a call: Gemini's own when every client can take it back, else ours.
pub(super) fn call_id(given: Option<&str>, response_id: &str, index: usize, name: &str) -> String {
    match given {
        Some(id)
            if !id.is_empty()
                && id.len() <= MAX_ID_LEN
                && id
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            id.to_owned()
        }
        _ => synthetic_call_id(response_id, index, name),
    }
}

/// Splits an id of the older `<id>__ts_<signature>` form into the id Gemini knows (if any) and
/// the signature it carried; other ids come back whole, without a signature.
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
    fn ids_fit_every_client_and_older_signed_ids_still_split() {
        let ours = call_id(None, "resp", 0, "f");
        assert_eq!(ours, synthetic_call_id("resp", 0, "f"));
        assert_eq!(ours.len(), 28);
        assert_eq!(wire_id(&ours, false), None);
        // Gemini's own ids are kept when short and plain, replaced otherwise.
        assert_eq!(call_id(Some("fc-1_a"), "resp", 0, "f"), "fc-1_a");
        let long = "x".repeat(MAX_ID_LEN + 1);
        assert_eq!(call_id(Some(&long), "resp", 0, "f"), ours);
        assert_eq!(call_id(Some("a.b"), "resp", 0, "f"), ours);
        assert_eq!(call_id(Some(""), "resp", 0, "f"), ours);
        // The older form carried the signature as unpadded base64url.
        let (base, back) = split("call_gemini_00000000000000aa__ts_CiQB0e2Kb-_x9w");
        assert_eq!(
            (base, back.as_deref()),
            ("call_gemini_00000000000000aa", Some("CiQB0e2Kb+/x9w=="))
        );
        // Ids that merely look similar are left alone.
        assert_eq!(split("a__ts_!!"), ("a__ts_!!", None));
        assert_eq!(split("call_abc"), ("call_abc", None));
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
